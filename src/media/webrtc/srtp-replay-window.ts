/**
 * SRTP/SRTCP replay protection (RFC 3711 §3.3.2): a sliding window over the packet index per SSRC.
 * werift 0.25.2 authenticates packets but keeps no replay list, so a captured packet would be accepted
 * again; the WebRTC leg checks every authenticated packet here before it is used.
 */
export class ReplayWindow {
  private readonly seen: Uint8Array;
  private highest = -1;

  constructor(private readonly size = 128) {
    this.seen = new Uint8Array(size);
  }

  /** True if `index` is new (and records it); false if it is a replay or older than the window. */
  accept(index: number): boolean {
    if (index > this.highest) {
      const gap = this.highest < 0 ? this.size : Math.min(index - this.highest, this.size);
      for (let i = 1; i <= gap; i++) this.seen[(index - gap + i) % this.size] = 0;
      this.seen[index % this.size] = 1;
      this.highest = index;
      return true;
    }
    if (index <= this.highest - this.size) return false;
    const slot = index % this.size;
    if (this.seen[slot] === 1) return false;
    this.seen[slot] = 1;
    return true;
  }
}

/** One ReplayWindow per SSRC. */
export class ReplayGuard {
  private readonly windows = new Map<number, ReplayWindow>();

  accept(ssrc: number, index: number): boolean {
    let w = this.windows.get(ssrc);
    if (!w) {
      if (this.windows.size >= 64) this.windows.clear(); // a peer rotating SSRCs cannot grow this without bound
      w = new ReplayWindow();
      this.windows.set(ssrc, w);
    }
    return w.accept(index);
  }
}
