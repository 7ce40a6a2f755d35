import assert from 'node:assert/strict';
import { call, type KurentoClientLike, type KurentoObjectLike } from './media-kurento';
import { RtpTestPeer } from './media-rtp-test-peer';
import { pollUntil } from './wait-for';

/**
 * Phone-to-phone calls through ferry media's relay workers, for the relay worker tests (threads and
 * processes): one pipeline with two RtpEndpoints per call, each side a real UDP peer sending 50 packets/s,
 * and the end events each endpoint's subscribers get.
 */

export interface RelayEndEvent {
  source: string;
  type: 'MediaSessionTerminated';
  reason?: string;
  detail?: string;
}

export interface RelayTestCall {
  pipeline: KurentoObjectLike;
  a: KurentoObjectLike;
  b: KurentoObjectLike;
  pa: RtpTestPeer;
  pb: RtpTestPeer;
  ends: RelayEndEvent[];
  pump: NodeJS.Timeout;
}

/** /stats as far as the relay worker tests read it */
export interface RelayWorkerStats {
  pipelinesDetail: { id: string; worker?: number }[];
}

/** A call through one pipeline: A offers, B answers ferry's offer; both peers send 50 packets/s. */
export async function makeRelayCall(client: KurentoClientLike): Promise<RelayTestCall> {
  const pipeline = await client.create('MediaPipeline');
  const a = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
  const b = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
  const ends: RelayEndEvent[] = [];
  for (const ep of [a, b]) {
    ep.on('MediaSessionTerminated', (d) => ends.push({ source: ep.id, type: 'MediaSessionTerminated', reason: d.reason as string, detail: d.detail as string }));
  }
  const pa = await RtpTestPeer.open();
  const pb = await RtpTestPeer.open();
  pa.useRemoteSdp(await call<string>(a, 'processOffer', pa.sdp()));
  pb.useRemoteSdp(await call<string>(b, 'generateOffer'));
  await call(b, 'processAnswer', pb.sdp());
  await call(a, 'connect', b);
  await call(b, 'connect', a);
  const payload = Buffer.alloc(160, 0xff);
  const pump = setInterval(() => {
    pa.send(0, payload);
    pb.send(0, payload);
  }, 20);
  return { pipeline, a, b, pa, pb, ends, pump };
}

/** Stops a call's peers (its pipeline is the test's to release). */
export function closeRelayCall(c: RelayTestCall): void {
  clearInterval(c.pump);
  c.pa.close();
  c.pb.close();
}

/** Waits until `more` packets more were relayed each way. */
export async function relayFlowing(c: RelayTestCall, what: string, more = 25): Promise<void> {
  const fromA = c.pb.received.length;
  const fromB = c.pa.received.length;
  await pollUntil(() => c.pb.received.length >= fromA + more && c.pa.received.length >= fromB + more, { timeoutMs: 20_000, what: `${what}: ${more} more packets relayed each way` });
}

/** The worker /stats names for a pipeline. */
export function workerOfPipeline(s: RelayWorkerStats, pipelineId: string): number {
  const w = s.pipelinesDetail.find((p) => p.id === pipelineId)?.worker;
  assert.ok(w !== undefined, `pipeline ${pipelineId} names its worker in /stats`);
  return w;
}
