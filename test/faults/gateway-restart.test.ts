import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { getJson, waitFor } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';
import {
  answeredCall, answeredHoldingCall, callRecord, expectEndedAndClean, LEASE_MS, received, setUp, state, tearDown, type Ctx,
} from '../helpers/gateway-adoption-harness';

/**
 * The only gateway dies mid-call (docs/lifecycle.md S13, and rule 7): the restarted gateway resumes the
 * call from Redis, or, when the call ended while no gateway was alive, finishes it.
 */
describe('gateway restart (Redis)', { timeout: 120_000 }, () => {
  // one stack for both scenarios: each ends with its call ended and the gateway restarted
  describe('the only gateway is SIGKILLed and restarted mid-call (S13)', () => {
    let c: Ctx | undefined;
    before(async () => {
      c = await setUp(false);
    });
    after(() => tearDown(c));

    test('the restarted gateway resumes the call from Redis and handles the phone hanging up', async () => {
      const ctx = c!;
      const { sipp, record } = await answeredCall(ctx, 4000); // hang-up 4 s after answer: the kill, restart and adoption take about 1 s
      await ctx.stack.kill('gateway', 'SIGKILL');
      const before = await received(ctx.page);
      await waitFor(async () => (await received(ctx.page)) > before, 5000, 50, 'media flowing while no gateway is alive');
      await ctx.stack.restart('gateway');
      const adopted = await waitFor(async () => {
        const r = await getJson<CallRecord>(ctx.stack.httpPort, `/api/calls/${record.id}`);
        return r.timeline.some((e) => e.event === 'adopted') ? r : undefined;
      }, 5000, 50, 'adoption by the restarted gateway');
      assert.equal(adopted.state, 'answered');
      await expectEndedAndClean(ctx, sipp, record.id);
    });

    test('the call ends while no gateway is alive (phone vanishes; media server releases the orphan): the restarted gateway finds the media gone, finishes the call (BYE to whoever is left) and ends the record', async () => {
      const ctx = c!;
      const { sipp, record } = await answeredCall(ctx, 30000);
      await ctx.stack.kill('gateway', 'SIGKILL');
      process.kill(sipp.pid!, 'SIGKILL');
      // ferry media (orphans policy) releases the pipeline itself once the phone leg ends
      await waitFor(async () => (await getJson<{ pipelines: number }>(ctx.stack.mediaPort, '/stats')).pipelines === 0, 8000, 50, 'orphan released by the media server');
      const stale = JSON.parse((await ctx.redis.get(`${ctx.stack.redisPrefix}call:${record.id}`))!) as CallRecord;
      assert.equal(stale.state, 'answered', 'no gateway was alive to record the end');
      await ctx.stack.restart('gateway');
      const ended = await waitFor(async () => {
        const r = JSON.parse((await ctx.redis.get(`${ctx.stack.redisPrefix}call:${record.id}`))!) as CallRecord;
        return r.state === 'ended' ? r : undefined;
      }, 5000, 50, 'record finished by the restarted gateway');
      const events = ended.timeline.map((e) => e.event);
      assert.ok(events.includes('adopted') && events.includes('media-gone'), events.join(','));
      assert.equal(ended.endedBy, 'gateway');
      const ttl = await ctx.redis.pttl(`${ctx.stack.redisPrefix}call:${record.id}`);
      assert.ok(ttl > 0, 'ended record kept only with a TTL');
      assert.equal((await getJson<{ calls: CallRecord[] }>(ctx.stack.httpPort, '/api/calls')).calls.length, 0, 'no live calls left');
    });
  });
});
