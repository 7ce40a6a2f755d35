import { MediaStreamTrack, RTCPeerConnection } from 'werift';
import { disableDefaultStunServer } from '../../src/media/webrtc/werift-internals';
import { pollUntil } from './wait-for';

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

/**
 * The loopback peer connections a test file opens, closed together when it is done:
 * `const peers = new LoopbackPeers(); after(() => peers.closeAll());`.
 */
export class LoopbackPeers {
  private readonly open: RTCPeerConnection[] = [];

  create(): RTCPeerConnection {
    const pc = loopbackPeerConnection();
    this.open.push(pc);
    return pc;
  }

  async closeAll(): Promise<void> {
    for (const pc of this.open.splice(0)) await pc.close().catch(() => undefined);
  }

  /**
   * Two new peer connections connected to each other (ICE + DTLS): A offers one sendrecv audio transceiver,
   * B answers, each gathers completely before its description goes to the other, and both PeerConnections
   * reach 'connected'. `connectedWhat` names that last wait in its timeout error.
   */
  async connectedPair(connectedWhat = 'both connected'): Promise<{ a: RTCPeerConnection; b: RTCPeerConnection }> {
    const a = this.create();
    const b = this.create();
    a.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendrecv' });
    const offer = await a.createOffer();
    disableDefaultStunServer(a);
    await a.setLocalDescription(offer);
    await pollUntil(() => a.iceGatheringState === 'complete', { timeoutMs: 10_000, what: 'A gathered' });
    await b.setRemoteDescription(a.localDescription!);
    const answer = await b.createAnswer();
    disableDefaultStunServer(b);
    await b.setLocalDescription(answer);
    await pollUntil(() => b.iceGatheringState === 'complete', { timeoutMs: 10_000, what: 'B gathered' });
    await a.setRemoteDescription(b.localDescription!);
    await pollUntil(() => a.connectionState === 'connected' && b.connectionState === 'connected', { timeoutMs: 30_000, what: connectedWhat });
    return { a, b };
  }
}
