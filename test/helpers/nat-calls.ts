import assert from 'node:assert/strict';
import type { BaresipEvent, BaresipPhone } from './baresip-phone';
import { CHROMIUM_ARGS } from './chromium';
import type { GatewayWebphone } from './gateway-webphone';
import type { NatWorld } from './nat-world';
import { waitFor } from './stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * The webphone's Chromium in the NAT tests: the tests' usual flags without loopback candidates (a browser
 * on another host has none; ferry refuses a loopback c= from a remote party), and
 * --ignore-certificate-errors for the development certificate of the HTTPS page (a secure context: the
 * microphone).
 */
export function natWebphoneArgs(): string[] {
  return [...CHROMIUM_ARGS.filter((a) => a !== '--allow-loopback-in-peer-connection'), '--ignore-certificate-errors'];
}

/**
 * The two ends of a NAT test's calls (./nat-world.ts): the gateway's webphone page and a baresip phone
 * answering automatically, one of them behind the router. Each call is set up and hung up from one end
 * and waited for at the other; a hang-up must reach the other end within a second.
 */
export class NatCallEnds {
  constructor(
    private readonly world: NatWorld,
    private readonly webphone: GatewayWebphone,
    private readonly phone: BaresipPhone,
  ) {}

  /** The webphone dials `user` (the phone): established at the phone, connected at the page, the live call. */
  async webphoneCalls(user: string): Promise<{ callStart: number; call: CallRecord }> {
    const callStart = Date.now();
    await this.webphone.dial(user);
    await this.phone.waitEvent((e) => e.type === 'CALL_ESTABLISHED' && e.at >= callStart, 15_000, 'CALL_ESTABLISHED at the phone (auto-answer)');
    await this.webphone.waitCallState('connected', 15_000);
    return { callStart, call: await this.liveCall() };
  }

  /** The phone dials `user` (the webphone's) at the registrar; the page rings and answers; the live call. */
  async phoneCalls(user: string): Promise<{ callStart: number; call: CallRecord }> {
    const callStart = Date.now();
    const dialed = await this.phone.command('dial', `sip:${user}@${this.world.registrar}`);
    assert.ok(dialed.ok, `dial: ${dialed.data}`);
    await this.webphone.waitCallState('ringing-in', 15_000);
    await this.webphone.answer();
    await this.webphone.waitCallState('connected', 15_000);
    await this.phone.waitEvent((e) => e.type === 'CALL_ESTABLISHED' && e.at >= callStart, 10_000, 'CALL_ESTABLISHED at the phone');
    return { callStart, call: await this.liveCall() };
  }

  /** The webphone hangs up: the phone closes the call < 1 s later (its CALL_CLOSED event, returned). */
  async webphoneHangsUp(callStart: number, what: string): Promise<BaresipEvent> {
    const hangupAt = await this.webphone.hangup();
    const closed = await this.phone.waitEvent((e) => e.type === 'CALL_CLOSED' && e.at >= callStart, 3000, 'CALL_CLOSED at the phone');
    const latency = closed.at - hangupAt;
    console.log(`# ${what}: ${latency} ms (${closed.param})`);
    assert.ok(latency < 1000, `the phone saw the end ${latency} ms after the webphone hung up`);
    return closed;
  }

  /** The phone hangs up: the webphone shows the end < 1 s later. */
  async phoneHangsUp(what: string): Promise<void> {
    const hangupAt = Date.now();
    assert.ok((await this.phone.command('hangup')).ok);
    await this.webphone.waitCallState('ended', 3000);
    const latency = (await this.webphone.endedAt())! - hangupAt;
    console.log(`# ${what}: ${latency} ms`);
    assert.ok(latency < 1000, `the webphone saw the end ${latency} ms after the phone hung up`);
  }

  private liveCall(): Promise<CallRecord> {
    return waitFor(async () => (await this.world.liveCalls())[0], 5000, 50, 'the live call');
  }
}
