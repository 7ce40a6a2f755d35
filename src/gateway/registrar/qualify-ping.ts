import type Srf from 'drachtio-srf';
import type { Clock } from '../../common/clock';
import type { PingOutcome, QualifyPing } from './qualify';

interface SentRequest {
  on(event: 'response', cb: (res: { status: number }) => void): void;
}

/** srf.request in its callback form (the 'response' listener is attached before any answer can arrive) */
type SrfRequestFn = (
  uri: string,
  opts: { method: string; headers: Record<string, string>; proxy?: string },
  callback: (err: Error | null, sent: SentRequest) => void,
) => void;

/**
 * The qualify ping over the SIP engine: an OPTIONS outside any dialog, through `srf.request`, to the
 * registration's Contact, sent through its NAT next hop when it has one (the way a call's INVITE goes).
 * Any response counts as an answer except `408`, the engine's own word that nothing answered. A
 * request the engine could not take (no control connection) is `not-sent`, and so is one still waiting
 * when the qualifier stops (its timer is cancelled then).
 */
export function srfQualifyPing(srf: Srf, clock: Clock, from: string): QualifyPing {
  const request = srf.request.bind(srf) as unknown as SrfRequestFn;
  return (target, timeoutMs, stopped) =>
    new Promise<PingOutcome>((resolve) => {
      let settled = false;
      const onStop = (): void => finish({ outcome: 'not-sent', why: 'qualify stopped' });
      const finish = (r: PingOutcome): void => {
        if (settled) return;
        settled = true;
        timer.cancel();
        stopped.removeEventListener('abort', onStop);
        resolve(r);
      };
      const timer = clock.setTimeout(() => finish({ outcome: 'no-answer' }), timeoutMs);
      if (stopped.aborted) return onStop();
      stopped.addEventListener('abort', onStop);
      const opts = {
        method: 'OPTIONS',
        headers: { From: `<${from}>`, To: `<${target.uri}>`, Accept: 'application/sdp' },
        ...(target.nextHop ? { proxy: target.nextHop } : {}),
      };
      try {
        request(target.uri, opts, (err, sent) => {
          if (err) return finish({ outcome: 'not-sent', why: err.message });
          sent.on('response', (res) => finish(res.status === 408 ? { outcome: 'no-answer' } : { outcome: 'answered', status: res.status }));
        });
      } catch (err) {
        finish({ outcome: 'not-sent', why: (err as Error).message });
      }
    });
}
