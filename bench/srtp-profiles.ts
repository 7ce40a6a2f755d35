/**
 * CPU cost per packet of ferry's SRTP profiles (src/media/srtp/), in this process, no sockets:
 * protect and unprotect of a 20 ms G.711 RTP packet (12-byte header + 160 bytes) and of an RTCP RR+SDES
 * compound, for AES_CM_128_HMAC_SHA1_80 and AEAD_AES_128_GCM (in JavaScript, and RTP in the native addon's
 * srtp.c called from JavaScript, which the native relay calls without JavaScript), plus the HMAC-SHA1 strategies node:crypto
 * offers (a fresh Hmac from the raw key, from a KeyObject, or copies of precomputed inner/outer SHA-1
 * states with hash.copy()). Not a test (timings are machine- and load-dependent); prints a markdown table.
 *
 *   npm run bench:srtp [-- --packets 200000] [--rounds 5] [--keys 400]
 *
 * Each figure is CPU time (process.cpuUsage(), user + system) per operation, the median of `rounds` runs of
 * `packets` operations after a warm-up: CPU time, not wall time, so other processes on a shared machine
 * inflate it less (they still do, through caches and frequency).
 */
import { createCipheriv, createHash, createHmac, createSecretKey, randomBytes } from 'node:crypto';
import { AesGcm } from '../src/media/srtp/aes-gcm';
import { HmacSha1 } from '../src/media/srtp/hmac-sha1';
import { SrtpContext } from '../src/media/srtp/srtp-context';
import { srtpProfile, type SrtpProfileName } from '../src/media/srtp/srtp-profile';
import { loadNativeAddon } from '../src/media/native/native-relay';
import { NativeSrtp, type NativeSrtpAddon } from '../src/media/native/native-srtp';

const argv = process.argv.slice(2);
const arg = (name: string, dflt: number): number => {
  const i = argv.indexOf(name);
  const v = i >= 0 ? Number(argv[i + 1]) : dflt;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number`);
  return v;
};
const PACKETS = arg('--packets', 200_000);
const ROUNDS = arg('--rounds', 5);

function rtp(seq: number, payloadBytes = 160): Buffer {
  const b = Buffer.alloc(12 + payloadBytes, 0xd5);
  b[0] = 0x80;
  b.writeUInt16BE(seq & 0xffff, 2);
  b.writeUInt32BE(0x11223344, 8);
  return b;
}

/** CPU µs since `from` (user + system). */
function cpuSince(from: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(from);
  return d.user + d.system;
}

/** CPU µs per call of `op`, median of ROUNDS runs of `n` calls. */
function measure(n: number, op: (i: number) => void): number {
  for (let i = 0; i < Math.min(n, 20_000); i++) op(i);
  const runs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.cpuUsage();
    for (let i = 0; i < n; i++) op(i);
    runs.push(cpuSince(t0) / n);
  }
  runs.sort((a, b) => a - b);
  return runs[Math.floor(runs.length / 2)]!;
}

function profileRows(profile: SrtpProfileName): string[] {
  const master = { masterKey: randomBytes(16), masterSalt: randomBytes(profile === 'AEAD_AES_128_GCM' ? 12 : 14) };
  const sender = new SrtpContext(master, profile);
  const receiver = new SrtpContext(master, profile);
  const plain = rtp(0);
  const out = Buffer.alloc(plain.length + sender.rtpOverhead);
  const protectUs = measure(PACKETS, (i) => {
    plain.writeUInt16BE(i & 0xffff, 2);
    sender.protectRtp(plain, out);
  });
  // unprotect: every round a new receiving context and the stream's bytes restored (decrypt is in place),
  // so every packet is new to the replay window and fully authenticated and decrypted
  const tx = new SrtpContext(master, profile);
  const wire: Buffer[] = [];
  for (let i = 0; i < PACKETS; i++) wire.push(tx.protectRtp(rtp(i)));
  const copies = wire.map((w) => Buffer.from(w));
  const runs: number[] = [];
  for (let r = 0; r <= ROUNDS; r++) {
    for (let i = 0; i < PACKETS; i++) copies[i]!.copy(wire[i]!);
    const rx = new SrtpContext(master, profile);
    const t0 = process.cpuUsage();
    for (let i = 0; i < PACKETS; i++) rx.unprotectRtp(wire[i]!);
    const us = cpuSince(t0) / PACKETS;
    if (rx.counters.unprotected !== PACKETS) throw new Error(`unprotect accepted ${rx.counters.unprotected} of ${PACKETS}`);
    if (r > 0) runs.push(us); // round 0 is the warm-up
  }
  runs.sort((a, b) => a - b);
  const unprotectUs = runs[Math.floor(runs.length / 2)]!;
  const rr = Buffer.alloc(8 + 20);
  rr[0] = 0x80;
  rr[1] = 201;
  rr.writeUInt16BE(6, 2);
  const rtcpOut = Buffer.alloc(rr.length + sender.rtcpOverhead);
  const rtcpUs = measure(Math.floor(PACKETS / 4), () => sender.protectRtcp(rr, rtcpOut));
  return [`| ${profile} | ${plain.length} → ${plain.length + sender.rtpOverhead} | ${protectUs.toFixed(2)} | ${unprotectUs.toFixed(2)} | ${(protectUs + unprotectUs).toFixed(2)} | ${rtcpUs.toFixed(2)} |`];
}

/** The native addon (src/media/native, built on first use), or the reason it is not available. */
function nativeAddon(): NativeSrtpAddon | string {
  try {
    return loadNativeAddon();
  } catch (err) {
    return (err as Error).message;
  }
}

/** The same RTP figures for the native context (srtp.c), called through N-API (the relay calls it directly). */
function nativeRows(profile: SrtpProfileName, addon: NativeSrtpAddon): string[] {
  const master = { masterKey: randomBytes(16), masterSalt: randomBytes(profile === 'AEAD_AES_128_GCM' ? 12 : 14) };
  const keys = new SrtpContext(master, profile).rtpSessionKeys;
  const spec = srtpProfile(profile);
  const sender = new NativeSrtp(addon, spec, keys);
  const plain = rtp(0);
  const out = Buffer.alloc(plain.length + sender.rtpOverhead);
  const protectUs = measure(PACKETS, (i) => {
    plain.copy(out);
    out.writeUInt16BE(i & 0xffff, 2);
    addon.srtpProtectRtp(sender.handle, out, plain.length);
  });
  const tx = new SrtpContext(master, profile);
  const wire: Buffer[] = [];
  for (let i = 0; i < PACKETS; i++) wire.push(tx.protectRtp(rtp(i)));
  const copies = wire.map((w) => Buffer.from(w));
  const runs: number[] = [];
  for (let r = 0; r <= ROUNDS; r++) {
    for (let i = 0; i < PACKETS; i++) copies[i]!.copy(wire[i]!);
    const rx = new NativeSrtp(addon, spec, keys);
    const t0 = process.cpuUsage();
    for (let i = 0; i < PACKETS; i++) addon.srtpUnprotectRtp(rx.handle, wire[i]!);
    const us = cpuSince(t0) / PACKETS;
    if (rx.counters.unprotected !== PACKETS) throw new Error(`native unprotect accepted ${rx.counters.unprotected} of ${PACKETS}`);
    if (r > 0) runs.push(us);
  }
  runs.sort((a, b) => a - b);
  const unprotectUs = runs[Math.floor(runs.length / 2)]!;
  return [`| ${profile}, native (srtp.c via N-API) | ${plain.length} → ${plain.length + sender.rtpOverhead} | ${protectUs.toFixed(2)} | ${unprotectUs.toFixed(2)} | ${(protectUs + unprotectUs).toFixed(2)} | (JavaScript) |`];
}

const MANY_KEYS = arg('--keys', 400);

/** ferry's GCM against a node:crypto GCM cipher per packet when many calls' keys compete for the caches. */
function manyKeyRows(): string[] {
  const keys = Array.from({ length: MANY_KEYS }, () => randomBytes(16));
  const gcms = keys.map((k) => new AesGcm(k));
  const iv = randomBytes(12);
  const bufs = Array.from({ length: MANY_KEYS }, () => Buffer.alloc(188, 7));
  const other = Buffer.alloc(2 << 20);
  const churn = (i: number): void => {
    if ((i & 63) === 0) {
      const at = (i * 4096) % other.length;
      other.fill(i & 0xff, at, Math.min(other.length, at + 32768));
    }
  };
  const rows: [string, (i: number) => void][] = [
    ["ferry's AesGcm (ECB keystream, GHASH in JS; ferry uses this)", (i) => {
      const k = i % MANY_KEYS;
      const b = bufs[k]!;
      gcms[k]!.seal(iv, b, 0, 12, undefined, 0, b, 12, 160, 172);
      churn(i);
    }],
    ["createCipheriv('aes-128-gcm') per packet", (i) => {
      const k = i % MANY_KEYS;
      const b = bufs[k]!;
      const c = createCipheriv('aes-128-gcm', keys[k]!, iv);
      c.setAAD(b.subarray(0, 12));
      c.update(b.subarray(12, 172)).copy(b, 12);
      c.final();
      c.getAuthTag().copy(b, 172);
      churn(i);
    }],
  ];
  return rows.map(([name, f]) => `| ${name} | ${measure(PACKETS, f).toFixed(2)} |`);
}

function hmacRows(): string[] {
  const key = randomBytes(20);
  const keyObject = createSecretKey(key);
  const data = rtp(0);
  const roc = Buffer.alloc(4);
  const ipad = Buffer.alloc(64, 0x36);
  const opad = Buffer.alloc(64, 0x5c);
  for (let i = 0; i < key.length; i++) {
    ipad[i]! ^= key[i]!;
    opad[i]! ^= key[i]!;
  }
  const inner = createHash('sha1').update(ipad);
  const outer = createHash('sha1').update(opad);
  const viaCopy = (): Buffer => {
    const h = inner.copy();
    h.update(data);
    h.update(roc);
    const o = outer.copy();
    o.update(h.digest());
    return o.digest();
  };
  if (!viaCopy().equals(createHmac('sha1', key).update(data).update(roc).digest())) throw new Error('hash.copy() HMAC differs from createHmac');
  const ferryMac = new HmacSha1(key);
  const tagOut = Buffer.alloc(20);
  ferryMac.mac(data, data.length, 0);
  ferryMac.writeTo(tagOut, 0, 20);
  if (!tagOut.equals(createHmac('sha1', key).update(data).update(roc).digest())) throw new Error("ferry's HmacSha1 differs from createHmac");
  const rows: [string, () => unknown][] = [
    ["ferry's HmacSha1 (precomputed states, SHA-1 in JS; ferry uses this)", () => ferryMac.mac(data, data.length, 0)],
    ['createHmac(raw key) per packet', () => createHmac('sha1', key).update(data).update(roc).digest()],
    ['createHmac(KeyObject) per packet', () => createHmac('sha1', keyObject).update(data).update(roc).digest()],
    ['precomputed inner/outer state, hash.copy() x2', viaCopy],
  ];
  return rows.map(([name, f]) => `| ${name} | ${measure(PACKETS, f).toFixed(2)} |`);
}

console.log(`# SRTP profile cost (CPU µs per operation), node ${process.version}, ${PACKETS} packets x ${ROUNDS} rounds (median)\n`);
console.log('| profile | RTP bytes plain → protected | protect µs | unprotect µs | both µs | SRTCP protect µs |');
console.log('|---|---|---|---|---|---|');
for (const p of ['AES_CM_128_HMAC_SHA1_80', 'AEAD_AES_128_GCM'] as const) for (const row of profileRows(p)) console.log(row);
const addon = nativeAddon();
if (typeof addon === 'string') console.log(`| native | not available: ${addon} | | | | |`);
else for (const p of ['AES_CM_128_HMAC_SHA1_80', 'AEAD_AES_128_GCM'] as const) for (const row of nativeRows(p, addon)) console.log(row);
console.log(`\n| GCM seal of a 172-byte packet, ${MANY_KEYS} keys round-robin, 2 MiB of other memory touched meanwhile (a server's caches) | µs |`);
console.log('|---|---|');
for (const row of manyKeyRows()) console.log(row);
console.log('\n| HMAC-SHA1 over a 172-byte packet + ROC | µs |');
console.log('|---|---|');
for (const row of hmacRows()) console.log(row);
