import { Call } from './call';

/** The calls this gateway instance drives right now, by id. */
export class CallRegistry {
  private readonly calls = new Map<string, Call>();

  /** `onAdd`: runs for every call added (the gateway hands each call its REFER handler there) */
  constructor(private readonly onAdd?: (call: Call) => void) {}

  add(call: Call): void {
    this.calls.set(call.record.id, call);
    this.onAdd?.(call);
    call.once('ended', () => this.calls.delete(call.record.id));
  }

  get(id: string): Call | undefined {
    return this.calls.get(id);
  }

  has(id: string): boolean {
    return this.calls.has(id);
  }

  all(): Call[] {
    return [...this.calls.values()];
  }

  get size(): number {
    return this.calls.size;
  }
}
