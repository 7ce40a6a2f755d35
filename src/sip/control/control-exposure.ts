import { isLoopbackHost } from '../../common/listen-address';

/** drachtio-server's well-known default secret: every drachtio-srf example uses it. */
export const DEFAULT_CONTROL_SECRET = 'cymru';

/**
 * Why ferry sip must not start with this control address and secret, or undefined. The control port
 * lets an app place calls and read every SIP message: reachable from other hosts, it must not be
 * guarded by the secret everybody knows.
 */
export function controlExposureProblem(controlHost: string, secret: string): string | undefined {
  if (isLoopbackHost(controlHost)) return undefined;
  if (secret !== DEFAULT_CONTROL_SECRET) return undefined;
  return `the drachtio control port would listen on ${controlHost} (reachable from other hosts) with the default secret '${DEFAULT_CONTROL_SECRET}': set FERRY_SIP_SECRET to a secret of your own, or keep FERRY_SIP_CONTROL_HOST on 127.0.0.1`;
}
