import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { systemClock } from '../../common/clock';
import { createLogger, type Logger } from '../../common/logger';
import { processFaultCounts, recordFault } from '../../common/process-faults';
import { KurentoError, KurentoErrors } from '../errors/kurento-error';
import { defaultElementTypes } from '../objects/element-types';
import type { ElementTypeRegistry } from '../objects/element-type';
import type { MediaElement } from '../objects/media-element';
import type { ObjectHost } from '../objects/object-context';
import { SdpEndpoint } from '../objects/sdp-endpoint';
import type { LegEndReason } from '../relay/media-leg';
import { PortAllocator } from '../rtp/port-allocator';
import type { MediaConfig } from '../server/media-config';
import { EventLoopLag } from '../server/event-loop-lag';
import { RELAY_PROCESS_FLAG, type ElementState, type FromWorker, type RelayWorkerData, type SerializedError, type ToRelayProcess, type ToWorker, type WorkerRequest, type WorkerStats } from './worker-protocol';

/**
 * The media objects of one relay worker: the elements of the pipelines the control plane placed here,
 * their sockets, legs, DTLS handshakes and timers. It answers the control plane's requests (create,
 * invoke, teardown, stats) and sends it every event and leg end; the lifecycle policy (ownership,
 * orphans, auto-release, quotas) stays on the control plane (src/media/server/media-set.ts).
 */
export class RelayWorkerObjects implements ObjectHost {
  private readonly elements = new Map<string, MediaElement>();
  private readonly pipelines = new Map<string, Set<string>>();
  private readonly ports: PortAllocator;

  constructor(
    private readonly config: MediaConfig,
    private readonly post: (m: FromWorker) => void,
    private readonly logger: Logger,
    private readonly types: ElementTypeRegistry = defaultElementTypes(),
  ) {
    this.ports = new PortAllocator(config.rtpHost, config.rtpPortMin, config.rtpPortMax);
  }

  // ---- ObjectHost ---------------------------------------------------------------------------

  emitEvent(objectId: string, type: string, data: Record<string, unknown>): void {
    this.post({ k: 'event', id: objectId, type, data, state: this.stateOf(objectId) });
  }

  lookup(id: string): unknown {
    return this.elements.get(id);
  }

  legEnded(elementId: string, reason: LegEndReason): void {
    this.post({ k: 'legEnded', id: elementId, reason, state: this.stateOf(elementId) });
  }

  // ---- requests -------------------------------------------------------------------------------

  async handle(req: WorkerRequest): Promise<{ value: unknown; states?: Record<string, ElementState> }> {
    switch (req.op) {
      case 'createPipeline':
        if (!this.pipelines.has(req.pid)) this.pipelines.set(req.pid, new Set());
        return { value: null };
      case 'create': {
        const members = this.pipelines.get(req.pid);
        if (!members) throw KurentoErrors.objectNotFound(req.pid);
        const t = this.types.get(req.type);
        if (!t) throw KurentoErrors.notAvailable(`Factory '${req.type}' not found`);
        const element = await t.create({
          id: req.id,
          pipelineId: req.pid,
          constructorParams: req.params,
          host: this,
          clock: systemClock,
          config: this.config,
          ports: this.ports,
          logger: this.logger.child({ element: req.id }),
        });
        this.elements.set(req.id, element);
        members.add(req.id);
        return { value: null, states: this.pipelineStates(req.pid) };
      }
      case 'invoke': {
        const e = this.elements.get(req.id);
        if (!e || e.isReleased) throw KurentoErrors.objectNotFound(req.id);
        const value = await e.invoke(req.operation, req.params);
        return { value, states: this.pipelineStates(pipelineOf(req.id)) };
      }
      case 'teardown': {
        const e = this.elements.get(req.id);
        if (!e) return { value: null };
        e.muteEvents();
        await e.teardown({ notifyPeer: req.notifyPeer });
        this.elements.delete(req.id);
        this.pipelines.get(pipelineOf(req.id))?.delete(req.id);
        return { value: null, states: this.pipelineStates(pipelineOf(req.id)) };
      }
      case 'dropPipeline': {
        // the control plane tore every element down first; anything left (a create that raced the release) goes now
        for (const id of this.pipelines.get(req.pid) ?? []) {
          const e = this.elements.get(id);
          this.elements.delete(id);
          if (e) {
            e.muteEvents();
            await e.teardown({ notifyPeer: true });
          }
        }
        this.pipelines.delete(req.pid);
        return { value: null };
      }
      case 'stats':
        return { value: null };
    }
  }

  mute(ids: string[]): void {
    for (const id of ids) this.elements.get(id)?.muteEvents();
  }

  stats(lag: { eventLoopLagP99Ms: number; eventLoopLagMaxMs: number }): WorkerStats {
    const describe: Record<string, Record<string, unknown>> = {};
    const states: Record<string, ElementState> = {};
    for (const [id, e] of this.elements) {
      describe[id] = e.describeForStats();
      states[id] = elementState(e);
    }
    return { pipelines: this.pipelines.size, elements: this.elements.size, ...lag, processFaults: processFaultCounts(), describe, states };
  }

  private stateOf(id: string): ElementState | undefined {
    const e = this.elements.get(id);
    return e ? elementState(e) : undefined;
  }

  private pipelineStates(pid: string): Record<string, ElementState> {
    const out: Record<string, ElementState> = {};
    for (const id of this.pipelines.get(pid) ?? []) {
      const e = this.elements.get(id);
      if (e) out[id] = elementState(e);
    }
    return out;
  }
}

export function elementState(e: MediaElement): ElementState {
  const sdp = e instanceof SdpEndpoint ? e : undefined;
  const end = sdp?.endState();
  return {
    callEndpoint: sdp !== undefined,
    mediaLive: sdp?.mediaLive ?? false,
    endReason: end?.endReason,
    endedAt: end?.endedAt ?? 0,
    mediaState: end?.mediaState ?? 'DISCONNECTED',
    boundPorts: e.boundPorts(),
    connectedToCallEndpoint: e.connectedPeers().some((p) => p instanceof SdpEndpoint),
    childIds: e.childIds(),
    eventTags: e.eventTags(),
  };
}

function pipelineOf(id: string): string {
  const slash = id.indexOf('/');
  return slash < 0 ? id : id.slice(0, slash);
}

export function serializeError(err: unknown): SerializedError {
  if (err instanceof KurentoError) return { code: err.code, type: err.type, message: err.message };
  return { message: err instanceof Error ? err.message : String(err) };
}

/**
 * A relay worker's main, the same in a thread and in a child process: wire the channel to the control
 * plane, report lag every window, answer requests in arrival order per object.
 */
function runRelay(data: RelayWorkerData, post: (m: FromWorker) => void, onMessage: (fn: (m: ToWorker) => void) => void): void {
  const logger = createLogger('media.worker', { worker: data.workerId });
  // a stray exception or rejection is logged and counted as in the main thread; media keeps flowing
  process.on('uncaughtException', (err) => recordFault('uncaughtException', err, { worker: data.workerId }));
  process.on('unhandledRejection', (err) => recordFault('unhandledRejection', err, { worker: data.workerId }));
  const objects = new RelayWorkerObjects(data.config, post, logger);
  const lag = new EventLoopLag(data.config.lagWindowMs, (snapshot) => post({ k: 'lag', ...snapshot }));
  onMessage((m: ToWorker) => {
    if (m.k === 'mute') {
      objects.mute(m.ids);
      return;
    }
    if (m.k === 'crash') {
      logger.warn('relay worker exits at once (test hook)', {});
      process.exit(70);
    }
    if (m.k !== 'req') return;
    const { rid } = m;
    if (m.op === 'stats') {
      post({ k: 'res', rid, ok: true, value: objects.stats(lag.snapshot()) });
      return;
    }
    objects.handle(m).then(
      (r) => post({ k: 'res', rid, ok: true, value: r.value === undefined ? null : r.value, ...(r.states ? { states: r.states } : {}) }),
      (err: unknown) => post({ k: 'res', rid, ok: false, error: serializeError(err) }),
    );
  });
  logger.info('relay worker ready', { kind: parentPort ? 'thread' : 'process' });
  post({ k: 'ready' });
}

/**
 * A relay child process (FERRY_MEDIA_WORKER_KIND=process, relay-transport.ts): its first message is its
 * RelayWorkerData. ferry media stops it: the child exits when its IPC channel closes (ferry media closed
 * it, or died), and a terminal's Ctrl-C or a service manager's SIGTERM to the whole group is left to
 * ferry media, which ends its calls in order and then closes the channel.
 */
function runRelayProcess(): void {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => undefined);
  process.once('disconnect', () => {
    createLogger('media.worker', { pid: process.pid }).info('relay worker process exits: its channel to ferry media closed', {});
    process.exit(0);
  });
  const post = (m: FromWorker): void => {
    // a closed channel: ferry media is gone and 'disconnect' ends this process
    if (process.connected) process.send!(m, undefined, {}, () => undefined);
  };
  process.once('message', (first: ToRelayProcess) => {
    if (first.k !== 'init') {
      process.stderr.write('ferry relay worker: the first message was not init\n');
      process.exit(1);
    }
    runRelay(first.data, post, (fn) => process.on('message', fn as (m: unknown) => void));
  });
}

if (parentPort && (workerData as RelayWorkerData | undefined)?.module === __filename) {
  const port = parentPort;
  runRelay(workerData as RelayWorkerData, (m) => port.postMessage(m), (fn) => port.on('message', fn));
} else if (isMainThread && process.send && process.argv[2] === RELAY_PROCESS_FLAG) {
  runRelayProcess();
}
