import type net from 'node:net';
import { SipStreamFramer } from '../message/sip-stream-framer';
import type { ConnectionGuard, ConnectionWatch } from './connection-guard';
import type { Flow, SipProtocol } from './flow';
import { StreamFlow } from './stream-flow';

export interface StreamTransportEvents {
  onMessage(data: Buffer, flow: Flow): void;
  onClose(flow: Flow): void;
  /**
   * A request refused by the framer once its headers were read (`head`), before its body: too large
   * (`status` 413) or with a missing/unreadable Content-Length (400). The engine answers it on `flow`
   * when the headers allow; the connection is closed right after.
   */
  onRefusedRequest?(head: Buffer, flow: Flow, status: 400 | 413, why: string): void;
}

/** How long a connection refused for a message may take to read our 413/400 before it is cut. */
const REFUSAL_LINGER_MS = 1000;

/**
 * Answers queued for a peer that does not read them, at most (in bytes, beyond what the kernel holds):
 * above this ferry sip stops reading the connection until the peer has read them (backpressure), so a
 * peer that pipelines requests and never reads the answers holds this much, not one answer per request.
 */
export function maxUnsentBytes(maxMessageBytes: number): number {
  return Math.max(256 * 1024, 4 * maxMessageBytes);
}

/**
 * Pauses reading `socket` (through `pause`/`resume`) while more than `limit` bytes wait to be sent on it,
 * resuming once they have drained. Returns the check to run after every write.
 */
export function readWhileDrained(socket: net.Socket, limit: number, pause: () => void, resume: () => void): () => void {
  let paused = false;
  return () => {
    if (paused || socket.writableLength <= limit) return;
    paused = true;
    pause();
    socket.once('drain', () => {
      paused = false;
      resume();
    });
  };
}

export interface ByteStreamOptions {
  id: string;
  protocol: SipProtocol;
  /** accepted from the network (counted against the caps) or opened by ferry sip */
  accepted: boolean;
  guard: ConnectionGuard;
  events: StreamTransportEvents;
  /**
   * The watch this connection was admitted with already, e.g. on the raw TCP connection before a TLS
   * handshake (ConnectionGuard explains); when given, the socket is not admitted again.
   */
  watch?: ConnectionWatch;
}

/**
 * Serves SIP over one byte-stream socket (TCP, or TLS once its handshake is done): admits it through the
 * ConnectionGuard, frames it by Content-Length, answers CRLF keep-alives, enforces the guard's size limit
 * and read deadlines, and reports messages and the close. Returns `undefined` when the guard refused the
 * connection (the socket is destroyed). Any byte-stream transport serves its sockets through here.
 */
export function serveSipByteStream(socket: net.Socket, options: ByteStreamOptions): StreamFlow | undefined {
  const { guard, events } = options;
  const peer = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0, protocol: options.protocol };
  let closeSocket = (): void => { socket.destroy(); };
  const close = (): void => closeSocket();
  const watch: ConnectionWatch | undefined = options.watch ?? (options.accepted ? guard.admit(peer, close) : guard.track(peer, close));
  if (!watch) {
    socket.destroy();
    return undefined;
  }
  socket.setNoDelay(true);
  const backpressure = readWhileDrained(socket, maxUnsentBytes(guard.limits.maxMessageBytes), () => socket.pause(), () => socket.resume());
  const flow = new StreamFlow(options.id, options.protocol, peer.address, peer.port, socket.localAddress ?? '', socket.localPort ?? 0,
    (d) => {
      socket.write(d);
      backpressure();
    });
  watch.attach(flow, close);
  watch.reading('none', 0); // a handshake before this is over
  let framer: SipStreamFramer | undefined = new SipStreamFramer(guard.limits.maxMessageBytes);
  socket.on('data', (chunk: Buffer) => {
    if (!framer) return; // refused: whatever still arrives is dropped until the socket is gone
    const out = framer.push(chunk);
    if (out.pings > 0) {
      socket.write('\r\n');
      backpressure();
    }
    for (const m of out.messages) events.onMessage(m, flow);
    if (out.error) {
      framer = undefined;
      if (out.refusedHead && events.onRefusedRequest) {
        events.onRefusedRequest(out.refusedHead, flow, out.tooLarge ? 413 : 400, out.error);
        // let the answer leave before the connection goes: stop reading (the rest of the body is never read),
        // half-close now, cut it shortly after
        closeSocket = () => {
          socket.pause();
          socket.end();
          guard.clock.setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS);
        };
      }
      watch.violation(out.tooLarge ? 'message-too-large' : 'bad-framing', out.error);
      return;
    }
    watch.reading(framer.pending, out.messages.length);
  });
  socket.on('error', () => { /* close follows */ });
  socket.on('close', () => {
    flow.closed = true;
    framer = undefined;
    watch.closed();
    events.onClose(flow);
  });
  return flow;
}
