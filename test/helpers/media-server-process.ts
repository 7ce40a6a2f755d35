import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { pollPause } from './wait-for';

/** ferry media's GET /stats (docs/media-server.md, "GET /stats"). */
export interface MediaStats {
  pipelines: number;
  elements: number;
  sessions: number;
  boundPorts: number;
  [key: string]: unknown;
}

/**
 * `bin/ferry media` as a child process on a free port (FERRY_MEDIA_PORT=0, the real port read from its
 * `ferry media ready {"port":N}` line), with the lifecycle knobs a scenario sets (FERRY_MEDIA_DEAD_MS,
 * FERRY_MEDIA_AUTO_RELEASE, ...). Keeps its stderr (JSON logs) so a failing test can print it.
 * `stop()` in an after() hook: SIGTERM, then SIGKILL after 5 s.
 */
export class MediaServerProcess {
  private child: ChildProcess | undefined;
  private readonly logLines: string[] = [];
  port = 0;
  /** Address it listens on (FERRY_MEDIA_HOST; a namespace scenario sets the veth's root address). */
  host = '127.0.0.1';

  private constructor() {}

  static async start(env: Record<string, string> = {}): Promise<MediaServerProcess> {
    const server = new MediaServerProcess();
    await server.launch(env);
    return server;
  }

  get url(): string {
    return `ws://${this.host}:${this.port}/kurento`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  private async launch(env: Record<string, string>): Promise<void> {
    const root = path.join(__dirname, '..', '..');
    this.host = env.FERRY_MEDIA_HOST ?? '127.0.0.1';
    const childEnv = { ...process.env, FERRY_MEDIA_HOST: '127.0.0.1', FERRY_MEDIA_PORT: '0', FERRY_LOG_LEVEL: 'info', ...env };
    // its memory settings given at the start, as ferry start does: the spawned pid is the server (no relaunch)
    const memory = require(path.join(root, 'bin', 'ferry-media-memory.js')) as {
      mediaStartSettings(env: NodeJS.ProcessEnv, execArgv: string[]): { nodeOptions: string[]; env: Record<string, string> };
    };
    const settings = memory.mediaStartSettings(childEnv, []);
    const child = spawn(process.execPath, [...settings.nodeOptions, path.join(root, 'bin', 'ferry'), 'media'], {
      cwd: root,
      env: { ...childEnv, ...settings.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    readline.createInterface({ input: child.stderr! }).on('line', (l) => this.keepLog(l));
    this.port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`ferry media not ready within 20 s; log:\n${this.log()}`)), 20_000);
      child.once('exit', (code, signal) => reject(new Error(`ferry media exited (${code ?? signal}) before ready; log:\n${this.log()}`)));
      readline.createInterface({ input: child.stdout! }).on('line', (line) => {
        const m = /^ferry media ready (\{.*\})/.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve((JSON.parse(m[1]!) as { port: number }).port);
        } else {
          this.keepLog(line);
        }
      });
    });
    child.on('exit', () => {
      this.child = undefined;
    });
  }

  private keepLog(line: string): void {
    this.logLines.push(line);
    if (this.logLines.length > 2000) this.logLines.shift();
  }

  /** The last `n` log lines (for assertion messages). */
  log(n = 60): string {
    return this.logLines.slice(-n).join('\n');
  }

  /** Log lines (parsed JSON where possible) mentioning `text`. */
  logsMatching(text: string): string[] {
    return this.logLines.filter((l) => l.includes(text));
  }

  async stats(): Promise<MediaStats> {
    const res = await fetch(`http://${this.host}:${this.port}/stats`);
    if (!res.ok) throw new Error(`GET /stats: HTTP ${res.status}`);
    return (await res.json()) as MediaStats;
  }

  /**
   * Poll /stats every 10 ms until `predicate` holds; resolves with the time it first held.
   * Rejects after `timeoutMs` with the last stats seen.
   */
  async waitForStats(predicate: (s: MediaStats) => boolean, timeoutMs: number): Promise<{ at: number; stats: MediaStats }> {
    const deadline = Date.now() + timeoutMs;
    let last: MediaStats | undefined;
    for (;;) {
      last = await this.stats();
      if (predicate(last)) return { at: Date.now(), stats: last };
      if (Date.now() > deadline) throw new Error(`/stats condition not met within ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
      await pollPause(10);
    }
  }

  /** Is this pipeline (id from kurento-client) still in /stats' pipelinesDetail? */
  static hasPipeline(stats: MediaStats, pipelineId: string): boolean {
    return ((stats.pipelinesDetail ?? []) as { id: string }[]).some((p) => p.id === pipelineId);
  }

  /** Resolves with the time `pipelineId` left /stats (polling every 10 ms), so tests sharing one server stay independent. */
  waitForPipelineGone(pipelineId: string, timeoutMs: number): Promise<{ at: number; stats: MediaStats }> {
    return this.waitForStats((s) => !MediaServerProcess.hasPipeline(s, pipelineId), timeoutMs);
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}
