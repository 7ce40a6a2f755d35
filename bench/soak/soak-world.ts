import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SipPhone } from '../../test/helpers/sip-phone';
import { RtpPhone } from '../../test/helpers/rtp-phone';
import { startFerryStart } from './ferry-start-stack';
import { startPartsStack, type SoakPart, type SoakStack } from './soak-stack';
import { WsWebphone } from './ws-webphone';
import type { SoakOptions } from './soak-options';

/**
 * Everything a soak runs against: the ferry processes on free ports (one `ferry start`, or the three
 * parts started separately on the soak's own Redis: soak-stack.ts), and one "slot" per concurrent call — a webphone user `w<i>` (SIP over
 * WebSocket, registered) and an IP phone trunk `p<i>` (scripted SIP/RTP phone on UDP; a webphone
 * rings it by dialling `phone<i>`). `close()` stops and removes all of it.
 */
export interface Slot {
  index: number;
  webphone: WsWebphone;
  phone: SipPhone;
  media: RtpPhone;
  phoneSipPort: number;
  phoneRtpPorts: number[];
}

export type FerryPart = 'sip' | 'media' | 'gateway';

export class SoakWorld {
  /** the latest `ferry sip stats` line */
  sipStats: Record<string, number> | undefined;
  private sipStatsWaiters: (() => void)[] = [];

  private constructor(
    readonly stack: SoakStack,
    readonly slots: Slot[],
    private readonly configDir: string,
  ) {}

  static async create(options: SoakOptions): Promise<SoakWorld> {
    const configDir = await mkdtemp(path.join(os.tmpdir(), 'ferry-soak-'));
    const phones: { phone: SipPhone; media: RtpPhone; port: number; rtp: number[] }[] = [];
    let stack: SoakStack | undefined;
    const worldRef: { world?: SoakWorld } = {};
    try {
      for (let i = 0; i < options.calls; i++) {
        const media = new RtpPhone({ rtcpIntervalMs: options.rtcpIntervalMs });
        const phone = new SipPhone(media, { user: `p${i}` });
        const port = await phone.start();
        const s = await media.stats();
        phones.push({ phone, media, port, rtp: [s.rtpPort, s.rtcpPort] });
      }
      const config = {
        domain: 'ferry.local',
        maxExpires: 3600,
        users: phones.map((_p, i) => ({ user: `w${i}`, password: `soak-w${i}-secret` })),
        trunks: phones.map((p, i) => ({ name: `p${i}`, address: `127.0.0.1:${p.port}`, transport: 'udp', acceptFrom: [`127.0.0.1:${p.port}`] })),
        routes: [...phones.map((_p, i) => ({ match: `phone${i}`, to: `trunk:p${i}` })), { match: '.*', to: 'user' }],
      };
      const file = path.join(configDir, 'ferry.json');
      await writeFile(file, JSON.stringify(config, null, 2));
      const pendingStats: string[] = [];
      const stackOptions = {
        env: {
          NODE_ENV: 'test',
          FERRY_LOG_LEVEL: 'warn',
          FERRY_SIP_CONFIG: file,
          FERRY_MEDIA_DEAD_MS: String(options.deadMs),
          FERRY_SIP_ORPHAN_DIALOG_MS: String(options.orphanDialogMs),
          FERRY_SIP_STATS_INTERVAL_MS: '1000',
          // a pipeline created for a set-up the killed gateway never finished is known to nobody; ferry
          // media's backstop releases such never-negotiated orphans after this (default 240 s)
          FERRY_MEDIA_ORPHAN_TTL_MS: '20000',
          // every simulated webphone connects from 127.0.0.1; real ones come from their own addresses
          FERRY_SIP_MAX_CONNECTIONS_PER_SOURCE: String(Math.max(50, options.calls * 2 + 20)),
          // ... and so one digest failure of each would add up to a lockout of everybody (an office
          // behind one NAT address); the failures themselves are still counted by the soak
          FERRY_AUTH_MAX_FAILURES: '100000',
          // ... and their REGISTERs and INVITEs (all N register at once, over WebSocket: a dropped one is not
          // retransmitted) are one source's new requests: the soak measures leaks, not the per-source rate
          FERRY_SIP_RATE_EXEMPT: '127.0.0.1',
        },
        onSipStats: (json: string) => {
          const w = worldRef.world;
          if (w) w.onSipStats(json);
          else pendingStats.push(json);
        },
      };
      stack = options.via === 'start' ? await startFerryStart(stackOptions) : await startPartsStack(stackOptions);
      const slots: Slot[] = [];
      for (let i = 0; i < phones.length; i++) {
        const p = phones[i]!;
        const webphone = await WsWebphone.connect(`ws://127.0.0.1:${stack.wsPort}`, `w${i}`, `soak-w${i}-secret`, 'ferry.local');
        await webphone.register(3600);
        slots.push({ index: i, webphone, phone: p.phone, media: p.media, phoneSipPort: p.port, phoneRtpPorts: p.rtp });
      }
      const world = new SoakWorld(stack, slots, configDir);
      worldRef.world = world;
      for (const line of pendingStats) world.onSipStats(line);
      return world;
    } catch (err) {
      await stack?.stop().catch(() => undefined);
      for (const p of phones) await p.phone.close().catch(() => undefined);
      await rm(configDir, { recursive: true, force: true });
      throw err;
    }
  }

  private onSipStats(json: string): void {
    try {
      this.sipStats = JSON.parse(json) as Record<string, number>;
    } catch {
      return;
    }
    for (const w of this.sipStatsWaiters.splice(0)) w();
  }

  /** the next `ferry sip stats` line (fresh counts), or the last one after `timeoutMs` */
  async freshSipStats(timeoutMs = 3000): Promise<Record<string, number> | undefined> {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      this.sipStatsWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
    return this.sipStats;
  }

  pid(part: SoakPart): number | undefined {
    return this.stack.pid(part);
  }

  async close(): Promise<void> {
    for (const s of this.slots) {
      await s.webphone.close().catch(() => undefined);
      await s.phone.close().catch(() => undefined);
    }
    await this.stack.stop().catch(() => undefined);
    await rm(this.configDir, { recursive: true, force: true });
  }
}

/** Open file descriptors of a process (/proc/<pid>/fd), undefined when it is gone. */
export async function fdCount(pid: number | undefined): Promise<number | undefined> {
  if (!pid) return undefined;
  try {
    return (await readdir(`/proc/${pid}/fd`)).length;
  } catch {
    return undefined;
  }
}
