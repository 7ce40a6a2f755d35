import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { TEST_API_TOKEN } from './stack';
import { pollPause } from './wait-for';

/**
 * `ferry start` (what `npm start` runs) as a real process for fault tests: every output line kept
 * with its arrival time, the `ferry ready {...}` line parsed (ports, children's pids, store mode,
 * private Redis port), and helpers to find the supervised gateway's log events after a moment.
 * Ports are always 0 (free); give it its own FERRY_DATA_DIR.
 */
const BIN = path.join(__dirname, '..', '..', 'bin', 'ferry');

export interface FerryReady {
  sip: number;
  ws: number;
  control: number;
  media: number;
  http: number;
  /** ferry sip's metrics port (on unless FERRY_SIP_METRICS_PORT is set empty) */
  sipMetrics?: number;
  pids: { sip: number; media: number; gateway: number; redis?: number };
  store: 'private-redis' | 'redis' | 'memory';
  gatewayId: string;
  redis?: number;
  dataDir?: string;
}

export interface OutputLine {
  line: string;
  at: number;
}

export class FerryStartProcess {
  readonly lines: OutputLine[] = [];
  readonly exited: Promise<number | null>;

  private constructor(readonly child: ChildProcess) {
    this.exited = new Promise((r) => child.once('exit', (code) => r(code)));
    const keep = (line: string): void => {
      this.lines.push({ line, at: Date.now() });
    };
    readline.createInterface({ input: child.stdout! }).on('line', keep);
    readline.createInterface({ input: child.stderr! }).on('line', keep);
  }

  static spawn(env: Record<string, string>): FerryStartProcess {
    const child = spawn(process.execPath, [BIN, 'start'], {
      env: {
        ...process.env,
        NODE_ENV: 'test',
        FERRY_SIP_PORT: '0', FERRY_SIP_WS_PORT: '0', FERRY_SIP_CONTROL_PORT: '0', FERRY_MEDIA_PORT: '0', FERRY_HTTP_PORT: '0',
        // the token getJson sends (without it, ferry start would generate one into FERRY_DATA_DIR)
        FERRY_API_TOKEN: TEST_API_TOKEN,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new FerryStartProcess(child);
  }

  /** Waits for the `ferry ready` line. */
  async ready(timeoutMs = 60_000): Promise<FerryReady> {
    const l = await this.waitLine((line) => line.startsWith('ferry ready '), 0, timeoutMs, 'ferry ready');
    return JSON.parse(l.line.slice('ferry ready '.length)) as FerryReady;
  }

  /** The first line matching `pred` that arrived at or after `since`. */
  async waitLine(pred: (line: string) => boolean, since: number, timeoutMs: number, what: string): Promise<OutputLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.find((l) => l.at >= since && pred(l.line));
      if (found) return found;
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`ferry start exited while waiting for ${what}:\n${this.tail(40)}`);
      if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms:\n${this.tail(40)}`);
      await pollPause(20);
    }
  }

  /**
   * A structured log event of the gateway child (`[gateway] {"message": ...}`) that arrived at or
   * after `since`, with the time the gateway stamped on it.
   */
  async gatewayEvent(message: string, since: number, timeoutMs: number): Promise<{ at: number; meta: Record<string, unknown> }> {
    const l = await this.waitLine((line) => line.startsWith('[gateway] {') && line.includes(`"message":${JSON.stringify(message)}`), since, timeoutMs, `gateway event "${message}"`);
    const meta = JSON.parse(l.line.slice('[gateway] '.length)) as Record<string, unknown>;
    return { at: Date.parse(String(meta.timestamp)), meta };
  }

  /**
   * The pid of the supervised `bin/ferry <part>` child running now (a restarted child has a new
   * one, which no output line names): found among this process's children in /proc.
   */
  childPid(part: 'sip' | 'media' | 'gateway'): number | undefined {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        if (Number(fields[1]) !== this.child.pid || fields[0] === 'Z') continue;
        const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
        if (argv.some((a) => a.endsWith(path.join('bin', 'ferry'))) && argv.includes(part)) return Number(entry);
      } catch {
        /* gone meanwhile */
      }
    }
    return undefined;
  }

  tail(n: number): string {
    return this.lines.slice(-n).map((l) => l.line).join('\n');
  }

  /** Ctrl-C, then SIGKILL if it has not exited within `graceMs`. */
  async stop(graceMs = 8000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const t = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    this.child.kill('SIGINT');
    await this.exited;
    clearTimeout(t);
  }
}
