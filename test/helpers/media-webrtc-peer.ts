import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { pollUntil } from './wait-for';
import type { HostMessage, PeerOperation, PeerRequest } from './webrtc-test-peer-protocol';
import type { HeldDatagramKind } from './werift-test-peer';

/**
 * A browser-like WebRTC peer for the WebRTC-leg tests, independent of the code under test: werift's own
 * unmodified ICE, DTLS-SRTP and RTCP (werift-test-peer.ts), running in a separate child process
 * (webrtc-test-peer-host.ts) that loads nothing from src/. ferry changes werift process-wide (ICE consent
 * timing) and patches its own werift objects, so a peer in the test process could inherit ferry's changes
 * and a mistake made the same way on both sides would pass; test/unit/webrtc-test-peer-independence.test.ts
 * checks that no file of the peer imports src/, and the host reports any src/ module it finds loaded.
 *
 * One host process per test process, started with the first peer; every peer of the file lives in it.
 * Offers G.711 + telephone-event/8000 at PT 126 (as Chromium numbers it) on 127.0.0.1 with trickle ICE.
 * It records every decrypted RTP and RTCP packet it receives byte for byte, and can send any plain RTP (DTMF
 * included) and RTCP, a DTLS close_notify, replay a captured SRTP datagram, send raw bytes, hold back its
 * DTLS HelloVerifyRequests, or freeze. Sends are queued to the host in order; `sendRtp` and `sendRtcp`
 * return at once (an error of an earlier send is thrown by the next call).
 */

/** The longest a connecting peer keeps the test process alive (a test's own timeout is shorter). */
const CONNECTING_HOLD_MS = 60_000;

class PeerHost {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly listeners = new Map<number, (event: string, args: unknown[]) => void>();
  /** Peers between offer/answer and `connected` (a test may await only that event), each with its expiry. */
  private readonly connecting = new Map<number, NodeJS.Timeout>();
  private exited: Error | undefined;

  constructor(private readonly child: ChildProcess) {
    child.on('message', (m: HostMessage) => this.onMessage(m));
    child.on('exit', (code, signal) => {
      this.exited = new Error(`WebRTC test peer host exited (code ${code}, signal ${signal})`);
      for (const p of this.pending.values()) p.reject(this.exited);
      this.pending.clear();
    });
    this.updateRef();
  }

  static start(): Promise<PeerHost> {
    const child = fork(path.join(__dirname, 'webrtc-test-peer-host.ts'), [], {
      cwd: path.resolve(__dirname, '../..'),
      execArgv: ['--import', 'tsx'],
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`WebRTC test peer host failed to start (exit ${code})`));
      child.once('exit', onExit);
      child.once('message', (m: HostMessage) => {
        child.off('exit', onExit);
        if (m.kind !== 'ready') return reject(new Error(`WebRTC test peer host: unexpected first message ${m.kind}`));
        if (m.modulesFromSrc.length > 0) {
          child.kill();
          return reject(new Error(`the WebRTC test peer loaded ferry code: ${m.modulesFromSrc.join(', ')}`));
        }
        resolve(new PeerHost(child));
      });
    });
  }

  listen(peer: number, fn: (event: string, args: unknown[]) => void): void {
    this.listeners.set(peer, fn);
  }

  request(peer: number, op: PeerOperation, args: unknown[] = []): Promise<unknown> {
    if (this.exited) return Promise.reject(this.exited);
    const id = this.nextId++;
    const message: PeerRequest = { id, peer, op, args };
    const reply = new Promise<unknown>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.updateRef();
    this.child.send(message);
    return reply;
  }

  /**
   * While a peer is connecting (for at most CONNECTING_HOLD_MS), the host keeps the test process alive: its
   * `connected` event may be the only thing a test awaits.
   */
  setConnecting(peer: number, connecting: boolean): void {
    clearTimeout(this.connecting.get(peer));
    this.connecting.delete(peer);
    if (connecting) {
      const expiry = setTimeout(() => this.setConnecting(peer, false), CONNECTING_HOLD_MS);
      expiry.unref();
      this.connecting.set(peer, expiry);
    }
    this.updateRef();
  }

  private onMessage(m: HostMessage): void {
    if (m.kind === 'event') {
      this.listeners.get(m.peer)?.(m.event, m.args);
    } else if (m.kind === 'reply') {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.value);
      else p.reject(new Error(m.error));
      this.updateRef();
    }
  }

  /**
   * Keep the test process alive while a reply or a connection is awaited; otherwise the host never holds it
   * open (a test that forgets to close a peer must not hang its file).
   */
  private updateRef(): void {
    if (this.pending.size > 0 || this.connecting.size > 0) {
      this.child.ref();
      this.child.channel?.ref();
    } else {
      this.child.unref();
      this.child.channel?.unref();
    }
  }
}

let host: Promise<PeerHost> | undefined;
let nextPeer = 1;

function bytes(v: unknown): Buffer {
  return Buffer.from(v as Uint8Array);
}

export class WebRtcTestPeer {
  readonly rtpIn: Buffer[] = [];
  readonly rtcpIn: { packet: Buffer; bye: boolean; at: number }[] = [];
  readonly dtlsStates: { state: string; at: number }[] = [];
  readonly candidates: { candidate: string; sdpMid: string; sdpMLineIndex: number }[] = [];
  readonly sentSrtp: Buffer[] = [];
  readonly connected: Promise<void>;
  readonly ssrc = 0x5eed0001;
  private readonly id = nextPeer++;
  private readonly created: Promise<PeerHost>;
  private host: PeerHost | undefined;
  private isConnected = false;
  private readonly failures: string[] = [];
  private connectedResolve: (() => void) | undefined;

  constructor(opts: { pcmaOnly?: boolean; telephoneEventPt?: number } = {}) {
    this.connected = new Promise((r) => (this.connectedResolve = r));
    host ??= PeerHost.start();
    this.created = host.then(async (h) => {
      h.listen(this.id, (event, args) => this.onEvent(event, args));
      await h.request(this.id, 'create', [opts, this.ssrc]);
      this.host = h;
      return h;
    });
    this.created.catch(() => undefined); // surfaced by the first awaited call
  }

  private onEvent(event: string, args: unknown[]): void {
    switch (event) {
      case 'rtp':
        this.rtpIn.push(bytes(args[0]));
        break;
      case 'rtcp':
        this.rtcpIn.push({ packet: bytes(args[0]), bye: args[1] === true, at: Number(args[2]) });
        break;
      case 'dtlsState':
        this.dtlsStates.push({ state: String(args[0]), at: Number(args[1]) });
        break;
      case 'candidate':
        this.candidates.push(args[0] as { candidate: string; sdpMid: string; sdpMLineIndex: number });
        break;
      case 'sentSrtp':
        this.sentSrtp.push(bytes(args[0]));
        break;
      case 'connected':
        this.isConnected = true;
        this.host?.setConnecting(this.id, false);
        this.connectedResolve?.();
        break;
    }
  }

  private async call(op: PeerOperation, args: unknown[] = []): Promise<unknown> {
    const h = await this.created;
    return h.request(this.id, op, args);
  }

  /** A send that does not wait for the host: queued in order; a failure is thrown by the next call. */
  private post(op: PeerOperation, args: unknown[]): void {
    if (this.failures.length > 0) throw new Error(`an earlier send failed: ${this.failures.join('; ')}`);
    if (!this.isConnected || !this.host) throw new Error('not connected');
    this.host.request(this.id, op, args).catch((e: Error) => this.failures.push(`${op}: ${e.message}`));
  }

  /** Our offer without candidates (they trickle: read `candidates` after this resolves). */
  async createOffer(): Promise<string> {
    (await this.created).setConnecting(this.id, !this.isConnected);
    return String(await this.call('createOffer'));
  }

  /** Answer an offer (complete SDP back, candidates inline). */
  async answer(offer: string): Promise<string> {
    (await this.created).setConnecting(this.id, !this.isConnected);
    return String(await this.call('answer', [offer]));
  }

  async setAnswer(sdp: string): Promise<void> {
    await this.call('setAnswer', [sdp]);
  }

  async addCandidate(c: { candidate: string; sdpMid?: string | null; sdpMLineIndex?: number | null }): Promise<void> {
    await this.call('addCandidate', [{ candidate: c.candidate, sdpMid: c.sdpMid ?? null, sdpMLineIndex: c.sdpMLineIndex ?? null }]);
  }

  /** Send a plain RTP packet (its PT, seq, timestamp, marker and payload kept; this peer's SSRC stamped) over werift's SRTP. */
  sendRtp(packet: Buffer): void {
    this.post('sendRtp', [packet]);
  }

  /** Send a plain RTCP compound as it is, over werift's SRTCP. */
  sendRtcp(compound: Buffer): void {
    this.post('sendRtcp', [compound]);
  }

  /** Send a captured SRTP datagram again, unchanged. */
  async replay(datagram: Buffer): Promise<void> {
    await this.call('replay', [datagram]);
  }

  /** Send raw bytes on the selected pair, unprotected (forged DTLS records for fault tests). */
  async sendRaw(datagram: Buffer): Promise<void> {
    await this.call('sendRaw', [datagram]);
  }

  /** A DTLS close_notify protected under the session keys. */
  async closeNotify(): Promise<void> {
    await this.call('closeNotify');
  }

  /** Hold back outgoing datagrams of `kind` for `holdMs` from the first one, then send them all (late, not lost). */
  async holdDatagrams(kind: HeldDatagramKind, holdMs: number): Promise<void> {
    await this.call('holdDatagrams', [kind, holdMs]);
  }

  /** Stop answering and sending anything (a frozen peer: cable pulled). */
  async freeze(): Promise<void> {
    await this.call('freeze');
  }

  async close(): Promise<void> {
    this.host?.setConnecting(this.id, false);
    await this.call('close').catch(() => undefined);
  }
}

/** A plain RTP packet: PT, seq, timestamp, SSRC, payload. */
export function rtpPacket(pt: number, seq: number, ts: number, ssrc: number, payload: Buffer, marker = false): Buffer {
  const b = Buffer.alloc(12 + payload.length);
  b[0] = 0x80;
  b[1] = (marker ? 0x80 : 0) | pt;
  b.writeUInt16BE(seq & 0xffff, 2);
  b.writeUInt32BE(ts >>> 0, 4);
  b.writeUInt32BE(ssrc >>> 0, 8);
  payload.copy(b, 12);
  return b;
}

/** Waits until `cond()` holds, checking every 10 ms; fails after `timeoutMs` naming `what`. */
export async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  await pollUntil(() => cond() || undefined, { timeoutMs, what, stepMs: 10 });
}
