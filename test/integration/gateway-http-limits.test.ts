/**
 * The gateway's HTTP and HTTPS listeners against strangers that hold connections (src/gateway/http/http-limits.ts,
 * docs/security.md "HTTP API and webphone"): a client that connects and says nothing, one that trickles its
 * headers, one that never starts its TLS handshake, and one address opening more connections than its cap.
 * Real sockets on loopback; every "closed" check has a prompt, well-formed request on the same server as
 * its positive control. Without the limits Node holds such connections 60-90 s (HTTP) or 120 s (a TLS
 * handshake) and accepts any number of them from one address. Every refusal shows in /metrics as
 * ferry_http_connections_refused_total{reason}.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { createLogger } from '../../src/common/logger';
import { loadGatewayConfig } from '../../src/gateway/config/gateway-config';
import { ConfigError } from '../../src/gateway/config/config-error';
import { HttpServer } from '../../src/gateway/http/http-server';
import { GatewayMetrics } from '../../src/gateway/http/metrics';
import { DEFAULT_HTTP_LIMITS, type HttpLimits } from '../../src/common/http-limits';
import { makeTestCertificate, type TestCertificate } from '../helpers/test-certificate';
import { pollUntil } from '../helpers/wait-for';

const LIMITS: HttpLimits = { headerTimeoutMs: 1000, requestTimeoutMs: 2000, maxConnectionsPerSource: 8, maxConnections: 12 };

interface Held {
  socket: net.Socket;
  openedAt: number;
  closedAt: number | undefined;
  received: string;
}

/** a connection from `localAddress` that sends `first` (if any) once connected and records when the server closes it */
function hold(port: number, localAddress = '127.0.0.1', first?: string, secure = false): Promise<Held> {
  return new Promise((resolve, reject) => {
    const socket = secure
      ? tls.connect({ socket: net.connect({ port, host: '127.0.0.1', localAddress }), rejectUnauthorized: false })
      : net.connect({ port, host: '127.0.0.1', localAddress });
    const held: Held = { socket, openedAt: Date.now(), closedAt: undefined, received: '' };
    socket.on('data', (d: Buffer) => (held.received += d.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => (held.closedAt = Date.now()));
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      if (first !== undefined) socket.write(first);
      resolve(held);
    });
    socket.once('error', reject);
  });
}

/** a complete GET /healthz from `localAddress` (plain or TLS): its status line, or the error */
function healthz(port: number, localAddress = '127.0.0.1', secure = false): Promise<string> {
  return get(port, '/healthz', localAddress, secure).then((text) => text.split('\r\n')[0] || 'closed without an answer');
}

/** a complete GET of `path` on its own connection (closed after the answer): the whole answer as received, or the error */
function get(port: number, path: string, localAddress = '127.0.0.1', secure = false): Promise<string> {
  return new Promise((resolve) => {
    const socket = secure
      ? tls.connect({ socket: net.connect({ port, host: '127.0.0.1', localAddress }), rejectUnauthorized: false })
      : net.connect({ port, host: '127.0.0.1', localAddress });
    let text = '';
    socket.once(secure ? 'secureConnect' : 'connect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`));
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('error', (err) => resolve(`error: ${err.message}`));
    socket.on('close', () => resolve(text));
  });
}

describe('gateway HTTP listeners: request deadlines and connection caps', { timeout: 60_000 }, () => {
  let cert: TestCertificate;
  let server: HttpServer;
  let port = 0;
  let tlsPort = 0;
  const opened: net.Socket[] = [];

  before(async () => {
    cert = makeTestCertificate();
    server = new HttpServer(
      { listCalls: async () => [], getCall: async () => undefined, metrics: async () => '', webphoneConfig: () => ({ wsUrl: 'ws://127.0.0.1:1', domain: 'd' }) },
      createLogger('test.http-limits'),
      undefined,
      undefined,
      LIMITS,
    );
    port = await server.listen('127.0.0.1', 0);
    tlsPort = await server.listenHttps('127.0.0.1', 0, { cert: cert.cert, key: cert.key });
  });
  after(async () => {
    for (const s of opened) s.destroy();
    await server.close();
    cert.remove();
  });

  test('a silent connection, trickled headers and a body that never ends are closed near their deadlines; a prompt request is answered', { timeout: 20_000 }, async () => {
    const silent = await hold(port);
    const trickle = await hold(port, '127.0.0.1', 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const pacer = setInterval(() => trickle.socket.writable && trickle.socket.write('X-Slow: 1\r\n'), 100);
    const body = await hold(port, '127.0.0.1', 'POST /api/calls HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\nab');
    opened.push(silent.socket, trickle.socket, body.socket);
    try {
      // positive control, while the three are held: the same server answers a whole request at once
      assert.match(await healthz(port), /^HTTP\/1\.1 200/);
      await pollUntil(() => silent.closedAt !== undefined && trickle.closedAt !== undefined, { timeoutMs: 6000, what: 'the silent and the trickling connections to be closed' });
    } finally {
      clearInterval(pacer);
    }
    for (const [name, h, deadline] of [['silent', silent, LIMITS.headerTimeoutMs], ['trickle', trickle, LIMITS.headerTimeoutMs]] as const) {
      const took = h.closedAt! - h.openedAt;
      assert.ok(took >= deadline - 50 && took < deadline + 2500, `${name}: closed after ${took} ms (header deadline ${deadline} ms)`);
    }
    // the POST is answered at once (405: this server has no API routes); its never-ending body must not hold the connection past the request deadline
    await pollUntil(() => body.closedAt !== undefined, { timeoutMs: 6000, what: 'the connection with a body that never ends to be closed' });
    assert.match(body.received, /^HTTP\/1\.1 405/);
    assert.ok(body.closedAt! - body.openedAt < LIMITS.requestTimeoutMs + 2500, `body: closed after ${body.closedAt! - body.openedAt} ms`);
  });

  test('HTTPS: a connection that never starts its TLS handshake is closed at the header deadline; a TLS client is answered', { timeout: 20_000 }, async () => {
    const raw = await hold(tlsPort);
    opened.push(raw.socket);
    assert.match(await healthz(tlsPort, '127.0.0.1', true), /^HTTP\/1\.1 200/);
    await pollUntil(() => raw.closedAt !== undefined, { timeoutMs: 6000, what: 'the silent connection to the HTTPS port to be closed' });
    const took = raw.closedAt! - raw.openedAt;
    assert.ok(took >= LIMITS.headerTimeoutMs - 50 && took < LIMITS.headerTimeoutMs + 2500, `closed after ${took} ms`);
  });

  test('one address holds at most its cap (HTTP and HTTPS together), everybody at most the total; closing one makes room', { timeout: 20_000 }, async () => {
    // 5 plain + 3 TLS from 127.0.0.1: its cap of 8, each held open by a request never finished within the test's time
    const mine: Held[] = [];
    for (let i = 0; i < 5; i++) mine.push(await hold(port, '127.0.0.1', 'GET / HTTP/1.1\r\n'));
    for (let i = 0; i < 3; i++) mine.push(await hold(tlsPort, '127.0.0.1', 'GET / HTTP/1.1\r\n', true));
    opened.push(...mine.map((h) => h.socket));
    await pollUntil(() => server.guard.openCount === 8, { timeoutMs: 3000, what: 'eight connections counted' });
    // the ninth from the same address, plain or TLS, is closed on accept without an answer
    const refused = await healthz(port);
    assert.equal(refused, 'closed without an answer');
    assert.match(await healthz(tlsPort, '127.0.0.1', true), /^error|closed without an answer/);
    assert.equal(server.guard.refused.perSource, 2);
    // another address is still served (the per-source cap is not global) ...
    assert.match(await healthz(port, '127.0.0.2'), /^HTTP\/1\.1 200/);
    // ... until everybody together holds the total of 12
    const others: Held[] = [];
    for (let i = 0; i < 4; i++) others.push(await hold(port, '127.0.0.2', 'GET / HTTP/1.1\r\n'));
    opened.push(...others.map((h) => h.socket));
    await pollUntil(() => server.guard.openCount === 12, { timeoutMs: 3000, what: 'twelve connections counted' });
    assert.equal(await healthz(port, '127.0.0.3'), 'closed without an answer');
    assert.equal(server.guard.refused.total, 1);
    // none of the held ones was closed by the refusals; freeing one of 127.0.0.1's lets 127.0.0.1 in again
    assert.ok([...mine, ...others].every((h) => h.closedAt === undefined), 'a held connection was closed');
    for (const h of others) h.socket.destroy();
    mine[0]!.socket.destroy();
    await pollUntil(() => server.guard.openCount === 7, { timeoutMs: 3000, what: 'the freed connections uncounted' });
    assert.match(await healthz(port), /^HTTP\/1\.1 200/);
    for (const h of mine) h.socket.destroy();
    await pollUntil(() => server.guard.openCount === 0, { timeoutMs: 3000, what: 'every connection uncounted' });
  });

  test('the limits come from FERRY_HTTP_*; a request deadline shorter than the header deadline is refused', { timeout: 10_000 }, () => {
    assert.deepEqual(loadGatewayConfig({}).httpLimits, DEFAULT_HTTP_LIMITS);
    const set = loadGatewayConfig({ FERRY_HTTP_HEADER_TIMEOUT_MS: '2000', FERRY_HTTP_REQUEST_TIMEOUT_MS: '4000', FERRY_HTTP_MAX_CONNECTIONS_PER_SOURCE: '3', FERRY_HTTP_MAX_CONNECTIONS: '9' });
    assert.deepEqual(set.httpLimits, { headerTimeoutMs: 2000, requestTimeoutMs: 4000, maxConnectionsPerSource: 3, maxConnections: 9 });
    assert.throws(() => loadGatewayConfig({ FERRY_HTTP_HEADER_TIMEOUT_MS: '5000', FERRY_HTTP_REQUEST_TIMEOUT_MS: '4000' }), (err: unknown) => err instanceof ConfigError && /FERRY_HTTP_REQUEST_TIMEOUT_MS/.test(err.message));
    assert.throws(() => loadGatewayConfig({ FERRY_HTTP_MAX_CONNECTIONS_PER_SOURCE: '0' }), ConfigError);
  });
});

describe('gateway /metrics: ferry_http_connections_refused_total counts the listeners\' refusals by reason', { timeout: 60_000 }, () => {
  // long deadlines (held connections must stay open through the test), small caps, a handshake bucket of one
  const CAPS: HttpLimits = { headerTimeoutMs: 20_000, requestTimeoutMs: 20_000, maxConnectionsPerSource: 2, maxConnections: 4, tlsHandshakesPerSourcePerSecond: 1, tlsHandshakeBurst: 1 };
  let cert: TestCertificate;
  let server: HttpServer;
  let port = 0;
  let tlsPort = 0;
  const opened: net.Socket[] = [];

  before(async () => {
    cert = makeTestCertificate();
    const metrics = new GatewayMetrics();
    // rendered as the gateway renders it (src/gateway/gateway.ts): the listeners' guard's refusals
    server = new HttpServer(
      {
        listCalls: async () => [], getCall: async () => undefined, webphoneConfig: () => ({ wsUrl: 'ws://127.0.0.1:1', domain: 'd' }),
        metrics: async () => metrics.render({ activeCalls: 0, ownedCalls: 0, registrations: 0, instanceId: 'gw-test', httpRefused: server.guard.refused }),
      },
      createLogger('test.http-limits-metrics'),
      undefined,
      undefined,
      CAPS,
    );
    port = await server.listen('127.0.0.1', 0);
    tlsPort = await server.listenHttps('127.0.0.1', 0, { cert: cert.cert, key: cert.key });
  });
  after(async () => {
    for (const s of opened) s.destroy();
    await server.close();
    cert.remove();
  });

  /** the three samples of ferry_http_connections_refused_total from a scrape (from 127.0.0.1, once every held connection is gone) */
  async function refusedSamples(): Promise<Record<string, number>> {
    await pollUntil(() => server.guard.openCount === 0, { timeoutMs: 3000, what: 'no connection held before the scrape' });
    const answer = await get(port, '/metrics');
    assert.match(answer, /^HTTP\/1\.1 200/);
    assert.match(answer, /# HELP ferry_http_connections_refused_total .+\n# TYPE ferry_http_connections_refused_total counter\n/);
    const samples: Record<string, number> = {};
    for (const m of answer.matchAll(/^ferry_http_connections_refused_total\{reason="([a-z-]+)"\} (\d+)$/gm)) samples[m[1]!] = Number(m[2]);
    return samples;
  }

  test('a per-source refusal, a total-cap refusal and a handshake-rate refusal each move their sample by one', { timeout: 30_000 }, async () => {
    // positive control: the family is there, every reason at 0
    assert.deepEqual(await refusedSamples(), { 'per-source-cap': 0, 'connection-cap': 0, 'handshake-rate': 0 });

    // 127.0.0.4 holds its cap of 2; its third connection is closed on accept
    const four = [await hold(port, '127.0.0.4', 'GET / HTTP/1.1\r\n'), await hold(port, '127.0.0.4', 'GET / HTTP/1.1\r\n')];
    opened.push(...four.map((h) => h.socket));
    await pollUntil(() => server.guard.openCount === 2, { timeoutMs: 3000, what: 'two connections counted' });
    assert.equal(await healthz(port, '127.0.0.4'), 'closed without an answer');
    // 127.0.0.5 fills the total of 4; a connection from 127.0.0.6 is closed on accept
    const five = [await hold(port, '127.0.0.5', 'GET / HTTP/1.1\r\n'), await hold(port, '127.0.0.5', 'GET / HTTP/1.1\r\n')];
    opened.push(...five.map((h) => h.socket));
    await pollUntil(() => server.guard.openCount === 4, { timeoutMs: 3000, what: 'four connections counted' });
    assert.equal(await healthz(port, '127.0.0.6'), 'closed without an answer');
    for (const h of [...four, ...five]) h.socket.destroy();
    await pollUntil(() => server.guard.openCount === 0, { timeoutMs: 3000, what: 'the held connections uncounted' });

    // HTTPS from 127.0.0.7: its one handshake token is served, the next connection at once is closed before any handshake
    assert.match(await healthz(tlsPort, '127.0.0.7', true), /^HTTP\/1\.1 200/);
    assert.match(await healthz(tlsPort, '127.0.0.7', true), /^error|^closed without an answer/);

    assert.deepEqual(await refusedSamples(), { 'per-source-cap': 1, 'connection-cap': 1, 'handshake-rate': 1 });
    assert.deepEqual(server.guard.refused, { perSource: 1, total: 1, handshakeRate: 1 });
  });
});
