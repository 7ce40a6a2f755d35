import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { digestAnswer, SipRawClient, type SipResponse } from '../helpers/sip-raw-client';
import { startStack, type Stack } from '../helpers/stack';
import { removeTestKeys } from '../helpers/redis-test-keys';

/**
 * Two gateways on one SIP engine and one Redis: ferry sip deals new REGISTERs to them in turn, so
 * consecutive REGISTERs land on alternate gateways. A nonce answered at one and replayed at the
 * other must be refused: the nonce counts live in Redis, not in one gateway's memory.
 */
const REDIS_URL = 'redis://127.0.0.1:6379';

describe('digest replay across gateways sharing Redis', { timeout: 120_000 }, () => {
  let stack: Stack;
  let dir: string;
  let redis: Redis;
  let client: SipRawClient | undefined;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'ferry-auth2-'));
    writeFileSync(path.join(dir, 'ferry.json'), JSON.stringify({ domain: 'ferry.local', users: [{ user: 'alice', password: 'alice-2gw-secret' }] }));
    stack = await startStack({ redisUrl: REDIS_URL, secondGateway: true, partEnv: { gateway: { FERRY_SIP_CONFIG: path.join(dir, 'ferry.json') } } });
    redis = new Redis(REDIS_URL);
  });

  after(async () => {
    client?.close();
    if (redis && stack) await removeTestKeys(redis, stack.redisPrefix);
    await stack?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** which gateway logged `message` (with `extra` in the line) since output line `from` */
  const loggedBy = (from: number, message: string, extra = ''): string[] =>
    stack.output
      .slice(from)
      .filter((l) => l.includes(`"message":"${message}"`) && l.includes(extra))
      .map((l) => /^\[(gateway2?)\]/.exec(l)?.[1] ?? '?');

  test('digest: a nonce answered at one gateway and replayed at the other is refused (shared Redis)', async () => {
    client = await SipRawClient.open('udp', stack.sipPort);
    const uri = 'sip:ferry.local';
    const mark = stack.output.length;
    const challenge = await client.request({ method: 'REGISTER', uri, fromUser: 'alice', expires: 600 });
    assert.equal(challenge.status, 401);
    const authorization = digestAnswer(challenge.header('WWW-Authenticate')!, { user: 'alice', password: 'alice-2gw-secret', method: 'REGISTER', uri });
    const ok = await client.request({ method: 'REGISTER', uri, fromUser: 'alice', expires: 600, authorization, cseq: 2 });
    assert.equal(ok.status, 200, 'answered at one gateway (positive control: the nonce one issued is good at the other or the same)');
    const registeredAt = loggedBy(mark, 'registered');
    assert.equal(registeredAt.length, 1);
    // replay until a replay has reached the other gateway (ferry sip deals REGISTERs in turn: the next one)
    let refusedByOther = false;
    for (let attempt = 0; attempt < 6 && !refusedByOther; attempt++) {
      const replay: SipResponse = await client.request({ method: 'REGISTER', uri, fromUser: 'alice', expires: 600, authorization, cseq: 3 + attempt });
      assert.equal(replay.status, 401, `replay ${attempt + 1}: challenged again`);
      refusedByOther = loggedBy(mark, 'authentication failed', '"kind":"replay"').some((gw) => gw !== registeredAt[0]);
    }
    assert.ok(refusedByOther, `accepted at ${registeredAt[0]}, a replay refused at the other gateway`);
    assert.equal(loggedBy(mark, 'registered').length, 1, 'no replay registered anywhere');
    assert.equal(Object.keys(await redis.hgetall(`${stack.redisPrefix}reg:alice`)).length, 1, 'one binding');
  });
});
