import { test, describe, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/stack';
import { GatewayCallFixture } from '../helpers/gateway-call-fixture';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * docs/lifecycle.md S11 through the gateway, the answer side: the IP phone holds the webphone (sendonly
 * re-INVITE), the gateway relays the hold to the webphone, and the webphone's ANSWER is judged by the
 * webphone leg's own SIP source (its WebSocket from this host), recorded with the leg at set-up and
 * kept in the call record, not by the address its SDP names. It must be taken (no `sdp-refused`), the
 * legs stay on hold past T_dead with the phone silent, and resume brings media back both ways.
 */
const DEAD_MS = 8000;
const LOOPBACK = /^(127\.|::1$|::ffff:127\.)/;

const refusals = (r: CallRecord): string[] => r.timeline.filter((e) => e.event === 'sdp-refused').map((e) => e.detail ?? '');
const cLine = (sdp: string | undefined): string => /^c=.*$/m.exec(sdp ?? '')?.[0] ?? '(none)';

describe('S11 (gateway): the webphone answers a relayed hold; its answer is judged by its own SIP source', { timeout: 120_000 }, () => {
  let fx: GatewayCallFixture;

  before(async () => {
    fx = await GatewayCallFixture.start({ env: { FERRY_MEDIA_DEAD_MS: String(DEAD_MS) } });
  });
  afterEach(async () => {
    await fx.endLeftoverCall();
  });
  after(async () => {
    await fx?.close();
  });
  /** the full call record from the state store (/api/calls shows a summary without SDP) */
  const record = async (id: string): Promise<CallRecord> => {
    const stored = await fx.redisCall(id);
    assert.ok(stored, `call ${id} is in the state store`);
    return stored.record;
  };

  test('S11: phone holds webphone (both on loopback) -> the webphone answer is accepted, the record keeps each leg\'s SIP source, nothing ends past 2 x T_dead; resume brings media back', async () => {
    const since = await fx.phoneCallsWebphone();
    const live = await fx.liveCall(since);
    // the stored record (what an adopting gateway reads) keeps each leg's SIP source
    const stored = await record(live.id);
    assert.match(stored.caller.sipSource ?? '', LOOPBACK, 'the phone leg\'s SIP source is recorded');
    assert.match(stored.callee.sipSource ?? '', LOOPBACK, 'the webphone leg\'s SIP source (its WebSocket) is recorded');
    const firstWebphoneSdp = stored.callee.remoteSdp;

    const answer = await fx.phone.reinvite('sendonly');
    assert.match(answer, /a=(recvonly|inactive)/, 'the hold is answered recvonly/inactive');
    await fx.phone.media.applyRemoteSdp(answer);
    await fx.webphone.waitCallState('held by the other side', 5000);
    // the gateway takes the webphone's answer to the relayed hold: its direction and SDP are recorded
    await waitFor(async () => {
      const r = await record(live.id);
      return refusals(r).length > 0 || (r.callee.direction === 'recvonly' || r.callee.direction === 'inactive');
    }, 5000, 50, 'the webphone answer handled');
    const held = await record(live.id);
    assert.deepEqual(refusals(held), [], `no SDP refused (webphone first ${cLine(firstWebphoneSdp)}, answer ${cLine(held.callee.remoteSdp)})`);
    assert.match(held.callee.direction ?? '', /^(recvonly|inactive)$/, 'the webphone answer was applied');
    assert.notEqual(held.callee.remoteSdp, firstWebphoneSdp, 'the record holds the webphone\'s new answer');

    // the silent holder: the phone sends nothing; on hold, T_hold applies to the legs, not T_dead
    await fx.phone.media.stopMedia();
    const quietUntil = Date.now() + 2 * DEAD_MS;
    while (Date.now() < quietUntil) {
      const r = await fx.call(live.id);
      assert.equal(r.state, 'answered', `the held call is still up: ${JSON.stringify(r.timeline.slice(-4))}`);
      await new Promise((res) => setTimeout(res, 250));
    }
    assert.equal((await fx.mediaStats()).pipelines, 1, 'the pipeline is still there');

    // positive control: resume brings RTP back both ways, hang-up releases everything
    const resumed = await fx.phone.reinvite('sendrecv');
    await fx.phone.media.applyRemoteSdp(resumed);
    await fx.phone.media.unmute();
    await fx.phone.media.startMedia();
    await fx.webphone.waitCallState('connected', 5000);
    await fx.mediaFlowing(Date.now());
    assert.deepEqual(refusals(await record(live.id)), [], 'no SDP refused on resume either');
    await fx.phone.hangup();
    await fx.phone.media.stopMedia();
    await fx.releasedAt(5000);
  });
});
