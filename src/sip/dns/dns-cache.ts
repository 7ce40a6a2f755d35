import type { DnsAnswer } from './dns-client';
import type { RecordType } from './dns-message';

/** Longest time any answer is kept, whatever its TTL says (seconds): a day. */
export const MAX_CACHE_TTL = 86_400;

/**
 * DNS answers (positive and negative) by type and name, each kept for its TTL (at most MAX_CACHE_TTL);
 * at most `maxEntries`, the least recently used going first. A TTL of 0 is not kept.
 */
export class DnsCache {
  private readonly entries = new Map<string, { answer: DnsAnswer; expiresAt: number }>();

  constructor(private readonly maxEntries: number, private readonly now: () => number) {}

  get(type: RecordType, name: string): DnsAnswer | undefined {
    const key = keyOf(type, name);
    const e = this.entries.get(key);
    if (!e) return undefined;
    const left = e.expiresAt - this.now();
    if (left <= 0) {
      this.entries.delete(key);
      return undefined;
    }
    this.entries.delete(key);
    this.entries.set(key, e); // most recently used last
    return { records: e.answer.records, ttl: Math.ceil(left / 1000) };
  }

  set(type: RecordType, name: string, answer: DnsAnswer): void {
    const ttl = Math.min(answer.ttl, MAX_CACHE_TTL);
    if (ttl <= 0 || this.maxEntries <= 0) return;
    const key = keyOf(type, name);
    this.entries.delete(key);
    this.entries.set(key, { answer, expiresAt: this.now() + ttl * 1000 });
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }

  get size(): number {
    return this.entries.size;
  }
}

function keyOf(type: RecordType, name: string): string {
  return `${type} ${name.toLowerCase().replace(/\.$/, '')}`;
}
