import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { mediaPingIntervalMs } from '../../src/gateway/kurento/media-liveness';
import { freePort } from '../helpers/free-port';
import { MediaServerProcess } from '../helpers/media-server-process';
import { closePhonePairs, startPhonePairs, writePhonePairsConfig, type PhonePair } from '../helpers/trunk-phone-pairs';
import { getJson, startStack, TEST_API_TOKEN, waitFor, type Stack } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * F13 (docs/lifecycle.md): a media server stops answering while its control connection stays open
 * (a hung KMS, a stopped process, a host whose packets are black-holed). Here ferry media is
 * SIGSTOPped: its TCP connection stays up and nothing closes, so only the gateway's Kurento pings
 * (FERRY_GATEWAY_MEDIA_PING_TIMEOUT_MS, 3 s here) can tell. Scripted IP phones in pairs (SIP over UDP
 * + RTP at 50 packets/s, test/helpers/trunk-phone-pairs.ts) call each other through the gateway.
 *
 *  (b) a pause shorter than the bound (SIGSTOP, SIGCONT after half of it): nothing ends, no BYE
 *      past the bound + ping interval + grace + margin, RTP flows both ways after the resume, the
 *      phone's later hang-up reaches the other phone — (a) is its positive control;
 *  (a) a pause past the bound: both parties BYEd (`media-lost`) not before the bound and within
 *      bound + ping interval + grace + margin of the stop; the call ended in the gateway's view
 *      (/api/calls, /metrics: server down, no call on it); a new call meanwhile gets 503 +
 *      Retry-After; after SIGCONT the server is up again, the ended call's pipeline is released on
 *      it, and a new call connects (positive control);
 *  (c) two media servers, one SIGSTOPped: only its call ends; the other server's call gets no BYE
 *      and keeps RTP both ways; the next new call goes to the server that answers.
 */
const PING_TIMEOUT_MS = 3000;
const INTERVAL_MS = mediaPingIntervalMs(PING_TIMEOUT_MS);
const GRACE_MS = 1500;
/** process scheduling on a loaded machine */
const MARGIN_MS = 1500;
const BOUND_MS = PING_TIMEOUT_MS + INTERVAL_MS + GRACE_MS + MARGIN_MS;
const PAIRS = 9;

const GATEWAY_ENV = {
  FERRY_GATEWAY_MEDIA_PING_TIMEOUT_MS: String(PING_TIMEOUT_MS),
  FERRY_GATEWAY_MEDIA_LOSS_GRACE_MS: String(GRACE_MS),
  FERRY_GATEWAY_MEDIA_STATS_INTERVAL_MS: '250',
};

/**
 * The pid of the media server itself: `ferry media` started without its memory settings (as the
 * stack starts it) relaunches itself once with them, and the server is that child.
 */
function mediaServerPid(stackPid: number | undefined): number {
  assert.ok(stackPid, 'the media part runs');
  let children: string[] = [];
  try {
    children = readFileSync(`/proc/${stackPid}/task/${stackPid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    /* no such file: not relaunched */
  }
  assert.ok(children.length <= 1, `one relaunched child at most: ${children.join(' ')}`);
  return children.length === 1 ? Number(children[0]) : stackPid;
}

function signal(pid: number, sig: 'SIGSTOP' | 'SIGCONT'): void {
  process.kill(pid, sig);
}

describe('F13: a media server that stops answering with its connection open (SIGSTOP)', { timeout: 240_000 }, () => {
  const pairs: PhonePair[] = [];
  let dir = '';
  let file = '';
  let next = 0;

  before(async () => {
    pairs.push(...(await startPhonePairs(PAIRS)));
    dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-f13-'));
    file = path.join(dir, 'ferry.json');
    await writePhonePairsConfig(file, pairs);
  });
  after(async () => {
    await closePhonePairs(pairs);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** what one stack's tests use */
  function helpers(stack: () => Stack) {
    async function metrics(): Promise<string> {
      const res = await fetch(`http://127.0.0.1:${stack().httpPort}/metrics`, { headers: { Authorization: `Bearer ${TEST_API_TOKEN}` } });
      return res.text();
    }
    function metric(text: string, name: string, url: string): number | undefined {
      const line = text.split('\n').find((l) => l.startsWith(`${name}{url="${url}"} `));
      return line === undefined ? undefined : Number(line.split(' ').pop());
    }
    async function flowing(p: PhonePair, since: number, what: string): Promise<void> {
      await waitFor(async () => (await p.callee.media.rtpReceivedBetween(since, Date.now())) > 20, 15_000, 50, `${what}: RTP at the callee`);
      await waitFor(async () => (await p.caller.media.rtpReceivedBetween(since, Date.now())) > 20, 15_000, 50, `${what}: RTP at the caller`);
    }
    async function recordOf(index: number): Promise<CallRecord> {
      const { calls } = await getJson<{ calls: { id: string; caller: { party: string } }[] }>(stack().httpPort, '/api/calls?state=all');
      const mine = calls.filter((c) => c.caller.party === `caller${index}`);
      assert.ok(mine.length > 0, `the gateway lists the call of pair ${index}`);
      return getJson<CallRecord>(stack().httpPort, `/api/calls/${mine[mine.length - 1]!.id}`);
    }
    async function placeCall(): Promise<{ index: number; pair: PhonePair; record: CallRecord }> {
      const index = next++;
      assert.ok(index < PAIRS, 'enough phone pairs');
      const pair = pairs[index]!;
      const since = Date.now();
      await pair.caller.call(`sip:7${index}@127.0.0.1:${stack().sipPort}`, { host: '127.0.0.1', port: stack().sipPort });
      await flowing(pair, since, `call ${index}`);
      const record = await recordOf(index);
      assert.equal(record.state, 'answered');
      return { index, pair, record };
    }
    const byesSince = (p: PhonePair, since: number): number =>
      [p.caller, p.callee].reduce((n, phone) => n + phone.received.filter((r) => r.method === 'BYE' && r.at >= since).length, 0);
    const gatewayLines = (text: string): number => stack().output.filter((l) => l.startsWith('[gateway]') && l.includes(text)).length;
    /** both phones of the pair BYEd with media-lost since `since`; returns the later BYE's time */
    async function bothToldMediaLost(p: PhonePair, since: number): Promise<number> {
      let last = 0;
      for (const phone of [p.caller, p.callee]) {
        const bye = await phone.waitForRequest('BYE', BOUND_MS + 10_000, since);
        assert.match(bye.message.headers.get('reason')?.[0] ?? '', /media-lost/, 'the BYE says why');
        last = Math.max(last, bye.at);
      }
      await p.caller.media.stopMedia();
      await p.callee.media.stopMedia();
      return last;
    }
    return { metrics, metric, flowing, placeCall, byesSince, gatewayLines, bothToldMediaLost };
  }

  describe('one media server', () => {
    let stack: Stack | undefined;
    const s = () => stack!;
    const h = helpers(s);
    const url = (): string => `ws://127.0.0.1:${s().mediaPort}/kurento`;
    const pipelines = async (): Promise<number> => (await getJson<{ pipelines: number }>(s().mediaPort, '/stats')).pipelines;

    before(async () => {
      stack = await startStack({ env: { FERRY_SIP_CONFIG: file }, partEnv: { gateway: GATEWAY_ENV } });
    });
    after(async () => {
      // a stopped process takes no SIGTERM until it is continued
      const pid = stack?.pid('media');
      if (pid) process.kill(mediaServerPid(pid), 'SIGCONT');
      if (process.env.FERRY_TEST_DUMP) console.log(stack?.output.filter((l) => l.startsWith('[gateway')).slice(-80).join('\n'));
      await stack?.stop();
    });

    test(`F13b: SIGSTOP for half the bound (${PING_TIMEOUT_MS / 2} ms), then SIGCONT: no BYE within ${BOUND_MS} ms of the stop, the call stays answered, RTP both ways after the resume, a normal hang-up later`, async () => {
      const call = await h.placeCall();
      const linesBefore = h.gatewayLines('media server not answering');
      const stoppedAt = Date.now();
      signal(mediaServerPid(s().pid('media')), 'SIGSTOP');
      // the pause itself is what is measured: it must really last half the bound
      await waitFor(() => Date.now() >= stoppedAt + PING_TIMEOUT_MS / 2, PING_TIMEOUT_MS, 20, 'half the bound passed');
      signal(mediaServerPid(s().pid('media')), 'SIGCONT');
      const resumedAt = Date.now();
      // the pause was real: the stopped server relayed nothing (RTP already in flight aside)
      const relayedDuringPause = await call.pair.callee.media.rtpReceivedBetween(stoppedAt + 200, resumedAt);
      assert.ok(relayedDuringPause <= 2, `RTP relayed while stopped: ${relayedDuringPause} packets`);
      await h.flowing(call.pair, resumedAt, 'after the resume');
      // past everything that could end the call (bound + one ping interval + grace + margin)
      await waitFor(() => Date.now() >= stoppedAt + BOUND_MS, BOUND_MS + 5000, 50, 'the bound, the grace and a margin passed');
      assert.equal(h.byesSince(call.pair, stoppedAt), 0, 'no BYE at either phone');
      assert.equal(h.gatewayLines('media server not answering'), linesBefore, 'the gateway never took the server for deaf');
      const record = await getJson<CallRecord>(s().httpPort, `/api/calls/${call.record.id}`);
      assert.equal(record.state, 'answered');
      assert.equal(h.metric(await h.metrics(), 'ferry_media_server_up', url()), 1, 'the server stayed up in /metrics');
      await h.flowing(call.pair, Date.now(), 'at the end of the window');

      const hangupAt = await call.pair.caller.hangup();
      await call.pair.callee.waitForRequest('BYE', 5000, hangupAt);
      await call.pair.caller.media.stopMedia();
      await call.pair.callee.media.stopMedia();
      const ended = await waitFor(async () => {
        const r = await getJson<CallRecord>(s().httpPort, `/api/calls/${call.record.id}`);
        return r.state === 'ended' ? r : undefined;
      }, 5000, 50, 'the call ended by the hang-up');
      assert.equal(ended.reason, 'sip-bye');
      await waitFor(async () => (await pipelines()) === 0, 5000, 50, 'the pipeline released');
      console.log(`# F13b: ${resumedAt - stoppedAt} ms pause; no BYE in the ${BOUND_MS} ms after the stop; RTP both ways after the resume`);
    });

    test(`F13a: SIGSTOP past the bound: both parties BYEd (media-lost) between ${PING_TIMEOUT_MS} and ${BOUND_MS} ms after the stop; a new call meanwhile gets 503; after SIGCONT the pipeline is released and a new call connects`, async () => {
      const gatewayPid = s().pid('gateway');
      const call = await h.placeCall();
      assert.equal(call.record.media.mediaUrl, url());
      const stoppedAt = Date.now();
      signal(mediaServerPid(s().pid('media')), 'SIGSTOP');
      const toldAt = await h.bothToldMediaLost(call.pair, stoppedAt);
      const record = await waitFor(async () => {
        const r = await getJson<CallRecord>(s().httpPort, `/api/calls/${call.record.id}`);
        return r.state === 'ended' ? r : undefined;
      }, 5000, 50, 'the call ended in the gateway');
      assert.equal(record.reason, 'media-lost');
      assert.ok(toldAt - stoppedAt >= PING_TIMEOUT_MS, `not before the bound: ${toldAt - stoppedAt} ms`);
      assert.ok(toldAt - stoppedAt < BOUND_MS, `both parties told ${toldAt - stoppedAt} ms after the stop (bound ${BOUND_MS} ms)`);
      assert.ok(h.gatewayLines('media server not answering') >= 1, 'the gateway says why');
      const m = await h.metrics();
      assert.equal(h.metric(m, 'ferry_media_server_up', url()), 0, '/metrics: the server is down');
      assert.equal(h.metric(m, 'ferry_media_server_calls', url()), 0, '/metrics: no call on it');
      assert.equal(h.metric(m, 'ferry_media_server_unanswered_total', url()), 1, '/metrics: dropped once as not answering (F13b\'s shorter stop was not counted)');

      // skipped for new calls while it does not answer
      const index = next++;
      const refused = await pairs[index]!.caller.call(`sip:7${index}@127.0.0.1:${s().sipPort}`, { host: '127.0.0.1', port: s().sipPort }).then(
        () => assert.fail('the call was answered'),
        (err: { status?: number; headers?: Map<string, string[]> }) => err,
      );
      assert.equal(refused.status, 503);
      assert.match(refused.headers?.get('retry-after')?.[0] ?? '', /^\d+$/);

      // positive control: it answers again, and is used again
      signal(mediaServerPid(s().pid('media')), 'SIGCONT');
      const resumedAt = Date.now();
      await waitFor(async () => h.metric(await h.metrics(), 'ferry_media_server_up', url()) === 1, 10_000, 50, 'the server up again in /metrics');
      await waitFor(async () => (await pipelines()) === 0, 10_000, 50, "the ended call's pipeline released on the resumed server");
      const upAt = Date.now();
      const second = await h.placeCall();
      assert.equal(second.record.media.mediaUrl, url());
      const hangupAt = await second.pair.caller.hangup();
      await second.pair.callee.waitForRequest('BYE', 5000, hangupAt);
      await second.pair.caller.media.stopMedia();
      await second.pair.callee.media.stopMedia();
      await waitFor(async () => (await pipelines()) === 0, 5000, 50, 'the new call released');
      assert.equal(s().pid('gateway'), gatewayPid, 'same gateway process');
      console.log(`# F13a: both parties told ${toldAt - stoppedAt} ms after SIGSTOP (bound ${PING_TIMEOUT_MS} ms, grace ${GRACE_MS} ms); up again ${upAt - resumedAt} ms after SIGCONT`);
    });
  });

  describe('two media servers, one stopped', () => {
    let stack: Stack | undefined;
    let mediaB: MediaServerProcess | undefined;
    let portA = 0;
    const s = () => stack!;
    const h = helpers(s);
    const urlA = (): string => `ws://127.0.0.1:${portA}/kurento`;
    const urlB = (): string => mediaB!.url;

    before(async () => {
      mediaB = await MediaServerProcess.start();
      portA = await freePort({ protocols: ['tcp'] });
      stack = await startStack({
        env: { FERRY_SIP_CONFIG: file },
        partEnv: {
          media: { FERRY_MEDIA_PORT: String(portA) },
          gateway: { ...GATEWAY_ENV, FERRY_MEDIA_URL: `ws://127.0.0.1:${portA}/kurento, ${mediaB.url}` },
        },
      });
    });
    after(async () => {
      const pid = stack?.pid('media');
      if (pid) process.kill(mediaServerPid(pid), 'SIGCONT');
      if (process.env.FERRY_TEST_DUMP) console.log(stack?.output.filter((l) => l.startsWith('[gateway')).slice(-80).join('\n'));
      await stack?.stop();
      await mediaB?.stop();
    });

    test(`F13c: one of two media servers SIGSTOPped: only its call ends (both parties BYEd < ${BOUND_MS} ms), the other server's call keeps RTP both ways with no BYE, the next call goes to the other server`, async () => {
      await waitFor(async () => {
        const m = await h.metrics();
        return h.metric(m, 'ferry_media_server_up', urlA()) === 1 && h.metric(m, 'ferry_media_server_up', urlB()) === 1;
      }, 15_000, 100, 'both media servers up in /metrics');
      const calls = [await h.placeCall(), await h.placeCall()];
      const onA = calls.find((c) => c.record.media.mediaUrl === urlA());
      const onB = calls.find((c) => c.record.media.mediaUrl === urlB());
      assert.ok(onA && onB, `one call on each server: ${calls.map((c) => c.record.media.mediaUrl).join(', ')}`);

      const stoppedAt = Date.now();
      signal(mediaServerPid(s().pid('media')), 'SIGSTOP');
      const toldAt = await h.bothToldMediaLost(onA.pair, stoppedAt);
      assert.ok(toldAt - stoppedAt >= PING_TIMEOUT_MS, `not before the bound: ${toldAt - stoppedAt} ms`);
      assert.ok(toldAt - stoppedAt < BOUND_MS, `A's call: both parties told ${toldAt - stoppedAt} ms after the stop`);
      const endedA = await waitFor(async () => {
        const r = await getJson<CallRecord>(s().httpPort, `/api/calls/${onA.record.id}`);
        return r.state === 'ended' ? r : undefined;
      }, 5000, 50, "A's call ended");
      assert.equal(endedA.reason, 'media-lost');

      // in the same window as A's BYEs (the positive control), B's call got none and still carries RTP
      assert.equal(h.byesSince(onB.pair, stoppedAt), 0, "no BYE to B's call");
      await h.flowing(onB.pair, Date.now(), "B's call after A was taken for lost");
      assert.equal((await getJson<CallRecord>(s().httpPort, `/api/calls/${onB.record.id}`)).state, 'answered');
      assert.equal(h.metric(await h.metrics(), 'ferry_media_server_up', urlA()), 0, '/metrics: A down');

      const third = await h.placeCall();
      assert.equal(third.record.media.mediaUrl, urlB(), 'the new call goes to the server that answers');
      assert.equal((await mediaB!.stats()).pipelines, 2);
      console.log(`# F13c: A's call told ${toldAt - stoppedAt} ms after SIGSTOP; B's call untouched; the next call went to B`);

      // A answers again once continued
      signal(mediaServerPid(s().pid('media')), 'SIGCONT');
      await waitFor(async () => h.metric(await h.metrics(), 'ferry_media_server_up', urlA()) === 1, 10_000, 50, 'A up again in /metrics');
      for (const c of [onB, third]) {
        const at = await c.pair.caller.hangup();
        await c.pair.callee.waitForRequest('BYE', 5000, at);
        await c.pair.caller.media.stopMedia();
        await c.pair.callee.media.stopMedia();
      }
      await waitFor(async () => (await mediaB!.stats()).pipelines === 0, 5000, 50, "B's pipelines released");
    });
  });
});
