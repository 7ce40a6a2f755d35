/**
 * RTP<->RTP calls through ferry media, like for like with rtpengine: per call one MediaPipeline
 * with two RtpEndpoints connected both ways; each phone's SDP offer goes to its endpoint's
 * processOffer and the phone sends to the port in the answer.
 */
import type { LoadWorker } from '../load/load-worker';
import { PhonePool } from '../load/phone-pool';
import { audioTarget, phoneSdp } from '../sdp/phone-sdp';
import { type BenchTarget, type CallSetup, runSetups, type SetupPacing, timeSetup } from './bench-target';
import { FerryMediaHarness, type FerryHarnessOptions } from './ferry-media-harness';

export interface FerryRtpTargetOptions extends FerryHarnessOptions {
  rtpWorkers: number;
  /** How each step's new calls are set up: closed-loop bursts or open-loop arrivals (bench-target.ts). */
  setupPacing: SetupPacing;
}

export class FerryRtpTarget implements BenchTarget {
  readonly name = 'ferry rtp-rtp';
  private readonly harness: FerryMediaHarness;
  private readonly phones: PhonePool;
  private streamId = 0;
  private readonly streamNames = new Map<number, string>();

  constructor(private readonly opts: FerryRtpTargetOptions) {
    this.harness = new FerryMediaHarness(opts);
    this.phones = new PhonePool(opts.rtpWorkers, () => ++this.streamId, 'ferry-rtp');
  }

  start(): Promise<void> {
    return this.harness.start();
  }

  serverPids(): number[] {
    return [this.harness.server.pid];
  }

  workers(): LoadWorker[] {
    return this.phones.workers();
  }

  loopLag(fromMs: number, toMs: number): ReturnType<FerryMediaHarness['loopLag']> {
    return this.harness.loopLag(fromMs, toMs);
  }

  serverStats(): Promise<Record<string, unknown> | undefined> {
    return this.harness.stats();
  }

  profiler(): FerryMediaHarness['profiler'] {
    return this.harness.profiler;
  }

  async addCalls(count: number): Promise<CallSetup[]> {
    const dirs = Array.from({ length: count }, () => [0, 1] as const).flat();
    const phones = await this.phones.open(dirs);
    const calls = Array.from({ length: count }, (_, i) => ({ a: phones[2 * i]!, b: phones[2 * i + 1]! }));
    const kurento = this.harness.kurento();
    return runSetups(calls, this.opts.setupPacing, (call) =>
      timeSetup(async () => {
        const pipeline = await kurento.create('MediaPipeline');
        this.harness.pipelines.push(pipeline);
        this.streamNames.set(call.a.streamId, `A->B of pipeline ${pipeline.id}`);
        this.streamNames.set(call.b.streamId, `B->A of pipeline ${pipeline.id}`);
        const [epA, epB] = await Promise.all([pipeline.create('RtpEndpoint'), pipeline.create('RtpEndpoint')]);
        await Promise.all([epA.connect(epB), epB.connect(epA)]);
        const [answerA, answerB] = await Promise.all([
          epA.processOffer(phoneSdp(call.a.port, call.a.streamId)),
          epB.processOffer(phoneSdp(call.b.port, call.b.streamId)),
        ]);
        const toA = audioTarget(answerA);
        const toB = audioTarget(answerB);
        await Promise.all([this.phones.target(call.a, toA.host, toA.port), this.phones.target(call.b, toB.host, toB.port)]);
      }, 30000),
    );
  }

  describeStream(streamId: number): string {
    return this.streamNames.get(streamId) ?? `stream ${streamId}`;
  }

  async releaseAll(): Promise<string> {
    await this.phones.closeAll();
    return this.harness.releaseAll();
  }

  async stop(): Promise<void> {
    await this.phones.stop();
    await this.harness.stop();
  }
}
