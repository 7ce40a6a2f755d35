import { createHash } from 'node:crypto';

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

/**
 * A client's digest answer (RFC 2617 / RFC 7616 MD5, qop=auth, cnonce c0ffee, realm ferry.local): the value of an
 * Authorization or Proxy-Authorization header answering `nonce` for `method` on `uri` with `user`'s `password`.
 */
export function digestAnswer(a: { method: string; uri: string; user: string; password: string; nonce: string; nc: string }): string {
  const response = md5(`${md5(`${a.user}:ferry.local:${a.password}`)}:${a.nonce}:${a.nc}:c0ffee:auth:${md5(`${a.method}:${a.uri}`)}`);
  return `Digest username="${a.user}", realm="ferry.local", nonce="${a.nonce}", uri="${a.uri}", response="${response}", qop=auth, nc=${a.nc}, cnonce="c0ffee"`;
}
