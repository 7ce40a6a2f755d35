import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startMediaServer, type RunningMediaServer } from '../../src/media/server/media-server';
import { call, connectKurento, fetchStats, type KurentoClientLike, type KurentoObjectLike } from '../helpers/media-kurento';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';
import { SrtpTestPeer } from '../helpers/srtp-test-peer';
import { newSrtpMaster } from '../../src/media/srtp/sdes-crypto';
import { SrtpContext } from '../../src/media/srtp/srtp-context';
import { rng } from '../helpers/seeded-random';
import { pollPause } from '../helpers/wait-for';

// kurento-client checks the crypto parameter's type: it must be its SDES complex type
// eslint-disable-next-line @typescript-eslint/no-require-imports
const SDES = (require('kurento-client') as { getComplexType(name: string): new (d: Record<string, unknown>) => object }).getComplexType('SDES');

/**
 * SRTP-SDES on ferry media's RtpEndpoint, driven by the real kurento-client: an SRTP "phone" (its own
 * SrtpContext, a real UDP socket) on one RtpEndpoint, a plain RTP phone on the other, connected both
 * ways. What goes on the SRTP phone's wire is checked byte by byte: never the plain payload, always
 * authenticated with the key ferry answered.
 */
describe('media: RtpEndpoint SRTP-SDES (RFC 4568) through kurento-client', { timeout: 60_000 }, () => {
  let server: RunningMediaServer;
  let client: KurentoClientLike;
  const closers: (() => void)[] = [];

  before(async () => {
    server = await startMediaServer({ config: { port: 0, host: '127.0.0.1', rtcpIntervalMs: 200 } });
    client = await connectKurento(server.url);
  });
  after(async () => {
    client?.close();
    closers.forEach((c) => c());
    await server?.close();
  });

  async function srtpCall(offer?: (p: SrtpTestPeer) => string) {
    const pipeline = await client.create('MediaPipeline');
    const a = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const b = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const events: { source: string; type: string; data: Record<string, unknown> }[] = [];
    for (const ep of [a, b]) ep.on('MediaSessionTerminated', (data) => events.push({ source: ep.id, type: 'MediaSessionTerminated', data }));
    const phone = await SrtpTestPeer.open();
    const plain = await RtpTestPeer.open();
    closers.push(() => phone.close(), () => plain.close());
    const answer = await call<string>(a, 'processOffer', offer ? offer(phone) : phone.sdp());
    phone.useRemoteSdp(answer);
    plain.useRemoteSdp(await call<string>(b, 'generateOffer'));
    await call(b, 'processAnswer', plain.sdp());
    await call(a, 'connect', b);
    await call(b, 'connect', a);
    return { pipeline, a, b, phone, plain, answer, events };
  }

  const payload = (tag: string, i: number) => Buffer.from(`${tag} ${i} `.padEnd(160, String.fromCharCode(65 + (i % 26))));

  test('SDES: an RTP/SAVP offer is answered RTP/SAVP with a fresh key under the offer\'s tag; RTP relays both ways encrypted on the phone leg, plain on the other', async () => {
    const { pipeline, a, phone, plain, answer } = await srtpCall((p) =>
      p.sdp({ crypto: [`1 AES_CM_128_HMAC_SHA1_32 inline:${p.keyBase64}`, `2 AES_CM_128_HMAC_SHA1_80 inline:${p.keyBase64}|2^31`] }),
    );
    assert.match(answer, /^m=audio \d+ RTP\/SAVP 0 101\r$/m);
    assert.equal((answer.match(/^a=crypto:/gm) ?? []).length, 1);
    assert.equal(phone.answerCrypto?.tag, 2);
    assert.equal(phone.answerCrypto?.suite, 'AES_CM_128_HMAC_SHA1_80');
    assert.equal(Buffer.from(phone.answerCrypto!.keyBase64, 'base64').length, 30);
    assert.notEqual(phone.answerCrypto?.keyBase64, phone.keyBase64, 'ferry answers with its own key');

    const fromPhone: Buffer[] = [];
    const fromPlain: Buffer[] = [];
    for (let i = 0; i < 50; i++) {
      const p = payload('phone', i);
      const wire = phone.sendRtp(p);
      assert.ok(!wire.subarray(12, 172).equals(p), 'the test phone really encrypts');
      fromPhone.push(p);
      fromPlain.push(plain.send(0, payload('plain', i)));
      await new Promise((r) => setTimeout(r, 2));
    }
    await plain.waitFor(() => plain.received.length >= 50, 5000, 'the plain phone to receive 50');
    await phone.waitFor(() => phone.rtp.length >= 50, 5000, 'the SRTP phone to receive 50');
    assert.deepEqual(plain.received.map((r) => r.payload.toString('hex')), fromPhone.map((p) => p.toString('hex')), 'decrypted before relaying');
    // on the SRTP phone's wire: 12-byte header + 160 encrypted bytes + 10-byte tag, never the plain bytes
    for (const r of phone.rtp) {
      assert.equal(r.wire.length, 12 + 160 + 10);
      assert.ok(!fromPlain.some((p) => r.wire.includes(p.subarray(0, 32))), 'plain payload bytes on the wire');
    }
    assert.deepEqual(phone.rtp.map((r) => r.clear?.subarray(12).toString('hex')), fromPlain.map((p) => p.toString('hex')), 'authenticated and decrypted with the answered key');

    // SRTCP from ferry: SR/RR (every 200 ms here), E flag set, authenticated with the answered key
    await phone.waitFor(() => phone.rtcp.some((r) => r.summary?.valid && (r.summary.types[0] === 200 || r.summary.types[0] === 201)), 5000, 'an SRTCP report');
    const report = phone.rtcp.find((r) => r.clear)!;
    assert.equal(report.wire.readUInt32BE(report.wire.length - 14) >>> 31, 1, 'E flag');
    assert.ok(phone.rtcp.every((r) => r.clear !== undefined), 'every RTCP datagram from ferry authenticates');

    const stats = await fetchStats(server.port);
    const el = stats.pipelinesDetail.find((p) => p.id === pipeline.id)!.elements.find((e) => e.id === a.id)!;
    assert.equal(el.srtp, true);
    assert.equal(el.srtpRefusedPackets, 0);

    // ferry's goodbye on release: an SRTCP compound with BYE
    const before = phone.rtcp.length;
    await pipeline.release();
    await phone.waitFor(() => phone.rtcp.slice(before).some((r) => r.summary?.bye), 3000, 'an SRTCP BYE');
  });

  test('SDES: plain RTP, wrong-key and replayed packets on an SRTP leg are dropped and counted, never relayed', async () => {
    const { pipeline, a, phone, plain } = await srtpCall();
    const captured = phone.sendRtp(payload('genuine', 0));
    await plain.waitFor(() => plain.received.length === 1, 5000, 'positive control: a genuine packet relayed');
    phone.sendRaw(phone.plainRtp(payload('plain-injected', 1))); // no tag at all
    const forged = Buffer.from(phone.sendRtp(payload('x', 2)));
    plain.received.length = 0;
    forged[20] ^= 0xff;
    phone.sendRaw(forged);
    phone.sendRaw(captured); // replay
    // from the phone's own address but under another key
    phone.sendRaw(new SrtpContext(newSrtpMaster()).protectRtp(phone.plainRtp(payload('other key', 3))));
    const elementOf = async () => (await fetchStats(server.port)).pipelinesDetail.find((p) => p.id === pipeline.id)!.elements.find((e) => e.id === a.id)!;
    const deadline = Date.now() + 5000;
    while ((await elementOf()).srtpRefusedPackets !== 4 && Date.now() < deadline) await pollPause(50);
    assert.equal((await elementOf()).srtpRefusedPackets, 4);
    // the packet sent before the forged copy (index 2) was relayed; after it nothing else arrived
    await plain.waitFor(() => plain.received.length >= 1, 2000, 'the genuine packet 2');
    phone.sendRtp(payload('genuine', 4));
    await plain.waitFor(() => plain.received.length >= 2, 2000, 'positive control after the refusals');
    assert.deepEqual(plain.received.map((r) => r.payload.subarray(0, 9).toString()), ['x 2 CCCCC', 'genuine 4']);
    await pipeline.release();
  });

  test('SDES: 3000 random datagrams (RTP- and RTCP-looking) from the phone\'s address are all refused; the genuine stream goes on', async () => {
    const { pipeline, a, phone, plain } = await srtpCall();
    phone.sendRtp(payload('first', 0));
    await plain.waitFor(() => plain.received.length === 1, 5000, 'positive control before the garbage');
    const random = rng(0x5a17);
    for (let i = 0; i < 3000; i++) {
      const b = Buffer.alloc(8 + Math.floor(random() * 300));
      for (let j = 0; j < b.length; j++) b[j] = Math.floor(random() * 256);
      b[0] = 0x80 | (b[0]! & 0x3f); // version 2: past the first filter
      if (i % 3 === 0) b[1] = 200 + (i % 5); // looks like RTCP
      else b[1] = i % 2 === 0 ? 0 : 101; // a negotiated payload type
      phone.sendRaw(b);
      if (i % 50 === 49) await new Promise((r) => setTimeout(r, 3)); // paced: loopback UDP drops bursts
    }
    phone.sendRtp(payload('after', 1));
    await plain.waitFor(() => plain.received.length >= 2, 5000, 'the genuine packet after the garbage');
    await new Promise((r) => setImmediate(r));
    const el = (await fetchStats(server.port)).pipelinesDetail.find((p) => p.id === pipeline.id)!.elements.find((e) => e.id === a.id)!;
    assert.deepEqual(plain.received.map((r) => r.payload.subarray(0, 7).toString()), ['first 0', 'after 1'], 'nothing but the genuine packets relayed');
    // most reached the leg and were refused there (loopback UDP may still drop some under load)
    assert.ok(Number(el.srtpRefusedPackets) > 1500, `refused ${String(el.srtpRefusedPackets)} of 3000`);
    console.log(`# garbage on the SRTP leg: ${String(el.srtpRefusedPackets)} of 3000 datagrams refused, 0 relayed`);
    await pipeline.release();
  });

  test('SDES: an SRTCP BYE from the phone ends the leg (rtcp-bye), so inbound SRTCP is authenticated and parsed', async () => {
    const { pipeline, a, phone, events } = await srtpCall();
    phone.sendRtp(payload('p', 0));
    phone.sendRtcpBye();
    await phone.waitFor(() => events.some((e) => e.source === a.id && e.data.reason === 'rtcp-bye'), 5000, 'MediaSessionTerminated(rtcp-bye)');
    await pipeline.release();
  });

  test('SDES: optional SRTP - an RTP/AVP offer with a usable a=crypto is answered RTP/AVP with our key and protected; with only unusable crypto lines it stays plain RTP', async () => {
    const { pipeline, phone, plain, answer } = await srtpCall((p) => p.sdp({ profile: 'RTP/AVP' }));
    assert.match(answer, /^m=audio \d+ RTP\/AVP 0 101\r$/m);
    assert.match(answer, /^a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:/m);
    phone.sendRtp(payload('optional', 0));
    await plain.waitFor(() => plain.received.length === 1, 5000, 'the SRTP packet relayed');
    assert.equal(plain.received[0]!.payload.subarray(0, 10).toString(), 'optional 0');
    plain.send(0, payload('back', 0));
    await phone.waitFor(() => phone.rtp.length === 1, 5000, 'a packet to the phone');
    assert.equal(phone.rtp[0]!.clear?.subarray(12, 18).toString(), 'back 0', 'protected with the answered key');
    await pipeline.release();

    const p2 = await client.create('MediaPipeline');
    const ep = await call<KurentoObjectLike>(p2, 'create', 'RtpEndpoint');
    const other = await SrtpTestPeer.open();
    closers.push(() => other.close());
    const plainAnswer = await call<string>(ep, 'processOffer', other.sdp({ profile: 'RTP/AVP', crypto: [`1 AES_CM_128_HMAC_SHA1_32 inline:${other.keyBase64}`] }));
    assert.match(plainAnswer, /^m=audio \d+ RTP\/AVP /m);
    assert.doesNotMatch(plainAnswer, /a=crypto/);
    await p2.release();
  });

  test('SDES: a re-offer (hold, then resume) with the same key keeps the streams; a new key from the phone is used from then on', async () => {
    const { pipeline, a, phone, plain, answer } = await srtpCall();
    for (let i = 0; i < 5; i++) phone.sendRtp(payload('before', i));
    await plain.waitFor(() => plain.received.length === 5, 5000, '5 packets before the re-offer');
    const held = await call<string>(a, 'processOffer', phone.sdp().replace('a=sendrecv', 'a=sendonly'));
    assert.match(held, /a=recvonly/);
    assert.equal(/inline:(\S+)/.exec(held)![1], /inline:(\S+)/.exec(answer)![1], 'our key does not change');
    for (let i = 5; i < 10; i++) phone.sendRtp(payload('held', i));
    await plain.waitFor(() => plain.received.length === 10, 5000, 'the stream goes on under the same key');
    // the phone re-keys: its packets under the new key (and a fresh sequence) pass, the old key's do not
    const rekeyed = await SrtpTestPeer.open();
    closers.push(() => rekeyed.close());
    const newKeySdp = phone.sdp({ crypto: [`1 AES_CM_128_HMAC_SHA1_80 inline:${rekeyed.keyBase64}`] });
    await call<string>(a, 'processOffer', newKeySdp);
    const fresh = new SrtpContext(rekeyed.master);
    phone.sendRaw(fresh.protectRtp(phone.plainRtp(payload('new key', 10))));
    await plain.waitFor(() => plain.received.length === 11, 5000, 'a packet under the new key');
    assert.equal(plain.received[10]!.payload.subarray(0, 9).toString(), 'new key 1');
    phone.sendRtp(payload('old key', 11));
    const elementOf = async () => (await fetchStats(server.port)).pipelinesDetail.find((p) => p.id === pipeline.id)!.elements.find((e) => e.id === a.id)!;
    const deadline = Date.now() + 3000;
    while ((await elementOf()).srtpRefusedPackets !== 1 && Date.now() < deadline) await pollPause(50);
    assert.equal((await elementOf()).srtpRefusedPackets, 1, 'the old key is no longer accepted');
    assert.equal(plain.received.length, 11);
    await pipeline.release();
  });

  test('SDES: an RTP/SAVP offer without a usable a=crypto is refused with SDP_END_POINT_PROCESS_OFFER_ERROR and binds no port', async () => {
    const phone = await SrtpTestPeer.open();
    closers.push(() => phone.close());
    const key = phone.keyBase64;
    const cases: [string, string[]][] = [
      ['no a=crypto', []],
      ['only an unsupported suite', [`1 AES_CM_128_HMAC_SHA1_32 inline:${key}`, `2 AEAD_AES_256_GCM inline:${key}`]],
      ['MKI', [`1 AES_CM_128_HMAC_SHA1_80 inline:${key}|2^20|1:4`]],
      ['a short key', [`1 AES_CM_128_HMAC_SHA1_80 inline:${key.slice(0, 20)}`]],
      ['an unsupported session parameter', [`1 AES_CM_128_HMAC_SHA1_80 inline:${key} UNENCRYPTED_SRTP`]],
    ];
    const portsBefore = (await fetchStats(server.port)).boundPorts;
    const pipeline = await client.create('MediaPipeline');
    for (const [what, crypto] of cases) {
      const ep = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
      await assert.rejects(call(ep, 'processOffer', phone.sdp({ crypto })), (err: Error & { code?: number }) => {
        assert.equal(err.code, 40205, `${what}: ${err.message}`);
        assert.match(err.message, /a=crypto/);
        return true;
      }, what);
    }
    const stats = await fetchStats(server.port);
    assert.equal(stats.pipelinesDetail.find((p) => p.id === pipeline.id)!.elements.length, cases.length);
    assert.equal(stats.boundPorts, portsBefore);
    // positive control: the same endpoint type accepts the usable offer
    const ok = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    assert.match(await call<string>(ok, 'processOffer', phone.sdp()), /RTP\/SAVP/);
    await pipeline.release();
  });

  test('SDES: with the crypto constructor parameter, generateOffer offers RTP/SAVP with that key and the answer\'s key protects the way back; an unsupported suite is NOT_IMPLEMENTED', async () => {
    const pipeline = await client.create('MediaPipeline');
    const phone = await SrtpTestPeer.open();
    closers.push(() => phone.close());
    const ourKey = Buffer.alloc(30, 7).toString('base64');
    const ep = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint', { crypto: new SDES({ crypto: 'AES_128_CM_HMAC_SHA1_80', keyBase64: ourKey }) });
    const offer = await call<string>(ep, 'generateOffer');
    assert.match(offer, /^m=audio \d+ RTP\/SAVP /m);
    assert.match(offer, new RegExp(`^a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:${ourKey.replace(/[+/]/g, '\\$&')}\r$`, 'm'));
    phone.useRemoteSdp(offer);
    await call(ep, 'processAnswer', phone.sdp());
    // ferry's RTCP reports reach the phone protected with the offered key
    await phone.waitFor(() => phone.rtcp.some((r) => r.clear !== undefined), 5000, 'an SRTCP report under the offered key');
    await assert.rejects(
      call(pipeline, 'create', 'RtpEndpoint', { crypto: new SDES({ crypto: 'AES_256_CM_HMAC_SHA1_80' }) }),
      (err: Error & { code?: number }) => err.code === 40006,
    );
    await pipeline.release();
  });
});
