import { EventEmitter } from 'node:events';

/**
 * kurento-client 7.3.0 reconnects through reconnect-core: each attempt creates a new WebSocket
 * stream (`re._connection`) whose 'error' listener is dropped after the first error, yet the stream
 * can emit 'error' again (a refused connection: ECONNREFUSED), unhandled, which kills the process.
 * This gives every transport stream — the current one and each one a later attempt creates — a
 * permanent 'error' listener, installed synchronously at creation, before any socket I/O can fail.
 * The errors themselves are reported once per attempt through `re`'s own 'error' event.
 */
export function guardReconnectTransports(re: EventEmitter, onError: (err: Error) => void): void {
  const holder = re as unknown as { _connection?: EventEmitter };
  const guard = (con: EventEmitter | undefined): void => {
    if (con && typeof con.on === 'function' && !GUARDED.has(con)) {
      GUARDED.add(con);
      con.on('error', () => undefined);
    }
  };
  let current = holder._connection;
  guard(current);
  Object.defineProperty(holder, '_connection', {
    configurable: true,
    enumerable: true,
    get: () => current,
    set: (con: EventEmitter | undefined) => {
      current = con;
      guard(con);
    },
  });
  re.on('error', onError);
}

const GUARDED = new WeakSet<EventEmitter>();
