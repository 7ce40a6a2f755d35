import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { sineSamples } from './audio-tone';
import { NetNamespace } from './netns';
import { pollPause } from './wait-for';

/**
 * linphone (Debian package linphone-cli, program `linphonec`, 5.1.x) as a second real desk phone for
 * end-to-end tests. It runs in its own network namespace (test/helpers/netns.ts) whose only route goes
 * out of the veth to the root namespace: linphone writes the address of the interface holding its
 * default route in its SDP `c=` and Contact, never 127.0.0.1, so ferry must be reached at the
 * namespace's `hostAddress` (listen there, or on 0.0.0.0 with that address advertised).
 *
 * It is driven on its stdin (a pipe held open; EOF makes it quit) with linphonec's own commands and
 * watched on its stdout (`-S`: "Receiving new incoming call from ...", "Call 1 with <sip:...> connected.",
 * "... is now paused.", "Call 1 with <sip:...> ended (...).") and in its log file (level 5, read as it is
 * written: SIP messages, registration states, each line with linphone's own time stamp). Sound is
 * "files" mode: it plays a generated WAV tone as its microphone and records what it hears into a WAV
 * file (`recordingPath`, a new one per `newRecording()`, read by `recording()`).
 *
 * Its own config: SIP over UDP only on port 5062 in the namespace (`ports sip` at start: the config's
 * sip_port is not applied), RTP on 7078 (RTCP 7079, no rtcp-mux), video off. HOME is the temporary
 * directory (it keeps $HOME/.local/share/linphone/linphone.db). stop(): `quit`, then SIGTERM and
 * SIGKILL by pid (its `quit` sometimes hangs), the directory and the namespace removed.
 *
 *   const ns = await LinphonePhone.namespace();
 *   const phone = await LinphonePhone.start({ ns, user: '1001', password: 's', registrar: `${ns.hostAddress}:${sipPort}` });
 *   await phone.register();
 *   await phone.call(`sip:alice@${ns.hostAddress}:${sipPort}`); ... phone.terminate(); ... await phone.stop();
 */
export const LINPHONE_SIP_PORT = 5062;
export const LINPHONE_RTP_PORT = 7078;

export interface LinphoneOptions {
  /** the namespace it runs in (LinphonePhone.namespace()); removed by stop() */
  ns: NetNamespace;
  user: string;
  password: string;
  /** host:port of ferry sip as reached from the namespace (UDP) */
  registrar: string;
  /** the tone it sends (Hz; default 440) and its length (s; default 120, longer than a test) */
  toneHz?: number;
  toneSeconds?: number;
  /** answer incoming calls at once (linphonec -a); default: wait for answer() */
  autoAnswer?: boolean;
  /**
   * ICE on (`firewall ice`, with `stun <host:port>` as its STUN server: nothing need answer there, its
   * host candidates are offered anyway): its offers and answers carry a=ice-ufrag/ice-pwd/candidate in
   * plain RTP/AVP, and it runs connectivity checks (STUN Binding Requests) on its RTP and RTCP ports
   */
  ice?: { stunServer: string };
}

export interface LinphoneLine {
  line: string;
  /** when the test process read it (ms since epoch) */
  at: number;
  /** a log line: the time linphone wrote on it, or on the last stamped line before it (a SIP message's lines carry none) */
  loggedAt?: number;
}

/** linphone's log time stamp ("2026-12-06 01:27:03:409", local time) in ms since epoch. */
export function logStamp(line: string): number | undefined {
  const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d):(\d{3}) /.exec(line);
  return m ? new Date(`${m[1]}T${m[2]}.${m[3]}`).getTime() : undefined;
}

/** A 16-bit mono PCM WAV of `samples` at `rate`. */
export function wavFile(samples: Int16Array, rate: number): Buffer {
  const buf = Buffer.alloc(44 + samples.length * 2);
  buf.write('RIFF', 0, 'ascii');
  buf.writeUInt32LE(36 + samples.length * 2, 4);
  buf.write('WAVEfmt ', 8, 'ascii');
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20);
  buf.writeUInt16LE(1, 22);
  buf.writeUInt32LE(rate, 24);
  buf.writeUInt32LE(rate * 2, 28);
  buf.writeUInt16LE(2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write('data', 36, 'ascii');
  buf.writeUInt32LE(samples.length * 2, 40);
  for (let i = 0; i < samples.length; i++) buf.writeInt16LE(samples[i]!, 44 + i * 2);
  return buf;
}

/** The samples (first channel) and rate of a 16-bit PCM WAV file, chunks walked (linphone writes a plain header). */
export function readWav(buf: Buffer): { rate: number; channels: number; samples: Int16Array } {
  if (buf.toString('ascii', 0, 4) !== 'RIFF' || buf.toString('ascii', 8, 12) !== 'WAVE') throw new Error('not a WAV file');
  let off = 12;
  let rate = 0;
  let channels = 1;
  while (off + 8 <= buf.length) {
    const id = buf.toString('ascii', off, off + 4);
    let size = buf.readUInt32LE(off + 4);
    if (id === 'fmt ') {
      channels = buf.readUInt16LE(off + 10);
      rate = buf.readUInt32LE(off + 12);
    } else if (id === 'data') {
      // a recording still being written may say 0 (or too much): take what is there
      if (size === 0 || off + 8 + size > buf.length) size = buf.length - off - 8;
      const frames = Math.floor(size / (2 * channels));
      const samples = new Int16Array(frames);
      for (let i = 0; i < frames; i++) samples[i] = buf.readInt16LE(off + 8 + i * 2 * channels);
      return { rate, channels, samples };
    }
    off += 8 + size + (size % 2);
  }
  throw new Error('WAV file without a data chunk');
}

export class LinphonePhone {
  readonly lines: LinphoneLine[] = [];
  /** lines of its log file, read as they are written (every 50 ms) */
  readonly logLines: LinphoneLine[] = [];
  private readonly exited: Promise<void>;
  private stopped = false;
  private logOffset = 0;
  private logRest = '';
  private logReading = false;
  private lastStamp: number | undefined;
  private readonly logTimer: NodeJS.Timeout;

  /** the WAV file it records what it hears into (newRecording() names a fresh one) */
  recordingPath: string;
  private recordings = 0;

  private constructor(
    private readonly child: ChildProcess,
    readonly ns: NetNamespace,
    readonly dir: string,
    readonly options: LinphoneOptions,
    recordingPath: string,
    readonly logPath: string,
  ) {
    this.recordingPath = recordingPath;
    this.exited = new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));
    const keep = (line: string): void => {
      this.lines.push({ line, at: Date.now() });
      if (this.lines.length > 3000) this.lines.splice(0, 1000);
    };
    readline.createInterface({ input: child.stdout! }).on('line', keep);
    readline.createInterface({ input: child.stderr! }).on('line', keep);
    this.logTimer = setInterval(() => void this.readLog(), 50);
    this.logTimer.unref();
  }

  private async readLog(): Promise<void> {
    if (this.logReading) return;
    this.logReading = true;
    try {
      const f = await open(this.logPath, 'r').catch(() => undefined);
      if (!f) return;
      try {
        const buf = Buffer.alloc(1 << 20);
        for (;;) {
          const { bytesRead } = await f.read(buf, 0, buf.length, this.logOffset);
          if (bytesRead === 0) break;
          this.logOffset += bytesRead;
          const text = this.logRest + buf.toString('utf8', 0, bytesRead);
          const parts = text.split('\n');
          this.logRest = parts.pop() ?? '';
          const at = Date.now();
          for (const line of parts) {
            this.lastStamp = logStamp(line) ?? this.lastStamp;
            this.logLines.push({ line, at, loggedAt: this.lastStamp });
          }
          if (this.logLines.length > 50_000) this.logLines.splice(0, 10_000);
        }
      } finally {
        await f.close();
      }
    } finally {
      this.logReading = false;
    }
  }

  /** The first log line (read at or after `since`) matching `re`, seen already or within timeoutMs. */
  async waitLog(re: RegExp, timeoutMs: number, since = 0, what = String(re)): Promise<LinphoneLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.logLines.find((l) => l.at >= since && re.test(l.line));
      if (found) return found;
      if (!this.running) throw new Error(`linphone exited (${this.child.signalCode ?? this.child.exitCode}) while waiting for ${what} in its log`);
      if (Date.now() > deadline) throw new Error(`linphone: no ${what} in its log within ${timeoutMs} ms; output:\n${this.tail(20)}`);
      await pollPause(25);
    }
  }

  /** Log lines read at or after `since` that match `re`. */
  logSince(re: RegExp, since = 0): LinphoneLine[] {
    return this.logLines.filter((l) => l.at >= since && re.test(l.line));
  }

  /** A network namespace whose only route (default) goes out of its veth to the root namespace. */
  static async namespace(): Promise<NetNamespace> {
    const ns = await NetNamespace.create();
    try {
      await ns.exec('ip', ['route', 'add', 'default', 'via', ns.hostAddress]);
    } catch (err) {
      await ns.destroy();
      throw err;
    }
    return ns;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get address(): string {
    return this.ns.phoneAddress;
  }

  static async start(options: LinphoneOptions): Promise<LinphonePhone> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-linphone-'));
    try {
      await mkdir(path.join(dir, '.local', 'share', 'linphone'), { recursive: true });
      const tone = path.join(dir, 'tone.wav');
      await writeFile(tone, wavFile(sineSamples(options.toneHz ?? 440, 8000, 8000 * (options.toneSeconds ?? 120), 0.3), 8000));
      const rc = path.join(dir, 'linphonerc');
      await writeFile(rc, [
        '[sip]',
        `sip_port=${LINPHONE_SIP_PORT}`,
        'sip_tcp_port=-1',
        'sip_tls_port=-1',
        `bind_address=${options.ns.phoneAddress}`,
        `contact=sip:${options.user}@${options.ns.phoneAddress}`,
        '[rtp]',
        `audio_rtp_port=${LINPHONE_RTP_PORT}`,
        'rtcp_mux=0',
        '[video]',
        'enabled=0',
        'capture=0',
        'display=0',
        '[sound]',
        'echocancellation=0',
        '',
      ].join('\n'));
      const recordingPath = path.join(dir, 'heard.wav');
      const logPath = path.join(dir, 'linphone.log');
      const args = ['netns', 'exec', options.ns.name, 'linphonec', '-c', rc, '-S', '-d', '5', '-l', logPath, ...(options.autoAnswer ? ['-a'] : [])];
      const child = spawn('ip', args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, HOME: dir } });
      const phone = new LinphonePhone(child, options.ns, dir, options, recordingPath, logPath);
      try {
        phone.send(`ports sip ${LINPHONE_SIP_PORT}`);
        phone.send('soundcard use files');
        phone.send(`play ${tone}`);
        phone.send(`record ${recordingPath}`);
        if (options.ice) {
          phone.send(`stun ${options.ice.stunServer}`);
          phone.send('firewall ice');
        }
        // linphonec reads its commands once it is up: its answer to a `ports` after them says it ran them all
        await phone.settled(15_000);
      } catch (err) {
        await phone.stop();
        throw err;
      }
      return phone;
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Writes one linphonec command line. */
  send(command: string): void {
    if (this.stopped || !this.child.stdin || this.child.stdin.destroyed) throw new Error(`linphone: ${command}: the phone is stopped`);
    this.child.stdin.write(`${command}\n`);
  }

  /** The first output line (read at or after `since`) matching `re`, seen already or within timeoutMs. */
  async waitLine(re: RegExp, timeoutMs: number, since = 0, what = String(re)): Promise<LinphoneLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.find((l) => l.at >= since && re.test(l.line));
      if (found) return found;
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`linphone exited (${this.child.signalCode ?? this.child.exitCode}) while waiting for ${what}:\n${this.tail(20)}`);
      if (Date.now() > deadline) throw new Error(`linphone: no ${what} within ${timeoutMs} ms; output:\n${this.tail(20)}`);
      await pollPause(25);
    }
  }

  /** REGISTERs (digest) to the registrar and resolves once linphone says it succeeded. */
  async register(timeoutMs = 15_000): Promise<void> {
    const since = Date.now();
    const { user, password, registrar } = this.options;
    this.send(`register sip:${user}@${registrar} sip:${registrar} ${password}`);
    await this.waitLog(/moving from state \[LinphoneRegistrationProgress\] to \[LinphoneRegistrationOk\]/, timeoutMs, since, 'a successful registration');
  }

  async call(uri: string): Promise<void> {
    this.send(`call ${uri}`);
  }

  answer(): void {
    this.send('answer');
  }

  terminate(): void {
    this.send('terminate');
  }

  pause(): void {
    this.send('pause');
  }

  resume(): void {
    this.send('resume');
  }

  mute(): void {
    this.send('mute');
  }

  unmute(): void {
    this.send('unmute');
  }

  /**
   * One DTMF digit (0-9, *, #) in the current call: a bare digit on linphonec's command line (RFC 4733
   * when the call negotiated telephone-event). linphonec then sleeps about a second in its command loop,
   * which is also its SIP loop: a request arriving meanwhile is read late. Resolves once it is awake again.
   */
  async dtmf(digit: string): Promise<void> {
    if (!/^[0-9*#]$/.test(digit)) throw new Error(`linphone: not a DTMF digit: ${digit}`);
    this.send(digit);
    await this.settled();
  }

  /** Resolves once linphonec has run every command written before (a `ports` sent now has printed its answer). */
  async settled(timeoutMs = 5000): Promise<void> {
    const since = Date.now();
    this.send('ports');
    await this.waitLine(new RegExp(`sip port = ${LINPHONE_SIP_PORT}\\b`), timeoutMs, since, 'its answer to `ports`');
  }

  /**
   * Records what it hears into a new WAV file from the next call on (linphonec writes one recording
   * file per `record` command: a second call does not write into the first call's file).
   */
  newRecording(): string {
    this.recordingPath = path.join(this.dir, `heard-${++this.recordings}.wav`);
    this.send(`record ${this.recordingPath}`);
    return this.recordingPath;
  }

  /**
   * What it has recorded so far of what it heard. While the call lasts the file has 44 zero bytes where
   * the WAV header goes (linphone writes the header when it closes the file, at the call's end) and then
   * 16-bit mono PCM at the call's audio rate (8 kHz for G.711), written in 64 KiB chunks (about 4 s).
   */
  async recording(): Promise<{ rate: number; samples: Int16Array }> {
    const buf = await readFile(this.recordingPath).catch(() => Buffer.alloc(0));
    if (buf.length >= 44 && buf.subarray(0, 44).every((b) => b === 0)) {
      const frames = Math.floor((buf.length - 44) / 2);
      const samples = new Int16Array(frames);
      for (let i = 0; i < frames; i++) samples[i] = buf.readInt16LE(44 + i * 2);
      return { rate: 8000, samples };
    }
    if (buf.length < 44) return { rate: 8000, samples: new Int16Array(0) };
    return readWav(buf);
  }

  async logText(): Promise<string> {
    return readFile(this.logPath, 'utf8').catch(() => '');
  }

  tail(n = 25): string {
    return this.lines.slice(-n).map((l) => l.line).join('\n');
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * `quit`, then SIGTERM after 2 s and SIGKILL after 2 s more (by pid); the directory removed, and the
   * namespace too unless `keepNamespace` (another linphone is started in it next).
   */
  async stop(options: { keepNamespace?: boolean } = {}): Promise<void> {
    clearInterval(this.logTimer);
    if (!this.stopped) {
      this.stopped = true;
      if (this.running) {
        this.child.stdin?.write('quit\n');
        const term = setTimeout(() => this.child.kill('SIGTERM'), 2000);
        const kill = setTimeout(() => this.child.kill('SIGKILL'), 4000);
        await this.exited;
        clearTimeout(term);
        clearTimeout(kill);
      }
      this.child.stdin?.destroy();
    }
    if (!options.keepNamespace) await this.ns.destroy();
    await rm(this.dir, { recursive: true, force: true });
  }

  /** Kill at once (no SIP BYE: a phone switched off at the wall); the namespace stays until stop(). */
  async kill(): Promise<void> {
    if (this.running) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}
