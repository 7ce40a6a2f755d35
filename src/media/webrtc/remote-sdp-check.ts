import { parse, write } from 'sdp-transform';
import { WebRtcSdpError } from './webrtc-sdp-error';
import type { G711Codec } from './webrtc-leg';
import { MAX_MLINES, offerMLines, offerForStack, type OfferedMLine } from '../sdp/rejected-media';

/**
 * Checks a browser's SDP before werift sees it, so bad input gets a clear message instead of a werift
 * stack trace (or a hang): one usable audio m-line over UDP/TLS/RTP/SAVP(F) with ICE credentials, a DTLS
 * fingerprint and a G.711 codec. Returns what the answer needs (payload types as the peer numbered them).
 */
export interface RemoteAudioOffer {
  mid: string | undefined;
  mLineIndex: number;
  pcmu: number | undefined;
  pcma: number | undefined;
  telephoneEvent: number | undefined;
  direction: 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';
}

const MAX_SDP_BYTES = 64 * 1024;
/**
 * Remote ICE candidates one WebRTC leg takes, in its peer's SDP and trickled (addIceCandidate) each: every
 * one is a target ICE checks are sent to. A browser on a host with several interfaces sends 10-20.
 */
export const MAX_REMOTE_CANDIDATES = 64;

export function checkRemoteSdp(sdp: unknown, stage: 'process-offer' | 'process-answer'): RemoteAudioOffer {
  const session = parseChecked(sdp);
  const media = Array.isArray(session.media) ? session.media : [];
  // An offer: the line ferry carries (the others are answered with port 0). An answer: its active audio line.
  const index = stage === 'process-offer' ? usableAudioIndex(media) : media.findIndex((m) => m.type === 'audio' && Number(m.port) !== 0);
  if (index < 0) throw new WebRtcSdpError(stage, stage === 'process-offer' ? 'SDP has no usable audio m-line (DTLS-SRTP with PCMU/0 or PCMA/8)' : 'SDP has no active audio m-line');
  const m = media[index]!;
  const proto = String(m.protocol ?? '');
  if (!/^(UDP\/TLS\/RTP\/SAVPF?|RTP\/SAVPF)$/i.test(proto)) {
    throw new WebRtcSdpError(stage, `audio m-line protocol ${JSON.stringify(proto)} is not DTLS-SRTP (UDP/TLS/RTP/SAVPF)`);
  }
  const ufrag = m.iceUfrag ?? session.iceUfrag;
  const pwd = m.icePwd ?? session.icePwd;
  if (!ufrag || !pwd) throw new WebRtcSdpError(stage, 'SDP lacks a=ice-ufrag / a=ice-pwd');
  if (!/^[A-Za-z0-9+/]{4,256}$/.test(String(ufrag)) || !/^[A-Za-z0-9+/]{22,256}$/.test(String(pwd))) {
    throw new WebRtcSdpError(stage, 'SDP has malformed ICE credentials');
  }
  if ((m.candidates?.length ?? 0) > MAX_REMOTE_CANDIDATES) {
    throw new WebRtcSdpError(stage, `SDP has more than ${MAX_REMOTE_CANDIDATES} ICE candidates in its audio m-line`);
  }
  const fp = m.fingerprint ?? session.fingerprint;
  if (!fp || !/^sha-(1|224|256|384|512)$/i.test(String(fp.type)) || !/^([0-9A-Fa-f]{2}:)+[0-9A-Fa-f]{2}$/.test(String(fp.hash))) {
    throw new WebRtcSdpError(stage, 'SDP lacks a valid a=fingerprint');
  }
  const setup = m.setup ?? session.setup;
  if (setup !== undefined && !['active', 'passive', 'actpass', 'holdconn'].includes(String(setup))) {
    throw new WebRtcSdpError(stage, `SDP has invalid a=setup:${String(setup)}`);
  }
  if (stage === 'process-offer' && setup !== undefined && setup !== 'actpass' && setup !== 'active' && setup !== 'passive') {
    throw new WebRtcSdpError(stage, `offer has a=setup:${String(setup)}`);
  }
  const payloads = String(m.payloads ?? '').trim().split(/\s+/).filter((p) => p !== '').map(Number);
  if (payloads.length === 0 || payloads.some((p) => !Number.isInteger(p) || p < 0 || p > 127)) {
    throw new WebRtcSdpError(stage, 'audio m-line has invalid payload types');
  }
  const rtpmap = new Map<number, string>();
  for (const r of m.rtp ?? []) {
    if (Number.isInteger(r.payload) && typeof r.codec === 'string') rtpmap.set(r.payload, `${r.codec.toUpperCase()}/${r.rate ?? ''}`);
  }
  const nameOf = (pt: number): string | undefined => rtpmap.get(pt) ?? (pt === 0 ? 'PCMU/8000' : pt === 8 ? 'PCMA/8000' : undefined);
  const find = (name: string): number | undefined => payloads.find((pt) => nameOf(pt) === name);
  const pcmu = find('PCMU/8000');
  const pcma = find('PCMA/8000');
  // PCMU/PCMA are static types; werift needs them at 0/8.
  if (pcmu === undefined && pcma === undefined) throw new WebRtcSdpError(stage, 'SDP offers neither PCMU/8000 nor PCMA/8000');
  const telephoneEvent = find('TELEPHONE-EVENT/8000');
  const direction = (['sendrecv', 'sendonly', 'recvonly', 'inactive'] as const).find((d) => m.direction === d) ?? 'sendrecv';
  return {
    mid: m.mid !== undefined ? String(m.mid) : undefined,
    mLineIndex: index,
    pcmu: pcmu === 0 ? 0 : undefined,
    pcma: pcma === 8 ? 8 : undefined,
    telephoneEvent,
    direction,
  };
}

/** A parsed SDP as this module hands it out: shared, so nobody may change it (restrictOfferCodecs copies what it changes). */
export type ParsedSdp = ReturnType<typeof parse>;

/**
 * The last SDP parsed and its result. An offer is read three times on its way in (webRtcOfferPlan in the
 * endpoint, then checkRemoteSdp and restrictOfferCodecs in the leg), and sdp-transform's parser is the costly
 * part of each: the text is parsed once and the result shared (read-only) by the three.
 */
let lastParsed: { sdp: string; session: ParsedSdp } | undefined;

function parseChecked(sdp: unknown): ParsedSdp {
  if (typeof sdp !== 'string' || sdp.trim() === '') throw new WebRtcSdpError('parse', 'Empty SDP not valid');
  if (lastParsed?.sdp === sdp) return lastParsed.session;
  if (sdp.length > MAX_SDP_BYTES) throw new WebRtcSdpError('parse', `SDP too large (${sdp.length} bytes)`);
  if (!/^v=0\r?\n/.test(sdp)) throw new WebRtcSdpError('parse', 'SDP must start with "v=0"');
  let session: ParsedSdp;
  try {
    session = parse(sdp);
  } catch (err) {
    throw new WebRtcSdpError('parse', `SDP parse error: ${(err as Error).message}`);
  }
  lastParsed = { sdp, session };
  return session;
}

/** A remote SDP parsed (the shared, read-only result: see lastParsed); syntax errors throw (stage 'parse'). */
export function parseRemoteSdp(sdp: unknown): ParsedSdp {
  return parseChecked(sdp);
}

const DTLS_SRTP = /^(UDP\/TLS\/RTP\/SAVPF?|RTP\/SAVPF)$/i;

/**
 * The offer's m-line a WebRtcEndpoint carries: the first audio line with a port, a DTLS-SRTP transport
 * and PCMU at 0 or PCMA at 8 (the only codecs ferry relays without transcoding); -1 when there is none.
 * Every other line (video, data channels, a second audio line, audio without G.711) is answered with
 * port 0 (src/media/sdp/rejected-media.ts).
 */
function usableAudioIndex(media: ParsedSdp['media']): number {
  return media.findIndex((m) => {
    if (m.type !== 'audio' || Number(m.port) === 0 || !DTLS_SRTP.test(String(m.protocol ?? ''))) return false;
    const names = new Map((m.rtp ?? []).map((r) => [Number(r.payload), `${String(r.codec).toUpperCase()}/${r.rate ?? ''}`]));
    const payloads = String(m.payloads ?? '').trim().split(/\s+/).map(Number);
    return (payloads.includes(0) && (names.get(0) ?? 'PCMU/8000') === 'PCMU/8000') || (payloads.includes(8) && (names.get(8) ?? 'PCMA/8000') === 'PCMA/8000');
  });
}

/** An offer's m-lines and the index of the one a WebRtcEndpoint carries (-1: answer them all with port 0). Syntax errors throw (stage 'parse'). */
export function webRtcOfferPlan(sdp: unknown): { mlines: OfferedMLine[]; carried: number } {
  const session = parseChecked(sdp);
  const media = Array.isArray(session.media) ? session.media : [];
  if (media.length > MAX_MLINES) throw new WebRtcSdpError('parse', `SDP has more than ${MAX_MLINES} m= lines`);
  const mlines = offerMLines(sdp as string);
  const malformed = mlines.findIndex((m, i) => !/^[A-Za-z][\w-]*$/.test(m.type) || String(media[i]?.type) !== m.type || !Number.isInteger(m.port) || m.port < 0 || m.port > 65535 || !/^[\w/]+$/.test(m.protocol));
  if (mlines.length !== media.length || malformed >= 0) throw new WebRtcSdpError('parse', `SDP has a malformed m= line${malformed >= 0 ? ` (#${malformed})` : ''}`);
  return { mlines, carried: usableAudioIndex(media) };
}

/** The G.711 codec to answer with: the preferred one if offered, else the other. */
export function chooseG711(offer: RemoteAudioOffer, preferred: G711Codec): G711Codec {
  const has = (c: G711Codec) => (c === 'PCMU' ? offer.pcmu !== undefined : offer.pcma !== undefined);
  if (has(preferred)) return preferred;
  const other: G711Codec = preferred === 'PCMU' ? 'PCMA' : 'PCMU';
  if (has(other)) return other;
  throw new WebRtcSdpError('process-offer', 'SDP offers PCMU/PCMA only at non-standard payload types');
}

/**
 * The offer as handed to the WebRTC stack: the audio m-line keeps only the payload types we answer with
 * (the chosen G.711 and telephone-event/8000). werift matches telephone-event by name and could otherwise
 * answer Chromium's telephone-event/48000. Every other m-line is already rejected (port 0, out of the
 * BUNDLE group), so the stack sets up nothing for it. The original text stays the remote session descriptor.
 * Done on the lines of the offer (the m-line's format list, and the carried line's rtpmap/fmtp/rtcp-fb lines of
 * other payload types, dropped), not by writing the parse back out: sdp-transform's writer costs as much as its
 * parser. Lines sdp-transform would not parse (not `x=...`) are dropped, as its writer drops them.
 */
export function restrictOfferCodecs(offer: string, audio: RemoteAudioOffer, codec: G711Codec, parsed: ParsedSdp = parseChecked(offer)): string {
  if (!parsed.media[audio.mLineIndex]) return offer;
  const keep = new Set<number>([codec === 'PCMU' ? 0 : 8]);
  if (audio.telephoneEvent !== undefined) keep.add(audio.telephoneEvent);
  const out: string[] = [];
  let section = -1;
  for (const line of offer.split(/\r\n|\r|\n/)) {
    if (!SDP_LINE.test(line)) continue;
    if (line.startsWith('m=')) {
      section++;
      if (section === audio.mLineIndex) {
        const [type, port, protocol] = line.slice(2).trim().split(/\s+/);
        out.push(`m=${type} ${port} ${protocol} ${[...keep].join(' ')}`);
        continue;
      }
    } else if (section === audio.mLineIndex) {
      const pt = PAYLOAD_ATTRIBUTE.exec(line);
      if (pt && !keep.has(Number(pt[1]))) continue;
    }
    if (line.startsWith('a=candidate:') && isMdnsCandidate(line)) continue;
    out.push(line);
  }
  return offerForStack(out.join('\r\n'), audio.mLineIndex);
}

/** A line sdp-transform parses (`<letter>=<value>`). */
const SDP_LINE = /^[a-z]=/;
/** An attribute of one payload type (`a=rtcp-fb:*` applies to all and is kept). */
const PAYLOAD_ATTRIBUTE = /^a=(?:rtpmap|fmtp|rtcp-fb):(\d+)(?:\s|$)/;

/** An `xxx.local` host (a browser hiding its address behind mDNS): ferry media does not resolve those. */
export function isMdnsCandidate(candidate: string): boolean {
  const host = candidate.trim().replace(/^(a=)?candidate:/i, '').split(/\s+/)[4] ?? '';
  return /\.local\.?$/i.test(host);
}

/**
 * werift resolves `.local` candidates with multicast DNS on every interface: traffic off the configured ICE
 * addresses, and useless for a server that is not on the browser's LAN. Such candidates are dropped (the
 * browser's other candidates, srflx/relay, still work).
 */
function withoutMdnsCandidates(session: ParsedSdp): ParsedSdp {
  const isMdns = (c: { ip: string }): boolean => /\.local\.?$/i.test(String(c.ip));
  if (!(session.media ?? []).some((m) => m.candidates?.some(isMdns))) return session;
  return { ...session, media: session.media.map((m) => (m.candidates?.some(isMdns) ? { ...m, candidates: m.candidates.filter((c) => !isMdns(c)) } : m)) };
}

/** The remote answer as handed to the WebRTC stack: mDNS candidates removed (see withoutMdnsCandidates). */
export function answerForStack(answer: string): string {
  if (!/\.local[.\s]/i.test(answer)) return answer;
  return write(withoutMdnsCandidates(parse(answer)));
}
