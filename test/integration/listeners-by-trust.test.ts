import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LineProcess } from '../helpers/line-process';
import { spawnSipEngine, type SipEngineProcess } from '../helpers/sip-engine-process';
import { FerryStartProcess } from '../helpers/ferry-start-process';
import { call, connectKurento, type KurentoObjectLike } from '../helpers/media-kurento';
import { MediaServerProcess } from '../helpers/media-server-process';

/**
 * Listeners split by trust, read from the kernel's socket tables: public listeners (SIP, WebSocket,
 * the page) follow FERRY_HOST / FERRY_SIP_HOST; the drachtio control port and the Kurento port stay on
 * 127.0.0.1 unless set explicitly, and the default drachtio secret on a public control address is refused.
 */

const BIN = path.join(__dirname, '..', '..', 'bin', 'ferry');
/** Every port free (ports of listeners other parts add default to fixed numbers: keep them off those). */
const FREE_PORTS = {
  FERRY_SIP_PORT: '0', FERRY_SIP_WS_PORT: '0', FERRY_SIP_CONTROL_PORT: '0', FERRY_MEDIA_PORT: '0', FERRY_HTTP_PORT: '0',
  FERRY_SIP_TLS_PORT: '0', FERRY_SIP_WSS_PORT: '0', FERRY_HTTPS_PORT: '0',
};

/** Local addresses bound to `port`: TCP sockets in LISTEN state, or UDP sockets, from /proc/net. */
function boundAddresses(port: number, protocol: 'tcp' | 'udp'): string[] {
  const out: string[] = [];
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const file of [`/proc/net/${protocol}`, `/proc/net/${protocol}6`]) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 4) continue;
      const [addrHex, p] = f[1]!.split(':');
      if (p !== hexPort) continue;
      if (protocol === 'tcp' && f[3] !== '0A') continue;
      out.push(decodeAddress(addrHex!));
    }
  }
  return out;
}

/** `p`, or a rejection naming `what` after `ms` (the timer is cleared either way). */
async function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms); })]);
  } finally {
    clearTimeout(timer);
  }
}

function decodeAddress(hex: string): string {
  if (hex.length === 8) {
    const b = Buffer.from(hex, 'hex');
    return `${b[3]}.${b[2]}.${b[1]}.${b[0]}`;
  }
  if (/^0+$/.test(hex)) return '::';
  if (hex === '00000000000000000000000001000000') return '::1';
  return `ipv6:${hex}`;
}

describe('listeners split by trust', { timeout: 180_000 }, () => {
  const engines: SipEngineProcess[] = [];
  const starts: FerryStartProcess[] = [];
  const dirs: string[] = [];
  const spawned: LineProcess[] = [];
  const mediaServers: MediaServerProcess[] = [];
  /** processes a test started alongside another, possibly still starting when the test failed */
  const starting: Promise<unknown>[] = [];
  after(async () => {
    await Promise.allSettled(starting);
    await Promise.all(mediaServers.map((m) => m.stop()));
    for (const p of spawned) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await Promise.all(engines.map((e) => e.stop()));
    await Promise.all(starts.map((s) => s.stop()));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  function dataDir(): string {
    const d = mkdtempSync(path.join(os.tmpdir(), 'ferry-listeners-'));
    dirs.push(d);
    return d;
  }

  test('listeners: FERRY_SIP_HOST=0.0.0.0 puts SIP on every interface and leaves the drachtio control port on 127.0.0.1', async () => {
    const e = await spawnSipEngine({ FERRY_SIP_HOST: '0.0.0.0' });
    engines.push(e);
    assert.deepEqual(boundAddresses(e.ports.sip, 'udp'), ['0.0.0.0'], 'SIP UDP (public)');
    assert.deepEqual(boundAddresses(e.ports.sip, 'tcp'), ['0.0.0.0'], 'SIP TCP (public)');
    assert.deepEqual(boundAddresses(e.ports.ws, 'tcp'), ['0.0.0.0'], 'SIP WebSocket (public)');
    assert.deepEqual(boundAddresses(e.ports.control, 'tcp'), ['127.0.0.1'], 'drachtio control port (loopback)');
  });

  test('listeners: ferry sip with the default secret and FERRY_SIP_CONTROL_HOST=0.0.0.0 refuses to start, naming the problem; with its own secret it starts there', async () => {
    const refused = LineProcess.spawn(process.execPath, [BIN, 'sip'], { ...FREE_PORTS, NODE_ENV: 'test', FERRY_SIP_HOST: '127.0.0.1', FERRY_SIP_CONTROL_HOST: '0.0.0.0', FERRY_SIP_SECRET: '' });
    spawned.push(refused);
    // positive control, started meanwhile (independent of the refused one): the same address with a secret of its own is allowed, and binds there
    const allowed = spawnSipEngine({ FERRY_SIP_CONTROL_HOST: '0.0.0.0', FERRY_SIP_SECRET: 'a-long-site-secret' }).then((e) => {
      engines.push(e);
      return e;
    });
    starting.push(allowed); // awaited below, and by the after hook should a refusal assertion fail first
    const exit = await withDeadline(refused.exited, 15_000, 'ferry sip did not exit');
    assert.equal(exit.code, 1, `exit code; stderr: ${refused.stderr.join('\n')}`);
    assert.equal(refused.stderr.length, 1, `one line: ${refused.stderr.join('\n')}`);
    assert.match(refused.stderr[0]!, /^ferry sip: refusing to start: .*0\.0\.0\.0.*default secret 'cymru'.*FERRY_SIP_SECRET/);
    assert.ok(!refused.stdout.some((l) => l.startsWith('ferry sip ready')), 'never ready');
    const e = await allowed;
    assert.deepEqual(boundAddresses(e.ports.control, 'tcp'), ['0.0.0.0'], 'an explicit control address is honoured');
  });

  test('listeners: ferry media with the Kurento port on a non-loopback address warns in one line that it has no authentication; on loopback it does not', async () => {
    // both at once (independent processes); each is kept for the after hook as soon as it is up
    const both = [
      MediaServerProcess.start({ FERRY_MEDIA_HOST: '0.0.0.0', FERRY_MEDIA_SDP_ADDRESS: '127.0.0.1', FERRY_LOG_LEVEL: 'warn' }),
      MediaServerProcess.start({ FERRY_LOG_LEVEL: 'warn' }),
    ].map((start) => start.then((m) => {
      mediaServers.push(m);
      return m;
    }));
    starting.push(...both);
    const [open, local] = await Promise.all(both);
    assert.deepEqual(boundAddresses(open.port, 'tcp'), ['0.0.0.0']);
    assert.deepEqual(boundAddresses(local.port, 'tcp'), ['127.0.0.1'], 'the default is loopback');
    const warnings = open.logsMatching('WARNING');
    assert.equal(warnings.length, 1, open.log());
    assert.match(warnings[0]!, /^ferry media: WARNING: the Kurento port listens on 0\.0\.0\.0:\d+, reachable from other hosts, and the Kurento protocol has no authentication/);
    assert.deepEqual(local.logsMatching('WARNING'), [], 'no warning on loopback');
  });

  test('listeners: ferry start with FERRY_HOST=0.0.0.0 → SIP, WebSocket, RTP and the page on 0.0.0.0, drachtio control and Kurento on 127.0.0.1, and it says so', async () => {
    const fs = FerryStartProcess.spawn({
      ...FREE_PORTS,
      FERRY_HOST: '0.0.0.0',
      FERRY_MEDIA_SDP_ADDRESS: '127.0.0.1',
      FERRY_STORE: 'memory',
      FERRY_DATA_DIR: dataDir(),
      FERRY_LOG_LEVEL: 'warn',
    });
    starts.push(fs);
    const ready = await fs.ready(90_000);
    const pub = { 'SIP udp': boundAddresses(ready.sip, 'udp'), 'SIP tcp': boundAddresses(ready.sip, 'tcp'), 'SIP WebSocket': boundAddresses(ready.ws, 'tcp'), 'page/API': boundAddresses(ready.http, 'tcp') };
    assert.ok(ready.sipMetrics, 'ferry start turns on ferry sip\'s metrics port');
    const ctl = { 'drachtio control': boundAddresses(ready.control, 'tcp'), 'Kurento + /stats': boundAddresses(ready.media, 'tcp'), 'SIP /metrics': boundAddresses(ready.sipMetrics, 'tcp') };
    console.log(`# public ${JSON.stringify(pub)} control ${JSON.stringify(ctl)}`);
    for (const [name, addrs] of Object.entries(pub)) assert.deepEqual(addrs, ['0.0.0.0'], `${name} is public`);
    for (const [name, addrs] of Object.entries(ctl)) assert.deepEqual(addrs, ['127.0.0.1'], `${name} is on loopback only`);
    // the operator is told where each listener is and who can reach it
    await fs.waitLine((l) => /^\s+control\s+drachtio control\s+127\.0\.0\.1:\d+\s+\(this host only\)/.test(l), 0, 5000, 'control listener line');
    await fs.waitLine((l) => /^\s+control\s+Kurento \+ \/stats\s+127\.0\.0\.1:\d+\s+\(this host only\)/.test(l), 0, 5000, 'Kurento listener line');
    await fs.waitLine((l) => new RegExp(`^\\s+control\\s+SIP /metrics\\s+127\\.0\\.0\\.1:${ready.sipMetrics}\\s+\\(this host only\\)`).test(l), 0, 5000, 'SIP metrics listener line');
    const metrics = await fetch(`http://127.0.0.1:${ready.sipMetrics}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(await metrics.text(), /^ferry_sip_connections_open \d+$/m);
    await fs.waitLine((l) => /^\s+public\s+SIP udp\/tcp\s+0\.0\.0\.0:\d+\s+\(reachable from other hosts\)/.test(l), 0, 5000, 'SIP listener line');
    await fs.waitLine((l) => /^\s+public\s+RTP \(phones\)\s+0\.0\.0\.0:\*\s+\(reachable from other hosts\)/.test(l), 0, 5000, 'RTP listener line');
    // RTP is public: an RtpEndpoint created through the (loopback) Kurento port binds its socket on 0.0.0.0
    const kurento = await connectKurento(`ws://127.0.0.1:${ready.media}/kurento`);
    try {
      const pipeline = await kurento.create('MediaPipeline');
      const ep = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
      const offer = await call<string>(ep, 'generateOffer');
      const rtpPort = Number(/^m=audio (\d+)/m.exec(offer)?.[1]);
      assert.ok(rtpPort > 0, offer);
      assert.deepEqual(boundAddresses(rtpPort, 'udp'), ['0.0.0.0'], 'the RTP socket follows FERRY_HOST');
      await pipeline.release();
    } finally {
      kurento.close();
    }
    await fs.stop();
  });

  test('listeners: ferry start with FERRY_SIP_CONTROL_HOST=0.0.0.0 and the default secret refuses to start (exit 1, one line)', async () => {
    const fs = FerryStartProcess.spawn({ ...FREE_PORTS, FERRY_SIP_CONTROL_HOST: '0.0.0.0', FERRY_STORE: 'memory', FERRY_DATA_DIR: dataDir() });
    starts.push(fs);
    const code = await withDeadline(fs.exited, 20_000, 'ferry start did not exit');
    assert.equal(code, 1, fs.tail(20));
    const lines = fs.lines.map((l) => l.line);
    assert.equal(lines.length, 1, `exactly one line: ${lines.join('\n')}`);
    assert.match(lines[0]!, /^ferry start: refusing to start: .*default secret 'cymru'/);
  });
});
