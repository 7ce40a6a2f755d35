import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BaresipPhone, type BaresipOptions } from './baresip-phone';
import { warmChromium } from './chromium';
import { GatewayWebphone } from './gateway-webphone';
import { getJson, startStack, waitFor, type Stack } from './stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

export interface Account {
  user: string;
  password: string;
}

/** One media element as ferry media's /stats lists it (the phone leg is the RtpEndpoint). */
export interface PhoneLegStats {
  type: string;
  packetsFromPeer: number;
  packetsToPeer: number;
  srtp?: boolean;
  srtpRefusedPackets?: number;
}

export interface MediaStats {
  pipelines: number;
  elements: number;
  boundPorts: number;
  pipelinesDetail: { elements: PhoneLegStats[] }[];
}

/**
 * RTP both ways between the webphone and a desk phone: more than 100 packets each way counted by the
 * browser (getStats), then at the phone leg in ferry media (its stats returned).
 */
export async function waitRtpBothWays(webphone: GatewayWebphone, phoneLeg: () => Promise<PhoneLegStats | undefined>): Promise<PhoneLegStats> {
  await waitFor(async () => {
    const s = await webphone.rtpStats();
    return s.sent > 100 && s.received > 100;
  }, 15_000, 100, 'RTP both ways at the Chromium webphone (getStats)');
  return waitFor(async () => {
    const l = await phoneLeg();
    return l && l.packetsFromPeer > 100 && l.packetsToPeer > 100 ? l : undefined;
  }, 10_000, 100, 'RTP both ways at the phone leg in ferry media');
}

export interface BaresipWebphoneWorldOptions {
  /** prefix of the temporary directory holding the gateway's user file */
  dirPrefix: string;
  /** the desk phone's account (baresip) and the webphone's (Chromium) */
  desk: Account & { displayName: string };
  alice: Account;
  /** extra environment per part of the stack */
  partEnv: { sip?: Record<string, string>; media?: Record<string, string> };
  /** baresip's options besides its account and auto-answer, once the stack's ports are known */
  phone: (stack: Stack) => Omit<BaresipOptions, 'user' | 'password' | 'answer'>;
}

/**
 * The three ferry processes with a user file for two accounts, a baresip desk phone registered with
 * digest authentication (auto-answer) and the gateway's webphone page in real Chromium, both registered;
 * with the reads the baresip tests make of it (media stats, the phone leg, live calls) and a diagnosis
 * that adds baresip's events and log and ferry's output to a failure. start() keeps what it made so far,
 * so stop() cleans up after a failed start too.
 */
export class BaresipWebphoneWorld {
  stack!: Stack;
  phone!: BaresipPhone;
  alice!: GatewayWebphone;
  private dir: string | undefined;

  constructor(private readonly options: BaresipWebphoneWorldOptions) {}

  async start(): Promise<void> {
    const { desk, alice } = this.options;
    this.dir = mkdtempSync(path.join(tmpdir(), this.options.dirPrefix));
    writeFileSync(path.join(this.dir, 'ferry.json'), JSON.stringify({
      domain: 'ferry.local',
      users: [{ ...alice, displayName: 'Alice (webphone)' }, { user: desk.user, password: desk.password, displayName: desk.displayName }],
    }));
    warmChromium(); // the webphone's browser starts while the stack does
    this.stack = await startStack({
      partEnv: {
        sip: this.options.partEnv.sip ?? {},
        gateway: { FERRY_SIP_CONFIG: path.join(this.dir, 'ferry.json') },
        media: this.options.partEnv.media ?? {},
      },
    });
    const stack = this.stack;
    // the phone and the webphone register independently of each other: both at once
    const [phone, webphone] = await Promise.allSettled([
      (async () => {
        this.phone = await BaresipPhone.start({ user: desk.user, password: desk.password, answer: 'auto', ...this.options.phone(stack) });
        try {
          await this.phone.waitRegistered(15_000);
        } catch (err) {
          throw this.diagnose(err);
        }
      })(),
      (async () => {
        this.alice = await GatewayWebphone.open({ httpPort: stack.httpPort, wsPort: stack.wsPort, ...alice });
      })(),
    ]);
    if (phone.status === 'rejected') throw phone.reason;
    if (webphone.status === 'rejected') throw webphone.reason;
    await waitFor(async () => /^ferry_registrations 2$/m.test(await (await fetch(`http://127.0.0.1:${stack.httpPort}/metrics`)).text()), 10_000, 50, 'phone and webphone registered');
  }

  media(): Promise<MediaStats> {
    return getJson<MediaStats>(this.stack.mediaPort, '/stats');
  }

  async phoneLeg(): Promise<PhoneLegStats | undefined> {
    return (await this.media()).pipelinesDetail.flatMap((p) => p.elements).find((e) => e.type === 'RtpEndpoint');
  }

  async liveCalls(): Promise<CallRecord[]> {
    return (await getJson<{ calls: CallRecord[] }>(this.stack.httpPort, '/api/calls')).calls;
  }

  /** `err` with baresip's events and log and ferry's last output lines appended. */
  diagnose(err: unknown): Error {
    const phone = this.phone as BaresipPhone | undefined;
    const stack = this.stack as Stack | undefined;
    return new Error(`${(err as Error).message}\n--- baresip events: ${phone?.events.map((e) => `${e.type}(${e.param ?? ''})`).join(' ')}\n--- baresip log:\n${phone?.log.slice(-25).join('\n')}\n--- ferry:\n${stack?.output.slice(-25).join('\n')}`);
  }

  /**
   * Replaces the desk phone with a new baresip on the same account with other options (the old one
   * stopped first, so one phone at a time talks to the stack); resolves once the new one is registered.
   */
  async replacePhone(options: Omit<BaresipOptions, 'user' | 'password' | 'answer'>): Promise<BaresipPhone> {
    await (this.phone as BaresipPhone | undefined)?.stop();
    const { desk } = this.options;
    this.phone = await BaresipPhone.start({ user: desk.user, password: desk.password, answer: 'auto', ...options });
    try {
      await this.phone.waitRegistered(15_000);
    } catch (err) {
      throw this.diagnose(err);
    }
    return this.phone;
  }

  /** Hangs up whatever call the phone still has (so a failed test does not leave one up for the next). */
  async hangUpLeftover(): Promise<void> {
    await (this.phone as BaresipPhone | undefined)?.command('hangup').catch(() => undefined);
  }

  async stop(): Promise<void> {
    await (this.alice as GatewayWebphone | undefined)?.close();
    await (this.phone as BaresipPhone | undefined)?.stop();
    await (this.stack as Stack | undefined)?.stop();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
