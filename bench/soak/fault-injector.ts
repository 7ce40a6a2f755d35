import { setTimeout as sleep } from 'node:timers/promises';
import { PacketBlackhole } from './packet-blackhole';
import type { SoakContext } from './call-slot';
import type { Party, SoakCall } from './soak-call';
import type { FaultKind } from './soak-options';
import type { PlannedFault } from './fault-plan';

/** One fault as it was really injected. Times are epoch ms. */
export interface InjectedFault {
  kind: FaultKind;
  plannedAtMs: number;
  at: number;
  /** when it was over (unmuted, resumed, restored, the killed part ready again) */
  until?: number;
  /** soak call id and side of a per-call fault */
  call?: number;
  side?: Party;
  /** calls answered when a part was killed (media-kill: each must end with media-lost) */
  callsAlive?: number[];
  detail?: string;
  skipped?: string;
}

const PER_CALL: FaultKind[] = ['mute', 'hold', 'blip', 'cable-pull'];

/**
 * Injects the planned faults into the running soak. Per-call faults (mute, hold, blip, cable pull)
 * pick a live call that has no other fault running; process faults (gateway / ferry media SIGKILL,
 * Redis SIGKILL) kill the part and wait until it is back on the same ports (the gateway with the same
 * instance id): `ferry start`'s supervisor restores it, or the soak after `downMs` (soak-stack.ts).
 * Process faults never overlap: the next one waits until the previous part is back.
 */
export class FaultInjector {
  readonly injected: InjectedFault[] = [];
  private processFault: Promise<void> = Promise.resolve();
  private readonly running = new Set<Promise<void>>();

  constructor(private readonly ctx: SoakContext) {}

  /** follows the plan until its end or until the run stops */
  async run(plan: PlannedFault[], startedAt: number): Promise<void> {
    for (const planned of plan) {
      const wait = startedAt + planned.atMs - Date.now();
      if (wait > 0) await sleep(wait);
      if (this.ctx.stopping) break;
      const p = this.inject(planned).catch((err: Error) => {
        this.injected.push({ kind: planned.kind, plannedAtMs: planned.atMs, at: Date.now(), skipped: `failed: ${err.message}` });
      });
      this.running.add(p);
      void p.finally(() => this.running.delete(p));
    }
  }

  /** resolves when every fault in progress is over (parts restarted, cables plugged back by their slots) */
  async settle(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running]);
    await this.processFault;
  }

  private async inject(planned: PlannedFault): Promise<void> {
    if (PER_CALL.includes(planned.kind)) return this.injectOnCall(planned);
    const previous = this.processFault;
    const mine = previous.then(() => this.injectOnProcess(planned));
    this.processFault = mine.catch(() => undefined);
    return mine;
  }

  private async pickCall(planned: PlannedFault): Promise<SoakCall | undefined> {
    const { options } = this.ctx;
    const needMs = planned.kind === 'blip' ? options.blipMs : options.deadMs + 2000;
    // up to 12 s: after a process fault (a media kill ends every call) the next calls take a while to be up
    // again, longer on a loaded machine; a fault that finds no call is reported as skipped
    const deadline = Date.now() + 12_000;
    while (Date.now() < deadline && !this.ctx.stopping) {
      const eligible = [...this.ctx.live]
        .filter((c) => c.answeredAt !== undefined && c.endedAt === undefined && !c.busyWith && !c.cablePull)
        // a call about to be hung up would end before the fault could show anything
        .filter((c) => planned.kind === 'cable-pull' || c.plannedHangupAt - Date.now() > needMs / 2)
        .sort((a, b) => a.id - b.id);
      if (eligible.length > 0) return eligible[Math.floor(planned.pick * eligible.length)];
      await sleep(250);
    }
    return undefined;
  }

  private async injectOnCall(planned: PlannedFault): Promise<void> {
    const { options, world } = this.ctx;
    const call = await this.pickCall(planned);
    if (!call) {
      this.injected.push({ kind: planned.kind, plannedAtMs: planned.atMs, at: Date.now(), skipped: 'no live call to target' });
      return;
    }
    const slot = world.slots[call.slot]!;
    const record: InjectedFault = { kind: planned.kind, plannedAtMs: planned.atMs, at: Date.now(), call: call.id };
    this.injected.push(record);
    const fault = { kind: planned.kind, at: record.at } as SoakCall['faults'][number];
    call.faults.push(fault);
    const ended = (): boolean => call.endedAt !== undefined;
    const holdFor = async (ms: number): Promise<void> => {
      const until = Date.now() + ms;
      while (Date.now() < until && !ended()) await sleep(50);
    };
    this.ctx.log(`fault ${planned.kind} on call ${call.id} (slot ${call.slot})`);
    if (planned.kind === 'cable-pull') {
      // claim the call before the (slow) iptables call: its slot must not hang up on plan meanwhile,
      // or the call would end by a hang-up while its cable is being pulled
      call.busyWith = planned.kind;
      const hole = await PacketBlackhole.apply([...slot.phoneRtpPorts, slot.phoneSipPort]);
      call.cablePull = { at: Date.now(), hole };
      delete call.busyWith;
      record.detail = `phone ports ${[...slot.phoneRtpPorts, slot.phoneSipPort].join(',')} dropped until the call ended + 3 s`;
      return;
    }
    call.busyWith = planned.kind;
    try {
      if (planned.kind === 'mute') {
        const side: Party = planned.pick * 1000 % 1 < 0.5 ? 'phone' : 'webphone';
        record.side = side;
        fault.side = side;
        const webphoneCall = slot.webphone.call;
        if (side === 'phone') await slot.media.mute();
        else webphoneCall?.media.mute(true);
        await holdFor(options.deadMs + 2000);
        if (side === 'phone') await slot.media.unmute();
        else webphoneCall?.media.mute(false);
      } else if (planned.kind === 'hold') {
        record.side = 'phone';
        fault.side = 'phone';
        const webphoneCall = slot.webphone.call;
        try {
          await slot.phone.reinvite('sendonly');
          await slot.media.mute(); // a silent holder (RTCP goes on)
          webphoneCall?.media.mute(true); // the held side does not send
          await holdFor(options.deadMs + 2000);
          if (!ended()) await slot.phone.reinvite('sendrecv');
          record.detail = 'sendonly re-INVITE, silent for T_dead + 2 s, sendrecv re-INVITE';
        } catch (err) {
          record.detail = `re-INVITE failed: ${(err as Error).message}`;
        } finally {
          await slot.media.unmute();
          webphoneCall?.media.mute(false);
        }
      } else if (planned.kind === 'blip') {
        record.side = 'phone';
        fault.side = 'phone';
        const hole = await PacketBlackhole.apply(slot.phoneRtpPorts);
        try {
          await holdFor(options.blipMs);
          record.detail = `${await hole.dropped()} packets dropped`;
        } finally {
          await hole.remove();
        }
      }
    } finally {
      record.until = Date.now();
      fault.until = record.until;
      call.busyWith = undefined;
    }
  }

  private async injectOnProcess(planned: PlannedFault): Promise<void> {
    const { options, world } = this.ctx;
    if (this.ctx.stopping) return;
    const record: InjectedFault = {
      kind: planned.kind, plannedAtMs: planned.atMs, at: Date.now(),
      callsAlive: [...this.ctx.live].filter((c) => c.answeredAt !== undefined && c.endedAt === undefined).map((c) => c.id),
    };
    this.injected.push(record);
    this.ctx.log(`fault ${planned.kind} (${record.callsAlive!.length} calls up)`);
    for (const c of this.ctx.live) if (c.endedAt === undefined) c.faults.push({ kind: planned.kind, at: record.at });
    const part = planned.kind === 'gateway-kill' ? 'gateway' : planned.kind === 'media-kill' ? 'media' : 'redis';
    record.detail = `pid ${world.pid(part)}`;
    // the moment of the signal (finding the pid may take a while on a loaded machine)
    record.at = (await world.stack.killAndRestore(part, options.downMs)).killedAt;
    record.detail += ` -> ${world.pid(part)}`;
    record.until = Date.now();
  }
}
