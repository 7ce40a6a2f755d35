import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { launchCommand } from '../servers/cpu-pinning';
import type { WorkerReport, WorkerRequest, WorkerResponseEnvelope } from './worker-protocol';

export type LoadWorkerKind = 'rtp-peer' | 'webrtc-peer';

/** The orchestrator's handle on one forked load-generator process (request/response over IPC). */
export class LoadWorker {
  private readonly child: ChildProcess;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private exited = false;
  private readonly exitPromise: Promise<void>;

  constructor(
    readonly kind: LoadWorkerKind,
    readonly name: string,
  ) {
    const file = path.join(__dirname, `${kind}-worker.ts`);
    // Debugging aid: FERRY_BENCH_WORKER_CPU_PROF=<dir> profiles the load workers themselves.
    const profDir = process.env.FERRY_BENCH_WORKER_CPU_PROF;
    const nodeArgs = ['--import', 'tsx', ...(profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [])];
    // fork() runs `execPath ...execArgv file`: with --nice that is `nice -n <n> node ... file`, with
    // --generator-cpus `taskset -c <list> [nice -n <n>] node ... file`.
    const [execPath, execArgv] = launchCommand('generator', process.execPath, nodeArgs);
    this.child = fork(file, [], {
      execPath,
      execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, FERRY_BENCH_WORKER: name },
    });
    this.exitPromise = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exited = true;
        for (const p of this.pending.values()) p.reject(new Error(`load worker ${name} exited (${code ?? signal})`));
        this.pending.clear();
        resolve();
      });
    });
    this.child.on('message', (raw: unknown) => {
      const env = raw as WorkerResponseEnvelope;
      const p = this.pending.get(env.id);
      if (!p) return;
      this.pending.delete(env.id);
      if (env.reply.ok) p.resolve(env.reply.result);
      else p.reject(new Error(`${name}: ${env.reply.error}`));
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  request<T = unknown>(request: WorkerRequest): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`load worker ${this.name} has exited`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ id, request });
    });
  }

  report(epoch: number): Promise<WorkerReport> {
    return this.request<WorkerReport>({ op: 'report', epoch });
  }

  /** Ask the worker to exit; kill it by pid if it does not within `graceMs`. */
  async stop(graceMs = 3000): Promise<void> {
    if (this.exited) return;
    this.request({ op: 'exit' }).catch(() => undefined);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exitPromise;
    clearTimeout(timer);
  }
}
