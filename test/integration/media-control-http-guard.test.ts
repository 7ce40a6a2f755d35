import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { WebSocket } from 'ws';
import { startMediaServer, type RunningMediaServer } from '../../src/media/server/media-server';
import { mediaQuotasFromEnv } from '../../src/media/server/media-quotas';
import { controlHttpPolicyFromEnv } from '../../src/media/server/control-http-guard';
import { call, connectKurento, fetchStats } from '../helpers/media-kurento';
import { httpAsk, type HttpAnswer } from '../helpers/http-ask';
import { pollUntil } from '../helpers/wait-for';

/**
 * ferry media's control port against a web page on the same host and against slow or too many
 * connections, on real sockets: a WebSocket upgrade or POST carrying a browser's Origin is refused
 * (kurento-client in Node sends none and keeps working), a Host that is not an IP literal or one of
 * ours gets 421 (DNS rebinding), FERRY_MEDIA_ALLOWED_ORIGINS lets a named page in; a connection that
 * does not finish its request is closed at the header deadline, and connections beyond the cap are
 * closed at once.
 */
const HEADER_TIMEOUT_MS = 500;
const MAX_WS = 2; // FERRY_MEDIA_MAX_CONNECTIONS: the cap on open connections is this + 64

function request(port: number, method: string, path: string, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  return httpAsk(port, path, { method, headers });
}

/** A WebSocket upgrade to /kurento: 'open', or the HTTP status it was refused with. */
function upgrade(port: number, options: { origin?: string; host?: string } = {}): Promise<{ opened: boolean; status?: number }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (options.host) headers.Host = options.host;
    const ws = new WebSocket(`ws://127.0.0.1:${port}/kurento`, { origin: options.origin, headers, handshakeTimeout: 5000 });
    ws.on('open', () => {
      ws.close();
      resolve({ opened: true });
    });
    ws.on('unexpected-response', (_req, res) => {
      resolve({ opened: false, status: res.statusCode });
      res.resume();
      ws.terminate();
    });
    ws.on('error', (err) => reject(err));
  });
}

describe('ferry media control port: browser pages, foreign host names, slow and excess connections', { timeout: 60_000 }, () => {
  let server: RunningMediaServer;
  let allowing: RunningMediaServer;
  const port = () => Number(new URL(server.url).port);

  before(async () => {
    const quotas = { ...mediaQuotasFromEnv(), maxConnections: MAX_WS };
    const policy = { ...controlHttpPolicyFromEnv({}), headerTimeoutMs: HEADER_TIMEOUT_MS };
    server = await startMediaServer({ config: { port: 0, host: '127.0.0.1', workers: 1, quotas, controlHttp: policy } });
    // the default header deadline (10 s): its connection cap is tested without the deadline closing the held ones
    allowing = await startMediaServer({
      config: { port: 0, host: '127.0.0.1', workers: 1, quotas, controlHttp: controlHttpPolicyFromEnv({ FERRY_MEDIA_ALLOWED_ORIGINS: 'https://app.example.org/', FERRY_MEDIA_ALLOWED_HOSTS: 'media.internal' }) },
    });
  });
  after(async () => {
    await server?.close();
    await allowing?.close();
  });

  test("a WebSocket upgrade with a web page's Origin is refused 403; without one (kurento-client in Node) it opens and works", async () => {
    assert.deepEqual(await upgrade(port(), { origin: 'http://evil.example' }), { opened: false, status: 403 });
    assert.deepEqual(await upgrade(port(), { origin: 'null' }), { opened: false, status: 403 }, 'a sandboxed page');
    assert.deepEqual(await upgrade(port()), { opened: true }, 'positive control: no Origin');
    const client = await connectKurento(server.url);
    try {
      const pipeline = await client.create('MediaPipeline');
      await call(pipeline, 'release');
    } finally {
      client.close();
    }
  });

  test('FERRY_MEDIA_ALLOWED_ORIGINS lets a named page connect (any other is still refused); FERRY_MEDIA_ALLOWED_HOSTS adds a name', async () => {
    const p = Number(new URL(allowing.url).port);
    assert.deepEqual(await upgrade(p, { origin: 'https://app.example.org' }), { opened: true });
    assert.deepEqual(await upgrade(p, { origin: 'https://other.example.org' }), { opened: false, status: 403 });
    assert.deepEqual(await upgrade(p, { host: `media.internal:${p}` }), { opened: true });
    assert.deepEqual(await upgrade(p, { host: `rebind.attacker.example:${p}` }), { opened: false, status: 421 });
  });

  test('a Host that is not an IP literal or one of ours gets 421 (upgrade and /stats); ours and literals pass', async () => {
    assert.deepEqual(await upgrade(port(), { host: `rebind.attacker.example:${port()}` }), { opened: false, status: 421 });
    const foreign = await request(port(), 'GET', '/stats', { Host: `rebind.attacker.example:${port()}` });
    assert.equal(foreign.status, 421);
    assert.doesNotMatch(foreign.body, /pipelines/);
    for (const host of [`127.0.0.1:${port()}`, `localhost:${port()}`, `[::1]:${port()}`]) {
      assert.equal((await request(port(), 'GET', '/stats', { Host: host })).status, 200, `Host ${host}`);
    }
  });

  test('POST /drain from a web page (Origin) is refused 403 and drains nothing; without an Origin it drains', async () => {
    const refused = await request(port(), 'POST', '/drain', { Origin: 'http://evil.example' });
    assert.equal(refused.status, 403);
    assert.equal((await fetchStats(port())).draining, false);
    assert.equal((await request(port(), 'POST', '/drain')).status, 200, 'positive control');
    assert.equal((await fetchStats(port())).draining, true);
    assert.equal((await request(port(), 'POST', '/undrain')).status, 200);
  });

  test(`a connection that does not finish its request is closed at the header deadline (${HEADER_TIMEOUT_MS} ms); beyond the cap one is closed at once`, async () => {
    const opened: net.Socket[] = [];
    const closedAt = new Map<net.Socket, number>();
    const connect = (p = port()) =>
      new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect(p, '127.0.0.1', () => resolve(s));
        s.on('error', reject);
        s.on('close', () => closedAt.set(s, performance.now()));
        s.resume(); // read what comes (a 408, the FIN), so the close is seen
        opened.push(s);
      });
    try {
      const t0 = performance.now();
      const slow = await connect();
      slow.write('GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n'); // never finished
      await pollUntil(() => closedAt.has(slow), { timeoutMs: HEADER_TIMEOUT_MS + 3000, what: 'the half request closed' });
      const after = closedAt.get(slow)! - t0;
      assert.ok(after >= HEADER_TIMEOUT_MS - 50, `closed only after the deadline (${after.toFixed(0)} ms)`);
      // the cap (the other server, 10 s deadline): MAX_WS + 64 connections open at once; one more is closed on accept
      const p = Number(new URL(allowing.url).port);
      const cap = MAX_WS + 64;
      const held: net.Socket[] = [];
      for (let i = 0; i < cap; i++) held.push(await connect(p));
      const extra = await connect(p);
      const extraAt = performance.now();
      await pollUntil(() => closedAt.has(extra), { timeoutMs: 2000, what: 'the connection over the cap closed' });
      assert.ok(closedAt.get(extra)! - extraAt < 1000, 'closed at once, not at a deadline');
      assert.equal(held.filter((s) => closedAt.has(s)).length, 0, 'those under the cap are still open');
      for (const s of held) s.destroy();
      await pollUntil(() => held.every((s) => closedAt.has(s)), { timeoutMs: 2000, what: 'held connections closed' });
      // positive control: with the connections gone a request is answered again
      await pollUntil(async () => (await request(p, 'GET', '/stats').catch(() => ({ status: 0 }))).status === 200 || undefined, { timeoutMs: 3000, what: '/stats answered after the cap cleared' });
    } finally {
      for (const s of opened) s.destroy();
    }
  });
});
