import * as sdpTransform from 'sdp-transform';

/**
 * SDP rewriting with sdp-transform so the two legs of a call share one G.711 codec (PCMU or
 * PCMA) plus telephone-event, and hold/resume directions can be carried across. Pure functions;
 * bad SDP throws SdpError with a clear message.
 */
export class SdpError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SdpError';
  }
}

export type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';
export const G711 = ['PCMU', 'PCMA'] as const;

function parse(sdp: string): sdpTransform.SessionDescription {
  if (typeof sdp !== 'string' || !/^v=0\r?\n/.test(sdp)) throw new SdpError('not an SDP body (must start with v=0)');
  let s: sdpTransform.SessionDescription;
  try {
    s = sdpTransform.parse(sdp);
  } catch (err) {
    throw new SdpError(`unparseable SDP: ${(err as Error).message}`);
  }
  if (!s.media || s.media.length === 0) throw new SdpError('SDP has no media section');
  return s;
}

function audio(s: sdpTransform.SessionDescription): sdpTransform.SessionDescription['media'][number] {
  const m = s.media.find((x) => x.type === 'audio' && x.port !== 0);
  if (!m) throw new SdpError('SDP has no active audio section');
  return m;
}

/** the G.711 codecs an SDP offers, in its order of preference (sdp-transform reads an all-digit codec name, `a=rtpmap:0 0`, as a number) */
export function g711Codecs(sdp: string): string[] {
  const m = audio(parse(sdp));
  const order = String(m.payloads ?? '').split(/\s+/).map(Number);
  const names: string[] = [];
  for (const pt of order) {
    const r = m.rtp.find((x) => x.payload === pt);
    const name = r ? String(r.codec).toUpperCase() : pt === 0 ? 'PCMU' : pt === 8 ? 'PCMA' : undefined;
    if (name && (G711 as readonly string[]).includes(name) && !names.includes(name)) names.push(name);
  }
  return names;
}

/** the codec the answer chose: its first audio payload that is G.711 */
export function chosenCodec(sdp: string): string {
  const c = g711Codecs(sdp)[0];
  if (!c) throw new SdpError('the SDP carries no G.711 codec (PCMU or PCMA)');
  return c;
}

/**
 * Keeps only `codecs` (in the order given, filtered to what the SDP offers) and telephone-event
 * in the audio section; rejects (port 0) other media sections. Throws when nothing is left.
 */
export function restrictCodecs(sdp: string, codecs: readonly string[] = G711): string {
  const s = parse(sdp);
  const m = audio(s);
  const wanted = codecs.map((c) => c.toUpperCase());
  const keep: number[] = [];
  for (const name of wanted) {
    const r = m.rtp.find((x) => String(x.codec).toUpperCase() === name && x.rate === 8000);
    if (r) keep.push(r.payload);
    else if (name === 'PCMU' && String(m.payloads).split(' ').includes('0') && !m.rtp.some((x) => x.payload === 0)) keep.push(0);
    else if (name === 'PCMA' && String(m.payloads).split(' ').includes('8') && !m.rtp.some((x) => x.payload === 8)) keep.push(8);
  }
  if (keep.length === 0) throw new SdpError(`no common codec: SDP offers ${g711Codecs(sdp).join(', ') || 'no G.711'}; needed one of ${wanted.join(', ')}`);
  const te = m.rtp.find((x) => String(x.codec).toLowerCase() === 'telephone-event' && x.rate === 8000);
  if (te) keep.push(te.payload);
  m.rtp = m.rtp.filter((r) => keep.includes(r.payload));
  m.fmtp = (m.fmtp ?? []).filter((f) => keep.includes(f.payload));
  if (m.rtcpFb) m.rtcpFb = m.rtcpFb.filter((f) => f.payload === '*' || keep.includes(Number(f.payload)));
  m.payloads = keep.join(' ');
  for (const other of s.media) {
    if (other !== m && other.type !== 'audio') other.port = 0;
  }
  return sdpTransform.write(s);
}

export function direction(sdp: string): Direction {
  const s = parse(sdp);
  const m = audio(s);
  const d = (m.direction ?? s.direction ?? 'sendrecv') as Direction;
  const c = m.connection?.ip ?? s.connection?.ip;
  // RFC 2543 hold: c=0.0.0.0 means "do not send to me"
  if (c === '0.0.0.0' && d === 'sendrecv') return 'sendonly';
  return d;
}

export function withDirection(sdp: string, d: Direction): string {
  const s = parse(sdp);
  const m = audio(s);
  delete s.direction;
  m.direction = d;
  return sdpTransform.write(s);
}

/** the direction our answer must have when the peer offers `d` */
export function answerDirection(d: Direction): Direction {
  return d === 'sendonly' ? 'recvonly' : d === 'recvonly' ? 'sendonly' : d;
}

/** increments o= session version (a changed SDP in a re-INVITE / its answer must bump it) */
export function bumpVersion(sdp: string): string {
  const s = parse(sdp);
  if (s.origin) s.origin.sessionVersion = Number(s.origin.sessionVersion) + 1;
  return sdpTransform.write(s);
}

/**
 * true when the audio section is WebRTC (DTLS-SRTP: UDP/TLS/RTP/SAVPF, or the older RTP/SAVPF with a
 * DTLS fingerprint and no SDES key). A phone's SRTP offer (RTP/SAVP or RTP/SAVPF with `a=crypto`) is
 * not WebRTC: it goes to an RtpEndpoint, which answers it with its own SDES key.
 */
export function isWebRtc(sdp: string): boolean {
  const s = parse(sdp);
  const m = audio(s);
  if (/TLS/.test(m.protocol)) return true;
  if (!/SAVPF?/.test(m.protocol)) return false;
  const sdes = (m.crypto ?? []).length > 0;
  const dtls = m.fingerprint !== undefined || s.fingerprint !== undefined;
  return dtls && !sdes;
}

/** the SRTP suite a phone's SDES offer must include (the one ferry media speaks) */
export const SDES_SUITE = 'AES_CM_128_HMAC_SHA1_80';

/**
 * A phone's SRTP offer (RTP/SAVP or RTP/SAVPF, not WebRTC) must carry an SDES key ferry can use:
 * an `a=crypto` line with AES_CM_128_HMAC_SHA1_80 and an inline key. Throws SdpError naming what is
 * missing (the caller answers 488 with it); plain RTP offers pass.
 */
export function requireUsableSdes(sdp: string): void {
  const m = audio(parse(sdp));
  if (!/^RTP\/SAVPF?$/.test(m.protocol)) return;
  const lines = m.crypto ?? [];
  if (lines.length === 0) throw new SdpError(`${m.protocol} offer without a=crypto (SDES key needed)`);
  if (!lines.some((c) => String(c.suite) === SDES_SUITE && /^inline:/.test(String(c.config)))) {
    throw new SdpError(`no supported SRTP crypto suite offered (${lines.map((c) => String(c.suite)).join(', ')}); needed ${SDES_SUITE}`);
  }
}

/** adds ICE candidates (`candidate:...` lines) to every active media section that lacks them */
export function withCandidates(sdp: string, candidates: string[]): string {
  if (candidates.length === 0) return sdp;
  const s = parse(sdp);
  for (const m of s.media) {
    if (m.port === 0) continue;
    const have = new Set((m.candidates ?? []).map((c) => `${c.foundation} ${c.component} ${c.ip} ${c.port}`));
    for (const line of candidates) {
      const parsed = sdpTransform.parse(`v=0\r\nm=audio 9 UDP 0\r\na=${line.replace(/^a=/, '')}\r\n`).media[0]?.candidates?.[0];
      if (!parsed) continue;
      const key = `${parsed.foundation} ${parsed.component} ${parsed.ip} ${parsed.port}`;
      if (have.has(key)) continue;
      have.add(key);
      (m.candidates ??= []).push(parsed);
    }
    m.endOfCandidates = 'end-of-candidates';
  }
  return sdpTransform.write(s);
}
