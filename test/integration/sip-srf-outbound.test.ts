/**
 * Outbound connection mode: `bin/ferry sip` with FERRY_SIP_REQUEST_HANDLER opens a control connection to a
 * real drachtio-srf app listening with `srf.listen({port, secret})` and hands it a SIPp phone's INVITE there;
 * the app answers, and the phone's BYE reaches the same app over the same connection. Where the app is comes
 * from a web callback (drachtio-server's query string and JSON answer) or is fixed (tcp://host:port). An app
 * that cannot be reached, or that offers the wrong secret, leaves the caller with 480; a callback's `reject`
 * is the caller's answer, its `redirect` a 302. An outbound connection left idle is closed by ferry sip; past
 * FERRY_SIP_OUTBOUND_MAX_CONNECTIONS the caller gets 503. TLS too, and a callback's route to a tag of the inbound apps.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import Srf from 'drachtio-srf';
import { spawnSipEngine, type SipEngineProcess } from '../helpers/sip-engine-process';
import { g711Sdp, routesApplied, waitFor } from '../helpers/srf-app';
import { freePort } from '../helpers/free-port';
import { makeTestCertificate, type TestCertificate } from '../helpers/test-certificate';
import { runSipp, killAllSipp, describeSipp, countReceived, tracedMessages } from '../helpers/sipp';

interface ListeningApp {
  srf: any;
  server: net.Server;
  port: number;
  /** connections ferry sip opened to it, and how many of them have closed */
  connections: number;
  closed: number;
  invites: { callId: string; uri: string }[];
  destroyed: string[];
  connectErrors: string[];
}

async function listeningApp(secret: string, tls?: { cert: Buffer; key: Buffer }): Promise<ListeningApp> {
  const port = await freePort();
  const srf: any = new Srf();
  const app: ListeningApp = { srf, server: undefined as unknown as net.Server, port, connections: 0, closed: 0, invites: [], destroyed: [], connectErrors: [] };
  srf.on('error', () => { /* a refused authentication */ });
  srf.on('connect', (err: Error | null) => { if (err) app.connectErrors.push(err.message); });
  srf.invite(async (req: any, res: any) => {
    app.invites.push({ callId: req.get('Call-ID'), uri: req.uri });
    const dialog = await srf.createUAS(req, res, { localSdp: g711Sdp(30010) });
    dialog.on('destroy', () => app.destroyed.push(req.get('Call-ID')));
  });
  app.server = srf.listen({ port, host: '127.0.0.1', secret, ...(tls ? { tls } : {}) });
  app.server.on(tls ? 'secureConnection' : 'connection', (socket: net.Socket) => {
    app.connections++;
    socket.on('close', () => app.closed++);
  });
  await new Promise<void>((resolve) => (app.server.listening ? resolve() : app.server.once('listening', () => resolve())));
  return app;
}

function sipAddress(engine: SipEngineProcess): string {
  return `127.0.0.1:${engine.ports.sip}`;
}

function callIdOfSipp(messages: string): string {
  const m = /^Call-ID:\s*(\S+)/im.exec(messages);
  assert.ok(m, 'SIPp traced a Call-ID');
  return m[1];
}

describe('outbound connection mode: ferry sip connects to drachtio-srf apps listening with srf.listen()', () => {
  let app: ListeningApp;
  let wrongSecretApp: ListeningApp;
  let callback: http.Server;
  const asked: URLSearchParams[] = [];
  let viaCallback: SipEngineProcess;
  let fixed: SipEngineProcess;
  let certificate: TestCertificate;
  let tlsApp: ListeningApp;
  let fixedTls: SipEngineProcess;
  let capped: SipEngineProcess;
  let closedPort: number;

  before(async () => {
    app = await listeningApp('cymru');
    wrongSecretApp = await listeningApp('not-the-secret');
    closedPort = await freePort();
    callback = http.createServer((req, res) => {
      const q = new URL(req.url ?? '/', 'http://x').searchParams;
      asked.push(q);
      const user = q.get('uriUser');
      const answer = user === 'app' ? { action: 'route', data: { uri: `127.0.0.1:${app.port}` } }
        : user === 'nobody' ? { action: 'route', data: { uri: `127.0.0.1:${closedPort};transport=tcp` } }
          : user === 'wrong' ? { action: 'route', data: { uri: `127.0.0.1:${wrongSecretApp.port}` } }
            : user === 'tagged' ? { action: 'route', data: { tag: 'conference' } }
            : user === 'moved' ? { action: 'redirect', data: { contact: ['sip:elsewhere@192.0.2.1', 'sip:other@192.0.2.2'] } }
              : { action: 'reject', data: { status: 480, reason: 'Nobody Home' } };
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify(answer));
    });
    const httpPort = await freePort();
    await new Promise<void>((resolve) => callback.listen(httpPort, '127.0.0.1', () => resolve()));
    const common = { FERRY_SIP_REQUEST_HANDLER_METHODS: 'INVITE', FERRY_SIP_OUTBOUND_CONNECT_TIMEOUT_MS: '2000', FERRY_SIP_OUTBOUND_AUTH_TIMEOUT_MS: '3000', FERRY_SIP_OUTBOUND_IDLE_MS: '1000' };
    viaCallback = await spawnSipEngine({ ...common, FERRY_SIP_REQUEST_HANDLER: `http://127.0.0.1:${httpPort}/route` });
    fixed = await spawnSipEngine({ ...common, FERRY_SIP_REQUEST_HANDLER: `tcp://127.0.0.1:${app.port}` });
    certificate = makeTestCertificate();
    tlsApp = await listeningApp('cymru', { cert: certificate.cert, key: certificate.key });
    capped = await spawnSipEngine({ ...common, FERRY_LOG_LEVEL: 'info', FERRY_SIP_OUTBOUND_IDLE_MS: '60000', FERRY_SIP_OUTBOUND_MAX_CONNECTIONS: '1', FERRY_SIP_REQUEST_HANDLER: `tcp://127.0.0.1:${app.port}` });
    fixedTls = await spawnSipEngine({ ...common, FERRY_SIP_REQUEST_HANDLER: `tls://127.0.0.1:${tlsApp.port}` });
  });

  after(async () => {
    killAllSipp();
    await viaCallback?.stop();
    await fixed?.stop();
    await fixedTls?.stop();
    await capped?.stop();
    tlsApp?.server.close();
    certificate?.remove();
    callback?.close();
    for (const a of [app, wrongSecretApp]) {
      a?.server.close();
    }
  });

  test('web callback routes the INVITE to the listening app: it answers, the BYE reaches it on the same connection, the idle connection is then closed',
    { timeout: 60_000 }, async () => {
      const before = { connections: app.connections, closed: app.closed };
      const r = await runSipp({ scenario: 'uac-call.xml', localPort: await freePort(), remote: sipAddress(viaCallback), service: 'app', timeoutS: 20 });
      assert.equal(r.stats?.successfulCalls, 1, describeSipp(r));
      const callId = callIdOfSipp(r.messages);
      assert.ok(app.invites.some((i) => i.callId === callId), 'the INVITE reached the listening app');
      await waitFor(() => app.destroyed.includes(callId), "the phone's BYE destroying the app's dialog");
      assert.equal(app.connections - before.connections, 1, 'one connection carried the INVITE and the BYE');
      const q = asked.find((p) => p.get('uriUser') === 'app');
      assert.ok(q, 'the callback was asked');
      assert.equal(q.get('method'), 'INVITE');
      assert.equal(q.get('fromUser'), 'sipp');
      assert.equal(q.get('protocol'), 'udp');
      assert.equal(q.get('source_address'), '127.0.0.1');
      assert.match(q.get('uri') ?? '', /^sip:app@127\.0\.0\.1:\d+$/);
      await waitFor(() => app.closed - before.closed === 1, 'ferry sip closing the idle outbound connection', 15_000);
    });

  test('fixed route (tcp://host:port): the INVITE goes straight to the app, no callback', { timeout: 60_000 }, async () => {
    const asks = asked.length;
    const r = await runSipp({ scenario: 'uac-call.xml', localPort: await freePort(), remote: sipAddress(fixed), service: 'anyone', timeoutS: 20 });
    assert.equal(r.stats?.successfulCalls, 1, describeSipp(r));
    const callId = callIdOfSipp(r.messages);
    assert.ok(app.invites.some((i) => i.callId === callId), 'the INVITE reached the listening app');
    await waitFor(() => app.destroyed.includes(callId), "the phone's BYE destroying the app's dialog");
    assert.equal(asked.length, asks, 'no callback asked');
  });

  test('fixed route over TLS (tls://host:port): the app listening with srf.listen({tls}) answers, the BYE follows on that connection', { timeout: 60_000 }, async () => {
    const r = await runSipp({ scenario: 'uac-call.xml', localPort: await freePort(), remote: sipAddress(fixedTls), service: 'anyone', timeoutS: 20 });
    assert.equal(r.stats?.successfulCalls, 1, describeSipp(r));
    const callId = callIdOfSipp(r.messages);
    assert.ok(tlsApp.invites.some((i) => i.callId === callId), 'the INVITE reached the app over TLS');
    await waitFor(() => tlsApp.destroyed.includes(callId), "the phone's BYE destroying the app's dialog");
    assert.equal(tlsApp.connections, 1, 'one TLS connection carried the INVITE and the BYE');
  });

  test('the app cannot be reached: the caller gets 480', { timeout: 60_000 }, async () => {
    const r = await runSipp({ scenario: 'gateway-uac-rejected.xml', localPort: await freePort(), remote: sipAddress(viaCallback), service: 'nobody', timeoutS: 20 });
    assert.equal(r.stats?.successfulCalls, 1, describeSipp(r));
    assert.equal(countReceived(r, /^SIP\/2\.0 480/), 1, 'one 480');
  });

  test('the app offers the wrong secret: refused (srf hears "failed to authenticate"), the INVITE never reaches it, the caller gets 480', { timeout: 60_000 }, async () => {
    const r = await runSipp({ scenario: 'gateway-uac-rejected.xml', localPort: await freePort(), remote: sipAddress(viaCallback), service: 'wrong', timeoutS: 20 });
    assert.equal(r.stats?.successfulCalls, 1, describeSipp(r));
    assert.equal(countReceived(r, /^SIP\/2\.0 480/), 1, 'one 480');
    assert.equal(wrongSecretApp.connections, 1, 'ferry sip did connect to the app');
    assert.deepEqual(wrongSecretApp.connectErrors, ['failed to authenticate to server']);
    assert.equal(wrongSecretApp.invites.length, 0, 'no INVITE reached the app');
  });

  test("the callback's reject is the caller's answer (status and reason)", { timeout: 60_000 }, async () => {
    const r = await runSipp({ scenario: 'gateway-uac-rejected.xml', localPort: await freePort(), remote: sipAddress(viaCallback), service: 'busy', timeoutS: 20 });
    assert.equal(r.stats?.successfulCalls, 1, describeSipp(r));
    assert.equal(countReceived(r, /^SIP\/2\.0 480 Nobody Home/), 1, "the callback's status and reason");
  });

  test("the callback's redirect: 302 with its Contacts", { timeout: 60_000 }, async () => {
    const r = await runSipp({ scenario: 'uac-redirected.xml', localPort: await freePort(), remote: sipAddress(viaCallback), service: 'moved', timeoutS: 20 });
    assert.equal(r.stats?.successfulCalls, 1, describeSipp(r));
    const redirect = tracedMessages(r).find((m) => m.direction === 'received' && /^SIP\/2\.0 302/.test(m.firstLine));
    assert.ok(redirect, 'SIPp got the 302');
    assert.deepEqual(redirect.text.split(/\r?\n/).filter((l) => /^Contact:/i.test(l)).map((l) => l.replace(/^Contact:\s*/i, '')),
      ['<sip:elsewhere@192.0.2.1>', '<sip:other@192.0.2.2>']);
  });

  test('FERRY_SIP_OUTBOUND_MAX_CONNECTIONS: with its one connection still open, the next caller gets 503', { timeout: 60_000 }, async () => {
    const first = await runSipp({ scenario: 'uac-call.xml', localPort: await freePort(), remote: sipAddress(capped), service: 'anyone', timeoutS: 20 });
    assert.equal(first.stats?.successfulCalls, 1, `the first call gets the connection: ${describeSipp(first)}`);
    const second = await runSipp({ scenario: 'gateway-uac-trunk-down.xml', localPort: await freePort(), remote: sipAddress(capped), service: 'anyone', timeoutS: 20 });
    assert.equal(second.stats?.successfulCalls, 1, describeSipp(second));
    assert.equal(countReceived(second, /^SIP\/2\.0 503/), 1, 'one 503');
    assert.match(capped.stderr() + capped.stdout(), /outbound connection cap reached \(1\)/, 'logged with the reason');
  });

  test("the callback's route to a tag: the INVITE goes to the connected (inbound) app with that tag, not to another that routes INVITE", { timeout: 60_000 }, async () => {
    const inbound = async (tags: string[], got: string[]): Promise<any> => {
      const srf: any = new Srf(tags);
      srf.on('error', () => { /* reconnect noise after the engine stops */ });
      srf.invite(async (req: any, res: any) => {
        got.push(req.get('Call-ID'));
        const dialog = await srf.createUAS(req, res, { localSdp: g711Sdp(30012) });
        dialog.on('destroy', () => got.push(`destroyed ${req.get('Call-ID')}`));
      });
      await new Promise<void>((resolve, reject) => {
        srf.once('connect', (err: Error | null) => (err ? reject(err) : resolve()));
        srf.connect({ host: '127.0.0.1', port: viaCallback.ports.control, secret: 'cymru' });
      });
      await routesApplied(srf);
      return srf;
    };
    const taggedGot: string[] = [];
    const untaggedGot: string[] = [];
    const untagged = await inbound([], untaggedGot);
    const tagged = await inbound(['conference'], taggedGot);
    try {
      const r = await runSipp({ scenario: 'uac-call.xml', localPort: await freePort(), remote: sipAddress(viaCallback), service: 'tagged', timeoutS: 20 });
      assert.equal(r.stats?.successfulCalls, 1, describeSipp(r));
      const callId = callIdOfSipp(r.messages);
      await waitFor(() => taggedGot.includes(`destroyed ${callId}`), 'the tagged app answering and getting the BYE');
      assert.deepEqual(untaggedGot, [], 'the untagged app got nothing');
    } finally {
      untagged.disconnect();
      tagged.disconnect();
    }
  });
});
