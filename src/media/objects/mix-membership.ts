import type { G711Law } from '../media-files/g711';
import type { MixInput } from '../mixing/mix-input';
import { g711LawOf, rtpPayloadEnd, rtpPayloadStart } from '../mixing/rtp-g711';
import type { HubMembership } from './hub';

/** A mixer's port, as its membership sees it: the jitter buffer its party's audio goes into. */
export interface MixPort {
  readonly input: MixInput;
  readonly samplesClipped: number;
}

/** What takes a party's G.711 payload for a port (the N-1 mixer, the selectable mixer). */
export interface G711MixWriter<P> {
  write(port: P, law: G711Law, bytes: Uint8Array, offset: number, length: number, ts: number, ssrc: number): void;
}

/**
 * A hub port's membership in an audio mix (Composite, AlphaBlending, Mixer): its G.711 input goes into
 * the mix, read in place (telephone-events and other codecs are not mixed), and its /stats entry counts
 * what the port's input did. Nothing is allocated per packet.
 */
export class MixMembership<P extends MixPort> implements HubMembership {
  readonly output = 'mixed';
  readonly readsInputOnly = true;

  constructor(
    private readonly mixer: G711MixWriter<P>,
    protected readonly port: P,
  ) {}

  input(packet: Buffer, codec: string): void {
    const law = g711LawOf(codec);
    if (law === undefined) return;
    const start = rtpPayloadStart(packet);
    const end = rtpPayloadEnd(packet);
    if (start < 0 || end <= start) return;
    this.mixer.write(this.port, law, packet, start, end - start, packet.readUInt32BE(4), packet.readUInt32BE(8));
  }

  stats(): Record<string, unknown> {
    const input = this.port.input;
    return { packetsMixed: input.packetsMixed, packetsLate: input.packetsLate, reanchors: input.reanchors, samplesClipped: this.port.samplesClipped };
  }
}
