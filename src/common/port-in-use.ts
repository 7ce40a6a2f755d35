/** A listening port and the environment variable that moves it. */
export interface PortSetting {
  variable: string;
  port: number | undefined;
}

/**
 * The one-line explanation of a listen/bind failure because the port is taken, naming the variable
 * that moves it: `port 5060 in use (udp/tcp bind on 127.0.0.1): set FERRY_SIP_PORT to a free port (0 = any free port)`.
 * undefined for any other error. The port is read from the error (`err.port`, else the end of its
 * message), so it names the right variable even when several listeners start together.
 */
export function portInUseMessage(err: unknown, settings: readonly PortSetting[]): string | undefined {
  const e = err as NodeJS.ErrnoException & { port?: number; address?: string };
  if (!e || e.code !== 'EADDRINUSE') return undefined;
  const port = typeof e.port === 'number' ? e.port : Number(/:(\d+)\s*$/.exec(String(e.message))?.[1]);
  const matches = settings.filter((s) => s.port === port && port > 0).map((s) => s.variable);
  const where = e.address ? ` on ${e.address}` : '';
  if (matches.length === 0) return `port ${Number.isFinite(port) ? port : '?'}${where} is already in use by another program`;
  return `port ${port}${where} is already in use by another program: set ${matches.join(' or ')} to a free port (0 = any free port)`;
}
