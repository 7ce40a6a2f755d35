import { Cdr } from './cdr';

/** A page of CDRs ended in [from, to), oldest first. */
export interface CdrPage {
  cdrs: Cdr[];
  /** the offset of the next page, when there may be one */
  nextOffset?: number;
}

export interface CdrQuery {
  /** epoch ms, inclusive */
  from: number;
  /** epoch ms, exclusive */
  to: number;
  offset: number;
  limit: number;
}

/** Where CDRs are kept and read back: the JSON-lines file, Redis, or (neither configured) memory. */
export interface CdrStore {
  readonly name: string;
  write(cdr: Cdr): Promise<void>;
  list(q: CdrQuery): Promise<CdrPage>;
  get(callId: string): Promise<Cdr | undefined>;
  close(): Promise<void>;
}

/** the last `cap` CDRs in memory: what /api/cdrs reads when there is neither a file nor Redis */
export class MemoryCdrStore implements CdrStore {
  readonly name = 'memory';
  private readonly cdrs: Cdr[] = [];
  constructor(private readonly cap = 1000) {}

  async write(cdr: Cdr): Promise<void> {
    this.cdrs.push(cdr);
    if (this.cdrs.length > this.cap) this.cdrs.splice(0, this.cdrs.length - this.cap);
  }

  async list(q: CdrQuery): Promise<CdrPage> {
    const hits = this.cdrs.filter((c) => c.endedAt >= q.from && c.endedAt < q.to).sort((a, b) => a.endedAt - b.endedAt);
    const cdrs = hits.slice(q.offset, q.offset + q.limit);
    return { cdrs, ...(q.offset + q.limit < hits.length ? { nextOffset: q.offset + q.limit } : {}) };
  }

  async get(callId: string): Promise<Cdr | undefined> {
    return this.cdrs.find((c) => c.callId === callId);
  }

  async close(): Promise<void> {}
}
