import { randomBytes } from 'node:crypto';
import { addressError, viaError } from './address-syntax';
import type { SipRequest, SipResponse } from './sip-message';
import { SipHeaders } from './sip-headers';
import { tagOf } from './name-addr';

/**
 * What ferry sip answers a new request from the network before any app sees it (RFC 3261 §8.2, the
 * checks RFC 4475's torture messages exercise). The parser has already refused what it cannot read
 * (400 or dropped); this looks at a request that parsed and decides, in the order of RFC 3261 §8.2:
 *
 * 1. 505 Version Not Supported: a Request-Line of another SIP version.
 * 2. 400 Bad Request: a header that must appear once appears twice (Call-ID, CSeq, From, To,
 *    Max-Forwards, Content-Length); malformed From/To/Contact/Route/Record-Route or Via; a top Via
 *    branch that is only the magic cookie `z9hG4bK`; a Request-URI in `<...>`, without a scheme, or a
 *    sip/sips Request-URI that is malformed or carries headers (`?...`); a REGISTER whose To is not a
 *    sip/sips URI.
 * 3. 501 Not Implemented: an extension method (not one of the methods ferry sip knows) outside a
 *    dialog that no connected app routes.
 * 4. 416 Unsupported URI Scheme: a Request-URI scheme other than sip, sips or tel.
 * 5. 420 Bad Extension with Unsupported: a Require option tag not in SUPPORTED_OPTION_TAGS (not for
 *    ACK and CANCEL, RFC 3261 §8.2.2.3, nor for a request with a Route header: that one is routed
 *    through ferry sip, and its Require is for the UAS further on).
 *
 * An ACK is never answered: the engine drops an ACK that fails these checks.
 */
export interface RequestRefusal {
  status: 400 | 416 | 420 | 501 | 505;
  reason: string;
  /** why, for the log */
  why: string;
  /** extra response headers (Unsupported on a 420) */
  headers: Array<[string, string]>;
}

export interface ValidationContext {
  /** true when a connected app routes this method (lower case, as apps route verbs) */
  routes(method: string): boolean;
}

/** Methods ferry sip knows; any other is an extension method, answered 501 when no app routes it. */
export const KNOWN_METHODS: ReadonlySet<string> = new Set([
  'INVITE', 'ACK', 'CANCEL', 'BYE', 'OPTIONS', 'REGISTER', 'PRACK', 'SUBSCRIBE', 'NOTIFY', 'PUBLISH', 'INFO',
  'REFER', 'MESSAGE', 'UPDATE',
]);

/**
 * Option tags a request may Require: those ferry sip handles itself (100rel) and those drachtio-srf
 * apps act on through the headers they see (session timers, Replaces, Path, outbound, GRUU, ...).
 */
export const SUPPORTED_OPTION_TAGS: ReadonlySet<string> = new Set([
  '100rel', 'timer', 'replaces', 'norefersub', 'path', 'outbound', 'gruu', 'tdialog', 'join', 'histinfo', 'from-change',
]);

const SUPPORTED_SCHEMES = new Set(['sip', 'sips', 'tel']);
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]{0,31}):/;
const SIP_HOSTPORT = /^(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9._-]{1,255})(:\d{1,5})?$/;
const SINGLE_HEADERS = ['Call-ID', 'CSeq', 'From', 'To', 'Max-Forwards', 'Content-Length'];
const ADDRESS_HEADERS = ['From', 'To', 'Contact', 'Route', 'Record-Route'];
const REASONS = { 400: 'Bad Request', 416: 'Unsupported URI Scheme', 420: 'Bad Extension', 501: 'Not Implemented', 505: 'Version Not Supported' } as const;

function refuse(status: RequestRefusal['status'], why: string, headers: Array<[string, string]> = []): RequestRefusal {
  const reason = status === 400 ? `Bad Request (${why.replace(/[^\x20-\x7e]/g, ' ').slice(0, 80)})` : REASONS[status];
  return { status, reason, why, headers };
}

/** The answer a new network request gets instead of going to an app, or undefined when it may go on. */
export function validateRequest(req: SipRequest, ctx: ValidationContext): RequestRefusal | undefined {
  if (req.version !== undefined && req.version !== 'SIP/2.0') return refuse(505, `SIP version ${req.version}`);
  const syntax = syntaxError(req);
  if (syntax) return refuse(400, syntax);
  const outOfDialog = !tagOf(req.headers.get('To'));
  if (outOfDialog && !KNOWN_METHODS.has(req.method) && !ctx.routes(req.method.toLowerCase())) {
    return refuse(501, `no app routes the extension method ${req.method.slice(0, 40)}`);
  }
  const scheme = SCHEME.exec(req.uri)![1].toLowerCase();
  if (!SUPPORTED_SCHEMES.has(scheme)) return refuse(416, `Request-URI scheme ${scheme}`);
  // a request with a Route set passes through ferry sip as a proxy hop (an app relays it with srf.proxyRequest):
  // Require is for its UAS downstream, not for a proxy (RFC 3261 §16.3)
  if (req.method !== 'ACK' && req.method !== 'CANCEL' && !req.headers.has('Route')) {
    const unsupported = req.headers.getAll('Require').map((t) => t.trim()).filter((t) => t && !SUPPORTED_OPTION_TAGS.has(t.toLowerCase()));
    if (unsupported.length) return refuse(420, `Require ${unsupported.join(', ')}`, [['Unsupported', unsupported.join(', ')]]);
  }
  return undefined;
}

function syntaxError(req: SipRequest): string | undefined {
  const counts = new Map<string, number>();
  for (const h of req.headers.list()) counts.set(h.name, (counts.get(h.name) ?? 0) + 1);
  for (const name of SINGLE_HEADERS) if ((counts.get(name) ?? 0) > 1) return `more than one ${name}`;

  const uriError = requestUriError(req.uri);
  if (uriError) return uriError;

  const vias = req.headers.getAll('Via');
  for (const via of vias) {
    const bad = viaError(via);
    if (bad) return bad;
  }
  if (/;\s*branch\s*=\s*z9hG4bK\s*(;|$)/.test(vias[0] ?? '')) return 'top Via branch is only the magic cookie';

  for (const name of ADDRESS_HEADERS) {
    for (const value of req.headers.getAll(name)) {
      const bad = addressError(value);
      if (bad) return `${name}: ${bad}`;
    }
  }
  if (req.method === 'REGISTER') {
    const to = req.headers.get('To') ?? '';
    const lt = to.indexOf('<');
    const uri = (lt >= 0 ? to.slice(lt + 1) : to).trim();
    if (!/^sips?:/i.test(uri)) return 'the To of a REGISTER is not a sip or sips URI';
  }
  return undefined;
}

function requestUriError(uri: string): string | undefined {
  if (uri.startsWith('<')) return 'Request-URI enclosed in <>';
  const m = SCHEME.exec(uri);
  if (!m) return 'Request-URI without a scheme';
  const scheme = m[1].toLowerCase();
  if (scheme !== 'sip' && scheme !== 'sips') return undefined;
  const rest = uri.slice(m[0].length);
  // the user part may hold ? ; / (user-unreserved): look for headers and parameters after the last @
  const at = rest.lastIndexOf('@');
  if (at === 0) return 'Request-URI with an empty user part';
  const hostPart = rest.slice(at + 1);
  if (hostPart.includes('?')) return 'Request-URI with headers';
  const semi = hostPart.indexOf(';');
  const hostport = semi < 0 ? hostPart : hostPart.slice(0, semi);
  if (!SIP_HOSTPORT.test(hostport)) return 'malformed Request-URI host';
  if (semi >= 0 && hostPart.slice(semi).split(';').slice(1).some((p) => !p || p.startsWith('='))) return 'empty Request-URI parameter';
  return undefined;
}

/** The response that carries a refusal: Via, From, To (with a new tag), Call-ID and CSeq of the request, and the refusal's headers. */
export function refusalResponse(req: SipRequest, refusal: RequestRefusal): SipResponse {
  const h = new SipHeaders();
  for (const v of req.headers.getAll('Via')) h.append('Via', v);
  h.append('From', req.headers.get('From') ?? '');
  const to = req.headers.get('To') ?? '';
  h.append('To', tagOf(to) ? to : `${to};tag=${randomBytes(8).toString('hex')}`);
  h.append('Call-ID', req.headers.get('Call-ID') ?? '');
  h.append('CSeq', req.headers.get('CSeq') ?? '');
  for (const [name, value] of refusal.headers) h.append(name, value);
  return { kind: 'response', status: refusal.status, reason: refusal.reason, headers: h, body: Buffer.alloc(0) };
}
