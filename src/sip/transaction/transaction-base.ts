import type { Clock, TimerHandle } from '../../common/clock';
import type { Flow } from '../transport/flow';
import type { TimerConfig } from './timer-config';
import { InvalidStateError } from './invalid-state-error';

/**
 * Shared machinery of the four RFC 3261 §17 transaction machines: a state checked against a
 * transition table, named timers on an injected Clock that are cleared on every state change,
 * and exactly-once termination.
 */
export abstract class TransactionBase<S extends string> {
  private readonly timers = new Map<string, TimerHandle>();
  private terminatedFired = false;

  protected constructor(
    protected state: S,
    private readonly table: Record<S, readonly S[]>,
    private readonly terminal: S,
    protected readonly clock: Clock,
    protected readonly config: TimerConfig,
    protected readonly flow: Flow,
    private readonly onTerminated: () => void,
  ) {}

  get currentState(): S {
    return this.state;
  }

  get terminated(): boolean {
    return this.state === this.terminal;
  }

  /** Moves to `to`; cancels every running timer (the new state starts its own). */
  protected transition(to: S): void {
    if (!this.table[this.state].includes(to)) {
      throw new InvalidStateError(`invalid transaction state transition from ${this.state} to ${to}`);
    }
    for (const t of this.timers.values()) t.cancel();
    this.timers.clear();
    this.state = to;
    if (to === this.terminal && !this.terminatedFired) {
      this.terminatedFired = true;
      this.onTerminated();
    }
  }

  protected startTimer(name: string, ms: number, fn: () => void): void {
    this.timers.get(name)?.cancel();
    this.timers.set(name, this.clock.setTimeout(() => {
      this.timers.delete(name);
      fn();
    }, ms));
  }

  protected stopTimer(name: string): void {
    this.timers.get(name)?.cancel();
    this.timers.delete(name);
  }

  /** Names of running timers (for tests and dumps). */
  runningTimers(): string[] {
    return [...this.timers.keys()].sort();
  }

  /** Stops everything at once (engine shutdown). */
  abort(): void {
    if (this.state !== this.terminal) this.forceTerminate();
  }

  private forceTerminate(): void {
    for (const t of this.timers.values()) t.cancel();
    this.timers.clear();
    this.state = this.terminal;
    if (!this.terminatedFired) {
      this.terminatedFired = true;
      this.onTerminated();
    }
  }
}
