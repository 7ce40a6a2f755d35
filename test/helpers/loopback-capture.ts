import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** One captured UDP datagram or TCP segment (IPv4 on loopback). */
export interface CapturedPacket {
  protocol: 'udp' | 'tcp';
  from: { address: string; port: number };
  to: { address: string; port: number };
  /** the UDP payload, or the TCP segment's data (empty for a bare ACK) */
  payload: Buffer;
}

/**
 * tcpdump on the loopback interface writing a pcap file, for tests that must see what really went on
 * the wire. start() resolves once tcpdump is listening; stop() ends it (SIGINT, by pid), parses the
 * file (IPv4 UDP datagrams and TCP segments) and removes it.
 *
 *   const cap = await LoopbackCapture.start('udp and portrange 10000-10009');
 *   ... const packets = await cap.stop();
 */
export class LoopbackCapture {
  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
    private readonly file: string,
    private readonly exited: Promise<void>,
  ) {}

  static async start(filter: string, timeoutMs = 10_000): Promise<LoopbackCapture> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-capture-'));
    const file = path.join(dir, 'capture.pcap');
    // -U: write each packet at once; -Z root: keep writing into our own temporary directory
    const child = spawn('tcpdump', ['-i', 'lo', '-n', '-U', '-Z', 'root', '-s', '2048', '-w', file, filter], { stdio: ['ignore', 'ignore', 'pipe'] });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    let stderr = '';
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`tcpdump did not start listening within ${timeoutMs} ms: ${stderr}`)), timeoutMs);
        child.stderr!.on('data', (d: Buffer) => {
          stderr += d.toString();
          if (/listening on/.test(stderr)) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`tcpdump exited (${code}): ${stderr}`));
        });
        child.once('error', reject);
      });
    } catch (err) {
      child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    return new LoopbackCapture(child, dir, file, exited);
  }

  async stop(): Promise<CapturedPacket[]> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const kill = setTimeout(() => this.child.kill('SIGKILL'), 3000);
      this.child.kill('SIGINT');
      await this.exited;
      clearTimeout(kill);
    }
    try {
      return parsePcap(await readFile(this.file));
    } finally {
      await rm(this.dir, { recursive: true, force: true });
    }
  }
}

/** IPv4 UDP datagrams and TCP segments of a classic pcap file (link type Ethernet, as Linux loopback is captured, or raw IP). */
export function parsePcap(pcap: Buffer): CapturedPacket[] {
  if (pcap.length < 24) return [];
  const magic = pcap.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  const u32 = (o: number) => (le ? pcap.readUInt32LE(o) : pcap.readUInt32BE(o));
  const linkType = u32(20);
  const linkHeader = linkType === 1 ? 14 : linkType === 101 ? 0 : linkType === 113 ? 16 : -1;
  if (linkHeader < 0) throw new Error(`pcap link type ${linkType} not handled`);
  const out: CapturedPacket[] = [];
  let off = 24;
  while (off + 16 <= pcap.length) {
    const capLen = u32(off + 8);
    const rec = pcap.subarray(off + 16, off + 16 + capLen);
    off += 16 + capLen;
    if (linkType === 1 && rec.readUInt16BE(12) !== 0x0800) continue;
    const ip = rec.subarray(linkHeader);
    if (ip.length < 20 || ip[0]! >> 4 !== 4 || (ip[9] !== 17 && ip[9] !== 6)) continue;
    const ihl = (ip[0]! & 0x0f) * 4;
    const ipEnd = Math.min(ip.length, ip.readUInt16BE(2));
    const l4 = ip.subarray(ihl, ipEnd);
    const addr = (o: number) => `${ip[o]}.${ip[o + 1]}.${ip[o + 2]}.${ip[o + 3]}`;
    if (ip[9] === 17) {
      if (l4.length < 8) continue;
      out.push({ protocol: 'udp', from: { address: addr(12), port: l4.readUInt16BE(0) }, to: { address: addr(16), port: l4.readUInt16BE(2) }, payload: Buffer.from(l4.subarray(8, l4.readUInt16BE(4))) });
    } else {
      if (l4.length < 20) continue;
      const dataOffset = (l4[12]! >> 4) * 4;
      out.push({ protocol: 'tcp', from: { address: addr(12), port: l4.readUInt16BE(0) }, to: { address: addr(16), port: l4.readUInt16BE(2) }, payload: Buffer.from(l4.subarray(dataOffset)) });
    }
  }
  return out;
}
