/**
 * One public address for the WebRTC leg's ICE host candidates (FERRY_MEDIA_PUBLIC_IP): behind a 1:1 NAT
 * the media server binds a private address, but browsers must be told the public one that the NAT
 * forwards to it. The sockets, and what the ICE agent checks, stay on the private address; only what is
 * written in candidates and the SDP changes. Server-reflexive and relayed candidates are left alone.
 */

const CANDIDATE = /^((?:a=)?candidate:\S+ \d+ udp \d+ )(\S+)( \d+ typ host\b.*)$/i;

/** `candidate` with its host address replaced by `publicIp` when it is one of `bound`. */
export function advertiseCandidate(candidate: string, bound: readonly string[], publicIp: string | undefined): string {
  if (!publicIp) return candidate;
  const m = CANDIDATE.exec(candidate);
  if (!m || !bound.includes(m[2]!)) return candidate;
  return `${m[1]}${publicIp}${m[3]}`;
}

/** An SDP whose host candidates and `c=` lines on `bound` addresses name `publicIp` instead. */
export function advertiseSdp(sdp: string, bound: readonly string[], publicIp: string | undefined): string {
  if (!publicIp) return sdp;
  return sdp.split('\r\n').map((line) => {
    if (line.startsWith('a=candidate:')) return advertiseCandidate(line, bound, publicIp);
    const c = /^c=IN IP4 (\S+)$/.exec(line);
    if (c && bound.includes(c[1]!)) return `c=IN IP4 ${publicIp}`;
    return line;
  }).join('\r\n');
}
