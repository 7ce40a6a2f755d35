import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MediaServerProcess } from '../helpers/media-server-process';
import { call, connectKurento, type KurentoClientLike, type KurentoObjectLike } from '../helpers/media-kurento';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';
import { bridgedRtpPair } from '../helpers/media-rtp-pair';
import WebSocket from 'ws';
import { pollPause } from '../helpers/wait-for';

/**
 * ferry media's quotas (`bin/ferry media` with small FERRY_MEDIA_MAX_* limits, the real npm
 * kurento-client): a control session that creates until refused gets Kurento's NOT_ENOUGH_RESOURCES
 * (40009), another session still sets up a call whose RTP flows both ways, and an orphaned pipeline that
 * never negotiated media gives its slot to a connected client at once rather than after the orphan TTL.
 */

interface RpcError {
  code?: number;
  message?: string;
  data?: { type?: string };
}

const QUOTA_ENV = {
  FERRY_MEDIA_MAX_PIPELINES: '40',
  FERRY_MEDIA_MAX_PIPELINES_PER_SESSION: '25',
  FERRY_MEDIA_MAX_ELEMENTS_PER_PIPELINE: '4',
  FERRY_MEDIA_MAX_PORTS: '400',
  FERRY_MEDIA_MAX_PORTS_PER_SESSION: '100',
  // the KMS default: an orphan that never negotiated would otherwise hold its slot for 4 minutes
  FERRY_MEDIA_ORPHAN_TTL_MS: '240000',
};

/** Creates with `create` until it is refused (or `max` succeeded); returns what was made and the refusal. */
async function createUntilRefused<T>(create: () => Promise<T>, max: number): Promise<{ made: T[]; refusal: RpcError | undefined }> {
  const made: T[] = [];
  for (let i = 0; i < max; i++) {
    try {
      made.push(await create());
    } catch (err) {
      return { made, refusal: err as RpcError };
    }
  }
  return { made, refusal: undefined };
}

describe('media quotas', { timeout: 120_000 }, () => {
  const servers: MediaServerProcess[] = [];
  const clients: KurentoClientLike[] = [];
  const peers: RtpTestPeer[] = [];
  const timers: NodeJS.Timeout[] = [];
  after(async () => {
    timers.forEach((t) => clearInterval(t));
    clients.forEach((c) => c.close());
    peers.forEach((p) => p.close());
    await Promise.all(servers.map((s) => s.stop()));
  });

  async function server(): Promise<MediaServerProcess> {
    const s = await MediaServerProcess.start(QUOTA_ENV);
    servers.push(s);
    return s;
  }

  async function client(s: MediaServerProcess): Promise<KurentoClientLike> {
    const c = await connectKurento(s.url);
    clients.push(c);
    return c;
  }

  /**
   * A call in its own pipeline: two RtpEndpoints bridged, a scripted RTP peer on each; resolves once
   * `packets` RTP packets went each way. `keepSending` keeps media flowing (a live call) until after().
   */
  async function rtpCall(c: KurentoClientLike, packets = 20, keepSending = false): Promise<{ pipeline: KurentoObjectLike; pa: RtpTestPeer; pb: RtpTestPeer }> {
    const { pipeline, pa, pb } = await bridgedRtpPair(c, peers);
    let n = 0;
    const tick = setInterval(() => {
      n++;
      pa.send(0, Buffer.alloc(160, n & 0xff));
      pb.send(0, Buffer.alloc(160, n & 0xff));
      if (!keepSending && n >= packets * 3) clearInterval(tick);
    }, 10);
    timers.push(tick);
    await pb.waitFor(() => pb.received.length >= packets, 10_000, `${packets} RTP packets a -> b`);
    await pa.waitFor(() => pa.received.length >= packets, 10_000, `${packets} RTP packets b -> a`);
    return { pipeline, pa, pb };
  }

  function assertNotEnoughResources(refusal: RpcError | undefined, what: RegExp): void {
    assert.ok(refusal, 'a create was refused');
    assert.equal(refusal.code, 40009, `Kurento error code: ${JSON.stringify(refusal)}`);
    assert.equal(refusal.data?.type, 'NOT_ENOUGH_RESOURCES', JSON.stringify(refusal));
    assert.match(String(refusal.message), what);
  }

  test('quota: a kurento-client creating pipelines, then endpoints, until refused gets NOT_ENOUGH_RESOURCES (40009) while a legitimate call in another session connects with media both ways', async () => {
    const s = await server();
    const attacker = await client(s);
    const pipelines = await createUntilRefused(() => attacker.create('MediaPipeline'), 1000);
    assert.equal(pipelines.made.length, 25, 'the session quota of pipelines');
    assertNotEnoughResources(pipelines.refusal, /^Not enough resources: pipeline quota of this session reached \(25\/25\)$/);
    // endpoints: at most 4 in one pipeline, and 100 ports (50 endpoints) for the session
    const inOne = await createUntilRefused(() => call<KurentoObjectLike>(pipelines.made[0]!, 'create', 'RtpEndpoint'), 100);
    assert.equal(inOne.made.length, 4, 'the element quota of one pipeline');
    assertNotEnoughResources(inOne.refusal, /element quota of this pipeline reached \(4\/4\)/);
    let i = 1;
    const spread = await createUntilRefused(() => call<KurentoObjectLike>(pipelines.made[1 + (i++ % 24)]!, 'create', 'RtpEndpoint'), 1000);
    assert.equal(inOne.made.length + spread.made.length, 50, 'the port quota of the session (2 ports per RtpEndpoint)');
    assertNotEnoughResources(spread.refusal, /port quota of this session reached \(100\/100\)/);

    // the attacker stays connected; a legitimate client (another session) still gets a call with media
    const legit = await client(s);
    const { pa, pb } = await rtpCall(legit);
    console.log(`# attacker: 25 pipelines + 50 endpoints then refused (40009); legitimate call: ${pa.received.length}/${pb.received.length} RTP packets each way`);
    const stats = (await s.stats()) as unknown as { pipelines: number; quotas: { refusals: Record<string, number>; portsCounted: number } };
    assert.equal(stats.pipelines, 26);
    assert.deepEqual(stats.quotas.refusals, { 'pipelines-per-session': 1, 'elements-per-pipeline': 1, 'ports-per-session': 1 });
    assert.equal(stats.quotas.portsCounted, 104, 'ports counted: 50 attacker endpoints + 2 of the call');
    assert.ok(s.logsMatching('create refused by quota').length >= 3, 'refusals are logged');
  });

  test('quota: the server full, orphaned pipelines that never negotiated media are reclaimed for a connected client at once (not after the 240 s orphan TTL); an orphaned live call keeps its pipeline and media', async () => {
    const s = await server();
    const a = await client(s);
    const b = await client(s);
    // b holds a live call (its media keeps flowing after b leaves: a call whose app died)
    const live = await rtpCall(b, 10, true);
    const fillA = await createUntilRefused(() => a.create('MediaPipeline'), 25);
    const fillB = await createUntilRefused(() => b.create('MediaPipeline'), 14);
    assert.equal(fillA.made.length + fillB.made.length, 39);
    const c = await client(s);
    // positive control: while their owners are connected, nothing is reclaimed and the server is full
    const whileConnected = await createUntilRefused(() => c.create('MediaPipeline'), 1);
    assertNotEnoughResources(whileConnected.refusal, /^Not enough resources: pipeline quota of the server reached \(40\/40\)$/);

    a.close();
    b.close();
    await s.waitForStats((st) => (st.pipelinesDetail as { orphaned: boolean }[]).every((p) => p.orphaned), 10_000);
    const t0 = Date.now();
    const reclaimedFor = await createUntilRefused(() => c.create('MediaPipeline'), 25);
    const d = await client(s);
    const reclaimedForD = await createUntilRefused(() => d.create('MediaPipeline'), 25);
    const tookMs = Date.now() - t0;
    console.log(`# after the owners left: ${reclaimedFor.made.length} + ${reclaimedForD.made.length} pipelines created in ${tookMs} ms by reclaiming idle orphans`);
    assert.equal(reclaimedFor.made.length, 25, `c got its whole session quota: ${JSON.stringify(reclaimedFor.refusal)}`);
    assert.equal(reclaimedForD.made.length, 14, 'd got every slot but the live call');
    assertNotEnoughResources(reclaimedForD.refusal, /pipeline quota of the server reached \(40\/40\)/);
    assert.ok(tookMs < 30_000, `took ${tookMs} ms`);
    // the orphaned live call was not reclaimed: its pipeline is there and its media still flows both ways
    const st = await s.stats();
    assert.ok(MediaServerProcess.hasPipeline(st, live.pipeline.id), 'the live orphaned call kept its pipeline');
    const before = { a: live.pa.received.length, b: live.pb.received.length };
    await live.pb.waitFor(() => live.pb.received.length >= before.b + 20, 5000, 'media still flows a -> b');
    await live.pa.waitFor(() => live.pa.received.length >= before.a + 20, 5000, 'media still flows b -> a');
    assert.ok(s.logsMatching('idle orphaned pipeline reclaimed for a new create').length >= 39, 'reclaims are logged');
  });

  test('quota: control connections above FERRY_MEDIA_MAX_CONNECTIONS get HTTP 503 on upgrade; once one leaves, a kurento-client connects and works', async () => {
    const s = await MediaServerProcess.start({ ...QUOTA_ENV, FERRY_MEDIA_MAX_CONNECTIONS: '3' });
    servers.push(s);
    const open = async (): Promise<{ ws: WebSocket; status: number }> =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(s.url);
        ws.once('open', () => resolve({ ws, status: 101 }));
        ws.once('unexpected-response', (_req, res) => resolve({ ws, status: res.statusCode ?? 0 }));
        ws.once('error', reject);
      });
    const held = [await open(), await open(), await open()];
    assert.deepEqual(held.map((h) => h.status), [101, 101, 101], 'under the cap');
    const extra = await open();
    assert.equal(extra.status, 503, 'the 4th connection is refused');
    held[0]!.ws.close();
    await new Promise<void>((r) => held[0]!.ws.once('close', () => r()));
    const deadline = Date.now() + 5000;
    let c: KurentoClientLike | undefined;
    while (!c) {
      try {
        c = await connectKurento(s.url);
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await pollPause(50);
      }
    }
    clients.push(c);
    const pipeline = await c.create('MediaPipeline');
    assert.match(pipeline.id, /_kurento\.MediaPipeline$/, 'the client that got the freed slot works');
    held.slice(1).forEach((h) => h.ws.close());
    assert.ok(s.logsMatching('connection cap reached').length >= 1, 'the refusal is logged');
  });
});
