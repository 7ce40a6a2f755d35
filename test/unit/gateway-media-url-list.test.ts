import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadGatewayConfig } from '../../src/gateway/config/gateway-config';
import { ConfigError } from '../../src/gateway/config/config-error';
import { parseMediaUrlList, statsUrlOf } from '../../src/gateway/media-servers/media-url-list';
import { choosePlacement, PlacementCandidate } from '../../src/gateway/media-servers/placement';
import { parseFigures } from '../../src/gateway/media-servers/media-stats-poller';

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadGatewayConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('FERRY_MEDIA_URL list', { timeout: 10_000 }, () => {
  test('one URL: as before (mediaUrl and a one-entry list); several: in order, blanks and spaces around commas ignored', () => {
    const one = loadGatewayConfig({ FERRY_MEDIA_URL: 'ws://10.0.0.5:8888/kurento' });
    assert.equal(one.mediaUrl, 'ws://10.0.0.5:8888/kurento');
    assert.deepEqual(one.mediaUrls, ['ws://10.0.0.5:8888/kurento']);
    const unset = loadGatewayConfig({});
    assert.deepEqual(unset.mediaUrls, ['ws://127.0.0.1:8888/kurento']);
    const two = loadGatewayConfig({ FERRY_MEDIA_URL: ' ws://a:8888/kurento , wss://b.example:443/kurento,' });
    assert.deepEqual(two.mediaUrls, ['ws://a:8888/kurento', 'wss://b.example:443/kurento']);
    assert.equal(two.mediaUrl, 'ws://a:8888/kurento');
    assert.equal(two.mediaStatsIntervalMs, 2000);
  });

  test('a bad URL is one line naming the variable and which URL; good ones beside it do not hide it', () => {
    const single = problemsOf({ FERRY_MEDIA_URL: 'http://a:8888/kurento' });
    assert.deepEqual(single, ['environment: FERRY_MEDIA_URL="http://a:8888/kurento": must be a ws:// or wss:// URL']);
    const list = problemsOf({ FERRY_MEDIA_URL: 'ws://a:8888/kurento,tcp://b:1,ws://:9/x' });
    assert.equal(list.length, 2, list.join('\n'));
    assert.match(list[0]!, /^environment: FERRY_MEDIA_URL="ws:\/\/a:8888\/kurento,tcp:\/\/b:1,ws:\/\/:9\/x": URL 2 \("tcp:\/\/b:1"\) must be a ws:\/\/ or wss:\/\/ URL$/);
    assert.match(list[1]!, /URL 3 \("ws:\/\/:9\/x"\) is not a valid URL|URL 3 .* has no host/);
    for (const p of list) assert.ok(!p.includes('\n'), 'one line each');
    assert.match(problemsOf({ FERRY_MEDIA_URL: ' , ' })[0]!, /FERRY_MEDIA_URL=" , ": must be one or more ws:\/\/ or wss:\/\/ URLs/);
    assert.match(problemsOf({ FERRY_MEDIA_URL: 'ws://user:pw@a:1/kurento' })[0]!, /must not carry credentials/);
    assert.match(problemsOf({ FERRY_MEDIA_URL: Array.from({ length: 40 }, (_, i) => `ws://h${i}:1/k`).join(',') })[0]!, /40 URLs given, at most 32/);
    // positive control: the same variable without the bad entries is accepted
    assert.deepEqual(problemsOf({ FERRY_MEDIA_URL: 'ws://a:8888/kurento' }), []);
  });

  test('the same server twice (also spelt differently) is refused', () => {
    const dup = problemsOf({ FERRY_MEDIA_URL: 'ws://a:8888/kurento,ws://b:8888/kurento,WS://A:8888/kurento' });
    assert.equal(dup.length, 1, dup.join('\n'));
    assert.match(dup[0]!, /URL 3 \("WS:\/\/A:8888\/kurento"\) names the same media server as URL 1/);
    const exact = parseMediaUrlList('ws://a:1/k,ws://a:1/k');
    assert.equal(exact.ok, false);
    // a different port or path is another server
    assert.deepEqual(parseMediaUrlList('ws://a:1/k,ws://a:2/k,ws://a:1/other'), { ok: true, urls: ['ws://a:1/k', 'ws://a:2/k', 'ws://a:1/other'] });
  });

  test("/stats is on the ws URL's host and port, https for wss", () => {
    assert.equal(statsUrlOf('ws://127.0.0.1:8888/kurento'), 'http://127.0.0.1:8888/stats');
    assert.equal(statsUrlOf('wss://media.example:8433/kurento'), 'https://media.example:8433/stats');
    assert.equal(statsUrlOf('ws://[::1]:9/kurento'), 'http://[::1]:9/stats');
    assert.equal(statsUrlOf('wss://m.example/kurento'), 'https://m.example/stats');
  });
});

describe('placement of a new call', { timeout: 10_000 }, () => {
  const c = (url: string, over: Partial<PlacementCandidate> = {}): PlacementCandidate => ({ url, up: true, draining: false, statsDown: false, load: 0, lagP99Ms: undefined, ...over });

  test('fewest pipelines wins; equal loads go to the lower event-loop lag, then to the first listed', () => {
    const r = choosePlacement([c('a', { load: 3 }), c('b', { load: 1 }), c('c', { load: 2 })]);
    assert.ok(r.ok && r.chosen.url === 'b');
    const tie = choosePlacement([c('a', { load: 1, lagP99Ms: 40 }), c('b', { load: 1, lagP99Ms: 5 })]);
    assert.ok(tie.ok && tie.chosen.url === 'b');
    const first = choosePlacement([c('a', { load: 1 }), c('b', { load: 1 })]);
    assert.ok(first.ok && first.chosen.url === 'a');
  });

  test('a server down, not answering /stats or draining is skipped; none left: a reason naming why', () => {
    const r = choosePlacement([c('a', { up: false }), c('b', { draining: true }), c('c', { statsDown: true }), c('d', { load: 50 })]);
    assert.ok(r.ok && r.chosen.url === 'd');
    const none = choosePlacement([c('a', { up: false }), c('b', { draining: true, load: 0 }), c('c', { statsDown: true })]);
    assert.deepEqual(none, { ok: false, detail: 'no media server available (2 unreachable, 1 draining)' });
    assert.deepEqual(choosePlacement([c('a', { draining: true })]), { ok: false, detail: 'no media server available (1 draining)' });
  });

  test('/stats figures: pipelines required, draining only when true, lag optional; anything else is "no stats"', () => {
    assert.deepEqual(parseFigures('{"pipelines":2,"eventLoopLagP99Ms":3.5,"draining":true}'), { pipelines: 2, eventLoopLagP99Ms: 3.5, draining: true });
    assert.deepEqual(parseFigures('{"pipelines":0}'), { pipelines: 0, eventLoopLagP99Ms: undefined, draining: false });
    assert.equal(parseFigures('{"pipelines":1,"draining":"yes"}')?.draining, false);
    for (const bad of ['', 'not json', '[]', 'null', '{"pipelines":"3"}', '{"pipelines":-1}', '{"elements":3}']) assert.equal(parseFigures(bad), undefined, bad);
  });
});
