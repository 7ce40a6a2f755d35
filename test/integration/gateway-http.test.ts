import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createLogger } from '../../src/common/logger';
import { HttpAccess } from '../../src/gateway/http/http-access';
import { HttpServer } from '../../src/gateway/http/http-server';
import { GatewayMetrics } from '../../src/gateway/http/metrics';
import { MemoryStateStore } from '../../src/gateway/state/memory-state-store';
import type { CallRecord } from '../../src/gateway/state/call-record';

/** The gateway's HTTP side on a real socket, over the in-memory store: API, metrics, page, bad requests. */
const TOKEN = 'gateway-http-test-api-token';

describe('gateway HTTP API', () => {
  const store = new MemoryStateStore();
  const metrics = new GatewayMetrics();
  const server = new HttpServer(
    {
      listCalls: () => store.listCalls(),
      getCall: (id) => store.getCall(id),
      metrics: async () => metrics.render({ activeCalls: (await store.listCalls()).filter((c) => c.state !== 'ended').length, ownedCalls: 0, registrations: await store.countRegistrations(), instanceId: 'gw-t' }),
      webphoneConfig: () => ({ wsUrl: 'ws://127.0.0.1:1', domain: 'd' }),
    },
    createLogger('test.http'),
    new HttpAccess({ apiToken: TOKEN, apiLoopbackOnly: false, metricsAuth: 'loopback', allowedHosts: ['localhost'] }),
  );
  let port = 0;
  const rec = (id: string, state: CallRecord['state']): CallRecord => ({
    id, state, createdAt: Date.now(), caller: { uri: 'sip:a@d', kind: 'webrtc', party: 'a' }, callee: { uri: 'sip:b@d', kind: 'rtp', party: 'p' },
    media: { mediaUrl: 'ws://x' }, owner: 'gw-t', timeline: [{ t: 1, event: 'invite' }], ...(state === 'ended' ? { reason: 'busy' as const } : {}),
  });

  before(async () => {
    port = await server.listen('127.0.0.1', 0);
    await store.putCall(rec('11111111-live', 'answered'));
    await store.putCall(rec('22222222-gone', 'ended'), 60000);
    metrics.callEnded({ reason: 'busy' });
    metrics.callEnded({ reason: 'media-timeout', suspectedFalseEnd: true });
  });
  after(() => server.close());

  const get = (p: string, method = 'GET'): Promise<{ status: number; body: string; type: string }> =>
    new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: p, method, headers: { Authorization: `Bearer ${TOKEN}` } }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type'] ?? '') }));
      });
      req.on('error', reject);
      req.end();
    });

  test('GET /api/calls lists live calls; ?state=all includes ended ones', { timeout: 120_000 }, async () => {
    const live = JSON.parse((await get('/api/calls')).body) as { calls: CallRecord[] };
    assert.deepEqual(live.calls.map((c) => c.id), ['11111111-live']);
    const all = JSON.parse((await get('/api/calls?state=all')).body) as { calls: CallRecord[] };
    assert.equal(all.calls.length, 2);
  });

  test('GET /api/calls/:id returns the timeline and reason; unknown ids and bad paths are 404', { timeout: 120_000 }, async () => {
    const one = await get('/api/calls/22222222-gone');
    assert.equal(one.status, 200);
    const r = JSON.parse(one.body) as CallRecord;
    assert.equal(r.reason, 'busy');
    assert.deepEqual(r.timeline, [{ t: 1, event: 'invite' }]);
    assert.equal((await get('/api/calls/nope')).status, 404);
    assert.equal((await get('/api/calls/%2e%2e%2f%2e%2e%2fetc%2fpasswd')).status, 404);
    assert.equal((await get('/../../package.json')).status, 404);
    assert.equal((await get('/nothing-here')).status, 404);
  });

  test('only GET and HEAD are allowed', { timeout: 120_000 }, async () => {
    const r = await get('/api/calls', 'POST');
    assert.equal(r.status, 405);
    assert.deepEqual(JSON.parse(r.body), { error: 'method not allowed' });
  });

  test('GET /metrics is Prometheus text', { timeout: 120_000 }, async () => {
    const m = await get('/metrics');
    assert.match(m.type, /^text\/plain/);
    assert.match(m.body, /^# TYPE ferry_active_calls gauge$/m);
    assert.match(m.body, /^ferry_active_calls 1$/m);
    assert.match(m.body, /^ferry_calls_ended_total\{reason="busy"\} 1$/m);
    assert.match(m.body, /^ferry_calls_suspected_false_end_total\{reason="media-timeout"\} 1$/m);
    assert.doesNotMatch(m.body, /^ferry_calls_suspected_false_end_total\{reason="busy"\}/m);
    for (const line of m.body.trim().split('\n')) assert.match(line, /^(# (HELP|TYPE) \w+ .+|\w+(\{[^}]*\})? \d+)$/, line);
  });

  test('the webphone page, its script and the JsSIP bundle are served', { timeout: 120_000 }, async () => {
    const page = await get('/');
    assert.match(page.type, /text\/html/);
    for (const id of ['register', 'target', 'call', 'answer', 'hangup', 'mute', 'hold', 'keypad', 'call-state', 'message', 'reg-state']) {
      assert.ok(page.body.includes(`id="${id}"`), `#${id} on the page`);
    }
    assert.match((await get('/webphone.js')).body, /ferryStats/);
    const js = await get('/jssip.js');
    assert.equal(js.status, 200);
    assert.match(js.body, /JsSIP/);
    assert.deepEqual(JSON.parse((await get('/api/webphone-config')).body), { wsUrl: 'ws://127.0.0.1:1', domain: 'd' });
  });
});
