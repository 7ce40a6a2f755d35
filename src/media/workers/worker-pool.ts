import type { Logger } from '../../common/logger';
import { KurentoError, KurentoErrors } from '../errors/kurento-error';
import type { LegEndReason } from '../relay/media-leg';
import type { MediaConfig } from '../server/media-config';
import type { ElementState, FromWorker, SerializedError, ToWorker, WorkerRequest, WorkerStats } from './worker-protocol';
import type { ElementWorker } from './remote-element';
import { guarded } from '../../common/process-faults';
import { startProcessTransport, startThreadTransport, type RelayTransport } from './relay-transport';

export { relayWorkerEntry, relayWorkerYoungGenerationMb } from './relay-transport';

/** What the control plane does with what workers send (media-set.ts). */
export interface WorkerPoolHandlers {
  event(elementId: string, type: string, data: Record<string, unknown>, state: ElementState | undefined): void;
  legEnded(elementId: string, reason: LegEndReason, state: ElementState | undefined): void;
  /** Worker `id` is gone (crashed or killed): everything it held is lost. Called before its pending requests fail. */
  workerDied(id: number): void;
}

/** A worker that does not say ready within this is a failed start. */
const READY_TIMEOUT_MS = 30_000;
/** A create waits this long for a relay worker to be running (at start, or while all restart). */
const PICK_WAIT_MS = 30_000;
/** GET /stats waits this long for a worker's figures. */
const STATS_TIMEOUT_MS = 2_000;
/** Restart delay after a death: doubles with each death in the last minute, up to 10 s (a crash loop does not spin). */
const RESTART_BASE_MS = 100;
const RESTART_MAX_MS = 10_000;

interface Pending {
  resolve: (r: { value: unknown; states?: Record<string, ElementState> }) => void;
  reject: (err: Error) => void;
}

/**
 * One relay worker slot: a worker thread or a child process (config.workerKind, relay-transport.ts),
 * restarted in the same slot (same id) when it dies.
 */
export class RelayWorker implements ElementWorker {
  private worker: RelayTransport | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextRid = 1;
  private readyNow = false;
  private readyWaiters: (() => void)[] = [];
  lag = { eventLoopLagP99Ms: 0, eventLoopLagMaxMs: 0 };
  restarts = 0;
  private deaths: number[] = [];
  private closing = false;
  private restartTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly id: number,
    private readonly config: MediaConfig,
    private readonly handlers: WorkerPoolHandlers,
    private readonly logger: Logger,
  ) {}

  get ready(): boolean {
    return this.readyNow;
  }

  /** The running child process's pid (FERRY_MEDIA_WORKER_KIND=process); undefined for a thread or while restarting. */
  get pid(): number | undefined {
    return this.worker?.pid;
  }

  /** Start the worker; resolves when it says ready, rejects when it dies first or takes too long. */
  start(): Promise<void> {
    const data = { workerId: this.id, config: this.config };
    const worker = this.config.workerKind === 'process' ? startProcessTransport(data) : startThreadTransport(data);
    this.worker = worker;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`relay worker ${this.id} not ready within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
      timer.unref();
      let started = false;
      worker.onMessage((m: FromWorker) => {
        if (this.worker !== worker) return; // a late message of a worker being closed
        if (m.k === 'ready') {
          started = true;
          clearTimeout(timer);
          this.readyNow = true;
          for (const w of this.readyWaiters.splice(0)) w();
          resolve();
          return;
        }
        this.onMessage(m);
      });
      worker.onError((err) => this.logger.error('relay worker failed', { worker: this.id, kind: worker.kind, error: err.message }));
      worker.onExit((code, signal) => {
        if (this.worker !== worker) return;
        this.worker = undefined;
        this.readyNow = false;
        if (!started) {
          clearTimeout(timer);
          reject(new Error(`relay worker ${this.id} exited (${signal ?? `code ${code}`}) before it was ready`));
        }
        this.died(code, signal, started, worker.pid);
      });
    });
  }

  /** Resolves when this slot has a ready worker. */
  whenReady(): Promise<void> {
    if (this.readyNow) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  request(req: WorkerRequest): Promise<{ value: unknown; states?: Record<string, ElementState> }> {
    const worker = this.worker;
    if (!worker || !this.readyNow) return Promise.reject(KurentoErrors.unexpected(`media relay worker ${this.id} is not running`));
    const rid = this.nextRid++;
    return new Promise((resolve, reject) => {
      this.pending.set(rid, { resolve, reject });
      this.post({ k: 'req', rid, ...req } as ToWorker);
    });
  }

  mute(ids: string[]): void {
    this.post({ k: 'mute', ids });
  }

  async stats(): Promise<WorkerStats | undefined> {
    if (!this.readyNow) return undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      const late = new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), STATS_TIMEOUT_MS);
      });
      const r = await Promise.race([this.request({ op: 'stats' }), late]);
      return r ? (r.value as WorkerStats) : undefined; // a worker too busy to answer is reported from what is known
    } catch {
      return undefined; // it died meanwhile: nothing to report
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  /** Test hook: the worker exits at once, as if it crashed. */
  crashForTest(): void {
    this.post({ k: 'crash' });
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const w = this.worker;
    this.worker = undefined;
    this.readyNow = false;
    if (w) await w.terminate();
    this.failPending('ferry media is stopping');
  }

  private post(m: ToWorker): void {
    this.worker?.send(m);
  }

  private onMessage(m: FromWorker): void {
    switch (m.k) {
      case 'res': {
        const p = this.pending.get(m.rid);
        if (!p) return;
        this.pending.delete(m.rid);
        if (m.ok) p.resolve({ value: m.value, ...(m.states ? { states: m.states } : {}) });
        else p.reject(deserializeError(m.error));
        return;
      }
      case 'event':
        this.handlers.event(m.id, m.type, m.data, m.state);
        return;
      case 'legEnded':
        this.handlers.legEnded(m.id, m.reason, m.state);
        return;
      case 'lag':
        this.lag = { eventLoopLagP99Ms: m.eventLoopLagP99Ms, eventLoopLagMaxMs: m.eventLoopLagMaxMs };
        return;
      default:
        return;
    }
  }

  private died(code: number | null, signal: NodeJS.Signals | null, wasReady: boolean, pid: number | undefined): void {
    if (this.closing) {
      this.failPending('ferry media is stopping');
      return;
    }
    this.logger.error('relay worker died; its pipelines are released and the worker restarted', { worker: this.id, kind: this.config.workerKind, ...(pid !== undefined ? { pid } : {}), code, signal, wasReady });
    this.lag = { eventLoopLagP99Ms: 0, eventLoopLagMaxMs: 0 };
    this.handlers.workerDied(this.id);
    this.failPending(`media relay worker ${this.id} died`);
    const now = Date.now();
    this.deaths = this.deaths.filter((t) => now - t < 60_000);
    this.deaths.push(now);
    const delay = Math.min(RESTART_MAX_MS, RESTART_BASE_MS * 2 ** (this.deaths.length - 1));
    this.restartTimer = setTimeout(guarded('media.worker-restart', () => {
      this.restartTimer = undefined;
      if (this.closing) return;
      this.restarts++;
      this.start().then(
        () => this.logger.info('relay worker restarted', { worker: this.id, restarts: this.restarts }),
        (err: unknown) => this.logger.error('relay worker restart failed', { worker: this.id, error: err instanceof Error ? err.message : String(err) }),
      );
    }), delay);
    this.restartTimer.unref();
  }

  private failPending(why: string): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(KurentoErrors.unexpected(why));
  }
}

/** `FERRY_MEDIA_WORKERS` relay workers (docs/media-server.md, "Relay workers"). */
export class WorkerPool {
  readonly workers: RelayWorker[];

  constructor(count: number, config: MediaConfig, handlers: WorkerPoolHandlers, logger: Logger) {
    this.workers = Array.from({ length: count }, (_, i) => new RelayWorker(i + 1, config, handlers, logger));
  }

  /**
   * Start every worker; resolves when all are ready. The control port does not wait for this (ferry media
   * is ready as soon as it listens; a create waits for a ready worker), and a worker that fails to start
   * is restarted with the same backoff as one that died, so the promise may never resolve: await it only
   * with a deadline (tests).
   */
  launch(): Promise<void> {
    return Promise.all(this.workers.map((w) => w.start().catch(() => w.whenReady()))).then(() => undefined);
  }

  worker(id: number): RelayWorker | undefined {
    return this.workers.find((w) => w.id === id);
  }

  /**
   * The worker a new pipeline goes to: the ready one with the fewest pipelines (`pipelinesOf`), ties by
   * the lower event-loop lag, then the lower id. When none is ready (all restarting) it waits for one.
   */
  async pick(pipelinesOf: (workerId: number) => number): Promise<RelayWorker> {
    let ready = this.workers.filter((w) => w.ready);
    if (ready.length === 0) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, PICK_WAIT_MS);
      });
      await Promise.race([late, ...this.workers.map((w) => w.whenReady())]);
      clearTimeout(timer);
      ready = this.workers.filter((w) => w.ready);
      if (ready.length === 0) throw KurentoErrors.notEnoughResources(`Not enough resources: no media relay worker is running (waited ${PICK_WAIT_MS} ms)`);
    }
    let best = ready[0]!;
    for (const w of ready.slice(1)) {
      const a = pipelinesOf(w.id);
      const b = pipelinesOf(best.id);
      if (a < b || (a === b && w.lag.eventLoopLagP99Ms < best.lag.eventLoopLagP99Ms)) best = w;
    }
    return best;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
  }
}

function deserializeError(e: SerializedError): Error {
  if (e.code !== undefined && e.type !== undefined) return new KurentoError(e.code, e.type, e.message);
  return new Error(e.message);
}
