import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../helpers/free-port';
import { MediaServerProcess } from '../helpers/media-server-process';
import { RtpPhone } from '../helpers/rtp-phone';
import { SipPhone } from '../helpers/sip-phone';
import { closePhonePairs, startPhonePairs, writePhonePairsConfig, type PhonePair } from '../helpers/trunk-phone-pairs';
import { getJson, startStack, TEST_API_TOKEN, waitFor, type Stack } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * One gateway, two media servers (docs/gateway.md, "Several media servers"): ferry sip, two
 * `ferry media` processes (A is the stack's, on a port chosen up front so it restarts there; B a
 * process of its own) and `ferry gateway` with FERRY_MEDIA_URL naming both. The peers are scripted
 * IP phones (SIP over UDP + RTP at 50 packets/s, test/helpers/sip-phone.ts): caller i is trunk
 * `caller<i>` and dials 7<i>, which rings callee i (trunk `callee<i>`); every call is phone to phone
 * through a pipeline on one of the media servers.
 *
 * Asserted: calls spread over both servers (pipelines counted on each server's /stats, the records'
 * mediaUrl); server A SIGKILLed mid-call ends only A's calls, both parties of each BYEd with
 * `media-lost`, while B's calls still carry RTP both ways (packets counted) and stay answered; the
 * next new call goes to B; A restarted is used again; a draining server (ferry media's POST /drain)
 * gets no new calls; DTMF and a blind transfer of a call on B (REST API) are done on B (its RFC 4733
 * events reach the party, the new party gets RTP, the pipeline stays on B); both servers down: 503
 * with a Warning saying no media server.
 */
const PAIRS = 10;

type Pair = PhonePair;

describe('several media servers: placement by load, one server dies, draining', { timeout: 240_000 }, () => {
  let stack: Stack | undefined;
  let mediaB: MediaServerProcess | undefined;
  let portA = 0;
  let dir = '';
  const pairs: Pair[] = [];
  let next = 0;

  before(async () => {
    pairs.push(...(await startPhonePairs(PAIRS)));
    dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-media-servers-'));
    const file = path.join(dir, 'ferry.json');
    await writePhonePairsConfig(file, pairs);
    mediaB = await MediaServerProcess.start();
    portA = await freePort({ protocols: ['tcp'] });
    stack = await startStack({
      env: { FERRY_SIP_CONFIG: file },
      partEnv: {
        media: { FERRY_MEDIA_PORT: String(portA) },
        gateway: { FERRY_MEDIA_URL: `ws://127.0.0.1:${portA}/kurento, ${mediaB.url}`, FERRY_GATEWAY_MEDIA_STATS_INTERVAL_MS: '250' },
      },
    });
  });

  after(async () => {
    await closePhonePairs(pairs);
    if (process.env.FERRY_TEST_DUMP) console.log(stack?.output.filter((l) => l.startsWith('[gateway')).slice(-120).join('\n'));
    await stack?.stop();
    await mediaB?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const urlA = (): string => `ws://127.0.0.1:${portA}/kurento`;
  const urlB = (): string => mediaB!.url;
  const pipelinesA = async (): Promise<number> => (await getJson<{ pipelines: number }>(portA, '/stats')).pipelines;
  const pipelinesB = async (): Promise<number> => (await mediaB!.stats()).pipelines;
  async function metrics(): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${stack!.httpPort}/metrics`, { headers: { Authorization: `Bearer ${TEST_API_TOKEN}` } });
    return res.text();
  }
  function metric(text: string, name: string, url: string): number | undefined {
    const line = text.split('\n').find((l) => l.startsWith(`${name}{url="${url}"} `));
    return line === undefined ? undefined : Number(line.split(' ').pop());
  }
  async function recordOf(pair: number): Promise<CallRecord> {
    const { calls } = await getJson<{ calls: { id: string; caller: { party: string }; state: string }[] }>(stack!.httpPort, '/api/calls?state=all');
    const mine = calls.filter((c) => c.caller.party === `caller${pair}`);
    assert.ok(mine.length > 0, `the gateway lists the call of pair ${pair}`);
    return getJson<CallRecord>(stack!.httpPort, `/api/calls/${mine[mine.length - 1]!.id}`);
  }
  /** RTP arrives at both phones of a pair after `since` (> 20 packets each way) */
  async function flowing(p: Pair, since: number, what: string): Promise<void> {
    await waitFor(async () => (await p.callee.media.rtpReceivedBetween(since, Date.now())) > 20, 15_000, 50, `${what}: RTP at the callee`);
    await waitFor(async () => (await p.caller.media.rtpReceivedBetween(since, Date.now())) > 20, 15_000, 50, `${what}: RTP at the caller`);
  }
  /** a new call on the next fresh pair; resolves once it is answered with RTP both ways */
  async function placeCall(): Promise<{ index: number; pair: Pair; record: CallRecord }> {
    const index = next++;
    assert.ok(index < PAIRS, 'enough phone pairs');
    const pair = pairs[index]!;
    const since = Date.now();
    await pair.caller.call(`sip:7${index}@127.0.0.1:${stack!.sipPort}`, { host: '127.0.0.1', port: stack!.sipPort });
    await flowing(pair, since, `call ${index}`);
    const record = await recordOf(index);
    assert.equal(record.state, 'answered');
    return { index, pair, record };
  }
  async function hangUp(c: { pair: Pair }): Promise<void> {
    await c.pair.caller.hangup();
    await c.pair.callee.waitForRequest('BYE', 5000);
    await c.pair.caller.media.stopMedia();
    await c.pair.callee.media.stopMedia();
  }

  let live: { index: number; pair: Pair; record: CallRecord }[] = [];

  test('calls spread over both media servers: two on each (pipelines on each /stats, the records name the server), RTP both ways in every call', async () => {
    await waitFor(async () => {
      const m = await metrics();
      return metric(m, 'ferry_media_server_up', urlA()) === 1 && metric(m, 'ferry_media_server_up', urlB()) === 1;
    }, 15_000, 100, 'both media servers up in /metrics');
    for (let i = 0; i < 4; i++) live.push(await placeCall());
    assert.equal(await pipelinesA(), 2, 'two pipelines on A');
    assert.equal(await pipelinesB(), 2, 'two pipelines on B');
    const onA = live.filter((c) => c.record.media.mediaUrl === urlA());
    const onB = live.filter((c) => c.record.media.mediaUrl === urlB());
    assert.equal(onA.length, 2, `records naming A: ${live.map((c) => c.record.media.mediaUrl).join(', ')}`);
    assert.equal(onB.length, 2);
    const m = await metrics();
    assert.equal(metric(m, 'ferry_media_server_calls_placed_total', urlA()), 2, m);
    assert.equal(metric(m, 'ferry_media_server_calls_placed_total', urlB()), 2);
    assert.equal(metric(m, 'ferry_media_server_calls', urlA()), 2);
    assert.equal(metric(m, 'ferry_media_server_draining', urlB()), 0);
    await waitFor(async () => metric(await metrics(), 'ferry_media_server_pipelines', urlB()) === 2, 5000, 100, '/metrics shows B\'s pipelines');
  });

  test('media server A SIGKILLed mid-call: only its calls end (both parties BYEd, media-lost); B\'s calls keep RTP both ways and stay answered; the next call goes to B', async () => {
    const onA = live.filter((c) => c.record.media.mediaUrl === urlA());
    const onB = live.filter((c) => c.record.media.mediaUrl === urlB());
    assert.equal(onA.length, 2);
    const gatewayPid = stack!.pid('gateway');
    const killedAt = Date.now();
    await stack!.kill('media', 'SIGKILL');
    for (const c of onA) {
      for (const phone of [c.pair.caller, c.pair.callee]) {
        const bye = await phone.waitForRequest('BYE', 10_000, killedAt);
        assert.match(bye.message.headers.get('reason')?.[0] ?? '', /media-lost/, `call ${c.index}: the BYE says why`);
      }
      await c.pair.caller.media.stopMedia();
      await c.pair.callee.media.stopMedia();
      const rec = await waitFor(async () => {
        const r = await getJson<CallRecord>(stack!.httpPort, `/api/calls/${c.record.id}`);
        return r.state === 'ended' ? r : undefined;
      }, 5000, 50, `call ${c.index} ended`);
      assert.equal(rec.reason, 'media-lost');
    }
    const byesAt = Date.now();
    // in the same window as the BYEs above (positive control), B's calls got none and still carry RTP
    for (const c of onB) {
      assert.equal(c.pair.caller.received.filter((r) => r.method === 'BYE' && r.at >= killedAt).length, 0, `call ${c.index} on B: no BYE to the caller`);
      assert.equal(c.pair.callee.received.filter((r) => r.method === 'BYE' && r.at >= killedAt).length, 0, `call ${c.index} on B: no BYE to the callee`);
      await flowing(c.pair, byesAt, `call ${c.index} on B after A died`);
      assert.equal((await getJson<CallRecord>(stack!.httpPort, `/api/calls/${c.record.id}`)).state, 'answered');
    }
    assert.equal(await pipelinesB(), 2);
    assert.equal(stack!.pid('gateway'), gatewayPid, 'same gateway process');
    assert.equal(metric(await metrics(), 'ferry_media_server_up', urlA()), 0, '/metrics shows A down');
    // the next new call goes to the survivor
    const survivor = await placeCall();
    assert.equal(survivor.record.media.mediaUrl, urlB());
    assert.equal(await pipelinesB(), 3);
    await hangUp(survivor);
    await waitFor(async () => (await pipelinesB()) === 2, 5000, 50, 'the survivor call released on B');
    console.log(`# media-servers: A SIGKILLed -> both parties of its ${onA.length} calls BYEd within ${byesAt - killedAt} ms; ${onB.length} calls on B kept RTP`);
    live = onB;
  });

  test('media server A restarted: it is used again (the next call goes to A, which has fewer pipelines)', async () => {
    await stack!.restart('media');
    await waitFor(async () => metric(await metrics(), 'ferry_media_server_up', urlA()) === 1, 15_000, 100, 'A up again in /metrics');
    const back = await placeCall();
    assert.equal(back.record.media.mediaUrl, urlA());
    assert.equal(await pipelinesA(), 1);
    live.push(back);
  });

  test('a draining media server (POST /drain) gets no new calls; undrained, it does again', async (t) => {
    const drain = await fetch(`http://127.0.0.1:${portA}/drain`, { method: 'POST' }).catch(() => undefined);
    if (!drain || drain.status === 404 || drain.status === 405) {
      t.skip('ferry media has no POST /drain in this tree yet');
      return;
    }
    assert.ok(drain.ok, `POST /drain: ${drain.status}`);
    await waitFor(async () => metric(await metrics(), 'ferry_media_server_draining', urlA()) === 1, 10_000, 100, 'A draining in /metrics');
    // A has 1 pipeline and B 2: by load the call would go to A; draining, it goes to B
    const c = await placeCall();
    assert.equal(c.record.media.mediaUrl, urlB(), 'a new call avoids the draining server');
    assert.equal(await pipelinesA(), 1, 'no new pipeline on the draining server');
    live.push(c);
    // positive control: undrained, A (fewest pipelines) takes the next call
    const undrain = await fetch(`http://127.0.0.1:${portA}/undrain`, { method: 'POST' });
    assert.ok(undrain.ok, `POST /undrain: ${undrain.status}`);
    await waitFor(async () => metric(await metrics(), 'ferry_media_server_draining', urlA()) === 0, 10_000, 100, 'A not draining in /metrics');
    const d = await placeCall();
    assert.equal(d.record.media.mediaUrl, urlA());
    live.push(d);
  });

  test('DTMF and a blind transfer of a call on B are done on B: RFC 4733 events reach the party, the new party hears the one who stayed, the pipeline stays on B', async () => {
    const onB = live.find((c) => c.record.media.mediaUrl === urlB());
    assert.ok(onB, 'a live call on B');
    const auth = { Authorization: `Bearer ${TEST_API_TOKEN}`, 'Content-Type': 'application/json' };
    const callerRtp = onB.pair.caller.media as unknown as RtpPhone;
    const before = callerRtp.telephoneEvents().length;
    const dtmf = await fetch(`http://127.0.0.1:${stack!.httpPort}/api/calls/${onB.record.id}/dtmf`, { method: 'POST', headers: auth, body: JSON.stringify({ digits: '5#', party: 'caller' }) });
    assert.equal(dtmf.status, 200, await dtmf.clone().text());
    assert.equal(((await dtmf.json()) as { method: string }).method, 'rfc4733');
    await waitFor(() => new Set(callerRtp.telephoneEvents().slice(before).map((e) => e.event)).size === 2, 10_000, 50, 'events 5 and # at the caller');
    const [pA, pB] = [await pipelinesA(), await pipelinesB()];
    // the callee is transferred away: the caller is connected to pair 9's callee (dialled 79)
    const target = pairs[9]!.callee;
    const since = Date.now();
    const transfer = await fetch(`http://127.0.0.1:${stack!.httpPort}/api/calls/${onB.record.id}/transfer`, { method: 'POST', headers: auth, body: JSON.stringify({ target: '79', keep: 'caller' }) });
    assert.ok(transfer.ok, `transfer: ${transfer.status} ${await transfer.text()}`);
    await onB.pair.callee.waitForRequest('BYE', 10_000, since);
    await onB.pair.callee.media.stopMedia();
    await waitFor(async () => (await target.media.rtpReceivedBetween(since, Date.now())) > 20, 15_000, 50, 'RTP from the caller at the new party');
    const heardFrom = Date.now();
    await waitFor(async () => (await onB.pair.caller.media.rtpReceivedBetween(heardFrom, Date.now())) > 20, 15_000, 50, 'RTP from the new party at the caller');
    assert.equal(await pipelinesB(), pB, 'the same pipeline on B');
    assert.equal(await pipelinesA(), pA, 'nothing on A');
    const rec = await getJson<CallRecord>(stack!.httpPort, `/api/calls/${onB.record.id}`);
    assert.equal(rec.media.mediaUrl, urlB());
    assert.equal(rec.callee.party, 'callee9');
    // the caller hangs up: the new party is told, B's pipeline goes
    const at = await onB.pair.caller.hangup();
    await target.waitForRequest('BYE', 5000, at);
    await onB.pair.caller.media.stopMedia();
    await target.media.stopMedia();
    await waitFor(async () => (await pipelinesB()) === pB - 1, 5000, 50, "the transferred call's pipeline released on B");
    live = live.filter((c) => c !== onB);
  });

  test('every media server down: a new call gets 503 with a Warning saying no media server, and a log line', async () => {
    for (const c of live) await hangUp(c);
    live = [];
    await stack!.kill('media', 'SIGKILL');
    await mediaB!.stop();
    await waitFor(async () => {
      const m = await metrics();
      return metric(m, 'ferry_media_server_up', urlA()) === 0 && metric(m, 'ferry_media_server_up', urlB()) === 0;
    }, 10_000, 100, 'both down in /metrics');
    const index = 8;
    const refused = await pairs[index]!.caller.call(`sip:7${index}@127.0.0.1:${stack!.sipPort}`, { host: '127.0.0.1', port: stack!.sipPort }).then(
      () => assert.fail('the call was answered'),
      (err: { status?: number; headers?: Map<string, string[]> }) => err,
    );
    assert.equal(refused.status, 503);
    assert.match(refused.headers?.get('warning')?.[0] ?? '', /no media server available/);
    assert.match(refused.headers?.get('retry-after')?.[0] ?? '', /^\d+$/);
    // the gateway's log reaches this process through a pipe: it may arrive just after the 503 does
    await waitFor(() => stack!.output.some((l) => l.startsWith('[gateway]') && l.includes('call refused: no media server available')), 5000, 25, 'a log line says why');
  });
});
