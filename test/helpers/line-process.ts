/**
 * A child process whose stdout lines a test waits on (with deadlines), its stderr kept for
 * assertion messages, and its exit observed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';

export class LineProcess {
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  private readonly waiters = new Set<() => void>();

  constructor(readonly child: ChildProcess) {
    readline.createInterface({ input: child.stdout! }).on('line', (l) => {
      this.stdout.push(l);
      for (const w of [...this.waiters]) w();
    });
    readline.createInterface({ input: child.stderr! }).on('line', (l) => this.stderr.push(l));
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })));
  }

  static spawn(command: string, args: string[], env: Record<string, string | undefined> = {}): LineProcess {
    return new LineProcess(spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolves with the first stdout line matching `pattern` (already seen or still to come). */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        for (const l of this.stdout) {
          const m = pattern.exec(l);
          if (m) {
            this.waiters.delete(onLine);
            clearTimeout(timer);
            resolve(m);
            return true;
          }
        }
        return false;
      };
      const onLine = (): void => void check();
      const fail = (why: string): void => {
        this.waiters.delete(onLine);
        clearTimeout(timer);
        reject(new Error(`no stdout line matching ${pattern}: ${why}\nstdout:\n${this.stdout.join('\n')}\nstderr:\n${this.stderr.slice(-40).join('\n')}`));
      };
      const timer = setTimeout(() => fail(`not within ${timeoutMs} ms`), timeoutMs);
      if (check()) return;
      this.waiters.add(onLine);
      // a process that exits without the line fails the wait at once (its last lines are flushed first)
      void this.exited.then((e) => setImmediate(() => {
        if (!check()) fail(`the process exited (${e.signal ?? `code ${e.code}`})`);
      }));
    });
  }

  kill(signal: NodeJS.Signals): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }
}
