import type { SrtpMaster } from './srtp-context';
import { AES_CM_128_HMAC_SHA1_80, type SrtpProfileSpec } from './srtp-profile';

/** The exporter label of DTLS-SRTP (RFC 5764 §4.2). */
export const DTLS_SRTP_EXPORTER_LABEL = 'EXTRACTOR-dtls_srtp';

/** Bytes to export from a DTLS session for `profile` (RFC 5764 §4.2): two master keys and two master salts. */
export function dtlsSrtpExportBytes(profile: SrtpProfileSpec): number {
  return 2 * (profile.keyBytes + profile.saltBytes);
}

/** For AES_CM_128_HMAC_SHA1_80: 60 bytes. */
export const DTLS_SRTP_EXPORT_BYTES = dtlsSrtpExportBytes(AES_CM_128_HMAC_SHA1_80);

/**
 * Split DTLS-SRTP keying material (client write key, server write key, client salt, server salt;
 * RFC 5764 §4.2, lengths by profile) into the master key and salt each side protects with: `local` for
 * an SrtpContext that protects what we send, `remote` for the one that unprotects what the peer sends.
 * `role` is ours in the DTLS handshake.
 */
export function srtpMastersFromDtls(
  material: Buffer,
  role: 'client' | 'server',
  profile: SrtpProfileSpec = AES_CM_128_HMAC_SHA1_80,
): { local: SrtpMaster; remote: SrtpMaster } {
  const bytes = dtlsSrtpExportBytes(profile);
  if (material.length !== bytes) throw new Error(`DTLS-SRTP keying material for ${profile.name} must be ${bytes} bytes, got ${material.length}`);
  const k = profile.keyBytes;
  const s = profile.saltBytes;
  const client = { masterKey: material.subarray(0, k), masterSalt: material.subarray(2 * k, 2 * k + s) };
  const server = { masterKey: material.subarray(k, 2 * k), masterSalt: material.subarray(2 * k + s, 2 * k + 2 * s) };
  return role === 'client' ? { local: client, remote: server } : { local: server, remote: client };
}
