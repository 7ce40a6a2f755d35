/**
 * Acceptance, browser variant: JsSIP in real Chromium (Debian /usr/bin/chromium through
 * playwright-core, fake microphone) registers over SIP-over-WebSocket through the SIP server under
 * test; the drachtio-srf app challenges it (digest) and accepts it, then routes an INVITE to the
 * registered `.invalid` Contact with createUAC. JsSIP answers with a real WebRTC answer, the ACK and
 * later the app's BYE reach the browser over its WebSocket.
 *
 * The INVITE's offer comes from a second RTCPeerConnection in the same page (the "caller's media"),
 * so the browser's answer can be applied and ICE + DTLS actually connect: the call is real end to
 * end. Only 127.0.0.1 candidates are kept in both SDPs, so all media stays on loopback.
 *
 * Runs against ferry sip, or a real drachtio-server when DRACHTIO_URL is set (it needs a ws listener).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../helpers/chromium';
import type Srf from 'drachtio-srf';
import { startSipServerTarget, type SipServerTarget } from '../helpers/sip-engine-process';
import { connectSrf, destroyDialog, dialogIdOf, waitFor, type ConnectedSrf } from '../helpers/srf-app';
import { installDigestRegistrar, type DigestRegistrarLog } from '../helpers/srf-digest-registrar';
import { pollPause } from '../helpers/wait-for';

const REALM = 'ferry.test';
const USER = 'webphone';
const PASSWORD = 'w3b-pa55';

const PAGE = `<!doctype html><meta charset="utf-8"><title>ferry sip acceptance webphone</title>
<script src="/jssip.js"></script>
<script>
window.log = [];
const rec = (e) => window.log.push(e);
const gathered = (pc) => new Promise((r) => {
  if (pc.iceGatheringState === 'complete') return r();
  pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && r());
});
window.startUa = (wsUrl, uri, password) => {
  const ua = window.ua = new JsSIP.UA({
    sockets: [new JsSIP.WebSocketInterface(wsUrl)], uri, password,
    register: true, session_timers: false,
  });
  ua.on('registered', () => rec('registered'));
  ua.on('registrationFailed', (e) => rec('registrationFailed:' + e.cause));
  ua.on('newRTCSession', (e) => {
    if (e.originator !== 'remote') return;
    const s = window.session = e.session;
    rec('newRTCSession');
    s.on('accepted', () => rec('accepted'));
    s.on('confirmed', () => rec('confirmed'));
    s.on('ended', (x) => rec('ended:' + x.originator + ':' + x.cause));
    s.on('failed', (x) => rec('failed:' + x.originator + ':' + x.cause));
    s.answer({ mediaConstraints: { audio: true, video: false }, pcConfig: { iceServers: [] } });
  });
  ua.start();
};
window.makeCallerOffer = async () => {
  const pc = window.callerPc = new RTCPeerConnection({ iceServers: [] });
  pc.addEventListener('connectionstatechange', () => rec('caller-pc:' + pc.connectionState));
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  for (const t of stream.getTracks()) pc.addTrack(t, stream);
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  return pc.localDescription.sdp;
};
window.setCallerAnswer = (sdp) => window.callerPc.setRemoteDescription({ type: 'answer', sdp });
window.calleeState = () => window.session && window.session.connection ? window.session.connection.connectionState : 'none';
window.rtpIn = async () => {
  let n = 0;
  (await window.callerPc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp') n += s.packetsReceived; });
  return n;
};
</script>`;

/** Keeps only 127.0.0.1 ICE candidates, so media stays on loopback. */
function loopbackOnly(sdp: string): string {
  return sdp
    .split('\r\n')
    .filter((l) => !l.startsWith('a=candidate:') || / 127\.0\.0\.1 /.test(l))
    .join('\r\n');
}

async function bundleJsSip(): Promise<string> {
  // esbuild comes with tsx; JsSIP's npm package ships CommonJS only
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const esbuild = require('esbuild') as typeof import('esbuild');
  const out = await esbuild.build({
    entryPoints: [require.resolve('jssip')],
    bundle: true,
    format: 'iife',
    globalName: 'JsSIP',
    platform: 'browser',
    target: 'es2020',
    write: false,
    logLevel: 'silent',
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  return out.outputFiles[0]!.text;
}

describe('JsSIP in Chromium: register with digest, receive and answer a routed INVITE, hung up by the app', () => {
  let target: SipServerTarget;
  let app: ConnectedSrf;
  let reg: DigestRegistrarLog;
  let server: http.Server;
  let browser: Browser | undefined;
  let page: Page;

  before(async () => {
    target = await startSipServerTarget();
    console.log(`sip-srf-jssip-chromium: ${target.description}`);
    app = await connectSrf(target.control, (srf: Srf) => {
      reg = installDigestRegistrar(srf, REALM, USER, PASSWORD);
    });
    const jssip = await bundleJsSip();
    server = http.createServer((req, res) => {
      if (req.url === '/jssip.js') {
        res.writeHead(200, { 'content-type': 'text/javascript' }).end(jssip);
      } else {
        res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    browser = await launchChromium();
    page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await new Promise((r) => server?.close(() => r(undefined)) ?? r(undefined));
    app?.close();
    await target?.stop();
  });

  const pageLog = () => page.evaluate(() => (window as unknown as { log: string[] }).log.slice());

  test('registered via 401/200, INVITE answered by the browser, ICE+DTLS connected, app BYE ends it', { timeout: 120_000 }, async (t) => {
    t.diagnostic(target.description);
    await page.evaluate(
      ([ws, uri, pw]) => (window as unknown as { startUa(a: string, b: string, c: string): void }).startUa(ws, uri, pw),
      [`ws://${app.sipAddress('ws')}`, `sip:${USER}@${REALM}`, PASSWORD],
    );
    await waitFor(() => reg.accepted === 1 || reg.rejected.length > 0, 'the registration', 15_000);
    let log = await pageLog();
    for (let i = 0; i < 100 && !log.some((e) => e.startsWith('regist')); i++) {
      await pollPause(50);
      log = await pageLog();
    }
    assert.deepEqual(log, ['registered'], `page events: ${log.join(', ')}`);
    assert.equal(reg.challenges >= 1, true, 'the app challenged the REGISTER');
    assert.ok(reg.protocols.every((p) => p === 'ws'), `REGISTERs arrived over WebSocket (${reg.protocols.join(',')})`);
    assert.match(reg.contactUri ?? '', /\.invalid/);

    const offer = loopbackOnly(await page.evaluate(() => (window as unknown as { makeCallerOffer(): Promise<string> }).makeCallerOffer()));
    assert.match(offer, /a=candidate:.* 127\.0\.0\.1 /, 'the caller offer has a loopback candidate');
    const dialog = await app.srf.createUAC(reg.contactUri!, { localSdp: offer, headers: { From: `<sip:caller@${REALM}>` } });
    assert.ok(dialogIdOf(dialog));
    assert.match(dialog.remote.sdp, /UDP\/TLS\/RTP\/SAVPF/, "the browser's WebRTC answer came back in the 200");
    await page.evaluate((sdp) => (window as unknown as { setCallerAnswer(s: string): Promise<void> }).setCallerAnswer(sdp),
      loopbackOnly(dialog.remote.sdp));

    const deadline = Date.now() + 15_000;
    let state = '';
    while (Date.now() < deadline) {
      log = await pageLog();
      state = await page.evaluate(() => (window as unknown as { calleeState(): string }).calleeState());
      if (log.includes('confirmed') && log.includes('caller-pc:connected') && state === 'connected') break;
      await pollPause(100);
    }
    assert.ok(log.includes('confirmed'), `JsSIP got the ACK over its WebSocket (events: ${log.join(', ')})`);
    assert.ok(log.includes('caller-pc:connected'), `ICE+DTLS connected between caller media and the browser (events: ${log.join(', ')})`);
    assert.equal(state, 'connected', "JsSIP's RTCPeerConnection is connected");
    let rtp = 0;
    for (let i = 0; i < 50 && rtp === 0; i++) {
      await pollPause(100);
      rtp = await page.evaluate(() => (window as unknown as { rtpIn(): Promise<number> }).rtpIn());
    }
    assert.ok(rtp > 0, 'the browser sent audio to the caller');

    const bye = await destroyDialog(dialog);
    assert.equal(bye.method, 'BYE');
    for (let i = 0; i < 100 && !log.some((e) => e.startsWith('ended')); i++) {
      await pollPause(50);
      log = await pageLog();
    }
    assert.ok(log.includes('ended:remote:Terminated'), `JsSIP ended the call on the app's BYE (events: ${log.join(', ')})`);
    await page.evaluate(() => (window as unknown as { ua: { stop(): void } }).ua.stop());
  });
});
