import * as sdpTransform from 'sdp-transform';
import { KurentoErrors, type KurentoError } from '../errors/kurento-error';
import { codecKey } from '../relay/codec-table';
import type { CryptoAttribute } from '../srtp/sdes-crypto';
import { MAX_MLINES } from './rejected-media';

/**
 * SDP for the plain RTP leg (RtpEndpoint): parse a peer's offer/answer into what the leg needs, and
 * write our offers/answers. Audio only (G.711 PCMU/PCMA + telephone-event), RTP/AVP or RTP/AVPF, or
 * their SRTP forms RTP/SAVP and RTP/SAVPF with SDES keys (`a=crypto`, RFC 4568). Pure functions; every failure is a KurentoError with an SDP code.
 */
export type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';
export type RtpProfile = 'RTP/AVP' | 'RTP/AVPF' | 'RTP/SAVP' | 'RTP/SAVPF';
const PROFILES: readonly string[] = ['RTP/AVP', 'RTP/AVPF', 'RTP/SAVP', 'RTP/SAVPF'];

/** RTP/SAVP and RTP/SAVPF: SRTP, keyed by SDES. */
export function isSecureProfile(p: RtpProfile): boolean {
  return p === 'RTP/SAVP' || p === 'RTP/SAVPF';
}

export interface SdpCodec {
  pt: number;
  /** `pcmu/8000`, `pcma/8000`, `telephone-event/8000` */
  key: string;
  name: string;
  rate: number;
  fmtp: string | undefined;
}

export interface MLineSummary {
  type: string;
  port: number;
  protocol: string;
  payloads: string;
}

export interface RemoteAudio {
  address: string;
  port: number;
  rtcpAddress: string;
  rtcpPort: number;
  rtcpMux: boolean;
  profile: RtpProfile;
  /** Codecs of the audio line that we support, in the peer's order. */
  codecs: SdpCodec[];
  direction: Direction;
  /** The audio line's `a=crypto` lines (SDES), as written. */
  crypto: CryptoAttribute[];
  /** Index of the chosen audio m-line among `mlines`. */
  index: number;
  mlines: MLineSummary[];
}

export const SUPPORTED_CODECS: ReadonlyMap<string, { name: string; rate: number; staticPt: number | undefined }> = new Map([
  ['pcmu/8000', { name: 'PCMU', rate: 8000, staticPt: 0 }],
  ['pcma/8000', { name: 'PCMA', rate: 8000, staticPt: 8 }],
  ['telephone-event/8000', { name: 'telephone-event', rate: 8000, staticPt: undefined }],
]);
export const TELEPHONE_EVENT = 'telephone-event/8000';
const STATIC_NAMES: Record<number, string> = { 0: 'pcmu/8000', 8: 'pcma/8000' };

/**
 * Parse the peer's SDP. `fail` builds the error for semantic problems (40205 for offers, 40206 for
 * answers); syntax problems are 40201 SDP_PARSE_ERROR. The audio line used is the first usable one
 * (see `usableAudioIndex`); without one, `fail` is thrown.
 */
export function parseRemoteAudio(text: unknown, what: 'offer' | 'answer', fail: (msg: string) => KurentoError): RemoteAudio {
  const d = parseDescription(text, what);
  const index = usableAudioIndex(d);
  if (index < 0) throw fail(noUsableAudio(d, what));
  return readAudio(d, index, what);
}

/**
 * An offer to an RtpEndpoint: its usable audio line, or — when it has none (video only, audio in a
 * transport or with codecs ferry does not speak, every line at port 0) — its m-lines, all to be answered
 * with port 0 (`mirror` with index -1), as KMS answers. Syntax problems are still 40201.
 */
export function parseRtpOffer(text: unknown): { audio: RemoteAudio } | { rejectAll: MLineSummary[] } {
  const d = parseDescription(text, 'offer');
  const index = usableAudioIndex(d);
  if (index < 0) return { rejectAll: d.mlines };
  return { audio: readAudio(d, index, 'offer') };
}

interface ParsedDescription {
  parsed: sdpTransform.SessionDescription;
  media: sdpTransform.SessionDescription['media'];
  mlines: MLineSummary[];
}

function parseDescription(text: unknown, what: 'offer' | 'answer'): ParsedDescription {
  if (typeof text !== 'string' || text.trim() === '') throw KurentoErrors.sdpParse(`Empty ${what} not valid`);
  if (!/^v=0\r?$/m.test(text.split('\n', 1)[0] ?? '')) throw KurentoErrors.sdpParse(`SDP ${what} must start with v=0`);
  let parsed: sdpTransform.SessionDescription;
  try {
    parsed = sdpTransform.parse(text);
  } catch (err) {
    throw KurentoErrors.sdpParse(`Cannot parse SDP ${what}: ${(err as Error).message}`);
  }
  const media = Array.isArray(parsed.media) ? parsed.media : [];
  if (media.length === 0) throw KurentoErrors.sdpParse(`SDP ${what} has no m= line`);
  if (media.length > MAX_MLINES) throw KurentoErrors.sdpParse(`SDP ${what} has more than ${MAX_MLINES} m= lines`);
  const mlines: MLineSummary[] = media.map((m) => ({
    type: String(m.type),
    port: Number(m.port),
    protocol: String(m.protocol),
    payloads: String(m.payloads ?? ''),
  }));
  for (const m of mlines) {
    if (!m.type || !Number.isInteger(m.port) || m.port < 0 || m.port > 65535 || !m.protocol || m.protocol === 'undefined') {
      throw KurentoErrors.sdpParse(`SDP ${what} has a malformed m= line`);
    }
    if (m.type !== 'audio' || !PROFILES.includes(m.protocol)) continue;
    for (const token of m.payloads.split(/\s+/).filter(Boolean)) {
      const pt = Number(token);
      if (!Number.isInteger(pt) || pt < 0 || pt > 127) throw KurentoErrors.sdpParse(`SDP ${what} has a bad payload type '${token}'`);
    }
  }
  return { parsed, media, mlines };
}

/** The first audio line ferry can carry: port > 0, an RTP profile, and PCMU or PCMA among its formats; -1 when none. */
function usableAudioIndex(d: ParsedDescription): number {
  return d.media.findIndex((m, i) => {
    const line = d.mlines[i]!;
    if (m.type !== 'audio' || line.port === 0 || !PROFILES.includes(line.protocol)) return false;
    const rtpmaps = new Map<number, string>();
    for (const r of m.rtp ?? []) rtpmaps.set(Number(r.payload), codecKey(String(r.codec), Number(r.rate)));
    return line.payloads.split(/\s+/).some((token) => {
      const pt = Number(token);
      const key = rtpmaps.get(pt) ?? STATIC_NAMES[pt];
      return key !== undefined && key !== TELEPHONE_EVENT && SUPPORTED_CODECS.has(key);
    });
  });
}

function noUsableAudio(d: ParsedDescription, what: 'offer' | 'answer'): string {
  const audio = d.media.find((m) => m.type === 'audio');
  if (!audio) return `no audio line in ${what}`;
  return `no usable audio line in ${what} (profile ${audio.protocol}, port ${audio.port}; need RTP/AVP, RTP/AVPF, RTP/SAVP or RTP/SAVPF with PCMU or PCMA)`;
}

function readAudio(d: ParsedDescription, index: number, what: 'offer' | 'answer'): RemoteAudio {
  const { parsed, media, mlines } = d;
  const m = media[index]!;
  const ip: unknown = m.connection?.ip ?? parsed.connection?.ip;
  if (!ip || !isIpAddress(ip)) throw KurentoErrors.sdpParse(`SDP ${what} has no valid c= address for audio`);
  const port = mlines[index]!.port;
  const codecs: SdpCodec[] = [];
  const rtpmaps = new Map<number, { codec: string; rate: number }>();
  for (const r of m.rtp ?? []) rtpmaps.set(Number(r.payload), { codec: String(r.codec), rate: Number(r.rate) });
  const fmtps = new Map<number, string>();
  for (const f of m.fmtp ?? []) fmtps.set(Number(f.payload), String(f.config));
  for (const token of mlines[index]!.payloads.split(/\s+/).filter(Boolean)) {
    const pt = Number(token);
    if (!Number.isInteger(pt) || pt < 0 || pt > 127) throw KurentoErrors.sdpParse(`SDP ${what} has a bad payload type '${token}'`);
    const map = rtpmaps.get(pt);
    const key = map ? codecKey(map.codec, map.rate) : STATIC_NAMES[pt];
    if (!key || !SUPPORTED_CODECS.has(key)) continue;
    const info = SUPPORTED_CODECS.get(key)!;
    codecs.push({ pt, key, name: info.name, rate: info.rate, fmtp: fmtps.get(pt) });
  }
  const rtcpMux = m.rtcpMux !== undefined;
  const rtcpPort = rtcpMux ? port : Number(m.rtcp?.port ?? port + 1);
  if (!Number.isInteger(rtcpPort) || rtcpPort <= 0 || rtcpPort > 65535) throw KurentoErrors.sdpParse(`SDP ${what} has a bad a=rtcp port`);
  const rtcpAddress = m.rtcp?.address && isIpAddress(m.rtcp.address) ? m.rtcp.address : ip;
  const direction = asDirection(m.direction ?? parsed.direction ?? 'sendrecv');
  return {
    address: ip,
    port,
    rtcpAddress,
    rtcpPort,
    rtcpMux,
    profile: m.protocol as RtpProfile,
    codecs,
    direction,
    crypto: (m.crypto ?? []).map((c) => ({ id: Number(c.id), suite: String(c.suite), config: String(c.config), sessionConfig: c.sessionConfig === undefined ? undefined : String(c.sessionConfig) })),
    index,
    mlines,
  };
}

export interface LocalAudioDescription {
  sessionId: string;
  version: number;
  address: string;
  port: number;
  rtcpPort: number | undefined;
  rtcpMux: boolean;
  profile: RtpProfile;
  codecs: SdpCodec[];
  direction: Direction;
  /** Our SDES key attribute (`<tag> <suite> inline:<key>`), for RTP/SAVP(F). */
  crypto?: string;
  /** For answers: the offer's m-lines, every one but `index` rejected with port 0 (-1: all of them). */
  mirror?: { mlines: MLineSummary[]; index: number };
}

export function writeAudioSdp(d: LocalAudioDescription): string {
  const lines = [
    'v=0',
    `o=- ${d.sessionId} ${d.version} IN ${ipVer(d.address)} ${d.address}`,
    's=ferry',
    `c=IN ${ipVer(d.address)} ${d.address}`,
    't=0 0',
  ];
  const total = d.mirror ? d.mirror.mlines.length : 1;
  for (let i = 0; i < total; i++) {
    if (d.mirror && i !== d.mirror.index) {
      const m = d.mirror.mlines[i]!;
      lines.push(`m=${m.type} 0 ${m.protocol} ${m.payloads.split(/\s+/).find(Boolean) ?? '0'}`);
      continue;
    }
    lines.push(`m=audio ${d.port} ${d.profile} ${d.codecs.map((c) => c.pt).join(' ')}`);
    if (d.rtcpPort !== undefined && !d.rtcpMux) lines.push(`a=rtcp:${d.rtcpPort}`);
    for (const c of d.codecs) {
      lines.push(`a=rtpmap:${c.pt} ${c.name}/${c.rate}`);
      if (c.fmtp) lines.push(`a=fmtp:${c.pt} ${c.fmtp}`);
    }
    if (d.rtcpMux) lines.push('a=rtcp-mux');
    if (d.crypto) lines.push(`a=crypto:${d.crypto}`);
    lines.push('a=ptime:20');
    lines.push(`a=${d.direction}`);
  }
  return lines.join('\r\n') + '\r\n';
}

/** Our offer's codecs: the preferred keys first (what a connected source negotiated), then the rest. */
export function offerCodecs(preferred: string[]): SdpCodec[] {
  const order = [...new Set([...preferred.filter((k) => SUPPORTED_CODECS.has(k) && k !== TELEPHONE_EVENT), 'pcmu/8000', 'pcma/8000'])];
  const out: SdpCodec[] = order.map((key) => {
    const info = SUPPORTED_CODECS.get(key)!;
    return { pt: info.staticPt!, key, name: info.name, rate: info.rate, fmtp: undefined };
  });
  out.push({ pt: 101, key: TELEPHONE_EVENT, name: 'telephone-event', rate: 8000, fmtp: '0-16' });
  return out;
}

/** Our answer's codecs: one voice codec (the first offered one that is preferred, else the first offered) + telephone-event. */
export function answerCodecs(offered: SdpCodec[], preferred: string[]): SdpCodec[] {
  const voice = offered.filter((c) => c.key !== TELEPHONE_EVENT);
  const chosen = voice.find((c) => preferred.includes(c.key)) ?? voice[0];
  if (!chosen) return [];
  const te = offered.find((c) => c.key === TELEPHONE_EVENT);
  return te ? [chosen, te] : [chosen];
}

export function answerDirection(offer: Direction): Direction {
  if (offer === 'sendonly') return 'recvonly';
  if (offer === 'recvonly') return 'sendonly';
  return offer;
}

/** Does the peer send media, given the direction it wrote in its own SDP? */
export function peerSends(d: Direction): boolean {
  return d === 'sendrecv' || d === 'sendonly';
}

export function peerReceives(d: Direction): boolean {
  return d === 'sendrecv' || d === 'recvonly';
}

function asDirection(v: string): Direction {
  return v === 'sendonly' || v === 'recvonly' || v === 'inactive' ? v : 'sendrecv';
}

function ipVer(a: string): string {
  return a.includes(':') ? 'IP6' : 'IP4';
}

function isIpAddress(s: unknown): s is string {
  if (typeof s !== 'string') return false;
  return /^(\d{1,3})(\.\d{1,3}){3}$/.test(s) ? s.split('.').every((p) => Number(p) <= 255) : /^[0-9a-fA-F:.]+$/.test(s) && s.includes(':');
}
