import { AesCmKeystream } from './aes-cm-keystream';
import { AES_CM_128_HMAC_SHA1_80, type SrtpProfileSpec } from './srtp-profile';

export const MASTER_KEY_BYTES = 16;
/** AES_CM_128_HMAC_SHA1_80's master salt (AEAD_AES_128_GCM's is 12 bytes: srtp-profile.ts). */
export const MASTER_SALT_BYTES = 14;
export const AUTH_KEY_BYTES = 20;

/** Session keys of one direction of RTP or RTCP (RFC 3711 §4.3, RFC 7714 §11). */
export interface SessionKeys {
  /** AES-128 key k_e */
  encryptionKey: Buffer;
  /** HMAC-SHA1 key k_a (20 bytes; empty for an AEAD profile) */
  authKey: Buffer;
  /** session salt k_s: 14 bytes (AES-CM) or 12 (GCM) */
  salt: Buffer;
}

/** RFC 3711 §4.3.2 labels. */
export const Label = {
  rtpEncryption: 0,
  rtpAuth: 1,
  rtpSalt: 2,
  rtcpEncryption: 3,
  rtcpAuth: 4,
  rtcpSalt: 5,
} as const;

/**
 * The SRTP key derivation function (RFC 3711 §4.3.1/§4.3.3) with key derivation rate 0 (the default
 * for SDES and DTLS-SRTP): x = (label << 48) XOR master salt, key = AES-CM(master key, x << 16).
 * A 12-byte (GCM) master salt is used zero-padded to 112 bits, as RFC 7714 §11 and libsrtp do.
 */
export function deriveKey(masterKey: Buffer, masterSalt: Buffer, label: number, length: number): Buffer {
  if (masterKey.length !== MASTER_KEY_BYTES) throw new Error(`SRTP master key must be ${MASTER_KEY_BYTES} bytes, got ${masterKey.length}`);
  if (masterSalt.length !== 14 && masterSalt.length !== 12) throw new Error(`SRTP master salt must be 14 or 12 bytes, got ${masterSalt.length}`);
  const iv = Buffer.alloc(16);
  masterSalt.copy(iv, 0);
  iv[7] ^= label; // key_id = label || r (r = 0) sits in the salt's low 56 bits: label is byte 7
  return new AesCmKeystream(masterKey).keystream(iv, length);
}

export function deriveSessionKeys(
  masterKey: Buffer,
  masterSalt: Buffer,
  profile: SrtpProfileSpec = AES_CM_128_HMAC_SHA1_80,
): { rtp: SessionKeys; rtcp: SessionKeys } {
  checkMaster(masterKey, masterSalt, profile);
  const auth = (label: number) => (profile.authKeyBytes > 0 ? deriveKey(masterKey, masterSalt, label, profile.authKeyBytes) : Buffer.alloc(0));
  return {
    rtp: {
      encryptionKey: deriveKey(masterKey, masterSalt, Label.rtpEncryption, profile.keyBytes),
      authKey: auth(Label.rtpAuth),
      salt: deriveKey(masterKey, masterSalt, Label.rtpSalt, profile.saltBytes),
    },
    rtcp: {
      encryptionKey: deriveKey(masterKey, masterSalt, Label.rtcpEncryption, profile.keyBytes),
      authKey: auth(Label.rtcpAuth),
      salt: deriveKey(masterKey, masterSalt, Label.rtcpSalt, profile.saltBytes),
    },
  };
}

export function checkMaster(masterKey: Buffer, masterSalt: Buffer, profile: SrtpProfileSpec = AES_CM_128_HMAC_SHA1_80): void {
  if (masterKey.length !== profile.keyBytes) throw new Error(`SRTP master key must be ${profile.keyBytes} bytes, got ${masterKey.length}`);
  if (masterSalt.length !== profile.saltBytes) throw new Error(`SRTP master salt must be ${profile.saltBytes} bytes for ${profile.name}, got ${masterSalt.length}`);
}
