import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { RtpPacket, SrtcpSession, SrtpSession } from 'werift';
import { deriveSessionKeys } from '../../src/media/srtp/key-derivation';
import { SrtpContext } from '../../src/media/srtp/srtp-context';
import { AEAD_AES_128_GCM } from '../../src/media/srtp/srtp-profile';
import { dtlsSrtpExportBytes, srtpMastersFromDtls } from '../../src/media/srtp/dtls-srtp-keys';
import { emptyReceiverReport as receiverReport } from '../helpers/rtcp-samples';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// RFC 7714 §16 and §17 (AEAD_AES_128_GCM): the vectors give the session key and salt directly.
const KEY = hex('000102030405060708090a0b0c0d0e0f');
const SALT = hex('517569642070726f2071756f'); // "Quid pro quo"
const vectorKeys = () => ({ rtp: { encryptionKey: KEY, authKey: Buffer.alloc(0), salt: SALT }, rtcp: { encryptionKey: KEY, authKey: Buffer.alloc(0), salt: SALT } });
// §16.1: SSRC 0x5501a0b2, ROC 0, SEQ 0xf17b, payload "Gallia est omnis divisa in partes tres"
const RTP_PLAIN = hex('8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973 20646976 69736120 696e2070 61727465 73207472 6573');
const RTP_PROTECTED = hex(
  '8040f17b 8041f8d3 5501a0b2 f24de3a3 fb34de6c acba861c 9d7e4bca be633bd5 0d294e6f 42a5f47a 51c7d19b 36de3adf 8833 899d7f27 beb16a91 52cf765e e4390cce',
);
// §17.1: a sender report from SSRC "Mars", SRTCP index 0x5d4, encrypted (E = 1)
const RTCP_PLAIN = hex('81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930 4c756e61 deadbeef deadbeef deadbeef deadbeef deadbeef');
const RTCP_PROTECTED = hex(
  '81c8000d 4d617273 63e94885 dcdab67c a727d766 2f6b7e99 7ff5c0f7 6c06f32d c676a5f1 730d6fda 4ce09b46 86303ded 0bb9275b c84aa458 96cf4d2f c5abf872 45d9eade 800005d4',
);

function rtp(seq: number, ssrc = 0x01020304, payload: Buffer = randomBytes(160)): Buffer {
  const head = Buffer.alloc(12);
  head[0] = 0x80;
  head.writeUInt16BE(seq & 0xffff, 2);
  head.writeUInt32BE((seq * 160) >>> 0, 4);
  head.writeUInt32BE(ssrc >>> 0, 8);
  return Buffer.concat([head, payload]);
}

describe('SRTP AEAD_AES_128_GCM (RFC 7714)', { timeout: 60_000 }, () => {
  test('RFC 7714 §16.1: the RTP packet protects to the vector and the vector unprotects to the packet', () => {
    const sender = SrtpContext.fromSessionKeys(vectorKeys(), 'AEAD_AES_128_GCM');
    const wire = sender.protectRtp(RTP_PLAIN);
    assert.equal(wire.toString('hex'), RTP_PROTECTED.toString('hex'));
    assert.equal(sender.rtpOverhead, 16);
    const receiver = SrtpContext.fromSessionKeys(vectorKeys(), 'AEAD_AES_128_GCM');
    const plain = receiver.unprotectRtp(Buffer.from(RTP_PROTECTED));
    assert.equal(plain?.toString('hex'), RTP_PLAIN.toString('hex'));
    assert.equal(receiver.lastRtpIndex, 0xf17b);
    assert.equal(receiver.receiveRoc(0x5501a0b2), 0);
  });

  test('RFC 7714 §17.1: the SRTCP packet (index 0x5d4, E flag set) protects to the vector and unprotects back', () => {
    const sender = SrtpContext.fromSessionKeys(vectorKeys(), 'AEAD_AES_128_GCM', { srtcpIndex: 0x5d4 });
    assert.equal(sender.protectRtcp(RTCP_PLAIN).toString('hex'), RTCP_PROTECTED.toString('hex'));
    assert.equal(sender.rtcpOverhead, 20);
    const receiver = SrtpContext.fromSessionKeys(vectorKeys(), 'AEAD_AES_128_GCM');
    assert.equal(receiver.unprotectRtcp(Buffer.from(RTCP_PROTECTED))?.toString('hex'), RTCP_PLAIN.toString('hex'));
    assert.equal(receiver.unprotectRtcp(Buffer.from(RTCP_PROTECTED)), undefined, 'the same index again is a replay');
    assert.equal(receiver.counters.replays, 1);
  });

  test('an unencrypted SRTCP packet (E = 0: the whole packet is AAD) is authenticated and returned as sent', () => {
    // Built here with node:crypto directly (RFC 7714 §9.2 layout), not with ferry's transform.
    const index = 0x5d5;
    const iv = Buffer.alloc(12);
    RTCP_PLAIN.copy(iv, 2, 4, 8);
    iv.writeUInt32BE(index, 8);
    for (let i = 0; i < 12; i++) iv[i]! ^= SALT[i]!;
    const word = Buffer.alloc(4);
    word.writeUInt32BE(index, 0);
    const c = createCipheriv('aes-128-gcm', KEY, iv);
    c.setAAD(Buffer.concat([RTCP_PLAIN, word]));
    c.final();
    const packet = Buffer.concat([RTCP_PLAIN, c.getAuthTag(), word]);
    const receiver = SrtpContext.fromSessionKeys(vectorKeys(), 'AEAD_AES_128_GCM');
    const tampered = Buffer.from(packet);
    tampered[20]! ^= 1;
    assert.equal(receiver.unprotectRtcp(tampered), undefined, 'a changed byte of the clear packet fails the tag');
    assert.equal(receiver.unprotectRtcp(packet)?.toString('hex'), RTCP_PLAIN.toString('hex'));
  });

  test('key derivation with a 96-bit master salt zero-pads it (RFC 7714 §11, as libsrtp): session salts are 12 bytes', () => {
    const keys = deriveSessionKeys(Buffer.from(Array.from({ length: 16 }, (_, i) => i)), Buffer.from(Array.from({ length: 12 }, (_, i) => 0x40 + i)), AEAD_AES_128_GCM);
    assert.equal(keys.rtp.salt.toString('hex'), '1fcd5d561e66dc49ec1c3ccb');
    assert.equal(keys.rtcp.salt.length, 12);
    assert.equal(keys.rtp.authKey.length, 0);
    assert.throws(() => new SrtpContext({ masterKey: randomBytes(16), masterSalt: randomBytes(14) }, 'AEAD_AES_128_GCM'), /12 bytes/);
  });

  test('interop: werift (an independent implementation, profile 0x0007) reads what we protect and we read what it protects, across the sequence wrap, and SRTCP', () => {
    const material = randomBytes(dtlsSrtpExportBytes(AEAD_AES_128_GCM));
    assert.equal(material.length, 56);
    const ours = srtpMastersFromDtls(material, 'server', AEAD_AES_128_GCM);
    const theirsKeys = srtpMastersFromDtls(material, 'client', AEAD_AES_128_GCM);
    const keys = {
      localMasterKey: theirsKeys.local.masterKey,
      localMasterSalt: theirsKeys.local.masterSalt,
      remoteMasterKey: theirsKeys.remote.masterKey,
      remoteMasterSalt: theirsKeys.remote.masterSalt,
    };
    const theirs = new SrtpSession({ keys, profile: 0x0007 });
    const theirsRtcp = new SrtcpSession({ keys, profile: 0x0007 });
    const fromThem = new SrtpContext(ours.remote, AEAD_AES_128_GCM);
    const toThem = new SrtpContext(ours.local, AEAD_AES_128_GCM);
    let inOk = 0;
    let outOk = 0;
    for (let n = 65_400; n < 65_400 + 300; n++) {
      const plain = rtp(n);
      const p = RtpPacket.deSerialize(plain);
      const protectedByThem = Buffer.from(theirs.encrypt(p.payload, p.header));
      assert.equal(protectedByThem.length, plain.length + 16);
      if (fromThem.unprotectRtp(protectedByThem)?.equals(plain)) inOk++;
      if (Buffer.from(theirs.decrypt(toThem.protectRtp(plain))).equals(plain)) outOk++;
    }
    assert.equal(inOk, 300);
    assert.equal(outOk, 300);
    assert.equal(fromThem.receiveRoc(0x01020304), 1, 'the wrap at 65 536 moved the ROC');
    for (let i = 0; i < 5; i++) {
      const rr = receiverReport(0xdeadbeef);
      assert.ok(fromThem.unprotectRtcp(Buffer.from(theirsRtcp.encrypt(rr)))?.equals(rr), 'SRTCP from werift');
      assert.ok(Buffer.from(theirsRtcp.decrypt(toThem.protectRtcp(rr))).equals(rr), 'SRTCP to werift');
    }
  });

  test('tampering with any byte of a GCM SRTP or SRTCP packet fails authentication and leaves it undecrypted', () => {
    const master = { masterKey: randomBytes(16), masterSalt: randomBytes(12) };
    const sender = new SrtpContext(master, 'AEAD_AES_128_GCM');
    const receiver = new SrtpContext(master, 'AEAD_AES_128_GCM');
    const wire = sender.protectRtp(rtp(1));
    for (let i = 0; i < wire.length; i++) {
      const t = Buffer.from(wire);
      t[i]! ^= 0x01;
      const before = Buffer.from(t);
      assert.equal(receiver.unprotectRtp(t), undefined, `byte ${i}`);
      assert.ok(t.equals(before), 'a refused packet is not decrypted');
    }
    const srtcp = sender.protectRtcp(receiverReport(9));
    for (let i = 0; i < srtcp.length; i++) {
      const t = Buffer.from(srtcp);
      t[i]! ^= 0x80;
      assert.equal(receiver.unprotectRtcp(t), undefined, `rtcp byte ${i}`);
    }
    assert.ok(receiver.counters.authFailures + receiver.counters.malformed + receiver.counters.replays >= wire.length + srtcp.length);
    assert.ok(receiver.unprotectRtp(wire), 'positive control: the untouched packet passes');
    assert.ok(receiver.unprotectRtcp(srtcp), 'positive control: the untouched SRTCP packet passes');
  });
  test('a datagram of any size UDP carries is protected and unprotected, and a forged one refused, never thrown', () => {
    const sender = SrtpContext.fromSessionKeys(vectorKeys(), 'AEAD_AES_128_GCM');
    const receiver = SrtpContext.fromSessionKeys(vectorKeys(), 'AEAD_AES_128_GCM');
    for (const [seq, size] of [[1, 2048], [2, 9000], [3, 65_400]] as const) {
      const plain = rtp(seq, 0x01020304, randomBytes(size));
      const wire = sender.protectRtp(plain);
      const forged = Buffer.from(wire);
      forged[forged.length - 1]! ^= 1;
      assert.equal(receiver.unprotectRtp(forged), undefined, `forged ${size}`);
      assert.ok(receiver.unprotectRtp(wire)?.equals(plain), `positive control: ${size} bytes round trip`);
    }
    assert.equal(receiver.counters.authFailures, 3);
    const hostile = Buffer.concat([rtp(9), randomBytes(60_000)]);
    assert.equal(receiver.unprotectRtp(hostile), undefined, 'a long unauthenticated datagram is refused');
  });
});
