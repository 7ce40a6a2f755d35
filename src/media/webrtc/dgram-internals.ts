import type { Socket } from 'node:dgram';
import { isIP } from 'node:net';

/**
 * The one place ferry reaches below node:dgram's public API (Node 20's lib/dgram.js and
 * lib/internal/dgram.js); test/unit/dgram-internals.test.ts pins the shape on the running Node.
 *
 * A dgram socket resolves the address of every unconnected `send(msg, port, address)` through
 * `state.handle.lookup` (the socket's `lookup` option bound to its family, `dns.lookup` by default). For
 * an IP literal `dns.lookup` answers on the next tick, so each such send costs a deferred callback, a
 * tick-queue run and a microtask checkpoint. ferry's own RTP sockets avoid that with the public `lookup`
 * option (`ipLiteralLookup`, src/media/rtp/port-allocator.ts); werift creates its ICE sockets without it,
 * and ferry sends every media packet to a browser on such a socket (`sendOnSelectedPair`).
 */

type HandleLookup = (address: string, callback: (err: Error | null, ip?: string, family?: number) => void) => unknown;

interface DgramState {
  handle?: { lookup?: HandleLookup } | null;
}

const patched = new WeakSet<Socket>();

function stateOf(socket: Socket): DgramState | undefined {
  for (const sym of Object.getOwnPropertySymbols(socket)) {
    if (sym.description !== 'state symbol') continue;
    const state = (socket as unknown as Record<symbol, unknown>)[sym];
    return typeof state === 'object' && state !== null ? (state as DgramState) : undefined;
  }
  return undefined;
}

/**
 * Make `socket` resolve IP-literal destinations synchronously (anything else still goes through the
 * socket's own lookup): a send to an IP address is then handed to libuv within the `send` call, as on a
 * socket created with `ipLiteralLookup`. Returns false, changing nothing, when this Node's dgram does not
 * have the shape (then sends keep working as before, through dns.lookup).
 */
export function useSynchronousIpLookup(socket: Socket): boolean {
  if (patched.has(socket)) return true;
  const handle = stateOf(socket)?.handle;
  const original = handle?.lookup;
  if (!handle || typeof original !== 'function') return false;
  const family = (socket as unknown as { type?: string }).type === 'udp6' ? 6 : 4;
  handle.lookup = function lookupIpLiteralNow(this: unknown, address, callback) {
    if (isIP(address) === family) {
      callback(null, address, family);
      return undefined;
    }
    return original.call(this, address, callback);
  };
  patched.add(socket);
  return true;
}

/** The UDP handle's own methods ferry's native relay uses (Node 20's UDPWrap). */
interface UdpHandleReading {
  fd?: number;
  recvStart?: () => number;
  recvStop?: () => number;
}

function readingHandleOf(socket: Socket): UdpHandleReading | undefined {
  const handle = stateOf(socket)?.handle as UdpHandleReading | null | undefined;
  return handle ?? undefined;
}

/**
 * The socket's file descriptor (the UDP handle's `fd`), or undefined when the socket is not bound / closed
 * or this Node's dgram does not have the shape. For the native relay (src/media/native/native-relay.ts).
 */
export function socketFd(socket: Socket): number | undefined {
  const fd = readingHandleOf(socket)?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/**
 * Stop Node's own reading of the socket (the UDP handle's `recvStop()`): datagrams stay in the kernel for
 * whoever reads the fd instead; sends keep working. False, changing nothing, without the shape.
 */
export function stopReading(socket: Socket): boolean {
  const h = readingHandleOf(socket);
  if (!h || typeof h.recvStop !== 'function') return false;
  return h.recvStop() === 0;
}

/** Let Node read the socket again (`recvStart()`), after `stopReading`. False without the shape or on error. */
export function startReading(socket: Socket): boolean {
  const h = readingHandleOf(socket);
  if (!h || typeof h.recvStart !== 'function') return false;
  return h.recvStart() === 0;
}
