import { ALAW_TO_LINEAR, encodeG711, MULAW_TO_LINEAR, type G711Law } from '../../src/media/media-files/g711';
import { goertzelPower, sineSamples } from './audio-tone';
import type { RtpTestPeer } from './media-rtp-test-peer';

/**
 * The tones of the hub tests' parties (Composite, Mixer, AlphaBlending): each party sends its own tone
 * into the hub, and what a party hears is measured as the power of each tone (Goertzel) in what it received.
 */
export const TONES = [400, 700, 1100];

/** Sends a tone as 20 ms G.711 packets paced by the wall clock until stopped. */
export function sendTone(peer: RtpTestPeer, hz: number, law: G711Law): { stop: () => void } {
  let sent = 0;
  const t0 = Date.now();
  const tick = () => {
    const due = Math.floor((Date.now() - t0) / 20) + 1;
    for (; sent < due; sent++) {
      const b = Buffer.alloc(160);
      encodeG711(law, sineSamples(hz, 8000, 160, 0.3, sent * 160), 0, 160, b, 0);
      peer.send(law === 'mulaw' ? 0 : 8, b);
    }
  };
  const timer = setInterval(tick, 5);
  tick();
  return { stop: () => clearInterval(timer) };
}

/** Power of each of TONES in what `peer` received from packet `from` to `to` (decoded with the law of its payload type). */
export function tonePowers(peer: RtpTestPeer, from: number, to = peer.received.length): number[] {
  const packets = peer.received.slice(from, to).filter((p) => p.pt === 0 || p.pt === 8);
  const pcm = new Int16Array(packets.length * 160);
  packets.forEach((p, i) => {
    const table = p.pt === 8 ? ALAW_TO_LINEAR : MULAW_TO_LINEAR;
    for (let j = 0; j < p.payload.length && j < 160; j++) pcm[i * 160 + j] = table[p.payload[j]!]!;
  });
  return TONES.map((hz) => goertzelPower(pcm, 8000, hz));
}

/** The powers of tonePowers() for a failure's message. */
export const formatPowers = (powers: number[]): string => powers.map((p, i) => `${TONES[i]} Hz: ${p.toFixed(1)}`).join(', ');
