import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createLogger } from '../../src/common/logger';
import { HttpAccess } from '../../src/gateway/http/http-access';
import { HttpServer } from '../../src/gateway/http/http-server';
import { TOKEN_FAILURES_PER_WINDOW, TOKEN_LOCKOUT_MS, TokenGuessLimit } from '../../src/gateway/http/token-guess-limit';
import { MemoryStateStore } from '../../src/gateway/state/memory-state-store';

/**
 * Online guessing of the API token on the gateway's HTTP side (a real socket; the lockout's clock is the
 * test's): 30 wrong bearer tokens from one source lock it out, every API request from it is then 429 with
 * Retry-After — the right token too (no oracle) — requests without a token do not count, another source
 * is served meanwhile, and the lockout ends on the clock.
 */
const TOKEN = 'gateway-token-guessing-test-token';

describe('API token guessing is bounded per source', { timeout: 30_000 }, () => {
  let now = 1_000_000;
  const lockouts: string[] = [];
  const guesses = new TokenGuessLimit(() => now);
  const store = new MemoryStateStore();
  const server = new HttpServer(
    { listCalls: () => store.listCalls(), getCall: (id) => store.getCall(id), metrics: async () => '', webphoneConfig: () => ({ wsUrl: 'ws://127.0.0.1:1', domain: 'd' }) },
    createLogger('test.api-token-guessing'),
    new HttpAccess({ apiToken: TOKEN, apiLoopbackOnly: false, metricsAuth: 'loopback', allowedHosts: ['localhost'] }, guesses, (s) => lockouts.push(s)),
  );
  let port = 0;
  before(async () => {
    port = await server.listen('127.0.0.1', 0);
  });
  after(() => server.close());

  const ask = async (from: string, token?: string): Promise<{ status: number; retryAfter: string | null }> => {
    const res = await fetch(`http://${from}:${port}/api/calls`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
    await res.arrayBuffer();
    return { status: res.status, retryAfter: res.headers.get('retry-after') };
  };

  const askFrom = (localAddress: string, token: string): Promise<number> => new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/api/calls', localAddress, headers: { Authorization: `Bearer ${token}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
  });

  test('30 wrong tokens lock a source out (429, the right token too); no token does not count; another source is served; the lockout ends', async () => {
    for (let i = 0; i < 50; i++) assert.equal((await ask('127.0.0.1')).status, 401, 'no token: 401, not a guess');
    for (let i = 0; i < TOKEN_FAILURES_PER_WINDOW - 1; i++) assert.equal((await ask('127.0.0.1', `wrong-token-${i}-wrong-token`)).status, 401);
    assert.equal((await ask('127.0.0.1', TOKEN)).status, 200, 'positive control: one failure short of the limit, the right token works');
    assert.deepEqual(lockouts, []);
    assert.equal((await ask('127.0.0.1', 'wrong-token-last-wrong-token')).status, 401, 'the 30th wrong token is still answered 401');
    assert.deepEqual(lockouts, ['127.0.0.1'], 'and locks the source out (one notice)');
    const locked = await ask('127.0.0.1', TOKEN);
    assert.equal(locked.status, 429, 'the right token gets 429 too: the lockout tells nothing about the token');
    assert.equal(Number(locked.retryAfter), TOKEN_LOCKOUT_MS / 1000);
    assert.equal((await ask('127.0.0.1', 'another-wrong-token-here')).status, 429);
    // another source (a connection from 127.0.0.2) is served meanwhile
    assert.equal(await askFrom('127.0.0.2', TOKEN), 200, 'another source is not locked out');
    now += TOKEN_LOCKOUT_MS - 1000;
    assert.equal((await ask('127.0.0.1', TOKEN)).status, 429, 'still locked a second before the end');
    now += 1000;
    assert.equal((await ask('127.0.0.1', TOKEN)).status, 200, 'the lockout ends on the clock');
    assert.equal(guesses.trackedSources, 1);
  });
});
