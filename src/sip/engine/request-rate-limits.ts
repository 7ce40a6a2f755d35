import { AddressList } from '../../common/address-list';
import type { Env } from '../../common/env';

/**
 * How fast one source may start new things in ferry sip: requests outside any dialog (no To tag) other than
 * ACK and CANCEL, each of which would open a server transaction and go to the app. A source is an IPv4
 * address or an IPv6 prefix (src/common/source-key.ts). Enforced by RequestRateGuard
 * (src/sip/engine/request-rate-guard.ts); docs/security.md "New requests per source".
 */
export interface RequestRateLimits {
  /** new requests one source may send per second on average (a token bucket); 0 = no limit */
  perSecond: number;
  /** ...and at once after a quiet spell (the bucket's size); 0 = no limit */
  burst: number;
  /** sources never limited (a trunk's SBC, a proxy in front of ferry sip): addresses and networks */
  exempt: AddressList;
  /** sources whose bucket is kept at most (memory bound; past it the least recently used is forgotten) */
  maxSources?: number;
}

/**
 * 100 new requests per second and 1000 at once per source. What a real site sends from one address stays
 * well below:
 * - 1000 phones behind one NAT re-registering every 60 s (a short expiry NAT'd phones use to keep their
 *   pinhole), each REGISTER challenged once: 2000 requests a minute, about 33 per second; if all 1000
 *   register within the same second (a site coming back after a power cut), the 1000 at once cover the
 *   first REGISTERs and the 100 per second the rest, and a phone whose REGISTER was dropped retransmits it
 *   (UDP, 0.5 s, 1 s, 2 s, 4 s later) and is registered within seconds;
 * - a PBX or SBC trunk carrying a busy call centre's new calls from one address: 100 new calls per second
 *   unchallenged (360 000 an hour), or 50 when each INVITE is challenged; carriers sell trunks of 10 to 30
 *   calls per second.
 * A flood from one address sends thousands per second: past the first 1000 it gets 100 per second, at most
 * about 3200 server transactions of that source alive at once (each lives 32 s) instead of the whole table.
 * A trunk above those numbers goes in FERRY_SIP_RATE_EXEMPT.
 */
export const DEFAULT_REQUEST_RATE: RequestRateLimits = { perSecond: 100, burst: 1000, exempt: AddressList.parse('') };

export const REQUESTS_PER_SOURCE_VARIABLE = 'FERRY_SIP_REQUESTS_PER_SOURCE_PER_SECOND';
export const REQUEST_BURST_VARIABLE = 'FERRY_SIP_REQUEST_BURST';
export const RATE_EXEMPT_VARIABLE = 'FERRY_SIP_RATE_EXEMPT';

/** True when the limits turn the limit off (either number 0). */
export function requestRateOff(limits: Pick<RequestRateLimits, 'perSecond' | 'burst'>): boolean {
  return limits.perSecond === 0 || limits.burst === 0;
}

/**
 * FERRY_SIP_REQUESTS_PER_SOURCE_PER_SECOND and FERRY_SIP_REQUEST_BURST (a whole number; 0 or `off` turns the
 * limit off), FERRY_SIP_RATE_EXEMPT (addresses and networks, comma- or space-separated). A bad value is an
 * Error whose message names the variable.
 */
export function requestRateFromEnv(env: Env = process.env): RequestRateLimits {
  const perSecond = rateNumber(REQUESTS_PER_SOURCE_VARIABLE, DEFAULT_REQUEST_RATE.perSecond, env);
  const burst = rateNumber(REQUEST_BURST_VARIABLE, DEFAULT_REQUEST_RATE.burst, env);
  const raw = env[RATE_EXEMPT_VARIABLE] ?? '';
  let exempt: AddressList;
  try {
    exempt = AddressList.parse(raw);
  } catch (err) {
    throw new Error(`environment variable ${RATE_EXEMPT_VARIABLE}=${JSON.stringify(raw)}: ${(err as Error).message}`);
  }
  return { perSecond, burst, exempt };
}

function rateNumber(name: string, fallback: number, env: Env): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const v = raw.trim();
  if (v.toLowerCase() === 'off') return 0;
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) {
    throw new Error(`environment variable ${name}=${JSON.stringify(raw)} is not a whole number of requests: use 1 or more, or 0 or off for no limit`);
  }
  return n;
}
