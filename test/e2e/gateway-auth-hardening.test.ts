import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { freePort } from '../helpers/free-port';
import { digestAnswer, SipRawClient } from '../helpers/sip-raw-client';
import { startStack, waitFor, type Stack } from '../helpers/stack';
import { removeTestKeys } from '../helpers/redis-test-keys';

/**
 * Trunk trust and digest authentication against the real three processes on the shared Redis:
 * raw REGISTER/INVITE text over real UDP and TCP sockets, answers computed as phones compute them.
 * An INVITE that passes authentication dials `nobody` (no such user: 404), so no call is set up;
 * one that does not gets 407.
 */
const REDIS_URL = 'redis://127.0.0.1:6379';
const API_TOKEN = 'auth-hardening-test-token';
const LOCKOUT_MS = 3000;
const MAX_FAILURES = 10;
/** short, so the failures of the earlier tests have left the window when the lockout test starts */
const FAILURE_WINDOW_MS = 2500;
/** bindings one user may hold (sip-config `maxContacts`) */
const MAX_CONTACTS = 3;

describe('gateway authentication on a real network (trunks, digest replay, lockout)', { timeout: 180_000 }, () => {
  let stack: Stack;
  let dir: string;
  let trunkPort: number;
  let redis: Redis;
  const clients: SipRawClient[] = [];
  const open = async (transport: 'udp' | 'tcp', localPort = 0): Promise<SipRawClient> => {
    const c = await SipRawClient.open(transport, stack.sipPort, localPort);
    clients.push(c);
    return c;
  };
  const metrics = async (): Promise<string> =>
    (await fetch(`http://127.0.0.1:${stack.httpPort}/metrics`, { headers: { Authorization: `Bearer ${API_TOKEN}` } })).text();
  const metric = (text: string, name: string): number => Number(new RegExp(`^${name.replace(/[{}"[\]]/g, '\\$&')} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);

  before(async () => {
    trunkPort = await freePort({ protocols: ['udp', 'tcp'] });
    dir = mkdtempSync(path.join(tmpdir(), 'ferry-auth-'));
    const config = {
      domain: 'ferry.local',
      users: [
        { user: 'alice', password: 'alice-auth-secret' },
        { user: '1001', password: 'desk-1001-secret' },
      ],
      // the documented form: the trunk's host only; the port is its address's, the transport its own
      trunks: [
        { name: 'pbx', address: `127.0.0.1:${trunkPort}`, transport: 'udp', acceptFrom: ['127.0.0.1'] },
        { name: 'carrier', address: '127.0.0.1:9', inboundAuth: { username: 'carrier-in', password: 'carrier-in-secret' } },
      ],
      routes: [{ match: '9(\\d+)', to: 'trunk:pbx', rewrite: '$1' }, { match: '.*', to: 'user' }],
      maxContacts: MAX_CONTACTS,
    };
    writeFileSync(path.join(dir, 'ferry.json'), JSON.stringify(config, null, 2));
    stack = await startStack({
      redisUrl: REDIS_URL,
      partEnv: {
        gateway: {
          FERRY_SIP_CONFIG: path.join(dir, 'ferry.json'),
          FERRY_API_TOKEN: API_TOKEN,
          FERRY_AUTH_MAX_FAILURES: String(MAX_FAILURES),
          FERRY_AUTH_LOCKOUT_MS: String(LOCKOUT_MS),
          FERRY_AUTH_FAILURE_WINDOW_MS: String(FAILURE_WINDOW_MS),
          // the back-off's held answers must add up to less than the short window (9 failures: 10+20+40+80+4x100 ms)
          FERRY_AUTH_BACKOFF_MS: '10',
          FERRY_AUTH_BACKOFF_MAX_MS: '100',
          FERRY_NO_ANSWER_MS: '2000',
        },
      },
    });
    redis = new Redis(REDIS_URL);
  });

  after(async () => {
    for (const c of clients) c.close();
    if (redis && stack) await removeTestKeys(redis, stack.redisPrefix);
    await stack?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** an INVITE to `dialled`; with `password`, answered once after the 407 */
  const invite = async (c: SipRawClient, dialled: string, auth?: { user: string; password: string; uri?: string }) => {
    const uri = `sip:${dialled}@ferry.local`;
    const first = await c.request({ method: 'INVITE', uri, fromUser: auth?.user ?? '5551234' });
    if (!auth || first.status !== 407) return { first, second: undefined };
    const authorization = digestAnswer(first.header('Proxy-Authenticate')!, { user: auth.user, password: auth.password, method: 'INVITE', uri: auth.uri ?? uri });
    const second = await c.request({ method: 'INVITE', uri, fromUser: auth.user, authorization });
    return { first, second, authorization };
  };

  test('trunks: an INVITE from the trunk host over TCP, or from another UDP port, gets 407; from the trunk\'s own UDP port it is the trunk\'s', async () => {
    const trunkUdp = await open('udp', trunkPort);
    const fromTrunk = await trunkUdp.request({ method: 'INVITE', uri: 'sip:nobody@ferry.local', fromUser: '5551234' });
    assert.equal(fromTrunk.status, 404, 'positive control: the trunk\'s own source needs no password (not routed: 404)');

    const sameHostTcp = await open('tcp', trunkPort);
    assert.equal(sameHostTcp.localPort, trunkPort, 'TCP from the very port the trunk is declared on');
    assert.equal((await sameHostTcp.request({ method: 'INVITE', uri: 'sip:nobody@ferry.local', fromUser: '5551234' })).status, 407, 'TCP is not the UDP trunk');

    const otherPort = await open('udp');
    assert.notEqual(otherPort.localPort, trunkPort);
    assert.equal((await otherPort.request({ method: 'INVITE', uri: 'sip:95550100@ferry.local', fromUser: '5551234' })).status, 407, 'another port of the trunk host');
  });

  test('trunks: inbound digest credentials on a trunk are accepted as that trunk\'s, a wrong trunk password is not', async () => {
    const c = await open('udp');
    const ok = await invite(c, 'nobody', { user: 'carrier-in', password: 'carrier-in-secret' });
    assert.equal(ok.second?.status, 404, 'the carrier authenticated (then not routed)');
    const bad = await invite(c, 'nobody', { user: 'carrier-in', password: 'guess' });
    assert.equal(bad.second?.status, 407);
  });

  test('digest: a digest whose uri differs from the Request-URI is refused', async () => {
    const c = await open('udp');
    const control = await invite(c, 'nobody', { user: '1001', password: 'desk-1001-secret' });
    assert.equal(control.second?.status, 404, 'positive control: uri = Request-URI passes authentication');
    const forged = await invite(c, '9777000555', { user: '1001', password: 'desk-1001-secret', uri: 'sip:1001@ferry.local' });
    assert.equal(forged.first.status, 407);
    assert.equal(forged.second?.status, 407, 'credentials computed for sip:1001@ferry.local do not place a call to 9777000555');
  });

  test('digest: a replayed INVITE Authorization is refused', async () => {
    const c = await open('udp');
    const original = await invite(c, 'nobody', { user: '1001', password: 'desk-1001-secret' });
    assert.equal(original.second?.status, 404, 'the original passes authentication');
    const attacker = await open('udp');
    const replayed = await attacker.request({ method: 'INVITE', uri: 'sip:nobody@ferry.local', fromUser: '1001', authorization: original.authorization! });
    assert.equal(replayed.status, 407, 'the same Proxy-Authorization again');
    const again = await c.request({ method: 'INVITE', uri: 'sip:nobody@ferry.local', fromUser: '1001', authorization: original.authorization! });
    assert.equal(again.status, 407, 'from the original socket too');
  });

  test('digest: a replayed REGISTER Authorization from another port with another Contact is refused and binds nothing', async () => {
    const phone = await open('udp');
    const uri = 'sip:ferry.local';
    const challenge = await phone.request({ method: 'REGISTER', uri, fromUser: 'alice', expires: 600 });
    assert.equal(challenge.status, 401);
    const authorization = digestAnswer(challenge.header('WWW-Authenticate')!, { user: 'alice', password: 'alice-auth-secret', method: 'REGISTER', uri });
    const registered = await phone.request({ method: 'REGISTER', uri, fromUser: 'alice', expires: 600, authorization, cseq: 2 });
    assert.equal(registered.status, 200, 'positive control: the phone registers');
    const bindings = async (): Promise<string[]> => Object.keys(await redis.hgetall(`${stack.redisPrefix}reg:alice`));
    assert.deepEqual(await bindings(), [`sip:alice@127.0.0.1:${phone.localPort}`]);

    const attacker = await open('udp');
    const attackerContact = `<sip:alice@127.0.0.1:${attacker.localPort}>`;
    const replay = await attacker.request({ method: 'REGISTER', uri, fromUser: 'alice', expires: 3600, authorization, contact: attackerContact });
    assert.equal(replay.status, 401, 'replayed Authorization: challenged again');
    assert.deepEqual(await bindings(), [`sip:alice@127.0.0.1:${phone.localPort}`], "the attacker's contact is not bound");

    // the phone's own refresh with the next nonce count is fine (what phones and JsSIP do)
    const refresh = digestAnswer(challenge.header('WWW-Authenticate')!, { user: 'alice', password: 'alice-auth-secret', method: 'REGISTER', uri, nc: 2 });
    assert.equal((await phone.request({ method: 'REGISTER', uri, fromUser: 'alice', expires: 600, authorization: refresh, cseq: 3 })).status, 200, 'nc 2 on the same nonce');
    assert.equal((await phone.request({ method: 'REGISTER', uri, fromUser: 'alice', expires: 600, authorization: refresh, cseq: 4 })).status, 401, 'nc 2 again: replay');
    assert.match(stack.output.join('\n'), /"kind":"replay"/);
  });

  test(`bindings per user: a new contact beyond maxContacts (${MAX_CONTACTS}) replaces the least recently refreshed; a REGISTER listing more is refused 403`, async () => {
    const phone = await open('udp');
    const uri = 'sip:ferry.local';
    const bindings = async (): Promise<string[]> => Object.keys(await redis.hgetall(`${stack.redisPrefix}reg:1001`)).sort();
    const contact = (port: number) => `sip:1001@127.0.0.1:${port}`;
    const challenge = (await phone.request({ method: 'REGISTER', uri, fromUser: '1001' })).header('WWW-Authenticate')!;
    let nc = 0;
    let cseq = 1;
    const register = async (contacts: string[]) => {
      nc++;
      cseq++;
      const authorization = digestAnswer(challenge, { user: '1001', password: 'desk-1001-secret', method: 'REGISTER', uri, nc });
      return phone.request({ method: 'REGISTER', uri, fromUser: '1001', expires: 600, authorization, cseq, contact: contacts.map((c) => `<${c}>`).join(', ') });
    };
    // four contacts one after the other (a webphone reloaded three times without unregistering)
    for (const port of [41001, 41002, 41003]) assert.equal((await register([contact(port)])).status, 200);
    assert.deepEqual(await bindings(), [contact(41001), contact(41002), contact(41003)], 'positive control: up to the cap, all kept');
    assert.equal((await register([contact(41001)])).status, 200, 'a refresh of the oldest makes it the newest');
    assert.equal((await register([contact(41004)])).status, 200);
    assert.deepEqual(await bindings(), [contact(41001), contact(41003), contact(41004)], 'the least recently refreshed (41002) was replaced');
    const many = await register([41005, 41006, 41007, 41008].map(contact));
    assert.equal(many.status, 403);
    assert.match(many.text, /^SIP\/2\.0 403 Too Many Contacts\r\n/);
    assert.deepEqual(await bindings(), [contact(41001), contact(41003), contact(41004)], 'nothing bound by the refused REGISTER');
    assert.match(stack.output.join('\n'), /registration replaced: too many contacts/);
    assert.equal((await phone.request({ method: 'REGISTER', uri, fromUser: '1001', expires: 0, contact: '*', cseq: ++cseq, authorization: digestAnswer(challenge, { user: '1001', password: 'desk-1001-secret', method: 'REGISTER', uri, nc: ++nc }) })).status, 200);
    assert.deepEqual(await bindings(), []);
  });

  // last: it locks 127.0.0.1 out for LOCKOUT_MS
  test('digest: 50 wrong passwords lock the source out (403, metric, fail2ban log line); the right password works again after the lockout', async () => {
    // start from no counted failure (the earlier tests' failures leave with their window)
    await waitFor(async () => (await redis.exists(`${stack.redisPrefix}authfail:ip:127.0.0.1`, `${stack.redisPrefix}authfail:user:alice`)) === 0, FAILURE_WINDOW_MS + 10_000, 100, 'earlier failures out of the window');
    const before = await metrics();
    const c = await open('udp');
    const uri = 'sip:ferry.local';
    let challenge = (await c.request({ method: 'REGISTER', uri, fromUser: 'alice' })).header('WWW-Authenticate')!;
    const statuses: number[] = [];
    const answeredAt: number[] = [];
    const started = Date.now();
    for (let i = 0; i < 50; i++) {
      const authorization = digestAnswer(challenge, { user: 'alice', password: `guess-${i}`, method: 'REGISTER', uri });
      const r = await c.request({ method: 'REGISTER', uri, fromUser: 'alice', authorization, cseq: i + 2 });
      statuses.push(r.status);
      answeredAt.push(Date.now());
      challenge = r.header('WWW-Authenticate') ?? challenge;
    }
    const lockedAt = started;
    assert.deepEqual(statuses.slice(0, MAX_FAILURES - 1), new Array(MAX_FAILURES - 1).fill(401), 'challenged again until the limit');
    assert.deepEqual(statuses.slice(MAX_FAILURES - 1), new Array(50 - MAX_FAILURES + 1).fill(403), `403 from failure ${MAX_FAILURES} on: ${statuses.join(',')}`);
    // back-off: the 2nd..9th failures were held 10, 20, 40, 80, 100 … ms (at least 270 ms in all, after the 1st answer)
    const heldMs = answeredAt[MAX_FAILURES - 2]! - answeredAt[0]!;
    assert.ok(heldMs >= 270, `failures 2-${MAX_FAILURES - 1} answered over ${heldMs} ms: held back`);
    const right = (ch: string, cseq: number) => c.request({ method: 'REGISTER', uri, fromUser: 'alice', cseq, authorization: digestAnswer(ch, { user: 'alice', password: 'alice-auth-secret', method: 'REGISTER', uri }) });
    assert.equal((await right(challenge, 100)).status, 403, 'locked out: the right password is refused too');

    const after = await metrics();
    assert.equal(metric(after, 'ferry_auth_failures_total{kind="wrong-password"}') - metric(before, 'ferry_auth_failures_total{kind="wrong-password"}'), MAX_FAILURES);
    assert.ok(metric(after, 'ferry_auth_failures_total{kind="locked-out"}') - metric(before, 'ferry_auth_failures_total{kind="locked-out"}') >= 50 - MAX_FAILURES);
    assert.equal(metric(after, 'ferry_auth_lockouts_total') - metric(before, 'ferry_auth_lockouts_total'), 1);
    const lines = stack.output.filter((l) => l.startsWith('[gateway]') && l.includes('"message":"authentication failed"'));
    assert.ok(lines.length >= MAX_FAILURES && lines.every((l) => l.includes('"src_ip":"127.0.0.1"')), 'one log line per failure, with src_ip');
    assert.ok(stack.output.some((l) => l.includes('"message":"authentication lockout"') && l.includes('"scope":"source"')));

    // after the lockout: a fresh challenge and the right password register again
    const back = await waitFor(async () => {
      const r = await c.request({ method: 'REGISTER', uri, fromUser: 'alice', cseq: 200 + Math.floor(Math.random() * 1000) });
      if (r.status !== 401) return undefined;
      const ok = await right(r.header('WWW-Authenticate')!, 2000 + Math.floor(Math.random() * 1000));
      return ok.status === 200 ? Date.now() : undefined;
    }, LOCKOUT_MS + 15_000, 250, 'the right password accepted after the lockout');
    assert.ok(back - lockedAt >= LOCKOUT_MS - 500, `not before the lockout ended (${back - lockedAt} ms)`);
  });
});
