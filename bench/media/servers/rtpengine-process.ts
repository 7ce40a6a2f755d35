/**
 * A private rtpengine (Debian `rtpengine-daemon`, userspace forwarding: no kernel module) on
 * loopback, driven over the ng protocol with the npm `rtpengine-client`. Command line as in
 * its throughput settings, with free ports chosen at start.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { freeTcpPort, freeUdpPort } from './free-port';
import { launchCommand } from './cpu-pinning';

export interface NgResponse {
  result: string;
  sdp?: string;
  'error-reason'?: string;
  [key: string]: unknown;
}

/** The part of rtpengine-client's Client the benchmark uses (the package ships no types). */
export interface NgClient {
  ping(port: number, host: string): Promise<NgResponse>;
  offer(port: number, host: string, opts: Record<string, unknown>): Promise<NgResponse>;
  answer(port: number, host: string, opts: Record<string, unknown>): Promise<NgResponse>;
  delete(port: number, host: string, opts: Record<string, unknown>): Promise<NgResponse>;
  on(event: 'listening' | 'error', cb: (...args: unknown[]) => void): void;
  close(): void;
}

type NgClientCtor = new (opts: { localPort: number; localAddress: string; timeout: number }) => NgClient;

export interface RtpengineOptions {
  binary: string;
  portMin: number;
  portMax: number;
  logFile: string;
}

export class RtpengineProcess {
  private child: ChildProcess | undefined;
  private exitPromise: Promise<void> = Promise.resolve();
  ngPort = 0;
  client: NgClient | undefined;

  constructor(private readonly opts: RtpengineOptions) {}

  static available(binary: string): boolean {
    return existsSync(binary);
  }

  get pid(): number {
    return this.child?.pid ?? -1;
  }

  async start(): Promise<void> {
    this.ngPort = await freeUdpPort();
    const cliPort = await freeTcpPort();
    const args = [
      '--config-file=none',
      '--foreground',
      '--table=-1',
      '--interface=127.0.0.1',
      `--listen-ng=127.0.0.1:${this.ngPort}`,
      `--listen-cli=127.0.0.1:${cliPort}`,
      `--port-min=${this.opts.portMin}`,
      `--port-max=${this.opts.portMax}`,
      '--timeout=60',
      '--silent-timeout=3600',
      '--final-timeout=0',
      '--delete-delay=0',
      '--log-stderr',
      '--log-level=5',
      '--num-threads=2',
    ];
    const log = createWriteStream(this.opts.logFile);
    const [cmd, cmdArgs] = launchCommand('server', this.opts.binary, args);
    const child = spawn(cmd, cmdArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    this.exitPromise = new Promise((resolve) => child.once('exit', () => resolve()));
    let exited = false;
    child.once('exit', () => {
      exited = true;
    });

    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { Client } = require('rtpengine-client') as { Client: NgClientCtor };
    const client = new Client({ localPort: 0, localAddress: '127.0.0.1', timeout: 5000 });
    this.client = client;
    await new Promise<void>((resolve) => client.on('listening', () => resolve()));
    const deadline = Date.now() + 15000;
    await new Promise((r) => setTimeout(r, 300)); // an unanswered ping costs the client's whole timeout
    for (;;) {
      if (exited) throw new Error(`rtpengine exited during start (see ${this.opts.logFile})`);
      try {
        const r = await client.ping(this.ngPort, '127.0.0.1');
        if (r.result === 'pong') return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`rtpengine did not answer ng ping (see ${this.opts.logFile})`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async stop(): Promise<void> {
    this.client?.close();
    this.client = undefined;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await this.exitPromise;
    clearTimeout(timer);
  }
}
