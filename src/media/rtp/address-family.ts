/**
 * Can ferry media's RTP sockets (bound on FERRY_MEDIA_RTP_HOST) send to `remote`, an address a peer's
 * SDP named? An IPv4 socket cannot send to an IPv6 address, nor an IPv6 one (even the dual-stack `::`)
 * to an IPv4 address as written in SDP: the send fails (EINVAL) and the call would be silent. Such an
 * offer or answer is refused with a message naming the families and the setting instead. The unspecified
 * addresses (0.0.0.0, ::: hold as old phones write it) send nothing and pass.
 * Returns undefined when it can, else the reason.
 */
export function rtpFamilyMismatch(rtpHost: string, remote: string): string | undefined {
  if (remote === '0.0.0.0' || remote === '::') return undefined;
  const socketV6 = rtpHost.includes(':');
  const remoteV6 = remote.includes(':');
  if (socketV6 === remoteV6) return undefined;
  return remoteV6
    ? `the SDP names the IPv6 address ${remote.slice(0, 45)} (c=IN IP6) but this media server's RTP is on IPv4 (FERRY_MEDIA_RTP_HOST ${rtpHost}): IPv6 media needs an IPv6 FERRY_MEDIA_RTP_HOST`
    : `the SDP names the IPv4 address ${remote.slice(0, 15)} (c=IN IP4) but this media server's RTP is on IPv6 (FERRY_MEDIA_RTP_HOST ${rtpHost}): IPv4 media needs an IPv4 FERRY_MEDIA_RTP_HOST`;
}
