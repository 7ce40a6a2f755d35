/**
 * ferry media's own JavaScript per relayed packet with many calls up, and nothing else: the real media
 * server in this process (one loop, no relay workers), N RTP↔RTP calls set up through the real npm
 * kurento-client (MediaPipeline + 2 RtpEndpoints connected both ways, as bench:media's ferry-rtp target),
 * then every server RTP socket's `send` replaced by a counter and packets handed to the sockets'
 * 'message' listeners directly, round-robin over all calls (so each packet meets a cold call, as on the
 * wire). No syscall, no kernel, no load generator: what is left is the CPU ferry's code spends per packet
 * between Node's 'message' event and `socket.send`, which bench:media can only see as "ferry − node floor".
 *
 *   node --import tsx bench/media/relay-many-calls.ts [--calls 200] [--packets 2000000] [--rounds 3] [--fresh]
 *
 * Prints ns of CPU per relayed packet (process.cpuUsage) and a control: the same count of 'message'
 * emits (and header writes, and with --fresh Buffer copies) on a socket whose only listener is empty.
 * --fresh gives each packet a new Buffer, as node:dgram does; --thrash <KiB> walks that much other
 * memory between packets, standing in for the kernel's and Node's work between two datagrams (a cold
 * cache per packet, as in the real server).
 */
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { startMediaServer } from '../../src/media/server/media-server';
import { audioTarget, phoneSdp } from './sdp/phone-sdp';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const kurento = require('kurento-client') as (url: string, options?: Record<string, unknown>) => Promise<KurentoClient>;
interface KurentoObject {
  id: string;
  release(): Promise<void>;
  [method: string]: unknown;
}
interface KurentoClient {
  create(type: string, ...args: unknown[]): Promise<KurentoObject>;
  close(): void;
  on(event: string, fn: (...args: unknown[]) => void): void;
}
const call = <T>(obj: KurentoObject, method: string, ...args: unknown[]): Promise<T> =>
  new Promise<T>((resolve, reject) =>
    (obj[method] as (...a: unknown[]) => void).apply(obj, [...args, (err: unknown, v: T) => (err ? reject(err) : resolve(v))]),
  );

const { values } = parseArgs({
  options: {
    calls: { type: 'string', default: '200' },
    packets: { type: 'string', default: '2000000' },
    rounds: { type: 'string', default: '3' },
    fresh: { type: 'boolean', default: false },
    thrash: { type: 'string', default: '0' },
  },
});
const CALLS = Number(values.calls);
const PACKETS = Number(values.packets);
const ROUNDS = Number(values.rounds);
/** a new Buffer per packet, as Node's dgram hands each datagram in its own (young) Buffer */
const FRESH = values.fresh === true;
/** KiB of other memory touched between two packets (stands in for the kernel and Node work between them) */
const THRASH = Number(values.thrash) * 1024;
const thrashArea = new Int32Array(Math.max(16, THRASH / 4));
let thrashAt = 0;
function thrash(): void {
  if (THRASH === 0) return;
  const a = thrashArea;
  const n = a.length;
  let x = thrashAt;
  for (let i = 0; i < 256; i++) {
    x = (x + 4099) % n; // 16 KiB stride-ish walk: a new cache line (and often page) each step
    a[x]++;
  }
  thrashAt = x;
}

/** Every UDP socket created in this process, so the server's RTP sockets can be found by port. */
const sockets: dgram.Socket[] = [];
const createSocket = dgram.createSocket;
(dgram as { createSocket: typeof dgram.createSocket }).createSocket = ((...args: Parameters<typeof dgram.createSocket>) => {
  const s = createSocket(...args);
  sockets.push(s);
  return s;
}) as typeof dgram.createSocket;


interface Stream {
  /** the server socket the packet arrives on */
  socket: dgram.Socket;
  packet: Buffer;
  rinfo: dgram.RemoteInfo;
  seq: number;
}

async function bound(): Promise<dgram.Socket> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  return s;
}

function rtp(ssrc: number): Buffer {
  const b = Buffer.alloc(172, 0xff);
  b[0] = 0x80;
  b[1] = 0;
  b.writeUInt32BE(ssrc, 8);
  return b;
}

function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

async function main(): Promise<void> {
  const server = await startMediaServer({ config: { port: 0, workers: 1, rtpHost: '127.0.0.1' } });
  const client = await kurento(server.url, { failAfter: 1 });
  client.on('error', () => undefined);
  const phones: dgram.Socket[] = [];
  const streams: Stream[] = [];
  let sent = 0;
  const countSend = function (this: dgram.Socket): void {
    sent++;
  };
  for (let i = 0; i < CALLS; i++) {
    const pipeline = await client.create('MediaPipeline');
    const a = (await call(pipeline, 'create', 'RtpEndpoint')) as KurentoObject;
    const b = (await call(pipeline, 'create', 'RtpEndpoint')) as KurentoObject;
    await call(a, 'connect', b);
    await call(b, 'connect', a);
    for (const ep of [a, b]) {
      const phone = await bound();
      phones.push(phone);
      const port = (phone.address() as AddressInfo).port;
      const answer = await call<string>(ep, 'processOffer', phoneSdp(port, i + 1));
      const serverPort = audioTarget(answer).port;
      const socket = sockets.find((s) => {
        try {
          return (s.address() as AddressInfo).port === serverPort;
        } catch {
          return false;
        }
      });
      if (!socket) throw new Error(`no server socket on port ${serverPort}`);
      streams.push({ socket, packet: rtp(0x1000 + streams.length), rinfo: { address: '127.0.0.1', family: 'IPv4', port, size: 172 }, seq: 0 });
    }
  }
  // the first packet of each stream latches (and connect()s) its leg with real sends; then no syscalls
  for (const s of streams) s.socket.emit('message', s.packet, s.rinfo);
  await new Promise((r) => setTimeout(r, 200));
  for (const s of streams) (s.socket as unknown as { send: unknown }).send = countSend;

  const relay = (n: number): void => {
    const len = streams.length;
    for (let i = 0; i < n; i++) {
      const s = streams[i % len]!;
      const seq = (s.seq = (s.seq + 1) & 0xffff);
      const p = FRESH ? Buffer.from(s.packet) : s.packet;
      p[0] = 0x80;
      p[1] = 0;
      p.writeUInt16BE(seq, 2);
      p.writeUInt32BE(seq * 160, 4);
      p.writeUInt32BE(0x1000 + (i % len), 8);
      s.socket.emit('message', p, s.rinfo);
      thrash();
    }
  };
  // control: the same emits and header writes on sockets whose only listener does nothing
  const idle = await bound();
  idle.removeAllListeners('message');
  idle.on('message', () => undefined);
  const control = (n: number): void => {
    const s0 = streams[0]!;
    for (let i = 0; i < n; i++) {
      const p = FRESH ? Buffer.from(s0.packet) : s0.packet;
      p.writeUInt16BE(i & 0xffff, 2);
      p.writeUInt32BE(i * 160, 4);
      p.writeUInt32BE(0x1000, 8);
      idle.emit('message', p, s0.rinfo);
      thrash();
    }
  };
  relay(200_000); // warm-up (JIT)
  control(200_000);
  console.log(`| round | calls | ns CPU per relayed packet | control: ns per empty emit | relayed / sent |`);
  console.log(`|---|---|---|---|---|`);
  for (let r = 1; r <= ROUNDS; r++) {
    sent = 0;
    const c0 = cpuNs();
    relay(PACKETS);
    const c1 = cpuNs();
    const k0 = cpuNs();
    control(PACKETS);
    const k1 = cpuNs();
    console.log(`| ${r} | ${CALLS} | ${((c1 - c0) / PACKETS).toFixed(0)} | ${((k1 - k0) / PACKETS).toFixed(0)} | ${PACKETS} / ${sent} |`);
  }
  client.close();
  await server.close();
  for (const p of phones) p.close();
  idle.close();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  },
);
