/**
 * `bin/ferry media` under benchmark: started on a free port (FERRY_MEDIA_PORT=0, it prints
 * `ferry media ready {"port":<port>}`), with the event-loop lag probe preloaded and, when
 * profiling, the V8 inspector on a free loopback port. Its log goes to a file; its /stats is read
 * over HTTP.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import http from 'node:http';
import { launchCommand } from './cpu-pinning';
import path from 'node:path';

const REPO = path.resolve(__dirname, '..', '..', '..');
const PROBE = path.join(__dirname, '..', 'probe', 'loop-lag-probe.cjs');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const mediaMemory = require(path.join(REPO, 'bin', 'ferry-media-memory.js')) as {
  mediaStartSettings(env: NodeJS.ProcessEnv, execArgv: string[]): { nodeOptions: string[]; env: Record<string, string> };
};
const READY = /ferry media ready (\{[^}\n]*\})/;
const INSPECTOR = /Debugger listening on (ws:\/\/\S+)/;

export interface FerryMediaOptions {
  logFile: string;
  lagFile: string;
  logLevel: string;
  /** Start the V8 inspector (for window-exact CPU profiles). */
  inspect?: boolean;
  extraEnv?: Record<string, string>;
}

export class FerryMediaProcess {
  private child: ChildProcess | undefined;
  private exitPromise: Promise<void> = Promise.resolve();
  port = 0;
  /** The inspector's WebSocket URL when started with `inspect`. */
  inspectorUrl: string | undefined;

  constructor(private readonly opts: FerryMediaOptions) {}

  get pid(): number {
    return this.child?.pid ?? -1;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/kurento`;
  }

  async start(timeoutMs = 30000): Promise<void> {
    const nodeOptions = [`--require ${PROBE}`];
    const nodeArgs = this.opts.inspect ? ['--inspect=127.0.0.1:0'] : [];
    // ferry media's memory settings on its own command line, as `ferry start` gives them: one process. Left to
    // bin/ferry, a second process would start it again with them, and this idle parent (running the lag probe
    // it inherits through NODE_OPTIONS) would be counted in the server's CPU and RSS.
    const settings = mediaMemory.mediaStartSettings({ ...process.env, ...this.opts.extraEnv }, nodeArgs);
    nodeArgs.push(...settings.nodeOptions);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...this.opts.extraEnv,
      ...settings.env,
      FERRY_MEDIA_HOST: '127.0.0.1',
      FERRY_MEDIA_PORT: '0',
      FERRY_LOG_LEVEL: this.opts.logLevel,
      FERRY_BENCH_LAG_FILE: this.opts.lagFile,
      NODE_OPTIONS: [process.env.NODE_OPTIONS ?? '', ...nodeOptions].join(' ').trim(),
    };
    delete env.NODE_ENV;
    const log = createWriteStream(this.opts.logFile);
    const [cmd, cmdArgs] = launchCommand('server', process.execPath, [...nodeArgs, path.join(REPO, 'bin', 'ferry'), 'media']);
    const child = spawn(cmd, cmdArgs, {
      cwd: REPO,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.exitPromise = new Promise((resolve) => child.once('exit', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      let seen = '';
      const timer = setTimeout(
        () => reject(new Error(`ferry media did not print "ferry media ready" within ${timeoutMs} ms (see ${this.opts.logFile})`)),
        timeoutMs,
      );
      const onData = (chunk: Buffer): void => {
        log.write(chunk);
        if (this.port) return;
        seen = (seen + chunk.toString()).slice(-4096);
        this.inspectorUrl ??= INSPECTOR.exec(seen)?.[1];
        const m = READY.exec(seen);
        if (m) {
          try {
            this.port = Number((JSON.parse(m[1]!) as { port: number }).port);
          } catch {
            return;
          }
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`ferry media exited during start (${code ?? signal}); see ${this.opts.logFile}`));
      });
    });
  }

  /** GET /stats as JSON (undefined if it fails). */
  stats(timeoutMs = 5000): Promise<Record<string, unknown> | undefined> {
    return new Promise((resolve) => {
      const req = http.get({ host: '127.0.0.1', port: this.port, path: '/stats', timeout: timeoutMs }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => {
          try {
            resolve(JSON.parse(body) as Record<string, unknown>);
          } catch {
            resolve(undefined);
          }
        });
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(undefined));
    });
  }

  /** SIGTERM (ferry media releases everything and exits), SIGKILL after `graceMs`. */
  async stop(graceMs = 10000): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await this.exitPromise;
    clearTimeout(timer);
  }
}
