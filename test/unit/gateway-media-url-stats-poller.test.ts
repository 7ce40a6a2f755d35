import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '../../src/common/logger';
import { MediaStatsPoller } from '../../src/gateway/media-servers/media-stats-poller';
import { freePort } from '../helpers/free-port';
import { pollUntil } from '../helpers/wait-for';

/**
 * The gateway's poll of a media server's GET /stats (docs/gateway.md, "Several media servers") on real
 * sockets: a local HTTP server answers as ferry media does (figures), as a server without /stats
 * does (404, not JSON), not at all (held open past the bound), with a reset, or with an oversized
 * body; nothing refused makes the poll wait past its bound, and the last figures are kept.
 */
describe('media server /stats poll', { timeout: 30_000 }, () => {
  let server: http.Server;
  let port = 0;
  let mode: 'figures' | 'draining' | '404' | 'html' | 'hang' | 'reset' | 'huge' = 'figures';
  let requests = 0;
  const held: http.ServerResponse[] = [];

  before(async () => {
    server = http.createServer((req, res) => {
      requests++;
      assert.equal(req.url, '/stats');
      if (mode === 'figures') res.end(JSON.stringify({ pipelines: 3, elements: 9, eventLoopLagP99Ms: 2.5 }));
      else if (mode === 'draining') res.end(JSON.stringify({ pipelines: 1, draining: true }));
      else if (mode === '404') res.writeHead(404).end('not found');
      else if (mode === 'html') res.end('<html>hello</html>');
      else if (mode === 'hang') held.push(res);
      else if (mode === 'reset') req.socket.destroy();
      else res.end(`{"pipelines":1,"pad":"${'x'.repeat(100_000)}"}`);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    for (const r of held) r.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const poller = (timeoutMs = 300): MediaStatsPoller =>
    new MediaStatsPoller({ statsUrl: `http://127.0.0.1:${port}/stats`, intervalMs: 50, timeoutMs, log: createLogger('test-stats-poller') });

  test('figures, draining, a server without /stats, no answer, a reset, an oversized body', async () => {
    const p = poller();
    try {
      mode = 'figures';
      p.start();
      await pollUntil(() => p.outcome === 'stats', { timeoutMs: 5000, what: 'figures read' });
      assert.deepEqual(p.figures, { pipelines: 3, eventLoopLagP99Ms: 2.5, draining: false });
      mode = 'draining';
      await pollUntil(() => p.figures?.draining === true, { timeoutMs: 5000, what: 'draining read' });
      assert.equal(p.figures?.pipelines, 1);
      mode = '404';
      await pollUntil(() => p.outcome === 'no-stats', { timeoutMs: 5000, what: '404 is no /stats' });
      mode = 'figures';
      await pollUntil(() => p.outcome === 'stats', { timeoutMs: 5000, what: 'figures again' });
      mode = 'html';
      await pollUntil(() => p.outcome === 'no-stats', { timeoutMs: 5000, what: 'not JSON is no /stats' });
      mode = 'hang';
      await pollUntil(() => p.outcome === 'failed' && p.failuresInARow >= 2, { timeoutMs: 5000, what: 'no answer within the bound, twice' });
      // the last figures are kept through the failures (draining stays known)
      assert.equal(p.figures?.pipelines, 3);
      mode = 'reset';
      const before = p.failuresInARow;
      await pollUntil(() => p.failuresInARow > before + 1, { timeoutMs: 5000, what: 'a reset is a failure' });
      mode = 'huge';
      await pollUntil(() => p.outcome === 'no-stats', { timeoutMs: 5000, what: 'an oversized body is not taken' });
      mode = 'figures';
      await pollUntil(() => p.outcome === 'stats' && p.failuresInARow === 0, { timeoutMs: 5000, what: 'figures once more' });
    } finally {
      p.stop();
    }
    // stopped: no more requests, while a running poller on another server keeps polling (positive control)
    assert.ok(requests > 8, `requests made: ${requests}`);
    const stoppedAt = requests;
    let controlRequests = 0;
    const other = http.createServer((_req, res) => {
      controlRequests++;
      res.end('{"pipelines":0}');
    });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    const control = new MediaStatsPoller({ statsUrl: `http://127.0.0.1:${(other.address() as AddressInfo).port}/stats`, intervalMs: 50, log: createLogger('test-stats-poller') });
    control.start();
    try {
      await pollUntil(() => controlRequests >= 4, { timeoutMs: 5000, what: 'the control poller polls' });
    } finally {
      control.stop();
      await new Promise<void>((r) => other.close(() => r()));
    }
    assert.equal(requests, stoppedAt, 'the stopped poller sent nothing more');
  });

  test('nothing listening: a failure, not a wait; freshStart forgets it', async () => {
    const closed = await freePort({ protocols: ['tcp'] });
    const p = new MediaStatsPoller({ statsUrl: `http://127.0.0.1:${closed}/stats`, intervalMs: 50, timeoutMs: 2000, log: createLogger('test-stats-poller') });
    try {
      p.start();
      await pollUntil(() => p.failuresInARow >= 2, { timeoutMs: 5000, what: 'refused twice' });
      assert.equal(p.outcome, 'failed');
      assert.equal(p.figures, undefined);
      p.stop();
      p.freshStart();
      assert.equal(p.failuresInARow, 0);
      assert.equal(p.outcome, 'unknown');
    } finally {
      p.stop();
    }
  });
});
