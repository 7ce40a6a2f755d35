/**
 * The one polling helper tests wait with. A test never sleeps a fixed time hoping something happened:
 * it waits for the thing itself (an event, a log line, a counter) with a deadline, and fails naming
 * what it waited for. test/unit/test-hygiene.test.ts allows a timer-based pause only in this file and
 * in the few places its exceptions list documents.
 */

export interface PollOptions {
  /** give up after this many ms (required: a missed event must fail the test, not hang it) */
  timeoutMs: number;
  /** what the test waits for, named in the error */
  what: string;
  /** ms between two looks (default 20) */
  stepMs?: number;
}

/** one pause between two looks at a condition; exported only for polling loops built on it */
export function pollPause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Resolves with the first truthy value `probe()` returns; a probe that throws counts as "not yet"
 * (its last error is in the timeout message). Rejects after `timeoutMs`.
 */
export async function pollUntil<T>(probe: () => T | Promise<T>, options: PollOptions): Promise<NonNullable<T>> {
  const { timeoutMs, what, stepMs = 20 } = options;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  let lastValue: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v as NonNullable<T>;
      lastValue = v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const detail = lastError ? `: ${lastError instanceof Error ? lastError.message : String(lastError)}` : lastValue !== undefined ? ` (last: ${JSON.stringify(lastValue)})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await pollPause(Math.max(1, Math.min(stepMs, deadline - Date.now())));
  }
}

/**
 * Lets `ms` of real time pass. Only for the documented real-time cases (a blip that must really last
 * N seconds, a listening window whose end is the measurement); test-hygiene lists each caller.
 */
export function realTimePause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
