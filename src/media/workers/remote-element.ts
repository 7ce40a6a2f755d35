import type { Clock } from '../../common/clock';
import { KurentoErrors } from '../errors/kurento-error';
import { MediaObject, type OperationParams } from '../objects/media-object';
import type { ObjectHost } from '../objects/object-context';
import type { LegEndReason } from '../relay/media-leg';
import type { ElementState } from './worker-protocol';

/** The part of a relay worker a remote element talks to (worker-pool.ts). */
export interface ElementWorker {
  readonly id: number;
  request(req: { op: 'invoke'; id: string; operation: string; params: Record<string, unknown> } | { op: 'teardown'; id: string; notifyPeer: boolean }): Promise<{ value: unknown; states?: Record<string, ElementState> }>;
  mute(ids: string[]): void;
}

/**
 * The control plane's handle on an element that lives in a relay worker: every operation goes to the
 * worker; what the lifecycle policy reads without waiting (media live? leg ended? bound ports? connected
 * to another endpoint?) is the state the worker sent with its last reply or event. When the worker
 * dies the element is `lost`: its teardown has nothing left to do.
 */
export class RemoteElement extends MediaObject {
  private muted = false;
  private lost = false;
  /** the element's /stats entry as of the last refresh (GET /stats refreshes it) */
  private statsEntry: Record<string, unknown>;

  constructor(
    id: string,
    type: string,
    host: ObjectHost,
    clock: Clock,
    pipelineId: string,
    readonly worker: ElementWorker,
    private state: ElementState,
    /** the states of the pipeline's elements a reply carries (an operation on one may change another: connect) */
    private readonly applyStates: (states: Record<string, ElementState> | undefined) => void,
  ) {
    super(id, type, host, clock, pipelineId);
    this.statsEntry = { id, type };
  }

  get callEndpoint(): boolean {
    return this.state.callEndpoint;
  }

  get mediaLive(): boolean {
    return this.state.mediaLive && !this.released && !this.lost;
  }

  get endReason(): LegEndReason | undefined {
    return this.state.endReason;
  }

  get connectedToCallEndpoint(): boolean {
    return this.state.connectedToCallEndpoint;
  }

  get isMuted(): boolean {
    return this.muted;
  }

  update(state: ElementState | undefined): void {
    if (state) this.state = state;
  }

  updateStats(entry: Record<string, unknown> | undefined): void {
    if (entry) this.statsEntry = entry;
  }

  /** The worker that held this element died: nothing is left to tear down. */
  markLost(): void {
    this.lost = true;
  }

  boundPorts(): number {
    return this.lost || this.released ? 0 : this.state.boundPorts;
  }

  describeForStats(): Record<string, unknown> {
    return this.statsEntry;
  }

  override childIds(): string[] {
    return this.state.childIds;
  }

  override muteEvents(): void {
    super.muteEvents();
    if (this.muted) return;
    this.muted = true;
    if (!this.lost) this.worker.mute([this.id]);
  }

  /** As SdpEndpoint.replayOnSubscribe, from the state the worker reported. */
  override replayOnSubscribe(type: string): Record<string, unknown> | undefined {
    const reason = this.state.endReason;
    if (!reason) return undefined;
    if (type === 'MediaSessionTerminated') return this.data(type, { reason }, this.state.endedAt);
    if (type === 'MediaStateChanged') return this.data(type, { oldState: 'CONNECTED', newState: 'DISCONNECTED', reason }, this.state.endedAt);
    return undefined;
  }

  /** As SdpEndpoint.releaseNotice: the end events of a leg that had not ended, `reason` control-release with `detail`. */
  releaseNotice(detail: string): { type: string; data: Record<string, unknown> }[] {
    if (!this.state.callEndpoint || this.state.endReason || this.released) return [];
    const at = this.clock.now();
    const notice: { type: string; data: Record<string, unknown> }[] = [];
    if (this.state.mediaState !== 'DISCONNECTED') {
      notice.push({ type: 'MediaStateChanged', data: this.data('MediaStateChanged', { oldState: this.state.mediaState, newState: 'DISCONNECTED', reason: 'control-release', detail }, at) });
    }
    notice.push({ type: 'MediaSessionTerminated', data: this.data('MediaSessionTerminated', { reason: 'control-release', detail }, at) });
    return notice;
  }

  override async invoke(operation: string, params: OperationParams): Promise<unknown> {
    if (this.lost || this.released) throw KurentoErrors.objectNotFound(this.id);
    const r = await this.worker.request({ op: 'invoke', id: this.id, operation, params });
    this.applyStates(r.states);
    return r.value;
  }

  override async teardown(options: { notifyPeer: boolean }): Promise<void> {
    if (this.released) return;
    if (!this.lost) {
      try {
        const r = await this.worker.request({ op: 'teardown', id: this.id, notifyPeer: options.notifyPeer });
        this.applyStates(r.states);
      } catch (err) {
        if (!this.lost) throw err; // the worker died meanwhile: its sockets went with it
      }
    }
    this.released = true;
  }

  private data(type: string, fields: Record<string, unknown>, at: number): Record<string, unknown> {
    return { source: this.id, tags: this.state.eventTags, timestampMillis: String(at), type, ...fields };
  }
}
