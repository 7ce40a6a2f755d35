import { RTCPeerConnection } from 'werift';

/**
 * A werift peer connection for tests on loopback: no interface scan, no STUN/TURN server, one host
 * candidate on 127.0.0.1, UDP only.
 */
export function loopbackPeerConnection(): RTCPeerConnection {
  return new RTCPeerConnection({
    iceServers: [],
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceAdditionalHostAddresses: ['127.0.0.1'],
    iceInterfaceAddresses: { udp4: '127.0.0.1' },
    iceUseTcp: false,
  });
}
