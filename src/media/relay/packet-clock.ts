import type { Clock } from '../../common/clock';

/**
 * One clock read per relayed packet. A leg that receives a packet reads its clock once and opens a
 * "packet turn" for the synchronous relay that follows (elements, rewriters, the sending legs); whoever
 * needs the time during that turn calls `packetNow(clock)` and gets the same value instead of reading
 * the clock again per sink and per leg. Outside a turn, or for another clock (a test's FakeClock next to
 * the system clock), `packetNow` reads the clock as before. Module state, no allocation: a depth counter
 * (a relayed packet can cause another leg's receive path to run synchronously, e.g. a loopback test
 * harness) and the turn's clock and time.
 */
let turnClock: Clock | undefined;
/** The turn's time in a typed array: a module `let` holding a double boxes a new HeapNumber per store. */
const turnNow = new Float64Array(1);
let depth = 0;

/** Start a packet turn at `now` (read from `clock`); pair every call with `endPacketTurn()` (try/finally). */
export function beginPacketTurn(clock: Clock, now: number): void {
  if (depth++ === 0) {
    turnClock = clock;
    turnNow[0] = now;
  }
}

export function endPacketTurn(): void {
  if (--depth <= 0) {
    depth = 0;
    turnClock = undefined;
  }
}

/** The current packet turn's time when it was read from `clock`, else `clock.now()`. */
export function packetNow(clock: Clock): number {
  return depth > 0 && turnClock === clock ? turnNow[0]! : clock.now();
}
