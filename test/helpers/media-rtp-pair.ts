import { call, type KurentoClientLike, type KurentoObjectLike } from './media-kurento';
import type { RawRpc } from './media-raw-rpc';
import { RtpTestPeer } from './media-rtp-test-peer';

export interface RtpPair {
  pipeline: KurentoObjectLike;
  a: KurentoObjectLike;
  b: KurentoObjectLike;
  /** the scripted phone on `a`, and the one on `b` */
  pa: RtpTestPeer;
  pb: RtpTestPeer;
}

/**
 * A call as the media tests build it: a new pipeline with two RtpEndpoints, each answering the offer of
 * its own scripted RTP peer, connected both ways (`a` to `b` only with `oneWay`). `beforeOffers` sees the
 * endpoints before any SDP (to subscribe to their events); the peers are added to `peers` for clean-up.
 */
export async function bridgedRtpPair(
  client: KurentoClientLike,
  peers: RtpTestPeer[],
  options: { oneWay?: boolean; beforeOffers?: (a: KurentoObjectLike, b: KurentoObjectLike) => void } = {},
): Promise<RtpPair> {
  const pipeline = await client.create('MediaPipeline');
  const a = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
  const b = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
  options.beforeOffers?.(a, b);
  const pa = await RtpTestPeer.open();
  const pb = await RtpTestPeer.open();
  peers.push(pa, pb);
  pa.useRemoteSdp(await call<string>(a, 'processOffer', pa.sdp()));
  pb.useRemoteSdp(await call<string>(b, 'processOffer', pb.sdp()));
  await call(a, 'connect', b);
  if (!options.oneWay) await call(b, 'connect', a);
  return { pipeline, a, b, pa, pb };
}

type RpcResult = Awaited<ReturnType<RawRpc['ok']>>;

export interface RawRtpPair {
  /** the create results (`.value` is the object id) of the pipeline and its two endpoints */
  p: RpcResult;
  a: RpcResult;
  b: RpcResult;
  pa: RtpTestPeer;
  pb: RtpTestPeer;
}

/**
 * The same call over raw JSON-RPC (no kurento-client): a pipeline, two RtpEndpoints (each subscribed to
 * MediaSessionTerminated with `subscribeEnded`, before any SDP), each answering its scripted peer's offer,
 * `a` connected to `b`. The peers are added to `peers` for clean-up.
 */
export async function rawRpcRtpPair(rpc: RawRpc, peers: RtpTestPeer[], options: { subscribeEnded?: boolean } = {}): Promise<RawRtpPair> {
  const p = await rpc.ok('create', { type: 'MediaPipeline' });
  const a = await rpc.ok('create', { type: 'RtpEndpoint', constructorParams: { mediaPipeline: p.value } });
  const b = await rpc.ok('create', { type: 'RtpEndpoint', constructorParams: { mediaPipeline: p.value } });
  if (options.subscribeEnded) for (const ep of [a, b]) await rpc.ok('subscribe', { object: ep.value, type: 'MediaSessionTerminated' });
  const pa = await RtpTestPeer.open();
  const pb = await RtpTestPeer.open();
  peers.push(pa, pb);
  pa.useRemoteSdp(String((await rpc.ok('invoke', { object: a.value, operation: 'processOffer', operationParams: { offer: pa.sdp() } })).value));
  pb.useRemoteSdp(String((await rpc.ok('invoke', { object: b.value, operation: 'processOffer', operationParams: { offer: pb.sdp() } })).value));
  await rpc.ok('invoke', { object: a.value, operation: 'connect', operationParams: { sink: b.value } });
  return { p, a, b, pa, pb };
}
