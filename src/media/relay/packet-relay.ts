import type { CodecTable } from './codec-table';
import type { MediaLeg } from './media-leg';
import type { RtpStreamRewriter } from './rtp-stream-rewriter';

/**
 * The per-packet relay between the elements of a pipeline (the hot path of every call). An element
 * (src/media/objects/media-element.ts) owns the Kurento side — connections, flow states, events — and
 * calls these for each packet: `incomingCodec` names what its peer sent, `fanOut` hands it to every
 * sink, and each sink's `OutgoingRtp` maps the codec to the payload type its own peer negotiated,
 * rewrites SSRC / sequence / timestamp for that peer, and sends it on the leg. No transcoding: a packet
 * whose codec a sink did not negotiate is dropped (and counted by the element).
 */

/** Whatever takes packets from the pipeline: every MediaElement. */
export interface PipelineSink {
  deliverFromPipeline(packet: Buffer, codec: string): void;
}

/** The codec key of a packet from the peer, by its payload type; undefined when the leg did not negotiate it. */
export function incomingCodec(packet: Buffer, codecs: CodecTable): string | undefined {
  return codecs.receive[packet[1]! & 0x7f];
}

/**
 * One packet carrying codec `key` to every sink. Each sink rewrites the header in place and its
 * transport may keep the buffer, so every sink but the last gets its own copy and the last the original.
 */
export function fanOut(packet: Buffer, key: string, sinks: readonly PipelineSink[]): void {
  const n = sinks.length;
  if (n === 0) return;
  for (let i = 0; i < n - 1; i++) sinks[i]!.deliverFromPipeline(Buffer.from(packet), key);
  sinks[n - 1]!.deliverFromPipeline(packet, key);
}

/**
 * The outgoing half of one element: the payload type its peer negotiated for each codec, and through
 * `rewriter` one SSRC and sequence/timestamp continuity towards that peer (the element may stamp
 * packets it generates itself with the same rewriter).
 */
export class OutgoingRtp {
  constructor(readonly rewriter: RtpStreamRewriter) {}

  /**
   * Sends `packet` (codec `codec`) to the peer on `leg` with the payload type the peer negotiated for
   * that codec. Returns false, sending nothing, when the peer did not negotiate the codec.
   */
  send(packet: Buffer, codec: string, codecs: CodecTable, leg: MediaLeg, nowMs: number): boolean {
    const pt = codecs.send.get(codec);
    if (pt === undefined) return false;
    this.rewriter.rewrite(packet, pt, codecs.clockRates.get(codec) ?? 8000, nowMs);
    leg.sendRtp(packet);
    return true;
  }
}
