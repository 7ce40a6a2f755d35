/**
 * What both ferry targets share: a `bin/ferry media` process, one real kurento-client connection to
 * it (as a gateway would hold), the pipelines created so far, and release-and-verify via /stats.
 */
import { connectKurento, type KurentoClientInstance, type KurentoPipeline } from '../kurento/kurento-types';
import { readLoopLag, type LoopLag } from '../probe/loop-lag-reader';
import { FerryMediaProcess } from '../servers/ferry-media-process';
import { InspectorProfiler } from '../servers/inspector-profiler';
import { runLimited } from './bench-target';

export interface FerryHarnessOptions {
  logFile: string;
  lagFile: string;
  logLevel: string;
  /** Profile each measurement window through the V8 inspector. */
  profile?: boolean;
  /** Extra environment for ferry media. */
  env?: Record<string, string>;
}

export class FerryMediaHarness {
  readonly server: FerryMediaProcess;
  private client: KurentoClientInstance | undefined;
  readonly pipelines: KurentoPipeline[] = [];
  profiler: InspectorProfiler | undefined;

  constructor(private readonly opts: FerryHarnessOptions) {
    this.server = new FerryMediaProcess({
      logFile: opts.logFile,
      lagFile: opts.lagFile,
      logLevel: opts.logLevel,
      inspect: opts.profile === true,
      ...(opts.env ? { extraEnv: opts.env } : {}),
    });
  }

  async start(): Promise<void> {
    await this.server.start();
    if (this.opts.profile) {
      if (!this.server.inspectorUrl) throw new Error('ferry media printed no inspector URL');
      this.profiler = new InspectorProfiler();
      await this.profiler.connect(this.server.inspectorUrl);
    }
    this.client = await connectKurento(this.server.url);
  }

  kurento(): KurentoClientInstance {
    if (!this.client) throw new Error('ferry media is not started');
    return this.client;
  }

  loopLag(fromMs: number, toMs: number): LoopLag | undefined {
    return readLoopLag(this.opts.lagFile, fromMs, toMs);
  }

  stats(): Promise<Record<string, unknown> | undefined> {
    return this.server.stats();
  }

  /** Release every pipeline through kurento-client, then check /stats is back to zero. */
  async releaseAll(): Promise<string> {
    let failed = 0;
    await runLimited(this.pipelines.splice(0), 10, async (p) => {
      await p.release().catch(() => {
        failed++;
      });
    });
    // Releases are acknowledged before sockets finish closing: give /stats a moment to reach zero.
    let stats: Record<string, unknown> | undefined;
    for (let i = 0; i < 20; i++) {
      stats = await this.stats();
      if (stats && stats.pipelines === 0 && stats.elements === 0 && stats.boundPorts === 0) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const counts = stats
      ? `/stats pipelines=${String(stats.pipelines)} elements=${String(stats.elements)} boundPorts=${String(stats.boundPorts)}`
      : '/stats unreadable';
    return `${failed ? `${failed} release(s) failed; ` : ''}${counts}`;
  }

  async stop(): Promise<void> {
    try {
      this.client?.close();
    } catch {
      // already closed
    }
    this.client = undefined;
    this.profiler?.close();
    this.profiler = undefined;
    await this.server.stop();
  }
}
