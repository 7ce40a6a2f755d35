import dgram from 'node:dgram';
import { once } from 'node:events';
import { newRouteState, type NativeRouteConfig } from '../../src/media/native/native-relay';
import { PT_UNKNOWN } from '../../src/media/native/offload-types';
import { rtpPacket } from './media-webrtc-peer';

/**
 * Real loopback UDP sockets and native relay routes for the tests of the native relay addon
 * (src/media/native/addon.c, relay.c): sockets bound to free ports, RTP packets built by hand, a route
 * configuration with defaults, and what a socket's 'message' listeners see.
 */
export class UdpSockets {
  private readonly sockets: dgram.Socket[] = [];

  /** A UDP socket bound to a free port on 127.0.0.1 (closed by closeAll()) */
  readonly bound = async (): Promise<dgram.Socket> => {
    const s = dgram.createSocket('udp4');
    s.bind(0, '127.0.0.1');
    await once(s, 'listening');
    this.sockets.push(s);
    return s;
  };

  /** Closes every socket bound here that the test did not close itself */
  readonly closeAll = (): void => {
    for (const s of this.sockets) {
      try {
        s.close();
      } catch {
        // closed by the test
      }
    }
  };
}

/** An RTP packet (media-webrtc-peer's rtpPacket) whose payload is `payload` bytes of 0x33, or the bytes given */
export function rtp(pt: number, seq: number, ts: number, ssrc: number, payload: Buffer | number = 160, marker = false): Buffer {
  return rtpPacket(pt, seq, ts, ssrc, typeof payload === 'number' ? Buffer.alloc(payload, 0x33) : payload, marker);
}

/** A route's payload-type map: `[in, out]` pairs, every other type unknown */
export function ptMapOf(pairs: [number, number][]): Uint8Array {
  const m = new Uint8Array(128).fill(PT_UNKNOWN);
  for (const [i, o] of pairs) m[i] = o;
  return m;
}

/** A route's configuration: PCMU in and out at 8 kHz, no peer, destination or SRTP, fresh state; `over` sets the rest */
export function routeConfig(over: Partial<NativeRouteConfig> & Pick<NativeRouteConfig, 'out'>): NativeRouteConfig {
  return {
    peer: null,
    dest: null,
    outSsrc: 0x11223344,
    ptMap: ptMapOf([[0, 0]]),
    clockRates: new Uint32Array(128).fill(8000),
    receiveClockRate: 8000,
    srtpIn: null,
    srtpOut: null,
    state: newRouteState(),
    ...over,
  };
}

/** Where `s` is, as a route's peer or destination */
export function to(s: dgram.Socket): { address: string; port: number } {
  return { address: '127.0.0.1', port: s.address().port };
}

export interface Box {
  msgs: { msg: Buffer; from: string; size: number }[];
}

/** Every datagram `s`'s 'message' listeners get from now on, with its sender and size */
export function collect(s: dgram.Socket): Box {
  const box: Box = { msgs: [] };
  s.on('message', (msg, rinfo) => box.msgs.push({ msg, from: `${rinfo.address}:${rinfo.port}`, size: rinfo.size }));
  return box;
}
