/**
 * Free-port finders for tests. Several test suites may run on the same machine at the same time,
 * so no test may use a fixed port: ask the kernel for an ephemeral one and check that it is free
 * for every protocol the peer will bind (a SIP peer often binds UDP and TCP on the same number).
 *
 * There is an unavoidable race between "found free" and "bound by the child process"; the finders
 * keep it short and callers that spawn a peer should detect a failed bind (see waitForPortBound).
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { pollPause } from './wait-for';

export type PortProtocol = 'udp' | 'tcp';

const LOOPBACK = '127.0.0.1';

/** True when `port` can be bound right now on 127.0.0.1 for `protocol`. */
export function isPortFree(port: number, protocol: PortProtocol, host = LOOPBACK): Promise<boolean> {
  return protocol === 'udp' ? isUdpPortFree(port, host) : isTcpPortFree(port, host);
}

function isUdpPortFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    socket.once('error', () => {
      socket.close();
      resolve(false);
    });
    socket.bind(port, host, () => socket.close(() => resolve(true)));
  });
}

function isTcpPortFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** An ephemeral port number the kernel hands out for TCP on 127.0.0.1. */
function ephemeralTcpPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface FreePortOptions {
  /** Protocols the port must be free for (default both UDP and TCP). */
  protocols?: PortProtocol[];
  /** Number of consecutive ports that must all be free, starting at the returned one (default 1). */
  count?: number;
  /** Only return an even first port (RTP convention). */
  even?: boolean;
  host?: string;
}

/**
 * The first port of the kernel's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range; 32768 when
 * unreadable). Every socket bound to port 0 and every outgoing TCP connection takes its local port from
 * that range, so a port chosen there can be taken between "found free" and "bound" by any connection any
 * process opens meanwhile (a stack starting up opens dozens).
 */
function ephemeralRangeStart(): number {
  try {
    const first = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(first) && first > 1024 ? first : 32768;
  } catch {
    return 32768;
  }
}

/** Ports below the ephemeral range that freePort picks from: no port-0 bind or outgoing connection takes these. */
const PICK_FLOOR = 10000;

/**
 * A port (or a run of `count` consecutive ports) free for all requested protocols, picked at random below
 * the kernel's ephemeral range (see ephemeralRangeStart), so only another test's explicit pick can race
 * for it, not the connections every process opens. Falls back to the kernel's own pick when that range is
 * too small. Throws after many attempts rather than looping forever.
 */
export async function freePort(options: FreePortOptions = {}): Promise<number> {
  const protocols = options.protocols ?? ['udp', 'tcp'];
  const count = options.count ?? 1;
  const host = options.host ?? LOOPBACK;
  const ceiling = ephemeralRangeStart() - count;
  const below = ceiling - PICK_FLOOR > 1000;
  for (let attempt = 0; attempt < 200; attempt++) {
    let base = below ? PICK_FLOOR + Math.floor(Math.random() * (ceiling - PICK_FLOOR)) : await ephemeralTcpPort(host);
    if (options.even && base % 2 === 1) base -= 1;
    if (base < 1024 || base + count - 1 > 65535) continue;
    if (await allFree(base, count, protocols, host)) return base;
  }
  throw new Error(`no free port found for ${protocols.join('+')} x${count}`);
}

async function allFree(base: number, count: number, protocols: PortProtocol[], host: string): Promise<boolean> {
  for (let port = base; port < base + count; port++) {
    for (const protocol of protocols) {
      if (!(await isPortFree(port, protocol, host))) return false;
    }
  }
  return true;
}

/** Several distinct free ports at once (each free for the requested protocols). */
export async function freePorts(n: number, options: FreePortOptions = {}): Promise<number[]> {
  const ports: number[] = [];
  const span = options.count ?? 1;
  while (ports.length < n) {
    const port = await freePort(options);
    const overlaps = ports.some((p) => port < p + span && p < port + span);
    if (!overlaps) ports.push(port);
  }
  return ports;
}

/**
 * True when some socket on this host is bound to `port` (UDP) or listening on it (TCP), read from
 * /proc/net without touching the port (probing by binding could steal it from a starting peer).
 */
export async function isPortBound(port: number, protocol: PortProtocol): Promise<boolean> {
  const files = protocol === 'udp' ? ['/proc/net/udp', '/proc/net/udp6'] : ['/proc/net/tcp', '/proc/net/tcp6'];
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 4) continue;
      const localPort = fields[1].split(':').pop();
      const state = fields[3];
      if (localPort !== hexPort) continue;
      if (protocol === 'udp' || state === '0A') return true;
    }
  }
  return false;
}

/** Resolves once something has bound `port` for `protocol`, so a test knows a spawned peer listens. */
export async function waitForPortBound(port: number, protocol: PortProtocol, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await isPortBound(port, protocol)) return;
    await pollPause(25);
  }
  throw new Error(`nothing bound ${protocol} port ${port} within ${timeoutMs} ms`);
}
