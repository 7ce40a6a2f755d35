import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { call as kcall, connectKurento, type KurentoClientLike, type KurentoObjectLike } from '../helpers/media-kurento';
import { endedRecord, establishCall, startWorld, story, type World } from '../helpers/media-fault-world';
import { getJson, waitFor } from '../helpers/stack';

/**
 * F4 (docs/lifecycle.md): someone else — a second kurento-client control session, as an operator's
 * tool would be — releases a live call's pipeline. ferry media tells the gateway's session first
 * (MediaSessionTerminated / DISCONNECTED, reason control-release, detail released-by-other-session);
 * the gateway ends the call at once: both parties (scripted IP phone, Chromium webphone) get BYE
 * < 1 s after the release, reason `control-release` recorded. The releasing session gets no error.
 */
const BOUND_MS = 1000;

describe('F4: a call\'s pipeline released by another kurento-client session', { timeout: 120_000 }, () => {
  let w: World;
  let operator: KurentoClientLike | undefined;
  before(async () => {
    w = await startWorld('memory');
  });
  after(async () => {
    operator?.close();
    await w?.close();
  });

  test(`F4: both parties get BYE < ${BOUND_MS} ms after another session releases the pipeline; reason control-release`, async () => {
    const call = await establishCall(w);
    const pipelineId = call.media.pipelineId!;
    assert.ok(pipelineId, 'the call record names its pipeline');
    operator = await connectKurento(`ws://127.0.0.1:${w.stack.mediaPort}/kurento`);
    const pipeline: KurentoObjectLike = await operator.getMediaobjectById(pipelineId);
    assert.equal(await kcall<string>(pipeline, 'getName'), pipelineId, 'positive control: the operator sees the live pipeline');

    const releasedAt = Date.now();
    await pipeline.release(); // no error for the releasing session
    const bye = await w.phone.waitForRequest('BYE', 5000, releasedAt);
    await w.webphone.waitCallState('ended', 5000);
    const webphoneEndedAt = (await w.webphone.endedAt())!;
    const record = await endedRecord(w, call.id);

    assert.equal(record.reason, 'control-release', story(record));
    assert.equal(record.endedBy, 'media');
    assert.ok(story(record).includes('released-by-other-session'), `the media server's detail is in the timeline: ${story(record)}`);
    assert.match(bye.message.headers.get('reason')?.[0] ?? '', /control-release/);
    assert.ok(bye.at - releasedAt < BOUND_MS, `phone BYE ${bye.at - releasedAt} ms after the release`);
    assert.ok(webphoneEndedAt - releasedAt < BOUND_MS, `webphone told ${webphoneEndedAt - releasedAt} ms after the release`);
    await waitFor(async () => (await getJson<{ pipelines: number; boundPorts: number }>(w.stack.mediaPort, '/stats')).boundPorts === 0, 3000, 25, 'ports released');
    console.log(`# F4: phone BYE +${bye.at - releasedAt} ms, webphone told +${webphoneEndedAt - releasedAt} ms after another session released the pipeline`);
  });
});
