import { isLoopbackHost } from '../common/listen-address';
import type { SipConfig } from '../gateway/config/sip-config';

/**
 * The users shipped in sip-config/ferry.json, whose passwords README.md prints: fine while SIP listens on
 * loopback (the quick start), anyone's once it is reachable from other hosts.
 */
export const EXAMPLE_CREDENTIALS: ReadonlyArray<{ user: string; password: string }> = [
  { user: 'alice', password: 'alice-secret' },
  { user: 'bob', password: 'bob-secret' },
  { user: '1001', password: 'desk-1001-secret' },
];

/**
 * `ferry start`'s one warning line when SIP (UDP/TCP/TLS and the WebSockets, FERRY_SIP_HOST else FERRY_HOST)
 * listens on a non-loopback address and the sip-config still has a user with its example password;
 * undefined otherwise.
 */
export function exampleCredentialsWarning(sip: Pick<SipConfig, 'users'>, sipHost: string, configFile: string): string | undefined {
  if (isLoopbackHost(sipHost)) return undefined;
  const exposed = sip.users.filter((u) => EXAMPLE_CREDENTIALS.some((e) => e.user === u.user && e.password === u.password)).map((u) => u.user);
  if (exposed.length === 0) return undefined;
  return `ferry start: WARNING: SIP listens on ${sipHost}, reachable from other hosts, and ${configFile} gives ${exposed.join(', ')} ` +
    'the example passwords printed in README.md, which everyone knows: give them passwords of your own, ' +
    'or point FERRY_SIP_CONFIG at your own users';
}
