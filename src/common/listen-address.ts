import net from 'node:net';

/**
 * Listen addresses by trust. Public listeners (SIP, WebSocket, the page) follow FERRY_HOST; control
 * listeners (the drachtio control port, the Kurento port) stay on loopback unless configured otherwise.
 */
export const LOOPBACK_HOST = '127.0.0.1';

/** True for addresses only this host can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h === '::1') return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
  return mapped !== null && mapped[1]!.startsWith('127.');
}

/** True for the any-address (every interface). */
export function isWildcardHost(host: string): boolean {
  const h = host.trim().replace(/^\[|\]$/g, '');
  return h === '0.0.0.0' || h === '::' || h === '';
}

/** Where a local client connects to reach a listener on `host` (a wildcard is reached on loopback). */
export function connectHost(host: string): string {
  const h = host.trim().replace(/^\[|\]$/g, '');
  if (h === '0.0.0.0' || h === '') return LOOPBACK_HOST;
  if (h === '::') return '::1';
  return h;
}

/** `host` as written in a URL (IPv6 in brackets). */
export function urlHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}
