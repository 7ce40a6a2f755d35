/**
 * Load worker (a separate process, started with fork()): plays the phone side of many calls with
 * plain RTP over node:dgram. Each stream owns an RTP socket on an even port and an RTCP socket on
 * port+1 (like a phone without rtcp-mux), sends 50 packets/s of 172-byte PCMU from the RTP socket
 * (symmetric RTP) to the media server, and counts the stamped packets it receives.
 *
 * Per packet: the stamp, sequence number and timestamp are written in place into the stream's one packet
 * buffer and sent with one send() on the RTP socket, connected to the server's address once it is known (no
 * address resolution per send; the kernel then also drops datagrams from anyone else). Received packets are
 * read in place (no payload view, no stamp object).
 */
import dgram from 'node:dgram';
import { SendPacer, type PacedStream } from './send-pacer';
import { StreamMeter } from './stream-meter';
import { createPacketBuffer, rtpPayloadOffset, stampNext } from './stream-stamp';
import { serveWorker, type StreamSpec, type WorkerReport, type WorkerRequest } from './worker-protocol';

const HOST = '127.0.0.1';
let epoch = 0;
let rtcpReceived = 0;
const meter = new StreamMeter();
const pacer = new SendPacer((n) => meter.onSkipped(epoch, n));

class RtpPeer implements PacedStream {
  private seq = Math.floor(Math.random() * 30000);
  private readonly packet: Buffer;
  private target: { host: string; port: number } | undefined;

  constructor(
    readonly spec: StreamSpec,
    readonly rtp: dgram.Socket,
    readonly rtcp: dgram.Socket,
  ) {
    this.packet = createPacketBuffer(spec.ssrc, spec.streamId, spec.direction);
    rtp.on('message', (msg) => {
      const offset = rtpPayloadOffset(msg);
      if (offset >= 0) meter.onReceivedAt(msg, offset, process.hrtime.bigint());
      else rtcpReceived += 1; // rtcp-mux style RTCP on the RTP port
    });
    rtcp.on('message', () => {
      rtcpReceived += 1;
    });
    // ICMP errors from a closed far end must not kill the worker.
    rtp.on('error', () => undefined);
    rtcp.on('error', () => undefined);
  }

  diag(): Record<string, unknown> {
    return { streamId: this.spec.streamId, port: this.port, target: this.target ?? null, seq: this.seq };
  }

  get sending(): boolean {
    return this.target !== undefined;
  }

  get port(): number {
    return this.rtp.address().port;
  }

  /** Connect the RTP socket to the server's address (again, if it moved); sending starts once it is connected. */
  async setTarget(host: string, port: number): Promise<void> {
    if (this.target?.host === host && this.target.port === port) return;
    if (this.target) {
      this.target = undefined;
      this.rtp.disconnect();
    }
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.rtp.once('error', onError);
      this.rtp.connect(port, host, () => {
        this.rtp.off('error', onError);
        resolve();
      });
    });
    this.target = { host, port };
    pacer.add(this);
  }

  send(nowNs: bigint): void {
    if (!this.target) return;
    this.seq = (this.seq + 1) & 0xffff;
    stampNext(this.packet, this.seq, epoch, nowNs);
    this.rtp.send(this.packet);
    meter.onSent(epoch, this.spec.direction, this.spec.streamId);
  }

  close(): void {
    pacer.remove(this);
    this.rtp.close();
    this.rtcp.close();
  }
}

const peers = new Map<number, RtpPeer>();

function bindSocket(port: number): Promise<dgram.Socket | undefined> {
  return new Promise((resolve) => {
    const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 256 * 1024 });
    s.once('error', () => {
      s.close();
      resolve(undefined);
    });
    s.bind(port, HOST, () => resolve(s));
  });
}

/** An RTP socket on an even port with its RTCP socket on port+1 (RFC 3550 section 11). */
async function bindRtpPair(): Promise<[dgram.Socket, dgram.Socket]> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const rtp = await bindSocket(0);
    if (!rtp) continue;
    const port = rtp.address().port;
    if (port % 2 === 0) {
      const rtcp = await bindSocket(port + 1);
      if (rtcp) return [rtp, rtcp];
    }
    rtp.close();
  }
  throw new Error('could not bind an even/odd RTP/RTCP port pair on 127.0.0.1');
}

async function handle(req: WorkerRequest): Promise<unknown> {
  switch (req.op) {
    case 'open': {
      const ports: { streamId: number; port: number }[] = [];
      for (const spec of req.streams) {
        const [rtp, rtcp] = await bindRtpPair();
        const peer = new RtpPeer(spec, rtp, rtcp);
        peers.set(spec.streamId, peer);
        ports.push({ streamId: spec.streamId, port: peer.port });
      }
      pacer.start();
      return ports;
    }
    case 'target': {
      const peer = peers.get(req.streamId);
      if (!peer) throw new Error(`unknown stream ${req.streamId}`);
      await peer.setTarget(req.host, req.port);
      return undefined;
    }
    case 'diag':
      return req.streamIds.map((id) => peers.get(id)?.diag() ?? { streamId: id, unknown: true });
    case 'epoch':
      epoch = req.epoch;
      return undefined;
    case 'report': {
      const report: WorkerReport = {
        ...meter.report(req.epoch),
        foreign: meter.foreign,
        rtcpReceived,
        streams: peers.size,
        sendingIds: [...peers.values()].filter((p) => p.sending).map((p) => p.spec.streamId),
      };
      return report;
    }
    case 'close':
      for (const id of req.streamIds) {
        peers.get(id)?.close();
        peers.delete(id);
      }
      return undefined;
    case 'exit':
      for (const p of peers.values()) p.close();
      peers.clear();
      pacer.stop();
      setImmediate(() => process.exit(0));
      return undefined;
    default:
      throw new Error(`rtp-peer-worker: unsupported op ${req.op}`);
  }
}

serveWorker(handle);
