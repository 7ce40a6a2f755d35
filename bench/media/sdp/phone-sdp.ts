import { parse } from 'sdp-transform';

/** The SDP offer or answer of a plain G.711 phone at 127.0.0.1:`port` (RTCP on port+1, no rtcp-mux). */
export function phoneSdp(port: number, sessionId: number): string {
  return [
    'v=0',
    `o=bench ${sessionId} 1 IN IP4 127.0.0.1`,
    's=ferry-bench',
    'c=IN IP4 127.0.0.1',
    't=0 0',
    `m=audio ${port} RTP/AVP 0`,
    'a=rtpmap:0 PCMU/8000',
    'a=ptime:20',
    'a=sendrecv',
    '',
  ].join('\r\n');
}

/** Where the far side of an SDP wants its audio: the first audio m-line's address and port. */
export function audioTarget(sdp: string): { host: string; port: number } {
  const s = parse(sdp);
  const m = s.media.find((x) => x.type === 'audio');
  if (!m) throw new Error('SDP has no audio m-line');
  const host = m.connection?.ip ?? s.connection?.ip;
  if (!host) throw new Error('SDP has no connection address');
  if (!m.port) throw new Error('SDP audio port is 0 (rejected)');
  return { host, port: m.port };
}
