import { isLoopbackHost } from '../common/listen-address';
import type { SipConfig } from '../gateway/config/sip-config';
import { publishedPasswords } from '../gateway/registrar/published-passwords';

/**
 * `ferry start`'s one warning line when SIP (UDP/TCP/TLS and the WebSockets, FERRY_SIP_HOST else FERRY_HOST)
 * listens on a non-loopback address and a sip-config user or trunk still has one of the passwords of the
 * example sip-config shipped with ferry (printed in README.md; `published`, by default read from
 * sip-config/ferry.json): the gateway accepts those from this host only (docs/security.md, "Published
 * passwords"), so the phones and webphones of other hosts would get 403. Undefined otherwise.
 */
export function exampleCredentialsWarning(sip: Pick<SipConfig, 'users' | 'trunks'>, sipHost: string, configFile: string,
  published: ReadonlySet<string> = publishedPasswords()): string | undefined {
  if (isLoopbackHost(sipHost)) return undefined;
  const exposed = [
    ...sip.users.filter((u) => published.has(u.password)).map((u) => u.user),
    ...sip.trunks.filter((t) => t.inboundAuth && published.has(t.inboundAuth.password)).map((t) => `trunk ${t.name}`),
  ];
  if (exposed.length === 0) return undefined;
  return `ferry start: WARNING: SIP listens on ${sipHost}, reachable from other hosts, and ${configFile} gives ${exposed.join(', ')} ` +
    'the example passwords printed in README.md, which the gateway accepts from this host only (other hosts get 403): ' +
    'give them passwords of your own, or point FERRY_SIP_CONFIG at your own users';
}
