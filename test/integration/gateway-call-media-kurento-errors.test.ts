import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import winston from 'winston';
import { systemClock } from '../../src/common/clock';
import { MediaConnection } from '../../src/gateway/kurento/media-connection';
import { CallMedia } from '../../src/gateway/kurento/call-media';
import { SdpError } from '../../src/gateway/calls/sdp-rewriter';
import { MediaServerProcess } from '../helpers/media-server-process';

/**
 * A hold from a webphone (re-INVITE on the WebRTC leg) does not ask the WebRtcEndpoint for a second
 * negotiation, so no "Endpoint already negotiated" error and no console stack trace; errors of the SDP
 * requests reach the gateway as rejections (kurento-client's promise form would trace and swallow them).
 */

function capture(): { logger: winston.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { logger: winston.createLogger({ level: 'debug', format: winston.format.json(), transports: [new winston.transports.Stream({ stream: sink })] }), lines };
}

function phoneSdp(port: number, direction: string): string {
  return ['v=0', 'o=phone 1 2 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', `m=audio ${port} RTP/AVP 0`, 'a=rtpmap:0 PCMU/8000', `a=${direction}`, ''].join('\r\n');
}

describe('gateway call media: renegotiation and SDP errors without console traces', { timeout: 30_000 }, () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  const traces: string[] = [];
  const originalTrace = console.trace;
  console.trace = (...args: unknown[]) => { traces.push(args.map(String).join(' ')); };
  after(async () => {
    console.trace = originalTrace;
    for (const c of cleanups.reverse()) await c();
  });

  async function setUp(env: Record<string, string> = {}) {
    const media = await MediaServerProcess.start(env);
    cleanups.push(() => media.stop());
    const { logger, lines } = capture();
    const conn = new MediaConnection(media.url, logger);
    cleanups.push(() => conn.close());
    await conn.connect();
    const callMedia = await CallMedia.build(conn, { caller: 'webrtc', callee: 'rtp' }, logger, systemClock);
    cleanups.push(() => callMedia.release());
    return { media, callMedia, lines };
  }

  test('a call set-up that fails half-way releases its pipeline (callback form: a failed release would be logged, not traced)', { timeout: 20_000 }, async () => {
    // one element per pipeline: the second endpoint is refused after the pipeline and the first endpoint exist
    const small = await MediaServerProcess.start({ FERRY_MEDIA_MAX_ELEMENTS_PER_PIPELINE: '1' });
    cleanups.push(() => small.stop());
    const { logger } = capture();
    const conn = new MediaConnection(small.url, logger);
    cleanups.push(() => conn.close());
    await conn.connect();
    await assert.rejects(CallMedia.build(conn, { caller: 'rtp', callee: 'rtp' }, logger, systemClock));
    await small.waitForStats((st) => st.pipelines === 0 && st.elements === 0, 3000);
  });

  test('webphone hold: the negotiated WebRtcEndpoint is not asked again, nothing is traced; the kurento promise form would have traced (positive control)', { timeout: 20_000 }, async () => {
    const { callMedia, lines } = await setUp();
    const offer = await callMedia.offer('caller', ['PCMU']);
    traces.length = 0;
    const hold = offer.replace(/a=sendrecv/g, 'a=sendonly');
    assert.equal(await callMedia.renegotiate('caller', hold), undefined, 'the caller answers from its own SDP');
    assert.deepEqual(traces, []);
    assert.ok(lines.some((l) => String(l.message).startsWith('WebRTC leg renegotiated in SIP only')));
    assert.ok(!lines.some((l) => JSON.stringify(l).includes('already negotiated')));
    // positive control: kurento-client's promise form on the same endpoint traces a stack and resolves undefined
    const promiseForm = (callMedia.caller as unknown as { processOffer(o: string): Promise<unknown> }).processOffer(hold);
    assert.equal(await promiseForm, undefined, 'kurento-client resolves instead of rejecting');
    assert.equal(traces.length, 1);
    assert.match(traces[0]!, /already negotiated/);
  });

  test('an RTP leg renegotiates (ferry media takes a second SDP) and a refused SDP rejects as SdpError, untraced', { timeout: 20_000 }, async () => {
    const { callMedia } = await setUp();
    traces.length = 0;
    const answer = await callMedia.answer('callee', phoneSdp(40000, 'sendrecv'));
    assert.match(answer, /m=audio \d+ RTP\/AVP/);
    const reanswer = await callMedia.renegotiate('callee', phoneSdp(40000, 'sendonly'));
    assert.match(reanswer ?? '', /a=recvonly/, 'the RTP endpoint answered the hold');
    await assert.rejects(callMedia.acceptAnswer('caller', 'v=0\r\n'), (err: Error & { code?: number }) => typeof err.code === 'number' && err.code >= 40000);
    const fresh = await setUp();
    await assert.rejects(fresh.callMedia.answer('callee', 'this is not SDP'), SdpError);
    assert.deepEqual(traces, []);
  });
});
