import { call, type KurentoClientLike, type KurentoObjectLike } from './media-kurento';
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
