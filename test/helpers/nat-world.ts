import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FerryStartProcess, type FerryReady } from './ferry-start-process';
import { freePort } from './free-port';
import { NatRouter } from './nat-router';
import { TEST_API_TOKEN, waitFor } from './stack';
import type { MediaStats, PhoneLegStats } from './baresip-webphone-world';
import type { CallRecord } from '../../src/gateway/state/call-record';

export type NatReady = FerryReady & { tls: number; wss: number; https: number };

export interface NatAccount {
  user: string;
  password: string;
  displayName: string;
}

/**
 * ferry on a public address with a home network behind a masquerading router (test/helpers/nat-router.ts):
 * `ferry start` configured as docs/deploy.md tells a deployer on a public host — FERRY_PUBLIC_HOST the
 * public address, FERRY_HOST that address or 0.0.0.0 with the SDP and ICE addresses, RTP and ICE port ranges, its development certificate for the HTTPS
 * page — with a user file of the given accounts (minExpires low enough for a phone's short re-REGISTER
 * interval, as NAT'd phones use). The API and /metrics are reached at the public address with the test
 * token, ferry media's /stats on loopback. stop() removes everything start() made, also after a failed start.
 */
export class NatWorld {
  nat!: NatRouter;
  ferry!: FerryStartProcess;
  ready!: NatReady;
  rtpRange!: [number, number];
  iceRange!: [number, number];
  private dir: string | undefined;

  /**
   * `listen: 'public-address'` binds the public listeners to the public address itself (FERRY_HOST is it);
   * `'wildcard'` is docs/deploy.md's "One public host" walk: FERRY_HOST=0.0.0.0, with FERRY_MEDIA_SDP_ADDRESS
   * and FERRY_MEDIA_ICE_ADDRESSES naming the public address. `env`: more settings of `ferry start` (e.g. FERRY_QUALIFY_MS).
   */
  constructor(private readonly accounts: NatAccount[], private readonly options: { minExpires?: number; listen?: 'public-address' | 'wildcard'; env?: Record<string, string> } = {}) {}

  async start(): Promise<void> {
    this.nat = await NatRouter.create();
    this.dir = mkdtempSync(path.join(tmpdir(), 'ferry-nat-'));
    const config = path.join(this.dir, 'ferry.json');
    writeFileSync(config, JSON.stringify({ domain: 'ferry.local', minExpires: this.options.minExpires ?? 10, users: this.accounts }));
    const host = { host: this.nat.ferryAddress };
    const rtp = await freePort({ protocols: ['udp'], count: 40, even: true, ...host });
    let ice = await freePort({ protocols: ['udp'], count: 40, ...host });
    while (ice < rtp + 40 && rtp < ice + 40) ice = await freePort({ protocols: ['udp'], count: 40, ...host });
    this.rtpRange = [rtp, rtp + 39];
    this.iceRange = [ice, ice + 39];
    const publicAddress = this.nat.ferryAddress;
    const listen: Record<string, string> = this.options.listen === 'wildcard'
      ? { FERRY_HOST: '0.0.0.0', FERRY_MEDIA_SDP_ADDRESS: publicAddress, FERRY_MEDIA_ICE_ADDRESSES: publicAddress }
      : { FERRY_HOST: publicAddress };
    this.ferry = FerryStartProcess.spawn({
      ...listen,
      FERRY_PUBLIC_HOST: publicAddress,
      FERRY_MEDIA_RTP_PORT_MIN: String(rtp), FERRY_MEDIA_RTP_PORT_MAX: String(rtp + 39),
      FERRY_MEDIA_ICE_PORT_MIN: String(ice), FERRY_MEDIA_ICE_PORT_MAX: String(ice + 39),
      FERRY_SIP_CONFIG: config,
      FERRY_DATA_DIR: path.join(this.dir, 'data'),
      FERRY_STORE: 'memory',
      REDIS_URL: '',
      FERRY_LOG_LEVEL: 'info',
      ...this.options.env,
    });
    this.ready = (await this.ferry.ready()) as NatReady;
  }

  /** The HTTPS webphone page at the public address. */
  get pageUrl(): string {
    return `https://${this.nat.ferryAddress}:${this.ready.https}/`;
  }

  /** The SIP address phones register to (public address, UDP). */
  get registrar(): string {
    return `${this.nat.ferryAddress}:${this.ready.sip}`;
  }

  async api<T>(p: string): Promise<T> {
    const res = await fetch(`http://${this.nat.ferryAddress}:${this.ready.http}${p}`, { headers: { Authorization: `Bearer ${TEST_API_TOKEN}` } });
    if (!res.ok) throw new Error(`GET ${p}: ${res.status}`);
    return (await res.json()) as T;
  }

  async media(): Promise<MediaStats> {
    const res = await fetch(`http://127.0.0.1:${this.ready.media}/stats`);
    if (!res.ok) throw new Error(`GET /stats: ${res.status}`);
    return (await res.json()) as MediaStats;
  }

  async phoneLeg(): Promise<PhoneLegStats | undefined> {
    return (await this.media()).pipelinesDetail.flatMap((p) => p.elements).find((e) => e.type === 'RtpEndpoint');
  }

  async liveCalls(): Promise<CallRecord[]> {
    return (await this.api<{ calls: CallRecord[] }>('/api/calls')).calls;
  }

  async call(id: string): Promise<CallRecord> {
    return this.api<CallRecord>(`/api/calls/${id}`);
  }

  async registrations(user: string): Promise<{ contact: string; source: string; transport: string }[]> {
    const all = await this.api<{ registrations: { user: string; contact: string; source: string; transport: string }[] }>('/api/registrations');
    return all.registrations.filter((r) => r.user === user);
  }

  /** Pipelines, elements and ports of ferry media all back to zero, and no live call (bounded). */
  async waitReleased(timeoutMs = 5000): Promise<void> {
    await waitFor(async () => {
      const m = await this.media();
      return m.pipelines === 0 && m.elements === 0 && m.boundPorts === 0;
    }, timeoutMs, 50, 'pipeline, elements and ports released in ferry media');
    await waitFor(async () => (await this.liveCalls()).length === 0, timeoutMs, 50, 'no live call at the gateway');
  }

  /** ferry's last output lines (for a failure's message). */
  tail(n = 30): string {
    return (this.ferry as FerryStartProcess | undefined)?.lines.slice(-n).map((l) => l.line).join('\n') ?? '';
  }

  async stop(): Promise<void> {
    await (this.ferry as FerryStartProcess | undefined)?.stop();
    await (this.nat as NatRouter | undefined)?.destroy();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
