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
  /**
   * True for a sink that neither rewrites the packet nor keeps the Buffer after deliverFromPipeline
   * returns (it reads it, or copies what it keeps). Such a sink is given the original before any
   * rewriting sink, so it never costs a copy. Absent = the sink may rewrite the header in place and
   * its transport may keep the Buffer (every element with a leg).
   */
  readonly readsPacketOnly?: boolean;
}

/** The codec key of a packet from the peer, by its payload type; undefined when the leg did not negotiate it. */
export function incomingCodec(packet: Buffer, codecs: CodecTable): string | undefined {
  return codecs.receive[packet[1]! & 0x7f];
}

/**
 * One packet carrying codec `key` to every sink. A sink that rewrites the header in place (and whose
 * transport may keep the buffer) needs a packet of its own, so with several such sinks every one but
 * the last gets a copy and the last the original. The common case — one sink — copies nothing, and so
 * does any number of `readsPacketOnly` sinks, which see the original before anyone rewrites it.
 */
export function fanOut(packet: Buffer, key: string, sinks: readonly PipelineSink[]): void {
  const n = sinks.length;
  if (n === 1) {
    sinks[0]!.deliverFromPipeline(packet, key);
    return;
  }
  if (n === 0) return;
  let rewriters = 0;
  for (let i = 0; i < n; i++) {
    const s = sinks[i]!;
    if (s.readsPacketOnly === true) s.deliverFromPipeline(packet, key);
    else rewriters++;
  }
  if (rewriters === 0) return;
  let last = -1;
  for (let i = n - 1; i >= 0; i--) {
    if (sinks[i]!.readsPacketOnly !== true) {
      last = i;
      break;
    }
  }
  for (let i = 0; i < last; i++) {
    const s = sinks[i]!;
    if (s.readsPacketOnly !== true) s.deliverFromPipeline(Buffer.from(packet), key);
  }
  sinks[last]!.deliverFromPipeline(packet, key);
}

/**
 * The outgoing half of one element: the payload type its peer negotiated for each codec, and through
 * `rewriter` one SSRC and sequence/timestamp continuity towards that peer (the element may stamp
 * packets it generates itself with the same rewriter).
 */
export class OutgoingRtp {
  /**
   * The last (codec table, codec key) this sender mapped and its result, so the per-packet path does
   * no Map lookup while the stream keeps its codec (a table is replaced, never mutated, on renegotiation,
   * so its identity is enough to notice a change).
   */
  private cachedTable: CodecTable | undefined;
  private cachedCodec = '';
  private cachedPt = -1;
  private cachedClockRate = 8000;

  constructor(readonly rewriter: RtpStreamRewriter) {}

  /**
   * Sends `packet` (codec `codec`) to the peer on `leg` with the payload type the peer negotiated for
   * that codec. Returns false, sending nothing, when the peer did not negotiate the codec.
   */
  send(packet: Buffer, codec: string, codecs: CodecTable, leg: MediaLeg, nowMs: number): boolean {
    if (codecs !== this.cachedTable || codec !== this.cachedCodec) this.lookUp(codec, codecs);
    const pt = this.cachedPt;
    if (pt < 0) return false;
    this.rewriter.rewrite(packet, pt, this.cachedClockRate, nowMs);
    leg.sendRtp(packet);
    return true;
  }

  private lookUp(codec: string, codecs: CodecTable): void {
    this.cachedTable = codecs;
    this.cachedCodec = codec;
    this.cachedPt = codecs.send.get(codec) ?? -1;
    this.cachedClockRate = codecs.clockRates.get(codec) ?? 8000;
  }
}
