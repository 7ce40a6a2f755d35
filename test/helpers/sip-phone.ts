import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import type { PhonePeer } from './rtp-phone';
import { digestAnswer } from './sip-raw-client';

/**
 * A scripted SIP IP phone over UDP for the gateway lifecycle scenarios: just enough RFC 3261 UA to
 * place or answer one call, hang up with BYE, hold with a sendonly re-INVITE, and answer the far
 * end's BYE with 200; its media is a PhonePeer (the scripted RTP phone, in-process or in a netns),
 * so a test decides exactly what goes on the wire after the SIP BYE (RTCP BYE or not, socket closed
 * or not). Loopback UDP only; no retransmissions (a lost datagram fails the test loudly instead).
 * SIPp/baresip stay the phones where their own behaviour is the point.
 */
interface SipMessage {
  startLine: string;
  headers: Map<string, string[]>;
  body: string;
  source: { address: string; port: number };
}

interface Dialog {
  callId: string;
  localTag: string;
  remoteTag: string;
  localUri: string;
  remoteUri: string;
  remoteTarget: { host: string; port: number; uri: string };
  routeSet: string[];
  cseq: number;
}

const COMPACT: Record<string, string> = { v: 'via', f: 'from', t: 'to', i: 'call-id', m: 'contact', l: 'content-length', c: 'content-type' };

function parse(buf: Buffer, source: { address: string; port: number }): SipMessage | undefined {
  const text = buf.toString('utf8');
  const split = text.indexOf('\r\n\r\n');
  if (split < 0) return undefined;
  const [startLine, ...lines] = text.slice(0, split).split('\r\n');
  const headers = new Map<string, string[]>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    let name = line.slice(0, colon).trim().toLowerCase();
    name = COMPACT[name] ?? name;
    const value = line.slice(colon + 1).trim();
    headers.set(name, [...(headers.get(name) ?? []), value]);
  }
  return { startLine: startLine!, headers, body: text.slice(split + 4), source };
}

function tagOf(header: string | undefined): string {
  return /;\s*tag=([^;>\s]+)/i.exec(header ?? '')?.[1] ?? '';
}

function uriOf(header: string): string {
  const angle = /<([^>]+)>/.exec(header);
  return (angle ? angle[1]! : header.split(';')[0]!).trim();
}

function hostPortOf(uri: string): { host: string; port: number } {
  const m = /^sips?:(?:[^@]+@)?(\[[0-9a-fA-F:.]+\]|[^:;>]+)(?::(\d+))?/i.exec(uri);
  if (!m) throw new Error(`sip-phone: cannot route to ${uri}`);
  // an IPv6 literal is in brackets in a URI (RFC 3261 §25.1), not in a socket address
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2] ?? 5060) };
}

export class SipPhone {
  private socket: dgram.Socket | undefined;
  port = 0;
  private dialog: Dialog | undefined;
  private readonly pending = new Map<string, (m: SipMessage) => void>();
  private readonly waiters: { what: string; resolve: (m: SipMessage) => void }[] = [];
  /** Every request received, with arrival times (tests assert on BYE / re-INVITE timing). */
  readonly received: { method: string; at: number; message: SipMessage }[] = [];

  constructor(
    readonly media: PhonePeer,
    private readonly options: { address?: string; user?: string; autoAnswer?: boolean; ring?: boolean } = {},
  ) {}

  /**
   * `ring` phones: the INVITE ringing now (100 and 180 sent), until answerRinging() or rejectRinging(),
   * or its CANCEL (200, then 487 for the INVITE unless `ignoreCancel`)
   */
  private ringingInvite: SipMessage | undefined;
  /** `ring` phones: a CANCEL gets its 200 but the INVITE is left ringing (a 200 may still be sent: a late answer) */
  ignoreCancel = false;

  get ringing(): boolean {
    return this.ringingInvite !== undefined;
  }

  /** `ring` phones: answer the ringing INVITE (200 with our SDP); the media starts at the ACK */
  async answerRinging(): Promise<void> {
    const msg = this.ringingInvite;
    if (!msg) throw new Error('sip-phone: nothing rings');
    this.ringingInvite = undefined;
    await this.answer(msg);
  }

  /** `ring` phones: refuse the ringing INVITE with `status` */
  rejectRinging(status: number, reason: string): void {
    const msg = this.ringingInvite;
    if (!msg) throw new Error('sip-phone: nothing rings');
    this.ringingInvite = undefined;
    this.respond(msg, status, reason);
  }

  private get address(): string {
    return this.options.address ?? '127.0.0.1';
  }

  /** the address as a URI or Via host: an IPv6 literal in brackets */
  private get uriHost(): string {
    return this.address.includes(':') ? `[${this.address}]` : this.address;
  }

  private get user(): string {
    return this.options.user ?? 'phone';
  }

  get contact(): string {
    return `sip:${this.user}@${this.uriHost}:${this.port}`;
  }

  async start(): Promise<number> {
    const socket = dgram.createSocket(this.address.includes(':') ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, this.address, () => resolve());
    });
    socket.on('message', (buf, rinfo) => {
      const msg = parse(buf, { address: rinfo.address, port: rinfo.port });
      if (msg) void this.onMessage(msg);
    });
    this.socket = socket;
    this.port = (socket.address() as { port: number }).port;
    await this.media.start();
    return this.port;
  }

  /** Place a call to `target` (a SIP URI) through the SIP server at `via`. Resolves on 200 (after ACK) or rejects on a failure. */
  /** `password`: answer a 407 challenge to the INVITE (a phone registered as its user) with a second INVITE carrying Proxy-Authorization */
  async call(target: string, via: { host: string; port: number }, opts: { headers?: string[]; password?: string } = {}): Promise<void> {
    const callId = randomBytes(8).toString('hex');
    const localTag = randomBytes(4).toString('hex');
    const localUri = `sip:${this.user}@${this.uriHost}:${this.port}`;
    const sdp = await this.media.sdp();
    let branch = this.branch();
    let cseq = 1;
    const invite = (authorization?: string): string => this.request('INVITE', target, {
      via: this.via(branch),
      from: `<${localUri}>;tag=${localTag}`,
      to: `<${target}>`,
      callId,
      cseq: `${cseq} INVITE`,
      extra: [`Contact: <${this.contact}>`, 'Content-Type: application/sdp', 'Allow: INVITE, ACK, BYE, CANCEL, OPTIONS', ...(opts.headers ?? []),
        ...(authorization ? [`Proxy-Authorization: ${authorization}`] : [])],
      body: sdp,
    });
    this.outgoing = { target, via, branch, from: `<${localUri}>;tag=${localTag}`, callId, cseq };
    let final = await this.sendAndAwaitFinal(invite(), branch, via, 30_000).finally(() => (this.outgoing = undefined));
    const challenge = final.headers.get('proxy-authenticate')?.[0];
    if (opts.password !== undefined && final.startLine.startsWith('SIP/2.0 407') && challenge) {
      this.send(this.ackFor(final, target, branch), via);
      branch = this.branch();
      cseq = 2;
      const answer = digestAnswer(challenge, { user: this.user, password: opts.password, method: 'INVITE', uri: target });
      this.outgoing = { target, via, branch, from: `<${localUri}>;tag=${localTag}`, callId, cseq };
      final = await this.sendAndAwaitFinal(invite(answer), branch, via, 30_000).finally(() => (this.outgoing = undefined));
    }
    const status = Number(final.startLine.split(' ')[1]);
    if (status >= 300) {
      this.send(this.ackFor(final, target, branch), via);
      // status and headers for tests that check a refusal (e.g. 503 + Retry-After)
      throw Object.assign(new Error(`sip-phone: call failed ${final.startLine}`), { status, headers: final.headers });
    }
    const contact = uriOf(final.headers.get('contact')?.[0] ?? target);
    this.dialog = {
      callId,
      localTag,
      remoteTag: tagOf(final.headers.get('to')?.[0]),
      localUri,
      remoteUri: uriOf(final.headers.get('to')![0]!),
      remoteTarget: { ...hostPortOf(contact), uri: contact },
      routeSet: [...(final.headers.get('record-route') ?? [])].reverse(),
      cseq,
    };
    this.send(this.inDialog('ACK', `${cseq} ACK`), this.dialog.remoteTarget);
    await this.media.applyRemoteSdp(final.body);
    await this.media.startMedia();
  }

  /** the INVITE call() is waiting on (what its CANCEL repeats) */
  private outgoing: { target: string; via: { host: string; port: number }; branch: string; from: string; callId: string; cseq: number } | undefined;

  /** CANCEL the INVITE call() is waiting on (RFC 3261 9.1); resolves with the CANCEL's final status. call() then fails (487). */
  async cancel(): Promise<number> {
    const o = this.outgoing;
    if (!o) throw new Error('sip-phone: no INVITE to cancel');
    const text = this.request('CANCEL', o.target, { via: this.via(o.branch), from: o.from, to: `<${o.target}>`, callId: o.callId, cseq: `${o.cseq} CANCEL` });
    const final = await this.sendAndAwaitFinal(text, `${o.branch}:CANCEL`, o.via, 5000);
    return Number(final.startLine.split(' ')[1]);
  }

  /**
   * REGISTER this phone's Contact as its user at `domain` through the registrar at `via`, answering a
   * digest challenge with `password`; resolves once it got its 200.
   */
  async register(via: { host: string; port: number }, password: string, domain = 'ferry.local', expires = 600): Promise<void> {
    const uri = `sip:${domain}`;
    const aor = `<sip:${this.user}@${domain}>`;
    const callId = randomBytes(8).toString('hex');
    const tag = randomBytes(4).toString('hex');
    const send = (cseq: number, authorization?: string): Promise<SipMessage> => {
      const branch = this.branch();
      const text = this.request('REGISTER', uri, {
        via: this.via(branch), from: `${aor};tag=${tag}`, to: aor, callId, cseq: `${cseq} REGISTER`,
        extra: [`Contact: <${this.contact}>;expires=${expires}`, ...(authorization ? [`Authorization: ${authorization}`] : [])],
      });
      return this.sendAndAwaitFinal(text, branch, via, 5000);
    };
    let final = await send(1);
    const challenge = final.headers.get('www-authenticate')?.[0];
    if (final.startLine.startsWith('SIP/2.0 401') && challenge) final = await send(2, digestAnswer(challenge, { user: this.user, password, method: 'REGISTER', uri }));
    if (!final.startLine.startsWith('SIP/2.0 200')) throw new Error(`sip-phone: REGISTER answered ${final.startLine}`);
  }

  /** Status of the final response to our last BYE (200, or 481 when nobody knew the dialog). */
  lastHangupStatus: number | undefined;

  /**
   * Hang up: SIP BYE, resolves (with the BYE's send time) once it is answered. The media is left to the test.
   * `retransmit`: resend the BYE as a UDP client transaction does (RFC 3261 timer E: 500 ms doubling
   * to 4 s) until a final response, for a peer that may be down when it is first sent.
   */
  async hangup(opts: { retransmit?: boolean; timeoutMs?: number } = {}): Promise<number> {
    const d = this.requireDialog();
    d.cseq++;
    const branch = this.branch();
    const bye = this.inDialog('BYE', `${d.cseq} BYE`, branch);
    const sentAt = Date.now();
    let resend: NodeJS.Timeout | undefined;
    if (opts.retransmit) {
      let interval = 500;
      const again = (): void => {
        resend = setTimeout(() => {
          if (!this.pending.has(branch)) return;
          this.send(bye, d.remoteTarget);
          interval = Math.min(interval * 2, 4000);
          again();
        }, interval);
      };
      again();
    }
    const final = await this.sendAndAwaitFinal(bye, branch, d.remoteTarget, opts.timeoutMs ?? 10_000).finally(() => clearTimeout(resend));
    this.lastHangupStatus = Number(final.startLine.split(' ')[1]);
    this.dialog = undefined;
    return sentAt;
  }

  /** Hold (sendonly re-INVITE, the media keeps its RTCP), or resume (sendrecv). */
  async reinvite(direction: 'sendonly' | 'sendrecv' | 'inactive'): Promise<string> {
    const d = this.requireDialog();
    d.cseq++;
    const branch = this.branch();
    const sdp = await this.media.sdp(direction);
    const msg = this.inDialog('INVITE', `${d.cseq} INVITE`, branch, ['Content-Type: application/sdp', `Contact: <${this.contact}>`], sdp);
    const final = await this.sendAndAwaitFinal(msg, branch, d.remoteTarget, 10_000);
    this.send(this.inDialog('ACK', `${d.cseq} ACK`), d.remoteTarget);
    if (!final.startLine.includes(' 200 ')) throw new Error(`sip-phone: re-INVITE failed ${final.startLine}`);
    return final.body;
  }

  /** REFER in the call's dialog (a transfer, RFC 3515); resolves with the final status (202 when accepted). */
  async refer(referTo: string): Promise<number> {
    const d = this.requireDialog();
    d.cseq++;
    const branch = this.branch();
    const msg = this.inDialog('REFER', `${d.cseq} REFER`, branch, [`Refer-To: ${referTo}`, `Referred-By: <${d.localUri}>`, `Contact: <${this.contact}>`]);
    const final = await this.sendAndAwaitFinal(msg, branch, d.remoteTarget, 10_000);
    return Number(final.startLine.split(' ')[1]);
  }

  /** The call's dialog identifiers (what a Replaces header names), while in a call. */
  get dialogIds(): { callId: string; localTag: string; remoteTag: string } | undefined {
    return this.dialog ? { callId: this.dialog.callId, localTag: this.dialog.localTag, remoteTag: this.dialog.remoteTag } : undefined;
  }

  /** Resolves when a request with this method arrives (or has arrived after `since`). */
  waitForRequest(method: string, timeoutMs: number, since = 0): Promise<{ method: string; at: number; message: SipMessage }> {
    const seen = this.received.find((r) => r.method === method && r.at >= since);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w = {
        what: method,
        resolve: (m: SipMessage) => {
          clearTimeout(timer);
          resolve(this.received.find((r) => r.message === m)!);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`sip-phone: no ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** the dialog's remote target (the far end's Contact URI), while in a call */
  get remoteTargetUri(): string | undefined {
    return this.dialog?.remoteTarget.uri;
  }

  get inCall(): boolean {
    return this.dialog !== undefined;
  }

  async close(): Promise<void> {
    await this.media.close().catch(() => undefined);
    const s = this.socket;
    this.socket = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }

  private requireDialog(): Dialog {
    if (!this.dialog) throw new Error('sip-phone: no call');
    return this.dialog;
  }

  private branch(): string {
    return `z9hG4bK${randomBytes(6).toString('hex')}`;
  }

  private via(branch: string): string {
    return `SIP/2.0/UDP ${this.uriHost}:${this.port};rport;branch=${branch}`;
  }

  private request(
    method: string,
    uri: string,
    h: { via: string; from: string; to: string; callId: string; cseq: string; extra?: string[]; routes?: string[]; body?: string },
  ): string {
    const body = h.body ?? '';
    return [
      `${method} ${uri} SIP/2.0`,
      `Via: ${h.via}`,
      ...(h.routes ?? []).map((r) => `Route: ${r}`),
      'Max-Forwards: 70',
      `From: ${h.from}`,
      `To: ${h.to}`,
      `Call-ID: ${h.callId}`,
      `CSeq: ${h.cseq}`,
      ...(h.extra ?? []),
      'User-Agent: ferry-lifecycle-sip-phone',
      `Content-Length: ${Buffer.byteLength(body)}`,
      '',
      body,
    ].join('\r\n');
  }

  private inDialog(method: string, cseq: string, branch = this.branch(), extra: string[] = [], body = ''): string {
    const d = this.requireDialog();
    return this.request(method, d.remoteTarget.uri, {
      via: this.via(branch),
      from: `<${d.localUri}>;tag=${d.localTag}`,
      to: `<${d.remoteUri}>;tag=${d.remoteTag}`,
      callId: d.callId,
      cseq,
      routes: d.routeSet,
      extra,
      body,
    });
  }

  private ackFor(final: SipMessage, target: string, branch: string): string {
    return this.request('ACK', target, {
      via: this.via(branch),
      from: final.headers.get('from')![0]!,
      to: final.headers.get('to')![0]!,
      callId: final.headers.get('call-id')![0]!,
      cseq: `${final.headers.get('cseq')![0]!.split(' ')[0]} ACK`,
    });
  }

  private send(text: string, to: { host: string; port: number }): void {
    this.socket?.send(Buffer.from(text), to.port, to.host);
  }

  private sendAndAwaitFinal(text: string, branch: string, to: { host: string; port: number }, timeoutMs: number): Promise<SipMessage> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(branch);
        reject(new Error(`sip-phone: no final response within ${timeoutMs} ms to ${text.split('\r\n')[0]}`));
      }, timeoutMs);
      this.pending.set(branch, (m) => {
        const status = Number(m.startLine.split(' ')[1]);
        if (status < 200) return;
        clearTimeout(timer);
        this.pending.delete(branch);
        resolve(m);
      });
      this.send(text, to);
    });
  }

  private async onMessage(msg: SipMessage): Promise<void> {
    if (msg.startLine.startsWith('SIP/2.0')) {
      const branch = /branch=([^;,\s]+)/.exec(msg.headers.get('via')?.[0] ?? '')?.[1];
      // a CANCEL shares its INVITE's branch: its answer goes to cancel(), not call()
      const cancelled = /\sCANCEL$/i.test(msg.headers.get('cseq')?.[0] ?? '');
      if (branch) this.pending.get(cancelled ? `${branch}:CANCEL` : branch)?.(msg);
      return;
    }
    const method = msg.startLine.split(' ')[0]!;
    this.received.push({ method, at: Date.now(), message: msg });
    for (const w of [...this.waiters]) {
      if (w.what === method) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(msg);
      }
    }
    if (method === 'ACK') {
      if (this.dialog && !this.answeredMedia) {
        this.answeredMedia = true;
        await this.media.startMedia();
      }
      return;
    }
    if (method === 'BYE' || method === 'CANCEL') {
      this.respond(msg, 200, 'OK');
      if (method === 'BYE') this.dialog = undefined;
      const ringing = this.ringingInvite;
      if (method === 'CANCEL' && ringing && !this.ignoreCancel && ringing.headers.get('call-id')?.[0] === msg.headers.get('call-id')?.[0]) {
        this.ringingInvite = undefined;
        this.respond(ringing, 487, 'Request Terminated');
      }
      return;
    }
    if (method === 'INVITE') {
      await this.onInvite(msg);
      return;
    }
    this.respond(msg, 200, 'OK');
  }

  private answeredMedia = false;
  private readonly localTagForIncoming = randomBytes(4).toString('hex');

  private async onInvite(msg: SipMessage): Promise<void> {
    const toTag = tagOf(msg.headers.get('to')?.[0]);
    if (toTag && this.dialog) {
      // re-INVITE from the other side (hold/resume): answer with our current SDP, same direction rules.
      const dir = /a=(sendonly|inactive)/.exec(msg.body)?.[1];
      const answer = await this.media.sdp(dir === 'sendonly' ? 'recvonly' : dir === 'inactive' ? 'inactive' : 'sendrecv');
      // a re-INVITE may move our media elsewhere (a transfer re-wires the far end): send where it says
      if (msg.body) await this.media.applyRemoteSdp(msg.body);
      this.respond(msg, 200, 'OK', [`Contact: <${this.contact}>`, 'Content-Type: application/sdp'], answer);
      return;
    }
    this.respond(msg, 100, 'Trying');
    if (this.options.autoAnswer === false) {
      this.respond(msg, 486, 'Busy Here');
      return;
    }
    if (this.options.ring) {
      this.ringingInvite = msg;
      this.respond(msg, 180, 'Ringing');
      return;
    }
    this.respond(msg, 180, 'Ringing');
    await this.answer(msg);
  }

  /** answers an INVITE: the dialog, the far end's SDP applied, 200 with ours */
  private async answer(msg: SipMessage): Promise<void> {
    const contact = uriOf(msg.headers.get('contact')?.[0] ?? `sip:${msg.source.address}:${msg.source.port}`);
    this.dialog = {
      callId: msg.headers.get('call-id')![0]!,
      localTag: this.localTagForIncoming,
      remoteTag: tagOf(msg.headers.get('from')?.[0]),
      localUri: uriOf(msg.headers.get('to')![0]!),
      remoteUri: uriOf(msg.headers.get('from')![0]!),
      remoteTarget: { ...hostPortOf(contact), uri: contact },
      routeSet: [...(msg.headers.get('record-route') ?? [])],
      cseq: 100,
    };
    this.answeredMedia = false;
    await this.media.applyRemoteSdp(msg.body);
    this.respond(msg, 200, 'OK', [`Contact: <${this.contact}>`, 'Content-Type: application/sdp'], await this.media.sdp());
  }

  private respond(req: SipMessage, status: number, reason: string, extra: string[] = [], body = ''): void {
    const h = req.headers;
    let to = h.get('to')![0]!;
    if (status > 100 && !tagOf(to)) to = `${to};tag=${this.dialog?.localTag ?? this.localTagForIncoming}`;
    const vias = h.get('via') ?? [];
    const text = [
      `SIP/2.0 ${status} ${reason}`,
      ...vias.map((v) => `Via: ${v}`),
      ...(h.get('record-route') ?? []).map((r) => `Record-Route: ${r}`),
      `From: ${h.get('from')![0]}`,
      `To: ${to}`,
      `Call-ID: ${h.get('call-id')![0]}`,
      `CSeq: ${h.get('cseq')![0]}`,
      ...extra,
      `Content-Length: ${Buffer.byteLength(body)}`,
      '',
      body,
    ].join('\r\n');
    // Responses go back where the request came from (rport behaviour; fine on loopback).
    this.socket?.send(Buffer.from(text), req.source.port, req.source.address);
  }
}
