import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createLogger } from '../../src/common/logger';
import { HttpAccess } from '../../src/gateway/http/http-access';
import { HttpServer } from '../../src/gateway/http/http-server';
import { GatewayMetrics } from '../../src/gateway/http/metrics';
import { createStateStore } from '../../src/gateway/state/create-state-store';
import type { CallRecord } from '../../src/gateway/state/call-record';
import { RedisServerProcess } from '../helpers/redis-server-process';

/**
 * F5 at the HTTP side: the gateway's HTTP server over the Redis-backed store (as the gateway builds
 * it) on a private redis-server this test kills. The call API answers 200 while Redis is up, 503 with
 * a JSON error and Retry-After within 1 s while it is down; another failure stays a 500; /metrics
 * renders ferry_store_up and ferry_store_errors_total.
 */
const TOKEN = 'store-down-test-api-token';

describe('F5: gateway HTTP API while the state store is down', { timeout: 60_000 }, () => {
  let redis: RedisServerProcess;
  let store: ReturnType<typeof createStateStore>;
  let server: HttpServer;
  let port = 0;
  let failOther = false;
  const metrics = new GatewayMetrics();
  const record: CallRecord = {
    id: randomUUID(), state: 'answered', createdAt: Date.now(), caller: { uri: 'sip:a@d', kind: 'webrtc', party: 'a' },
    callee: { uri: 'sip:b@d', kind: 'rtp', party: 'p' }, media: { mediaUrl: 'ws://x' }, owner: 'gw-t', timeline: [],
  };

  before(async () => {
    redis = await RedisServerProcess.start();
    store = createStateStore(redis.url, `ferry-test-${randomUUID().slice(0, 8)}:`, undefined, { timeoutMs: 500, log: createLogger('test.store') });
    server = new HttpServer(
      {
        listCalls: () => (failOther ? Promise.reject(new Error('a bug')) : store.listCalls()),
        getCall: (id) => store.getCall(id),
        metrics: async () => metrics.render({ activeCalls: 0, ownedCalls: 0, registrations: await store.countRegistrations(), instanceId: 'gw-t', store: store.health() }),
        webphoneConfig: () => ({ wsUrl: 'ws://127.0.0.1:1', domain: 'd' }),
      },
      createLogger('test.http'),
      new HttpAccess({ apiToken: TOKEN, apiLoopbackOnly: false, metricsAuth: 'loopback', allowedHosts: ['localhost'] }),
    );
    port = await server.listen('127.0.0.1', 0);
    await store.putCall(record);
  });
  after(async () => {
    await server?.close();
    await store?.close();
    await redis?.stop();
  });

  const get = async (p: string): Promise<{ status: number; ms: number; body: string; retryAfter: string | null }> => {
    const t0 = Date.now();
    const res = await fetch(`http://127.0.0.1:${port}${p}`, { signal: AbortSignal.timeout(5000), headers: { Authorization: `Bearer ${TOKEN}` } });
    return { status: res.status, body: await res.text(), ms: Date.now() - t0, retryAfter: res.headers.get('retry-after') };
  };

  test('F5: 200 while Redis is up; 503 + JSON + Retry-After within 1 s while it is down; other failures stay 500; /metrics shows the store down', async () => {
    assert.equal((await get('/api/calls')).status, 200, 'positive control: Redis up');
    assert.equal((await get(`/api/calls/${record.id}`)).status, 200);
    assert.match((await get('/metrics')).body, /^ferry_store_up 1$/m);

    await redis.kill('SIGKILL');
    for (const p of ['/api/calls', '/api/calls?state=all', `/api/calls/${record.id}`]) {
      const r = await get(p);
      assert.equal(r.status, 503, `${p}: ${r.status} ${r.body}`);
      assert.ok(r.ms < 1000, `${p} answered in ${r.ms} ms`);
      assert.equal((JSON.parse(r.body) as { error: string }).error, 'state store unavailable');
      assert.equal(r.retryAfter, '1');
    }
    const m = await get('/metrics');
    assert.equal(m.status, 200);
    assert.ok(m.ms < 1000, `/metrics answered in ${m.ms} ms`);
    assert.match(m.body, /^ferry_store_up 0$/m);
    assert.ok(Number(/^ferry_store_errors_total (\d+)$/m.exec(m.body)?.[1]) >= 3, 'the failed operations are counted');
    failOther = true;
    assert.equal((await get('/api/calls')).status, 500, 'a failure that is not the store is still a 500');
  });
});
