import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { deriveSessionKeys, type SessionKeys } from '../../src/media/srtp/key-derivation';
import { SrtpContext, type SrtpRtpState } from '../../src/media/srtp/srtp-context';
import { AEAD_AES_128_GCM, AES_CM_128_HMAC_SHA1_80, srtpProfile, type SrtpProfileName } from '../../src/media/srtp/srtp-profile';
import { execFileSync } from 'node:child_process';
import { buildNative } from '../../src/media/native/build-native';
import { loadNativeAddon } from '../../src/media/native/native-relay';
import { handBackSrtpState, NATIVE_SRTP_REFUSED, NativeSrtp, nativeSrtpFrom, type NativeSrtpAddon } from '../../src/media/native/native-srtp';
import { rng } from '../helpers/seeded-random';

/**
 * The native SRTP context (src/media/native/srtp.c) against the JavaScript SrtpContext it must equal:
 * RFC vectors, random packets both ways for both profiles, the per-SSRC state handed over mid-stream at the
 * sequence wrap, refusals counted without moving the window, and a fuzz loop of hostile datagrams.
 */

let addon: NativeSrtpAddon;

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const PROFILES = ['AES_CM_128_HMAC_SHA1_80', 'AEAD_AES_128_GCM'] as const;

interface RtpOpts {
  csrcs?: number;
  extWords?: number;
  padding?: number;
  payload?: Buffer;
}

function rtp(seq: number, ssrc: number, opts: RtpOpts = {}): Buffer {
  const csrcs = opts.csrcs ?? 0;
  const ext = opts.extWords;
  const pad = opts.padding ?? 0;
  const head = Buffer.alloc(12 + csrcs * 4 + (ext !== undefined ? 4 + ext * 4 : 0));
  head[0] = 0x80 | csrcs | (ext !== undefined ? 0x10 : 0) | (pad > 0 ? 0x20 : 0);
  head[1] = 0x60;
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
  const padding = Buffer.alloc(pad);
  if (pad > 0) padding[pad - 1] = pad;
  return Buffer.concat([head, opts.payload ?? randomBytes(160), padding]);
}

function master(profile: SrtpProfileName): { masterKey: Buffer; masterSalt: Buffer } {
  return { masterKey: randomBytes(16), masterSalt: randomBytes(srtpProfile(profile).saltBytes) };
}

/** Receive states compared as plain data (the window's bytes as hex). */
function plainState(s: SrtpRtpState): unknown {
  return {
    receive: s.receive.map((r) => ({ ssrc: r.ssrc, highestIndex: r.highestIndex, window: Buffer.from(r.window).toString('hex') })).sort((a, b) => a.ssrc - b.ssrc),
    send: [...s.send].sort((a, b) => a.ssrc - b.ssrc),
  };
}

describe('native SRTP (srtp.c) equals the JavaScript SrtpContext', { timeout: 120_000 }, () => {
  before(() => {
    addon = loadNativeAddon(); // builds src/media/native/*.c when needed (build-native.ts)
  }, { timeout: 60_000 });

  test('RFC 3711 B.2: the AES-CM keystream of key 2B7E…, IV F0F1…FD0000 (SSRC 0, index 0), and 65 000 bytes of it equal AES-CTR', () => {
    const key = hex('2B7E151628AED2A6ABF7158809CF4F3C');
    const salt = hex('F0F1F2F3F4F5F6F7F8F9FAFBFCFD');
    const keys: SessionKeys = { encryptionKey: key, authKey: randomBytes(20), salt };
    const native = new NativeSrtp(addon, AES_CM_128_HMAC_SHA1_80, keys);
    const plain = Buffer.alloc(12 + 48);
    plain[0] = 0x80; // SSRC 0, SEQ 0: the IV is the salt itself
    const wire = native.protectRtp(plain);
    assert.equal(wire.subarray(12, 60).toString('hex').toUpperCase(), 'E03EAD0935C95E80E166B16DD92B4EB4D23513162B02D0F72A43A2FE4A5F97AB41E95B3BB0A2E8DD477901E4FCA894C0');
    assert.equal(wire.length, 60 + 10);
    const long = Buffer.alloc(12 + 65_000);
    long[0] = 0x80;
    long.writeUInt16BE(1, 2); // a new index: IV = salt ^ (1 << 16)
    const longWire = native.protectRtp(long);
    const iv = Buffer.concat([salt, Buffer.alloc(2)]);
    iv[13] ^= 1;
    const ks = createCipheriv('aes-128-ctr', key, iv).update(Buffer.alloc(65_000));
    assert.ok(longWire.subarray(12, 12 + 65_000).equals(ks), 'keystream across 4 063 blocks');
    // the JS context with the same session keys reads both
    const js = SrtpContext.fromSessionKeys({ rtp: keys, rtcp: keys }, 'AES_CM_128_HMAC_SHA1_80');
    assert.ok(js.unprotectRtp(wire)?.equals(plain));
    assert.ok(js.unprotectRtp(longWire)?.equals(long));
  });

  test('RFC 7714 §16.1: the RTP packet protects natively to the vector and the vector unprotects natively to the packet', () => {
    const KEY = hex('000102030405060708090a0b0c0d0e0f');
    const SALT = hex('517569642070726f2071756f');
    const keys: SessionKeys = { encryptionKey: KEY, authKey: Buffer.alloc(0), salt: SALT };
    const PLAIN = hex('8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973 20646976 69736120 696e2070 61727465 73207472 6573');
    const PROTECTED = hex('8040f17b 8041f8d3 5501a0b2 f24de3a3 fb34de6c acba861c 9d7e4bca be633bd5 0d294e6f 42a5f47a 51c7d19b 36de3adf 8833 899d7f27 beb16a91 52cf765e e4390cce');
    const sender = new NativeSrtp(addon, AEAD_AES_128_GCM, keys);
    assert.equal(sender.rtpOverhead, 16);
    assert.equal(sender.protectRtp(PLAIN).toString('hex'), PROTECTED.toString('hex'));
    const receiver = new NativeSrtp(addon, AEAD_AES_128_GCM, keys);
    assert.equal(receiver.unprotectRtp(Buffer.from(PROTECTED))?.toString('hex'), PLAIN.toString('hex'));
    assert.deepEqual(plainState(receiver.exportRtpState()), { receive: [{ ssrc: 0x5501a0b2, highestIndex: 0xf17b, window: '01' + '00'.repeat(15) }], send: [] });
    assert.equal(receiver.unprotectRtp(Buffer.from(PROTECTED)), undefined, 'the same packet again is a replay');
    assert.deepEqual(receiver.counters, { unprotected: 1, authFailures: 0, replays: 1, malformed: 0 });
  });

  for (const profile of PROFILES) {
    test(`${profile}: 3 000 random packets (CSRCs, extensions, padding, 4 SSRCs, reordering) JS protect -> native unprotect and native protect -> JS unprotect, same bytes and same state`, () => {
      const random = rng(profile.length * 7919);
      const m = master(profile);
      const jsTx = new SrtpContext(m, profile);
      const natTx = nativeSrtpFrom(new SrtpContext(m, profile), addon);
      const natRx = nativeSrtpFrom(new SrtpContext(m, profile), addon);
      const jsRx = new SrtpContext(m, profile);
      const jsRxMirror = new SrtpContext(m, profile); // takes the same packets as natRx: their states must match
      const ssrcs = [0x01020304, 0xfedcba98, 0x7fffffff, 0x80000000];
      const seqs = ssrcs.map((_, i) => 64_900 + i * 200);
      let acceptedNative = 0;
      let acceptedJs = 0;
      const held: Buffer[] = [];
      for (let i = 0; i < 3_000; i++) {
        const k = Math.floor(random() * ssrcs.length);
        const seq = seqs[k]!++;
        const opts: RtpOpts = {
          csrcs: random() < 0.3 ? Math.floor(random() * 16) : 0,
          extWords: random() < 0.3 ? Math.floor(random() * 5) : undefined,
          padding: random() < 0.2 ? 1 + Math.floor(random() * 20) : 0,
          payload: randomBytes(Math.floor(random() * 1200)),
        };
        const plain = rtp(seq, ssrcs[k]!, opts);
        const fromJs = jsTx.protectRtp(plain);
        const fromNative = natTx.protectRtp(plain);
        assert.ok(fromNative.equals(fromJs), `packet ${i}: native protect gives the JS bytes`);
        const w1 = Buffer.from(fromJs);
        if (random() < 0.05) {
          held.push(w1); // delivered late, inside the window
        } else {
          const got = natRx.unprotectRtp(w1);
          assert.ok(got?.equals(plain), `packet ${i} ${profile} seq ${seq & 0xffff}: native unprotect`);
          assert.ok(jsRxMirror.unprotectRtp(Buffer.from(fromJs)));
          acceptedNative++;
        }
        if (held.length > 0 && random() < 0.2) {
          const late = held.shift()!;
          const copy = Buffer.from(late);
          assert.ok(natRx.unprotectRtp(late), 'late packet');
          assert.ok(jsRxMirror.unprotectRtp(copy));
          acceptedNative++;
        }
        assert.ok(jsRx.unprotectRtp(fromNative)?.equals(plain), `packet ${i}: JS unprotects native protect`);
        acceptedJs++;
      }
      assert.equal(natRx.counters.unprotected, acceptedNative);
      assert.equal(jsRx.counters.unprotected, acceptedJs);
      assert.equal(natRx.counters.authFailures + natRx.counters.replays + natRx.counters.malformed, 0);
      assert.deepEqual(plainState(natRx.exportRtpState()), plainState(jsRxMirror.exportRtpState()), 'receive state equal');
      assert.deepEqual(plainState(natTx.exportRtpState()), plainState(jsTx.exportRtpState()), 'send state equal');
      for (const s of ssrcs) assert.equal(jsTx.sendRoc(s), 1, `SSRC ${s.toString(16)} crossed the wrap`);
    });

    test(`${profile}: state handed JS -> native -> JS mid-stream at the 65 536 wrap, both directions, no packet lost, replays refused on each side`, () => {
      const m = master(profile);
      const ssrc = 0x0badcafe;
      const jsTx = new SrtpContext(m, profile);
      const jsRx = new SrtpContext(m, profile);
      const ref = new SrtpContext(m, profile); // one JS sender for the whole stream: the native leg must produce its bytes
      const plain = (n: number) => rtp(n, ssrc, { payload: Buffer.alloc(40, n & 0xff) });
      const wire = new Map<number, Buffer>();
      const accept = (who: { unprotectRtp(p: Buffer): Buffer | undefined }, n: number) => who.unprotectRtp(Buffer.from(wire.get(n)!))?.equals(plain(n)) === true;
      // JS: 65 500 .. 65 529 (ROC 0)
      for (let n = 65_500; n < 65_530; n++) {
        const w = jsTx.protectRtp(plain(n));
        assert.ok(w.equals(ref.protectRtp(plain(n))));
        wire.set(n, w);
        if (n !== 65_528) assert.ok(accept(jsRx, n), `JS ${n}`); // 65 528 arrives late, natively
      }
      // hand over: native sender and receiver from the JS contexts' state
      const natTx = nativeSrtpFrom(jsTx, addon);
      const natRx = nativeSrtpFrom(jsRx, addon);
      assert.equal(accept(natRx, 65_529), false, 'a packet JS accepted is a replay natively');
      assert.equal(natRx.counters.replays, 1);
      for (let n = 65_530; n < 65_560; n++) {
        const w = natTx.protectRtp(plain(n));
        assert.ok(w.equals(ref.protectRtp(plain(n))), `native protect ${n} (seq ${n & 0xffff}) equals the JS stream: the ROC stepped at the wrap`);
        wire.set(n, w);
        if (n !== 65_540) assert.ok(accept(natRx, n), `native ${n}`); // 65 540 (seq 4) arrives late, back in JS
      }
      assert.ok(accept(natRx, 65_528), 'the late pre-wrap packet is accepted natively with ROC 0');
      assert.equal(accept(natRx, 65_528), false, '... once');
      assert.equal(accept(natRx, 65_535), false, 'a replay from before the wrap is refused');
      // hand back
      handBackSrtpState(natTx, jsTx);
      handBackSrtpState(natRx, jsRx);
      assert.equal(jsTx.sendRoc(ssrc), 1);
      assert.equal(jsRx.receiveRoc(ssrc), 1);
      assert.equal(jsRx.counters.replays, 3, 'the native refusals are added to the JS counters');
      assert.equal(jsRx.counters.unprotected, 29 + 30);
      assert.equal(accept(jsRx, 65_550), false, 'a packet native accepted is a replay in JS');
      assert.ok(accept(jsRx, 65_540), 'the late post-wrap packet is accepted in JS');
      for (let n = 65_560; n < 65_600; n++) {
        const w = jsTx.protectRtp(plain(n));
        assert.ok(w.equals(ref.protectRtp(plain(n))), `JS protect ${n} after the hand-back`);
        wire.set(n, w);
        assert.ok(accept(jsRx, n), `JS ${n} after the hand-back`);
      }
      // and again to native, a second time, with a fresh native context
      const natRx2 = nativeSrtpFrom(jsRx, addon);
      assert.equal(accept(natRx2, 65_599), false, 'the last packet JS accepted is a replay natively');
      const w = ref.protectRtp(plain(65_600));
      assert.ok(natRx2.unprotectRtp(Buffer.from(w))?.equals(plain(65_600)));
    });

    test(`${profile}: replayed, too-old, forged, tampered and truncated packets are refused and counted; none moves the window or changes the packet`, () => {
      const m = master(profile);
      const tx = new SrtpContext(m, profile);
      const rx = nativeSrtpFrom(new SrtpContext(m, profile), addon);
      const ssrc = 0x11223344;
      const wire = Array.from({ length: 300 }, (_, i) => tx.protectRtp(rtp(1000 + i, ssrc)));
      const copies = wire.map((w) => Buffer.from(w));
      assert.ok(rx.unprotectRtp(wire[0]!));
      assert.equal(rx.unprotectRtp(Buffer.from(copies[0]!)), undefined, 'replay of the first packet');
      assert.ok(rx.unprotectRtp(wire[200]!));
      assert.ok(rx.unprotectRtp(wire[150]!), 'late by 50: inside the window');
      assert.equal(rx.unprotectRtp(Buffer.from(copies[150]!)), undefined, 'the late one replayed');
      assert.equal(rx.unprotectRtpCode(Buffer.from(copies[5]!)), NATIVE_SRTP_REFUSED.replay, 'late by 195: older than the window');
      assert.equal(rx.counters.replays, 3);
      const state = plainState(rx.exportRtpState());
      // tampering with every byte of a new packet: refused (auth, or replay/malformed when the header bytes say so), buffer unchanged
      const fresh = copies[201]!;
      let refused = 0;
      for (let i = 0; i < fresh.length; i++) {
        const t = Buffer.from(fresh);
        t[i]! ^= 0x01;
        const before = Buffer.from(t);
        assert.ok(rx.unprotectRtpCode(t) < 0, `byte ${i}`);
        assert.ok(t.equals(before), `byte ${i}: a refused packet is not decrypted`);
        refused++;
      }
      // an odd payload length (a partial last keystream block): a bad tag leaves every byte as it came
      for (const payloadLen of [1, 15, 17, 163, 1001]) {
        const odd = tx.protectRtp(rtp(1300, ssrc, { payload: randomBytes(payloadLen) }));
        odd[odd.length - 1]! ^= 0x40;
        const before = Buffer.from(odd);
        assert.equal(rx.unprotectRtpCode(odd), NATIVE_SRTP_REFUSED.auth);
        assert.ok(odd.equals(before), `payload of ${payloadLen} bytes restored`);
        refused++;
      }
      // a forged packet far ahead
      const forged = tx.protectRtp(rtp(30_000, ssrc));
      forged[forged.length - 1]! ^= 0xff;
      assert.equal(rx.unprotectRtpCode(forged), NATIVE_SRTP_REFUSED.auth);
      // truncated: every length shorter than header + trailer, and a cut tag
      for (let len = 0; len < 12 + rx.rtpOverhead; len++) assert.equal(rx.unprotectRtpCode(Buffer.from(fresh.subarray(0, len))), NATIVE_SRTP_REFUSED.malformed, `${len} bytes`);
      assert.equal(rx.unprotectRtpCode(Buffer.from(fresh.subarray(0, fresh.length - 1))), NATIVE_SRTP_REFUSED.auth);
      assert.deepEqual(plainState(rx.exportRtpState()), state, 'no refused packet moved the window');
      const c = rx.counters;
      assert.equal(c.unprotected, 3);
      assert.equal(c.authFailures + c.replays + c.malformed, 3 + refused + 1 + 12 + rx.rtpOverhead + 1);
      assert.ok(c.authFailures >= fresh.length - 12, 'payload and tag bytes fail authentication');
      // positive control: the untouched packet passes, then the window has moved
      assert.ok(rx.unprotectRtp(fresh));
      assert.notDeepEqual(plainState(rx.exportRtpState()), state);
      // protect refusals: not RTP, no room
      assert.throws(() => rx.protectRtp(Buffer.from([0x80, 0, 0])), /not an RTP packet/);
      const p = rtp(1, ssrc);
      assert.equal(addon.srtpProtectRtp(rx.handle, Buffer.concat([p, Buffer.alloc(rx.rtpOverhead - 1)]), p.length), NATIVE_SRTP_REFUSED.space);
      assert.equal(rx.exportRtpState().send.length, 0, 'a refused protect made no send state');
    });

    test(`${profile}: at most 64 SSRCs per direction, emptied at the 65th as the JS does (same state after 70 streams)`, () => {
      const m = master(profile);
      const tx = new SrtpContext(m, profile);
      const nat = nativeSrtpFrom(new SrtpContext(m, profile), addon);
      const js = new SrtpContext(m, profile);
      const natTx = nativeSrtpFrom(new SrtpContext(m, profile), addon);
      for (let k = 0; k < 70; k++) {
        const plain = rtp(100 + k, 0x5000 + k);
        const w = tx.protectRtp(plain);
        assert.ok(nat.unprotectRtp(Buffer.from(w)));
        assert.ok(js.unprotectRtp(Buffer.from(w)));
        natTx.protectRtp(plain);
      }
      assert.equal(nat.exportRtpState().receive.length, 6);
      assert.deepEqual(plainState(nat.exportRtpState()), plainState(js.exportRtpState()));
      assert.deepEqual(plainState(natTx.exportRtpState()), plainState(tx.exportRtpState()));
    });
  }

  test('fuzz: 40 000 random and mutated datagrams (huge CSRC counts, extension lengths past the end, truncations) are refused without a crash, never accepted, all counted', () => {
    const random = rng(0xf022);
    for (const profile of PROFILES) {
      const m = master(profile);
      const tx = new SrtpContext(m, profile);
      const rx = nativeSrtpFrom(new SrtpContext(m, profile), addon);
      const genuine = [tx.protectRtp(rtp(5, 9)), tx.protectRtp(rtp(6, 9, { csrcs: 15, extWords: 3, padding: 4 }))];
      let attempts = 0;
      for (let i = 0; i < 20_000; i++) {
        let b: Buffer;
        const kind = i % 4;
        if (kind === 0) {
          b = Buffer.alloc(Math.floor(random() * 300));
          for (let j = 0; j < b.length; j++) b[j] = Math.floor(random() * 256);
          if (random() < 0.7 && b.length > 0) b[0] = 0x80 | (b[0]! & 0x3f);
        } else if (kind === 1) {
          // header claims more than there is: CC up to 15, extension length up to 0xffff
          b = Buffer.alloc(12 + Math.floor(random() * 80));
          b[0] = 0x90 | Math.floor(random() * 16);
          const at = 12 + 4 * (b[0]! & 0x0f);
          if (at + 4 <= b.length) b.writeUInt16BE(Math.floor(random() * 0x10000), at + 2);
        } else {
          const src = genuine[i & 1]!;
          b = Buffer.from(src.subarray(0, Math.max(0, src.length - Math.floor(random() * 4))));
          const flips = 1 + Math.floor(random() * 4);
          for (let f = 0; f < flips && b.length > 0; f++) b[Math.floor(random() * b.length)]! ^= 1 + Math.floor(random() * 255);
          if (b.equals(src)) continue;
        }
        attempts++;
        // a view into a larger buffer: nothing past `length` may be read as the packet
        const host = Buffer.alloc(b.length + 64, 0x90);
        b.copy(host);
        assert.ok(rx.unprotectRtpCode(host, b.length) < 0, `datagram ${i} (${profile}) accepted: ${b.toString('hex')}`);
        const p = addon.srtpProtectRtp(rx.handle, host, b.length);
        assert.ok(p < 0 || p === b.length + rx.rtpOverhead, `protect of datagram ${i}: ${p}`);
      }
      const c = rx.counters;
      assert.equal(c.unprotected, 0);
      assert.equal(c.authFailures + c.replays + c.malformed, attempts);
      assert.ok(c.malformed > 1000 && c.authFailures > 1000, `${JSON.stringify(c)}`);
      assert.ok(rx.unprotectRtp(genuine[0]!), 'positive control');
      assert.ok(rx.unprotectRtp(genuine[1]!), 'positive control with CSRCs, extension, padding');
    }
    // too long: refused, counted
    const rx = nativeSrtpFrom(new SrtpContext(master('AEAD_AES_128_GCM'), 'AEAD_AES_128_GCM'), addon);
    const huge = Buffer.alloc(70_000);
    huge[0] = 0x80;
    assert.equal(rx.unprotectRtpCode(huge), NATIVE_SRTP_REFUSED.tooLong);
    assert.equal(rx.counters.malformed, 1);
  });

  test('misuse from JavaScript throws a TypeError and changes nothing: wrong handles, wrong key lengths, invalid state entries', () => {
    const m = master('AES_CM_128_HMAC_SHA1_80');
    const keys = deriveSessionKeys(m.masterKey, m.masterSalt);
    assert.throws(() => addon.srtpCreate(1, keys.rtp.encryptionKey, Buffer.alloc(0), keys.rtp.salt), TypeError);
    assert.throws(() => addon.srtpCreate(7, keys.rtp.encryptionKey, Buffer.alloc(0), keys.rtp.salt), TypeError, 'GCM takes a 12-byte salt');
    assert.throws(() => addon.srtpCreate(2, keys.rtp.encryptionKey, keys.rtp.authKey, keys.rtp.salt), TypeError);
    assert.throws(() => addon.srtpUnprotectRtp({}, Buffer.alloc(40)), TypeError);
    assert.throws(() => addon.srtpCounters(Object.create(null) as object), TypeError);
    const native = new NativeSrtp(addon, AES_CM_128_HMAC_SHA1_80, keys.rtp);
    assert.throws(() => addon.srtpUnprotectRtp(native.handle, Buffer.alloc(40), 41), TypeError, 'a length past the buffer');
    const good = { receive: [{ ssrc: 5, highestIndex: 70_000, window: Buffer.alloc(16, 0xff) }], send: [{ ssrc: 5, roc: 2, lastSeq: 9 }] };
    const bad: SrtpRtpState[] = [
      { receive: [...good.receive, { ssrc: 6, highestIndex: -1, window: Buffer.alloc(16) }], send: [] },
      { receive: [...good.receive, { ssrc: 6, highestIndex: 2 ** 48, window: Buffer.alloc(16) }], send: [] },
      { receive: [...good.receive, { ssrc: 6, highestIndex: 5, window: Buffer.alloc(15) }], send: [] },
      { receive: good.receive, send: [{ ssrc: 2 ** 32, roc: 0, lastSeq: 0 }] },
      { receive: good.receive, send: [{ ssrc: 1, roc: 0, lastSeq: 65_536 }] },
    ];
    for (const s of bad) assert.throws(() => native.importRtpState(s), TypeError);
    assert.deepEqual(native.exportRtpState(), { receive: [], send: [] }, 'nothing imported from a refused state');
    native.importRtpState(good);
    assert.deepEqual(plainState(native.exportRtpState()), plainState(good));
    const js = new SrtpContext(m);
    for (const s of bad) assert.throws(() => js.importRtpState(s));
    assert.deepEqual(js.exportRtpState(), { receive: [], send: [] });
    assert.ok(addon.srtpLiveContexts() >= 1);
  });

  test('native contexts are freed when their handles are collected: 1 000 made, back to 0 after GC (a separate node --expose-gc)', () => {
    const script = `
      const m = { exports: {} };
      process.dlopen(m, process.argv[1]);
      const a = m.exports;
      const crypto = require('node:crypto');
      const base = a.srtpLiveContexts();
      (function make() {
        for (let i = 0; i < 500; i++) a.srtpCreate(1, crypto.randomBytes(16), crypto.randomBytes(20), crypto.randomBytes(14));
        for (let i = 0; i < 500; i++) a.srtpCreate(7, crypto.randomBytes(16), Buffer.alloc(0), crypto.randomBytes(12));
      })();
      const made = a.srtpLiveContexts();
      const deadline = Date.now() + 20000;
      (function poll() {
        global.gc();
        const now = a.srtpLiveContexts();
        if (now === base || Date.now() > deadline) return console.log(JSON.stringify({ base, made, after: now }));
        setImmediate(poll);
      })();`;
    const out = execFileSync(process.execPath, ['--expose-gc', '-e', script, buildNative()], { encoding: 'utf8', timeout: 60_000 });
    assert.deepEqual(JSON.parse(out), { base: 0, made: 1000, after: 0 });
  });
});
