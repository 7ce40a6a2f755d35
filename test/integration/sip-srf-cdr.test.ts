/**
 * Call detail records: a drachtio-srf app that does `srf.on('cdr:attempt' | 'cdr:start' | 'cdr:stop', …)`
 * against a real `bin/ferry sip` gets drachtio-server's records, with drachtio-server's arguments, for the
 * calls SIPp places to (and receives from) another srf app: answered and ended by either side, rejected,
 * cancelled, a call the app places and a B2BUA call (one set per leg). Records are dealt round robin among
 * the apps that asked for them.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type Srf from 'drachtio-srf';
import { spawnSipEngine, type SipEngineProcess } from '../helpers/sip-engine-process';
import { connectSrf, destroyDialog, g711Sdp, waitFor, type ConnectedSrf } from '../helpers/srf-app';
import { freePort } from '../helpers/free-port';
import { runSipp, startSipp, killAllSipp, describeSipp } from '../helpers/sipp';

interface Cdr {
  kind: 'attempt' | 'start' | 'stop';
  source: string;
  time: string;
  /** role (start) or reason (stop) */
  detail?: string;
  callId: string;
  /** the SIP message's first line */
  line: string;
  app: string;
}

interface SipMsgLike {
  type: 'request' | 'response';
  method?: string;
  status?: number;
  uri?: string;
  get(name: string): string;
}

const TIME = /^\d{2}:\d{2}:\d{2}\.\d{6}$/;

/** seconds between the record's UTC time of day and now (both wrapped into one day) */
function secondsFromNow(time: string): number {
  const [h, m, s] = time.split(':').map(Number);
  const now = new Date();
  const nowS = now.getUTCHours() * 3600 + now.getUTCMinutes() * 60 + now.getUTCSeconds() + now.getUTCMilliseconds() / 1000;
  const d = Math.abs(nowS - (h * 3600 + m * 60 + s));
  return Math.min(d, 86_400 - d);
}

function lineOf(msg: SipMsgLike): string {
  return msg.type === 'request' ? `${msg.method} ${msg.uri}` : `${msg.status}`;
}

/** what the tests compare of a call's records: kind, source, role or reason, and the SIP message's method or status */
function summary(records: Cdr[]): unknown[][] {
  return records.map((c) => [c.kind, c.source, c.detail, c.line.split(' ')[0]]);
}

describe('call detail records (cdr:attempt/start/stop) for drachtio-srf apps', () => {
  let engine: SipEngineProcess;
  let callApp: ConnectedSrf;
  let cdrApp: ConnectedSrf;
  const cdrs: Cdr[] = [];
  /** where the app's B2BUA calls the B leg */
  let bLeg = '';
  const control = (): { host: string; port: number; secret: string } => ({ host: '127.0.0.1', port: engine.ports.control, secret: 'cymru' });

  const listenForCdrs = (srf: Srf, app: string): void => {
    const s = srf as unknown as { on(event: string, fn: (...args: unknown[]) => void): void };
    s.on('cdr:attempt', (source, time, msg) => cdrs.push({ kind: 'attempt', source: source as string, time: time as string,
      callId: (msg as SipMsgLike).get('Call-ID'), line: lineOf(msg as SipMsgLike), app }));
    s.on('cdr:start', (source, time, role, msg) => cdrs.push({ kind: 'start', source: source as string, time: time as string,
      detail: role as string, callId: (msg as SipMsgLike).get('Call-ID'), line: lineOf(msg as SipMsgLike), app }));
    s.on('cdr:stop', (source, time, reason, msg) => cdrs.push({ kind: 'stop', source: source as string, time: time as string,
      detail: reason as string, callId: (msg as SipMsgLike).get('Call-ID'), line: lineOf(msg as SipMsgLike), app }));
  };

  before(async () => {
    engine = await spawnSipEngine();
    callApp = await connectSrf(control(), (srf: Srf) => {
      srf.invite(async (req, res) => {
        const user = /^sip:([^@]+)@/.exec(req.uri)?.[1] ?? '';
        if (user === 'busy') return res.send(480);
        if (user === 'ring') return res.send(180);
        if (user === 'proxy') {
          void (srf as unknown as { proxyRequest(r: unknown, to: string, o: object): Promise<unknown> }).proxyRequest(req, bLeg, { remainInDialog: true });
          return;
        }
        if (user === 'b2b') {
          const { uas, uac } = await srf.createB2BUA(req, res, bLeg, { localSdpB: req.body });
          uas.on('destroy', () => void destroyDialog(uac));
          uac.on('destroy', () => void destroyDialog(uas));
          return;
        }
        const dialog = await srf.createUAS(req, res, { localSdp: g711Sdp(30000) });
        if (user === 'hangup') dialog.on('ack', () => void destroyDialog(dialog));
      });
    });
    cdrApp = await connectSrf(control(), (srf: Srf) => listenForCdrs(srf, 'cdr-1'));
  });

  after(async () => {
    killAllSipp();
    callApp?.close();
    cdrApp?.close();
    await engine?.stop();
  });

  /** the records of one call, once `n` of them arrived */
  async function recordsOf(callId: string, n: number): Promise<Cdr[]> {
    await waitFor(() => cdrs.filter((c) => c.callId === callId).length >= n, `${n} records for call ${callId}`);
    return cdrs.filter((c) => c.callId === callId);
  }

  function callIdOfSipp(messages: string): string {
    const m = /^Call-ID:\s*(\S+)/im.exec(messages);
    assert.ok(m, 'SIPp traced a Call-ID');
    return m[1];
  }

  /** SIPp places one call to the app's user `service` with `scenario`, which ends as it should: the call's Call-ID */
  async function sippCalls(scenario: string, service: string): Promise<string> {
    const r = await runSipp({ scenario, localPort: await freePort(), remote: callApp.sipAddress('udp'), service, timeoutS: 20 });
    assert.equal(r.stats?.successfulCalls, 1, describeSipp(r));
    return callIdOfSipp(r.messages);
  }

  function checkTimes(records: Cdr[]): void {
    for (const r of records) {
      assert.match(r.time, TIME, `${r.kind} time in drachtio-server's HH:MM:SS.uuuuuu form`);
      assert.ok(secondsFromNow(r.time) < 60, `${r.kind} time ${r.time} is now (UTC)`);
    }
  }

  test('answered call ended by the caller: attempt (network, INVITE), start (application, uas, 200), stop (network, normal-release, BYE)', { timeout: 60_000 }, async () => {
    const records = await recordsOf(await sippCalls('uac-call.xml', 'answer'), 3);
    assert.deepEqual(summary(records), [
      ['attempt', 'network', undefined, 'INVITE'],
      ['start', 'application', 'uas', '200'],
      ['stop', 'network', 'normal-release', 'BYE'],
    ]);
    checkTimes(records);
  });

  test('answered call ended by the app: stop (application, normal-release, the BYE it sent)', { timeout: 60_000 }, async () => {
    const records = await recordsOf(await sippCalls('uac-await-bye.xml', 'hangup'), 3);
    assert.deepEqual(summary(records), [
      ['attempt', 'network', undefined, 'INVITE'],
      ['start', 'application', 'uas', '200'],
      ['stop', 'application', 'normal-release', 'BYE'],
    ]);
    checkTimes(records);
  });

  test('rejected call: attempt, then stop (application, call-rejected, the 480); no start', { timeout: 60_000 }, async () => {
    const records = await recordsOf(await sippCalls('gateway-uac-rejected.xml', 'busy'), 2);
    assert.deepEqual(summary(records), [
      ['attempt', 'network', undefined, 'INVITE'],
      ['stop', 'application', 'call-rejected', '480'],
    ]);
    checkTimes(records);
  });

  test('cancelled call: attempt, then stop (network, call-canceled, the INVITE); no start', { timeout: 60_000 }, async () => {
    const records = await recordsOf(await sippCalls('uac-cancel.xml', 'ring'), 2);
    assert.deepEqual(summary(records), [
      ['attempt', 'network', undefined, 'INVITE'],
      ['stop', 'network', 'call-canceled', 'INVITE'],
    ]);
    checkTimes(records);
  });

  test("a call the app places: attempt (application, INVITE), start (network, uac, 200), stop (application, normal-release, BYE)", { timeout: 60_000 }, async () => {
    const port = await freePort();
    const phone = await startSipp({ scenario: 'uas-answer.xml', localPort: port, timeoutS: 20 });
    const dialog = await callApp.srf.createUAC(`sip:phone@127.0.0.1:${port}`, { localSdp: g711Sdp(30002) });
    const callId = (dialog as unknown as { sip: { callId: string } }).sip.callId;
    await destroyDialog(dialog);
    const r = await phone.done;
    assert.equal(r.stats?.successfulCalls, 1, describeSipp(r));
    const records = await recordsOf(callId, 3);
    assert.deepEqual(summary(records), [
      ['attempt', 'application', undefined, 'INVITE'],
      ['start', 'network', 'uac', '200'],
      ['stop', 'application', 'normal-release', 'BYE'],
    ]);
    checkTimes(records);
  });

  test('a B2BUA call: each leg has its own attempt, start and stop', { timeout: 60_000 }, async () => {
    const port = await freePort();
    bLeg = `sip:phone@127.0.0.1:${port}`;
    const phoneB = await startSipp({ scenario: 'uas-answer.xml', localPort: port, timeoutS: 20 });
    const aCallId = await sippCalls('uac-call.xml', 'b2b');
    const rb = await phoneB.done;
    assert.equal(rb.stats?.successfulCalls, 1, describeSipp(rb));
    const a = await recordsOf(aCallId, 3);
    const b = await recordsOf(callIdOfSipp(rb.messages), 3);
    assert.deepEqual(summary(a), [
      ['attempt', 'network', undefined, 'INVITE'],
      ['start', 'application', 'uas', '200'],
      ['stop', 'network', 'normal-release', 'BYE'],
    ], 'the A leg (SIPp called the app, SIPp hung up)');
    assert.deepEqual(summary(b), [
      ['attempt', 'application', undefined, 'INVITE'],
      ['start', 'network', 'uac', '200'],
      ['stop', 'application', 'normal-release', 'BYE'],
    ], 'the B leg (the app called SIPp, and hung up when A did)');
    checkTimes([...a, ...b]);
  });

  test('a proxied call: attempt (network) and start (application, proxy-uas) for the caller\'s INVITE; its BYE passes the proxy unrecorded', { timeout: 60_000 }, async () => {
    const port = await freePort();
    bLeg = `sip:phone@127.0.0.1:${port}`;
    const callee = await startSipp({ scenario: 'proxy-uas-answer.xml', localPort: port, timeoutS: 20 });
    const callId = await sippCalls('uac-call.xml', 'proxy');
    const rc = await callee.done;
    assert.equal(rc.stats?.successfulCalls, 1, describeSipp(rc));
    const records = await recordsOf(callId, 2);
    // a later call's records arrive after any this call could still have produced
    await recordsOf(await sippCalls('gateway-uac-rejected.xml', 'busy'), 2);
    assert.deepEqual(summary(cdrs.filter((c) => c.callId === callId)), [
      ['attempt', 'network', undefined, 'INVITE'],
      ['start', 'application', 'proxy-uas', '200'],
    ]);
    checkTimes(records);
  });

  test('two apps asking for records: each record goes to one of them, round robin', { timeout: 60_000 }, async () => {
    const second = await connectSrf(control(), (srf: Srf) => listenForCdrs(srf, 'cdr-2'));
    try {
      const callIds: string[] = [];
      for (let i = 0; i < 2; i++) {
        callIds.push(await sippCalls('gateway-uac-rejected.xml', 'busy'));
      }
      const records = (await Promise.all(callIds.map((id) => recordsOf(id, 2)))).flat();
      const attempts = records.filter((c) => c.kind === 'attempt');
      assert.equal(attempts.length, 2, 'one attempt per call, not one per app');
      assert.deepEqual(attempts.map((c) => c.app).sort(), ['cdr-1', 'cdr-2'], 'the two attempts went to different apps');
    } finally {
      second.close();
    }
  });
});
