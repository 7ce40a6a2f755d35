import { ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { freePort } from './free-port';

/**
 * A private `redis-server` for tests that take Redis away (never the shared one): loopback, a free
 * port, its own temporary directory, no persistence by default — so a restart comes back EMPTY, as
 * after a crash without AOF (`appendOnly: true`: it comes back with its data, minus expired keys).
 * `kill()` ends only this process; `restart()` starts it again on the same port.
 *
 *   const redis = await RedisServerProcess.start();
 *   ... redis.url ...; await redis.kill('SIGKILL'); await redis.restart(); await redis.stop();
 */
export class RedisServerProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  readonly output: string[] = [];

  private constructor(readonly port: number, private readonly dir: string, private readonly appendOnly: boolean) {}

  /** `appendOnly`: keep an append-only file (fsync always) in its directory, so a restart comes back with the data */
  static async start(options: { appendOnly?: boolean } = {}): Promise<RedisServerProcess> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-test-redis-'));
    const server = new RedisServerProcess(await freePort({ protocols: ['tcp'] }), dir, options.appendOnly ?? false);
    try {
      await server.launch();
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** kills this redis-server and waits until it has exited */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.running) this.child!.kill(signal);
    await this.exited;
  }

  /** starts it again on the same port, empty */
  async restart(): Promise<void> {
    await this.kill();
    await this.launch();
  }

  async stop(): Promise<void> {
    await this.kill();
    await rm(this.dir, { recursive: true, force: true });
  }

  private launch(): Promise<void> {
    const persistence = this.appendOnly ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', ...persistence, '--dir', this.dir, '--daemonize', 'no'];
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.exited = new Promise<void>((r) => child.once('exit', () => r()));
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`redis-server on ${this.port} not ready within 10 s:\n${this.output.slice(-10).join('\n')}`));
      }, 10_000);
      const keep = (line: string): void => {
        this.output.push(line);
        if (this.output.length > 500) this.output.splice(0, 100);
        if (/Ready to accept connections/.test(line)) {
          clearTimeout(timer);
          resolve();
        }
      };
      readline.createInterface({ input: child.stdout! }).on('line', keep);
      readline.createInterface({ input: child.stderr! }).on('line', keep);
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`redis-server on ${this.port} exited (${signal ?? code}) before ready:\n${this.output.slice(-10).join('\n')}`));
      });
    });
  }
}
