import { MediaStreamTrack, RTCPeerConnection, type RTCSessionDescription } from 'werift';
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
   * Two new peer connections connected to each other (ICE + DTLS; exchangeDescriptions), both PeerConnections
   * 'connected'. `connectedWhat` names that wait in its timeout error.
   */
  async connectedPair(connectedWhat = 'both connected'): Promise<{ a: RTCPeerConnection; b: RTCPeerConnection }> {
    const a = this.create();
    const b = this.create();
    await exchangeDescriptions(a, b);
    await pollUntil(() => a.connectionState === 'connected' && b.connectionState === 'connected', { timeoutMs: 30_000, what: connectedWhat });
    return { a, b };
  }
}

/** Steps a test takes inside exchangeDescriptions, on the peer connections it passed. */
export interface ExchangeHooks {
  /** after A's local description (the offer) is set, before A's gathering is awaited */
  afterOffer?: () => void;
  /** after B's local description (the answer) is set, before B's gathering is awaited */
  afterAnswer?: () => void;
}

/**
 * Offer and answer between two loopback peer connections: A offers one sendrecv audio transceiver and B answers,
 * each without werift's default STUN server and gathered completely before its description goes to the other.
 * When it returns, ICE and DTLS are under way: the caller waits for the state it needs.
 */
export async function exchangeDescriptions(a: RTCPeerConnection, b: RTCPeerConnection, hooks: ExchangeHooks = {}): Promise<void> {
  a.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendrecv' });
  await setLocalAndGather(a, await a.createOffer(), 'A', hooks.afterOffer);
  await b.setRemoteDescription(a.localDescription!);
  await setLocalAndGather(b, await b.createAnswer(), 'B', hooks.afterAnswer);
  await a.setRemoteDescription(b.localDescription!);
}

/** Sets a peer connection's local description without werift's default STUN server, runs `then`, and waits until it has gathered. */
async function setLocalAndGather(
  pc: RTCPeerConnection,
  description: RTCSessionDescription,
  name: string,
  then: (() => void) | undefined,
): Promise<void> {
  disableDefaultStunServer(pc);
  await pc.setLocalDescription(description);
  then?.();
  await pollUntil(() => pc.iceGatheringState === 'complete', { timeoutMs: 10_000, what: `${name} gathered` });
}
