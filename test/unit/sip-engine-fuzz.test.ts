/**
 * Engine-level fuzz: a running ferry sip (in process, real UDP/TCP/control sockets) is fed seeded
 * mutations of valid SIP messages and of control frames while a call is up. Nothing crashes, bad
 * input gets 400 or is dropped, a bad control frame closes only its own connection, and the call
 * in progress is not disturbed.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startSipEngine, type RunningSipEngine } from '../../src/sip/sip-engine-server';
import { SipUdpPhone, inviteText, sipToken, TEST_SDP, type ReceivedSip } from '../helpers/sip-udp-phone';
import { SAMPLES, mutate, prng } from '../helpers/sip-fuzz-samples';
import { ControlFrameDecoder, encodeControlFrame } from '../../src/sip/control/control-frame-decoder';
import { connectAnsweringSrf, routesApplied } from '../helpers/srf-app';
import { pollUntil } from '../helpers/wait-for';


describe('ferry sip under malformed input', { timeout: 60_000 }, () => {
  let engine: RunningSipEngine;
  let srf: any;
  let destroyed: string[] = [];

  before(async () => {
    // thousands of new requests from one address within seconds would pass the per-source rate of new
    // requests (test/integration/sip-request-rate.test.ts): off here, so every mutation reaches the engine
    engine = await startSipEngine({ host: '127.0.0.1', requestRate: { perSecond: 0 } });
    ({ srf, destroyed } = await connectAnsweringSrf(engine.ports.control, TEST_SDP));
  });
  after(async () => {
    try { srf.disconnect(); } catch { /* gone */ }
    await engine.close();
  });

  test('thousands of mutated datagrams and TCP streams mid-call: no crash, the call still ends cleanly', { timeout: 30_000 }, async () => {
    const phone = await SipUdpPhone.open(engine.ports.sip);
    try {
      const ids = { callId: sipToken(), fromTag: sipToken(), branch: sipToken() };
      phone.sendRaw(inviteText(phone, ids, engine.ports.sip));
      const ok = await phone.waitFor((m: ReceivedSip) => m.startLine.startsWith('SIP/2.0 200'));
      phone.sendRaw([`ACK sip:service@127.0.0.1 SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${phone.port};branch=z9hG4bK${sipToken()}`,
        `From: ${ok.header('From')}`, `To: ${ok.header('To')}`, `Call-ID: ${ids.callId}`, 'CSeq: 1 ACK', 'Content-Length: 0', '', ''].join('\r\n'));

      const fuzzer = await SipUdpPhone.open(engine.ports.sip);
      // a valid OPTIONS from the fuzzer's socket after a batch of garbage: its 200 (the app answers it) means the
      // engine has read every datagram before it, so the next batch does not overflow the socket buffer
      const marker = async (): Promise<void> => {
        const callId = sipToken();
        fuzzer.sendRaw([`OPTIONS sip:service@127.0.0.1:${engine.ports.sip} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${fuzzer.port};branch=z9hG4bK${sipToken()};rport`,
          'Max-Forwards: 70', `From: <sip:fuzzer@127.0.0.1>;tag=${sipToken()}`, 'To: <sip:service@127.0.0.1>', `Call-ID: ${callId}`,
          'CSeq: 1 OPTIONS', 'Content-Length: 0', '', ''].join('\r\n'));
        await fuzzer.waitFor((m: ReceivedSip) => m.header('Call-ID') === callId && m.startLine.startsWith('SIP/2.0 200'), 5_000);
      };
      const rnd = prng(42);
      for (let i = 0; i < 3000; i++) {
        const sample = Buffer.from(SAMPLES[i % SAMPLES.length].replace(/127\.0\.0\.1:5070/g, `127.0.0.1:${fuzzer.port}`));
        fuzzer.socket.send(mutate(sample, rnd), engine.ports.sip, '127.0.0.1');
        if (i % 100 === 99) await marker();
      }
      // TCP: mutated streams on several connections
      for (let c = 0; c < 20; c++) {
        const sock = net.connect(engine.ports.sip, '127.0.0.1');
        sock.on('error', () => {});
        await new Promise<void>((r) => sock.once('connect', () => r()));
        for (let i = 0; i < 20; i++) sock.write(mutate(Buffer.from(SAMPLES[(c + i) % SAMPLES.length]), rnd));
        sock.end();
      }
      // written on loopback before the marker went out: the engine has polled those sockets when it answers
      await marker();
      fuzzer.close();
      const answered400 = fuzzer.received.filter((m) => m.startLine.startsWith('SIP/2.0 400')).length;
      assert.ok(answered400 > 0, 'some malformed requests were answered 400');

      // the real call is undisturbed: its BYE works
      phone.sendRaw([`BYE sip:service@127.0.0.1 SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${phone.port};branch=z9hG4bK${sipToken()}`,
        `From: ${ok.header('From')}`, `To: ${ok.header('To')}`, `Call-ID: ${ids.callId}`, 'CSeq: 2 BYE', 'Content-Length: 0', '', ''].join('\r\n'));
      await phone.waitFor((m: ReceivedSip) => m.startLine.startsWith('SIP/2.0 200') && /BYE/.test(m.header('CSeq') ?? ''));
      await pollUntil(() => destroyed.length > 0, { timeoutMs: 2_000, what: "srf's destroy event" });
      assert.equal(destroyed.length, 1);
    } finally {
      phone.close();
    }
  });

  test('bad control frames close only that connection; the connected app keeps working', { timeout: 30_000 }, async () => {
    const rnd = prng(7);
    const valid = [`x1|authenticate|cymru|`, `x2|route|invite`, `x3|sip||\r\nOPTIONS sip:a@127.0.0.1:9 SIP/2.0\r\n\r\n`, 'x4|ping'];
    for (let i = 0; i < 150; i++) {
      const sock = net.connect(engine.ports.control, '127.0.0.1');
      sock.on('error', () => {});
      await new Promise<void>((r) => sock.once('connect', () => r()));
      const frame = valid[i % valid.length];
      const data = i % 3 === 0 ? mutate(encodeControlFrame(frame), rnd) : Buffer.concat([encodeControlFrame(valid[0]), mutate(encodeControlFrame(frame), rnd)]);
      sock.write(data);
      sock.end();
    }
    // a ping round trip on the app's connection, sent after every garbage frame was written: the engine
    // has polled those sockets by the time it answers
    await routesApplied(srf);
    // callback form: the 'response' listener is in place before the next control frame is read
    const status = await new Promise<number>((resolve, reject) => {
      srf.request(`sip:probe@127.0.0.1:${engine.ports.sip}`, { method: 'OPTIONS' }, (err: Error | null, r: any) => {
        if (err) return reject(err);
        r.on('response', (res: any) => resolve(res.status));
      });
    });
    assert.equal(status, 200, 'the engine routed our own OPTIONS back to the app, which answered it');
  });

  test('control frame decoder: split, packed, bad length prefix', { timeout: 5_000 }, () => {
    const d = new ControlFrameDecoder();
    const a = encodeControlFrame('id|sip||\r\nINVITE sip:é@x SIP/2.0\r\n\r\n');
    const b = encodeControlFrame('id2|ping');
    const both = Buffer.concat([a, b]);
    const frames: string[] = [];
    for (let i = 0; i < both.length; i += 3) frames.push(...d.push(both.subarray(i, i + 3)).frames);
    assert.deepEqual(frames, ['id|sip||\r\nINVITE sip:é@x SIP/2.0\r\n\r\n', 'id2|ping']);
    assert.ok(new ControlFrameDecoder().push(Buffer.from('12a#hello')).error);
  });
});
