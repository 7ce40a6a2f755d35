import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';

export interface ProxyEvent {
  event: string;
  leg: number;
  data: Record<string, unknown>;
  /** When the test process received it (Date.now()). */
  at: number;
}

export interface CallAnswer {
  pipelineId: string;
  legs: { id: string; answer: string }[];
}

/**
 * Controls media-proxy-child.ts: a kurento-client application in its own process, the "proxy" of the
 * media-only lifecycle scenarios. `kill('SIGKILL')` is the proxy crash of S3; after it the media
 * server's session for this client is orphaned. Records every media event it forwarded, with times.
 */
export class MediaProxyProcess {
  private child: ChildProcess | undefined;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly events: ProxyEvent[] = [];
  private readonly eventWaiters: { match: (e: ProxyEvent) => boolean; resolve: (e: ProxyEvent) => void }[] = [];

  private constructor() {}

  static async spawn(mediaUrl: string): Promise<MediaProxyProcess> {
    const proxy = new MediaProxyProcess();
    await proxy.launch(mediaUrl);
    return proxy;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  private async launch(mediaUrl: string): Promise<void> {
    const root = path.join(__dirname, '..', '..');
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'media-proxy-child.ts'), mediaUrl], {
      cwd: root,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child = child;
    const stderr: string[] = [];
    child.stderr!.on('data', (d: Buffer) => stderr.push(d.toString()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`media proxy not ready within 20 s: ${stderr.join('')}`)), 20_000);
      child.once('exit', (code, signal) => reject(new Error(`media proxy exited (${code ?? signal}): ${stderr.join('')}`)));
      readline.createInterface({ input: child.stdout! }).on('line', (line) => {
        let msg: Record<string, unknown>;
        try {
          msg = JSON.parse(line) as Record<string, unknown>;
        } catch {
          return;
        }
        if (msg.ready) {
          clearTimeout(timer);
          resolve();
        } else if (msg.fatal) {
          clearTimeout(timer);
          reject(new Error(`media proxy failed: ${String(msg.fatal)}`));
        } else if (typeof msg.event === 'string') {
          const ev: ProxyEvent = { event: msg.event, leg: msg.leg as number, data: (msg.data ?? {}) as Record<string, unknown>, at: Date.now() };
          this.events.push(ev);
          for (const w of [...this.eventWaiters]) {
            if (w.match(ev)) {
              this.eventWaiters.splice(this.eventWaiters.indexOf(w), 1);
              w.resolve(ev);
            }
          }
        } else if (typeof msg.id === 'number') {
          const pending = this.waiting.get(msg.id);
          if (!pending) return;
          this.waiting.delete(msg.id);
          if (msg.ok) pending.resolve(msg.value);
          else pending.reject(new Error(String(msg.error)));
        }
      });
    });
    child.on('exit', () => {
      for (const p of this.waiting.values()) p.reject(new Error('media proxy exited'));
      this.waiting.clear();
      this.child = undefined;
    });
  }

  private call<T>(op: string, arg: unknown, timeoutMs = 20_000): Promise<T> {
    const child = this.child;
    if (!child?.stdin) return Promise.reject(new Error(`media proxy is gone (op ${op})`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`media proxy op ${op} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      child.stdin!.write(JSON.stringify({ id, op, args: [arg] }) + '\n');
    });
  }

  /** Build a pipeline with one endpoint per leg (processOffer each), connected both ways when two. */
  createCall(legs: { kind: 'rtp' | 'webrtc'; offer: string }[]): Promise<CallAnswer> {
    return this.call('call', { legs });
  }

  addIceCandidate(leg: number, candidate: Record<string, unknown>): Promise<void> {
    return this.call('addIceCandidate', { leg, candidate });
  }

  release(which: 'pipeline' | 'leg0' | 'leg1'): Promise<void> {
    return this.call('release', { which });
  }

  invoke<T>(leg: number, method: string, params: unknown[] = []): Promise<T> {
    return this.call('invoke', { leg, method, params });
  }

  /** Resolves with the first recorded or future event matching. */
  waitForEvent(match: (e: ProxyEvent) => boolean, timeoutMs: number): Promise<ProxyEvent> {
    const seen = this.events.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter = { match, resolve: (e: ProxyEvent) => { clearTimeout(timer); resolve(e); } };
      const timer = setTimeout(() => {
        this.eventWaiters.splice(this.eventWaiters.indexOf(waiter), 1);
        reject(new Error(`no matching media event within ${timeoutMs} ms; seen: ${this.events.map((e) => `${e.event}@leg${e.leg}`).join(', ')}`));
      }, timeoutMs);
      this.eventWaiters.push(waiter);
    });
  }

  /** SIGKILL (the proxy crash) or SIGTERM; resolves once the process is gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    await exited;
  }
}
