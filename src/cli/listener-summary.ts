import { isLoopbackHost, urlHost } from '../common/listen-address';

/** One socket ferry listens on, as `ferry start` reports it. */
export interface ListenerInfo {
  /** What it serves, e.g. `SIP udp/tcp`, `drachtio control`. */
  name: string;
  host: string;
  /** a port, or a range such as `10000-20000` (`*`: ports chosen by the OS) */
  port: number | string;
  /** Public listeners are meant for phones and browsers; control listeners only for ferry's own parts. */
  kind: 'public' | 'control';
}

/**
 * Lines telling the operator where each listener is and who can reach it: `reachable from other hosts`
 * for any non-loopback address, `this host only` for loopback.
 */
export function listenerSummary(listeners: ListenerInfo[]): string[] {
  const lines = ['ferry: listeners'];
  for (const l of listeners) {
    const reach = isLoopbackHost(l.host) ? 'this host only' : 'reachable from other hosts';
    lines.push(`  ${l.kind.padEnd(7)} ${l.name.padEnd(22)} ${urlHost(l.host)}:${l.port}  (${reach})`);
  }
  return lines;
}
