/**
 * Raw SIP connections for connection-hygiene tests: plain TCP sockets and hand-made WebSocket
 * connections (HTTP upgrade + masked frames written byte by byte), each recording what it received
 * and when the server closed it; plus the resident memory of a process read from /proc.
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { pollUntil } from './wait-for';

export const MB = 1024 * 1024;

/** A client connection; `closedAt` is set when the server closes (or resets) it. */
export interface RawConnection {
  socket: net.Socket;
  openedAt: number;
  closedAt: number | undefined;
  /** bytes received (for WebSocket: after the 101 response, raw frames) */
  received: Buffer[];
  text(): string;
}

/** Resident set size of `pid` in bytes (VmRSS in /proc/<pid>/status). */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/** Opens a TCP connection to 127.0.0.1:port (from `localAddress`, e.g. 127.0.0.2, when given). */
export function rawTcp(port: number, localAddress?: string): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    const c: RawConnection = {
      socket, openedAt: 0, closedAt: undefined, received: [],
      text: () => Buffer.concat(c.received).toString('latin1'),
    };
    socket.on('data', (d: Buffer) => { c.received.push(d); });
    socket.on('error', () => { /* a reset by the server is expected; close follows */ });
    socket.on('close', () => { c.closedAt ??= Date.now(); });
    socket.once('connect', () => { c.openedAt = Date.now(); resolve(c); });
    socket.once('error', reject);
  });
}

/** A TCP connection that has completed a `sip` WebSocket upgrade by hand (frames are then written raw). */
export async function rawWebSocket(port: number, localAddress?: string): Promise<RawConnection> {
  const c = await rawTcp(port, localAddress);
  c.socket.write([
    'GET / HTTP/1.1', `Host: 127.0.0.1:${port}`, 'Upgrade: websocket', 'Connection: Upgrade',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`, 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Protocol: sip', '', '',
  ].join('\r\n'));
  await waitUntil(() => c.text().includes('\r\n\r\n') || c.closedAt !== undefined, 10_000, 'the WebSocket upgrade answer');
  const answer = c.text();
  if (!answer.startsWith('HTTP/1.1 101')) throw new Error(`upgrade refused: ${answer.split('\r\n')[0]}`);
  const headEnd = answer.indexOf('\r\n\r\n') + 4;
  const rest = Buffer.concat(c.received).subarray(headEnd);
  c.received = rest.length ? [Buffer.from(rest)] : [];
  return c;
}

/** The header of a masked client frame (RFC 6455 §5.2) announcing `length` payload bytes, and its mask. */
export function clientFrameHeader(opcode: number, length: number): { header: Buffer; mask: Buffer } {
  const mask = randomBytes(4);
  let header: Buffer;
  if (length < 126) {
    header = Buffer.from([0x80 | opcode, 0x80 | length]);
  } else if (length < 65_536) {
    header = Buffer.alloc(4);
    header[0] = 0x80 | opcode;
    header[1] = 0x80 | 126;
    header.writeUInt16BE(length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = 0x80 | opcode;
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(length), 2);
  }
  return { header: Buffer.concat([header, mask]), mask };
}

/** A complete masked text frame carrying `text`. */
export function clientTextFrame(text: string): Buffer {
  const payload = Buffer.from(text, 'utf8');
  const { header, mask } = clientFrameHeader(0x1, payload.length);
  const masked = Buffer.alloc(payload.length);
  for (let i = 0; i < payload.length; i++) masked[i] = payload[i]! ^ mask[i % 4]!;
  return Buffer.concat([header, masked]);
}

export async function waitUntil(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  await pollUntil(pred, { timeoutMs, what, stepMs: 10 });
}
