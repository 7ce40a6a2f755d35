import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { waitFor } from '../helpers/stack';
import { GatewayCallFixture } from '../helpers/gateway-call-fixture';

/**
 * docs/lifecycle.md S16 through the whole stack: after calls ended every way a live gateway sees (webphone
 * BYE, phone BYE, phone BYE + RTCP BYE, ringing then CANCEL-free busy... kept to the answered kinds
 * here), ferry media is back to 0 pipelines / 0 elements / 0 bound ports with 0 sessions (rule 6), Redis holds 0 call keys once the ended records' backstop TTL passed
 * (FERRY_CALL_RECORD_TTL_MS=1000 here), and ferry media's RSS is near where it started.
 */
async function rssKb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

describe('S16 (gateway): everything back to zero after all calls end', { timeout: 120_000 }, () => {
  let fx: GatewayCallFixture;

  before(async () => {
    fx = await GatewayCallFixture.start({ env: { FERRY_CALL_RECORD_TTL_MS: '1000', FERRY_MEDIA_DEAD_MS: '5000' } });
  });
  after(async () => {
    await fx?.close();
  });

  test('S16: after 3 calls (webphone BYE, phone BYE, phone BYE + RTCP BYE) -> 0 pipelines, 0 elements, 0 bound ports, 0 sessions, 0 call keys in Redis, RSS near baseline', async () => {
    const baseline = await rssKb(fx.stack.pid('media')!);
    const ids: string[] = [];
    const hows: string[] = [];
    for (const how of ['webphone-bye', 'phone-bye', 'phone-bye-rtcp-bye'] as const) {
      const since = await fx.phoneCallsWebphone();
      const call = await fx.liveCall(since);
      ids.push(call.id);
      hows.push(how);
      assert.ok((await fx.redisCall(call.id)) !== undefined, 'the call record is in Redis during the call');
      assert.ok((await fx.redisCallIndex()).includes(call.id), 'and in the live-call index');
      if (how === 'webphone-bye') {
        await fx.webphone.hangup();
        await fx.phone.waitForRequest('BYE', 5000, since);
      } else {
        await fx.phone.hangup();
        if (how === 'phone-bye-rtcp-bye') await fx.phone.media.sendBye();
      }
      await fx.phone.media.stopMedia();
      await fx.releasedAt(5000);
      await fx.webphone.waitCallState('ended', 5000);
    }
    const stats = await fx.mediaStats();
    assert.deepEqual({ pipelines: stats.pipelines, elements: stats.elements, boundPorts: stats.boundPorts }, { pipelines: 0, elements: 0, boundPorts: 0 });
    // Rule 6: a session whose last object was released expires, even while the gateway stays connected.
    assert.equal(stats.sessions, 0, `no live session left: ${JSON.stringify(stats.sessionsDetail)}`);
    for (const id of ids) {
      const r = await fx.redisCall(id);
      assert.ok(r === undefined || (r.record.state === 'ended' && r.ttlMs > 0 && r.ttlMs <= 1000), `ended record ${id} has a backstop TTL: ${JSON.stringify(r && { state: r.record.state, ttl: r.ttlMs })}`);
    }
    // The index set is pruned lazily by the gateway's periodic scan (every FERRY_GATEWAY_ADOPT_INTERVAL_MS,
    // default lease/3 = 3.3 s): allow TTL + one scan + margin.
    await waitFor(async () => (await fx.redisCallIndex()).length === 0 && (await fx.redisCallKeys()).length === 0, 6000, 100, 'Redis call keys back to 0').catch(() => undefined);
    const left = await fx.redisCallIndex();
    assert.deepEqual(left.map((id) => hows[ids.indexOf(id)] ?? id), [], 'the live-call index (<prefix>calls) no longer lists the ended calls (listed: how each ended)');
    assert.deepEqual(await fx.redisCallKeys(), [], 'no call keys left in Redis after the TTL');
    const grown = (await rssKb(fx.stack.pid('media')!)) - baseline;
    assert.ok(grown < 40_000, `ferry media RSS grew ${grown} kB over 3 calls`);
  });
});
