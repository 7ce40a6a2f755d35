import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { SipRequest, SipResponse } from '../message/sip-message';
import { parseNameAddr } from '../message/name-addr';
import { parseSipUri } from '../message/sip-uri';
import { formatVia, parseVia } from '../message/via';
import type { LocalAddress } from '../engine/local-address';
import type { Flow } from '../transport/flow';
import { proxyBranch } from './loop-detection';

/** What the forwarding helpers use of the engine's address. */
export type ProxyLocalAddress = Pick<LocalAddress, 'host' | 'port' | 'via'>;

/** The URI parameter that marks ferry sip's own Record-Route (and so the Route of later in-dialog requests). */
export const RECORD_ROUTE_MARK = 'ferry-rr';

/**
 * The value of the `ferry-rr` parameter: a MAC of the call's Call-ID under a key only this ferry sip
 * holds. A request is relayed only when its top Route carries the value for its own Call-ID, so a
 * stranger who writes `Route: <sip:ferry;lr;ferry-rr>` (or copies the Route of another call) cannot
 * make ferry sip forward a request of its choosing to an address of its choosing.
 */
export class RouteStamp {
  constructor(private readonly key: Buffer = randomBytes(32)) {}

  /** the stamp of the dialog with this Call-ID (128 bits, base64url) */
  of(callId: string): string {
    return createHmac('sha256', this.key).update(callId).digest('base64url').slice(0, 22);
  }

  /** true when `value` is the stamp of `callId` (compared in constant time) */
  matches(value: string | null | undefined, callId: string): boolean {
    if (!value) return false;
    const want = Buffer.from(this.of(callId));
    const got = Buffer.from(value);
    return got.length === want.length && timingSafeEqual(got, want);
  }
}

/** Our Record-Route for requests leaving over `flow`: `<sip:host:port[;transport=x];lr;ferry-rr=<stamp>>`. */
export function recordRouteFor(local: ProxyLocalAddress, flow: Flow, stamp: string): string {
  const t = flow.protocol === 'udp' ? '' : `;transport=${flow.protocol}`;
  return `<sip:${local.host(flow)}:${local.port(flow)}${t};lr;${RECORD_ROUTE_MARK}=${stamp}>`;
}

/**
 * True when a Route value is our own Record-Route coming back (top Route of an in-dialog request): one of
 * our hosts, and the stamp of the request's Call-ID (RouteStamp).
 */
export function isOurRoute(route: string | undefined, ourHosts: readonly string[], stamp: RouteStamp, callId: string): boolean {
  if (!route) return false;
  const uri = parseNameAddr(route)?.uri;
  const u = uri ? parseSipUri(uri) : undefined;
  return !!u && ourHosts.includes(u.host) && stamp.matches(u.params.get(RECORD_ROUTE_MARK), callId);
}

/** Our Via (fresh branch carrying the loop hash) on top of the request's own. */
export function pushOurVia(req: SipRequest, local: ProxyLocalAddress, flow: Flow, hash: string): void {
  const via = parseVia(local.via(flow));
  if (!via) throw new Error('engine Via is not parseable');
  via.params.set('branch', proxyBranch(hash));
  req.headers.prepend('Via', formatVia(via));
}

/** Max-Forwards decremented (RFC 3261 §16.6 step 3), or 70 when absent. */
export function decrementMaxForwards(req: SipRequest): void {
  const mf = req.headers.get('Max-Forwards');
  const n = mf !== undefined && /^\s*\d{1,10}\s*$/.test(mf) ? Number(mf) : undefined;
  req.headers.set('Max-Forwards', n === undefined ? '70' : String(Math.max(0, n - 1)));
}

/** A copy of a request (headers cloned, body shared: the proxy never changes it). */
export function copyRequest(req: SipRequest): SipRequest {
  return { kind: 'request', method: req.method, uri: req.uri, headers: req.headers.clone(), body: req.body };
}

/** A response on its way upstream: our Via (the top one) removed (RFC 3261 §16.7 step 3). */
export function withoutOurVia(res: SipResponse): SipResponse {
  const headers = res.headers.clone();
  headers.shift('Via');
  return { kind: 'response', status: res.status, reason: res.reason, headers, body: res.body };
}

export interface BranchRequestInput {
  /** the request as the proxy received it (Route already removed) */
  original: SipRequest;
  target: string;
  /** the original Request-URI names ferry sip itself: it is replaced by the target */
  replaceUri: boolean;
  recordRoute: boolean;
  /** the RouteStamp of the request's Call-ID, carried by our Record-Route */
  routeStamp?: string;
  appHeaders: ReadonlyArray<[string, string]>;
  hash: string;
}

/**
 * RFC 3261 §16.6: the copy of the request for one target. The Request-URI becomes the target when the
 * caller addressed ferry sip itself (as drachtio-server does; otherwise it is kept and the target is
 * only the next hop); Max-Forwards goes down by one; Record-Route (Path for REGISTER) when the app
 * stays in the dialog; the app's extra headers; our Via on top.
 */
export function buildBranchRequest(input: BranchRequestInput, local: ProxyLocalAddress, flow: Flow): SipRequest {
  const req = copyRequest(input.original);
  if (input.replaceUri) req.uri = input.target;
  decrementMaxForwards(req);
  if (input.recordRoute) {
    const rr = recordRouteFor(local, flow, input.routeStamp ?? '');
    if (req.method === 'REGISTER') {
      req.headers.prepend('Path', rr);
      const require = req.headers.getAll('Require');
      if (!require.some((r) => r.trim().toLowerCase() === 'path')) req.headers.append('Require', 'path');
    } else {
      req.headers.prepend('Record-Route', rr);
    }
  }
  for (const [name, value] of input.appHeaders) req.headers.set(name, value);
  pushOurVia(req, local, flow, input.hash);
  return req;
}
