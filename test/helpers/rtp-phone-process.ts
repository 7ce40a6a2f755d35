import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import type { PhonePeer, RtpPhoneOptions, RtpPhoneStats, SdpDirection } from './rtp-phone';

/**
 * The scripted RTP phone (rtp-phone.ts) run in a child process, optionally inside a network
 * namespace (`ip netns exec <ns>`), so its sockets live on the namespace's veth and a cable pull or
 * a netem blip hits only its packets. Same API as RtpPhone (PhonePeer). Always `close()` it
 * (an after() hook): that ends the child; `kill()` is the last resort.
 */
export class RtpPhoneProcess implements PhonePeer {
  private child: ChildProcess | undefined;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(private readonly namespace: string | undefined) {}

  static async spawn(options: RtpPhoneOptions & { namespace?: string }): Promise<RtpPhoneProcess> {
    const { namespace, ...phoneOptions } = options;
    const phone = new RtpPhoneProcess(namespace);
    await phone.launch(phoneOptions);
    return phone;
  }

  private async launch(options: RtpPhoneOptions): Promise<void> {
    const script = path.join(__dirname, 'rtp-phone-child.ts');
    const node = [process.execPath, '--import', 'tsx', script, JSON.stringify(options)];
    const argv = this.namespace ? ['ip', 'netns', 'exec', this.namespace, ...node] : node;
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'], cwd: path.join(__dirname, '..', '..') });
    this.child = child;
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('rtp-phone child did not start within 20 s')), 20_000);
      child.once('exit', (code) => reject(new Error(`rtp-phone child exited early (code ${code})`)));
      readline.createInterface({ input: child.stdout! }).on('line', (line) => {
        let msg: { ready?: boolean; id?: number; ok?: boolean; value?: unknown; error?: string };
        try {
          msg = JSON.parse(line) as typeof msg;
        } catch {
          return;
        }
        if (msg.ready) {
          clearTimeout(timer);
          resolve();
          return;
        }
        const pending = msg.id !== undefined ? this.waiting.get(msg.id) : undefined;
        if (!pending) return;
        this.waiting.delete(msg.id!);
        if (msg.ok) pending.resolve(msg.value);
        else pending.reject(new Error(msg.error ?? 'rtp-phone child error'));
      });
    });
    child.on('exit', () => {
      for (const p of this.waiting.values()) p.reject(new Error('rtp-phone child exited'));
      this.waiting.clear();
      this.child = undefined;
    });
    await ready;
  }

  private call<T>(op: string, ...args: unknown[]): Promise<T> {
    const child = this.child;
    if (!child?.stdin) return Promise.reject(new Error(`rtp-phone child is gone (op ${op})`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      child.stdin!.write(JSON.stringify({ id, op, args }) + '\n');
    });
  }

  start(): Promise<{ rtpPort: number; rtcpPort: number }> { return this.call('start'); }
  sdp(direction?: SdpDirection): Promise<string> { return this.call('sdp', direction); }
  applyRemoteSdp(sdp: string): Promise<void> { return this.call('applyRemoteSdp', sdp); }
  startMedia(): Promise<void> { return this.call('startMedia'); }
  mute(): Promise<void> { return this.call('mute'); }
  unmute(): Promise<void> { return this.call('unmute'); }
  sendBye(): Promise<void> { return this.call('sendBye'); }
  stopMedia(): Promise<void> { return this.call('stopMedia'); }
  closeSockets(): Promise<void> { return this.call('closeSockets'); }
  stats(): Promise<RtpPhoneStats> { return this.call('stats'); }
  maxRtpGap(from: number, to: number): Promise<number> { return this.call('maxRtpGap', from, to); }
  rtpReceivedBetween(from: number, to: number): Promise<number> { return this.call('rtpReceivedBetween', from, to); }
  maxSendGap(from: number, to: number): Promise<number> { return this.call('maxSendGap', from, to); }
  rtpSentBetween(from: number, to: number): Promise<number> { return this.call('rtpSentBetween', from, to); }

  /** Close the phone's sockets and end the child (waits for its exit; SIGKILL after 3 s). */
  async close(): Promise<void> {
    const child = this.child;
    if (!child) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    await this.call('close').catch(() => undefined);
    child.stdin?.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }
}
