import assert from 'node:assert/strict';
import Redis from 'ioredis';
import { startStack, getJson, waitFor, type Stack, type StackOptions } from './stack';
import { SipPhone } from './sip-phone';
import { RtpPhone } from './rtp-phone';
import { warmChromium } from './chromium';
import { GatewayWebphone } from './gateway-webphone';
import { writeLifecycleSipConfig, WEBPHONE_USERS } from './lifecycle-sip-config';
import type { CallRecord } from '../../src/gateway/state/call-record';

export interface MediaStatsDetail {
  pipelines: number;
  elements: number;
  sessions: number;
  boundPorts: number;
  sessionsDetail?: { id: string; bound: boolean; pipelines: string[] }[];
}

/**
 * The gateway lifecycle scenarios' world: the three ferry processes (test/helpers/stack.ts) on Redis
 * with a sip-config naming the scripted SIP phone, Chromium on the gateway's webphone page registered
 * as alice, and helpers to set up a call either way, read /stats, /api/calls and the stack's Redis keys.
 * `close()` ends everything (after()).
 */
export class GatewayCallFixture {
  private constructor(
    readonly stack: Stack,
    readonly phone: SipPhone,
    readonly webphone: GatewayWebphone,
    private readonly redis: Redis,
    private readonly removeConfig: () => Promise<void>,
  ) {}

  /** `secondGateway`: a second gateway on the same engine, media server and Redis; `redisUrl`: another Redis than the shared one (e.g. a private one the test kills). */
  static async start(options: { env?: Record<string, string>; secondGateway?: boolean; redisUrl?: string } = {}): Promise<GatewayCallFixture> {
    const redisUrl = options.redisUrl ?? 'redis://127.0.0.1:6379';
    const phone = new SipPhone(new RtpPhone({ rtcpIntervalMs: 1000 }), { user: 'desk' });
    const phonePort = await phone.start();
    const config = await writeLifecycleSipConfig({ port: phonePort });
    let stack: Stack | undefined;
    try {
      const stackOptions: StackOptions = {
        redisUrl,
        env: { FERRY_SIP_CONFIG: config.file, ...(options.env ?? {}) },
        ...(options.secondGateway ? { secondGateway: true } : {}),
      };
      warmChromium(); // the webphone's browser starts while the stack does
      stack = await startStack(stackOptions);
      const webphone = await GatewayWebphone.open({ httpPort: stack.httpPort, wsPort: stack.wsPort, user: 'alice', password: WEBPHONE_USERS.alice });
      const redis = new Redis(redisUrl, { lazyConnect: false, maxRetriesPerRequest: 2 });
      redis.on('error', () => {}); // a test may take its Redis away; reads then fail and are retried by the test
      return new GatewayCallFixture(stack, phone, webphone, redis, config.remove);
    } catch (err) {
      const tail = stack?.output.slice(-30).join('\n') ?? '';
      await stack?.stop();
      if (err instanceof Error) err.message += `\nstack output tail:\n${tail}`;
      await phone.close();
      await config.remove();
      throw err;
    }
  }

  mediaStats(): Promise<MediaStatsDetail> {
    return getJson<MediaStatsDetail>(this.stack.mediaPort, '/stats');
  }

  /** Resolves with the time /stats first showed 0 pipelines. */
  async releasedAt(timeoutMs: number): Promise<number> {
    await waitFor(async () => (await this.mediaStats()).pipelines === 0, timeoutMs, 10, 'pipelines back to 0');
    return Date.now();
  }

  /**
   * Ends whatever call a test left (a failed one must not leave it to the next): the phone's media stops,
   * the phone hangs up if still in the call, then waits (errors ignored) for the release and the webphone's end.
   */
  async endLeftoverCall(): Promise<void> {
    await this.phone.media.stopMedia().catch(() => undefined);
    if (this.phone.inCall) await this.phone.hangup().catch(() => undefined);
    await this.releasedAt(5000).catch(() => undefined);
    await this.webphone.waitCallState('ended', 3000).catch(() => undefined);
  }

  /** The phone calls alice; the webphone answers; media flows both ways. */
  async phoneCallsWebphone(): Promise<number> {
    const since = Date.now();
    const calling = this.phone.call('sip:alice@ferry.local', { host: '127.0.0.1', port: this.stack.sipPort });
    await this.webphone.waitCallState('ringing-in', 15_000);
    await this.webphone.answer();
    await calling;
    await this.webphone.waitCallState('connected', 10_000);
    await this.mediaFlowing(since);
    return since;
  }

  /** RTP both ways: > 20 packets at the phone from the browser and at the browser from the phone. */
  async mediaFlowing(since: number): Promise<void> {
    await waitFor(async () => (await this.phone.media.rtpReceivedBetween(since, Date.now())) > 20, 10_000, 50, 'RTP from the browser at the phone');
    const base = (await this.webphone.rtpStats()).received;
    await waitFor(async () => (await this.webphone.rtpStats()).received > base + 20, 10_000, 50, 'RTP from the phone at the browser');
  }

  async calls(httpPort = this.stack.httpPort): Promise<CallRecord[]> {
    return (await getJson<{ calls: CallRecord[] }>(httpPort, '/api/calls?state=all')).calls;
  }

  async call(id: string, httpPort = this.stack.httpPort): Promise<CallRecord> {
    return getJson<CallRecord>(httpPort, `/api/calls/${id}`);
  }

  /** The stack's call record straight from Redis (`<prefix>call:<id>`, undefined when the key is gone) and its TTL. */
  async redisCall(id: string): Promise<{ record: CallRecord; ttlMs: number } | undefined> {
    const key = `${this.stack.redisPrefix}call:${id}`;
    const raw = await this.redis.get(key);
    if (!raw) return undefined;
    return { record: JSON.parse(raw) as CallRecord, ttlMs: await this.redis.pttl(key) };
  }

  /** Members of the stack's live-call index set (`<prefix>calls`). */
  async redisCallIndex(): Promise<string[]> {
    return this.redis.smembers(`${this.stack.redisPrefix}calls`);
  }

  /** Every Redis key of this stack whose name mentions "call". */
  async redisCallKeys(): Promise<string[]> {
    return (await this.redis.keys(`${this.stack.redisPrefix}*`)).filter((k) => /call/i.test(k.slice(this.stack.redisPrefix.length)));
  }

  /** The live call created at or after `since` (asserts there is exactly one). */
  async liveCall(since: number, httpPort = this.stack.httpPort): Promise<CallRecord> {
    const live = (await this.calls(httpPort)).filter((c) => c.state !== 'ended' && c.createdAt >= since - 1000);
    assert.equal(live.length, 1, `one live call since ${since}: ${JSON.stringify(live.map((c) => [c.id, c.state]))}`);
    return live[0]!;
  }

  async close(): Promise<void> {
    await this.webphone.close();
    await this.phone.close();
    await this.stack.stop();
    this.redis.disconnect();
    await this.removeConfig();
  }
}
