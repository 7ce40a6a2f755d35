/**
 * The two SRTP protection profiles ferry speaks, with the lengths each fixes (RFC 3711, RFC 7714,
 * RFC 5764 §4.1.2). Browsers negotiate one of these over DTLS-SRTP; SDES on the phone leg uses the first.
 */
export type SrtpProfileName = 'AES_CM_128_HMAC_SHA1_80' | 'AEAD_AES_128_GCM';

export interface SrtpProfileSpec {
  name: SrtpProfileName;
  /** DTLS-SRTP protection profile id (RFC 5764 §4.1.2, RFC 7714 §14.2). */
  dtlsId: number;
  /** Master key bytes (and session encryption key bytes). */
  keyBytes: 16;
  /** Master salt bytes (and session salt bytes): 14 for AES-CM, 12 for GCM. */
  saltBytes: 14 | 12;
  /** Bytes the authentication tag adds to every SRTP packet: 10 (HMAC-SHA1-80) or 16 (GCM). */
  tagBytes: 10 | 16;
  /** HMAC-SHA1 session key bytes; 0 for an AEAD profile. */
  authKeyBytes: 20 | 0;
  aead: boolean;
}

export const AES_CM_128_HMAC_SHA1_80: SrtpProfileSpec = {
  name: 'AES_CM_128_HMAC_SHA1_80',
  dtlsId: 0x0001,
  keyBytes: 16,
  saltBytes: 14,
  tagBytes: 10,
  authKeyBytes: 20,
  aead: false,
};

export const AEAD_AES_128_GCM: SrtpProfileSpec = {
  name: 'AEAD_AES_128_GCM',
  dtlsId: 0x0007,
  keyBytes: 16,
  saltBytes: 12,
  tagBytes: 16,
  authKeyBytes: 0,
  aead: true,
};

export const SRTP_PROFILES: readonly SrtpProfileSpec[] = [AES_CM_128_HMAC_SHA1_80, AEAD_AES_128_GCM];

export function srtpProfile(name: SrtpProfileName): SrtpProfileSpec {
  return name === 'AEAD_AES_128_GCM' ? AEAD_AES_128_GCM : AES_CM_128_HMAC_SHA1_80;
}

/** The profile with this DTLS-SRTP id, or undefined for one ferry does not speak. */
export function srtpProfileByDtlsId(id: number | undefined): SrtpProfileSpec | undefined {
  return SRTP_PROFILES.find((p) => p.dtlsId === id);
}
