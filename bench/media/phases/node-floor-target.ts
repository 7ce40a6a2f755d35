/**
 * The floor of any relay written on node:dgram, measured like the servers: per call a pair of sockets in a
 * bare Node process (bench/media/servers/node-floor-relay.cjs) that sends what one phone sends out to the
 * other on a connect()ed socket, with no RTP parsing, no rewrite, no counters, no RTCP. ferry media's
 * RTP↔RTP figure minus this one is what ferry's own code costs per packet; this one against rtpengine's is
 * what Node's per-datagram work costs (a received Buffer and address object per datagram, a send request per
 * send) before any application code.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import type { LoadWorker } from '../load/load-worker';
import { PhonePool } from '../load/phone-pool';
import { launchCommand } from '../servers/cpu-pinning';
import { type BenchTarget, type CallSetup, runSetups, type SetupPacing, timeSetup } from './bench-target';

export interface NodeFloorTargetOptions {
  rtpWorkers: number;
  /** How each step's new calls are set up: closed-loop bursts or open-loop arrivals (bench-target.ts). */
  setupPacing: SetupPacing;
}

const RELAY = path.join(__dirname, '..', 'servers', 'node-floor-relay.cjs');

export class NodeFloorTarget implements BenchTarget {
  readonly name = 'node floor rtp-rtp';
  private child: ChildProcess | undefined;
  private readonly phones: PhonePool;
  private streamId = 0;
  private seq = 0;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(private readonly opts: NodeFloorTargetOptions) {
    this.phones = new PhonePool(opts.rtpWorkers, () => ++this.streamId, 'node-floor');
  }

  async start(): Promise<void> {
    const [cmd, args] = launchCommand('server', process.execPath, [RELAY]);
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    this.child = child;
    const lines = readline.createInterface({ input: child.stdout! });
    const ready = new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`node floor relay exited (${code}) during start`)));
      lines.once('line', () => resolve());
    });
    await ready;
    lines.on('line', (line) => {
      const msg = JSON.parse(line) as { seq: number; result?: unknown; error?: string };
      const w = this.waiting.get(msg.seq);
      if (!w) return;
      this.waiting.delete(msg.seq);
      if (msg.error !== undefined) w.reject(new Error(msg.error));
      else w.resolve(msg.result);
    });
  }

  private request<T>(msg: Record<string, unknown>): Promise<T> {
    const seq = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(seq, { resolve: resolve as (v: unknown) => void, reject });
      this.child!.stdin!.write(JSON.stringify({ ...msg, seq }) + '\n');
    });
  }

  serverPids(): number[] {
    return this.child?.pid ? [this.child.pid] : [];
  }

  workers(): LoadWorker[] {
    return this.phones.workers();
  }

  async addCalls(count: number): Promise<CallSetup[]> {
    const dirs = Array.from({ length: count }, () => [0, 1] as const).flat();
    const phones = await this.phones.open(dirs);
    const calls = Array.from({ length: count }, (_, i) => ({ a: phones[2 * i]!, b: phones[2 * i + 1]! }));
    return runSetups(calls, this.opts.setupPacing, (call) =>
      timeSetup(async () => {
        const pair = await this.request<{ id: number; a: number; b: number }>({ op: 'pair' });
        await this.request({ op: 'target', id: pair.id, a: call.a.port, b: call.b.port });
        await Promise.all([this.phones.target(call.a, '127.0.0.1', pair.a), this.phones.target(call.b, '127.0.0.1', pair.b)]);
      }, 30000),
    );
  }

  async releaseAll(): Promise<string> {
    await this.phones.closeAll();
    const r = await this.request<{ open: number }>({ op: 'closeAll' });
    return `${r.open} socket pairs open`;
  }

  async stop(): Promise<void> {
    await this.phones.stop();
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.stdin!.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}
