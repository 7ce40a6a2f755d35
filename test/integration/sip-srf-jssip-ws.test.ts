/**
 * Acceptance: a webphone over SIP-over-WebSocket. A real JsSIP user agent (npm jssip, run
 * in Node with the `ws` package as its WebSocket) registers through the SIP server under test; the
 * drachtio-srf app acts as registrar and challenges with a digest (401, MD5, qop=auth), checks the
 * answer with node:crypto, stores the Contact (a `.invalid` host) and answers 200. The app then
 * routes an INVITE to that Contact with createUAC: the server must send it over the WebSocket the
 * REGISTER came on, and JsSIP must see it (newRTCSession). When the UA disconnects, the server
 * forgets the binding and a new INVITE to the Contact fails instead of hanging.
 *
 * Fake, named as such: `window.RTCPeerConnection` is a class that only satisfies JsSIP's "is WebRTC
 * available" check for an incoming INVITE; the webphone never answers, so no peer connection is
 * created (media is not part of this test). Everything on the wire is real.
 *
 * Runs against ferry sip, or a real drachtio-server when DRACHTIO_URL is set (it needs a ws listener).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import type Srf from 'drachtio-srf';
import { startSipServerTarget, type SipServerTarget } from '../helpers/sip-engine-process';
import { connectSrf, g711Sdp, routesApplied, waitFor, type ConnectedSrf } from '../helpers/srf-app';
import { installDigestRegistrar, type DigestRegistrarLog } from '../helpers/srf-digest-registrar';

/** Stand-in for the browser API; JsSIP only checks that it exists before accepting an INVITE. */
class FakeRTCPeerConnectionNeverConstructed {
  constructor() {
    throw new Error('this test never answers a call, so no RTCPeerConnection may be created');
  }
}
const g = globalThis as unknown as Record<string, unknown>;
g.WebSocket ??= WebSocket;
g.window ??= { RTCPeerConnection: FakeRTCPeerConnectionNeverConstructed };
// eslint-disable-next-line @typescript-eslint/no-require-imports
const JsSIP = require('jssip') as typeof import('jssip');

const REALM = 'ferry.test';
const USER = 'alice';
const PASSWORD = 's3cret-pa55';

/**
 * JsSIP's invite server transaction keeps its timer H (64*T1 = 32 s) running after the ACK for a
 * non-2xx arrived (Transactions.js sets CONFIRMED without clearing H); it would hold this test process
 * idle for 32 s after the test ends. Clear it once the UA is stopped.
 */
function clearJsSipTimerH(ua: unknown): void {
  const ist = (ua as { _transactions?: { ist?: Record<string, { H?: NodeJS.Timeout; I?: NodeJS.Timeout }> } })._transactions?.ist ?? {};
  for (const tr of Object.values(ist)) {
    clearTimeout(tr.H);
    clearTimeout(tr.I);
  }
}

describe('JsSIP over WebSocket registers with digest auth and receives an INVITE routed to its Contact', () => {
  let target: SipServerTarget;
  let app: ConnectedSrf;
  let reg: DigestRegistrarLog;

  before(async () => {
    target = await startSipServerTarget();
    console.log(`sip-srf-jssip-ws: ${target.description}`);
    app = await connectSrf(target.control, (srf: Srf) => {
      reg = installDigestRegistrar(srf, REALM, USER, PASSWORD);
    });
  });

  after(async () => {
    app?.close();
    await target?.stop();
  });

  test('REGISTER challenged (401) then accepted (200); INVITE to the .invalid Contact reaches JsSIP over its WebSocket', { timeout: 120_000 }, async (t) => {
    t.diagnostic(target.description);
    const wsUrl = `ws://${app.sipAddress('ws')}`;
    const socket = new JsSIP.WebSocketInterface(wsUrl);
    const ua = new JsSIP.UA({
      sockets: [socket],
      uri: `sip:${USER}@${REALM}`,
      password: PASSWORD,
      register: true,
      register_expires: 600,
      session_timers: false,
      connection_recovery_min_interval: 60,
      connection_recovery_max_interval: 60,
    });
    const uaEvents: string[] = [];
    const incoming: Array<{ from: string; callId: string; session: { terminate(o: object): void; on(e: string, f: (d: { cause?: string; originator?: string }) => void): void } }> = [];
    ua.on('registered', () => uaEvents.push('registered'));
    ua.on('registrationFailed', (e: { cause?: string }) => uaEvents.push(`registrationFailed:${e.cause}`));
    ua.on('disconnected', () => uaEvents.push('disconnected'));
    const onNewSession = (e: { originator: string; request: { call_id: string; from: { uri: { toString(): string } } }; session: never }) => {
      if (e.originator !== 'remote') return;
      incoming.push({ from: e.request.from.uri.toString(), callId: e.request.call_id, session: e.session });
    };
    ua.on('newRTCSession', onNewSession as never);
    ua.start();
    try {
      await waitFor(() => uaEvents.length > 0, 'JsSIP registration result', 15_000);
      assert.deepEqual(uaEvents, ['registered'], `JsSIP events: ${uaEvents.join(', ')}; rejected: ${reg.rejected.join(' | ')}`);
      assert.equal(reg.challenges >= 1, true, 'the app challenged the first REGISTER');
      assert.equal(reg.accepted, 1, 'the app accepted the REGISTER carrying a correct digest');
      assert.deepEqual(reg.rejected, []);
      assert.ok(reg.protocols.every((p) => p === 'ws'), `REGISTERs arrived over WebSocket (${reg.protocols.join(',')})`);
      const contactUri = reg.contactUri!;
      assert.match(contactUri, /@[^;>]+\.invalid/, `the stored Contact has a .invalid host: ${contactUri}`);

      // route a call to the registered Contact; JsSIP rings (180) and then declines with 486
      const provisional: number[] = [];
      const call = app.srf.createUAC(
        contactUri,
        { localSdp: g711Sdp(32000), headers: { From: `<sip:bob@${REALM}>` } },
        { cbProvisional: (res: Srf.SrfResponse) => provisional.push(res.status) },
      );
      const outcome = call.then(
        () => 'answered',
        (e: { status?: number }) => e.status ?? String(e),
      );
      await waitFor(() => incoming.length > 0, "JsSIP's newRTCSession for the routed INVITE", 10_000);
      const session = incoming[0];
      assert.match(session.from, /sip:bob@ferry\.test/, 'JsSIP saw the caller the app set');
      const ended: string[] = [];
      session.session.on('failed', (d) => ended.push(`failed:${d.originator}:${d.cause}`));
      await waitFor(() => provisional.includes(180), "JsSIP's 180 Ringing reaching the app", 5_000);
      session.session.terminate({ status_code: 486, reason_phrase: 'Busy Here' });
      assert.equal(await outcome, 486, "the app's createUAC got JsSIP's 486");
      assert.deepEqual(ended, ['failed:local:Rejected']);
      assert.equal(incoming.length, 1, 'exactly one INVITE reached JsSIP');
    } finally {
      ua.stop();
      clearJsSipTimerH(ua);
    }

    // the WebSocket is gone: the server must forget the binding, and a request to it must fail
    await waitFor(() => uaEvents.includes('disconnected'), 'JsSIP disconnecting', 10_000);
    // JsSIP's close reached the server before this ping: by its answer the server has seen the WebSocket go
    await routesApplied(app.srf);
    let guard: NodeJS.Timeout | undefined;
    const afterClose = await Promise.race([
      app.srf.createUAC(reg.contactUri!, { localSdp: g711Sdp(32002) }).then(
        () => 'answered',
        (e: { status?: number; message?: string }) => `failed:${e.status ?? e.message}`,
      ),
      new Promise<string>((r) => (guard = setTimeout(() => r('no answer within 40 s'), 40_000))),
    ]);
    clearTimeout(guard);
    assert.match(afterClose, /^failed:/, `an INVITE to the closed WebSocket's Contact failed (${afterClose})`);
  });
});
