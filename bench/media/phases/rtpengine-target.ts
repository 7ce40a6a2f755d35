/**
 * RTP<->RTP calls through rtpengine (userspace): per call, phone A offers through ng `offer`,
 * phone B answers through ng `answer`; each phone then sends to the rtpengine port named in the
 * SDP rtpengine gave it.
 */
import { PhonePool } from '../load/phone-pool';
import type { LoadWorker } from '../load/load-worker';
import { audioTarget, phoneSdp } from '../sdp/phone-sdp';
import { RtpengineProcess, type NgResponse } from '../servers/rtpengine-process';
import { type BenchTarget, type CallSetup, runLimited, runSetups, type SetupPacing, timeSetup } from './bench-target';

export interface RtpengineTargetOptions {
  binary: string;
  portMin: number;
  portMax: number;
  logFile: string;
  rtpWorkers: number;
  /** How each step's new calls are set up: closed-loop bursts or open-loop arrivals (bench-target.ts). */
  setupPacing: SetupPacing;
}

export class RtpengineTarget implements BenchTarget {
  readonly name = 'rtpengine rtp-rtp';
  private readonly server: RtpengineProcess;
  private readonly phones: PhonePool;
  private streamId = 0;
  private readonly callIds: { callId: string; fromTag: string }[] = [];

  constructor(private readonly opts: RtpengineTargetOptions) {
    this.server = new RtpengineProcess({
      binary: opts.binary,
      portMin: opts.portMin,
      portMax: opts.portMax,
      logFile: opts.logFile,
    });
    this.phones = new PhonePool(opts.rtpWorkers, () => ++this.streamId, 'rtpengine');
  }

  async start(): Promise<void> {
    await this.server.start();
  }

  serverPids(): number[] {
    return [this.server.pid];
  }

  workers(): LoadWorker[] {
    return this.phones.workers();
  }

  private ng(): { port: number; host: string; client: NonNullable<RtpengineProcess['client']> } {
    if (!this.server.client) throw new Error('rtpengine is not started');
    return { port: this.server.ngPort, host: '127.0.0.1', client: this.server.client };
  }

  async addCalls(count: number): Promise<CallSetup[]> {
    const dirs = Array.from({ length: count }, (_, i) => [0, 1] as const).flat();
    const phones = await this.phones.open(dirs);
    const calls = Array.from({ length: count }, (_, i) => ({ a: phones[2 * i]!, b: phones[2 * i + 1]! }));
    return runSetups(calls, this.opts.setupPacing, (call) =>
      timeSetup(async () => {
        const { port, host, client } = this.ng();
        const callId = `bench-${call.a.streamId}`;
        const fromTag = `a${call.a.streamId}`;
        const toTag = `b${call.b.streamId}`;
        const offer = check(
          await client.offer(port, host, { sdp: phoneSdp(call.a.port, call.a.streamId), 'call-id': callId, 'from-tag': fromTag }),
          'offer',
        );
        const answer = check(
          await client.answer(port, host, {
            sdp: phoneSdp(call.b.port, call.b.streamId),
            'call-id': callId,
            'from-tag': fromTag,
            'to-tag': toTag,
          }),
          'answer',
        );
        this.callIds.push({ callId, fromTag });
        // The offer as rtpengine rewrote it goes to B: B sends there. The rewritten answer goes to A.
        const toB = audioTarget(offer.sdp!);
        const toA = audioTarget(answer.sdp!);
        await Promise.all([this.phones.target(call.a, toA.host, toA.port), this.phones.target(call.b, toB.host, toB.port)]);
      }, 15000),
    );
  }

  async releaseAll(): Promise<string> {
    await this.phones.closeAll();
    const { port, host, client } = this.ng();
    let failed = 0;
    await runLimited(this.callIds.splice(0), 20, async ({ callId, fromTag }) => {
      const r = await client.delete(port, host, { 'call-id': callId, 'from-tag': fromTag, 'delete-delay': 0 }).catch(() => undefined);
      if (r?.result !== 'ok') failed++;
    });
    return failed === 0 ? 'all calls deleted' : `${failed} ng delete(s) failed`;
  }

  async stop(): Promise<void> {
    await this.phones.stop();
    await this.server.stop();
  }
}

function check(r: NgResponse, what: string): NgResponse {
  if (r.result !== 'ok' || typeof r.sdp !== 'string') {
    throw new Error(`rtpengine ${what} failed: ${r['error-reason'] ?? r.result}`);
  }
  return r;
}
