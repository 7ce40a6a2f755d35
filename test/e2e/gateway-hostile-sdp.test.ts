import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { freePort } from '../helpers/free-port';
import { SipRawClient } from '../helpers/sip-raw-client';
import { getJson, startStack, waitFor, type Stack } from '../helpers/stack';
import { removeTestKeys } from '../helpers/redis-test-keys';

/**
 * Hostile SDP against the whole stack (ferry sip, ferry media, ferry gateway on Redis): a trunk the
 * gateway trusts by its TCP source sends INVITEs whose SDP is each of the hostile bodies the gateway
 * used to accept. Each gets 488 with a Warning naming the problem, and leaves nothing behind: no
 * new key in Redis, no pipeline in ferry media, no INVITE to the callee. Positive control: the same
 * trunk's valid offer does create a call record and a pipeline and reaches the callee.
 * ferry sip's own message limit is raised here so the big bodies reach the gateway (by default
 * ferry sip already refuses anything over 64 kB); FERRY_ALLOW_LOOPBACK_MEDIA=0 stands for a public
 * gateway, whose callers are never on its loopback.
 */
const REDIS_URL = 'redis://127.0.0.1:6379';

function offer(o: { c?: string | null; port?: number; media?: number; extra?: string[]; raw?: (s: string) => string } = {}): string {
  const lines = ['v=0', 'o=- 1 1 IN IP4 192.0.2.10', 's=-'];
  if (o.c !== null) lines.push(`c=IN IP4 ${o.c ?? '192.0.2.10'}`);
  lines.push('t=0 0');
  for (let i = 0; i < (o.media ?? 1); i++) lines.push(`m=audio ${o.port ?? 40000} RTP/AVP 0 8`, 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:8 PCMA/8000');
  lines.push('a=sendrecv', ...(o.extra ?? []));
  const s = `${lines.join('\r\n')}\r\n`;
  return o.raw ? o.raw(s) : s;
}

const HOSTILE: { name: string; sdp: string; problem: string }[] = [
  { name: 'an invalid c= address', sdp: offer({ c: '999.12.1.1' }), problem: 'bad-address' },
  { name: 'no c= at all', sdp: offer({ c: null }), problem: 'no-connection' },
  { name: 'a multicast c=', sdp: offer({ c: '239.255.0.1' }), problem: 'multicast' },
  { name: 'c=127.0.0.1 with port 6379 (Redis)', sdp: offer({ c: '127.0.0.1', port: 6379 }), problem: 'loopback' },
  { name: 'port 70000', sdp: offer({ port: 70000 }), problem: 'bad-port' },
  { name: '5000 m= lines', sdp: offer({ media: 5000 }), problem: 'too-large' },
  { name: 'a 500 kB attribute', sdp: offer({ extra: [`a=x-junk:${'A'.repeat(500_000)}`] }), problem: 'too-large' },
  { name: '50 000 a= lines', sdp: offer({ extra: Array(50_000).fill('a=x-junk:1') }), problem: 'too-large' },
  { name: 'NUL bytes', sdp: offer({ raw: (s) => s.replace('s=-', 's=a\u0000b') }), problem: 'control-bytes' },
];

describe('gateway: hostile SDP is refused with 488 before anything is created or stored', { timeout: 120_000 }, () => {
  let stack: Stack;
  let dir: string;
  let redis: Redis;
  let pbx: dgram.Socket;
  let client: SipRawClient;
  let invitesAtPbx = 0;
  let byesAtPbx = 0;

  before(async () => {
    // the callee trunk: counts INVITEs (by Call-ID) and answers each 486 Busy after 800 ms, except
    // number 5550666, which it answers 200 with an SDP aiming media at 127.0.0.1:6379; BYEs get 200
    pbx = dgram.createSocket('udp4');
    const seen = new Set<string>();
    pbx.on('message', (m, from) => {
      const text = m.toString('utf8');
      const head = text.split('\r\n\r\n')[0]!.split('\r\n');
      const h = (name: string): string[] => head.filter((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
      const reply = (status: string, extra: string[], body = ''): void => {
        const to = h('To')[0]!;
        const lines = [`SIP/2.0 ${status}`, ...h('Via'), ...h('From'), /;tag=/.test(to) ? to : `${to};tag=pbx${invitesAtPbx}`, ...h('Call-ID'), ...h('CSeq'), ...extra, `Content-Length: ${Buffer.byteLength(body)}`, '', body].join('\r\n');
        pbx.send(lines, from.port, from.address);
      };
      if (text.startsWith('BYE ')) {
        byesAtPbx++;
        reply('200 OK', []);
        return;
      }
      if (!text.startsWith('INVITE ')) return;
      const callId = h('Call-ID')[0] ?? '';
      if (seen.has(callId)) return;
      seen.add(callId);
      invitesAtPbx++;
      if (head[0]!.startsWith('INVITE sip:5550666@')) {
        const contact = `Contact: <sip:pbx@127.0.0.1:${pbx.address().port}>`;
        reply('200 OK', [contact, 'Content-Type: application/sdp'], offer({ c: '127.0.0.1', port: 6379 }));
        return;
      }
      setTimeout(() => reply('486 Busy Here', []), 800);
    });
    await new Promise<void>((r) => pbx.bind(0, '127.0.0.1', () => r()));
    const carrierPort = await freePort({ protocols: ['tcp'] });
    dir = mkdtempSync(path.join(tmpdir(), 'ferry-sdp-'));
    const config = {
      domain: 'ferry.local',
      users: [{ user: 'alice', password: 'alice-sdp-secret' }],
      trunks: [
        { name: 'carrier', address: `127.0.0.1:${carrierPort}`, transport: 'tcp', acceptFrom: ['127.0.0.1'] },
        { name: 'pbx', address: `127.0.0.1:${pbx.address().port}`, transport: 'udp' },
      ],
      routes: [{ match: '9(\\d+)', to: 'trunk:pbx', rewrite: '$1' }, { match: '.*', to: 'user' }],
    };
    writeFileSync(path.join(dir, 'ferry.json'), JSON.stringify(config, null, 2));
    stack = await startStack({
      redisUrl: REDIS_URL,
      partEnv: {
        sip: { FERRY_SIP_MAX_MESSAGE_BYTES: String(2 * 1024 * 1024) },
        gateway: { FERRY_SIP_CONFIG: path.join(dir, 'ferry.json'), FERRY_ALLOW_LOOPBACK_MEDIA: '0', FERRY_CALL_RECORD_TTL_MS: '60000' },
      },
    });
    redis = new Redis(REDIS_URL);
    client = await SipRawClient.open('tcp', stack.sipPort, carrierPort);
  });

  after(async () => {
    client?.close();
    pbx?.close();
    if (redis && stack) await removeTestKeys(redis, stack.redisPrefix);
    await stack?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const callKeys = async (): Promise<number> => (await redis.keys(`${stack.redisPrefix}call:*`)).length;
  const allKeys = async (): Promise<string[]> => (await redis.keys(`${stack.redisPrefix}*`)).sort();
  const media = (): Promise<{ pipelines: number; elements: number }> => getJson(stack.mediaPort, '/stats');
  const rejected = async (): Promise<Map<string, number>> => {
    const text = await (await fetch(`http://127.0.0.1:${stack.httpPort}/metrics`)).text();
    return new Map([...text.matchAll(/^ferry_sdp_rejected_total\{problem="([^"]+)"\} (\d+)$/gm)].map((m) => [m[1]!, Number(m[2])]));
  };

  test('positive control: the trunk\'s valid offer creates a call record and a pipeline and reaches the callee', async () => {
    assert.equal(await callKeys(), 0);
    let sawPipeline = false;
    const watching = waitFor(async () => (sawPipeline = (await media()).pipelines === 1), 10_000, 20, 'a pipeline for the valid call');
    const res = await client.request({ method: 'INVITE', uri: 'sip:95550100@ferry.local', fromUser: '5551234', body: offer() }, 15_000);
    await watching.catch(() => undefined);
    assert.equal(res.status, 486, `the callee is busy: 486 (got ${res.status} ${res.header('Warning') ?? ''})`);
    assert.ok(sawPipeline, 'the valid offer built a pipeline');
    assert.ok(invitesAtPbx >= 1, 'the callee got the INVITE');
    assert.equal(await callKeys(), 1, 'its record is in Redis');
    await waitFor(async () => (await media()).pipelines === 0, 5000, 25, 'the failed call\'s pipeline released');
    // its CDR is written after the end (asynchronously): wait for it, so the refusals below start from a still store
    await waitFor(async () => (await redis.keys(`${stack.redisPrefix}cdr:*`)).length === 1, 5000, 25, 'the failed call\'s CDR written');
  });

  for (const h of HOSTILE) {
    test(`${h.name}: 488 with a Warning, nothing stored, nothing in ferry media, callee not called`, async () => {
      const keysBefore = await allKeys();
      const pbxBefore = invitesAtPbx;
      const countedBefore = (await rejected()).get(h.problem) ?? 0;
      const t0 = Date.now();
      const res = await client.request({ method: 'INVITE', uri: 'sip:95550100@ferry.local', fromUser: '5551234', body: h.sdp }, 15_000);
      const ms = Date.now() - t0;
      assert.equal(res.status, 488, `${h.name}: got ${res.status}`);
      const warning = res.header('Warning') ?? '';
      assert.match(warning, /^399 \S+ "[^"]+"$/, `Warning: ${warning}`);
      assert.equal((await rejected()).get(h.problem), countedBefore + 1, `ferry_sdp_rejected_total{problem="${h.problem}"} moved`);
      assert.deepEqual(await allKeys(), keysBefore, 'no key added to (or removed from) Redis');
      const st = await media();
      assert.equal(st.pipelines, 0, 'no pipeline');
      assert.equal(st.elements, 0, 'no media element');
      assert.equal(invitesAtPbx, pbxBefore, 'the callee was not called');
      console.log(`# measured: ${h.name} (${h.sdp.length} bytes) -> 488 in ${ms} ms, Warning: ${warning.slice(0, 90)}`);
    });
  }

  test('a callee answering with an SDP aimed at 127.0.0.1:6379: the caller gets 488 + Warning, the callee is BYEd, the pipeline released', async () => {
    const countedBefore = (await rejected()).get('loopback') ?? 0;
    const byesBefore = byesAtPbx;
    const res = await client.request({ method: 'INVITE', uri: 'sip:95550666@ferry.local', fromUser: '5551234', body: offer() }, 15_000);
    assert.equal(res.status, 488, `got ${res.status}`);
    assert.match(res.header('Warning') ?? '', /^399 \S+ ".*answer.*loopback.*"$/);
    assert.equal((await rejected()).get('loopback'), countedBefore + 1);
    await waitFor(() => byesAtPbx > byesBefore, 5000, 25, 'the callee BYEd');
    await waitFor(async () => (await media()).pipelines === 0, 5000, 25, 'the pipeline released');
    const calls = (await getJson<{ calls: { state: string; timeline: { event: string; detail?: string }[] }[] }>(stack.httpPort, '/api/calls?state=all')).calls;
    const last = calls[calls.length - 1]!;
    assert.equal(last.state, 'ended');
    assert.ok(last.timeline.some((e) => e.event === 'sdp-refused'), JSON.stringify(last.timeline));
  });

  test('the list API never carries an SDP (the whole record is at /api/calls/:id)', async () => {
    const list = await getJson<{ calls: Record<string, unknown>[] }>(stack.httpPort, '/api/calls?state=all');
    assert.equal(list.calls.length, 2, 'only the valid offers were ever recorded');
    assert.doesNotMatch(JSON.stringify(list), /v=0|localSdp|remoteSdp|pipelineId|callId/);
    const one = await getJson<{ media: { pipelineId?: string } }>(stack.httpPort, `/api/calls/${String(list.calls[0]!.id)}`);
    assert.ok(one.media.pipelineId, 'positive control: the whole record names its pipeline');
  });
});
