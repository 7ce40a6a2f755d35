import { writeFile } from 'node:fs/promises';
import { RtpPhone } from './rtp-phone';
import { SipPhone } from './sip-phone';

/**
 * Scripted SIP/RTP phones in pairs, each pair a trunk calling a trunk through the gateway: pair i's
 * caller is trunk `caller<i>` (trusted by its address and port) and dials `7<i>`, which routes to trunk
 * `callee<i>`. Used where a test needs several independent phone-to-phone calls (several media servers).
 */
export interface PhonePair {
  caller: SipPhone;
  callee: SipPhone;
}

export async function startPhonePairs(count: number): Promise<PhonePair[]> {
  const pairs: PhonePair[] = [];
  for (let i = 0; i < count; i++) {
    const pair = { caller: new SipPhone(new RtpPhone({ rtcpIntervalMs: 1000 }), { user: `caller${i}` }), callee: new SipPhone(new RtpPhone({ rtcpIntervalMs: 1000 }), { user: `callee${i}` }) };
    await pair.caller.start();
    await pair.callee.start();
    pairs.push(pair);
  }
  return pairs;
}

export async function closePhonePairs(pairs: readonly PhonePair[]): Promise<void> {
  for (const p of pairs) {
    await p.caller.close();
    await p.callee.close();
  }
}

/** Writes the sip-config (FERRY_SIP_CONFIG) with the two trunks and the route of every pair. */
export async function writePhonePairsConfig(file: string, pairs: readonly PhonePair[]): Promise<void> {
  await writeFile(file, JSON.stringify({
    domain: 'ferry.local',
    users: [],
    trunks: pairs.flatMap((p, i) => [
      { name: `caller${i}`, address: `127.0.0.1:${p.caller.port}`, transport: 'udp', acceptFrom: [`127.0.0.1:${p.caller.port}`] },
      { name: `callee${i}`, address: `127.0.0.1:${p.callee.port}`, transport: 'udp' },
    ]),
    routes: pairs.map((_, i) => ({ match: `7${i}`, to: `trunk:callee${i}` })),
  }, null, 2));
}
