import { Clock, TimerHandle } from '../../common/clock';
import { Logger } from '../../common/logger';
import { guarded } from '../../common/process-faults';
import { Call } from '../calls/call';
import { CallRegistry } from '../calls/call-registry';
import { MediaConnection } from './media-connection';
import { probeMediaObject } from './media-object-probe';

export interface MediaLossMonitorDeps {
  media: MediaConnection;
  registry: CallRegistry;
  clock: Clock;
  log: Logger;
  /** a lost media server that is not back within this long takes every live call with it */
  graceMs: number;
  /** how long one check of a call's objects may take after a reconnection */
  probeTimeoutMs?: number;
}

/**
 * What the gateway does when it loses a media server (one monitor per server): a call's media is only as alive as its
 * pipeline, and nobody else would tell the parties (ferry sip keeps the dialogs up).
 * - The media server comes back within `graceMs`: every live call's pipeline and endpoints are
 *   checked by id; a call whose objects are gone (a restarted server) ends with `media-lost`, both
 *   parties BYEd at once; a call whose objects survived (a mere control-connection blip) goes on.
 * - It does not come back within `graceMs`: every live call ends with `media-lost`.
 * Calls still being set up are left to their own requests, which fail without a media server.
 */
export class MediaLossMonitor {
  private graceTimer: TimerHandle | undefined;
  private readonly probeTimeoutMs: number;

  constructor(private readonly d: MediaLossMonitorDeps) {
    this.probeTimeoutMs = d.probeTimeoutMs ?? 800;
  }

  start(): void {
    this.d.media.on('lost', this.onLost);
    this.d.media.on('restored', this.onRestored);
  }

  stop(): void {
    this.d.media.off('lost', this.onLost);
    this.d.media.off('restored', this.onRestored);
    this.graceTimer?.cancel();
    this.graceTimer = undefined;
  }

  /** the answered calls whose pipeline is on this monitor's media server (with several, the others' calls are not touched) */
  private liveCalls(): Call[] {
    return this.d.registry.all().filter((c) => c.media !== undefined && c.media.connection === this.d.media && !c.isEnding && c.state === 'answered');
  }

  private readonly onLost = (): void => {
    this.graceTimer?.cancel();
    const calls = this.liveCalls().length;
    this.d.log.warn('media server lost', { url: this.d.media.url, liveCalls: calls, graceMs: this.d.graceMs });
    this.graceTimer = this.d.clock.setTimeout(
      guarded('gateway.media-loss-grace', () => {
        this.graceTimer = undefined;
        if (this.d.media.isUp) return;
        for (const call of this.liveCalls()) this.end(call, `media server unreachable for ${this.d.graceMs} ms`);
      }),
      this.d.graceMs,
    );
  };

  private readonly onRestored = (sameSession: boolean): void => {
    this.graceTimer?.cancel();
    this.graceTimer = undefined;
    const calls = this.liveCalls();
    this.d.log.info('media server back: checking live calls', { url: this.d.media.url, liveCalls: calls.length, sameSession });
    for (const call of calls) void this.check(call).catch((err: Error) => this.d.log.warn('media check failed', { callId: call.record.id, err: err.message }));
  };

  /** end the call unless its pipeline and both endpoints are still on the media server */
  private async check(call: Call): Promise<void> {
    const media = call.media;
    if (!media) return;
    const results = await Promise.all([media.pipeline, media.caller, media.callee].map((o) => probeMediaObject(o, this.probeTimeoutMs)));
    const missing = results.filter((r) => !r.present).map((r) => (r.present ? '' : r.detail));
    if (missing.length === 0) {
      call.note('media-check', 'pipeline and endpoints survived the media server reconnection');
      void call.persist();
      return;
    }
    this.end(call, `after reconnecting: ${missing.join('; ')}`);
  }

  private end(call: Call, detail: string): void {
    if (call.isEnding) return;
    call.note('media-lost', detail);
    void call.end('media-lost', 'media');
  }
}
