import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { RtpPacket, SrtcpSession, SrtpSession } from 'werift';
import { AesCmKeystream } from '../../src/media/srtp/aes-cm-keystream';
import { deriveKey, Label } from '../../src/media/srtp/key-derivation';
import { SRTP_AUTH_TAG_BYTES, SrtpContext, estimateIndex } from '../../src/media/srtp/srtp-context';
import { srtpMastersFromDtls } from '../../src/media/srtp/dtls-srtp-keys';
import { rng } from '../helpers/seeded-random';
import { emptyReceiverReport as receiverReport } from '../helpers/rtcp-samples';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function rtp(seq: number, ssrc = 0x01020304, payload: Buffer = randomBytes(160), opts: { csrcs?: number; extWords?: number } = {}): Buffer {
  const csrcs = opts.csrcs ?? 0;
  const ext = opts.extWords;
  const head = Buffer.alloc(12 + csrcs * 4 + (ext !== undefined ? 4 + ext * 4 : 0));
  head[0] = 0x80 | csrcs | (ext !== undefined ? 0x10 : 0);
  head[1] = 0;
  head.writeUInt16BE(seq & 0xffff, 2);
  head.writeUInt32BE((seq * 160) >>> 0, 4);
  head.writeUInt32BE(ssrc >>> 0, 8);
  for (let i = 0; i < csrcs; i++) head.writeUInt32BE(0xc0000000 + i, 12 + i * 4);
  if (ext !== undefined) {
    const o = 12 + csrcs * 4;
    head.writeUInt16BE(0xbede, o);
    head.writeUInt16BE(ext, o + 2);
    for (let i = 0; i < ext * 4; i++) head[o + 4 + i] = 0xa0 + i;
  }
  return Buffer.concat([head, payload]);
}

function pair(): { sender: SrtpContext; receiver: SrtpContext } {
  const master = { masterKey: randomBytes(16), masterSalt: randomBytes(14) };
  return { sender: new SrtpContext(master), receiver: new SrtpContext(master) };
}

describe('SRTP (RFC 3711) AES_CM_128_HMAC_SHA1_80', { timeout: 120_000 }, () => {
  test('AES-CM keystream equals RFC 3711 B.2 (first three and last three blocks of 65282)', () => {
    const cm = new AesCmKeystream(hex('2B7E151628AED2A6ABF7158809CF4F3C'));
    const ks = cm.keystream(hex('F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000'), 65282 * 16);
    assert.equal(ks.subarray(0, 48).toString('hex').toUpperCase(), 'E03EAD0935C95E80E166B16DD92B4EB4D23513162B02D0F72A43A2FE4A5F97AB41E95B3BB0A2E8DD477901E4FCA894C0');
    assert.equal(ks.subarray(0xfeff * 16).toString('hex').toUpperCase(), 'EC8CDF7398607CB0F2D21675EA9EA1E4362B7C3C6773516318A077D7FC5073AE6A2CC3787889374FBEB4C81B17BA6C44');
  });

  test('keystreams of different keys share the thread\'s counter blocks: interleaved use equals each alone, against AES-CTR', () => {
    const keys = [randomBytes(16), randomBytes(16), randomBytes(16)];
    const streams = keys.map((k) => new AesCmKeystream(k));
    for (let round = 0; round < 50; round++) {
      for (const [i, cm] of streams.entries()) {
        const iv = randomBytes(16);
        iv[14] = 0;
        iv[15] = 0;
        const length = 1 + ((round * 37 + i * 11) % 3000);
        const ctr = createCipheriv('aes-128-ctr', keys[i]!, iv);
        assert.deepEqual(cm.keystream(iv, length), ctr.update(Buffer.alloc(length)), `key ${i}, ${length} bytes`);
      }
    }
  });

  test('key derivation equals RFC 3711 B.3 (cipher key, salt, auth key)', () => {
    const mk = hex('E1F97A0D3E018BE0D64FA32C06DE4139');
    const ms = hex('0EC675AD498AFEEBB6960B3AABE6');
    assert.equal(deriveKey(mk, ms, Label.rtpEncryption, 16).toString('hex').toUpperCase(), 'C61E7A93744F39EE10734AFE3FF7A087');
    assert.equal(deriveKey(mk, ms, Label.rtpSalt, 14).toString('hex').toUpperCase(), '30CBBC08863D8C85D49DB34A9AE1');
    assert.equal(deriveKey(mk, ms, Label.rtpAuth, 94).toString('hex').toUpperCase(),
      'CEBE321F6FF7716B6FD4AB49AF256A156D38BAA48F0A0ACF3C34E2359E6CDBCEE049646C43D9327AD175578EF72270986371C10C9A369AC2F94A8C5FBCDDDC256D6E919A48B610EF17C2041E474035766B68642C59BBFC2F34DB60DBDFB2');
    assert.throws(() => deriveKey(mk.subarray(0, 15), ms, 0, 16), /16 bytes/);
  });

  test('interop: werift (an independent implementation) reads what we protect and we read what it protects, RTP across the sequence wrap and RTCP', () => {
    const a = { key: randomBytes(16), salt: randomBytes(14) };
    const b = { key: randomBytes(16), salt: randomBytes(14) };
    const keys = { localMasterKey: a.key, localMasterSalt: a.salt, remoteMasterKey: b.key, remoteMasterSalt: b.salt };
    const theirs = new SrtpSession({ keys, profile: 1 });
    const theirsRtcp = new SrtcpSession({ keys, profile: 1 });
    const fromThem = new SrtpContext({ masterKey: a.key, masterSalt: a.salt });
    const toThem = new SrtpContext({ masterKey: b.key, masterSalt: b.salt });
    let inOk = 0;
    let outOk = 0;
    for (let n = 65_400; n < 65_400 + 300; n++) {
      const plain = rtp(n);
      const p = RtpPacket.deSerialize(plain);
      const protectedByThem = Buffer.from(theirs.encrypt(p.payload, p.header));
      assert.notDeepEqual(protectedByThem.subarray(12, 172), plain.subarray(12));
      const mine = fromThem.unprotectRtp(protectedByThem);
      if (mine && mine.equals(plain)) inOk++;
      const protectedByUs = toThem.protectRtp(plain);
      assert.equal(protectedByUs.length, plain.length + SRTP_AUTH_TAG_BYTES);
      if (Buffer.from(theirs.decrypt(protectedByUs)).equals(plain)) outOk++;
    }
    assert.equal(inOk, 300);
    assert.equal(outOk, 300);
    for (let i = 0; i < 5; i++) {
      const rr = receiverReport(0xdeadbeef);
      const got = fromThem.unprotectRtcp(Buffer.from(theirsRtcp.encrypt(rr)));
      assert.ok(got?.equals(rr), 'SRTCP from werift');
      assert.ok(Buffer.from(theirsRtcp.decrypt(toThem.protectRtcp(rr))).equals(rr), 'SRTCP to werift');
    }
  });

  test('round trip: header, CSRCs and extension stay clear, payload is encrypted, protect leaves its input untouched', () => {
    const { sender, receiver } = pair();
    const plain = rtp(7, 0x0a0b0c0d, Buffer.alloc(160, 0xd5), { csrcs: 2, extWords: 2 });
    const copy = Buffer.from(plain);
    const wire = sender.protectRtp(plain);
    assert.ok(plain.equals(copy));
    const headerLen = 12 + 8 + 12;
    assert.ok(wire.subarray(0, headerLen).equals(plain.subarray(0, headerLen)));
    assert.ok(!wire.subarray(headerLen, plain.length).equals(plain.subarray(headerLen)));
    assert.ok(receiver.unprotectRtp(wire)?.equals(plain));
    assert.equal(receiver.counters.unprotected, 1);
    // a datagram longer than one keystream run (9000 bytes) round-trips too (B.2 above checks long runs' bytes)
    const big = rtp(8, 0x0a0b0c0d, randomBytes(9000));
    const bigWire = sender.protectRtp(big);
    assert.ok(receiver.unprotectRtp(Buffer.from(bigWire))?.equals(big));
  });

  test('protect into a caller\'s buffer gives the same bytes as into a new one', () => {
    const master = { masterKey: randomBytes(16), masterSalt: randomBytes(14) };
    const a = new SrtpContext(master);
    const b = new SrtpContext(master);
    const out = Buffer.alloc(1500, 0xee);
    const plain = rtp(99);
    const intoOut = a.protectRtp(plain, out);
    assert.equal(intoOut.buffer, out.buffer);
    assert.ok(intoOut.equals(b.protectRtp(plain)));
    const rr = receiverReport(3);
    assert.ok(a.protectRtcp(rr, out).equals(b.protectRtcp(rr)));
    assert.throws(() => a.protectRtp(plain, Buffer.alloc(plain.length)), /shorter/);
  });

  test('DTLS-SRTP keying material splits into client/server keys and salts (RFC 5764 4.2), and the two roles talk', () => {
    const material = Buffer.from(Array.from({ length: 60 }, (_, i) => i));
    const client = srtpMastersFromDtls(material, 'client');
    const server = srtpMastersFromDtls(material, 'server');
    assert.deepEqual([...client.local.masterKey], Array.from({ length: 16 }, (_, i) => i));
    assert.deepEqual([...server.local.masterKey], Array.from({ length: 16 }, (_, i) => 16 + i));
    assert.deepEqual([...client.local.masterSalt], Array.from({ length: 14 }, (_, i) => 32 + i));
    assert.deepEqual([...server.local.masterSalt], Array.from({ length: 14 }, (_, i) => 46 + i));
    assert.ok(client.remote.masterKey.equals(server.local.masterKey) && client.remote.masterSalt.equals(server.local.masterSalt));
    const plain = rtp(1);
    assert.ok(new SrtpContext(server.remote).unprotectRtp(new SrtpContext(client.local).protectRtp(plain))?.equals(plain));
    assert.throws(() => srtpMastersFromDtls(material.subarray(1), 'client'), /60 bytes/);
  });

  test('a replayed SRTP packet is refused; reordered packets inside the window pass, ones older than the window do not', () => {
    const { sender, receiver } = pair();
    const wire = Array.from({ length: 300 }, (_, i) => sender.protectRtp(rtp(1000 + i)));
    const copies = wire.map((w) => Buffer.from(w));
    assert.ok(receiver.unprotectRtp(wire[0]!));
    assert.equal(receiver.unprotectRtp(Buffer.from(copies[0]!)), undefined, 'replay of the first packet');
    assert.equal(receiver.counters.replays, 1);
    assert.ok(receiver.unprotectRtp(wire[200]!));
    assert.ok(receiver.unprotectRtp(wire[150]!), 'late by 50: inside the window');
    assert.equal(receiver.unprotectRtp(Buffer.from(copies[150]!)), undefined, 'the late one replayed');
    assert.equal(receiver.unprotectRtp(wire[5]!), undefined, 'late by 195: older than the window');
    assert.equal(receiver.counters.replays, 3);
  });

  test('interleaved SSRCs (one above 2^31) keep their own replay windows and rollover counters, across a sequence wrap and past 64 streams', () => {
    const { sender, receiver } = pair();
    const a = 0x01020304;
    const b = 0xfedcba98; // above 2^31
    const wire: { ssrc: number; seq: number; packet: Buffer }[] = [];
    for (let i = 0; i < 200; i++) {
      for (const ssrc of [a, b]) {
        const seq = 65_500 + i + (ssrc === b ? 7 : 0); // both wrap, at different packets
        wire.push({ ssrc, seq, packet: sender.protectRtp(rtp(seq, ssrc)) });
      }
    }
    for (const w of wire) {
      const copy = Buffer.from(w.packet);
      const plain = receiver.unprotectRtp(w.packet);
      assert.ok(plain, `ssrc ${w.ssrc.toString(16)} seq ${w.seq}`);
      assert.equal(plain.readUInt32BE(8), w.ssrc);
      assert.equal(receiver.unprotectRtp(copy), undefined, 'the same packet again is a replay');
    }
    assert.equal(receiver.receiveRoc(a), 1);
    assert.equal(receiver.receiveRoc(b), 1);
    assert.equal(receiver.counters.replays, wire.length);
    // 70 more streams: both sides empty their tables at 64 streams (a bound), so A and B start again at ROC 0 on both
    for (let k = 0; k < 70; k++) assert.ok(receiver.unprotectRtp(sender.protectRtp(rtp(1, 0x5000 + k))));
    for (const ssrc of [a, b]) {
      const next = sender.protectRtp(rtp(65_500 + 200 + (ssrc === b ? 7 : 0), ssrc));
      assert.ok(receiver.unprotectRtp(next), `ssrc ${ssrc.toString(16)} after the flood`);
    }
  });

  test('a replayed SRTCP packet is refused and the SRTCP index carries the E flag', () => {
    const { sender, receiver } = pair();
    const first = sender.protectRtcp(receiverReport(42));
    const second = sender.protectRtcp(receiverReport(42));
    assert.equal(first.readUInt32BE(first.length - SRTP_AUTH_TAG_BYTES - 4), 0x80000000);
    assert.equal(second.readUInt32BE(second.length - SRTP_AUTH_TAG_BYTES - 4), 0x80000001);
    const replay = Buffer.from(first);
    assert.ok(receiver.unprotectRtcp(first)?.equals(receiverReport(42)));
    assert.ok(receiver.unprotectRtcp(second));
    assert.equal(receiver.unprotectRtcp(replay), undefined);
    assert.equal(receiver.counters.replays, 1);
  });

  test('tampering with any byte of an SRTP or SRTCP packet fails authentication and leaves the packet undecrypted', () => {
    const { sender, receiver } = pair();
    const wire = sender.protectRtp(rtp(1));
    for (let i = 0; i < wire.length; i++) {
      const t = Buffer.from(wire);
      t[i] ^= 0x01;
      const before = Buffer.from(t);
      assert.equal(receiver.unprotectRtp(t), undefined, `byte ${i}`);
      assert.ok(t.equals(before), 'a refused packet is not decrypted');
    }
    const rtcp = sender.protectRtcp(receiverReport(9));
    for (let i = 0; i < rtcp.length; i++) {
      const t = Buffer.from(rtcp);
      t[i] ^= 0x80;
      assert.equal(receiver.unprotectRtcp(t), undefined, `rtcp byte ${i}`);
    }
    assert.ok(receiver.unprotectRtp(wire), 'positive control: the untouched packet passes');
    assert.ok(receiver.unprotectRtcp(rtcp), 'positive control: the untouched SRTCP packet passes');
  });

  test('forged packets with a far sequence number do not move the replay window', () => {
    const { sender, receiver } = pair();
    assert.ok(receiver.unprotectRtp(sender.protectRtp(rtp(10))));
    const forged = sender.protectRtp(rtp(30_000));
    forged[forged.length - 1] ^= 0xff;
    assert.equal(receiver.unprotectRtp(forged), undefined);
    assert.ok(receiver.unprotectRtp(sender.protectRtp(rtp(11))), 'the next genuine packet still passes');
  });

  test('rollover counter: 140 000 packets (two sequence wraps) with loss and reordering at the wraps all authenticate', () => {
    const { sender, receiver } = pair();
    const seqStart = 60_000;
    let ok = 0;
    let sent = 0;
    let held: Buffer | undefined;
    for (let n = seqStart; n < seqStart + 140_000; n++) {
      if (n % 65_536 === 3) continue; // lost just after a wrap
      const wire = sender.protectRtp(rtp(n, 0x55, Buffer.alloc(20, n & 0xff)));
      sent++;
      if (n % 65_536 === 65_534) {
        held = wire; // delivered after the wrap
        continue;
      }
      if (receiver.unprotectRtp(wire)) ok++;
      if (held && n % 65_536 === 1) {
        if (receiver.unprotectRtp(held)) ok++;
        held = undefined;
      }
    }
    assert.equal(ok, sent);
    assert.equal(receiver.counters.authFailures, 0);
  });

  test('index estimation follows RFC 3711 Appendix A', () => {
    assert.equal(estimateIndex(65_535, 0), 65_536);
    assert.equal(estimateIndex(65_536 + 2, 65_530), 65_530);
    assert.equal(estimateIndex(100, 65_500), -1);
    assert.equal(estimateIndex(3 * 65_536 + 40_000, 40_001), 3 * 65_536 + 40_001);
  });

  test('fuzz: 20 000 random and mutated datagrams never throw and never pass authentication', () => {
    const random = rng(0x5eed);
    const { sender, receiver } = pair();
    const genuine = [sender.protectRtp(rtp(5)), sender.protectRtcp(receiverReport(5))];
    let passed = 0;
    for (let i = 0; i < 20_000; i++) {
      let b: Buffer;
      if (i % 2 === 0) {
        b = Buffer.alloc(Math.floor(random() * 300));
        for (let j = 0; j < b.length; j++) b[j] = Math.floor(random() * 256);
        if (random() < 0.5 && b.length > 0) b[0] = 0x80 | (b[0]! & 0x3f);
      } else {
        const src = genuine[i % 4 === 1 ? 0 : 1]!;
        b = Buffer.from(src.subarray(0, Math.max(0, src.length - Math.floor(random() * 4))));
        const flips = 1 + Math.floor(random() * 4);
        for (let f = 0; f < flips && b.length > 0; f++) b[Math.floor(random() * b.length)] ^= 1 + Math.floor(random() * 255);
        if (b.equals(src)) continue;
      }
      if (receiver.unprotectRtp(Buffer.from(b))) passed++;
      if (receiver.unprotectRtcp(Buffer.from(b))) passed++;
    }
    assert.equal(passed, 0);
    assert.ok(receiver.counters.authFailures + receiver.counters.malformed > 19_000);
    assert.ok(receiver.unprotectRtp(genuine[0]!), 'positive control');
  });

  test('20 000 packets in a row (the replay window slides with each): every one protects and unprotects to the same bytes', { timeout: 60_000 }, () => {
    // Its speed is measured by `npm run bench:srtp` (docs/benchmarks.md), not here: a wall-clock bound fails on a loaded machine.
    const { sender, receiver } = pair();
    const plain = rtp(1);
    const n = 20_000;
    for (let i = 0; i < n; i++) {
      plain.writeUInt16BE(i & 0xffff, 2);
      const clear = receiver.unprotectRtp(sender.protectRtp(plain));
      assert.ok(clear?.equals(plain), `packet ${i}`);
    }
    assert.equal(receiver.counters.unprotected, n);
  });
});
