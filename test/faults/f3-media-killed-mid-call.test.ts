import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort } from '../helpers/free-port';
import { TcpCutter } from '../helpers/media-tcp-cutter';
import { alive, endedRecord, establishCall, gatewayLogCount, reconnects, startWorld, story, type World } from '../helpers/media-fault-world';
import { getJson, waitFor } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * F3 (docs/lifecycle.md): ferry media is SIGKILLed mid-call (an IP phone — scripted SIP + RTP —
 * calls the Chromium webphone on the gateway page), with the in-memory store and with Redis.
 * The gateway must stay up (same pid) and end the call it can no longer carry, both parties told:
 *  (a) media restarted at once: the gateway reconnects, finds the pipeline gone (checked by id)
 *      and BYEs both parties < 2 s after the media server is back, reason `media-lost`;
 *  (b) media stays down: both parties get BYE < 2 s after the loss (the gateway's grace is
 *      FERRY_GATEWAY_MEDIA_LOSS_GRACE_MS = 1500 ms, its default; the remaining 500 ms is the margin
 *      for process scheduling on a loaded machine), reason `media-lost`; a new call during the
 *      outage gets 503 with Retry-After; once media is back a new call connects (positive control).
 * In (a) the grace is raised to 10 s so the end comes from the check after reconnecting, not from
 * the grace (a restart can take longer than 1.5 s on a loaded machine).
 * And the counterpart (c): only the control connection drops (ferry media alive, a TCP relay in
 * between is cut): the gateway reconnects to the same session, finds the pipeline and endpoints,
 * and the call goes on — no BYE, RTP both ways, a normal hang-up later. (c) runs first on the
 * memory store's (b) stack, whose gateway reaches ferry media through that relay.
 */
const BOUND_MS = 2000;

for (const store of ['memory', 'redis'] as const) {
  describe(`F3: ferry media killed mid-call (${store} store)`, { timeout: 240_000 }, () => {
    describe('(a) media restarted at once', () => {
      let w: World;
      before(async () => {
        w = await startWorld(store, { graceMs: 10_000 });
      });
      after(async () => {
        await w?.close();
      });

      test(`F3a (${store}): gateway keeps its pid; both parties get BYE (media-lost) < ${BOUND_MS} ms after media is back; then a new call connects`, async () => {
        const gatewayPid = w.stack.pid('gateway')!;
        const call = await establishCall(w);
        const killedAt = Date.now();
        await w.stack.kill('media', 'SIGKILL');
        await w.stack.restart('media');
        const backAt = Date.now();
        const bye = await w.phone.waitForRequest('BYE', 10_000, killedAt);
        await w.webphone.waitCallState('ended', 10_000);
        const webphoneEndedAt = (await w.webphone.endedAt())!;
        const record = await endedRecord(w, call.id);

        assert.equal(record.reason, 'media-lost', story(record));
        assert.match(bye.message.headers.get('reason')?.[0] ?? '', /media-lost/, 'the BYE says why');
        assert.ok(story(record).includes('after reconnecting'), `ended by the check after reconnecting: ${story(record)}`);
        assert.ok(bye.at - backAt < BOUND_MS, `phone BYE ${bye.at - backAt} ms after media was back`);
        assert.ok(webphoneEndedAt - backAt < BOUND_MS, `webphone told ${webphoneEndedAt - backAt} ms after media was back`);
        assert.equal(w.stack.pid('gateway'), gatewayPid, 'same gateway process');
        assert.ok(alive(gatewayPid), 'the gateway process is alive');
        console.log(`# F3a ${store}: media back ${backAt - killedAt} ms after SIGKILL; phone BYE +${bye.at - backAt} ms, webphone told +${webphoneEndedAt - backAt} ms after media was back`);

        // positive control: the gateway works with the restarted media server
        await w.phone.media.stopMedia();
        const second = await establishCall(w);
        assert.notEqual(second.id, call.id);
        const hangupFrom = Date.now();
        await w.webphone.hangup();
        await w.phone.waitForRequest('BYE', 5000, hangupFrom);
        await waitFor(async () => (await getJson<{ pipelines: number }>(w.stack.mediaPort, '/stats')).pipelines === 0, 5000, 25, 'pipelines back to 0');
        assert.equal(w.stack.pid('gateway'), gatewayPid);
      });

      test(`F3e (${store}): an idle media restart (no calls) — SIGKILL, restart: the gateway keeps its pid, reconnects, and the next call connects`, async () => {
        const gatewayPid = w.stack.pid('gateway')!;
        assert.equal((await getJson<{ calls: CallRecord[] }>(w.stack.httpPort, '/api/calls')).calls.length, 0, 'no live call');
        const before = reconnects(w);
        await w.stack.kill('media', 'SIGKILL');
        await w.stack.restart('media');
        await waitFor(() => reconnects(w) > before, 5000, 25, 'the gateway reconnected to the restarted media server');
        assert.equal(w.stack.pid('gateway'), gatewayPid);
        assert.ok(alive(gatewayPid));
        const next = await establishCall(w);
        const hangupFrom = Date.now();
        await w.webphone.hangup();
        await w.phone.waitForRequest('BYE', 5000, hangupFrom);
        await w.phone.media.stopMedia();
        // a webphone's hang-up is a BYE plus a DTLS close_notify at the same moment: either may arrive first
        assert.ok(['sip-bye', 'dtls-close'].includes((await endedRecord(w, next.id)).reason ?? ''));
        await waitFor(async () => (await getJson<{ pipelines: number }>(w.stack.mediaPort, '/stats')).pipelines === 0, 5000, 25, 'pipelines back to 0');
      });
    });

    // memory store: the gateway reaches ferry media through a TCP relay (transparent until cut), so
    // that F3c's control-connection blip runs on this stack first, before ferry media is killed
    describe(store === 'memory' ? '(b) media stays down; first, the control connection blips through a relay (F3c)' : '(b) media stays down', () => {
      let w: World;
      let cutter: TcpCutter | undefined;
      before(async () => {
        if (store === 'memory') {
          const mediaPort = await freePort({ protocols: ['tcp'] });
          cutter = await TcpCutter.start(mediaPort);
          w = await startWorld('memory', {
            partEnv: { media: { FERRY_MEDIA_PORT: String(mediaPort) }, gateway: { FERRY_MEDIA_URL: `ws://127.0.0.1:${cutter.port}/kurento` } },
          });
        } else {
          w = await startWorld(store);
        }
      });
      after(async () => {
        await w?.close();
        await cutter?.close();
      });

      if (store === 'memory') {
        test('F3c (memory): a control-connection blip ends nothing: the pipeline is found by id after reconnecting, no BYE past the grace, RTP both ways, normal hang-up later', async () => {
          const call = await establishCall(w);
          const before = reconnects(w);
          const cutAt = Date.now();
          cutter!.cut();
          await waitFor(() => reconnects(w) > before, 5000, 25, 'the gateway reconnected through the relay');
          const checked = await waitFor(async () => {
            const r = await getJson<CallRecord>(w.stack.httpPort, `/api/calls/${call.id}`);
            return r.timeline.some((e) => e.event === 'media-check') ? r : undefined;
          }, 3000, 25, 'the live call checked after reconnecting');
          assert.equal(checked.state, 'answered', story(checked));
          // past the grace (1.5 s) by a margin: nothing may end the call
          const quietUntil = cutAt + 3000;
          await waitFor(() => Date.now() >= quietUntil, 5000, 50, 'the grace and a margin passed');
          assert.equal(w.phone.received.filter((r) => r.method === 'BYE' && r.at >= cutAt).length, 0, 'no BYE at the phone');
          assert.equal(await w.webphone.callState(), 'connected');
          const rtpAtPhone = await w.phone.media.rtpReceivedBetween(cutAt + 1000, Date.now());
          assert.ok(rtpAtPhone > 50, `RTP from the browser kept flowing: ${rtpAtPhone} packets in the last ${Date.now() - cutAt - 1000} ms`);
          const base = (await w.webphone.rtpStats()).received;
          await waitFor(async () => (await w.webphone.rtpStats()).received > base + 20, 5000, 50, 'RTP from the phone at the browser');

          const hangupAt = await w.phone.hangup();
          await w.webphone.waitCallState('ended', 5000);
          const record = await endedRecord(w, call.id);
          assert.equal(record.reason, 'sip-bye', story(record));
          await w.phone.media.stopMedia();
          await waitFor(async () => (await getJson<{ pipelines: number }>(w.stack.mediaPort, '/stats')).pipelines === 0, 5000, 25, 'pipeline released');
          console.log(`# F3c: blip survived; hang-up reached the webphone ${(await w.webphone.endedAt())! - hangupAt} ms after the phone's BYE`);
        });
      }

      test(`F3b (${store}): both parties get BYE (media-lost) < ${BOUND_MS} ms after the loss; a new call meanwhile gets 503 + Retry-After; after media is back a new call connects`, async () => {
        const gatewayPid = w.stack.pid('gateway')!;
        const call = await establishCall(w);
        const killedAt = Date.now();
        await w.stack.kill('media', 'SIGKILL');
        const bye = await w.phone.waitForRequest('BYE', 10_000, killedAt);
        await w.webphone.waitCallState('ended', 10_000);
        const webphoneEndedAt = (await w.webphone.endedAt())!;
        const record = await endedRecord(w, call.id);

        assert.equal(record.reason, 'media-lost', story(record));
        assert.match(bye.message.headers.get('reason')?.[0] ?? '', /media-lost/);
        assert.ok(bye.at - killedAt < BOUND_MS, `phone BYE ${bye.at - killedAt} ms after the loss`);
        assert.ok(webphoneEndedAt - killedAt < BOUND_MS, `webphone told ${webphoneEndedAt - killedAt} ms after the loss`);

        const refused = await w.probe.invite('sip:alice@ferry.local', { host: '127.0.0.1', port: w.stack.sipPort });
        assert.equal(refused.status, 503, `${refused.status} ${refused.reason}`);
        assert.match(refused.headers.get('retry-after')?.[0] ?? '', /^\d+/, 'Retry-After');
        assert.equal(w.stack.pid('gateway'), gatewayPid);
        assert.ok(alive(gatewayPid));
        console.log(`# F3b ${store}: phone BYE +${bye.at - killedAt} ms, webphone told +${webphoneEndedAt - killedAt} ms after SIGKILL; new call during the outage: ${refused.status} Retry-After ${refused.headers.get('retry-after')?.[0]}`);

        // positive control: media back, a new call connects (the 503 was about the outage only)
        await w.phone.media.stopMedia();
        const reconnectsBefore = reconnects(w);
        await w.stack.restart('media');
        await waitFor(() => reconnects(w) > reconnectsBefore, 5000, 25, 'the gateway reconnected to the media server');
        const second = await establishCall(w);
        assert.notEqual(second.id, call.id);
        await w.phone.hangup();
        await w.webphone.waitCallState('ended', 5000);
        await waitFor(async () => (await getJson<{ pipelines: number }>(w.stack.mediaPort, '/stats')).pipelines === 0, 5000, 25, 'pipelines back to 0');
        assert.equal(w.stack.pid('gateway'), gatewayPid);
      });

      test(`F3d (${store}): media lost while the webphone rings: its answer gets the call refused at once (503 to the phone, BYE to the webphone), reason media-lost`, async () => {
        const gatewayPid = w.stack.pid('gateway')!;
        const since = Date.now();
        const calling = w.phone.call('sip:alice@ferry.local', { host: '127.0.0.1', port: w.stack.sipPort }).then(
          () => 'connected',
          (err: Error) => err.message,
        );
        await w.webphone.waitCallState('ringing-in', 15_000);
        const call = (await getJson<{ calls: CallRecord[] }>(w.stack.httpPort, '/api/calls')).calls.find((c) => c.createdAt >= since - 1000 && c.state !== 'ended')!;
        assert.ok(call, 'the ringing call has a record');
        const lossesBefore = gatewayLogCount(w, 'media server connection lost');
        await w.stack.kill('media', 'SIGKILL');
        await waitFor(() => gatewayLogCount(w, 'media server connection lost') > lossesBefore, 3000, 25, 'the gateway noticed the loss');
        const answeredAt = Date.now();
        await w.webphone.answer();
        const outcome = await calling;
        const refusedAt = Date.now();
        await w.webphone.waitCallState('ended', 5000);
        const webphoneEndedAt = (await w.webphone.endedAt())!;
        const record = await endedRecord(w, call.id);
        assert.match(outcome, /503/, `the phone's call: ${outcome}`);
        assert.equal(record.reason, 'media-lost', story(record));
        assert.ok(refusedAt - answeredAt < 3000, `phone refused ${refusedAt - answeredAt} ms after the answer click`);
        assert.ok(webphoneEndedAt - answeredAt < 3000, `webphone told ${webphoneEndedAt - answeredAt} ms after the answer click`);
        assert.ok(alive(gatewayPid));
        console.log(`# F3d ${store}: answer while media lost -> phone 503 +${refusedAt - answeredAt} ms, webphone ended +${webphoneEndedAt - answeredAt} ms`);
        await w.stack.restart('media');
      });
    });
  });
}
