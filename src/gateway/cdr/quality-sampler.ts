import { Clock, TimerHandle } from '../../common/clock';
import { Side } from '../kurento/call-media';
import { kurentoCall } from '../kurento/kurento-call';
import { KCallback, KSdpEndpoint } from '../kurento/kurento-types';
import { endpointStatsFrom, legQuality, LegQuality } from './quality';

interface KStatsEndpoint {
  readonly id: string;
  getStats(mediaType: 'AUDIO', callback: KCallback<unknown>): void;
}

/**
 * getStats of both endpoints of a call (the one facing the caller, the one facing the callee) through
 * kurento-client, each bounded by `waitMs`: a media server that does not answer leaves that leg
 * without a sample, it never holds anything up.
 */
export async function sampleQuality(
  endpoints: Record<Side, KSdpEndpoint>,
  clock: Clock,
  waitMs: number,
  final: boolean,
): Promise<Partial<Record<Side, LegQuality>>> {
  const one = async (ep: KSdpEndpoint): Promise<LegQuality | undefined> => {
    let timer: TimerHandle | undefined;
    const timeout = new Promise<undefined>((r) => (timer = clock.setTimeout(() => r(undefined), waitMs)));
    const stats = kurentoCall<unknown>((cb) => (ep as unknown as KStatsEndpoint).getStats('AUDIO', cb)).then(
      (raw) => legQuality(ep.id, endpointStatsFrom(raw), clock.now(), final),
      () => undefined,
    );
    try {
      return await Promise.race([stats, timeout]);
    } finally {
      timer?.cancel();
    }
  };
  const [caller, callee] = await Promise.all([one(endpoints.caller), one(endpoints.callee)]);
  return { ...(caller ? { caller } : {}), ...(callee ? { callee } : {}) };
}
