import { MASTER_KEY_BYTES, MASTER_SALT_BYTES } from './key-derivation';
import type { SrtpMaster } from './srtp-context';

/** Bytes to export from a DTLS session for AES_CM_128_HMAC_SHA1_80 (RFC 5764 §4.2): two keys, two salts. */
export const DTLS_SRTP_EXPORT_BYTES = 2 * (MASTER_KEY_BYTES + MASTER_SALT_BYTES);
/** The exporter label of DTLS-SRTP (RFC 5764 §4.2). */
export const DTLS_SRTP_EXPORTER_LABEL = 'EXTRACTOR-dtls_srtp';

/**
 * Split DTLS-SRTP keying material (client key, server key, client salt, server salt) into the master
 * key and salt each side protects with: `local` for an SrtpContext that protects what we send,
 * `remote` for the one that unprotects what the peer sends. `role` is ours in the DTLS handshake.
 */
export function srtpMastersFromDtls(material: Buffer, role: 'client' | 'server'): { local: SrtpMaster; remote: SrtpMaster } {
  if (material.length !== DTLS_SRTP_EXPORT_BYTES) throw new Error(`DTLS-SRTP keying material must be ${DTLS_SRTP_EXPORT_BYTES} bytes, got ${material.length}`);
  const k = MASTER_KEY_BYTES;
  const s = MASTER_SALT_BYTES;
  const client = { masterKey: material.subarray(0, k), masterSalt: material.subarray(2 * k, 2 * k + s) };
  const server = { masterKey: material.subarray(k, 2 * k), masterSalt: material.subarray(2 * k + s, 2 * k + 2 * s) };
  return role === 'client' ? { local: client, remote: server } : { local: server, remote: client };
}
