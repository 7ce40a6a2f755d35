import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../helpers/free-port';
import { MediaServerProcess } from '../helpers/media-server-process';
import { closePhonePairs, startPhonePairs, writePhonePairsConfig, type PhonePair } from '../helpers/trunk-phone-pairs';
import { getJson, startStack, TEST_API_TOKEN, waitFor, type Stack } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * A gateway started with two media servers while the second is not running yet (docs/gateway.md,
 * "Several media servers"): it starts on the first, new calls go there, the second shows down in
 * /metrics; once the second is started on its port the gateway connects to it on its own and the
 * next call goes there (fewer pipelines). Peers: scripted SIP/RTP phones, phone to phone.
 */
type Pair = PhonePair;

describe('several media servers: one not running when the gateway starts', { timeout: 180_000 }, () => {
  let stack: Stack | undefined;
  let mediaB: MediaServerProcess | undefined;
  let portA = 0;
  let portB = 0;
  let dir = '';
  const pairs: Pair[] = [];

  before(async () => {
    pairs.push(...(await startPhonePairs(2)));
    dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-media-servers-start-'));
    const file = path.join(dir, 'ferry.json');
    await writePhonePairsConfig(file, pairs);
    portA = await freePort({ protocols: ['tcp'] });
    portB = await freePort({ protocols: ['tcp'] });
    // the stack's own media server is A; nothing listens on B's port yet
    stack = await startStack({
      env: { FERRY_SIP_CONFIG: file },
      partEnv: {
        media: { FERRY_MEDIA_PORT: String(portA) },
        gateway: { FERRY_MEDIA_URL: `ws://127.0.0.1:${portA}/kurento,ws://127.0.0.1:${portB}/kurento`, FERRY_GATEWAY_MEDIA_STATS_INTERVAL_MS: '250' },
      },
    });
  });

  after(async () => {
    await closePhonePairs(pairs);
    if (process.env.FERRY_TEST_DUMP) console.log(stack?.output.slice(-120).join('\n'));
    await stack?.stop();
    await mediaB?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const urlA = (): string => `ws://127.0.0.1:${portA}/kurento`;
  const urlB = (): string => `ws://127.0.0.1:${portB}/kurento`;
  async function metric(name: string, url: string): Promise<number | undefined> {
    const text = await (await fetch(`http://127.0.0.1:${stack!.httpPort}/metrics`, { headers: { Authorization: `Bearer ${TEST_API_TOKEN}` } })).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{url="${url}"} `));
    return line === undefined ? undefined : Number(line.split(' ').pop());
  }
  async function call(i: number): Promise<CallRecord> {
    const p = pairs[i]!;
    const since = Date.now();
    await p.caller.call(`sip:7${i}@127.0.0.1:${stack!.sipPort}`, { host: '127.0.0.1', port: stack!.sipPort });
    await waitFor(async () => (await p.callee.media.rtpReceivedBetween(since, Date.now())) > 20, 15_000, 50, `call ${i}: RTP at the callee`);
    await waitFor(async () => (await p.caller.media.rtpReceivedBetween(since, Date.now())) > 20, 15_000, 50, `call ${i}: RTP at the caller`);
    const { calls } = await getJson<{ calls: { id: string; caller: { party: string } }[] }>(stack!.httpPort, '/api/calls');
    const id = calls.find((c) => c.caller.party === `caller${i}`)?.id;
    assert.ok(id, `call ${i} listed`);
    return getJson<CallRecord>(stack!.httpPort, `/api/calls/${id}`);
  }

  test('started without B: calls go to A; B started later is connected to and takes the next call', async () => {
    assert.equal(await metric('ferry_media_server_up', urlA()), 1);
    assert.equal(await metric('ferry_media_server_up', urlB()), 0, 'B shown down');
    assert.ok(stack!.output.some((l) => l.startsWith('[gateway]') && l.includes('not answering at start')), 'the gateway said B did not answer');
    const first = await call(0);
    assert.equal(first.media.mediaUrl, urlA());
    mediaB = await MediaServerProcess.start({ FERRY_MEDIA_PORT: String(portB) });
    await waitFor(async () => (await metric('ferry_media_server_up', urlB())) === 1, 20_000, 100, 'B up in /metrics');
    const second = await call(1);
    assert.equal(second.media.mediaUrl, urlB(), 'the next call goes to B (fewer pipelines)');
    assert.equal((await mediaB.stats()).pipelines, 1);
    assert.equal((await getJson<{ pipelines: number }>(portA, '/stats')).pipelines, 1);
    for (const p of pairs) {
      const at = await p.caller.hangup();
      await p.callee.waitForRequest('BYE', 5000, at);
      await p.caller.media.stopMedia();
      await p.callee.media.stopMedia();
    }
    await waitFor(async () => (await mediaB!.stats()).pipelines === 0, 5000, 50, "B's pipeline released");
  });
});
