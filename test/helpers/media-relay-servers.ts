import assert from 'node:assert/strict';
import { startMediaServer, type RunningMediaServer } from '../../src/media/server/media-server';
import type { MediaConfig } from '../../src/media/server/media-config';
import { call, connectKurento, fetchStats, type KurentoClientLike, type KurentoObjectLike, type MediaStatsReport } from './media-kurento';
import { RtpTestPeer } from './media-rtp-test-peer';
import { SrtpTestPeer } from './srtp-test-peer';
import { pollUntil } from './wait-for';

/**
 * In-process ferry media servers with one relay (FERRY_MEDIA_RELAY `js` or `native`), the kurento-client
 * connections to them and the scripted RTP peers a test opens; close() (in after()) ends them all.
 */
export class RelayTestServers {
  readonly servers: RunningMediaServer[] = [];
  readonly clients: KurentoClientLike[] = [];
  readonly peers: RtpTestPeer[] = [];

  constructor(private readonly relay: MediaConfig['relay']) {}

  /** A server on a free port (one relay worker unless `config` says otherwise) and a client connected to it */
  async server(config: Partial<MediaConfig> = {}): Promise<{ s: RunningMediaServer; c: KurentoClientLike }> {
    const s = await startMediaServer({ config: { port: 0, host: '127.0.0.1', relay: this.relay, workers: 1, ...config } });
    this.servers.push(s);
    const c = await connectKurento(s.url);
    this.clients.push(c);
    return { s, c };
  }

  async close(): Promise<void> {
    this.clients.forEach((c) => c.close());
    this.peers.forEach((p) => p.close());
    await Promise.all(this.servers.map((s) => s.close()));
  }
}

export type Events = { source: string; type: string; data: Record<string, unknown> }[];

/** For bridgedRtpPair's `beforeOffers`: collects both endpoints' flow, media state and session end events into `events` */
export function subscribe(events: Events): (a: KurentoObjectLike, b: KurentoObjectLike) => void {
  return (a, b) => {
    for (const ep of [a, b]) {
      for (const type of ['MediaFlowInStateChanged', 'MediaFlowOutStateChanged', 'MediaStateChanged', 'MediaSessionTerminated']) {
        ep.on(type, (data) => events.push({ source: ep.id, type, data }));
      }
    }
  };
}

/** FlowOut and FlowIn FLOWING and CONNECTED were reported on each of `ids` */
export function assertFlowing(events: Events, ids: string[]): void {
  for (const id of ids) {
    assert.ok(events.some((e) => e.source === id && e.type === 'MediaFlowOutStateChanged' && e.data.state === 'FLOWING'), `FlowOut FLOWING on ${id}`);
    assert.ok(events.some((e) => e.source === id && e.type === 'MediaFlowInStateChanged' && e.data.state === 'FLOWING'), `FlowIn FLOWING on ${id}`);
    assert.ok(events.some((e) => e.source === id && e.type === 'MediaStateChanged' && e.data.newState === 'CONNECTED'), `CONNECTED on ${id}`);
  }
}

/** Sends `n` packets from `from` (in groups of 10, each group waited for at `to`, so loopback drops nothing). */
export async function relay(from: RtpTestPeer, to: RtpTestPeer, n: number, what: string): Promise<void> {
  const target = to.received.length + n;
  for (let i = 0; i < n; i += 10) {
    const group = Math.min(10, n - i);
    for (let k = 0; k < group; k++) from.send(0, Buffer.alloc(160, 0x55));
    const want = target - n + i + group;
    await to.waitFor(() => to.received.length >= want, 5000, `${what}: ${want} packets`);
  }
}

/** relay() `n` packets A->B, then `n` B->A (`what` follows the direction in the wait's name, e.g. ' first') */
export async function relayBothWays(pa: RtpTestPeer, pb: RtpTestPeer, n: number, what = ''): Promise<void> {
  await relay(pa, pb, n, `A->B${what}`);
  await relay(pb, pa, n, `B->A${what}`);
}

/** One element's entry in /stats */
export function elementStats(stats: MediaStatsReport, id: string): Record<string, unknown> {
  for (const p of stats.pipelinesDetail) for (const e of p.elements) if (e.id === id) return e;
  throw new Error(`element ${id} not in /stats`);
}

/** Waits until /stats reports both elements `nativeRelay: 'routed'` */
export async function routedBoth(port: number, a: string, b: string, what = 'both directions routed natively (/stats nativeRelay)'): Promise<void> {
  await pollUntil(
    async () => {
      const st = await fetchStats(port);
      return elementStats(st, a).nativeRelay === 'routed' && elementStats(st, b).nativeRelay === 'routed';
    },
    { timeoutMs: 5000, what },
  );
}

/** Waits until the server at `port` holds no bound port */
export async function portsFreed(port: number, what = 'ports freed'): Promise<void> {
  await pollUntil(async () => (await fetchStats(port)).boundPorts === 0 || undefined, { timeoutMs: 5000, what });
}

/** `pa` and `pb` each send a packet every 20 ms until `forMs` have passed */
export async function sendBothWaysFor(pa: RtpTestPeer, pb: RtpTestPeer, forMs: number, timeoutMs: number, what: string): Promise<void> {
  const start = Date.now();
  await pollUntil(
    () => {
      pa.send(0, Buffer.alloc(160, 1));
      pb.send(0, Buffer.alloc(160, 2));
      return Date.now() - start > forMs;
    },
    { timeoutMs, what, stepMs: 20 },
  );
}

/** Waits for a MediaSessionTerminated event with reason media-timeout among `events` */
export async function mediaTimedOut(events: Events, timeoutMs: number): Promise<void> {
  await pollUntil(() => events.some((e) => e.type === 'MediaSessionTerminated' && e.data.reason === 'media-timeout'), {
    timeoutMs,
    what: 'MediaSessionTerminated(media-timeout) after the silence',
  });
}

export interface SrtpAndPlainCall {
  pipeline: KurentoObjectLike;
  /** the RtpEndpoint of the SDES SRTP phone, and the one of the plain phone */
  a: KurentoObjectLike;
  b: KurentoObjectLike;
  phone: SrtpTestPeer;
  plain: RtpTestPeer;
}

/**
 * A new pipeline with two RtpEndpoints connected both ways: `a` answers an SDES SRTP phone, `b` a plain RTP
 * phone. The plain phone is added to `peers` for clean-up; the caller closes the SRTP phone (closed here if
 * the call cannot be set up).
 */
export async function srtpAndPlainCall(c: KurentoClientLike, peers: RtpTestPeer[]): Promise<SrtpAndPlainCall> {
  const pipeline = await c.create('MediaPipeline');
  const a = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
  const b = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
  const phone = await SrtpTestPeer.open();
  try {
    const plain = await RtpTestPeer.open();
    peers.push(plain);
    phone.useRemoteSdp(await call<string>(a, 'processOffer', phone.sdp()));
    plain.useRemoteSdp(await call<string>(b, 'processOffer', plain.sdp()));
    await call(a, 'connect', b);
    await call(b, 'connect', a);
    return { pipeline, a, b, phone, plain };
  } catch (err) {
    phone.close();
    throw err;
  }
}

/** Each phone sends `n` packets (in groups of 10, each group waited for at the other phone): 0x42 from the SRTP phone, 0x24 from the plain one */
export async function exchangeSrtp(phone: SrtpTestPeer, plain: RtpTestPeer, n: number, what: string): Promise<void> {
  for (let i = 0; i < n; i += 10) {
    const group = Math.min(10, n - i);
    const wantPlain = plain.received.length + group;
    const wantPhone = phone.rtp.length + group;
    for (let k = 0; k < group; k++) {
      phone.sendRtp(Buffer.alloc(160, 0x42));
      plain.send(0, Buffer.alloc(160, 0x24));
    }
    await plain.waitFor(() => plain.received.length >= wantPlain, 5000, `${what}: ${wantPlain} at the plain phone`);
    await phone.waitFor(() => phone.rtp.length >= wantPhone, 5000, `${what}: ${wantPhone} at the SRTP phone`);
  }
}
