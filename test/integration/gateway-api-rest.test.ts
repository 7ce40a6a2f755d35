import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../../src/common/logger';
import { systemClock } from '../../src/common/clock';
import { callApiRoutes } from '../../src/gateway/api/call-api';
import { CallControl } from '../../src/gateway/api/call-control';
import { MAX_BODY_BYTES } from '../../src/gateway/api/json-body';
import { documentedRoutes, openApiDocument } from '../../src/gateway/api/openapi';
import { CallRegistry } from '../../src/gateway/calls/call-registry';
import { HttpAccess } from '../../src/gateway/http/http-access';
import { HttpServer } from '../../src/gateway/http/http-server';
import { loadGatewayConfig } from '../../src/gateway/config/gateway-config';
import { Gateway } from '../../src/gateway/gateway';
import { addStatusRoutes } from '../../src/gateway/http/status/status-routes';
import { MemoryStateStore } from '../../src/gateway/state/memory-state-store';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * The OpenAPI document against the routes a gateway's HTTP server answers (the gateway constructed as
 * `ferry gateway` builds it), both ways, with a live probe of each. Then the REST API on a real HTTP
 * socket over the in-memory store (no SIP: originating answers 503 until a gateway's SIP side is up): 401 without the token; 400 naming the field for each bad body; 404, 405, 409 naming the
 * owner, 413, 415; paging with limit/offset/cursor and filters.
 */
const TOKEN = 'gateway-api-rest-test-token-0123';

describe('REST API: routes, document, validation', { timeout: 30_000 }, () => {
  const store = new MemoryStateStore();
  // the gateway mounts the status page's JSON on the same table
  const table = addStatusRoutes(callApiRoutes({
    store,
    control: new CallControl({ registry: new CallRegistry(), store, clock: systemClock, instanceId: 'gw-here', transfers: () => undefined }),
    originator: () => undefined,
    users: () => ['alice', 'bob'],
  }), { snapshot: async () => ({ now: Date.now(), gatewayId: 'gw-here', calls: [], history: [] }) });
  const server = new HttpServer(
    {
      listCalls: () => store.listCalls(),
      getCall: (id) => store.getCall(id),
      metrics: async () => '',
      webphoneConfig: () => ({ wsUrl: 'ws://127.0.0.1:1', domain: 'd' }),
    },
    createLogger('test.api'),
    new HttpAccess({ apiToken: TOKEN, apiLoopbackOnly: false, metricsAuth: 'loopback', allowedHosts: ['localhost'] }),
    table,
  );
  let port = 0;
  const rec = (id: string, state: CallRecord['state'], createdAt: number, owner = 'gw-other', party = 'alice'): CallRecord => ({
    id, state, createdAt, caller: { uri: `sip:${party}@d`, kind: 'webrtc', party }, callee: { uri: 'sip:1@p', kind: 'rtp', party: 'pbx' },
    media: { mediaUrl: 'ws://x' }, owner, timeline: [],
  });
  const call = async (method: string, p: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: Record<string, unknown>; headers: Headers }> => {
    const res = await fetch(`http://127.0.0.1:${port}${p}`, {
      method,
      headers: { Authorization: `Bearer ${TOKEN}`, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}), ...headers },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let json: Record<string, unknown> = {};
    try {
      json = JSON.parse(text) as Record<string, unknown>;
    } catch {
      /* not JSON (the page, metrics) */
    }
    return { status: res.status, json, headers: res.headers };
  };

  before(async () => {
    port = await server.listen('127.0.0.1', 0);
    for (let i = 0; i < 5; i++) await store.putCall(rec(`call-${i}`, 'answered', 1000 + i, 'gw-other', i % 2 ? 'bob' : 'alice'));
    await store.putCall(rec('call-ended', 'ended', 900), 60_000);
  });
  after(() => server.close());

  test('the OpenAPI document lists exactly the routes the gateway answers', async () => {
    // the gateway as `ferry gateway` builds it (constructed, not started: its HTTP side on a socket of its own)
    const config = loadGatewayConfig({ ...process.env, REDIS_URL: '', FERRY_API_TOKEN: TOKEN, FERRY_MEDIA_URL: 'ws://127.0.0.1:9/kurento', FERRY_HTTP_HOST: '127.0.0.1' });
    const gateway = new Gateway(config);
    const http = (gateway as unknown as { http: HttpServer }).http;
    const gatewayPort = await http.listen('127.0.0.1', 0);
    try {
      const served = http.routeList();
      assert.deepEqual(documentedRoutes().map((r) => `${r.method} ${r.path}`).sort(), served.map((r) => `${r.method} ${r.path}`).sort());
      // and every documented path is answered by the live server (not the generic 404 / 405); WebSocket upgrades are not plain GETs
      for (const r of served.filter((x) => !('upgrade' in x))) {
        const p = r.path.replace('{id}', 'call-0').replace('{callId}', 'call-0');
        const res = await fetch(`http://127.0.0.1:${gatewayPort}${p}`, { method: r.method, headers: { Authorization: `Bearer ${TOKEN}` } });
        const text = await res.text();
        assert.ok(res.status !== 405 && !(res.status === 404 && text.includes('"not found"')), `${r.method} ${p} answered ${res.status} ${text.slice(0, 100)}`);
      }
    } finally {
      await http.close();
      await gateway.store.close();
    }
    // positive control: an undocumented path is the generic 404
    const stray = await call('GET', '/api/not-a-route');
    assert.equal(stray.status, 404);
    assert.equal(stray.json.error, 'not found');
    const doc = await call('GET', '/api/openapi.json');
    assert.equal(doc.status, 200);
    assert.deepEqual(doc.json, JSON.parse(JSON.stringify(openApiDocument)));
  });

  test('no or a wrong token: 401 on every API route', async () => {
    for (const [method, p] of [['GET', '/api/calls'], ['POST', '/api/calls'], ['DELETE', '/api/calls/call-0'], ['POST', '/api/calls/call-0/hold'], ['GET', '/api/registrations'], ['GET', '/api/openapi.json']] as const) {
      const none = await fetch(`http://127.0.0.1:${port}${p}`, { method });
      assert.equal(none.status, 401, `${method} ${p} without a token`);
      assert.match(none.headers.get('www-authenticate') ?? '', /Bearer/);
      const wrong = await fetch(`http://127.0.0.1:${port}${p}`, { method, headers: { Authorization: 'Bearer wrong-token-wrong-token' } });
      assert.equal(wrong.status, 401, `${method} ${p} with a wrong token`);
    }
  });

  test('every bad body: 400 naming the field', async () => {
    const cases: [string, string, unknown, string][] = [
      ['POST', '/api/calls', {}, 'a'],
      ['POST', '/api/calls', { a: 'alice' }, 'b'],
      ['POST', '/api/calls', { a: 'al ice', b: '9555' }, 'a'],
      ['POST', '/api/calls', { a: 'alice', b: '9555', from: 'x<y>' }, 'from'],
      ['POST', '/api/calls', { a: 'alice', b: '9555', ringTimeoutMs: 5 }, 'ringTimeoutMs'],
      ['POST', '/api/calls', { a: 'alice', b: '9555', record: 'yes' }, 'record'],
      ['POST', '/api/calls', { a: 'alice', b: '9555', tags: ['x'] }, 'tags'],
      ['POST', '/api/calls', { a: 'alice', b: '9555', tags: { crm: 7 } }, 'tags.crm'],
      ['POST', '/api/calls', { a: 'alice', b: '9555', colour: 'red' }, 'colour'],
      ['POST', '/api/calls', '[1,2]', 'body'],
      ['POST', '/api/calls', '{"a":', 'body'],
      ['POST', '/api/calls/call-0/hold', { party: 'everyone' }, 'party'],
      ['POST', '/api/calls/call-0/resume', { party: 3 }, 'party'],
      ['POST', '/api/calls/call-0/dtmf', { digits: '12x' }, 'digits'],
      ['POST', '/api/calls/call-0/dtmf', { digits: '1', party: 'both' }, 'party'],
      ['POST', '/api/calls/call-0/dtmf', { digits: '1', durationMs: 1 }, 'durationMs'],
      ['POST', '/api/calls/call-0/transfer', {}, 'target'],
      ['POST', '/api/calls/call-0/transfer', { target: '9555', keep: 'nobody' }, 'keep'],
      ['GET', '/api/calls?limit=0', undefined, 'limit'],
      ['GET', '/api/calls?state=sleeping', undefined, 'state'],
      ['GET', '/api/calls?cursor=garbage', undefined, 'cursor'],
      ['GET', '/api/calls?sort=up', undefined, 'sort'],
    ];
    for (const [method, p, body, field] of cases) {
      const r = await call(method, p, body);
      assert.equal(r.status, 400, `${method} ${p} ${JSON.stringify(body)}: ${JSON.stringify(r.json)}`);
      assert.equal(r.json.field, field);
      assert.match(String(r.json.error), new RegExp(`^${field.replace('.', '\\.')}: `));
    }
    // a valid body gets past validation (positive control: 503, no SIP side in this test)
    assert.equal((await call('POST', '/api/calls', { a: 'alice', b: '9555' })).status, 503);
  });

  test('content type, size, unknown call, method, owner', async () => {
    assert.equal((await call('POST', '/api/calls', '{"a":"alice","b":"1"}', { 'Content-Type': 'text/plain' })).status, 415);
    const big = await call('POST', '/api/calls', JSON.stringify({ a: 'alice', b: '1', tags: { x: 'y'.repeat(MAX_BODY_BYTES) } }));
    assert.equal(big.status, 413);
    assert.equal((await call('DELETE', '/api/calls/no-such-call')).status, 404);
    assert.equal((await call('GET', '/api/calls/no-such-call')).status, 404);
    assert.equal((await call('POST', '/api/calls/no-such-call/hold', {})).status, 404);
    const put = await call('PUT', '/api/calls/call-0');
    assert.equal(put.status, 405);
    assert.match(put.headers.get('allow') ?? '', /DELETE/);
    const other = await call('DELETE', '/api/calls/call-1');
    assert.equal(other.status, 409);
    assert.equal(other.json.owner, 'gw-other');
    assert.match(String(other.json.error), /gw-other/);
    const ended = await call('POST', '/api/calls/call-ended/dtmf', { digits: '1' });
    assert.equal(ended.status, 409);
    assert.equal((await store.getCall('call-1'))?.state, 'answered', 'the refused DELETE changed nothing');
  });

  test('list: default without ended calls, filters, limit + cursor and offset paging', async () => {
    const all = await call('GET', '/api/calls?state=all');
    assert.equal((all.json.calls as unknown[]).length, 6);
    const live = await call('GET', '/api/calls');
    assert.equal(live.json.total, 5);
    const bob = await call('GET', '/api/calls?party=bob');
    assert.deepEqual((bob.json.calls as { id: string }[]).map((c) => c.id), ['call-1', 'call-3']);
    const ended = await call('GET', '/api/calls?state=ended');
    assert.deepEqual((ended.json.calls as { id: string }[]).map((c) => c.id), ['call-ended']);
    const ids: string[] = [];
    let next: string | undefined;
    let pages = 0;
    do {
      const page = await call('GET', `/api/calls?limit=2${next ? `&cursor=${next}` : ''}`);
      ids.push(...(page.json.calls as { id: string }[]).map((c) => c.id));
      next = page.json.next as string | undefined;
      pages++;
    } while (next && pages < 10);
    assert.deepEqual(ids, ['call-0', 'call-1', 'call-2', 'call-3', 'call-4']);
    assert.equal(pages, 3);
    const off = await call('GET', '/api/calls?limit=2&offset=3');
    assert.deepEqual((off.json.calls as { id: string }[]).map((c) => c.id), ['call-3', 'call-4']);
    assert.equal(off.json.next, undefined);
    const regs = await call('GET', '/api/registrations');
    assert.deepEqual(regs.json, { registrations: [] });
  });
});
