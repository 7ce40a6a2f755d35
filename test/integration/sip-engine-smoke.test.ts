/**
 * Smoke test of `bin/ferry sip` with the real npm drachtio-srf and real SIP peers (SIPp, a scripted
 * UDP phone). Runs against ferry sip only (no drachtio-server here).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { spawnSipEngine, type SipEngineProcess } from '../helpers/sip-engine-process';
import { SipUdpPhone, inviteText, sipToken, TEST_SDP } from '../helpers/sip-udp-phone';
import { connectBareSrf as connectSrf, routesApplied } from '../helpers/srf-app';
import { pollUntil } from '../helpers/wait-for';
import WebSocket from 'ws';

function runSipp(args: string[], timeoutMs = 30_000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('sipp', [...args, '-nostdin', '-timeout', String(Math.floor(timeoutMs / 1000)) + 's'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs + 5_000);
    child.on('exit', (code) => { clearTimeout(t); resolve({ code, out }); });
  });
}

describe('ferry sip smoke (drachtio-srf + SIPp, against ferry sip only)', { timeout: 180_000 }, () => {
  let engine: SipEngineProcess;
  let srf: any;
  const events: string[] = [];
  let answerMode: 'answer' | 'hold-for-cancel' | 'ring-then-update' | 'reliable-183' = 'answer';

  before(async () => {
    engine = await spawnSipEngine({ FERRY_SIP_T1_MS: '50', FERRY_SIP_T2_MS: '400', FERRY_SIP_T4_MS: '500' });
    srf = await connectSrf(engine.ports.control);
    srf.invite(async (req: any, res: any) => {
      events.push(`invite:${req.protocol}`);
      if (answerMode === 'hold-for-cancel') {
        req.on('cancel', () => events.push('cancel'));
        return;
      }
      if (answerMode === 'reliable-183') {
        res.send(183, { headers: { Require: '100rel' }, body: TEST_SDP }, undefined, () => {
          events.push('prack');
          setTimeout(() => res.send(200, { body: TEST_SDP }), 50);
        });
        return;
      }
      if (answerMode === 'ring-then-update') {
        req.on('update', (_u: any, ures: any) => { events.push('early-update'); ures.send(200); res.send(486); });
        res.send(180);
        return;
      }
      const dlg = await srf.createUAS(req, res, { localSdp: TEST_SDP });
      events.push(`dialog:${dlg.id}`);
      dlg.on('destroy', (_m: unknown, reason: string) => events.push(`destroy:${dlg.id}:${reason ?? ''}`));
    });
    await routesApplied(srf);
  });

  /**
   * The positive control of a "no more retransmissions" check: a second call CANCELled and never ACKed
   * has its 487 retransmitted by Timer G (T1 = 50 ms doubling to T2 = 400 ms). Once it has been sent
   * `copies` times, more than T2 has passed in which the engine's retransmission timers demonstrably
   * ran and this process demonstrably received them; a timer that had not stopped would have fired too.
   * `caughtUp` runs once the engine has answered this call's INVITE: it has handled what was sent before.
   */
  async function retransmissionWindow(caughtUp: () => void, copies = 5): Promise<void> {
    const mode = answerMode;
    answerMode = 'hold-for-cancel';
    const other = await SipUdpPhone.open(engine.ports.sip);
    try {
      const ids = { callId: sipToken(), fromTag: sipToken(), branch: sipToken() };
      other.sendRaw(inviteText(other, ids, engine.ports.sip));
      await other.waitFor((m) => m.startLine.startsWith('SIP/2.0 100'));
      caughtUp(); // the engine has read everything sent before this INVITE
      await waitUntil(() => events.includes('invite:udp'));
      other.sendRaw(cancelText(other, ids));
      await waitUntil(() => other.count((m) => m.startLine.startsWith('SIP/2.0 487')) >= copies);
      const r487 = await other.waitFor((m) => m.startLine.startsWith('SIP/2.0 487'));
      other.sendRaw(ackText(other, ids, r487.header('To') ?? ''));
    } finally {
      other.close();
      answerMode = mode;
    }
  }

  after(async () => {
    srf?.disconnect();
    await engine?.stop();
  });

  test('createUAS answers a SIPp UAC over UDP, BYE from SIPp ends the dialog', async () => {
    events.length = 0;
    answerMode = 'answer';
    const r = await runSipp(['-sn', 'uac', '-i', '127.0.0.1', '-p', '0', `127.0.0.1:${engine.ports.sip}`, '-m', '1', '-d', '200']);
    assert.equal(r.code, 0, r.out.slice(-2000));
    assert.ok(events.includes('invite:udp'), events.join());
    const dialog = events.find((e) => e.startsWith('dialog:'));
    assert.ok(dialog, events.join());
    await waitUntil(() => events.some((e) => e.startsWith('destroy:')));
  });

  test('createUAS answers a SIPp UAC over TCP', async () => {
    events.length = 0;
    const r = await runSipp(['-sn', 'uac', '-t', 't1', '-i', '127.0.0.1', '-p', '0', `127.0.0.1:${engine.ports.sip}`, '-m', '1', '-d', '200']);
    assert.equal(r.code, 0, r.out.slice(-2000));
    assert.ok(events.includes('invite:tcp'), events.join());
    await waitUntil(() => events.some((e) => e.startsWith('destroy:')));
  });

  test('CANCEL before answer: engine answers 200 + 487 and tells the app', async () => {
    events.length = 0;
    answerMode = 'hold-for-cancel';
    const phone = await SipUdpPhone.open(engine.ports.sip);
    try {
      const ids = { callId: sipToken(), fromTag: sipToken(), branch: sipToken() };
      phone.sendRaw(inviteText(phone, ids, engine.ports.sip));
      await phone.waitFor((m) => m.startLine.startsWith('SIP/2.0 100'));
      await waitUntil(() => events.includes('invite:udp'));
      phone.sendRaw(cancelText(phone, ids));
      await phone.waitFor((m) => m.startLine.startsWith('SIP/2.0 200') && /CANCEL/.test(m.header('CSeq') ?? ''));
      const r487 = await phone.waitFor((m) => m.startLine.startsWith('SIP/2.0 487'));
      assert.match(r487.header('CSeq') ?? '', /1 INVITE/);
      await waitUntil(() => events.includes('cancel'));
      // no ACK yet: the 487 is retransmitted (Timer G) until we ACK it
      await waitUntil(() => phone.count((m) => m.startLine.startsWith('SIP/2.0 487')) >= 2);
      phone.sendRaw(ackText(phone, ids, r487.header('To') ?? ''));
      let n = 0;
      events.length = 0;
      await retransmissionWindow(() => { n = phone.count((m) => m.startLine.startsWith('SIP/2.0 487')); });
      assert.equal(phone.count((m) => m.startLine.startsWith('SIP/2.0 487')), n, '487 retransmissions stop after ACK');
    } finally {
      phone.close();
    }
  });

  test('an ACK that never comes: 2xx retransmitted, then the engine sends BYE and reports it as unsolicited', async () => {
    events.length = 0;
    answerMode = 'answer';
    const phone = await SipUdpPhone.open(engine.ports.sip);
    phone.autoAnswer = (m) => {
      if (!m.startLine.startsWith('BYE ')) return undefined;
      return ['SIP/2.0 200 OK', `Via: ${m.header('Via')}`, `From: ${m.header('From')}`, `To: ${m.header('To')}`,
        `Call-ID: ${m.header('Call-ID')}`, `CSeq: ${m.header('CSeq')}`, 'Content-Length: 0', '', ''].join('\r\n');
    };
    try {
      const ids = { callId: sipToken(), fromTag: sipToken(), branch: sipToken() };
      phone.sendRaw(inviteText(phone, ids, engine.ports.sip));
      await phone.waitFor((m) => m.startLine.startsWith('SIP/2.0 200'));
      const bye = await phone.waitFor((m) => m.startLine.startsWith('BYE '), 15_000);
      assert.equal(bye.header('Call-ID'), ids.callId);
      const oks = phone.count((m) => m.startLine.startsWith('SIP/2.0 200'));
      assert.ok(oks >= 4, `2xx was retransmitted (${oks} copies)`);
      await waitUntil(() => events.some((e) => e.startsWith('destroy:')));
    } finally {
      phone.close();
    }
  });

  test('UPDATE in the early dialog reaches the app holding the unanswered INVITE', async () => {
    events.length = 0;
    answerMode = 'ring-then-update';
    const phone = await SipUdpPhone.open(engine.ports.sip);
    try {
      const ids = { callId: sipToken(), fromTag: sipToken(), branch: sipToken() };
      phone.sendRaw(inviteText(phone, ids, engine.ports.sip));
      const ringing = await phone.waitFor((m) => m.startLine.startsWith('SIP/2.0 180'));
      assert.match(ringing.header('To') ?? '', /;tag=/);
      phone.sendRaw([
        `UPDATE sip:service@127.0.0.1:${engine.ports.sip} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${phone.port};branch=z9hG4bK${sipToken()};rport`,
        'Max-Forwards: 70', `From: ${ringing.header('From')}`, `To: ${ringing.header('To')}`,
        `Call-ID: ${ids.callId}`, 'CSeq: 2 UPDATE', `Contact: <sip:phone@127.0.0.1:${phone.port}>`, 'Content-Length: 0', '', ''].join('\r\n'));
      const r = await phone.waitFor((m) => /UPDATE/.test(m.header('CSeq') ?? ''));
      assert.equal(r.startLine, 'SIP/2.0 200 OK');
      await phone.waitFor((m) => m.startLine.startsWith('SIP/2.0 486'));
      assert.ok(events.includes('early-update'));
    } finally {
      phone.close();
      answerMode = 'answer';
    }
  });

  test('reliable 183 (RFC 3262): RSeq added, retransmitted until PRACK, PRACK reaches srf\'s callback and gets 200', async () => {
    events.length = 0;
    answerMode = 'reliable-183';
    const phone = await SipUdpPhone.open(engine.ports.sip);
    try {
      const ids = { callId: sipToken(), fromTag: sipToken(), branch: sipToken() };
      phone.sendRaw(inviteText(phone, ids, engine.ports.sip).replace('CSeq: 1 INVITE', 'CSeq: 1 INVITE\r\nSupported: 100rel'));
      const p183 = await phone.waitFor((m) => m.startLine.startsWith('SIP/2.0 183'));
      const rseq = p183.header('RSeq');
      assert.match(rseq ?? '', /^\d+$/);
      await waitUntil(() => phone.count((m) => m.startLine.startsWith('SIP/2.0 183')) >= 3);
      phone.sendRaw([
        `PRACK sip:service@127.0.0.1:${engine.ports.sip} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${phone.port};branch=z9hG4bK${sipToken()};rport`,
        'Max-Forwards: 70', `From: ${p183.header('From')}`, `To: ${p183.header('To')}`,
        `Call-ID: ${ids.callId}`, 'CSeq: 2 PRACK', `RAck: ${rseq} 1 INVITE`, 'Content-Length: 0', '', ''].join('\r\n'));
      const prackOk = await phone.waitFor((m) => /PRACK/.test(m.header('CSeq') ?? ''));
      assert.equal(prackOk.startLine, 'SIP/2.0 200 OK');
      await phone.waitFor((m) => m.startLine.startsWith('SIP/2.0 200') && /INVITE/.test(m.header('CSeq') ?? ''));
      assert.ok(events.includes('prack'), events.join());
      let n = 0;
      events.length = 0;
      await retransmissionWindow(() => { n = phone.count((m) => m.startLine.startsWith('SIP/2.0 183')); });
      assert.equal(phone.count((m) => m.startLine.startsWith('SIP/2.0 183')), n, 'no 183 retransmission after PRACK');
    } finally {
      phone.close();
      answerMode = 'answer';
    }
  });

  test('createUAC to a phone that answers with a reliable 183: srf PRACKs it in the early dialog, then the call is up', async () => {
    const phone = await SipUdpPhone.open(engine.ports.sip);
    const reply = (m: any, status: string, extra: string[], body = '') => ['SIP/2.0 ' + status, `Via: ${m.header('Via')}`,
      `From: ${m.header('From')}`, `To: ${m.header('To')}${/;tag=/.test(m.header('To') ?? '') ? '' : ';tag=uas1'}`,
      `Call-ID: ${m.header('Call-ID')}`, `CSeq: ${m.header('CSeq')}`, `Contact: <sip:phone@127.0.0.1:${phone.port}>`, ...extra,
      ...(body ? ['Content-Type: application/sdp'] : []), `Content-Length: ${Buffer.byteLength(body)}`, '', body].join('\r\n');
    let invite: any;
    phone.autoAnswer = (m) => {
      if (m.startLine.startsWith('INVITE ')) {
        invite = m;
        return reply(m, '183 Session Progress', ['Require: 100rel', 'RSeq: 77'], TEST_SDP);
      }
      if (m.startLine.startsWith('PRACK ')) {
        setTimeout(() => phone.socket.send(Buffer.from(reply(invite, '200 OK', [], TEST_SDP)), engine.ports.sip, '127.0.0.1'), 20);
        return reply(m, '200 OK', []);
      }
      if (m.startLine.startsWith('BYE ')) return reply(m, '200 OK', []);
      return undefined;
    };
    try {
      const dlg = await srf.createUAC(`sip:phone@127.0.0.1:${phone.port}`, { localSdp: TEST_SDP });
      const prack = await phone.waitFor((m) => m.startLine.startsWith('PRACK '));
      assert.equal(prack.header('RAck'), '77 1 INVITE');
      assert.equal(prack.header('Call-ID'), invite.header('Call-ID'));
      assert.match(prack.header('To') ?? '', /tag=uas1/);
      assert.equal(prack.header('CSeq'), '2 PRACK');
      await phone.waitFor((m) => m.startLine.startsWith('ACK '));
      await dlg.destroy();
      const bye = await phone.waitFor((m) => m.startLine.startsWith('BYE '));
      assert.equal(bye.header('CSeq'), '3 BYE');
    } finally {
      phone.close();
    }
  });

  test('malformed SIP gets 400 or is dropped, and the next call still works', async () => {
    const phone = await SipUdpPhone.open(engine.ports.sip);
    try {
      phone.sendRaw('\x00\x01garbage that is not SIP\r\n\r\n');
      phone.sendRaw([`OPTIONS sip:x@127.0.0.1 SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${phone.port};branch=z9hG4bKbad1`,
        'From: <sip:a@b>;tag=1', 'To: <sip:x@127.0.0.1>', 'Call-ID: bad1', 'CSeq: nonsense', 'Content-Length: 0', '', ''].join('\r\n'));
      const r = await phone.waitFor((m) => m.startLine.startsWith('SIP/2.0 400'));
      assert.equal(r.header('Call-ID'), 'bad1');
      events.length = 0;
      answerMode = 'answer';
      const sipp = await runSipp(['-sn', 'uac', '-i', '127.0.0.1', '-p', '0', `127.0.0.1:${engine.ports.sip}`, '-m', '1']);
      assert.equal(sipp.code, 0);
    } finally {
      phone.close();
    }
  });
});

describe('ferry sip: several apps and other methods (against ferry sip only)', { timeout: 60_000 }, () => {
  let engine: SipEngineProcess;
  before(async () => { engine = await spawnSipEngine(); });
  after(async () => { await engine?.stop(); });

  function optionsText(phone: SipUdpPhone, i: number): string {
    return [`OPTIONS sip:ping@127.0.0.1:${engine.ports.sip} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${phone.port};branch=z9hG4bK${sipToken()};rport`,
      'Max-Forwards: 70', `From: <sip:phone@127.0.0.1>;tag=${sipToken()}`, `To: <sip:ping@127.0.0.1>`, `Call-ID: opt-${i}-${sipToken()}`,
      'CSeq: 1 OPTIONS', 'Content-Length: 0', '', ''].join('\r\n');
  }

  test('new requests are dealt round-robin between the apps that routed the method', async () => {
    const apps = [await connectSrf(engine.ports.control), await connectSrf(engine.ports.control), await connectSrf(engine.ports.control)];
    const seen = [0, 0, 0];
    apps.forEach((a, i) => a.options((_req: any, res: any) => { seen[i]++; res.send(200); }));
    await Promise.all(apps.map((a) => routesApplied(a)));
    const phone = await SipUdpPhone.open(engine.ports.sip);
    try {
      for (let i = 0; i < 6; i++) phone.sendRaw(optionsText(phone, i));
      await waitUntil(() => phone.count((m) => m.startLine === 'SIP/2.0 200 OK') === 6);
      assert.deepEqual(seen, [2, 2, 2]);
      apps[1].disconnect();
      // the engine has dropped the app once the other two apps' pings come back after it saw the close
      await waitUntil(() => apps[1]._app.client.mapServer.size === 0);
      await Promise.all([routesApplied(apps[0]), routesApplied(apps[2])]);
      for (let i = 6; i < 10; i++) phone.sendRaw(optionsText(phone, i));
      await waitUntil(() => phone.count((m) => m.startLine === 'SIP/2.0 200 OK') === 10);
      assert.deepEqual(seen, [4, 2, 4]);
    } finally {
      phone.close();
      apps[0].disconnect();
      apps[2].disconnect();
    }
  });

  test('in-dialog INFO and MESSAGE from the phone reach the srf Dialog; REGISTER over UDP passes through', async () => {
    const srf = await connectSrf(engine.ports.control);
    const got: string[] = [];
    srf.invite(async (req: any, res: any) => {
      const d = await srf.createUAS(req, res, { localSdp: TEST_SDP });
      d.on('info', (_r: any, rs: any) => { got.push('info'); rs.send(200); });
      d.on('message', (_r: any, rs: any) => { got.push('message'); rs.send(202); });
    });
    srf.register((req: any, res: any) => { got.push(`register:${req.protocol}`); res.send(401, { headers: { 'WWW-Authenticate': 'Digest realm="ferry", nonce="abc"' } }); });
    await routesApplied(srf);
    const phone = await SipUdpPhone.open(engine.ports.sip);
    try {
      const ids = { callId: sipToken(), fromTag: sipToken(), branch: sipToken() };
      phone.sendRaw(inviteText(phone, ids, engine.ports.sip));
      const ok = await phone.waitFor((m) => m.startLine.startsWith('SIP/2.0 200'));
      const inDialog = (method: string, cseq: number, body = '') => [`${method} sip:service@127.0.0.1 SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${phone.port};branch=z9hG4bK${sipToken()};rport`, 'Max-Forwards: 70', `From: ${ok.header('From')}`,
        `To: ${ok.header('To')}`, `Call-ID: ${ids.callId}`, `CSeq: ${cseq} ${method}`, ...(body ? ['Content-Type: text/plain'] : []),
        `Content-Length: ${Buffer.byteLength(body)}`, '', body].join('\r\n');
      phone.sendRaw(inDialog('ACK', 1));
      phone.sendRaw(inDialog('INFO', 2, 'Signal=5'));
      phone.sendRaw(inDialog('MESSAGE', 3, 'hello ☎'));
      await waitUntil(() => phone.count((m) => /INFO|MESSAGE/.test(m.header('CSeq') ?? '') && /^SIP\/2\.0 20[02]/.test(m.startLine)) === 2);
      assert.deepEqual(got, ['info', 'message']);
      phone.sendRaw(['REGISTER sip:127.0.0.1 SIP/2.0', `Via: SIP/2.0/UDP 127.0.0.1:${phone.port};branch=z9hG4bK${sipToken()};rport`,
        'Max-Forwards: 70', `From: <sip:1001@127.0.0.1>;tag=${sipToken()}`, 'To: <sip:1001@127.0.0.1>', `Call-ID: reg-${sipToken()}`,
        'CSeq: 1 REGISTER', `Contact: <sip:1001@127.0.0.1:${phone.port}>`, 'Expires: 60', 'Content-Length: 0', '', ''].join('\r\n'));
      const challenge = await phone.waitFor((m) => m.startLine.startsWith('SIP/2.0 401'));
      assert.equal(challenge.header('WWW-Authenticate'), 'Digest realm="ferry", nonce="abc"');
      assert.ok(got.includes('register:udp'));
    } finally {
      phone.close();
      srf.disconnect();
    }
  });
});

describe('ferry sip webphone flows over WebSocket (against ferry sip only)', { timeout: 60_000 }, () => {
  let engine: SipEngineProcess;
  let srf: any;
  before(async () => {
    engine = await spawnSipEngine();
    srf = await connectSrf(engine.ports.control);
    srf.register((req: any, res: any) => {
      res.send(200, { headers: { Contact: `${req.get('Contact')};expires=600`, Expires: '600' } });
    });
    await routesApplied(srf);
  });
  after(async () => {
    srf?.disconnect();
    await engine?.stop();
  });

  test('a WebSocket client that does not offer the sip subprotocol is refused', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${engine.ports.ws}`, 'chat');
    const outcome = await new Promise<string>((resolve) => {
      ws.once('open', () => resolve('open'));
      ws.once('error', (e) => resolve(`error: ${e.message}`));
    });
    assert.match(outcome, /^error: Unexpected server response: 401/);
  });

  test('REGISTER over WS binds the .invalid Contact; an INVITE from the app reaches the socket; once the socket closed, INVITEs to it are reported sent and answered 410 Gone by the engine (503 for a Contact never bound); a new registration is served again', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${engine.ports.ws}`, 'sip');
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
    assert.equal(ws.protocol, 'sip');
    const inbox: string[] = [];
    ws.on('message', (d) => {
      const text = d.toString();
      inbox.push(text);
      if (text.startsWith('INVITE ') || text.startsWith('BYE ')) {
        const h = (n: string) => new RegExp(`^${n}: (.*)$`, 'mi').exec(text)?.[1];
        const body = text.startsWith('INVITE') ? TEST_SDP : '';
        ws.send(['SIP/2.0 200 OK', ...text.split('\r\n').filter((l) => /^Via:/i.test(l)), `From: ${h('From')}`,
          `To: ${h('To')}${text.startsWith('INVITE') ? ';tag=wsphone' : ''}`, `Call-ID: ${h('Call-ID')}`, `CSeq: ${h('CSeq')}`,
          'Contact: <sip:k7m2@df7jal23ls0d.invalid;transport=ws>', ...(body ? ['Content-Type: application/sdp'] : []),
          `Content-Length: ${Buffer.byteLength(body)}`, '', body].join('\r\n'));
      }
    });
    // keep-alive: CRLFCRLF is answered with CRLF
    ws.send('\r\n\r\n');
    await waitUntil(() => inbox.includes('\r\n'));
    ws.send(['REGISTER sip:127.0.0.1 SIP/2.0', 'Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKreg1', 'Max-Forwards: 69',
      'From: <sip:1001@127.0.0.1>;tag=r1', 'To: <sip:1001@127.0.0.1>', 'Call-ID: ws-reg-1', 'CSeq: 1 REGISTER',
      'Contact: <sip:k7m2@df7jal23ls0d.invalid;transport=ws>;+sip.ice;reg-id=1;+sip.instance="<urn:uuid:0d3b>"',
      'Expires: 600', 'Content-Length: 0', '', ''].join('\r\n'));
    await waitUntil(() => inbox.some((m) => m.startsWith('SIP/2.0 200') && /REGISTER/.test(m)));

    const dlg = await srf.createUAC('sip:k7m2@df7jal23ls0d.invalid;transport=ws', { localSdp: TEST_SDP });
    const invite = inbox.find((m) => m.startsWith('INVITE '))!;
    assert.match(invite, /^Via: SIP\/2\.0\/WS /m);
    assert.match(invite, /^INVITE sip:k7m2@df7jal23ls0d\.invalid;transport=ws SIP\/2\.0/);
    await waitUntil(() => inbox.some((m) => m.startsWith('ACK ')));
    await dlg.destroy();
    assert.ok(inbox.some((m) => m.startsWith('BYE ')));

    const wsClosed = new Promise((r) => ws.once('close', r));
    ws.close();
    await wsClosed;
    // our FIN reached ferry sip before the ping that follows: by its answer the engine has seen the close and dropped the binding
    await routesApplied(srf);
    // as drachtio-server: the request is reported sent, then its stack answers 410 Gone itself (the
    // connection the Contact registered over closed before its registration lapsed)
    let sent = false;
    await assert.rejects(
      srf.createUAC('sip:k7m2@df7jal23ls0d.invalid;transport=ws', { localSdp: TEST_SDP }, { cbRequest: (err: unknown, r: unknown) => { sent = !err && !!r; } }),
      (e: { status?: number }) => e.status === 410,
    );
    assert.ok(sent, 'the app was told the INVITE was sent');
    // a Contact never registered over a connection: 503
    await assert.rejects(srf.createUAC('sip:nobody@zz9plural.invalid;transport=ws', { localSdp: TEST_SDP }), (e: { status?: number }) => e.status === 503);
    // a new registration over a live connection clears the lost mark (positive control: the INVITE is delivered again)
    const ws2 = new WebSocket(`ws://127.0.0.1:${engine.ports.ws}`, 'sip');
    await new Promise<void>((resolve, reject) => { ws2.once('open', () => resolve()); ws2.once('error', reject); });
    const inbox2: string[] = [];
    ws2.on('message', (d) => {
      const text = d.toString();
      inbox2.push(text);
      if (text.startsWith('INVITE ')) {
        const h = (n: string) => new RegExp(`^${n}: (.*)$`, 'mi').exec(text)?.[1];
        ws2.send(['SIP/2.0 486 Busy Here', ...text.split('\r\n').filter((l) => /^Via:/i.test(l)), `From: ${h('From')}`,
          `To: ${h('To')};tag=busy`, `Call-ID: ${h('Call-ID')}`, `CSeq: ${h('CSeq')}`, 'Content-Length: 0', '', ''].join('\r\n'));
      }
    });
    ws2.send(['REGISTER sip:127.0.0.1 SIP/2.0', 'Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKreg2', 'Max-Forwards: 69',
      'From: <sip:1001@127.0.0.1>;tag=r2', 'To: <sip:1001@127.0.0.1>', 'Call-ID: ws-reg-2', 'CSeq: 1 REGISTER',
      'Contact: <sip:k7m2@df7jal23ls0d.invalid;transport=ws>', 'Expires: 600', 'Content-Length: 0', '', ''].join('\r\n'));
    await waitUntil(() => inbox2.some((m) => m.startsWith('SIP/2.0 200') && /REGISTER/.test(m)));
    await assert.rejects(srf.createUAC('sip:k7m2@df7jal23ls0d.invalid;transport=ws', { localSdp: TEST_SDP }), (e: { status?: number }) => e.status === 486);
    assert.ok(inbox2.some((m) => m.startsWith('INVITE ')), 'the INVITE reached the new connection');
    const ws2Closed = new Promise((r) => ws2.once('close', r));
    ws2.close();
    await ws2Closed;
  });
});

async function waitUntil(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  await pollUntil(cond, { timeoutMs, what: 'condition' });
}

function cancelText(phone: SipUdpPhone, ids: { callId: string; fromTag: string; branch: string }): string {
  return [
    `CANCEL sip:service@127.0.0.1:${phone.target.port} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${phone.port};branch=z9hG4bK${ids.branch};rport`,
    'Max-Forwards: 70',
    `From: <sip:phone@127.0.0.1:${phone.port}>;tag=${ids.fromTag}`,
    `To: <sip:service@127.0.0.1:${phone.target.port}>`,
    `Call-ID: ${ids.callId}`, 'CSeq: 1 CANCEL', 'Content-Length: 0', '', ''].join('\r\n');
}

function ackText(phone: SipUdpPhone, ids: { callId: string; fromTag: string; branch: string }, to: string): string {
  return [
    `ACK sip:service@127.0.0.1:${phone.target.port} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${phone.port};branch=z9hG4bK${ids.branch};rport`,
    'Max-Forwards: 70',
    `From: <sip:phone@127.0.0.1:${phone.port}>;tag=${ids.fromTag}`,
    `To: ${to}`,
    `Call-ID: ${ids.callId}`, 'CSeq: 1 ACK', 'Content-Length: 0', '', ''].join('\r\n');
}

/**
 * A new request whose TCP next hop cannot be reached, as drachtio-server answers it: reported sent,
 * then the engine's own final response (503 at once for a refused connection, 408 at 64·T1 for one
 * that never comes up: a listener that accepts nothing and whose backlog is full drops our SYN).
 */
describe('ferry sip: a TCP next hop that cannot be reached (against ferry sip only)', { timeout: 60_000 }, () => {
  const T1_MS = 50;
  let engine: SipEngineProcess;
  let srf: any;
  let stuck: ReturnType<typeof spawn> | undefined;
  const fillers: import('node:net').Socket[] = [];
  before(async () => {
    engine = await spawnSipEngine({ FERRY_SIP_T1_MS: String(T1_MS) });
    srf = await connectSrf(engine.ports.control);
  });
  after(async () => {
    for (const s of fillers) s.destroy();
    stuck?.kill('SIGKILL');
    srf?.disconnect();
    await engine?.stop();
  });

  const outcome = (uri: string): Promise<{ status?: number; sent: boolean; ms: number }> => {
    const t0 = Date.now();
    let sent = false;
    return srf.createUAC(uri, { localSdp: TEST_SDP }, { cbRequest: (err: unknown, r: unknown) => { sent = !err && !!r; } }).then(
      () => ({ status: 200, sent, ms: Date.now() - t0 }),
      (e: { status?: number }) => ({ status: e.status, sent, ms: Date.now() - t0 }),
    );
  };

  test('TCP connection refused: reported sent, then 503 at once; a listener that never accepts: 408 at 64·T1', async () => {
    const net = await import('node:net');
    const closedPort = await new Promise<number>((resolve) => {
      const s = net.createServer();
      s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
    });
    const refused = await outcome(`sip:bob@127.0.0.1:${closedPort};transport=tcp`);
    assert.deepEqual([refused.status, refused.sent], [503, true]);
    assert.ok(refused.ms < 2000, `503 after ${refused.ms} ms`);

    // a process that listens (backlog 1) and then blocks its event loop: it never accepts
    stuck = spawn(process.execPath, ['-e', "const s=require('net').createServer();s.listen({port:0,host:'127.0.0.1',backlog:1},()=>{console.log(s.address().port);Atomics.wait(new Int32Array(new SharedArrayBuffer(4)),0,0,50000)})"], { stdio: ['ignore', 'pipe', 'inherit'] });
    const port = await new Promise<number>((resolve, reject) => {
      stuck!.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
      stuck!.once('exit', () => reject(new Error('the listener exited')));
    });
    // fill its accept queue until a connection no longer comes up: from then on its SYNs are dropped
    let hung = false;
    for (let i = 0; i < 8 && !hung; i++) {
      const c = net.connect(port, '127.0.0.1');
      c.on('error', () => undefined);
      fillers.push(c);
      hung = !(await new Promise<boolean>((r) => { const t = setTimeout(() => r(false), 500); c.once('connect', () => { clearTimeout(t); r(true); }); }));
    }
    assert.ok(hung, 'positive control: a connection to the listener no longer comes up');
    const timedOut = await outcome(`sip:bob@127.0.0.1:${port};transport=tcp`);
    assert.deepEqual([timedOut.status, timedOut.sent], [408, true]);
    assert.ok(timedOut.ms >= 64 * T1_MS - 100 && timedOut.ms < 64 * T1_MS + 3000, `408 after ${timedOut.ms} ms (64·T1 = ${64 * T1_MS} ms)`);
  });
});
