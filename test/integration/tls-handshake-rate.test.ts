/**
 * The handshake rate per source (docs/security.md, "Connections" and "HTTP API and webphone"): a source
 * that opens TLS connections and drops them in a loop stays under the per-source connection cap, but each
 * one costs the server a full handshake. Past its token bucket, a new TLS, WSS or HTTPS connection from it
 * is closed on accept, before the server sends a byte (no handshake work), and counted; another source
 * is admitted meanwhile; once the bucket refills (the guard's clock advanced, no sleeping) the first
 * source is admitted again. Real sockets on loopback: ferry sip's TLS, WSS and TCP listeners sharing one
 * ConnectionGuard as in ferry sip, and the gateway's HTTPS listener.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { Duplex, Writable } from 'node:stream';
import winston from 'winston';
import WebSocket from 'ws';
import https from 'node:https';
import { FakeClock } from '../../src/common/clock';
import { HttpConnectionGuard } from '../../src/common/http-limits';
import { HttpServer } from '../../src/gateway/http/http-server';
import { ConnectionGuard } from '../../src/sip/transport/connection-guard';
import { DEFAULT_CONNECTION_LIMITS } from '../../src/sip/transport/connection-limits';
import type { Flow } from '../../src/sip/transport/flow';
import { TcpTransport } from '../../src/sip/transport/tcp-transport';
import { TlsTransport } from '../../src/sip/transport/tls-transport';
import { WsTransport } from '../../src/sip/transport/ws-transport';
import { makeTestCertificate, type TestCertificate } from '../helpers/test-certificate';
import { pollUntil } from '../helpers/wait-for';
import { captureLog } from '../helpers/captured-log';

interface Attempt {
  /** the handshake completed */
  secure: boolean;
  /** bytes the server sent before the connection ended (0: not even a ServerHello) */
  bytesFromServer: number;
  socket: tls.TLSSocket;
}

/** A TCP connection from `localAddress` as a plain stream (a TLS client over it runs in JavaScript), counting the bytes the server sends. */
function countingConnection(port: number, localAddress: string): { stream: Duplex; received: () => number } {
  const raw = net.connect({ port, host: '127.0.0.1', localAddress });
  let received = 0;
  const stream = new Duplex({
    read() { /* pushed from raw */ },
    write(chunk: Buffer, _enc, done) { raw.write(chunk, () => done()); },
    final(done) { raw.end(); done(); },
    destroy(err, done) { raw.destroy(); done(err); },
  });
  raw.on('data', (d: Buffer) => { received += d.length; stream.push(d); });
  raw.on('end', () => stream.push(null));
  raw.on('error', (err) => stream.destroy(err));
  raw.on('close', () => stream.destroy());
  return { stream, received: () => received };
}

/** One TLS connection from `localAddress`: whether its handshake completed; `keep` leaves it open, else it is dropped at once. */
function tlsAttempt(port: number, localAddress: string, keep = false): Promise<Attempt> {
  return new Promise((resolve) => {
    const conn = countingConnection(port, localAddress);
    const socket = tls.connect({ socket: conn.stream, rejectUnauthorized: false });
    let done = false;
    const finish = (secure: boolean): void => {
      if (done) return;
      done = true;
      const bytesFromServer = conn.received();
      if (!keep || !secure) socket.destroy();
      resolve({ secure, bytesFromServer, socket });
    };
    socket.once('secureConnect', () => finish(true));
    socket.on('error', () => finish(false));
    socket.once('close', () => finish(false));
  });
}

/** One WSS upgrade from `localAddress` (subprotocol sip): whether it opened; dropped at once either way. */
function wssAttempt(port: number, localAddress: string): Promise<boolean> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}`, 'sip', { localAddress, rejectUnauthorized: false });
    let done = false;
    const finish = (open: boolean): void => {
      if (done) return;
      done = true;
      ws.terminate();
      resolve(open);
    };
    ws.once('open', () => finish(true));
    ws.on('error', () => finish(false));
    ws.once('close', () => finish(false));
  });
}

/** `n` attempts one after another (a source opening and dropping connections in a loop) */
async function loop<T>(n: number, attempt: () => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(await attempt());
  return out;
}

const sipOptions = (localPort: number): string => ['OPTIONS sip:probe@127.0.0.1 SIP/2.0', `Via: SIP/2.0/TLS 127.0.0.2:${localPort};branch=z9hG4bKrate${localPort}`,
  'Max-Forwards: 70', 'From: <sip:probe@127.0.0.2>;tag=1', 'To: <sip:probe@127.0.0.1>', `Call-ID: rate${localPort}`, 'CSeq: 1 OPTIONS', 'Content-Length: 0', '', ''].join('\r\n');

describe('TLS handshake rate per source', { timeout: 60_000 }, () => {
  let cert: TestCertificate;
  before(() => { cert = makeTestCertificate(); });
  after(() => cert.remove());

  test('ferry sip TLS+WSS: a source dropping connections in a loop gets its burst of 10, then is refused before any handshake (counted, one log line); another source is served meanwhile; 1 s of the clock later the first gets 5 more', async () => {
    const clock = new FakeClock();
    const { logger, lines } = captureLog();
    const limits = { ...DEFAULT_CONNECTION_LIMITS, maxPerSource: 1000, tlsHandshakesPerSourcePerSecond: 5, tlsHandshakeBurst: 10, sourceIpv6Prefix: 64 };
    const guard = new ConnectionGuard(limits, logger, () => false, clock);
    const received: { text: string; flow: Flow }[] = [];
    const events = { onMessage: (d: Buffer, flow: Flow) => received.push({ text: d.toString('utf8'), flow }), onClose: () => undefined };
    const tlsT = new TlsTransport(events, guard, { cert: cert.cert, key: cert.key });
    const wssT = new WsTransport(events, guard, { cert: cert.cert, key: cert.key });
    const tcpT = new TcpTransport(events, guard);
    try {
      const tlsPort = await tlsT.listen('127.0.0.1', 0);
      const wssPort = await wssT.listen('127.0.0.1', 0);
      const tcpPort = await tcpT.listen('127.0.0.1', 0);

      const first = await loop(25, () => tlsAttempt(tlsPort, '127.0.0.1'));
      const admitted = first.filter((a) => a.secure).length;
      assert.equal(admitted, 10, `the burst: ${admitted} of 25 handshakes completed`);
      assert.ok(first.slice(0, 10).every((a) => a.secure && a.bytesFromServer > 0), `the first 10 are the admitted ones, with a handshake from the server: ${first.slice(0, 10).map((a) => a.bytesFromServer).join(',')}`);
      const refused = first.slice(10);
      assert.ok(refused.every((a) => !a.secure && a.bytesFromServer === 0), `refused before the server sent a byte: ${refused.map((a) => a.bytesFromServer).join(',')}`);
      assert.equal(guard.stats().refused['handshake-rate'], 15);
      assert.equal(await wssAttempt(wssPort, '127.0.0.1'), false, 'WSS from the same source shares its bucket');
      assert.equal(guard.stats().refused['handshake-rate'], 16);

      // positive controls: another source completes its handshake and its SIP arrives; plain TCP from the throttled source is not rate-limited
      const other = await tlsAttempt(tlsPort, '127.0.0.2', true);
      assert.ok(other.secure, 'another source is admitted while the first is throttled');
      other.socket.write(sipOptions(other.socket.localPort!));
      await pollUntil(() => received.find((r) => r.flow.remoteAddress === '127.0.0.2' && r.text.startsWith('OPTIONS ')), { timeoutMs: 5000, what: 'the OPTIONS from 127.0.0.2 to arrive over TLS' });
      other.socket.destroy();
      assert.equal(await wssAttempt(wssPort, '127.0.0.2'), true, 'another source upgrades over WSS');
      const plain = await loop(15, () => new Promise<boolean>((resolve) => {
        const s = net.connect({ port: tcpPort, host: '127.0.0.1', localAddress: '127.0.0.1' });
        s.once('connect', () => { s.destroy(); resolve(true); });
        s.once('error', () => resolve(false));
      }));
      assert.ok(plain.every(Boolean), 'TCP connections cost no handshake and are not rate-limited');
      await pollUntil(() => guard.stats().open === 0 || undefined, { timeoutMs: 5000, what: 'every dropped connection released' });
      assert.equal(guard.stats().refused['handshake-rate'], 16, 'nothing else refused');

      const rateLines = lines.filter((l) => l.reason === 'handshake-rate');
      assert.equal(rateLines.length, 1, `one log line for the throttled source: ${JSON.stringify(rateLines)}`);
      assert.equal(rateLines[0]!.source, '127.0.0.1');
      assert.equal(rateLines[0]!.sourceKey, '127.0.0.1');
      assert.match(String(rateLines[0]!.message), /SIP connection refused from 127\.0\.0\.1: handshake-rate/);

      // the bucket refills at 5/s: one second of the guard's clock gives 5 handshakes, not 6
      clock.advance(1000);
      const again = await loop(6, () => tlsAttempt(tlsPort, '127.0.0.1'));
      assert.deepEqual(again.map((a) => a.secure), [true, true, true, true, true, false]);
      assert.equal(guard.stats().refused['handshake-rate'], 17);
      assert.ok(guard.stats().handshakeSources >= 1 && guard.stats().handshakeSources <= 2, `buckets tracked: ${guard.stats().handshakeSources}`);
      // long quiet: the refilled buckets are dropped
      clock.advance(60_000);
      assert.equal((await tlsAttempt(tlsPort, '127.0.0.3')).secure, true);
      assert.equal(guard.stats().handshakeSources, 1, 'only the newest source still has a bucket');
    } finally {
      await Promise.all([tlsT.close(), wssT.close(), tcpT.close()]);
    }
  });

  test('gateway HTTPS: past the burst a source is refused before the handshake (counted) while another source and plain HTTP are served', async () => {
    const { logger, lines } = captureLog();
    const server = new HttpServer({ listCalls: async () => [], getCall: async () => undefined, metrics: async () => '', webphoneConfig: () => ({ wsUrl: '', domain: 'x' }) },
      logger, undefined, undefined, { headerTimeoutMs: 5000, requestTimeoutMs: 5000, maxConnectionsPerSource: 100, maxConnections: 100, tlsHandshakesPerSourcePerSecond: 1, tlsHandshakeBurst: 4 });
    try {
      const port = await server.listenHttps('127.0.0.1', 0, { cert: cert.cert, key: cert.key });
      const httpPort = await server.listen('127.0.0.1', 0);
      const attempts = await loop(8, () => tlsAttempt(port, '127.0.0.1'));
      // at 1/s a fifth token may come while the loop runs on a slow machine: 4 or 5 admitted, the rest refused
      const admitted = attempts.filter((a) => a.secure).length;
      assert.ok(admitted >= 4 && admitted <= 5, `${admitted} of 8 admitted`);
      assert.ok(attempts.filter((a) => a.secure).every((a) => a.bytesFromServer > 0), 'an admitted connection gets the server\'s handshake');
      assert.ok(attempts.filter((a) => !a.secure).every((a) => a.bytesFromServer === 0), 'refused before any byte of a handshake');
      assert.equal(server.guard.refused.handshakeRate, 8 - admitted);
      assert.equal((await tlsAttempt(port, '127.0.0.2')).secure, true, 'another source is admitted');
      const status = await new Promise<number>((resolve, reject) => {
        const req = https.get({ host: '127.0.0.1', port, path: '/healthz', localAddress: '127.0.0.3', rejectUnauthorized: false, headers: { host: 'localhost' } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
      });
      assert.equal(status, 200, 'a third source gets its page over HTTPS');
      const plain = await loop(8, () => new Promise<boolean>((resolve) => {
        const s = net.connect({ port: httpPort, host: '127.0.0.1', localAddress: '127.0.0.1' });
        s.once('connect', () => { s.destroy(); resolve(true); });
        s.once('error', () => resolve(false));
      }));
      assert.ok(plain.every(Boolean), 'plain HTTP from the throttled source is not rate-limited');
      const logged = lines.filter((l) => l.reason === 'handshake-rate');
      assert.equal(logged.length, 1, 'one line for the source');
      assert.match(String(logged[0]!.message), /HTTP connection refused from 127\.0\.0\.1: handshake-rate/);
    } finally {
      await server.close();
    }
  });

  test('HTTPS guard on its own clock: after the bucket refills the throttled source completes a handshake again', async () => {
    const clock = new FakeClock();
    const guard = new HttpConnectionGuard({ headerTimeoutMs: 5000, requestTimeoutMs: 5000, maxConnectionsPerSource: 100, maxConnections: 100, tlsHandshakesPerSourcePerSecond: 2, tlsHandshakeBurst: 3 },
      winston.createLogger({ silent: true }), () => clock.now());
    const server = tls.createServer({ cert: cert.cert, key: cert.key }, (s) => s.end());
    server.on('connection', (socket: net.Socket) => guard.admit(socket, true));
    server.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      assert.deepEqual((await loop(5, () => tlsAttempt(port, '127.0.0.1'))).map((a) => a.secure), [true, true, true, false, false]);
      assert.equal(guard.refused.handshakeRate, 2);
      clock.advance(499);
      assert.equal((await tlsAttempt(port, '127.0.0.1')).secure, false, '499 ms at 2/s: still no token');
      clock.advance(1);
      assert.equal((await tlsAttempt(port, '127.0.0.1')).secure, true, '500 ms at 2/s: one token');
      assert.equal(guard.refused.handshakeRate, 3);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
