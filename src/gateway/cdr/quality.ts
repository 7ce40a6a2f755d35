/**
 * Call quality of one leg from the media server's getStats figures, and a voice quality estimate by
 * the ITU-T G.107 E-model, simplified for G.711 (docs/cdr.md, "Quality"):
 *
 *   R   = 93.2 - Id - Ie_eff                       (default Ro - Is, no advantage factor)
 *   d   = RTT / 2 + 2 x jitter + 20 ms              (one-way mouth-to-ear delay: half the round trip,
 *                                                    a jitter buffer of twice the jitter, one 20 ms packet)
 *   Id  = 0.024 d + 0.11 (d - 177.3) H(d - 177.3)  (H(x) = 1 when x >= 0, else 0)
 *   Ie_eff = Ie + (95 - Ie) x Ppl / (Ppl + Bpl)    G.711: Ie = 0, Bpl = 25.1 (random loss with PLC, G.113)
 *   MOS = 1                                  when R <= 0
 *       = 1 + 0.035 R + 7e-6 R (R - 60) (100 - R)   when 0 < R < 100
 *       = 4.5                                when R >= 100
 * Ppl is the packet loss in percent: the worse of what we lost from the party and what the party
 * reported losing from us.
 */
export interface LegQuality {
  /** the media server's endpoint the figures are from */
  endpointId: string;
  /** the party's SSRC (what we receive) and ours towards it (decimal strings, as Kurento sends them) */
  ssrcIn?: string;
  ssrcOut?: string;
  packetsSent: number;
  packetsReceived: number;
  /** packets of the party's stream we never received (RFC 3550 cumulative loss) */
  packetsLost: number;
  /** packets of our stream the party reported lost (its RTCP receiver reports) */
  packetsLostByPeer?: number;
  /** interarrival jitter of the party's stream, ms */
  jitterMs: number;
  /** round-trip time from the party's receiver reports, ms */
  rttMs?: number;
  /** packet loss used by the estimate, percent */
  lossPercent: number;
  rFactor: number;
  mos: number;
  /** epoch ms of the sample */
  sampledAt: number;
  /** true: sampled on the call's end path; false: the last periodic sample (the end-path one did not answer) */
  final: boolean;
}

/** the fields of getStats('AUDIO') the quality needs (docs/media-server.md, "RTCP") */
export interface EndpointStats {
  inbound?: { ssrc?: string; packetsReceived?: number; packetsLost?: number; jitter?: number };
  outbound?: { ssrc?: string; packetsSent?: number; packetsLost?: number; roundTripTime?: number };
}

const G711_IE = 0;
const G711_BPL = 25.1;

/** R-factor for a loss (percent), a one-way delay (ms) */
export function rFactor(lossPercent: number, oneWayDelayMs: number): number {
  const d = Math.max(0, oneWayDelayMs);
  const id = 0.024 * d + (d >= 177.3 ? 0.11 * (d - 177.3) : 0);
  const ppl = Math.min(100, Math.max(0, lossPercent));
  const ieEff = G711_IE + ((95 - G711_IE) * ppl) / (ppl + G711_BPL);
  return 93.2 - id - ieEff;
}

export function mosFromR(r: number): number {
  if (r <= 0) return 1;
  if (r >= 100) return 4.5;
  return 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r);
}

const num = (x: unknown): number | undefined => (typeof x === 'number' && Number.isFinite(x) && x >= 0 ? x : undefined);
const round = (x: number, digits: number): number => Math.round(x * 10 ** digits) / 10 ** digits;

/** the leg's quality from one getStats answer */
export function legQuality(endpointId: string, stats: EndpointStats, sampledAt: number, final: boolean): LegQuality {
  const received = num(stats.inbound?.packetsReceived) ?? 0;
  const lost = num(stats.inbound?.packetsLost) ?? 0;
  const sent = num(stats.outbound?.packetsSent) ?? 0;
  const lostByPeer = num(stats.outbound?.packetsLost);
  const jitterMs = (num(stats.inbound?.jitter) ?? 0) * 1000;
  const rttS = num(stats.outbound?.roundTripTime);
  const rttMs = rttS === undefined ? undefined : rttS * 1000;
  // a leg whose stats answered but that never heard the party (nothing received, nothing counted lost) carried
  // no audio from it: that is total loss, not a perfect call (no stats at all stays 0: nothing is known)
  const heardNothing = stats.inbound !== undefined && received === 0 && lost === 0;
  const inLoss = received + lost > 0 ? (100 * lost) / (received + lost) : heardNothing ? 100 : 0;
  const outLoss = lostByPeer !== undefined && sent > 0 ? (100 * lostByPeer) / Math.max(sent, lostByPeer) : 0;
  const lossPercent = Math.max(inLoss, outLoss);
  const r = rFactor(lossPercent, (rttMs ?? 0) / 2 + 2 * jitterMs + 20);
  return {
    endpointId,
    ...(stats.inbound?.ssrc ? { ssrcIn: stats.inbound.ssrc } : {}),
    ...(stats.outbound?.ssrc ? { ssrcOut: stats.outbound.ssrc } : {}),
    packetsSent: sent,
    packetsReceived: received,
    packetsLost: lost,
    ...(lostByPeer !== undefined ? { packetsLostByPeer: lostByPeer } : {}),
    jitterMs: round(jitterMs, 2),
    ...(rttMs !== undefined ? { rttMs: round(rttMs, 2) } : {}),
    lossPercent: round(lossPercent, 3),
    rFactor: round(r, 1),
    mos: round(mosFromR(r), 2),
    sampledAt,
    final,
  };
}

/** picks the inbound and outbound RTP entries out of a Kurento getStats map */
export function endpointStatsFrom(raw: unknown): EndpointStats {
  const out: EndpointStats = {};
  if (!raw || typeof raw !== 'object') return out;
  for (const entry of Object.values(raw as Record<string, unknown>)) {
    if (!entry || typeof entry !== 'object') continue;
    const e = entry as Record<string, unknown>;
    const type = String(e.type ?? '').toLowerCase();
    const ssrc = typeof e.ssrc === 'string' || typeof e.ssrc === 'number' ? String(e.ssrc) : undefined;
    if (type === 'inboundrtp' || type === 'inbound-rtp') {
      out.inbound = { ...(ssrc ? { ssrc } : {}), packetsReceived: Number(e.packetsReceived), packetsLost: Number(e.packetsLost), jitter: Number(e.jitter) };
    } else if (type === 'outboundrtp' || type === 'outbound-rtp') {
      out.outbound = {
        ...(ssrc ? { ssrc } : {}),
        packetsSent: Number(e.packetsSent),
        ...(e.packetsLost !== undefined ? { packetsLost: Number(e.packetsLost) } : {}),
        ...(e.roundTripTime !== undefined ? { roundTripTime: Number(e.roundTripTime) } : {}),
      };
    }
  }
  return out;
}
