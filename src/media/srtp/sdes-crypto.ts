import { randomBytes } from 'node:crypto';
import { MASTER_KEY_BYTES, MASTER_SALT_BYTES } from './key-derivation';
import type { SrtpMaster } from './srtp-context';

/** The one crypto suite ferry speaks (RFC 4568 §6.2.1). */
export const SDES_SUITE = 'AES_CM_128_HMAC_SHA1_80';

/** One `a=crypto:<tag> <suite> <key-params> [<session-params>]` line, as sdp-transform parses it. */
export interface CryptoAttribute {
  id: number;
  suite: string;
  config: string;
  sessionConfig?: string;
}

export interface SdesChoice {
  tag: number;
  master: SrtpMaster;
  /** The key-params text, to notice an unchanged key in a re-offer. */
  keyParams: string;
}

/**
 * Pick the offer's first usable crypto line (RFC 4568 §7.1.1): our suite, exactly one inline key of
 * 16 + 14 bytes, an optional lifetime (accepted: we never reach 2^31 packets on a call), no MKI (we
 * keep one key per direction), and no session parameter that would change the transform (only the
 * window size hint WSH is allowed). Lines with other suites are skipped. Returns why nothing fits.
 */
export function chooseSdesCrypto(lines: readonly CryptoAttribute[]): SdesChoice | { problem: string } {
  if (lines.length === 0) return { problem: 'no a=crypto line' };
  const problems: string[] = [];
  for (const line of lines) {
    if (String(line.suite) !== SDES_SUITE) {
      problems.push(`tag ${line.id}: suite ${String(line.suite)} not supported`);
      continue;
    }
    const tag = Number(line.id);
    if (!Number.isInteger(tag) || tag < 0 || tag > 999_999_999) {
      problems.push(`bad tag ${String(line.id)}`);
      continue;
    }
    const session = String(line.sessionConfig ?? '').trim();
    if (session !== '' && !session.split(/\s+/).every((p) => /^WSH=\d{1,9}$/.test(p))) {
      problems.push(`tag ${tag}: session parameters '${session.slice(0, 40)}' not supported`);
      continue;
    }
    const key = parseKeyParams(String(line.config ?? ''));
    if ('problem' in key) {
      problems.push(`tag ${tag}: ${key.problem}`);
      continue;
    }
    return { tag, master: key, keyParams: String(line.config) };
  }
  return { problem: problems.join('; ') };
}

function parseKeyParams(config: string): SrtpMaster | { problem: string } {
  if (config.includes(';')) return { problem: 'several keys (MKI) not supported' };
  const m = /^inline:([A-Za-z0-9+/]+={0,2})(?:\|([^|]*))?(?:\|([^|]*))?$/.exec(config.trim());
  if (!m) return { problem: 'key parameter is not inline:<base64>[|lifetime][|MKI:length]' };
  const [, b64, second, third] = m;
  let lifetime: string | undefined;
  let mki: string | undefined;
  if (third !== undefined) {
    lifetime = second;
    mki = third;
  } else if (second !== undefined) {
    if (second.includes(':')) mki = second;
    else lifetime = second;
  }
  if (mki !== undefined) return { problem: 'MKI not supported' };
  if (lifetime !== undefined && !/^(2\^\d{1,2}|\d{1,20})$/.test(lifetime)) return { problem: `bad key lifetime '${lifetime.slice(0, 20)}'` };
  const bytes = Buffer.from(b64!, 'base64');
  if (bytes.length !== MASTER_KEY_BYTES + MASTER_SALT_BYTES) return { problem: `key is ${bytes.length} bytes, need ${MASTER_KEY_BYTES + MASTER_SALT_BYTES}` };
  return { masterKey: bytes.subarray(0, MASTER_KEY_BYTES), masterSalt: bytes.subarray(MASTER_KEY_BYTES) };
}

/** A fresh random master key and salt. */
export function newSrtpMaster(): SrtpMaster {
  const b = randomBytes(MASTER_KEY_BYTES + MASTER_SALT_BYTES);
  return { masterKey: b.subarray(0, MASTER_KEY_BYTES), masterSalt: b.subarray(MASTER_KEY_BYTES) };
}

/** The value of our `a=crypto:` attribute (without `a=crypto:`). */
export function formatSdesCrypto(tag: number, master: SrtpMaster): string {
  return `${tag} ${SDES_SUITE} inline:${Buffer.concat([master.masterKey, master.masterSalt]).toString('base64')}`;
}
