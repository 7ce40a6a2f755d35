import { isIP } from 'node:net';

/**
 * Checks an SDP body a party sent us before anything is parsed further, created or stored: size
 * and shape limits (so a hostile body costs one linear scan of at most 16 kB), then every address
 * and port the media server would send to (`c=`, `m=`, `a=rtcp`, `a=candidate`). A refusal names
 * one problem: a short code (the `problem` label of ferry_sdp_rejected_total) and a sentence for
 * the `Warning` header. docs/security.md "SDP validation" lists the rules.
 */
export const SDP_LIMITS = {
  maxBytes: 16 * 1024,
  maxLines: 200,
  maxLineLength: 1024,
  maxMediaSections: 8,
  /** ICE candidates in one m= section (a browser on a host with several interfaces sends ~10-20) */
  maxCandidatesPerMedia: 32,
} as const;

export type SdpProblem =
  | 'too-large'
  | 'too-many-lines'
  | 'line-too-long'
  | 'control-bytes'
  | 'malformed'
  | 'too-many-media'
  | 'too-many-candidates'
  | 'no-connection'
  | 'bad-address'
  | 'multicast'
  | 'loopback'
  | 'link-local'
  | 'reserved-address'
  | 'bad-port';

export type SdpCheck = { ok: true } | { ok: false; problem: SdpProblem; detail: string };

/**
 * Loopback media targets: `from-loopback` (default) accepts them only when the SIP of the party
 * that sent the SDP comes from a loopback address (a phone, webphone or test on this host); every
 * SDP of a call leg (offer, answer, re-offer, answer to our re-INVITE) is judged by that leg's SIP
 * source. `always` and `never` do what they say.
 */
export type LoopbackMediaRule = 'from-loopback' | 'always' | 'never';

export interface SdpValidationContext {
  /** where the SIP of the party that sent the SDP comes from (the leg's SIP source) */
  source: string;
  loopbackMedia: LoopbackMediaRule;
}

type AddressClass = 'unicast' | 'unspecified' | 'loopback' | 'multicast' | 'link-local' | 'reserved' | 'not-ip';

function ipv4Octets(a: string): number[] {
  return a.split('.').map(Number);
}

/**
 * The eight 16-bit groups of an IPv6 address that `isIP` accepted, whatever its spelling: `::` anywhere,
 * leading zeros, upper case, a dotted IPv4 tail (`::ffff:127.0.0.1`) and a zone (`%eth0`, dropped).
 */
function ipv6Groups(address: string): number[] {
  const text = address.toLowerCase().replace(/%.*$/, '');
  const toGroups = (part: string): number[] => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (g.includes('.')) {
        const [a, b, c, d] = ipv4Octets(g) as [number, number, number, number];
        out.push((a << 8) | b, (c << 8) | d);
      } else out.push(parseInt(g, 16));
    }
    return out;
  };
  const gap = text.indexOf('::');
  if (gap < 0) return toGroups(text);
  const head = toGroups(text.slice(0, gap));
  const tail = toGroups(text.slice(gap + 2));
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

/**
 * What kind of target an address is. An IPv6 address that carries an IPv4 address — mapped
 * (`::ffff:a.b.c.d`, in any spelling, `::ffff:7f00:1` too), translated (`::ffff:0:a.b.c.d`), compatible
 * (`::a.b.c.d`) or NAT64 (`64:ff9b::a.b.c.d`) — is judged as that IPv4 address: a dual-stack socket sends
 * to it there.
 */
export function classifyAddress(address: string): AddressClass {
  const kind = isIP(address);
  if (kind === 4) {
    const [a, b] = ipv4Octets(address) as [number, number, number, number];
    if (address === '0.0.0.0') return 'unspecified';
    if (a === 0) return 'reserved';
    if (a === 127) return 'loopback';
    if (a === 169 && b === 254) return 'link-local';
    if (a >= 224 && a <= 239) return 'multicast';
    if (a >= 240) return 'reserved';
    return 'unicast';
  }
  if (kind === 6) {
    const g = ipv6Groups(address);
    const zeros = (from: number, to: number): boolean => g.slice(from, to).every((x) => x === 0);
    const v4 = (): string => `${g[6]! >> 8}.${g[6]! & 255}.${g[7]! >> 8}.${g[7]! & 255}`;
    if (zeros(0, 8)) return 'unspecified';
    if (zeros(0, 7) && g[7] === 1) return 'loopback';
    if (zeros(0, 5) && g[5] === 0xffff) return classifyAddress(v4()); // mapped
    if (zeros(0, 4) && g[4] === 0xffff && g[5] === 0) return classifyAddress(v4()); // translated
    if (zeros(0, 6)) return classifyAddress(v4()); // compatible (deprecated)
    if (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) return classifyAddress(v4()); // NAT64
    if (g[0]! >> 8 === 0xff) return 'multicast';
    if ((g[0]! & 0xffc0) === 0xfe80) return 'link-local';
    return 'unicast';
  }
  return 'not-ip';
}

function isLoopbackSource(source: string): boolean {
  return classifyAddress(source) === 'loopback';
}

const fail = (problem: SdpProblem, detail: string): SdpCheck => ({ ok: false, problem, detail });

/**
 * `unspecifiedOk`: c=0.0.0.0 is RFC 2543 hold ("send me nothing"), which phones still send.
 * `linkLocalOk`: ICE agents list link-local candidates; ICE sends them only small paced connectivity
 * checks, and media only after one is answered, so they cannot aim a stream at anything.
 */
function checkTarget(address: string, what: string, ctx: SdpValidationContext, unspecifiedOk: boolean, linkLocalOk = false): SdpCheck {
  const cls = classifyAddress(address);
  switch (cls) {
    case 'unicast':
      return { ok: true };
    case 'unspecified':
      return unspecifiedOk ? { ok: true } : fail('bad-address', `${what} ${address} names no host`);
    case 'loopback': {
      const allowed = ctx.loopbackMedia === 'always' || (ctx.loopbackMedia === 'from-loopback' && isLoopbackSource(ctx.source));
      return allowed ? { ok: true } : fail('loopback', `${what} ${address} is a loopback address`);
    }
    case 'multicast':
      return fail('multicast', `${what} ${address} is a multicast address`);
    case 'link-local':
      return linkLocalOk ? { ok: true } : fail('link-local', `${what} ${address} is a link-local address`);
    case 'reserved':
      return fail('reserved-address', `${what} ${address} is a reserved address`);
    case 'not-ip':
      return fail('bad-address', `${what} ${address.slice(0, 40)} is not an IPv4 or IPv6 address`);
  }
}

function port(text: string | undefined, allowZero: boolean): number | undefined {
  if (text === undefined || !/^\d{1,5}$/.test(text)) return undefined;
  const n = Number(text);
  return n <= 65535 && (allowZero || n > 0) ? n : undefined;
}

/** `c=IN IP4 <addr>` / `c=IN IP6 <addr>`; a TTL or count suffix (`/127`) is multicast-only syntax */
function checkConnection(value: string, ctx: SdpValidationContext): SdpCheck {
  const m = /^IN (IP4|IP6) (\S+)$/.exec(value);
  if (!m) return fail('bad-address', `c=${value.slice(0, 40)} is not "IN IP4|IP6 <address>"`);
  const [, family, address] = m as unknown as [string, string, string];
  if (address.includes('/')) return fail('multicast', `c= ${address.slice(0, 40)} carries a multicast TTL/count`);
  const kind = isIP(address);
  if (kind !== 0 && (kind === 4) !== (family === 'IP4')) return fail('bad-address', `c= ${address} is not an ${family} address`);
  return checkTarget(address, 'c=', ctx, true);
}

/** `m=<media> <port>[/<count>] <proto> <fmt> ...` */
function checkMediaLine(value: string): SdpCheck {
  const m = /^(\S+) (\S+) (\S+)( \S+)*$/.exec(value);
  if (!m) return fail('malformed', `m=${value.slice(0, 40)} is malformed`);
  const [p, count] = m[2]!.split('/');
  if (port(p, true) === undefined) return fail('bad-port', `m= port ${m[2]!.slice(0, 12)} is not between 1 and 65535`);
  if (count !== undefined && (port(count, false) === undefined || Number(p) + Number(count) > 65536)) {
    return fail('bad-port', `m= port count ${count.slice(0, 12)} is out of range`);
  }
  return { ok: true };
}

/** `a=rtcp:<port> [IN IP4|IP6 <addr>]` (RFC 3605) */
function checkRtcp(value: string, ctx: SdpValidationContext): SdpCheck {
  const m = /^(\S+)(?: (.*))?$/.exec(value);
  if (!m || port(m[1], false) === undefined) return fail('bad-port', `a=rtcp port ${value.slice(0, 12)} is not between 1 and 65535`);
  return m[2] === undefined ? { ok: true } : checkConnection(m[2], ctx);
}

/** `a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ ...` (RFC 8839) */
function checkCandidate(value: string, ctx: SdpValidationContext): SdpCheck {
  const f = value.split(' ');
  if (f.length < 8 || f[6] !== 'typ') return fail('malformed', `a=candidate ${value.slice(0, 40)} is malformed`);
  const address = f[4]!;
  // TCP active candidates name port 9 or 0 (RFC 6544); mDNS host names (*.local) hide the address
  if (port(f[5], /^tcp$/i.test(f[2]!)) === undefined) return fail('bad-port', `a=candidate port ${f[5]!.slice(0, 12)} is not between 1 and 65535`);
  if (isIP(address) === 0) return /^[A-Za-z0-9-]{1,63}\.local$/.test(address) ? { ok: true } : fail('bad-address', `a=candidate address ${address.slice(0, 40)} is neither an IP address nor an mDNS name`);
  return checkTarget(address, 'a=candidate', ctx, false, true);
}

/**
 * Validates `sdp` (an offer or answer from a party). Linear in the body's length, never parses more
 * than the limits allow.
 */
export function validateSdp(sdp: string, ctx: SdpValidationContext): SdpCheck {
  if (typeof sdp !== 'string') return fail('malformed', 'no SDP body');
  if (sdp.length > SDP_LIMITS.maxBytes || Buffer.byteLength(sdp, 'utf8') > SDP_LIMITS.maxBytes) {
    return fail('too-large', `SDP body is larger than ${SDP_LIMITS.maxBytes} bytes`);
  }
  // eslint-disable-next-line no-control-regex
  const bad = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/.exec(sdp);
  if (bad) return fail('control-bytes', `SDP body contains a control byte (0x${bad[0].charCodeAt(0).toString(16).padStart(2, '0')})`);
  const lines = sdp.split(/\r?\n/);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  if (lines.length > SDP_LIMITS.maxLines) return fail('too-many-lines', `SDP body has more than ${SDP_LIMITS.maxLines} lines`);
  if (lines[0] !== 'v=0') return fail('malformed', 'SDP body does not start with v=0');

  let sessionConnection = false;
  let media = 0;
  let mediaActive = false;
  let mediaConnection = false;
  let candidates = 0;
  const missing = (): SdpCheck | undefined =>
    media > 0 && mediaActive && !mediaConnection && !sessionConnection ? fail('no-connection', `m= section ${media} has no c= line and there is no session-level c=`) : undefined;

  for (const line of lines) {
    if (line.length > SDP_LIMITS.maxLineLength) return fail('line-too-long', `an SDP line is longer than ${SDP_LIMITS.maxLineLength} bytes`);
    if (!/^[a-z]=/.test(line)) return fail('malformed', `SDP line "${line.slice(0, 20)}" is not <letter>=<value>`);
    const type = line[0];
    const value = line.slice(2);
    let check: SdpCheck = { ok: true };
    if (type === 'm') {
      const m = missing();
      if (m) return m;
      media++;
      if (media > SDP_LIMITS.maxMediaSections) return fail('too-many-media', `SDP has more than ${SDP_LIMITS.maxMediaSections} m= sections`);
      mediaConnection = false;
      candidates = 0;
      check = checkMediaLine(value);
      mediaActive = !/^\S+ 0(\/|\s)/.test(value);
    } else if (type === 'c') {
      check = checkConnection(value, ctx);
      if (media === 0) sessionConnection = true;
      else mediaConnection = true;
    } else if (type === 'a' && value.startsWith('rtcp:')) {
      check = checkRtcp(value.slice(5), ctx);
    } else if (type === 'a' && value.startsWith('candidate:')) {
      if (++candidates > SDP_LIMITS.maxCandidatesPerMedia) {
        return fail('too-many-candidates', `an SDP section has more than ${SDP_LIMITS.maxCandidatesPerMedia} ICE candidates`);
      }
      check = checkCandidate(value.slice(10), ctx);
    }
    if (!check.ok) return check;
  }
  if (media === 0) return fail('malformed', 'SDP has no m= section');
  return missing() ?? { ok: true };
}

/** the first `c=` address of an SDP (session or media level), if any */
export function connectionAddress(sdp: string): string | undefined {
  return /^c=IN IP[46] ([^\s/]+)/m.exec(sdp)?.[1];
}

/** FERRY_ALLOW_LOOPBACK_MEDIA: unset -> from-loopback, 1/true -> always, 0/false -> never */
export function parseLoopbackMediaRule(raw: string | undefined): LoopbackMediaRule | undefined {
  if (raw === undefined || raw === '' || raw === 'from-loopback') return 'from-loopback';
  if (raw === '1' || raw === 'true' || raw === 'always') return 'always';
  if (raw === '0' || raw === 'false' || raw === 'never') return 'never';
  return undefined;
}

const rejections = new Map<SdpProblem, number>();

/** counts a refusal (ferry_sdp_rejected_total{problem}) */
export function countSdpRejection(problem: SdpProblem): void {
  rejections.set(problem, (rejections.get(problem) ?? 0) + 1);
}

/** refusals since the process started, by problem */
export function sdpRejectionCounts(): ReadonlyMap<SdpProblem, number> {
  return new Map(rejections);
}

/** the `Warning` header value for a refusal (RFC 3261 20.43: code 399, our host, quoted text) */
export function sdpWarning(detail: string, host = 'ferry'): string {
  return `399 ${host} "${detail.replace(/["\\]/g, "'").replace(/[^\x20-\x7e]/g, '?').slice(0, 200)}"`;
}
