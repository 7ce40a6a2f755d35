import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FerryStartProcess, type FerryReady } from './ferry-start-process';
import { GatewayWebphone } from './gateway-webphone';
import { writeLifecycleSipConfig, WEBPHONE_USERS } from './lifecycle-sip-config';
import { RtpPhone } from './rtp-phone';
import { SipPhone } from './sip-phone';
import { getJson, waitFor } from './stack';
import type { CallRecord } from '../../src/gateway/state/call-record';

/**
 * The fault tests' world through `ferry start` (what `npm start` runs): a scripted SIP desk phone
 * with a real RTP peer (RTCP every second), a real Chromium webphone registered as alice on the
 * gateway's page, and ferry start with its own data directory and the lifecycle sip-config.
 *
 *   const w = await startFerryStartCallWorld('ferry-f11', { FERRY_SIP_ORPHAN_DIALOG_MS: '4000' });
 *   const call = await phoneCallsWebphone(w); ... await w.close();
 */
export interface FerryStartCallWorld {
  fs: FerryStartProcess;
  ready: FerryReady;
  phone: SipPhone;
  webphone: GatewayWebphone;
  close(): Promise<void>;
}

/**
 * Starts the world; `env` goes to ferry start on top of the defaults (REDIS_URL empty: the private
 * Redis). `onReady` runs before the webphone registers (e.g. to check the ready line or open a store
 * client); `onClose` runs before ferry start is stopped. On a start-up failure the error carries the
 * tail of ferry start's output and everything started is stopped.
 */
export async function startFerryStartCallWorld(
  name: string,
  env: Record<string, string>,
  hooks: { onReady?: (ready: FerryReady) => Promise<void> | void; onClose?: () => Promise<void> } = {},
): Promise<FerryStartCallWorld> {
  const phone = new SipPhone(new RtpPhone({ rtcpIntervalMs: 1000 }), { user: 'desk' });
  const phonePort = await phone.start();
  const config = await writeLifecycleSipConfig({ port: phonePort });
  const dataDir = mkdtempSync(path.join(tmpdir(), `${name}-data-`));
  const fs = FerryStartProcess.spawn({ FERRY_SIP_CONFIG: config.file, FERRY_DATA_DIR: dataDir, FERRY_LOG_LEVEL: 'info', REDIS_URL: '', ...env });
  let webphone: GatewayWebphone | undefined;
  const close = async (): Promise<void> => {
    if (process.env.FERRY_TEST_DUMP) console.log(fs.lines.map((l) => l.line).join('\n'));
    await webphone?.close();
    await phone.close();
    await hooks.onClose?.();
    await fs.stop();
    await config.remove();
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    const ready = await fs.ready();
    await hooks.onReady?.(ready);
    webphone = await GatewayWebphone.open({ httpPort: ready.http, wsPort: ready.ws, user: 'alice', password: WEBPHONE_USERS.alice });
    return { fs, ready, phone, webphone, close };
  } catch (err) {
    if (err instanceof Error) err.message += `\nferry start output:\n${fs.tail(40)}`;
    await close().catch(() => undefined);
    throw err;
  }
}

/** every call record the gateway has, ended ones included */
export async function allCalls(w: FerryStartCallWorld): Promise<CallRecord[]> {
  return (await getJson<{ calls: CallRecord[] }>(w.ready.http, '/api/calls?state=all')).calls;
}

/** The phone calls alice, the webphone answers, RTP flows both ways; resolves with the live record. */
export async function phoneCallsWebphone(w: FerryStartCallWorld): Promise<CallRecord> {
  const since = Date.now();
  const calling = w.phone.call('sip:alice@ferry.local', { host: '127.0.0.1', port: w.ready.sip });
  await w.webphone.waitCallState('ringing-in', 15_000);
  await w.webphone.answer();
  await calling;
  await w.webphone.waitCallState('connected', 10_000);
  await waitFor(async () => (await w.phone.media.rtpReceivedBetween(since, Date.now())) > 20, 10_000, 50, 'RTP from the webphone at the phone');
  const base = (await w.webphone.rtpStats()).received;
  await waitFor(async () => (await w.webphone.rtpStats()).received > base + 20, 10_000, 50, 'RTP from the phone at the webphone');
  const live = (await allCalls(w)).filter((c) => c.state === 'answered' && c.createdAt >= since - 1000);
  assert.equal(live.length, 1, `one answered call: ${JSON.stringify(live.map((c) => [c.id, c.state]))}`);
  return live[0]!;
}

/** How soon the other party must be told of a hang-up after a restart (F1, F10, F11): 500 ms. */
export const HANGUP_BOUND_MS = 500;

/** The call's record once the gateway says it ended (5 s). */
export async function endedRecord(w: FerryStartCallWorld, id: string): Promise<CallRecord> {
  return waitFor(async () => {
    const r = await getJson<CallRecord>(w.ready.http, `/api/calls/${id}`).catch(() => undefined);
    return r?.state === 'ended' ? r : undefined;
  }, 5000, 25, `call ${id} ended`);
}

/** The phone hangs up: its BYE is answered 200, the webphone is told within HANGUP_BOUND_MS, the record says sip-bye by the caller. */
export async function phoneHangsUpWebphoneTold(w: FerryStartCallWorld, call: CallRecord): Promise<{ webphoneTold: number; record: CallRecord }> {
  const byeAt = await w.phone.hangup();
  await w.phone.media.stopMedia();
  assert.equal(w.phone.lastHangupStatus, 200, "the phone's BYE answered 200");
  await w.webphone.waitCallState('ended', 5000);
  const webphoneTold = (await w.webphone.endedAt())! - byeAt;
  assert.ok(webphoneTold < HANGUP_BOUND_MS, `webphone told ${webphoneTold} ms after the phone's BYE (bound ${HANGUP_BOUND_MS} ms)`);
  const record = await endedRecord(w, call.id);
  assert.equal(record.reason, 'sip-bye');
  assert.equal(record.endedBy, 'caller');
  return { webphoneTold, record };
}

/** The webphone hangs up: the phone gets a BYE within HANGUP_BOUND_MS; the end reason is its BYE or its DTLS close_notify (either may arrive first). */
export async function webphoneHangsUpPhoneTold(w: FerryStartCallWorld, call: CallRecord): Promise<{ phoneTold: number; record: CallRecord }> {
  const from = Date.now();
  const hangupAt = await w.webphone.hangup();
  const bye = await w.phone.waitForRequest('BYE', 5000, from);
  await w.phone.media.stopMedia();
  const phoneTold = bye.at - hangupAt;
  assert.ok(phoneTold < HANGUP_BOUND_MS, `BYE at the phone ${phoneTold} ms after the webphone hung up (bound ${HANGUP_BOUND_MS} ms)`);
  const record = await endedRecord(w, call.id);
  assert.ok(['sip-bye', 'dtls-close'].includes(record.reason ?? ''), `end reason ${record.reason}`);
  return { phoneTold, record };
}
