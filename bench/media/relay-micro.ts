/**
 * In-process micro-benchmarks of ferry media's per-packet relay path, one item at a time, each as
 * "before" (the former code, kept here as a reference copy) against "after" (the code in src/media/relay
 * and src/media/rtp). Run through `node --import tsx bench/media-core-rtp-relay.ts --micro`.
 *
 * Every item reports ns of CPU per packet (process.cpuUsage over many iterations, so the figure holds
 * on a loaded machine better than wall time does) and the garbage collections seen during the run
 * (an allocation-free path runs millions of packets without one). The last item relays real UDP
 * datagrams leg to leg through two RtpLegs; set FERRY_RELAY_SRC to another checkout's src/ (e.g.
 * `git archive <commit> src | tar -x -C /tmp/before`) to measure that code's path the same way.
 */
import dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { systemClock } from '../../src/common/clock';
import { codecTableFrom, type CodecTable } from '../../src/media/relay/codec-table';
import type { MediaLeg } from '../../src/media/relay/media-leg';
import { beginPacketTurn, endPacketTurn, packetNow } from '../../src/media/relay/packet-clock';
import { fanOut, OutgoingRtp, type PipelineSink } from '../../src/media/relay/packet-relay';
import { RtpStreamRewriter } from '../../src/media/relay/rtp-stream-rewriter';
import { ipLiteralLookup } from '../../src/media/rtp/port-allocator';

export interface MicroResult {
  item: string;
  variant: 'before' | 'after';
  nsPerPacket: number;
  gcs: number;
  packets: number;
}

let gcCount = 0;
const gcObserver = new PerformanceObserver((list) => {
  gcCount += list.getEntries().length;
});

function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

/** Run `body(i)` `iterations` times after a warm-up; CPU ns per iteration and GCs seen. */
function measure(item: string, variant: 'before' | 'after', iterations: number, body: (i: number) => void): MicroResult {
  for (let i = 0; i < Math.min(200_000, iterations); i++) body(i);
  const g0 = gcCount;
  const c0 = cpuNs();
  for (let i = 0; i < iterations; i++) body(i);
  const c1 = cpuNs();
  return { item, variant, nsPerPacket: (c1 - c0) / iterations, gcs: gcCount - g0, packets: iterations };
}

function rtpPacket(pt = 0): Buffer {
  const b = Buffer.alloc(172, 0xd5);
  b[0] = 0x80;
  b[1] = pt;
  b.writeUInt32BE(0x11111111, 8);
  return b;
}

/** The former OutgoingRtp.send: two Map lookups by codec name per packet. */
class OutgoingRtpBefore {
  constructor(readonly rewriter: RtpStreamRewriter) {}
  send(packet: Buffer, codec: string, codecs: CodecTable, leg: MediaLeg, nowMs: number): boolean {
    const pt = codecs.send.get(codec);
    if (pt === undefined) return false;
    this.rewriter.rewrite(packet, pt, codecs.clockRates.get(codec) ?? 8000, nowMs);
    leg.sendRtp(packet);
    return true;
  }
}

/** The former fanOut: a copy for every sink but the last, whatever the sink does with it. */
function fanOutBefore(packet: Buffer, key: string, sinks: readonly PipelineSink[]): void {
  const n = sinks.length;
  if (n === 0) return;
  for (let i = 0; i < n - 1; i++) sinks[i]!.deliverFromPipeline(Buffer.from(packet), key);
  sinks[n - 1]!.deliverFromPipeline(packet, key);
}

function codecItems(n: number): MicroResult[] {
  const peer = codecTableFrom([
    [8, 'pcma/8000'],
    [0, 'pcmu/8000'],
    [101, 'telephone-event/8000'],
  ]);
  let sent = 0;
  const leg = { sendRtp: () => void sent++ } as unknown as MediaLeg;
  const packet = rtpPacket();
  const before = new OutgoingRtpBefore(new RtpStreamRewriter(1));
  const after = new OutgoingRtp(new RtpStreamRewriter(1));
  // The codec key arrives as a string from the source's table, as in the pipeline.
  const key = codecTableFrom([[0, 'pcmu/8000']]).receive[0]!;
  return [
    measure('payload type + clock rate per packet (OutgoingRtp.send)', 'before', n, (i) => before.send(packet, key, peer, leg, i)),
    measure('payload type + clock rate per packet (OutgoingRtp.send)', 'after', n, (i) => after.send(packet, key, peer, leg, i)),
  ];
}

function clockItems(n: number): MicroResult[] {
  // One relayed packet with one sink reads the time at the receiving leg, the element and the sending leg.
  let sink = 0;
  return [
    measure('clock reads per relayed packet (3 places)', 'before', n, () => {
      sink += systemClock.now();
      sink += systemClock.now();
      sink += systemClock.now();
    }),
    measure('clock reads per relayed packet (3 places)', 'after', n, () => {
      const now = systemClock.now();
      beginPacketTurn(systemClock, now);
      try {
        sink += packetNow(systemClock);
        sink += packetNow(systemClock);
      } finally {
        endPacketTurn();
      }
      sink += now;
    }),
  ].map((r) => (sink === -1 ? r : r));
}

function dispatchItems(n: number): MicroResult[] {
  let got = 0;
  const listener = (p: Buffer): void => {
    got += p.length;
  };
  const emitter = new EventEmitter();
  emitter.on('rtp', listener);
  const direct: Array<(p: Buffer) => void> = [listener];
  const packet = rtpPacket();
  return [
    measure("packet from leg to element (emit('rtp'))", 'before', n, () => emitter.emit('rtp', packet)),
    measure("packet from leg to element (emit('rtp'))", 'after', n, () => {
      const list = direct;
      if (list.length === 1) list[0]!.call(emitter, packet);
      else for (let i = 0; i < list.length; i++) list[i]!.call(emitter, packet);
    }),
  ].map((r) => (got === -1 ? r : r));
}

function fanOutItems(n: number): MicroResult[] {
  let got = 0;
  const rewriting: PipelineSink = { deliverFromPipeline: (p) => void (got += p[1]!) };
  const reader: PipelineSink = { deliverFromPipeline: (p) => void (got += p[0]!), readsPacketOnly: true };
  const packet = rtpPacket();
  const one = [rewriting];
  const two = [reader, rewriting];
  return [
    measure('fan-out to 1 sink', 'before', n, () => fanOutBefore(packet, 'pcmu/8000', one)),
    measure('fan-out to 1 sink', 'after', n, () => fanOut(packet, 'pcmu/8000', one)),
    measure('fan-out to 2 sinks, one of them reads only (recorder-like)', 'before', n, () => fanOutBefore(packet, 'pcmu/8000', two)),
    measure('fan-out to 2 sinks, one of them reads only (recorder-like)', 'after', n, () => fanOut(packet, 'pcmu/8000', two)),
  ].map((r) => (got === -1 ? r : r));
}

async function bound(lookup?: typeof ipLiteralLookup): Promise<dgram.Socket> {
  const s = dgram.createSocket(lookup ? { type: 'udp4', lookup } : { type: 'udp4' });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  return s;
}

/** UDP sends in batches of 200 (then a turn of the event loop, so deferred lookups and sends complete). */
async function measureSends(item: string, variant: 'before' | 'after', batches: number, send: () => void): Promise<MicroResult> {
  const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
  for (let b = 0; b < 50; b++) {
    for (let i = 0; i < 200; i++) send();
    await turn();
  }
  const g0 = gcCount;
  const c0 = cpuNs();
  for (let b = 0; b < batches; b++) {
    for (let i = 0; i < 200; i++) send();
    await turn();
  }
  const c1 = cpuNs();
  return { item, variant, nsPerPacket: (c1 - c0) / (batches * 200), gcs: gcCount - g0, packets: batches * 200 };
}

async function sendItems(batches: number): Promise<MicroResult[]> {
  const sink = await bound();
  // Nothing reads `sink`: the kernel drops what overflows its buffer, which costs the sender nothing extra.
  const port = sink.address().port;
  const packet = rtpPacket();
  const plain = await bound();
  const literal = await bound(ipLiteralLookup);
  const connected = await bound(ipLiteralLookup);
  connected.connect(port, '127.0.0.1');
  await new Promise<void>((r) => setImmediate(r));
  const out = [
    await measureSends('UDP send to the peer', 'before', batches, () => plain.send(packet, port, '127.0.0.1')),
    await measureSends('UDP send to the peer (unconnected, NAT-latched peer)', 'after', batches, () => literal.send(packet, port, '127.0.0.1')),
    await measureSends('UDP send to the peer (connect()ed, SDP-latched peer)', 'after', batches, () => connected.send(packet)),
  ];
  for (const s of [sink, plain, literal, connected]) s.close();
  return out;
}

interface LegModules {
  RtpLeg: typeof import('../../src/media/rtp/rtp-leg').RtpLeg;
  PortAllocator: typeof import('../../src/media/rtp/port-allocator').PortAllocator;
  OutgoingRtp: typeof OutgoingRtp;
  codecTableFrom: typeof codecTableFrom;
  incomingCodec: typeof import('../../src/media/relay/packet-relay').incomingCodec;
  RtpStreamRewriter: typeof RtpStreamRewriter;
}

async function loadLegModules(srcRoot: string): Promise<LegModules> {
  const [leg, ports, relay, codecs, rewriter] = await Promise.all([
    import(path.join(srcRoot, 'media/rtp/rtp-leg')),
    import(path.join(srcRoot, 'media/rtp/port-allocator')),
    import(path.join(srcRoot, 'media/relay/packet-relay')),
    import(path.join(srcRoot, 'media/relay/codec-table')),
    import(path.join(srcRoot, 'media/relay/rtp-stream-rewriter')),
  ]);
  return {
    RtpLeg: leg.RtpLeg,
    PortAllocator: ports.PortAllocator,
    OutgoingRtp: relay.OutgoingRtp,
    incomingCodec: relay.incomingCodec,
    codecTableFrom: codecs.codecTableFrom,
    RtpStreamRewriter: rewriter.RtpStreamRewriter,
  };
}

/**
 * Real datagrams through two RtpLegs, as an RtpEndpoint pair relays them: phone A -> leg A -> codec by
 * PT -> OutgoingRtp -> leg B -> phone B. CPU of this whole process per relayed packet (phones included,
 * the same in both variants). `srcRoot` picks which code.
 */
export async function legToLeg(srcRoot: string, packets: number): Promise<{ nsPerPacket: number; gcs: number; relayed: number; lossPct: number }> {
  const m = await loadLegModules(srcRoot);
  const { createLogger } = await import('../../src/common/logger');
  const logger = createLogger('bench.relay-micro');
  logger.level = 'error';
  const ports = new m.PortAllocator('127.0.0.1', 0, 0);
  const phoneA = await bound();
  const phoneB = await bound();
  const legA = new m.RtpLeg(await ports.bindPair(false), systemClock, 60_000, 'bench-a', logger);
  const legB = new m.RtpLeg(await ports.bindPair(false), systemClock, 60_000, 'bench-b', logger);
  const remote = (s: dgram.Socket) => ({ address: '127.0.0.1', rtpPort: s.address().port, rtcpAddress: '127.0.0.1', rtcpPort: s.address().port, rtcpMux: true });
  legA.setRemote(remote(phoneA), true, [0]);
  legB.setRemote(remote(phoneB), true, [0]);
  const tableA = m.codecTableFrom([[0, 'pcmu/8000']]);
  const tableB = m.codecTableFrom([[0, 'pcmu/8000']]);
  const out = new m.OutgoingRtp(new m.RtpStreamRewriter(7));
  legA.on('rtp', (p: Buffer) => {
    const key = m.incomingCodec(p, tableA);
    if (key !== undefined) out.send(p, key, tableB, legB, systemClock.now());
  });
  let received = 0;
  phoneB.on('message', () => void received++);
  const packet = rtpPacket();
  const target = legA.localRtpPort;
  const turn = (): Promise<void> => new Promise((r) => setTimeout(r, 1));
  // Latch both legs (leg B latches on the first packet from phone B).
  phoneB.send(packet, legB.localRtpPort, '127.0.0.1');
  const batch = 50;
  const run = async (count: number): Promise<void> => {
    for (let sent = 0; sent < count; sent += batch) {
      for (let i = 0; i < batch; i++) {
        packet.writeUInt16BE((sent + i) & 0xffff, 2);
        phoneA.send(packet, target, '127.0.0.1');
      }
      await turn();
    }
  };
  await run(Math.min(20_000, packets));
  await new Promise((r) => setTimeout(r, 200));
  const r0 = received;
  const g0 = gcCount;
  const c0 = cpuNs();
  await run(packets);
  const c1 = cpuNs();
  await new Promise((r) => setTimeout(r, 300));
  const relayed = received - r0;
  const gcs = gcCount - g0;
  await Promise.all([legA.close(), legB.close()]);
  phoneA.close();
  phoneB.close();
  return { nsPerPacket: (c1 - c0) / packets, gcs, relayed, lossPct: (100 * Math.max(0, packets - relayed)) / packets };
}

export async function runMicro(opts: { iterations: number; sendBatches: number; legPackets: number; beforeSrc?: string }): Promise<string> {
  gcObserver.observe({ entryTypes: ['gc'] });
  const results: MicroResult[] = [
    ...codecItems(opts.iterations),
    ...clockItems(opts.iterations),
    ...dispatchItems(opts.iterations),
    ...fanOutItems(opts.iterations),
    ...(await sendItems(opts.sendBatches)),
  ];
  const lines = [
    '| item | variant | ns CPU per packet | GCs during the run | packets |',
    '|---|---|---|---|---|',
    ...results.map((r) => `| ${r.item} | ${r.variant} | ${r.nsPerPacket.toFixed(1)} | ${r.gcs} | ${r.packets} |`),
  ];
  const here = path.resolve(__dirname, '..', '..', 'src');
  const variants: [string, string][] = [...(opts.beforeSrc ? ([['before', path.resolve(opts.beforeSrc)]] as [string, string][]) : []), ['after', here]];
  for (const [variant, root] of variants) {
    const r = await legToLeg(root, opts.legPackets);
    lines.push(
      `| RtpLeg → OutgoingRtp → RtpLeg, real UDP, whole process (phones included)${variant === 'before' ? ` (${root})` : ''} | ${variant} | ${r.nsPerPacket.toFixed(0)} | ${r.gcs} | ${r.relayed} relayed, loss ${r.lossPct.toFixed(2)} % |`,
    );
  }
  gcObserver.disconnect();
  return lines.join('\n');
}
