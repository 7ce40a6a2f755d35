/**
 * A minimal registrar for drachtio-srf test apps: challenges every REGISTER without credentials
 * with a digest (401, MD5, qop=auth), checks the answer with node:crypto against one user/password,
 * and on success stores the Contact and answers 200 echoing it with its expiry.
 */
import { createHash, randomBytes } from 'node:crypto';
import type Srf from 'drachtio-srf';

export interface DigestRegistrarLog {
  challenges: number;
  accepted: number;
  rejected: string[];
  /** URI of the last accepted Contact. */
  contactUri?: string;
  /** Transport each REGISTER arrived on (srf's req.protocol). */
  protocols: string[];
}

const md5 = (s: string) => createHash('md5').update(s).digest('hex');

/** Parses `Digest k="v", k2=v2` into a map. */
export function parseDigest(header: string): Map<string, string> {
  const out = new Map<string, string>();
  const body = header.replace(/^\s*Digest\s+/i, '');
  const re = /([a-z0-9-]+)\s*=\s*(?:"([^"]*)"|([^,\s]*))/gi;
  let m: RegExpExecArray | null;
  while ((m = re.exec(body)) !== null) out.set(m[1].toLowerCase(), m[2] ?? m[3] ?? '');
  return out;
}

/** Installs `srf.use('register', …)` and returns the log it fills. */
export function installDigestRegistrar(srf: Srf, realm: string, user: string, password: string): DigestRegistrarLog {
  const log: DigestRegistrarLog = { challenges: 0, accepted: 0, rejected: [], protocols: [] };
  const nonces = new Set<string>();
  srf.use('register', (req: Srf.SrfRequest, res: Srf.SrfResponse) => {
    log.protocols.push(req.protocol);
    const authorization = req.get('Authorization');
    if (!authorization) {
      const nonce = randomBytes(16).toString('hex');
      nonces.add(nonce);
      log.challenges++;
      res.send(401, {
        headers: { 'WWW-Authenticate': `Digest realm="${realm}", nonce="${nonce}", algorithm=MD5, qop="auth"` },
      });
      return;
    }
    const d = parseDigest(authorization);
    const nonce = d.get('nonce') ?? '';
    const ha1 = md5(`${d.get('username')}:${realm}:${password}`);
    const ha2 = md5(`REGISTER:${d.get('uri')}`);
    const expected = md5(`${ha1}:${nonce}:${d.get('nc')}:${d.get('cnonce')}:${d.get('qop')}:${ha2}`);
    if (d.get('username') !== user || d.get('realm') !== realm || !nonces.has(nonce) || d.get('response') !== expected) {
      log.rejected.push(authorization);
      res.send(403);
      return;
    }
    const contactHeader = req.get('Contact');
    const contact = req.getParsedHeader('Contact')[0];
    const expires = req.get('Expires') || '600';
    if (expires !== '0') {
      log.accepted++;
      log.contactUri = contact.uri;
    }
    res.send(200, { headers: { Contact: `${contactHeader.replace(/;expires=\d+/i, '')};expires=${expires}`, Expires: expires } });
  });
  return log;
}
