/**
 * The gateway's call shape through ferry media: per call one MediaPipeline with a WebRtcEndpoint
 * (facing a werift "browser" in a webrtc-peer-worker) and an RtpEndpoint (facing a plain-RTP
 * "phone" in an rtp-peer-worker), connected both ways, negotiated through the real kurento-client
 * the way a gateway does it: phone offer -> RtpEndpoint.processOffer; browser offer ->
 * WebRtcEndpoint.processOffer, gatherCandidates, IceCandidateFound trickled to the browser
 * (webrtc-call-setup.ts).
 * Setup time runs from MediaPipeline creation until the browser's DTLS is connected (the browser's
 * own offer creation is not counted).
 */
import { LoadWorker } from '../load/load-worker';
import { PhonePool, type Phone } from '../load/phone-pool';
import type { StreamSpec } from '../load/worker-protocol';
import { type BenchTarget, type CallSetup, runSetups, type SetupPacing, timeSetup } from './bench-target';
import { FerryMediaHarness, type FerryHarnessOptions } from './ferry-media-harness';
import { setUpWebRtcCall, type WebRtcCallMarks } from './webrtc-call-setup';

export interface FerryWebRtcTargetOptions extends FerryHarnessOptions {
  rtpWorkers: number;
  webrtcWorkers: number;
  /** How each step's new calls are set up: closed-loop bursts or open-loop arrivals (bench-target.ts). */
  setupPacing: SetupPacing;
  /** Lean werift browsers (packets bypass werift's track/sender/receiver; see webrtc-peer-worker.ts). */
  leanBrowsers: boolean;
  /** Subscribe to the WebRtcEndpoint's ICE/DTLS state events: ferry media's own set-up marks (webrtc-call-setup.ts). */
  serverSetupMarks: boolean;
}

const CONNECT_TIMEOUT_MS = 20000;

export class FerryWebRtcTarget implements BenchTarget {
  readonly name = 'ferry webrtc-rtp';
  private readonly harness: FerryMediaHarness;
  private readonly phones: PhonePool;
  private readonly browsers: LoadWorker[];
  private nextBrowser = 0;
  private streamId = 0;
  private readonly browserStreams = new Map<LoadWorker, number[]>();
  private readonly streamNames = new Map<number, string>();
  /** streamId -> the call it belongs to (both directions), for diagnostics. */
  private readonly calls = new Map<number, { pipelineId: string; browser: LoadWorker; browserStream: number; phone: Phone }>();

  constructor(private readonly opts: FerryWebRtcTargetOptions) {
    this.harness = new FerryMediaHarness(opts);
    this.phones = new PhonePool(opts.rtpWorkers, () => ++this.streamId, 'ferry-webrtc');
    this.browsers = Array.from({ length: Math.max(1, opts.webrtcWorkers) }, (_, i) => new LoadWorker('webrtc-peer', `ferry-webrtc-werift${i}`));
  }

  start(): Promise<void> {
    return this.harness.start();
  }

  serverPids(): number[] {
    return [this.harness.server.pid];
  }

  workers(): LoadWorker[] {
    return [...this.browsers, ...this.phones.workers()];
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
    // Phones send b-to-a (rtp -> webrtc); browsers send a-to-b (webrtc -> rtp).
    const phones = await this.phones.open(Array.from({ length: count }, () => 1 as const));
    const kurento = this.harness.kurento();
    return runSetups(phones, this.opts.setupPacing, async (phone) => {
      const browser = this.browsers[this.nextBrowser++ % this.browsers.length]!;
      const streamId = ++this.streamId;
      const spec: StreamSpec = { streamId, direction: 0, ssrc: (0x20000000 + streamId) >>> 0 };
      this.browserStreams.set(browser, [...(this.browserStreams.get(browser) ?? []), streamId]);
      let offer: string;
      try {
        offer = await browser.request<string>({ op: 'offer', stream: spec, lean: this.opts.leanBrowsers });
      } catch (err) {
        return { ok: false, ms: 0, error: `browser offer failed: ${err instanceof Error ? err.message : String(err)}` };
      }
      const marks: WebRtcCallMarks = {};
      const setup = await timeSetup(
        () =>
          setUpWebRtcCall({
            kurento,
            phones: this.phones,
            phone,
            browser,
            streamId,
            offer,
            connectTimeoutMs: CONNECT_TIMEOUT_MS,
            marks,
            serverMarks: this.opts.serverSetupMarks,
            onPipeline: (pipeline) => {
              this.harness.pipelines.push(pipeline);
              this.streamNames.set(streamId, `browser->phone of pipeline ${pipeline.id} (${browser.name})`);
              this.streamNames.set(phone.streamId, `phone->browser of pipeline ${pipeline.id} (${phone.worker.name})`);
              const call = { pipelineId: pipeline.id, browser, browserStream: streamId, phone };
              this.calls.set(streamId, call);
              this.calls.set(phone.streamId, call);
            },
          }),
        CONNECT_TIMEOUT_MS + 10000,
      );
      return { ...setup, phases: { ...marks } };
    });
  }

  describeStream(streamId: number): string {
    return this.streamNames.get(streamId) ?? `stream ${streamId}`;
  }

  async diagnose(streamIds: number[]): Promise<unknown> {
    const calls = [...new Set(streamIds.map((id) => this.calls.get(id)).filter((c) => c !== undefined))];
    const stats = await this.harness.stats();
    const detail = (stats?.pipelinesDetail ?? []) as { id: string; elements?: Record<string, unknown>[] }[];
    const out = await Promise.all(
      calls.map(async (c) => ({
        pipeline: detail.find((p) => p.id === c.pipelineId) ?? `${c.pipelineId} not in /stats`,
        browser: await c.browser.request({ op: 'diag', streamIds: [c.browserStream] }).catch((e: unknown) => String(e)),
        phone: await c.phone.worker.request({ op: 'diag', streamIds: [c.phone.streamId] }).catch((e: unknown) => String(e)),
      })),
    );
    // One line for the progress output: the server's WebRtcEndpoint states of the silent calls.
    const states = new Map<string, number>();
    for (const c of out) {
      const ep = typeof c.pipeline === 'object' ? c.pipeline.elements?.find((e) => e.type === 'WebRtcEndpoint') : undefined;
      const key = ep ? `server ICE ${String(ep.ice)} DTLS ${String(ep.dtls)} leg ended ${String(ep.legEnded)}` : 'pipeline gone';
      states.set(key, (states.get(key) ?? 0) + 1);
    }
    return { summary: [...states.entries()].map(([k, v]) => `${v}× ${k}`).join('; '), calls: out };
  }

  async releaseAll(): Promise<string> {
    await this.phones.closeAll();
    const streams = [...this.browserStreams.entries()];
    this.browserStreams.clear();
    await Promise.all(streams.map(([w, ids]) => w.request({ op: 'close', streamIds: ids }).catch(() => undefined)));
    return this.harness.releaseAll();
  }

  async stop(): Promise<void> {
    await Promise.all([this.phones.stop(), ...this.browsers.map((b) => b.stop())]);
    await this.harness.stop();
  }
}
