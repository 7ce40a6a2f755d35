/**
 * SIP over TLS and secure WebSocket in ferry sip (bin/ferry sip with FERRY_TLS_CERT/FERRY_TLS_KEY), seen by a
 * real drachtio-srf app as drachtio-server shows them: `tls/` and `wss/` in the hostports of `authenticate`,
 * req.protocol `tls`/`wss`. Clients are node:tls and the `ws` package, each trusting exactly the test
 * certificate, so a handshake only succeeds with the certificate ferry sip was given. Outbound, a request to
 * `;transport=tls` goes over a TLS connection whose certificate ferry sip checks (FERRY_TLS_CA).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import type Srf from 'drachtio-srf';
import { spawnSipEngine, type SipEngineProcess } from '../helpers/sip-engine-process';
import { connectSrf, g711Sdp, type ConnectedSrf } from '../helpers/srf-app';
import { makeTestCertificate, type TestCertificate } from '../helpers/test-certificate';
import { pollPause } from '../helpers/wait-for';

const HEADER_TIMEOUT_MS = 1500;

interface SeenRegister {
  protocol: string;
  via: string;
  contact: string;
}

function register(transport: 'TLS' | 'WSS', localPort: number, contactHost: string): string {
  const branch = `z9hG4bK${randomBytes(6).toString('hex')}`;
  return [
    'REGISTER sip:ferry.test SIP/2.0',
    `Via: SIP/2.0/${transport} ${contactHost}:${localPort};branch=${branch};rport`,
    'Max-Forwards: 70',
    `From: <sip:alice@ferry.test>;tag=${randomBytes(4).toString('hex')}`,
    'To: <sip:alice@ferry.test>',
    `Call-ID: ${randomBytes(8).toString('hex')}@test`,
    'CSeq: 1 REGISTER',
    `Contact: <sip:alice@${contactHost}:${localPort};transport=${transport.toLowerCase()}>`,
    'Expires: 60',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

function readResponse(socket: tls.TLSSocket, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`no complete response within ${timeoutMs} ms: ${JSON.stringify(buf)}`)), timeoutMs);
    socket.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      if (buf.includes('\r\n\r\n')) {
        clearTimeout(timer);
        resolve(buf);
      }
    });
  });
}

/** A TLS "phone" on a free port: collects every request that arrives and answers INVITEs 486. */
async function tlsPhone(cert: TestCertificate): Promise<{ port: number; requests: string[]; close(): Promise<void> }> {
  const requests: string[] = [];
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer({ cert: cert.cert, key: cert.key }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      let end: number;
      while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
        const head = buf.slice(0, end);
        const len = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + len) return;
        const msg = buf.slice(0, end + 4 + len);
        buf = buf.slice(end + 4 + len);
        requests.push(msg);
        if (msg.startsWith('INVITE ')) {
          const copy = (name: string) => head.split('\r\n').filter((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`)).join('\r\n');
          s.write(['SIP/2.0 486 Busy Here', copy('Via'), copy('From'), `${copy('To')};tag=phone1`, copy('Call-ID'), copy('CSeq'), 'Content-Length: 0', '', ''].join('\r\n'));
        }
      }
    });
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    requests,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await pollPause(20);
  }
}

describe('ferry sip over TLS and WSS', { timeout: 90_000 }, () => {
  let cert: TestCertificate;
  let otherCert: TestCertificate;
  let engine: SipEngineProcess;
  let app: ConnectedSrf;
  let tlsPort = 0;
  let wssPort = 0;
  const registers: SeenRegister[] = [];

  before(async () => {
    cert = makeTestCertificate();
    otherCert = makeTestCertificate();
    engine = await spawnSipEngine({
      FERRY_TLS_CERT: cert.certFile,
      FERRY_TLS_KEY: cert.keyFile,
      FERRY_TLS_CA: cert.certFile,
      FERRY_SIP_TLS_PORT: '0',
      FERRY_SIP_WSS_PORT: '0',
      FERRY_SIP_HEADER_TIMEOUT_MS: String(HEADER_TIMEOUT_MS),
    });
    const ready = JSON.parse(/ferry sip ready (\{[^\n]*\})/.exec(engine.stdout())![1]!) as { tls: number; wss: number };
    tlsPort = ready.tls;
    wssPort = ready.wss;
    app = await connectSrf({ host: '127.0.0.1', port: engine.ports.control, secret: 'cymru' }, (srf: Srf) => {
      type Handler = (req: { protocol: string; get(h: string): string }, res: { send(status: number, opts: object): void }) => void;
      (srf as unknown as { register(h: Handler): void }).register((req, res) => {
        registers.push({ protocol: req.protocol, via: req.get('Via'), contact: req.get('Contact') });
        res.send(200, { headers: { Contact: req.get('Contact'), Expires: '60' } });
      });
    });
  });

  after(async () => {
    app?.close();
    await engine?.stop();
    cert?.remove();
    otherCert?.remove();
  });

  test('TLS: the ready line and drachtio hostports name the tls and wss listeners', () => {
    assert.ok(tlsPort > 0 && wssPort > 0, `ports ${tlsPort}/${wssPort}`);
    assert.equal(app.sipAddress('tls'), `127.0.0.1:${tlsPort}`);
    assert.equal(app.sipAddress('wss'), `127.0.0.1:${wssPort}`);
  });

  test('TLS: a REGISTER over a verified TLS connection reaches the app as protocol tls with its TLS Via, and the 200 comes back over it', async () => {
    const socket = tls.connect({ host: '127.0.0.1', port: tlsPort, servername: 'localhost', ca: [cert.cert] });
    await new Promise<void>((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject); });
    assert.equal(socket.authorized, true, 'the client verified ferry sip\'s certificate');
    const before = registers.length;
    const answer = readResponse(socket);
    socket.write(register('TLS', socket.localPort!, '127.0.0.1'));
    const res = await answer;
    assert.match(res, /^SIP\/2\.0 200 /);
    await until('the app saw the REGISTER', () => registers.length > before);
    const seen = registers[registers.length - 1]!;
    assert.equal(seen.protocol, 'tls');
    assert.match(seen.via, /^SIP\/2\.0\/TLS /);
    socket.destroy();
  });

  test('WSS: a REGISTER over a verified secure WebSocket reaches the app as protocol wss', async () => {
    const ws = new WebSocket(`wss://127.0.0.1:${wssPort}`, 'sip', { ca: [cert.cert] });
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
    const before = registers.length;
    const answer = new Promise<string>((resolve) => ws.once('message', (d) => resolve(d.toString())));
    ws.send(register('WSS', 0, 'df7jal23ls0d.invalid'));
    assert.match(await answer, /^SIP\/2\.0 200 /);
    await until('the app saw the REGISTER', () => registers.length > before);
    assert.equal(registers[registers.length - 1]!.protocol, 'wss');
    assert.match(registers[registers.length - 1]!.via, /^SIP\/2\.0\/WSS /);
    ws.close();
  });

  test('TLS outbound: an INVITE to ;transport=tls goes over a verified TLS connection with a TLS Via and a transport=tls Contact', async () => {
    const phone = await tlsPhone(cert);
    try {
      const err = await app.srf.createUAC(`sip:bob@127.0.0.1:${phone.port};transport=tls`, { localSdp: g711Sdp(40000) }).then(
        () => undefined, (e: { status?: number }) => e);
      assert.equal(err?.status, 486, 'the phone\'s answer came back to the app');
      const invite = phone.requests.find((r) => r.startsWith('INVITE '));
      assert.ok(invite, 'the phone received the INVITE');
      assert.match(invite, /\r\nVia: SIP\/2\.0\/TLS 127\.0\.0\.1:\d+;/i);
      assert.match(invite, new RegExp(`\\r\\nContact: <sip:[^>]*127\\.0\\.0\\.1:${tlsPort};transport=tls>`, 'i'));
    } finally {
      await phone.close();
    }
  });

  test('TLS outbound: a peer whose certificate ferry sip does not trust gets nothing', async () => {
    const phone = await tlsPhone(otherCert);
    try {
      const err = await app.srf.createUAC(`sip:bob@127.0.0.1:${phone.port};transport=tls`, { localSdp: g711Sdp(40000) }).then(
        () => undefined, (e: { status?: number }) => e);
      assert.ok(err && err.status !== 486, `the INVITE failed inside ferry sip (status ${err?.status})`);
      assert.equal(phone.requests.length, 0, 'no request reached the untrusted peer');
    } finally {
      await phone.close();
    }
  });

  test('TLS: a connection that never completes its handshake is closed at the header deadline', async () => {
    const raw = net.connect({ host: '127.0.0.1', port: tlsPort });
    await new Promise<void>((resolve, reject) => { raw.once('connect', resolve); raw.once('error', reject); });
    const t0 = Date.now();
    raw.write(Buffer.from([0x16, 0x03, 0x01])); // the start of a ClientHello, never finished
    await new Promise<void>((resolve) => raw.once('close', () => resolve()));
    const after = Date.now() - t0;
    assert.ok(after >= HEADER_TIMEOUT_MS - 100 && after < HEADER_TIMEOUT_MS + 8000, `closed after ${after} ms`);
    await until('the close is logged', () => /handshake-timeout/.test(engine.stdout() + engine.stderr()));
  });
});

describe('ferry sip behind NAT: FERRY_PUBLIC_HOST', { timeout: 60_000 }, () => {
  const PUBLIC_HOST = 'sip.ferry-public.test';
  let engine: SipEngineProcess;
  let app: ConnectedSrf;

  before(async () => {
    engine = await spawnSipEngine({ FERRY_PUBLIC_HOST: PUBLIC_HOST });
    app = await connectSrf({ host: '127.0.0.1', port: engine.ports.control, secret: 'cymru' });
  });

  after(async () => {
    app?.close();
    await engine?.stop();
  });

  test('real networks: the public host is what ferry sip writes in hostports, Via and Contact (the sockets stay where they are)', async () => {
    assert.equal(app.sipAddress('udp'), `${PUBLIC_HOST}:${engine.ports.sip}`);
    const dgram = await import('node:dgram');
    const phone = dgram.createSocket('udp4');
    const received: string[] = [];
    phone.on('message', (m) => received.push(m.toString('utf8')));
    await new Promise<void>((r) => phone.bind(0, '127.0.0.1', () => r()));
    try {
      const port = (phone.address() as net.AddressInfo).port;
      const uac = app.srf.createUAC(`sip:bob@127.0.0.1:${port}`, { localSdp: g711Sdp(40000) }).catch(() => undefined);
      await until('the INVITE at the phone', () => received.some((r) => r.startsWith('INVITE ')));
      const invite = received.find((r) => r.startsWith('INVITE '))!;
      assert.match(invite, new RegExp(`\\r\\nVia: SIP/2\\.0/UDP ${PUBLIC_HOST.replace(/\./g, '\\.')}:${engine.ports.sip};`, 'i'));
      assert.match(invite, new RegExp(`\\r\\nContact: <sip:[^>]*${PUBLIC_HOST.replace(/\./g, '\\.')}:${engine.ports.sip}>`, 'i'));
      void uac;
    } finally {
      phone.close();
    }
  });
});
