/**
 * A new request whose TCP or TLS next hop never answers the SYN (a dead trunk on a real network: the
 * peer sits in a network namespace whose iptables rule drops our SYNs), sent by the real npm
 * drachtio-srf through ferry sip. As drachtio-server's stack does, ferry sip tells the app at once that
 * the request was sent (it is held on the connection still opening), so the app can CANCEL it and its
 * own timers run; the request goes out once the connection is up; else Timer B (64·T1) answers 408.
 * A CANCEL before the connection is up sends nothing: the INVITE ends with 487 at once, nothing is left
 * in the engine, and the attempt stops retransmitting its SYN (a connection that comes up later
 * carries nothing for it). T1 is 100 ms here: Timer B is 6.4 s.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type Srf from 'drachtio-srf';
import { startSipEngine, type RunningSipEngine } from '../../src/sip/sip-engine-server';
import { connectSrf, g711Sdp, type ConnectedSrf } from '../helpers/srf-app';
import { makeTestCertificate, type TestCertificate } from '../helpers/test-certificate';
import { SynDroppingTarget } from '../helpers/syn-dropping-target';
import { pollUntil } from '../helpers/wait-for';

const T1_MS = 100;
const TIMER_B_MS = 64 * T1_MS;

interface Placed {
  callId: string;
  startedAt: number;
  /** when the app's "sent" answer arrived (cbRequest) */
  sent: Promise<{ at: number; req: Srf.SrfRequest }>;
  /** the final outcome of createUAC */
  done: Promise<{ status: number; at: number }>;
}

describe('ferry sip: a TCP or TLS next hop that never answers the SYN (drachtio-srf, netns + iptables DROP)', { timeout: 120_000 }, () => {
  let target: SynDroppingTarget;
  let cert: TestCertificate;
  let engine: RunningSipEngine;
  let app: ConnectedSrf;
  const extraApps: ConnectedSrf[] = [];
  let n = 0;

  before(async () => {
    target = await SynDroppingTarget.start(5);
    cert = makeTestCertificate();
    engine = await startSipEngine({
      sipPort: 0, wsPort: 0, controlPort: 0, tlsPort: 0, wssPort: 0,
      tls: { cert: cert.cert, key: cert.key, ca: [cert.cert] },
      timers: { t1: T1_MS, t2: 4 * T1_MS, t4: 500 },
    });
    app = await connectSrf({ host: '127.0.0.1', port: engine.ports.control, secret: 'cymru' });
  });

  after(async () => {
    for (const a of [app, ...extraApps]) a?.close();
    await engine?.close();
    await target?.stop();
    cert?.remove();
  });

  const counts = () => {
    const s = engine.engine.stats();
    return { clientTransactions: s.clientTransactions, serverTransactions: s.serverTransactions, dialogs: s.dialogs, pending: s.pending };
  };
  const zero = { clientTransactions: 0, serverTransactions: 0, dialogs: 0, pending: 0 };

  function place(uri: string, via: ConnectedSrf = app): Placed {
    const callId = `syn-dropped-${process.pid}-${++n}`;
    const startedAt = Date.now();
    let onSent!: (v: { at: number; req: Srf.SrfRequest }) => void;
    const sent = new Promise<{ at: number; req: Srf.SrfRequest }>((resolve) => { onSent = resolve; });
    const done = via.srf.createUAC(uri, { localSdp: g711Sdp(40_000), headers: { 'Call-ID': callId } }, {
      // drachtio-srf calls cbRequest(err, req) (its typings name only req)
      cbRequest: ((err: unknown, req: Srf.SrfRequest) => { if (!err && req) onSent({ at: Date.now(), req }); }) as unknown as (req: Srf.SrfRequest) => void,
    }).then(
      (dlg: Srf.Dialog) => { dlg.destroy(); return { status: 200, at: Date.now() }; },
      (e: { status?: number }) => ({ status: e.status ?? -1, at: Date.now() }),
    );
    return { callId, startedAt, sent, done };
  }

  const cancel = (req: Srf.SrfRequest): Promise<{ err: unknown; at: number }> => new Promise((resolve) => {
    (req as unknown as { cancel(cb: (err: unknown) => void): void }).cancel((err) => resolve({ err, at: Date.now() }));
  });

  test('an INVITE to a TCP next hop that never answers the SYN: reported sent at once, then 408 at 64·T1, nothing left', async () => {
    const port = target.ports[2]!;
    const call = place(`sip:bob@${target.address}:${port};transport=tcp`);
    const sent = await call.sent;
    assert.ok(sent.at - call.startedAt < 1000, `sent reported after ${sent.at - call.startedAt} ms, not after the connection`);
    assert.match(sent.req.get('Via'), /SIP\/2\.0\/TCP /, 'the request the app was told of goes over TCP');
    await target.waitForDroppedSyns(port, 1);
    assert.equal(counts().clientTransactions, 1, 'its transaction runs while the connection is opening');
    const { status, at } = await call.done;
    assert.equal(status, 408);
    const ms = at - call.startedAt;
    assert.ok(ms >= TIMER_B_MS - 100 && ms < TIMER_B_MS + 2000, `408 after ${ms} ms (64·T1 = ${TIMER_B_MS} ms)`);
    assert.deepEqual(counts(), zero);
    assert.equal(target.connections.length, 0, 'no connection came up');
  });

  test('the app CANCELs it before the connection is up: nothing on the wire, 487 at once, nothing left; the connection that comes up later carries only the request nobody cancelled', async () => {
    const [cancelledPort, controlPort] = [target.ports[0]!, target.ports[1]!];
    const cancelled = place(`sip:bob@${target.address}:${cancelledPort};transport=tcp`);
    const control = place(`sip:carol@${target.address}:${controlPort};transport=tcp`);
    const { req } = await cancelled.sent;
    await control.sent;
    await target.waitForDroppedSyns(cancelledPort, 1);
    await target.waitForDroppedSyns(controlPort, 1);

    const c = await cancel(req);
    assert.equal(c.err ?? undefined, undefined, 'the CANCEL is accepted (srf req.cancel() gets no error)');
    const ended = await cancelled.done;
    assert.equal(ended.status, 487, 'the INVITE ends with 487 Request Terminated');
    assert.ok(ended.at - c.at < 500, `487 ${ended.at - c.at} ms after the CANCEL (not at Timer B)`);
    assert.deepEqual(counts(), { ...zero, clientTransactions: 1 }, 'only the control request\'s transaction is left');

    // positive control: an attempt still connecting retransmits its SYN (1 s after the first); the
    // cancelled one, started in the same millisecond, does not: its socket is gone
    await target.waitForDroppedSyns(controlPort, 2);
    assert.equal(await target.droppedSyns(cancelledPort), 1, 'the cancelled attempt sent no SYN after the CANCEL');

    // the fault ends: the control's next SYN is answered, its INVITE goes out on that connection
    await target.answerSyns(controlPort);
    await target.answerSyns(cancelledPort);
    const answered = await control.done;
    assert.equal(answered.status, 486, 'the held INVITE went out once its connection was up and its answer reached the app');
    const inviteAt = target.invites.find((i) => i.callId === control.callId)?.at ?? 0;
    assert.ok(inviteAt - (await control.sent).at > 1500, 'the app was told "sent" long before the INVITE could go out');
    assert.deepEqual(target.invites.map((i) => i.callId), [control.callId], 'the cancelled INVITE never reached the peer');
    assert.deepEqual(target.connections.map((x) => x.port), [controlPort], 'no connection for the cancelled request');
    await pollUntil(() => counts().clientTransactions === 0, { timeoutMs: 2000, what: 'the control transaction to end' });
    assert.deepEqual(counts(), zero);
  });

  test('over TLS: reported sent at once, a CANCEL before the connection ends it with 487 and nothing is left', async () => {
    const port = target.ports[3]!;
    const call = place(`sip:bob@${target.address}:${port};transport=tls`);
    const sent = await call.sent;
    assert.ok(sent.at - call.startedAt < 1000, `sent reported after ${sent.at - call.startedAt} ms`);
    assert.match(sent.req.get('Via'), /SIP\/2\.0\/TLS /);
    await target.waitForDroppedSyns(port, 1);
    const c = await cancel(sent.req);
    assert.equal(c.err ?? undefined, undefined);
    const ended = await call.done;
    assert.equal(ended.status, 487);
    assert.ok(ended.at - c.at < 500, `487 ${ended.at - c.at} ms after the CANCEL`);
    assert.deepEqual(counts(), zero);
  });

  test('the app leaves while its INVITE waits for the connection: the request is dropped at once, not kept until Timer B', async () => {
    const port = target.ports[4]!;
    const leaving = await connectSrf({ host: '127.0.0.1', port: engine.ports.control, secret: 'cymru' });
    extraApps.push(leaving);
    const call = place(`sip:bob@${target.address}:${port};transport=tcp`, leaving);
    await call.sent;
    await target.waitForDroppedSyns(port, 1);
    assert.equal(counts().clientTransactions, 1);
    const closedAt = Date.now();
    leaving.close();
    await pollUntil(() => counts().clientTransactions === 0, { timeoutMs: 2000, what: 'the gone app\'s INVITE to be dropped' });
    assert.ok(Date.now() - closedAt < TIMER_B_MS / 2, 'dropped long before Timer B');
    assert.deepEqual(counts(), zero);
  });

  test('a TCP next hop that refuses the connection: reported sent, then 503 on a later turn', async () => {
    const call = place(`sip:bob@${target.address}:${target.refusedPort};transport=tcp`);
    const sent = await call.sent;
    const { status, at } = await call.done;
    assert.equal(status, 503);
    assert.ok(at >= sent.at && at - call.startedAt < 2000, `503 after ${at - call.startedAt} ms`);
    assert.deepEqual(counts(), zero);
  });
});
