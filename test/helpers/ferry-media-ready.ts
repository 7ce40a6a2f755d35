/**
 * Waiting for a spawned `ferry media` to print `ferry media ready {"port":N}`.
 */
import type { ChildProcess } from 'node:child_process';
import readline from 'node:readline';

/**
 * Resolves with the port of `child`'s ready line; rejects when the process exits first or after `timeoutMs`,
 * with `log()` (what it printed so far) in the message. Every other stdout line goes to `onOtherLine`.
 */
export function ferryMediaReadyPort(
  child: ChildProcess,
  options: { timeoutMs: number; log: () => string; onOtherLine?: (line: string) => void },
): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ferry media not ready within ${options.timeoutMs / 1000} s; log:\n${options.log()}`)), options.timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`ferry media exited (${code ?? signal}) before ready; log:\n${options.log()}`));
    });
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /^ferry media ready (\{.*\})/.exec(line);
      if (!m) {
        options.onOtherLine?.(line);
        return;
      }
      clearTimeout(timer);
      resolve((JSON.parse(m[1]!) as { port: number }).port);
    });
  });
}
