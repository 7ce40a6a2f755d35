import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * RFC 3261 §22 / RFC 7616 MD5 digest authentication, server side, the cryptographic half: nonces
 * and the check of one Authorization header. A nonce is `<issue time>.<random>.<HMAC(key, time +
 * random + source address)>`: stateless, bound to the address it was issued to, usable for
 * `nonceLifetimeMs` (then `stale`). The random part makes every nonce unique, so clients behind one
 * address (an office behind NAT) challenged in the same millisecond never share a nonce, whose
 * counts would otherwise collide and look like replays. With several gateways a shared key lets a nonce from one be checked by another.
 * Which nonce counts (`nc`) were already used is the caller's business (SipAuthenticator, in the
 * state store): `verify` returns the count to claim.
 */
export interface DigestCredentials {
  username: string;
  realm: string;
  nonce: string;
  uri: string;
  response: string;
  algorithm?: string;
  qop?: string;
  nc?: string;
  cnonce?: string;
  opaque?: string;
}

/** What was wrong with an Authorization header (also the `kind` label of ferry_auth_failures_total). */
export type DigestFailure = 'wrong-realm' | 'unsupported' | 'uri-mismatch' | 'wrong-password' | 'bad-nc';

export type DigestCheck =
  | { ok: true; nc: number }
  | { ok: false; stale: true; why: 'stale-nonce' | 'foreign-nonce' }
  | { ok: false; stale: false; why: DigestFailure };

/** The request an Authorization header came with. */
export interface DigestRequest {
  method: string;
  /** the Request-URI, as received */
  uri: string;
  /** the source IP address */
  source: string;
}

/** bytes of randomness in every nonce (hex in the nonce) */
const NONCE_RANDOM_BYTES = 8;
const NONCE_RANDOM_FORM = new RegExp(`^[0-9a-f]{${NONCE_RANDOM_BYTES * 2}}$`);

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** the `uri` parameter names the Request-URI; only letter case of scheme and host may differ */
function sameUri(param: string, requestUri: string): boolean {
  if (param === requestUri) return true;
  const norm = (u: string): string => u.trim().replace(/^(sips?:)(?:([^@]*)@)?([^;:?>]+)/i, (_m, scheme: string, user: string | undefined, host: string) =>
    `${scheme.toLowerCase()}${user !== undefined ? `${user}@` : ''}${host.toLowerCase()}`);
  return norm(param) === norm(requestUri);
}

export class DigestAuth {
  private readonly key: Buffer;

  constructor(readonly realm: string, key?: Buffer, readonly nonceLifetimeMs = 30_000, private readonly now = () => Date.now()) {
    this.key = key ?? randomBytes(32);
  }

  /** value of WWW-Authenticate / Proxy-Authenticate for a request from `source` */
  challenge(source: string, stale = false): string {
    return `Digest realm="${this.realm}", nonce="${this.makeNonce(source)}", algorithm=MD5, qop="auth"${stale ? ', stale=true' : ''}`;
  }

  makeNonce(source: string): string {
    const ts = this.now().toString(16);
    const salt = randomBytes(NONCE_RANDOM_BYTES).toString('hex');
    return `${ts}.${salt}.${this.mac(ts, salt, source)}`;
  }

  /**
   * True when `nonce` is one this key made for `source` (whatever its age): whoever answers it received a
   * challenge at that address. An answer on any other nonce proves nothing about its sender: over UDP the
   * source address is forgeable and a forger needs no nonce at all to send one.
   */
  issuedTo(nonce: string, source: string): boolean {
    const [ts, salt, mac, extra] = nonce.split('.');
    return !!ts && !!salt && !!mac && extra === undefined && /^[0-9a-f]{1,13}$/.test(ts) && NONCE_RANDOM_FORM.test(salt)
      && sameText(mac, this.mac(ts, salt, source));
  }

  private mac(ts: string, salt: string, source: string): string {
    return createHmac('sha256', this.key).update(`${ts} ${salt} ${source}`).digest('hex').slice(0, 32);
  }

  /** parses an Authorization / Proxy-Authorization header; undefined when it is not Digest */
  static parse(header: string | undefined): DigestCredentials | undefined {
    if (!header || header.length > 4096) return undefined;
    const m = /^\s*Digest\s+(.*)$/is.exec(header);
    if (!m) return undefined;
    const params: Record<string, string> = {};
    const re = /([A-Za-z-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g;
    let p: RegExpExecArray | null;
    while ((p = re.exec(m[1]!))) params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
    const { username, realm, nonce, uri, response } = params;
    if (!username || realm === undefined || !nonce || !uri || !response) return undefined;
    return {
      username, realm, nonce, uri, response,
      ...(params.algorithm ? { algorithm: params.algorithm } : {}),
      ...(params.qop ? { qop: params.qop } : {}),
      ...(params.nc ? { nc: params.nc } : {}),
      ...(params.cnonce ? { cnonce: params.cnonce } : {}),
      ...(params.opaque ? { opaque: params.opaque } : {}),
    };
  }

  /**
   * Checks credentials against the request they came with and the caller's password. `ok` carries
   * the nonce count to claim (0 without qop: such a nonce is good for one request). A nonce that is
   * not ours (another key, another source address) or past its lifetime is `stale` when the response
   * was right: the client knows the password and only needs a fresh nonce (RFC 7616 §3.3), which is no
   * guess worth counting (e.g. every phone of a site after a gateway restart with a new key).
   */
  verify(creds: DigestCredentials, req: DigestRequest, password: string): DigestCheck {
    if (creds.realm !== this.realm) return { ok: false, stale: false, why: 'wrong-realm' };
    if (creds.algorithm && creds.algorithm.toUpperCase() !== 'MD5') return { ok: false, stale: false, why: 'unsupported' };
    if (creds.qop !== undefined && creds.qop.toLowerCase() !== 'auth') return { ok: false, stale: false, why: 'unsupported' };
    if (!sameUri(creds.uri, req.uri)) return { ok: false, stale: false, why: 'uri-mismatch' };
    let nc = 0;
    if (creds.qop) {
      if (!creds.nc || !/^[0-9a-fA-F]{8}$/.test(creds.nc) || !creds.cnonce) return { ok: false, stale: false, why: 'bad-nc' };
      nc = parseInt(creds.nc, 16);
      if (nc < 1) return { ok: false, stale: false, why: 'bad-nc' };
    }
    const ha1 = md5(`${creds.username}:${this.realm}:${password}`);
    const ha2 = md5(`${req.method}:${creds.uri}`);
    const want = creds.qop
      ? md5(`${ha1}:${creds.nonce}:${creds.nc}:${creds.cnonce}:${creds.qop}:${ha2}`)
      : md5(`${ha1}:${creds.nonce}:${ha2}`);
    if (!sameText(want, creds.response.toLowerCase())) return { ok: false, stale: false, why: 'wrong-password' };
    if (!this.issuedTo(creds.nonce, req.source)) return { ok: false, stale: true, why: 'foreign-nonce' };
    if (this.now() - parseInt(creds.nonce.split('.')[0]!, 16) > this.nonceLifetimeMs) return { ok: false, stale: true, why: 'stale-nonce' };
    return { ok: true, nc };
  }
}
