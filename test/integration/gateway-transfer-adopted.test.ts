import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { SipPhone } from '../helpers/sip-phone';
import { RtpPhone } from '../helpers/rtp-phone';
import { getJson, startStack, waitFor, type Stack } from '../helpers/stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * Transfer and adoption (docs/transfer.md, "The record and the events"), on Redis: a call adopted by a
 * restarted gateway is transferred by REFER (the REFER reaches the adopted dialog), and the transferred
 * call — its record now naming the new party and endpoint — is adopted again after a second restart and
 * ends cleanly (BYE to the new party, pipeline released).
 */
describe('gateway transfer of an adopted call (Redis)', { timeout: 90_000 }, () => {
  let stack: Stack;
  let dir: string;
  let redis: Redis;
  const a = new SipPhone(new RtpPhone(), { user: 'a' });
  const b = new SipPhone(new RtpPhone(), { user: 'b' });
  const c = new SipPhone(new RtpPhone(), { user: 'c' });

  before(async () => {
    const ports = { a: await a.start(), b: await b.start(), c: await c.start() };
    dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-transfer-adopted-'));
    const trunk = (name: keyof typeof ports): Record<string, unknown> => ({ name, address: `127.0.0.1:${ports[name]}`, transport: 'udp', acceptFrom: [`127.0.0.1:${ports[name]}`] });
    const config = {
      domain: 'ferry.local',
      users: [],
      trunks: [trunk('a'), trunk('b'), trunk('c')],
      routes: [
        { match: '7(\\d+)', to: 'trunk:b', rewrite: '$1' },
        { match: '8(\\d+)', to: 'trunk:c', rewrite: '$1' },
      ],
    };
    const file = path.join(dir, 'ferry.json');
    await writeFile(file, JSON.stringify(config, null, 2));
    stack = await startStack({ redisUrl: 'redis://127.0.0.1:6379', partEnv: { gateway: { FERRY_SIP_CONFIG: file, FERRY_CALL_RECORD_TTL_MS: '60000' } } });
    redis = new Redis('redis://127.0.0.1:6379');
  });

  after(async () => {
    for (const p of [a, b, c]) await p.close();
    if (redis && stack) {
      const keys = await redis.keys(`${stack.redisPrefix}*`);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
    }
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const hears = (phone: SipPhone, since: number, what: string): Promise<unknown> =>
    waitFor(async () => (await phone.media.rtpReceivedBetween(since, Date.now())) > 20, 10_000, 25, what);
  const record = (id: string): Promise<CallRecord> => getJson<CallRecord>(stack.httpPort, `/api/calls/${id}`);

  async function restartAndAdopt(id: string, nth: number): Promise<void> {
    await stack.kill('gateway', 'SIGKILL');
    await stack.restart('gateway');
    await waitFor(async () => (await record(id)).timeline.filter((e) => e.event === 'adopted').length === nth, 8000, 50, `adoption ${nth}`);
  }

  test('REFER on an adopted call transfers it; the transferred call is adopted again and ends cleanly', { timeout: 60_000 }, async () => {
    const since = Date.now();
    await a.call('sip:7100@ferry.local', { host: '127.0.0.1', port: stack.sipPort });
    await hears(a, since, 'RTP at A');
    await hears(b, since, 'RTP at B');
    const id = (await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls')).calls[0]!.id;
    await restartAndAdopt(id, 1);

    const referAt = Date.now();
    assert.equal(await b.refer('<sip:8100@ferry.local>'), 202);
    await b.waitForRequest('BYE', 10_000, referAt);
    await b.media.stopMedia();
    assert.equal(b.received.filter((m) => m.method === 'NOTIFY' && m.at >= referAt).at(-1)?.message.body, 'SIP/2.0 200 OK\r\n');
    const switched = Date.now();
    await hears(c, switched, 'RTP from A at C');
    await hears(a, switched, 'RTP from C at A');
    const stored = JSON.parse((await redis.get(`${stack.redisPrefix}call:${id}`))!) as CallRecord;
    assert.equal(stored.callee.party, 'c', 'the stored record names the new party');
    assert.equal(stored.callee.dialog?.role, 'uac');
    assert.deepEqual(stored.transfers?.map((t) => [t.kind, t.by, t.left, t.joined]), [['blind', 'callee', 'b', 'c']]);

    await restartAndAdopt(id, 2);
    const hangupAt = Date.now();
    await a.hangup();
    await a.media.stopMedia();
    await c.waitForRequest('BYE', 5000, hangupAt);
    await c.media.stopMedia();
    await waitFor(async () => (await getJson<{ pipelines: number }>(stack.mediaPort, '/stats')).pipelines === 0, 5000, 25, 'pipelines back to 0');
    const ended = await waitFor(async () => { const r = await record(id); return r.state === 'ended' ? r : undefined; }, 5000, 50, 'record ended');
    assert.equal(ended.reason, 'sip-bye');
  });
});
