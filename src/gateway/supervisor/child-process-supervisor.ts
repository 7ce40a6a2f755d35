import { ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import readline from 'node:readline';

/** One ferry part run as a child process: `bin/ferry <name>` with an environment. */
export interface PartSpec {
  name: 'sip' | 'media' | 'gateway';
  env: Record<string, string>;
}

export interface Ready {
  name: string;
  info: Record<string, unknown>;
}

const FERRY_BIN = path.join(__dirname, '..', '..', '..', 'bin', 'ferry');

/**
 * Runs one part, waits for its `ferry <name> ready {...}` line, restarts it (with back-off) if it
 * dies unexpectedly, and stops it with SIGTERM (SIGKILL after a grace period).
 */
export class SupervisedPart extends EventEmitter {
  private child: ChildProcess | undefined;
  private stopping = false;
  private restarts = 0;
  info: Record<string, unknown> = {};

  constructor(readonly spec: PartSpec, private readonly out: (line: string) => void) {
    super();
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(timeoutMs = 30000): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [FERRY_BIN, this.spec.name], {
        env: { ...process.env, ...this.spec.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      this.child = child;
      const timer = setTimeout(() => reject(new Error(`ferry ${this.spec.name} did not become ready within ${timeoutMs} ms`)), timeoutMs);
      const prefix = `[${this.spec.name}] `;
      const marker = `ferry ${this.spec.name} ready `;
      readline.createInterface({ input: child.stdout! }).on('line', (line) => {
        if (line.startsWith(marker)) {
          clearTimeout(timer);
          try {
            this.info = JSON.parse(line.slice(marker.length)) as Record<string, unknown>;
          } catch {
            this.info = {};
          }
          this.emit('ready', this.info);
          resolve(this.info);
        } else this.out(prefix + line);
      });
      readline.createInterface({ input: child.stderr! }).on('line', (line) => this.out(prefix + line));
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (this.child === child) this.child = undefined;
        reject(new Error(`ferry ${this.spec.name} exited (${signal ?? code}) before it was ready`));
        if (this.stopping) return;
        this.out(`${prefix}exited unexpectedly (${signal ?? `code ${code}`}); restarting`);
        const delay = Math.min(10000, 250 * 2 ** this.restarts++);
        setTimeout(() => {
          if (this.stopping) return;
          this.start(timeoutMs).then(
            () => { this.restarts = 0; },
            (err: Error) => this.out(`${prefix}${err.message}`),
          );
        }, delay).unref();
      });
    });
  }

  async stop(graceMs = 5000): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      child.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }
}
