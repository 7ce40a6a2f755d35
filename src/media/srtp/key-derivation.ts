import { AesCmKeystream } from './aes-cm-keystream';

export const MASTER_KEY_BYTES = 16;
export const MASTER_SALT_BYTES = 14;
export const AUTH_KEY_BYTES = 20;

/** Session keys of one direction of RTP or RTCP (RFC 3711 §4.3). */
export interface SessionKeys {
  /** AES-128 key k_e */
  encryptionKey: Buffer;
  /** HMAC-SHA1 key k_a */
  authKey: Buffer;
  /** 14-byte session salt k_s */
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
 */
export function deriveKey(masterKey: Buffer, masterSalt: Buffer, label: number, length: number): Buffer {
  checkMaster(masterKey, masterSalt);
  const iv = Buffer.alloc(16);
  masterSalt.copy(iv, 0);
  iv[7] ^= label; // key_id = label || r (r = 0) sits in the salt's low 56 bits: label is byte 7
  return new AesCmKeystream(masterKey).keystream(iv, length);
}

export function deriveSessionKeys(masterKey: Buffer, masterSalt: Buffer): { rtp: SessionKeys; rtcp: SessionKeys } {
  return {
    rtp: {
      encryptionKey: deriveKey(masterKey, masterSalt, Label.rtpEncryption, MASTER_KEY_BYTES),
      authKey: deriveKey(masterKey, masterSalt, Label.rtpAuth, AUTH_KEY_BYTES),
      salt: deriveKey(masterKey, masterSalt, Label.rtpSalt, MASTER_SALT_BYTES),
    },
    rtcp: {
      encryptionKey: deriveKey(masterKey, masterSalt, Label.rtcpEncryption, MASTER_KEY_BYTES),
      authKey: deriveKey(masterKey, masterSalt, Label.rtcpAuth, AUTH_KEY_BYTES),
      salt: deriveKey(masterKey, masterSalt, Label.rtcpSalt, MASTER_SALT_BYTES),
    },
  };
}

export function checkMaster(masterKey: Buffer, masterSalt: Buffer): void {
  if (masterKey.length !== MASTER_KEY_BYTES) throw new Error(`SRTP master key must be ${MASTER_KEY_BYTES} bytes, got ${masterKey.length}`);
  if (masterSalt.length !== MASTER_SALT_BYTES) throw new Error(`SRTP master salt must be ${MASTER_SALT_BYTES} bytes, got ${masterSalt.length}`);
}
