import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { getJson, waitFor } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';
import {
  answeredCall, answeredHoldingCall, callRecord, expectEndedAndClean, LEASE_MS, received, setUp, state, tearDown, type Ctx,
} from '../helpers/gateway-adoption-harness';

/**
 * Gateway death mid-call with two gateways on one Redis (docs/lifecycle.md S14): the
 * survivor adopts the call within the lease time — re-attaching to its media objects by id and
 * taking over both dialogs through ferry sip's extension — and then handles the phone's re-INVITEs
 * and BYE: BYE to the webphone, pipeline released, record ended.
 */
describe('gateway adoption by a second gateway (Redis)', { timeout: 120_000 }, () => {
  // one stack for both scenarios: each ends its call
  describe('two gateways share Redis; the owner is SIGKILLed mid-call (S14)', () => {
    let c: Ctx | undefined;
    before(async () => {
      c = await setUp(true);
    });
    after(() => tearDown(c));

    test('the other gateway adopts the call within the lease, media keeps flowing, and it handles the BYE', async () => {
      const ctx = c!;
      const { sipp, record } = await answeredCall(ctx, 6000); // hang-up 6 s after answer: past the adoption bound (lease + 2 s) and the media check
      const ownerPart = record.owner.startsWith('gw-a-') ? 'gateway' : 'gateway2';
      const survivorPort = ownerPart === 'gateway' ? ctx.stack.httpPort2! : ctx.stack.httpPort;
      const before = await received(ctx.page);
      const killedAt = Date.now();
      await ctx.stack.kill(ownerPart, 'SIGKILL');
      const adopted = await waitFor(async () => {
        const r = await getJson<CallRecord>(survivorPort, `/api/calls/${record.id}`);
        return r.owner !== record.owner ? r : undefined;
      }, LEASE_MS + 3000, 50, 'adoption by the surviving gateway');
      const adoptMs = Date.now() - killedAt;
      assert.ok(adoptMs < LEASE_MS + 2000, `adopted ${adoptMs} ms after the kill (lease ${LEASE_MS} ms)`);
      console.log(`# measured: owner SIGKILL -> call adopted by the other gateway ${adoptMs} ms (lease ${LEASE_MS} ms, scan 250 ms)`);
      assert.equal(adopted.state, 'answered');
      assert.ok(adopted.timeline.some((e) => e.event === 'adopted'));
      assert.ok(adopted.timeline.some((e) => e.event === 'media-reattached'), adopted.timeline.map((e) => e.event).join(','));
      assert.equal((await getJson<{ pipelines: number }>(ctx.stack.mediaPort, '/stats')).pipelines, 1, 'pipeline kept');
      await waitFor(async () => (await received(ctx.page)) > before + 50, 5000, 50, 'media still flowing to the browser');
      assert.equal(await state(ctx.page), 'connected');
      const ended = await expectEndedAndClean(ctx, sipp, record.id);
      assert.equal(ended.owner, adopted.owner);
      const events = ended.timeline.map((e) => e.event);
      assert.ok(events.includes('bye-sent'), `BYE sent to the webphone by the adopting gateway: ${events.join(',')}`);
      const metrics = await (await fetch(`http://127.0.0.1:${survivorPort}/metrics`)).text();
      assert.match(metrics, /^ferry_calls_adopted_total 1$/m);
    });

    test('re-INVITE (hold/resume) on an adopted call: the adopting gateway answers the phone\'s hold, carries it to the webphone over the extension, then the resume and the BYE', async () => {
      const ctx = c!;
      // the gateway SIGKILLed by the scenario before comes back (same id), so that one survives the next kill
      for (const part of ['gateway', 'gateway2'] as const) if (ctx.stack.pid(part) === undefined) await ctx.stack.restart(part);
      const { sipp, record } = await answeredHoldingCall(ctx);
      const ownerPart = record.owner.startsWith('gw-a-') ? 'gateway' : 'gateway2';
      const survivorPort = ownerPart === 'gateway' ? ctx.stack.httpPort2! : ctx.stack.httpPort;
      await ctx.stack.kill(ownerPart, 'SIGKILL');
      await waitFor(async () => (await getJson<CallRecord>(survivorPort, `/api/calls/${record.id}`)).owner !== record.owner, LEASE_MS + 3000, 50, 'adopted');
      await waitFor(async () => (await state(ctx.page)) === 'held by the other side', 10000, 25, 'webphone told of the hold by the adopter');
      await waitFor(async () => (await state(ctx.page)) === 'connected', 8000, 25, 'resume carried');
      const ended = await expectEndedAndClean(ctx, sipp, record.id);
      const events = ended.timeline.map((e) => e.event);
      assert.ok(events.indexOf('adopted') < events.indexOf('hold') && events.indexOf('hold') < events.indexOf('resume'), events.join(','));
      assert.ok(!events.includes('reinvite-failed'), events.join(','));
    });
  });
});
