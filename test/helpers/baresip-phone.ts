import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { Duplex } from 'node:stream';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { promisify } from 'node:util';
import { freePort, waitForPortBound } from './free-port';
import { pollPause, pollUntil } from './wait-for';

/**
 * baresip (Debian package baresip-core) as a real desk phone for end-to-end tests: its own
 * temporary config directory, SIP on a free 127.0.0.1 port (UDP and TCP, TLS on port+1), RTP on a
 * free run of ten even-based UDP ports (RTCP on RTP+1, no rtcp-mux), G.711 only, audio from a
 * generated 8 kHz tone file and played into ALSA's null device (no sound card), and controlled over
 * its ctrl_tcp module: netstrings of JSON commands (`dial`, `accept`, `hangup`, …) on one TCP
 * connection that also carries its events (`REGISTER_OK`, `CALL_ESTABLISHED`, `CALL_CLOSED`, …).
 * What it does on the wire is what a real phone does: RTCP SR every 5 s, RTCP BYE after a SIP BYE.
 *
 *   const phone = await BaresipPhone.start({ user: '1001', password: 's', registrar: `127.0.0.1:${sipPort}`, answer: 'auto' });
 *   await phone.waitEvent((e) => e.type === 'REGISTER_OK', 10_000);
 *   await phone.command('dial', `sip:alice@127.0.0.1:${sipPort}`);
 *   ... await phone.command('hangup'); ... await phone.stop();
 *
 * stop() sends SIGTERM (a clean hang-up), then SIGKILL after 3 s, by pid; the directory is removed.
 */
const runFile = promisify(execFile);

export interface BaresipOptions {
  /** SIP user of the account (the AOR's user part) */
  user: string;
  /** digest password (sent on 401/407) */
  password?: string;
  /** host:port of the registrar/proxy the account belongs to; REGISTERs there when `register` is not false */
  registrar: string;
  register?: boolean;
  /** auto: answer incoming calls at once; manual: wait for `accept` */
  answer?: 'auto' | 'manual';
  /** length of the generated tone it sends (s); longer than the test */
  toneSeconds?: number;
  /**
   * media encryption of the account (baresip's srtp module, SDES): `srtp` offers RTP/AVP with a=crypto
   * (SRTP when the other side answers with a key), `srtp-mand` offers RTP/SAVP (SRTP or no call)
   */
  mediaenc?: 'srtp' | 'srtp-mand';
  /** SIP transport of the account to its registrar (default udp); `tls` uses `registrar` as the TLS host:port */
  transport?: 'udp' | 'tcp' | 'tls';
  /** a PEM file of CA certificates baresip loads for SIP over TLS (`sip_cafile`) */
  caFile?: string;
  /**
   * run baresip inside this network namespace (a phone behind a NAT router: test/helpers/nat-router.ts),
   * its SIP and RTP on `address`; its control port is then on the namespace's loopback, reached through
   * a small relay process started in the namespace (its stdin and stdout are the control connection)
   */
  netns?: { name: string; address: string };
  /** the address its SIP and RTP use outside a namespace (default 127.0.0.1) */
  address?: string;
  /** registration interval (s) baresip asks for and refreshes at 90 % of (default 600) */
  regint?: number;
}

export interface BaresipEvent {
  type: string;
  class?: string;
  param?: string;
  peeruri?: string;
  id?: string;
  /** when the test process read it (ms since epoch) */
  at: number;
  [key: string]: unknown;
}

interface Pending {
  resolve(r: BaresipResponse): void;
  reject(err: Error): void;
}

export interface BaresipResponse {
  ok: boolean;
  data: string;
}

const MODULES = ['g711.so', 'alsa.so', 'aufile.so'];

/** An 8 kHz mono 16-bit PCM WAV of a 440 Hz sine (what the phone's "microphone" says). */
export function toneWav(seconds: number): Buffer {
  const rate = 8000;
  const samples = rate * seconds;
  const buf = Buffer.alloc(44 + samples * 2);
  buf.write('RIFF', 0, 'ascii');
  buf.writeUInt32LE(36 + samples * 2, 4);
  buf.write('WAVEfmt ', 8, 'ascii');
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20); // PCM
  buf.writeUInt16LE(1, 22); // mono
  buf.writeUInt32LE(rate, 24);
  buf.writeUInt32LE(rate * 2, 28);
  buf.writeUInt16LE(2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write('data', 36, 'ascii');
  buf.writeUInt32LE(samples * 2, 40);
  for (let i = 0; i < samples; i++) buf.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / rate)), 44 + i * 2);
  return buf;
}

/**
 * The control connection to a baresip inside a network namespace: once its control port listens there
 * (`ss` in the namespace, polled within `timeoutMs`), a node process started in the namespace connects to
 * it on the namespace's loopback and relays it over its stdin and stdout; resolves once it is connected
 * (it says so on stderr first).
 */
async function controlRelay(netns: string, ctrlPort: number, timeoutMs: number): Promise<Duplex> {
  await pollUntil(async () => (await runFile('ip', ['netns', 'exec', netns, 'ss', '-Hltn', `sport = :${ctrlPort}`])).stdout.trim() !== '',
    { timeoutMs, stepMs: 50, what: `baresip's control port ${ctrlPort} listening in ${netns}` });
  const script = `const s=require('net').connect(${ctrlPort},'127.0.0.1',()=>{process.stderr.write('connected\\n');process.stdin.pipe(s);s.pipe(process.stdout)});` +
    `s.on('close',()=>process.exit(0));s.on('error',(e)=>{process.stderr.write(String(e));process.exit(3)});process.stdin.on('end',()=>s.destroy())`;
  const relay = spawn('ip', ['netns', 'exec', netns, process.execPath, '-e', script], { stdio: ['pipe', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let err = '';
    relay.stderr!.setEncoding('utf8');
    relay.stderr!.on('data', (d: string) => {
      err += d;
      if (err.includes('connected')) resolve();
    });
    relay.once('exit', (code) => reject(new Error(`baresip control relay in ${netns} exited (${code}): ${err.trim()}`)));
  });
  const duplex = Duplex.from({ readable: relay.stdout!, writable: relay.stdin! });
  duplex.on('close', () => relay.kill('SIGKILL'));
  return duplex;
}

export class BaresipPhone {
  readonly events: BaresipEvent[] = [];
  private readonly pending = new Map<string, Pending>();
  private token = 0;
  private buffer = '';
  private readonly exited: Promise<void>;
  private eventWaiters = new Set<() => void>();

  private constructor(
    private readonly child: ChildProcess,
    private readonly ctrl: Duplex,
    readonly dir: string,
    readonly sipPort: number,
    readonly ctrlPort: number,
    readonly rtpPorts: [number, number],
    /** baresip's own output lines (stdout and stderr) */
    readonly log: string[],
  ) {
    this.exited = new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));
    ctrl.setEncoding('utf8');
    ctrl.on('data', (chunk: string) => this.onData(chunk));
    ctrl.on('error', () => undefined);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Resolves once the registrar answered 200 to its REGISTER (the event, or its log line when that came before the control connection). */
  async waitRegistered(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.events.some((e) => e.type === 'REGISTER_OK') && !this.log.some((l) => /\} 200 OK .*binding/.test(l))) {
      if (Date.now() > deadline) throw new Error(`baresip: not registered within ${timeoutMs} ms`);
      await pollPause(50);
    }
  }

  static async start(options: BaresipOptions): Promise<BaresipPhone> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-baresip-'));
    try {
      // the three ranges are chosen before baresip binds any of them, so each must avoid the others
      // (a control port equal to the SIP port once made baresip start without its control module)
      const sipPort = await freePort({ protocols: ['udp', 'tcp'], count: 2 });
      const taken = (port: number, span: number, [base, count]: [number, number]): boolean => port < base + count && base < port + span;
      let ctrlPort = await freePort({ protocols: ['tcp'] });
      while (taken(ctrlPort, 1, [sipPort, 2])) ctrlPort = await freePort({ protocols: ['tcp'] });
      let rtpBase = await freePort({ protocols: ['udp'], count: 10, even: true });
      while (taken(rtpBase, 10, [sipPort, 2]) || taken(rtpBase, 10, [ctrlPort, 1])) rtpBase = await freePort({ protocols: ['udp'], count: 10, even: true });
      const tone = path.join(dir, 'tone.wav');
      await writeFile(tone, toneWav(options.toneSeconds ?? 120));
      const address = options.netns?.address ?? options.address ?? '127.0.0.1';
      const config = [
        'poll_method epoll',
        // an IPv6 address: in brackets in sip_listen, and libre told to use IPv6
        `sip_listen ${address.includes(':') ? `[${address}]` : address}:${sipPort}`,
        `net_interface ${address}`,
        ...(address.includes(':') ? ['net_prefer_ipv6 yes'] : []),
        `rtp_ports ${rtpBase}-${rtpBase + 9}`,
        'rtcp_mux no',
        `audio_source aufile,${tone}`,
        'audio_player alsa,null',
        'audio_alert alsa,null',
        'module_path /usr/lib/baresip/modules',
        ...[...MODULES, ...(options.mediaenc ? ['srtp.so'] : [])].map((m) => `module ${m}`),
        'module_tmp account.so',
        'module_app menu.so',
        'module_app ctrl_tcp.so',
        `ctrl_tcp_listen 127.0.0.1:${ctrlPort}`,
        ...(options.caFile ? [`sip_cafile ${options.caFile}`] : []),
        '',
      ].join('\n');
      await writeFile(path.join(dir, 'config'), config);
      const params = [
        options.password !== undefined ? `auth_pass=${options.password}` : '',
        `regint=${options.register === false ? 0 : options.regint ?? 600}`,
        `answermode=${options.answer ?? 'manual'}`,
        options.mediaenc ? `mediaenc=${options.mediaenc}` : '',
      ].filter(Boolean);
      await writeFile(path.join(dir, 'accounts'), `<sip:${options.user}@${options.registrar};transport=${options.transport ?? 'udp'}>;${params.join(';')}\n`);
      // no `-d`: it would daemonise and the pid held here would be useless
      const child = options.netns
        ? spawn('ip', ['netns', 'exec', options.netns.name, 'baresip', '-f', dir], { stdio: ['ignore', 'pipe', 'pipe'] })
        : spawn('baresip', ['-f', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
      const log: string[] = [];
      const keep = (line: string): void => {
        if (/\baudio=\d+\/\d+ \(bit\/s\)/.test(line)) return; // its once-a-tick status line
        log.push(line);
        if (log.length > 2000) log.splice(0, 500);
      };
      readline.createInterface({ input: child.stdout! }).on('line', keep);
      readline.createInterface({ input: child.stderr! }).on('line', keep);
      const early = new Promise<never>((_, reject) => child.once('exit', (code, sig) => reject(new Error(`baresip exited (${sig ?? code}) before its control port opened:\n${log.slice(-20).join('\n')}`))));
      early.catch(() => undefined);
      try {
        if (options.netns) {
          const ctrl = await Promise.race([controlRelay(options.netns.name, ctrlPort, 10_000), early]);
          return new BaresipPhone(child, ctrl, dir, sipPort, ctrlPort, [rtpBase, rtpBase + 9], log);
        }
        await Promise.race([waitForPortBound(ctrlPort, 'tcp', 10_000), early]);
        const ctrl = await Promise.race([
          new Promise<net.Socket>((resolve, reject) => {
            const s = net.connect(ctrlPort, '127.0.0.1', () => resolve(s));
            s.once('error', reject);
          }),
          early,
        ]);
        const phone = new BaresipPhone(child, ctrl, dir, sipPort, ctrlPort, [rtpBase, rtpBase + 9], log);
        return phone;
      } catch (err) {
        child.kill('SIGKILL');
        throw err;
      }
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Sends one ctrl_tcp command (long name, e.g. `dial`, `accept`, `hangup`, `mute`, `hold`) and waits for its response. */
  command(command: string, params = '', timeoutMs = 5000): Promise<BaresipResponse> {
    if (this.ctrl.destroyed) return Promise.reject(new Error(`baresip: ${command}: the phone is stopped`));
    const token = `t${++this.token}`;
    const body = Buffer.from(JSON.stringify({ command, params, token }));
    return new Promise<BaresipResponse>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(token);
        reject(new Error(`baresip: no response to ${command} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(token, {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.ctrl.write(Buffer.concat([Buffer.from(`${body.length}:`), body, Buffer.from(',')]));
    });
  }

  /** Resolves with the first event (already seen or arriving within timeoutMs) that matches. */
  waitEvent(match: (e: BaresipEvent) => boolean, timeoutMs: number, what = 'event'): Promise<BaresipEvent> {
    const seen = this.events.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const e = this.events.find(match);
        if (!e) return;
        clearTimeout(timer);
        this.eventWaiters.delete(check);
        resolve(e);
      };
      const timer = setTimeout(() => {
        this.eventWaiters.delete(check);
        reject(new Error(`baresip: no ${what} within ${timeoutMs} ms; events: ${this.events.map((e) => `${e.type}${e.param ? `(${e.param})` : ''}`).join(', ')}`));
      }, timeoutMs);
      this.eventWaiters.add(check);
    });
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    for (;;) {
      const colon = this.buffer.indexOf(':');
      if (colon < 0) return;
      const len = Number(this.buffer.slice(0, colon));
      // netstring lengths count bytes; ctrl_tcp sends ASCII JSON
      if (!Number.isFinite(len) || this.buffer.length < colon + 1 + len + 1) return;
      const json = this.buffer.slice(colon + 1, colon + 1 + len);
      this.buffer = this.buffer.slice(colon + 1 + len + 1);
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(json) as Record<string, unknown>;
      } catch {
        continue;
      }
      if (msg.response === true && typeof msg.token === 'string') {
        this.pending.get(msg.token)?.resolve({ ok: msg.ok === true, data: String(msg.data ?? '') });
        this.pending.delete(msg.token);
      } else if (msg.event === true) {
        this.events.push({ ...msg, type: String(msg.type ?? ''), at: Date.now() } as BaresipEvent);
        for (const w of [...this.eventWaiters]) w();
      }
    }
  }

  /** SIGTERM (baresip hangs up its calls: SIP BYE + RTCP BYE), SIGKILL after 3 s; removes its directory. */
  async stop(): Promise<void> {
    this.ctrl.destroy();
    for (const p of this.pending.values()) p.reject(new Error('baresip stopped'));
    this.pending.clear();
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const kill = setTimeout(() => this.child.kill('SIGKILL'), 3000);
      this.child.kill('SIGTERM');
      await this.exited;
      clearTimeout(kill);
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}
