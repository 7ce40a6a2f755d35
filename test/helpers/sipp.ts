/**
 * Runs SIPp (Debian sip-tester) as a real SIP phone in tests: one scenario from test/sipp/, explicit
 * ports (never SIPp's defaults 5060/6000, other tests share the machine), UDP or TCP, optional
 * SIPp-level packet loss (-lost), a global timeout, and statistics read back from its CSV dump.
 *
 * Each run gets its own temporary directory for SIPp's message/error/stat files; the result carries
 * their text so a failing test can show what went over the wire. Every process started here is
 * recorded and killed by `stop()` / `killAllSipp()` (call it from after()).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitForPortBound } from './free-port';

export const SIPP_SCENARIO_DIR = path.join(__dirname, '..', 'sipp');

export type SippTransport = 'udp' | 'tcp';

export interface SippOptions {
  /** Scenario file name in test/sipp/ (e.g. 'uac-call.xml') or an absolute path. */
  scenario: string;
  /** Local SIP port SIPp binds (pick with freePort()). */
  localPort: number;
  /** For a UAC: where to send, host:port. Omit for a UAS. */
  remote?: string;
  transport?: SippTransport;
  /** Number of calls before SIPp exits (-m); default 1. */
  calls?: number;
  /** Calls per second (-r); default 10. */
  rate?: number;
  /** Max simultaneous calls (-l). */
  limit?: number;
  /** SIPp loses this percentage of the messages it sends and receives (-lost). */
  lossPercent?: number;
  /** Request-URI user part ([service], -s); default 'ferry'. */
  service?: string;
  /** Value of a bare <pause/>, in ms (-d); scenarios use it as a linger at the end. Default 0. */
  lingerMs?: number;
  /** SIPp's own global timeout, after which it fails (-timeout ... -timeout_error). Default 30 s. */
  timeoutS?: number;
  /** Extra -key name value pairs. */
  keys?: Record<string, string>;
  /** Extra raw arguments. */
  extraArgs?: string[];
  /** Local media port (-mp); default a free one. */
  mediaPort?: number;
  /** Talk time of scenarios that declare the global talk_ms (uac-call, uas-hangup); default 300 ms. */
  talkMs?: number;
}

export interface SippStats {
  successfulCalls: number;
  failedCalls: number;
  totalCalls: number;
  retransmissions: number;
  raw: Record<string, string>;
}

export interface SippResult {
  /** SIPp's exit code: 0 = every call succeeded, 1 = some failed, 99 = no call processed, 255/254 = fatal. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Final statistics row from the CSV dump, when SIPp wrote one. */
  stats: SippStats | null;
  /** Every SIP message SIPp sent and received (its -trace_msg file). */
  messages: string;
  /** Unexpected messages and errors (its -trace_err file). */
  errors: string;
  /** The command line, for diagnostics. */
  command: string;
}

const running = new Set<ChildProcess>();

/** A SIPp process: wait for it with `done`, stop it with `stop()`. */
export class SippProcess {
  readonly done: Promise<SippResult>;
  private readonly child: ChildProcess;
  private readonly workDir: string;

  constructor(readonly options: SippOptions) {
    this.workDir = mkdtempSync(path.join(os.tmpdir(), 'ferry-sipp-'));
    const args = buildArgs(options, this.workDir);
    this.child = spawn('sipp', args, { cwd: this.workDir, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(this.child);
    let stdout = '';
    let stderr = '';
    this.child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    this.child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const command = `sipp ${args.join(' ')}`;
    this.done = new Promise<SippResult>((resolve) => {
      const finish = (exitCode: number | null, signal: NodeJS.Signals | null) => {
        running.delete(this.child);
        const result: SippResult = {
          exitCode,
          signal,
          stdout,
          stderr,
          stats: readStats(path.join(this.workDir, 'stats.csv')),
          messages: readIfExists(path.join(this.workDir, 'messages.log')),
          errors: readIfExists(path.join(this.workDir, 'errors.log')),
          command,
        };
        rmSync(this.workDir, { recursive: true, force: true });
        resolve(result);
      };
      this.child.once('error', (err) => {
        stderr += `\nspawn error: ${err.message}`;
        finish(null, null);
      });
      this.child.once('exit', (code, signal) => finish(code, signal));
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Resolves once SIPp has bound its SIP port (so a UAS is ready to be called). */
  async ready(timeoutMs = 10_000): Promise<void> {
    const transport = this.options.transport ?? 'udp';
    const exited = this.done.then((r) => {
      throw new Error(`sipp exited before binding port ${this.options.localPort}: ${describeSipp(r)}`);
    });
    await Promise.race([waitForPortBound(this.options.localPort, transport, timeoutMs), exited]);
  }

  /** Stops SIPp (SIGTERM, then SIGKILL after 2 s) and returns its result. */
  async stop(): Promise<SippResult> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 2000);
      const result = await this.done;
      clearTimeout(timer);
      return result;
    }
    return this.done;
  }
}

function buildArgs(o: SippOptions, workDir: string): string[] {
  const scenario = path.isAbsolute(o.scenario) ? o.scenario : path.join(SIPP_SCENARIO_DIR, o.scenario);
  const transport = o.transport ?? 'udp';
  const args = [
    '-sf', scenario,
    '-i', '127.0.0.1',
    '-p', String(o.localPort),
    '-t', transport === 'tcp' ? 't1' : 'u1',
    '-mi', '127.0.0.1',
    '-mp', String(o.mediaPort ?? 0),
    '-m', String(o.calls ?? 1),
    '-r', String(o.rate ?? 10),
    '-s', o.service ?? 'ferry',
    '-d', String(o.lingerMs ?? 0),
    '-timeout', `${o.timeoutS ?? 30}s`,
    '-timeout_error',
    '-nostdin',
    '-trace_msg', '-message_file', path.join(workDir, 'messages.log'),
    '-trace_err', '-error_file', path.join(workDir, 'errors.log'),
    '-trace_stat', '-stf', path.join(workDir, 'stats.csv'), '-fd', '1',
  ];
  if (declaresTalkTime(scenario)) args.push('-set', 'talk_ms', String(o.talkMs ?? 300));
  if (o.limit !== undefined) args.push('-l', String(o.limit));
  if (o.lossPercent !== undefined) args.push('-lost', String(o.lossPercent));
  for (const [k, v] of Object.entries(o.keys ?? {})) args.push('-key', k, v);
  if (o.extraArgs) args.push(...o.extraArgs);
  if (o.remote) args.push(o.remote);
  return args;
}

function declaresTalkTime(scenarioFile: string): boolean {
  return /<Global variables="talk_ms"\/>/.test(readIfExists(scenarioFile));
}

/**
 * Starts SIPp. A free media port is picked when none is given (SIPp binds it, and its default 6000
 * would collide between parallel runs).
 */
export async function startSipp(options: SippOptions): Promise<SippProcess> {
  const mediaPort = options.mediaPort ?? (await freePort({ protocols: ['udp'], count: 4, even: true }));
  return new SippProcess({ ...options, mediaPort });
}

/** Runs SIPp to completion and returns its result. */
export async function runSipp(options: SippOptions): Promise<SippResult> {
  const sipp = await startSipp(options);
  return sipp.done;
}

/** Kills every SIPp this process started and that is still running. */
export function killAllSipp(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
}

function readIfExists(file: string): string {
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}

function readStats(file: string): SippStats | null {
  if (!existsSync(file)) return null;
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '');
  if (lines.length < 2) return null;
  const header = lines[0].split(';');
  const last = lines[lines.length - 1].split(';');
  const raw: Record<string, string> = {};
  header.forEach((name, i) => {
    if (name) raw[name] = last[i] ?? '';
  });
  const num = (name: string) => Number(raw[name] ?? 'NaN');
  return {
    successfulCalls: num('SuccessfulCall(C)'),
    failedCalls: num('FailedCall(C)'),
    totalCalls: num('TotalCallCreated'),
    retransmissions: num('Retransmissions(C)'),
    raw,
  };
}

/** Counts messages SIPp received whose first line matches `startLine` (e.g. /^SIP\/2.0 200/). */
export function countReceived(result: SippResult, startLine: RegExp): number {
  return splitTrace(result.messages)
    .filter((m) => m.direction === 'received')
    .filter((m) => startLine.test(m.firstLine)).length;
}

/** Counts messages SIPp sent whose first line matches `startLine`. */
export function countSent(result: SippResult, startLine: RegExp): number {
  return splitTrace(result.messages)
    .filter((m) => m.direction === 'sent')
    .filter((m) => startLine.test(m.firstLine)).length;
}

export interface TracedMessage {
  direction: 'sent' | 'received';
  firstLine: string;
  /** The whole message as SIPp logged it. */
  text: string;
}

/** Every message in SIPp's trace, in order (retransmissions included). */
export function tracedMessages(result: SippResult): TracedMessage[] {
  return splitTrace(result.messages);
}

/** First value of a header in a traced message (case-insensitive name, no compact forms). */
export function headerOf(message: TracedMessage, name: string): string | undefined {
  const re = new RegExp(`^${name.replace(/[-]/g, '\\-')}\\s*:\\s*(.*)$`, 'im');
  return re.exec(message.text)?.[1]?.trim();
}

/** The Via branch of a traced message's top Via. */
export function branchOf(message: TracedMessage): string | undefined {
  return /;\s*branch=([^;,\s]+)/i.exec(headerOf(message, 'Via') ?? '')?.[1];
}

/**
 * ACKs a SIPp received that belong to no INVITE it received: another Call-ID, or (for an ACK of a
 * non-2xx, which shares the INVITE's transaction) a branch no received INVITE had while no 2xx was
 * sent for that Call-ID. An ACK for a 2xx is its own transaction and may have any branch.
 */
export function strayAcks(result: SippResult): TracedMessage[] {
  const all = tracedMessages(result);
  const invites = all.filter((m) => m.direction === 'received' && m.firstLine.startsWith('INVITE '));
  const sent2xx = new Set(
    all
      .filter((m) => m.direction === 'sent' && /^SIP\/2\.0 2\d\d/.test(m.firstLine) && /INVITE/i.test(headerOf(m, 'CSeq') ?? ''))
      .map((m) => headerOf(m, 'Call-ID')),
  );
  return all.filter((m) => {
    if (m.direction !== 'received' || !m.firstLine.startsWith('ACK ')) return false;
    const callId = headerOf(m, 'Call-ID');
    const sameCall = invites.filter((i) => headerOf(i, 'Call-ID') === callId);
    if (sameCall.length === 0) return true;
    if (sent2xx.has(callId)) return false;
    return !sameCall.some((i) => branchOf(i) === branchOf(m));
  });
}

function splitTrace(trace: string): TracedMessage[] {
  // SIPp writes "----------------------------------------------- <time>\n<PROTO> message sent (N bytes):\n\n<msg>"
  // or "... message received [N] bytes :\n\n<msg>".
  const out: TracedMessage[] = [];
  const re = /message (sent|received)[^\n]*\n\n([\s\S]*?)(?=\n-{10,} |$)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(trace)) !== null) {
    const text = m[2];
    out.push({ direction: m[1] === 'sent' ? 'sent' : 'received', firstLine: text.split('\n')[0].trim(), text });
  }
  return out;
}

/** One-paragraph description of a SIPp run for assertion messages. */
export function describeSipp(r: SippResult): string {
  const stats = r.stats
    ? `successful=${r.stats.successfulCalls} failed=${r.stats.failedCalls} retrans=${r.stats.retransmissions}`
    : 'no stats';
  const tail = (s: string, n: number) => (s.length > n ? `...${s.slice(-n)}` : s);
  return [
    `exit=${r.exitCode} signal=${r.signal} ${stats}`,
    `command: ${r.command}`,
    r.stderr.trim() ? `stderr: ${tail(r.stderr.trim(), 1500)}` : '',
    r.errors.trim() ? `errors: ${tail(r.errors.trim(), 3000)}` : '',
    r.messages.trim() ? `messages: ${tail(r.messages.trim(), 6000)}` : '',
  ]
    .filter(Boolean)
    .join('\n');
}
