/**
 * SRTP/SRTCP replay list (RFC 3711 §3.3.2): a sliding window of WINDOW packet indices below the highest
 * authenticated one. `isNew` is asked before authentication (cheap rejection), `commit` only after it
 * succeeded, so forged packets cannot move the window.
 */
export const REPLAY_WINDOW = 128;

export class ReplayWindow {
  private readonly seen = new Uint8Array(REPLAY_WINDOW);
  private highest = -1;

  /** The highest committed index, or -1 before the first packet. */
  get highestIndex(): number {
    return this.highest;
  }

  isNew(index: number): boolean {
    if (index > this.highest) return true;
    if (index <= this.highest - REPLAY_WINDOW) return false;
    return this.seen[index % REPLAY_WINDOW] === 0;
  }

  commit(index: number): void {
    if (index > this.highest) {
      const clear = this.highest < 0 ? REPLAY_WINDOW : Math.min(index - this.highest, REPLAY_WINDOW);
      for (let i = 1; i <= clear; i++) this.seen[(index - clear + i) % REPLAY_WINDOW] = 0;
      this.highest = index;
    }
    this.seen[index % REPLAY_WINDOW] = 1;
  }

  /**
   * The window as 16 bytes relative to the highest index: bit i (byte i >> 3, bit i & 7, least significant
   * first) set = index (highest - i) was accepted. The form the native SRTP context exports and imports.
   */
  exportBits(): Uint8Array {
    const bits = new Uint8Array(REPLAY_WINDOW / 8);
    for (let i = 0; i < REPLAY_WINDOW && this.highest - i >= 0; i++) {
      if (this.seen[(this.highest - i) % REPLAY_WINDOW] === 1) bits[i >> 3]! |= 1 << (i & 7);
    }
    return bits;
  }

  /** A window whose highest accepted index is `highest` (>= 0) and whose earlier ones are `bits` (exportBits' form). */
  static fromBits(highest: number, bits: Uint8Array): ReplayWindow {
    if (!Number.isSafeInteger(highest) || highest < 0 || highest >= 2 ** 48) throw new Error(`replay window: highest index ${highest} is not within 0 .. 2^48-1`);
    if (bits.length !== REPLAY_WINDOW / 8) throw new Error(`replay window: ${bits.length} bytes of window, expected ${REPLAY_WINDOW / 8}`);
    const w = new ReplayWindow();
    w.highest = highest;
    for (let i = 0; i < REPLAY_WINDOW && highest - i >= 0; i++) {
      if ((bits[i >> 3]! >> (i & 7)) & 1) w.seen[(highest - i) % REPLAY_WINDOW] = 1;
    }
    return w;
  }
}
