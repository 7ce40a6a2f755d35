import { createHash, randomBytes } from 'node:crypto';
import { tagOf } from '../message/name-addr';
import type { SipRequest } from '../message/sip-message';
import { parseVia } from '../message/via';

/** Every branch this proxy writes starts with this (RFC 3261 magic cookie + `fp`, ferry proxy). */
export const PROXY_BRANCH_PREFIX = 'z9hG4bKfp';

/**
 * RFC 3261 §16.6 step 8 / §16.3 step 4: a hash of the fields that identify a request as this proxy
 * received it (Request-URI, From and To tags, Call-ID, CSeq number, Route, Proxy-Require,
 * Proxy-Authorization). It goes into the branch of every request the proxy forwards; a request that
 * comes back carrying one of our Vias with the same hash has looped (a spiral, whose Request-URI
 * changed, has another hash and is forwarded).
 */
export function loopHash(req: SipRequest): string {
  const h = createHash('sha1');
  for (const part of [
    req.uri,
    tagOf(req.headers.get('From')) ?? '',
    tagOf(req.headers.get('To')) ?? '',
    req.headers.get('Call-ID') ?? '',
    (req.headers.get('CSeq') ?? '').trim().split(/\s+/)[0],
    req.headers.getAll('Route').join(','),
    req.headers.getAll('Proxy-Require').join(','),
    req.headers.getAll('Proxy-Authorization').join(','),
  ]) h.update(part).update('\n');
  return h.digest('hex').slice(0, 16);
}

/** A fresh branch for one forwarded copy of a request whose loop hash is `hash`. */
export function proxyBranch(hash: string): string {
  return `${PROXY_BRANCH_PREFIX}${hash}x${randomBytes(8).toString('hex')}`;
}

/** True when `req` already passed this proxy (a Via of `ourHost` with our branch and the same loop hash). */
export function isLoop(req: SipRequest, ourHost: string): boolean {
  const hash = loopHash(req);
  for (const v of req.headers.getAll('Via')) {
    const via = parseVia(v);
    const branch = via?.params.get('branch');
    if (!via || !branch || via.host !== ourHost) continue;
    if (branch.startsWith(`${PROXY_BRANCH_PREFIX}${hash}x`)) return true;
  }
  return false;
}
