import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CHROMIUM_ARGS } from '../helpers/chromium';
import { FerryStartProcess, type FerryReady } from '../helpers/ferry-start-process';
import { writeLifecycleSipConfig, WEBPHONE_USERS } from '../helpers/lifecycle-sip-config';
import { RtpPhone } from '../helpers/rtp-phone';
import { SipPhone } from '../helpers/sip-phone';
import { getJson, waitFor } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * TLS everywhere a site needs it, through `ferry start` as `npm start` runs it: no certificate is given, so
 * it makes a self-signed development certificate in its data directory and serves SIP over TLS, the secure
 * WebSocket and the HTTPS page with it. A real Chromium opens the HTTPS page (a secure context, so the
 * microphone is allowed), takes the wss:// URL the page was given, registers over it and calls a scripted
 * desk phone (SIP over UDP with a real RTP peer); packets are counted both ways. Chromium is started with
 * --ignore-certificate-errors (the development certificate is not in its trust store); that ferry serves
 * exactly the development certificate is checked separately with node:tls trusting only that file.
 */
type ReadyWithTls = FerryReady & { tls: number; wss: number; https: number };

function getText(port: number, p: string, ca: Buffer, host = 'localhost'): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', servername: host, port, path: p, ca, headers: { Host: `${host}:${port}` } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${p} timed out`)));
  });
}

async function peerCertificate(port: number, ca: Buffer): Promise<{ authorized: boolean; fingerprint: string }> {
  const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca });
  try {
    await new Promise<void>((resolve, reject) => { s.once('secureConnect', resolve); s.once('error', reject); });
    return { authorized: s.authorized, fingerprint: s.getPeerCertificate().fingerprint256 };
  } finally {
    s.destroy();
  }
}

/** The gateway's page over HTTPS in `browser`, registered as alice over the secure WebSocket it was given. */
async function openHttpsWebphone(browser: Browser, ready: ReadyWithTls): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`https://localhost:${ready.https}/`);
  await page.waitForFunction(() => (window as unknown as { ferryReady?: boolean }).ferryReady === true, undefined, { timeout: 15_000 });
  assert.equal(await page.evaluate(() => window.isSecureContext), true, 'the HTTPS page is a secure context');
  assert.equal(await page.inputValue('#ws-url'), `wss://localhost:${ready.wss}`, 'the page uses the secure WebSocket');
  await page.fill('#user', 'alice');
  await page.fill('#password', WEBPHONE_USERS.alice);
  await page.click('#register');
  await page.waitForFunction(() => document.getElementById('reg-state')?.textContent === 'registered', undefined, { timeout: 15_000 });
  return page;
}

const launchBrowser = (): Promise<Browser> =>
  chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: [...CHROMIUM_ARGS, '--ignore-certificate-errors'] });

/** Dials `target` from the webphone page. */
async function dial(page: Page, target: string): Promise<void> {
  await page.fill('#target', target);
  await page.click('#call');
}

/**
 * `ferry start` in its own data directory (no certificate given, so it makes its development one), with a
 * scripted desk phone in its SIP config; stop() cleans up whatever start() got to, and the browser.
 */
class FerryWithDeskPhone {
  phone!: SipPhone;
  fs!: FerryStartProcess;
  ready!: ReadyWithTls;
  dataDir!: string;
  browser: Browser | undefined;
  private config: { file: string; remove(): Promise<void> } | undefined;

  async start(dataDirPrefix: string, env: Record<string, string>): Promise<void> {
    this.phone = new SipPhone(new RtpPhone({ rtcpIntervalMs: 1000 }), { user: 'desk' });
    this.config = await writeLifecycleSipConfig({ port: await this.phone.start() });
    this.dataDir = mkdtempSync(path.join(tmpdir(), dataDirPrefix));
    this.fs = FerryStartProcess.spawn({ FERRY_SIP_CONFIG: this.config.file, FERRY_DATA_DIR: this.dataDir, REDIS_URL: '', ...env });
    try {
      this.ready = (await this.fs.ready()) as ReadyWithTls;
    } catch (err) {
      await this.fs.stop();
      throw err;
    }
  }

  async stop(): Promise<void> {
    await this.browser?.close().catch(() => undefined);
    await (this.phone as SipPhone | undefined)?.close();
    await (this.fs as FerryStartProcess | undefined)?.stop();
    await this.config?.remove();
    if (this.dataDir) rmSync(this.dataDir, { recursive: true, force: true });
  }
}

describe('TLS: ferry start with its development certificate; Chromium on the HTTPS page over WSS calls a phone', { timeout: 180_000 }, () => {
  const world = new FerryWithDeskPhone();
  let phone: SipPhone;
  let fs: FerryStartProcess;
  let ready: ReadyWithTls;
  let page: Page;
  let certPem: Buffer;

  before(async () => {
    await world.start('ferry-https-data-', { FERRY_LOG_LEVEL: 'info' });
    ({ phone, fs, ready } = world);
    const certFile = path.join(world.dataDir, 'tls', 'dev-cert.pem');
    assert.ok(existsSync(certFile), 'the development certificate is in the data directory');
    certPem = readFileSync(certFile);
  });

  after(async () => {
    await world.stop();
  });

  test('TLS: ferry start says where the HTTPS page is and how to trust its development certificate; every TLS listener serves it', async () => {
    assert.ok(ready.tls > 0 && ready.wss > 0 && ready.https > 0, JSON.stringify(ready));
    // ferry start prints these lines after its ready line: they may still be in the pipe when ready() returns
    await fs.waitLine((l) => /install it as a trusted CA/.test(l), 0, 10_000, 'the development certificate\'s trust notes (the last lines printed)');
    const out = fs.lines.map((l) => l.line).join('\n');
    assert.match(out, new RegExp(`webphone page over HTTPS at https://localhost:${ready.https}/`));
    assert.match(out, /self-signed development certificate .*dev-cert\.pem/);
    assert.match(out, /update-ca-certificates/);
    const fingerprints = new Set<string>();
    for (const port of [ready.tls, ready.wss, ready.https]) {
      const c = await peerCertificate(port, certPem);
      assert.equal(c.authorized, true, `port ${port} presents a certificate the development certificate verifies`);
      fingerprints.add(c.fingerprint);
    }
    assert.equal(fingerprints.size, 1, 'one certificate on SIP/TLS, WSS and HTTPS');
  });

  test('TLS: over HTTPS the page is told the wss:// URL for the name it was opened with; over HTTP it gets ws:// and a link to HTTPS', async () => {
    const secure = await getText(ready.https, '/api/webphone-config', certPem);
    assert.equal(secure.status, 200);
    assert.equal((JSON.parse(secure.body) as { wsUrl: string }).wsUrl, `wss://localhost:${ready.wss}`);
    const page = await getText(ready.https, '/', certPem);
    assert.match(String(page.headers['content-security-policy']), new RegExp(`connect-src 'self' wss://localhost:${ready.wss}`));
    assert.match(String(page.headers['strict-transport-security']), /max-age=\d+/);
    const plain = await fetch(`http://127.0.0.1:${ready.http}/api/webphone-config`);
    const body = (await plain.json()) as { wsUrl: string; httpsUrl?: string };
    assert.equal(body.wsUrl, `ws://127.0.0.1:${ready.ws}`);
    assert.equal(body.httpsUrl, `https://127.0.0.1:${ready.https}/`);
  });

  test('TLS: Chromium on the HTTPS page registers over WSS and calls a phone; RTP counted both ways', async () => {
    world.browser = await launchBrowser();
    page = await openHttpsWebphone(world.browser, ready);

    const since = Date.now();
    await dial(page, '9100');
    await page.waitForFunction(() => (window as unknown as { ferryCallState?: string }).ferryCallState === 'connected', undefined, { timeout: 20_000 });
    const stats = (): Promise<{ sent: number; received: number }> =>
      page.evaluate(() => (window as unknown as { ferryStats(): Promise<{ sent: number; received: number }> }).ferryStats());
    await waitFor(async () => (await phone.media.rtpReceivedBetween(since, Date.now())) > 50, 15_000, 100, 'RTP from the HTTPS webphone at the phone');
    await waitFor(async () => {
      const s = await stats();
      return s.sent > 50 && s.received > 50;
    }, 15_000, 100, 'RTP both ways at the Chromium webphone (getStats)');
    const s = await stats();
    const atPhone = await phone.media.rtpReceivedBetween(since, Date.now());
    const fromPhone = await phone.media.rtpSentBetween(since, Date.now());
    console.log(`https webphone call: browser sent ${s.sent}, received ${s.received}; phone received ${atPhone}, sent ${fromPhone}`);
    assert.ok(atPhone > 50 && fromPhone > 50);
    await page.click('#hangup');
    await page.waitForFunction(() => (window as unknown as { ferryCallState?: string }).ferryCallState !== 'connected', undefined, { timeout: 10_000 });
  });
});

/**
 * Real networks: ferry media behind a 1:1 NAT (FERRY_MEDIA_PUBLIC_IP, a documentation address here) — what
 * the gateway hands both parties must carry the public address: the phone's INVITE `c=` and the host
 * candidates of the answer the webphone gets. No media can flow to that address on this machine; only the
 * signalling is checked, and the call is hung up.
 */
describe('real networks: the public media address survives the gateway, to the phone and to the webphone', { timeout: 180_000 }, () => {
  const PUBLIC_IP = '198.51.100.23';
  const world = new FerryWithDeskPhone();
  let phone: SipPhone;
  let ready: ReadyWithTls;

  before(async () => {
    await world.start('ferry-nat-data-', { FERRY_STORE: 'memory', FERRY_MEDIA_PUBLIC_IP: PUBLIC_IP });
    ({ phone, ready } = world);
  });

  after(async () => {
    await world.stop();
  });

  test('real networks: the webphone calls the phone; the phone is offered c= with the public address and the webphone is answered with host candidates on it', async () => {
    world.browser = await launchBrowser();
    const page = await openHttpsWebphone(world.browser, ready);
    const since = Date.now();
    await dial(page, '9100');
    await waitFor(() => phone.received.find((r) => r.method === 'INVITE' && r.at >= since), 20_000, 50, 'the INVITE at the phone');
    const invite = phone.received.find((r) => r.method === 'INVITE' && r.at >= since)!;
    assert.match(invite.message.body, new RegExp(`\\r\\nc=IN IP4 ${PUBLIC_IP.replace(/\./g, '\\.')}\\r\\n`), 'the phone leg offer names the public address');
    const record = await waitFor(async () => {
      const all = (await getJson<{ calls: { id: string; createdAt: number }[] }>(ready.http, '/api/calls?state=all')).calls.filter((c) => c.createdAt >= since - 1000);
      if (all.length === 0) return undefined;
      const r = await getJson<CallRecord>(ready.http, `/api/calls/${all[0]!.id}`);
      return r.caller.localSdp ? r : undefined;
    }, 20_000, 100, 'the answer given to the webphone in the call record');
    const hostAddresses = [...record.caller.localSdp!.matchAll(/a=candidate:\S+ \d+ udp \d+ (\S+) \d+ typ host/gi)].map((m) => m[1]);
    assert.ok(hostAddresses.length > 0, 'the webphone was answered with host candidates');
    assert.deepEqual([...new Set(hostAddresses)], [PUBLIC_IP]);
    await page.click('#hangup').catch(() => undefined);
  });
});
