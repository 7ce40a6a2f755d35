import type net from 'node:net';

/**
 * Waits until an outgoing socket is up (`connect` for TCP, `secureConnect` for TLS). The attempt ends
 * with the socket's error, or, when `signal` aborts first, with the socket destroyed (a SYN still
 * unanswered is never answered for us). `pending` holds the socket while it connects, so that a
 * transport closing meanwhile can destroy it.
 */
export function outgoingSocketUp(socket: net.Socket, upEvent: 'connect' | 'secureConnect', pending: Set<net.Socket>,
  signal: AbortSignal | undefined, what: string): Promise<void> {
  pending.add(socket);
  return new Promise<void>((resolve, reject) => {
    const settle = (err?: Error): void => {
      pending.delete(socket);
      socket.off('error', settle);
      socket.off(upEvent, onUp);
      signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve();
    };
    const onUp = (): void => settle();
    const onAbort = (): void => {
      socket.on('error', () => undefined); // a late error of the destroyed socket has no listener left
      socket.destroy();
      settle(new Error(`connection to ${what} given up`));
    };
    if (signal?.aborted) {
      onAbort();
      return;
    }
    socket.once('error', settle);
    socket.once(upEvent, onUp);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
