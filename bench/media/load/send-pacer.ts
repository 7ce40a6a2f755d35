/**
 * Sends one packet per stream every 20 ms (50 packets/s, G.711 ptime 20), spreading the streams over
 * SLOTS time slots so a worker does not burst all its streams at once. If the worker falls more than
 * one period behind (CPU starvation), the missed slots are skipped and counted instead of being
 * burst out later: a generator that cannot keep up must show up as "skipped", never as loss.
 */
export interface PacedStream {
  /** Send the next packet now. */
  send(nowNs: bigint): void;
}

const PERIOD_MS = 20;
const SLOTS = 10;
const SLOT_MS = PERIOD_MS / SLOTS;

export class SendPacer {
  private readonly slots: Set<PacedStream>[] = Array.from({ length: SLOTS }, () => new Set<PacedStream>());
  private readonly slotOf = new Map<PacedStream, number>();
  private nextSlot = 0;
  private nextAtMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private added = 0;

  constructor(private readonly onSkipped: (count: number) => void) {}

  /** Pace `stream` (again adding one already paced changes nothing). */
  add(stream: PacedStream): void {
    if (this.slotOf.has(stream)) return;
    const slot = this.added++ % SLOTS;
    this.slots[slot]!.add(stream);
    this.slotOf.set(stream, slot);
  }

  remove(stream: PacedStream): void {
    const slot = this.slotOf.get(stream);
    if (slot === undefined) return;
    this.slots[slot]!.delete(stream);
    this.slotOf.delete(stream);
  }

  get size(): number {
    return this.slotOf.size;
  }

  start(): void {
    if (this.timer) return;
    this.nextAtMs = nowMs();
    // one wake-up per slot (a 1 ms timer woke the process twice per slot, once for nothing)
    this.timer = setInterval(() => this.tick(), SLOT_MS);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    const now = nowMs();
    while (this.nextAtMs <= now) {
      const slot = this.slots[this.nextSlot]!;
      if (now - this.nextAtMs > PERIOD_MS) {
        this.onSkipped(slot.size);
      } else {
        const ns = process.hrtime.bigint();
        for (const s of slot) s.send(ns);
      }
      this.nextSlot = (this.nextSlot + 1) % SLOTS;
      this.nextAtMs += SLOT_MS;
    }
  }
}

function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
