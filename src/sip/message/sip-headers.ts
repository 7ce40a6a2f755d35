import { canonicalHeaderName, isListHeader } from './header-names';
import { splitHeaderList } from './header-list';

/** An ordered, case-insensitive header list; names are stored canonical (compact forms expanded). */
export class SipHeaders {
  private readonly entries: Array<{ name: string; value: string }> = [];

  static from(pairs: Array<[string, string]>): SipHeaders {
    const h = new SipHeaders();
    for (const [n, v] of pairs) h.append(n, v);
    return h;
  }

  clone(): SipHeaders {
    const h = new SipHeaders();
    for (const e of this.entries) h.entries.push({ ...e });
    return h;
  }

  append(name: string, value: string): void {
    this.entries.push({ name: canonicalHeaderName(name), value });
  }

  prepend(name: string, value: string): void {
    this.entries.unshift({ name: canonicalHeaderName(name), value });
  }

  /** Replaces every header of this name by one value (kept at the position of the first). */
  set(name: string, value: string): void {
    const c = canonicalHeaderName(name).toLowerCase();
    const idx = this.entries.findIndex((e) => e.name.toLowerCase() === c);
    this.remove(name);
    if (idx < 0) this.entries.push({ name: canonicalHeaderName(name), value });
    else this.entries.splice(Math.min(idx, this.entries.length), 0, { name: canonicalHeaderName(name), value });
  }

  remove(name: string): void {
    const c = canonicalHeaderName(name).toLowerCase();
    for (let i = this.entries.length - 1; i >= 0; i--) if (this.entries[i].name.toLowerCase() === c) this.entries.splice(i, 1);
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  /** The first header line's value. */
  get(name: string): string | undefined {
    const c = canonicalHeaderName(name).toLowerCase();
    return this.entries.find((e) => e.name.toLowerCase() === c)?.value;
  }

  /** Every value of a header, list headers split into their elements, in order. */
  getAll(name: string): string[] {
    const c = canonicalHeaderName(name).toLowerCase();
    const vals = this.entries.filter((e) => e.name.toLowerCase() === c).map((e) => e.value);
    return isListHeader(c) ? vals.flatMap(splitHeaderList) : vals;
  }

  /** Removes the first element of a list header (e.g. the top Via) and returns it. */
  shift(name: string): string | undefined {
    const c = canonicalHeaderName(name).toLowerCase();
    const idx = this.entries.findIndex((e) => e.name.toLowerCase() === c);
    if (idx < 0) return undefined;
    const parts = splitHeaderList(this.entries[idx].value);
    const first = parts.shift();
    if (parts.length === 0) this.entries.splice(idx, 1);
    else this.entries[idx].value = parts.join(', ');
    return first;
  }

  /** Replaces the first element of a list header (e.g. the top Via with received/rport added). */
  replaceFirst(name: string, value: string): void {
    const c = canonicalHeaderName(name).toLowerCase();
    const idx = this.entries.findIndex((e) => e.name.toLowerCase() === c);
    if (idx < 0) return;
    const parts = splitHeaderList(this.entries[idx].value);
    parts[0] = value;
    this.entries[idx].value = parts.join(', ');
  }

  list(): ReadonlyArray<{ name: string; value: string }> {
    return this.entries;
  }
}
