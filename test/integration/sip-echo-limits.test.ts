/**
 * Values a response echoes (docs/security.md "Echoed header values"): every answer carries the request's
 * Via, From, To, Call-ID and CSeq back, so a request with a 60 kB Call-ID had that Call-ID reflected in the
 * 100 Trying and again in the 407 (retransmitted until acknowledged), over UDP to any source it forged.
 * Now a new request with a Call-ID, From/To tag or Via branch over 256 bytes (or over 8 kB echoed in all)
 * is answered nothing over UDP, and a small 400 that leaves the over-long values out over TCP; no app sees
 * it. Positive controls: the same requests with values at the bound are answered (100 and 407) as before.
 *
 * ferry sip in process (real UDP and TCP sockets) with a drachtio-srf app that challenges every INVITE with
 * 407, as the gateway does.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { startSipEngine, type RunningSipEngine } from '../../src/sip/sip-engine-server';
import { connectBareSrf, routesApplied } from '../helpers/srf-app';
import { sipToken } from '../helpers/sip-udp-phone';
import { pollUntil } from '../helpers/wait-for';

interface Answer { status: number; bytes: number; text: string }

function parseAnswers(text: string): Answer[] {
  return text.split(/(?=^SIP\/2\.0 )/m).filter((t) => t.startsWith('SIP/2.0 ')).map((t) => ({ status: Number(t.slice(8, 11)), bytes: Buffer.byteLength(t), text: t }));
}

describe('ferry sip: over-long Call-ID, tags and branch are not echoed', { timeout: 60_000 }, () => {
  let engine: RunningSipEngine;
  let srf: any;
  const seenByApp: string[] = [];
  let udp: dgram.Socket;
  const udpAnswers: Answer[] = [];

  before(async () => {
    engine = await startSipEngine({ host: '127.0.0.1' });
    srf = await connectBareSrf(engine.ports.control);
    srf.invite((req: any, res: any) => {
      seenByApp.push(req.get('Call-ID'));
      res.send(407, { headers: { 'Proxy-Authenticate': 'Digest realm="ferry", nonce="abc", algorithm=MD5, qop="auth"' } });
    });
    await routesApplied(srf);
    udp = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', () => resolve()));
    udp.on('message', (d) => udpAnswers.push(...parseAnswers(d.toString('utf8'))));
  });
  after(async () => {
    udp.close();
    try { srf.disconnect(); } catch { /* gone */ }
    await engine.close();
  });

  function invite(transport: 'UDP' | 'TCP', port: number, v: { callId?: string; fromTag?: string; branch?: string } = {}): string {
    return ['INVITE sip:service@127.0.0.1 SIP/2.0', `Via: SIP/2.0/${transport} 127.0.0.1:${port};branch=${v.branch ?? `z9hG4bK${sipToken()}`};rport`,
      'Max-Forwards: 70', `From: <sip:peer@127.0.0.1>;tag=${v.fromTag ?? sipToken()}`, 'To: <sip:service@127.0.0.1>', `Call-ID: ${v.callId ?? sipToken()}`,
      'CSeq: 1 INVITE', `Contact: <sip:peer@127.0.0.1:${port}>`, 'Content-Length: 0', '', ''].join('\r\n');
  }
  const refused400 = (): number => engine.engine.intakeCounts().refusedByStatus.get(400) ?? 0;

  test('UDP: a 60 kB Call-ID gets no answer at all and reaches no app; a 256-byte one gets its 100 and 407', { timeout: 20_000 }, async () => {
    const port = udp.address().port;
    const long = `${'x'.repeat(60_000)}@attacker`;
    const before400 = refused400();
    udp.send(invite('UDP', port, { callId: long }), engine.ports.sip, '127.0.0.1');
    await pollUntil(() => refused400() > before400, { timeoutMs: 5_000, what: 'the over-long INVITE refused' });
    // the positive control, sent after it: answered 100 and 407, which echo its Call-ID
    const atBound = `${sipToken()}${'y'.repeat(256)}`.slice(0, 256);
    udp.send(invite('UDP', port, { callId: atBound }), engine.ports.sip, '127.0.0.1');
    await pollUntil(() => udpAnswers.some((a) => a.status === 407 && a.text.includes(atBound)), { timeoutMs: 5_000, what: 'the 407 of the control INVITE' });
    assert.ok(udpAnswers.some((a) => a.status === 100 && a.text.includes(atBound)), 'its 100 Trying');
    assert.ok(seenByApp.includes(atBound), 'the app saw the control INVITE');
    // the over-long one: nothing came back, nothing reached the app
    assert.equal(udpAnswers.filter((a) => a.text.includes('xxxxxxxxxx')).length, 0, 'no answer echoes the 60 kB Call-ID');
    assert.ok(udpAnswers.every((a) => a.bytes < 2_000), `largest answer ${Math.max(...udpAnswers.map((a) => a.bytes))} bytes`);
    assert.ok(!seenByApp.some((c) => c.length > 256), 'no app saw it');
  });

  test('TCP: a 60 kB From tag, Via branch or Call-ID gets a 400 under 2 kB that leaves it out; the connection still serves a valid INVITE', { timeout: 20_000 }, async () => {
    const sock = net.connect(engine.ports.sip, '127.0.0.1');
    await new Promise<void>((resolve, reject) => { sock.once('connect', () => resolve()); sock.once('error', reject); });
    let got = '';
    sock.on('data', (d) => { got += d.toString('utf8'); });
    const port = sock.localPort!;
    const huge = 'z'.repeat(60_000);
    try {
      for (const v of [{ fromTag: huge }, { branch: `z9hG4bK${huge}` }, { callId: huge }]) {
        const answersBefore = parseAnswers(got).length;
        sock.write(invite('TCP', port, v));
        await pollUntil(() => parseAnswers(got).length > answersBefore, { timeoutMs: 5_000, what: `the answer to an INVITE with a long ${Object.keys(v)[0]}` });
        const a = parseAnswers(got).at(-1)!;
        assert.equal(a.status, 400, a.text.slice(0, 200));
        assert.ok(a.bytes < 2_000, `a ${a.bytes}-byte 400`);
        assert.ok(!a.text.includes('zzzzzzzzzz'), 'the over-long value is not in it');
      }
      // the positive control on the same connection: tags and branch at the bound are served (100, 407)
      const tag = 'a'.repeat(256);
      const callId = sipToken();
      sock.write(invite('TCP', port, { fromTag: tag, branch: `z9hG4bK${'b'.repeat(249)}`, callId }));
      await pollUntil(() => parseAnswers(got).some((a) => a.status === 407 && a.text.includes(callId)), { timeoutMs: 5_000, what: 'the 407 of the control INVITE' });
      assert.ok(parseAnswers(got).find((a) => a.status === 407 && a.text.includes(callId))!.text.includes(tag), 'its 407 echoes the 256-byte tag');
      assert.ok(!seenByApp.some((c) => c.includes('zzzz')), 'no app saw the over-long ones');
    } finally {
      sock.destroy();
    }
  });
});
