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
}
