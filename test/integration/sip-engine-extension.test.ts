/**
 * The "surviving the app" extension (docs/sip-control-extension.md) with the real npm drachtio-srf:
 * an app dies mid-call, its dialog stays in ferry sip, the phone's BYE goes to another app, another
 * app can re-INVITE and BYE on the dialog, a BYE no app takes is held until the orphan deadline,
 * and a dialog can be rebuilt from stored identifiers.
 * Runs against ferry sip only.
 */
import { describe, test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSipEngine, type SipEngineProcess } from '../helpers/sip-engine-process';
import { SipUdpPhone, inviteText, sipToken, TEST_SDP, type ReceivedSip } from '../helpers/sip-udp-phone';
import { connectBareSrf as connectSrf, routesApplied } from '../helpers/srf-app';
import { pollUntil } from '../helpers/wait-for';

/** Resolves once ferry sip has logged `count` "app disconnected" lines: it has dropped those apps' routes and owned dialogs. */
async function appsGone(engine: SipEngineProcess, count: number): Promise<void> {
  await pollUntil(() => ((engine.stdout() + engine.stderr()).match(/app disconnected/g) ?? []).length >= count, { timeoutMs: 5_000, what: `${count} "app disconnected" log line(s)` });
}

/**
 * srf.request in callback form: the 'response' listener is attached while srf handles the engine's
 * "sent" answer. With the promise form it is attached a microtask later, and a response arriving in
 * the same TCP read as that answer is emitted before anyone listens.
 */
function request(srf: any, uriOrOpts: string | object, opts?: object): Promise<{ status: number; ack: () => void }> {
  return new Promise((resolve, reject) => {
    const cb = (err: Error | null, req: any) => {
      if (err) return reject(err);
      req.on('response', (res: any, ack: () => void) => { if (res.status >= 200) resolve({ status: res.status, ack }); });
    };
    if (opts) srf.request(uriOrOpts, opts, cb);
    else srf.request(uriOrOpts, cb);
  });
}

function safeDisconnect(srf: any): void {
  try { srf.disconnect(); } catch { /* already disconnected */ }
}

/** Phone that answers in-dialog INVITE and BYE with 200. */
function answering(phone: SipUdpPhone): void {
  phone.autoAnswer = (m: ReceivedSip) => {
    const method = m.startLine.split(' ')[0];
    if (method !== 'BYE' && method !== 'INVITE') return undefined;
    const body = method === 'INVITE' ? TEST_SDP : '';
    return ['SIP/2.0 200 OK', `Via: ${m.header('Via')}`, `From: ${m.header('From')}`, `To: ${m.header('To')}`,
      `Call-ID: ${m.header('Call-ID')}`, `CSeq: ${m.header('CSeq')}`, `Contact: <sip:phone@127.0.0.1:${phone.port}>`,
      ...(body ? ['Content-Type: application/sdp'] : []), `Content-Length: ${Buffer.byteLength(body)}`, '', body].join('\r\n');
  };
}

function ackFor(phone: SipUdpPhone, ok: ReceivedSip, enginePort: number): string {
  return [`ACK sip:service@127.0.0.1:${enginePort} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${phone.port};branch=z9hG4bK${sipToken()};rport`,
    'Max-Forwards: 70', `From: ${ok.header('From')}`, `To: ${ok.header('To')}`, `Call-ID: ${ok.header('Call-ID')}`, 'CSeq: 1 ACK',
    'Content-Length: 0', '', ''].join('\r\n');
}

function byeFromPhone(phone: SipUdpPhone, ok: ReceivedSip, enginePort: number): string {
  return [`BYE sip:service@127.0.0.1:${enginePort} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${phone.port};branch=z9hG4bK${sipToken()};rport`,
    'Max-Forwards: 70', `From: ${ok.header('From')}`, `To: ${ok.header('To')}`, `Call-ID: ${ok.header('Call-ID')}`, 'CSeq: 2 BYE',
    'Content-Length: 0', '', ''].join('\r\n');
}

describe('ferry sip extension: dialogs survive their app (against ferry sip only)', { timeout: 120_000 }, () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function callUp(engine: SipEngineProcess, appA: any): Promise<{ phone: SipUdpPhone; ok: ReceivedSip; dialogId: string }> {
    let dialogId = '';
    appA.invite(async (req: any, res: any) => {
      const d = await appA.createUAS(req, res, { localSdp: TEST_SDP });
      dialogId = d.id;
    });
    await routesApplied(appA); // route|invite reached the engine
    const phone = new SipUdpPhone();
    await phone.start();
    cleanup.push(() => phone.close());
    phone.target.port = engine.ports.sip;
    answering(phone);
    phone.sendRaw(inviteText(phone, { callId: sipToken(), fromTag: sipToken(), branch: sipToken() }, engine.ports.sip));
    const ok = await phone.waitFor((m) => m.startLine.startsWith('SIP/2.0 200') && /INVITE/.test(m.header('CSeq') ?? ''));
    phone.sendRaw(ackFor(phone, ok, engine.ports.sip));
    await pollUntil(() => dialogId, { timeoutMs: 5_000, what: 'app A to create the dialog' });
    return { phone, ok, dialogId };
  }

  test('app A dies mid-call: the phone BYE is offered to app B (srf.use("bye")) and answered by it', async () => {
    const engine = await spawnSipEngine({ FERRY_LOG_LEVEL: 'info' }); // its "app disconnected" line is the signal
    cleanup.push(() => engine.stop());
    const appA = await connectSrf(engine.ports.control);
    const appB = await connectSrf(engine.ports.control);
    cleanup.push(() => safeDisconnect(appB));
    const byes: string[] = [];
    appB.use('bye', (req: any, res: any) => {
      byes.push(req.stackDialogId);
      assert.equal(appB.findDialogById(req.stackDialogId), undefined, 'B did not create this dialog');
      res.send(200);
    });
    const { phone, ok, dialogId } = await callUp(engine, appA);
    appA.disconnect();
    await appsGone(engine, 1);
    phone.sendRaw(byeFromPhone(phone, ok, engine.ports.sip));
    const r = await phone.waitFor((m) => /BYE/.test(m.header('CSeq') ?? '') && m.startLine.startsWith('SIP/2.0 '));
    assert.equal(r.startLine, 'SIP/2.0 200 OK');
    assert.deepEqual(byes, [dialogId]);
  });

  test('no app routes bye: the BYE of an orphaned dialog is held (no 481), then answered 200 by ferry sip at the orphan deadline', async () => {
    const orphanMs = 1_500;
    const engine = await spawnSipEngine({ FERRY_SIP_ORPHAN_DIALOG_MS: String(orphanMs) });
    cleanup.push(() => engine.stop());
    const appA = await connectSrf(engine.ports.control);
    const { phone, ok } = await callUp(engine, appA);
    const disconnectedAt = Date.now();
    appA.disconnect();
    phone.sendRaw(byeFromPhone(phone, ok, engine.ports.sip));
    const r = await phone.waitFor((m) => /BYE/.test(m.header('CSeq') ?? '') && m.startLine.startsWith('SIP/2.0 '), orphanMs + 5_000);
    assert.equal(r.startLine, 'SIP/2.0 200 OK');
    assert.ok(Date.now() - disconnectedAt >= orphanMs - 5, 'answered at the orphan deadline, not before');
    assert.equal(phone.count((m) => m.startLine.startsWith('SIP/2.0 481')), 0);
  });

  test('app B re-INVITEs (hold) and BYEs a dialog app A created, by its stored dialog id', async () => {
    const engine = await spawnSipEngine({ FERRY_LOG_LEVEL: 'info' }); // its "app disconnected" line is the signal
    cleanup.push(() => engine.stop());
    const appA = await connectSrf(engine.ports.control);
    const appB = await connectSrf(engine.ports.control);
    cleanup.push(() => safeDisconnect(appB));
    const { phone, ok, dialogId } = await callUp(engine, appA);
    appA.disconnect();
    await appsGone(engine, 1);

    const reinvite = await request(appB, { uri: 'sip:placeholder', method: 'INVITE', stackDialogId: dialogId,
      body: TEST_SDP.replace('a=rtpmap:0 PCMU/8000', 'a=sendonly') });
    assert.equal(reinvite.status, 200);
    reinvite.ack();
    const inv = await phone.waitFor((m) => m.startLine.startsWith('INVITE '));
    assert.equal(inv.header('Call-ID'), ok.header('Call-ID'));
    assert.match(inv.header('From') ?? '', new RegExp(`tag=${/tag=([^;>]+)/.exec(ok.header('To')!)![1]}`));
    assert.equal(inv.startLine.split(' ')[1], `sip:phone@127.0.0.1:${phone.port}`, 'R-URI is the remote target (phone Contact)');
    await phone.waitFor((m) => m.startLine.startsWith('ACK '));

    const bye = await request(appB, { uri: 'sip:placeholder', method: 'BYE', stackDialogId: dialogId });
    assert.equal(bye.status, 200);
    const b = await phone.waitFor((m) => m.startLine.startsWith('BYE '));
    const seqInvite = Number(inv.header('CSeq')!.split(' ')[0]);
    assert.equal(Number(b.header('CSeq')!.split(' ')[0]), seqInvite + 1, 'CSeq continues from the dialog');
  });

  test('a dialog unknown to the engine is rebuilt from X-Ferry-Dialog + stored identifiers (engine restarted)', async () => {
    const engine1 = await spawnSipEngine();
    cleanup.push(() => engine1.stop());
    const appA = await connectSrf(engine1.ports.control);
    cleanup.push(() => safeDisconnect(appA));
    const { phone, ok, dialogId } = await callUp(engine1, appA);
    // what a gateway stores for this dialog (UAS side: local = our To, remote = the phone's From)
    const stored = { callId: ok.header('Call-ID')!, local: ok.header('To')!, remote: ok.header('From')!, cseq: 1,
      remoteTarget: `sip:phone@127.0.0.1:${phone.port}` };
    appA.disconnect();
    await engine1.stop();

    const engine2 = await spawnSipEngine();
    cleanup.push(() => engine2.stop());
    const appB = await connectSrf(engine2.ports.control);
    cleanup.push(() => safeDisconnect(appB));
    const bye = await request(appB, stored.remoteTarget, {
      method: 'BYE',
      headers: { 'X-Ferry-Dialog': dialogId, 'Call-ID': stored.callId, From: stored.local, To: stored.remote, CSeq: `${stored.cseq + 1} BYE` },
    });
    assert.equal(bye.status, 200);
    const b = await phone.waitFor((m) => m.startLine.startsWith('BYE '));
    assert.equal(b.header('Call-ID'), stored.callId);
    assert.equal(b.header('From'), stored.local);
    assert.equal(b.header('To'), stored.remote);
    assert.equal(b.header('CSeq'), '2 BYE');
    assert.equal(b.header('X-Ferry-Dialog'), undefined, 'extension header is not sent on the wire');
  });
});
