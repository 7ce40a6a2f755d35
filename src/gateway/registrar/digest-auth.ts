import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * RFC 2617 / RFC 3261 §22 MD5 digest authentication, server side. Nonces are stateless
 * (timestamp + HMAC under a per-process key), so any request may carry any earlier nonce of ours
 * until it goes stale; with several gateways a shared key lets a nonce from one be accepted by
 * another (pass `key`).
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

export type DigestCheck = { ok: true } | { ok: false; stale: boolean; why: string };

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

export class DigestAuth {
  private readonly key: Buffer;

  constructor(readonly realm: string, key?: Buffer, private readonly nonceLifetimeMs = 300_000, private readonly now = () => Date.now()) {
    this.key = key ?? randomBytes(32);
  }

  /** value of WWW-Authenticate / Proxy-Authenticate */
  challenge(stale = false): string {
    return `Digest realm="${this.realm}", nonce="${this.makeNonce()}", algorithm=MD5, qop="auth"${stale ? ', stale=true' : ''}`;
  }

  makeNonce(): string {
    const ts = this.now().toString(16);
    const mac = createHmac('sha256', this.key).update(ts).digest('hex').slice(0, 32);
    return `${ts}.${mac}`;
  }

  /** parses an Authorization / Proxy-Authorization header; undefined when it is not Digest */
  static parse(header: string | undefined): DigestCredentials | undefined {
    if (!header) return undefined;
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

  verify(creds: DigestCredentials, method: string, password: string): DigestCheck {
    if (creds.realm !== this.realm) return { ok: false, stale: false, why: 'wrong realm' };
    if (creds.algorithm && creds.algorithm.toUpperCase() !== 'MD5') return { ok: false, stale: false, why: 'unsupported algorithm' };
    const [ts, mac] = creds.nonce.split('.');
    if (!ts || !mac || !/^[0-9a-f]+$/.test(ts)) return { ok: false, stale: false, why: 'foreign nonce' };
    const expect = createHmac('sha256', this.key).update(ts).digest('hex').slice(0, 32);
    if (mac.length !== expect.length || !timingSafeEqual(Buffer.from(mac), Buffer.from(expect))) return { ok: false, stale: false, why: 'foreign nonce' };
    const ha1 = md5(`${creds.username}:${this.realm}:${password}`);
    const ha2 = md5(`${method}:${creds.uri}`);
    const want = creds.qop
      ? md5(`${ha1}:${creds.nonce}:${creds.nc ?? ''}:${creds.cnonce ?? ''}:${creds.qop}:${ha2}`)
      : md5(`${ha1}:${creds.nonce}:${ha2}`);
    if (want.length !== creds.response.length || !timingSafeEqual(Buffer.from(want), Buffer.from(creds.response.toLowerCase()))) {
      return { ok: false, stale: false, why: 'wrong credentials' };
    }
    if (this.now() - parseInt(ts, 16) > this.nonceLifetimeMs) return { ok: false, stale: true, why: 'stale nonce' };
    return { ok: true };
  }
}
