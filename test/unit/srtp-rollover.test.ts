import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { SrtpContext } from '../../src/media/srtp/srtp-context';
import type { SrtpProfileName } from '../../src/media/srtp/srtp-profile';

/**
 * Rollover counter and replay window across the 16-bit sequence wrap (RFC 3711 §3.3.1, §3.3.2 and
 * Appendix A), for both profiles: the ROC is authenticated (in the HMAC for AES-CM, in the IV for GCM),
 * so a packet accepted with the wrong ROC would fail; acceptance with the right bytes proves the ROC used.
 */
const SSRC = 0x0badcafe;

function rtp(seq: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(12);
  head[0] = 0x80;
  head.writeUInt16BE(seq & 0xffff, 2);
  head.writeUInt32BE((seq * 160) >>> 0, 4);
  head.writeUInt32BE(SSRC, 8);
  return Buffer.concat([head, payload]);
}

function contexts(profile: SrtpProfileName): { sender: SrtpContext; receiver: SrtpContext } {
  const master = { masterKey: randomBytes(16), masterSalt: randomBytes(profile === 'AEAD_AES_128_GCM' ? 12 : 14) };
  return { sender: new SrtpContext(master, profile), receiver: new SrtpContext(master, profile) };
}

for (const profile of ['AES_CM_128_HMAC_SHA1_80', 'AEAD_AES_128_GCM'] as const) {
  describe(`SRTP ${profile}: rollover counter and replay across 65 536`, { timeout: 60_000 }, () => {
    test('the sequence wraps, both ROCs step to 1, a replay after the wrap is refused, a late packet from before the wrap is accepted with ROC 0', () => {
      const { sender, receiver } = contexts(profile);
      const plain = new Map<number, Buffer>();
      const wire = new Map<number, Buffer>();
      // sequence numbers 65 530 .. 65 535, then 0 .. 9 (packet numbers n: index = n)
      for (let n = 65_530; n < 65_546; n++) {
        const p = rtp(n, randomBytes(40));
        plain.set(n, p);
        wire.set(n, sender.protectRtp(p));
      }
      assert.equal(sender.sendRoc(SSRC), 1, "the sender's ROC incremented at the wrap");
      const deliver = (n: number) => receiver.unprotectRtp(Buffer.from(wire.get(n)!));
      // 65 534 is held back (arrives late, after the wrap)
      for (let n = 65_530; n < 65_540; n++) {
        if (n === 65_534) continue;
        const got = deliver(n);
        assert.ok(got?.equals(plain.get(n)!), `packet ${n} (seq ${n & 0xffff})`);
        assert.equal(receiver.lastRtpIndex, n, `index of seq ${n & 0xffff}`);
      }
      assert.equal(receiver.receiveRoc(SSRC), 1, "the receiver's ROC incremented at the wrap");
      // a replay of seq 2 after the wrap (index 65 538) is refused
      const replays = receiver.counters.replays;
      assert.equal(deliver(65_538), undefined);
      assert.equal(receiver.counters.replays, replays + 1);
      // the late packet from before the wrap: seq 65 534 with ROC 0
      const late = deliver(65_534);
      assert.ok(late?.equals(plain.get(65_534)!), 'the late packet decrypts to its bytes');
      assert.equal(receiver.lastRtpIndex, 65_534, 'accepted with ROC 0');
      assert.equal(receiver.receiveRoc(SSRC), 1, 'a late packet does not move the ROC back');
      assert.equal(deliver(65_534), undefined, 'the late packet replayed is refused');
      // the stream goes on after the wrap
      for (let n = 65_540; n < 65_546; n++) assert.ok(deliver(n)?.equals(plain.get(n)!), `packet ${n}`);
      assert.equal(receiver.counters.authFailures, 0);
    });

    test('positive control: a packet protected under ROC 1 but estimated under ROC 0 fails authentication', () => {
      const { sender, receiver } = contexts(profile);
      // the receiver saw seq 100 of ROC 0; the sender then went a whole cycle further (every packet lost) to seq 200 of ROC 1
      for (let n = 100; n <= 65_536 + 200; n++) {
        const w = sender.protectRtp(rtp(n, randomBytes(20)));
        if (n === 100) assert.ok(receiver.unprotectRtp(w));
        if (n === 200) assert.ok(receiver.unprotectRtp(Buffer.from(w)), 'seq 200 of ROC 0 passes');
        if (n === 65_536 + 200) {
          assert.equal(sender.sendRoc(SSRC), 1);
          assert.equal(receiver.unprotectRtp(Buffer.from(w)), undefined, 'seq 200 of ROC 1 is estimated as index 200 of ROC 0, already seen');
        }
      }
      assert.equal(receiver.counters.replays, 1, 'index 200 of ROC 0 was already accepted');
      // and one the receiver has not seen: seq 300 of ROC 1 estimated as index 300 (ROC 0) fails the tag
      const w = sender.protectRtp(rtp(65_536 + 300, randomBytes(20)));
      assert.equal(receiver.unprotectRtp(w), undefined);
      assert.equal(receiver.counters.authFailures, 1, 'the ROC is authenticated');
    });

    test('a sender sending a sequence number from before the wrap late (a retransmission) protects it with the old ROC', () => {
      const { sender, receiver } = contexts(profile);
      assert.ok(receiver.unprotectRtp(sender.protectRtp(rtp(65_533, randomBytes(20)))));
      assert.ok(receiver.unprotectRtp(sender.protectRtp(rtp(65_536 + 3, randomBytes(20)))));
      assert.equal(sender.sendRoc(SSRC), 1);
      const late = rtp(65_534, randomBytes(20));
      const back = receiver.unprotectRtp(sender.protectRtp(late));
      assert.ok(back?.equals(late), 'accepted: protected under ROC 0, as the receiver estimates it');
      assert.equal(receiver.lastRtpIndex, 65_534);
      assert.equal(sender.sendRoc(SSRC), 1, 'the late send did not move the ROC');
      assert.equal(receiver.counters.authFailures, 0);
    });

    test('SRTCP: indices keep increasing, a replayed SRTCP packet is refused, tags protect the index', () => {
      const { sender, receiver } = contexts(profile);
      const rr = Buffer.from([0x80, 201, 0, 1, 0, 0, 0, 42]);
      const first = sender.protectRtcp(rr);
      const second = sender.protectRtcp(rr);
      const indexAt = (b: Buffer) => b.readUInt32BE(b.length - (profile === 'AEAD_AES_128_GCM' ? 4 : 14));
      assert.equal(indexAt(first), 0x80000000);
      assert.equal(indexAt(second), 0x80000001);
      const replay = Buffer.from(first);
      assert.ok(receiver.unprotectRtcp(first)?.equals(rr));
      assert.ok(receiver.unprotectRtcp(second)?.equals(rr));
      assert.equal(receiver.unprotectRtcp(replay), undefined);
      assert.equal(receiver.counters.replays, 1);
    });
  });
}
