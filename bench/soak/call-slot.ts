import { setTimeout as sleep } from 'node:timers/promises';
import { rng } from '../../test/helpers/seeded-random';
import { otherParty, type Party, type SoakCall } from './soak-call';
import type { SoakOptions } from './soak-options';
import type { Slot, SoakWorld } from './soak-world';

/** What the slots and the fault injector share. */
export interface SoakContext {
  options: SoakOptions;
  world: SoakWorld;
  calls: SoakCall[];
  live: Set<SoakCall>;
  stopping: boolean;
  log: (line: string) => void;
}

/** how long a party may wait for ferry's BYE once the other party has hung up or ferry ended the call */
export const TOLD_WAIT_MS = 30_000;
const POLL_MS = 50;

/**
 * One slot's life: place a call (direction seeded), keep it until its seeded hang-up time (a running
 * mute/hold/blip postpones the hang-up; a cable-pulled call is never hung up, it must end by itself),
 * or until ferry ends it; then wait until both parties were told, clean the media up, pause, and place
 * the next call — until the run stops.
 */
export async function runSlot(slot: Slot, ctx: SoakContext): Promise<void> {
  const random = rng((ctx.options.seed * 7919 + slot.index * 104729) >>> 0);
  const { options } = ctx;
  const endAt = Date.now() + options.durationMs;
  await sleep(Math.round(random() * 2000));
  while (!ctx.stopping && Date.now() < endAt) {
    const caller: Party = random() < 0.5 ? 'phone' : 'webphone';
    const lengthMs = options.callMinMs + Math.round(random() * (options.callMaxMs - options.callMinMs));
    const hangupBy: Party = random() < 0.5 ? 'phone' : 'webphone';
    const pauseMs = 300 + Math.round(random() * 1200);
    const call: SoakCall = {
      id: ctx.calls.length + 1, slot: slot.index, caller, placedAt: Date.now(),
      plannedHangupAt: 0, plannedHangupBy: hangupBy, toldAt: {}, faults: [], problems: [],
    };
    ctx.calls.push(call);
    const placed = await place(slot, call, ctx.world.stack.sipPort);
    if (placed) {
      call.plannedHangupAt = call.answeredAt! + lengthMs;
      ctx.live.add(call);
      await untilEnded(slot, call, ctx);
      ctx.live.delete(call);
      await untilBothTold(slot, call);
    } else {
      await afterFailedSetup(slot, call, ctx);
    }
    await cleanMedia(slot);
    await sleep(pauseMs);
  }
}

async function place(slot: Slot, call: SoakCall, sipPort: number): Promise<boolean> {
  try {
    if (call.caller === 'webphone') {
      const c = await slot.webphone.dial(`phone${slot.index}`, 30_000);
      call.webphoneCallId = c.callId;
    } else {
      await slot.phone.call(`sip:${slot.webphone.user}@ferry.local`, { host: '127.0.0.1', port: sipPort });
      call.webphoneCallId = slot.webphone.call?.callId;
    }
    call.answeredAt = Date.now();
    return true;
  } catch (err) {
    call.setupFailedAt = Date.now();
    call.setupError = (err as Error).message.replace(/^\S+: /, '');
    return false;
  }
}

function phoneByeSince(slot: Slot, since: number): number | undefined {
  return slot.phone.received.find((r) => r.method === 'BYE' && r.at >= since)?.at;
}

function webphoneTold(slot: Slot, call: SoakCall): number | undefined {
  const c = slot.webphone.lastEnded;
  return c && c.callId === call.webphoneCallId ? c.remoteByeAt : undefined;
}

function noteTold(slot: Slot, call: SoakCall): void {
  const since = call.answeredAt ?? call.placedAt;
  const p = phoneByeSince(slot, since);
  if (p !== undefined && call.toldAt.phone === undefined) call.toldAt.phone = p;
  const w = webphoneTold(slot, call);
  if (w !== undefined && call.toldAt.webphone === undefined) call.toldAt.webphone = w;
}

async function untilEnded(slot: Slot, call: SoakCall, ctx: SoakContext): Promise<void> {
  const { options } = ctx;
  for (;;) {
    noteTold(slot, call);
    const told = Object.values(call.toldAt);
    if (told.length > 0) {
      call.endedAt = Math.min(...told);
      return;
    }
    if (call.cablePull) {
      // the call must end by itself (media-timeout); do not wait forever for it
      if (Date.now() > call.cablePull.at + options.deadMs + 20_000) {
        call.problems.push(`cable pulled at +${call.cablePull.at - call.answeredAt!} ms: the call did not end within T_dead + 20 s`);
        await hangup(slot, call, 'webphone');
        return;
      }
    } else if (!call.busyWith && (ctx.stopping || Date.now() >= call.plannedHangupAt)) {
      await hangup(slot, call, call.plannedHangupBy);
      return;
    }
    await sleep(POLL_MS);
  }
}

async function hangup(slot: Slot, call: SoakCall, by: Party): Promise<void> {
  call.hangupBy = by;
  call.hangupAt = Date.now();
  call.endedAt = call.hangupAt;
  if (by === 'webphone') {
    await slot.webphone.hangup(10_000);
  } else {
    // the scripted phone does not retransmit and gives up after 10 s: a BYE held by ferry sip while no
    // gateway is connected may be answered later than that; what counts is the other party's BYE
    await slot.phone.hangup().catch((err: Error) => (call.byeUnanswered = err.message));
    await slot.media.stopMedia();
  }
}

async function untilBothTold(slot: Slot, call: SoakCall): Promise<void> {
  const waiting = (): Party[] => (['phone', 'webphone'] as Party[]).filter((p) => p !== call.hangupBy && call.toldAt[p] === undefined);
  let deadline = Date.now() + TOLD_WAIT_MS;
  for (;;) {
    noteTold(slot, call);
    const cable = call.cablePull;
    if (cable && cable.pluggedAt === undefined && Date.now() >= (call.endedAt ?? 0) + 3000) {
      // plug the cable back once the call is over: ferry's retransmitted BYE may then reach the phone
      await cable.hole.remove();
      cable.pluggedAt = Date.now();
      deadline = Math.max(deadline, cable.pluggedAt + TOLD_WAIT_MS);
    }
    const left = waiting();
    if (left.length === 0 && (!cable || cable.pluggedAt !== undefined)) return;
    if (Date.now() > deadline) {
      for (const p of left) call.problems.push(`${p} never told (no BYE within ${TOLD_WAIT_MS} ms of the end)`);
      if (cable && cable.pluggedAt === undefined) {
        await cable.hole.remove();
        cable.pluggedAt = Date.now();
      }
      return;
    }
    await sleep(POLL_MS);
  }
}

/**
 * A call that failed to set up: if its called party had answered (it has a dialog), ferry must still
 * end that dialog (the gateway, or ferry sip's orphan-dialog timer): wait for its BYE.
 */
async function afterFailedSetup(slot: Slot, call: SoakCall, ctx: SoakContext): Promise<void> {
  const callee = otherParty(call.caller);
  const answered = callee === 'phone'
    ? slot.phone.received.some((r) => r.method === 'INVITE' && r.at >= call.placedAt && !/;\s*tag=/.test(r.message.headers.get('to')?.[0] ?? ''))
    : slot.webphone.call !== undefined && slot.webphone.call.answeredAt !== undefined;
  if (!answered) {
    await slot.webphone.drop();
    return;
  }
  const deadline = Date.now() + ctx.options.orphanDialogMs + 20_000;
  const calleeWebphoneCall = callee === 'webphone' ? slot.webphone.call : undefined;
  if (calleeWebphoneCall) call.webphoneCallId = calleeWebphoneCall.callId;
  while (Date.now() < deadline) {
    const told = callee === 'phone' ? phoneByeSince(slot, call.placedAt) : webphoneTold(slot, call);
    if (told !== undefined) {
      call.toldAt[callee] = told;
      return;
    }
    await sleep(POLL_MS);
  }
  call.problems.push(`setup failed (${call.setupError}) after the ${callee} answered; the ${callee} was never sent a BYE (left in a dead call)`);
  await slot.webphone.drop();
}

async function cleanMedia(slot: Slot): Promise<void> {
  await slot.media.stopMedia();
  await slot.media.unmute();
  await slot.webphone.drop();
}
