import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import { WebphoneMedia } from './webphone-media';
import { buildMessage, digestAnswer, header, methodOf, parseSip, statusOf, tagOf, token, uriOf, type SipText } from './sip-text';

/**
 * A webphone without a browser, for the soak: the SIP side of a JsSIP page (SIP over WebSocket,
 * RFC 7118, digest REGISTER and INVITE) with a werift peer connection per call for the media
 * (webphone-media.ts). One call at a time; incoming calls are answered after `answerDelayMs`;
 * re-INVITEs (hold/resume relayed by the gateway) are answered with the mirrored direction; a BYE
 * from the far end is answered with 200 and recorded with its arrival time.
 */
export interface WebphoneCall {
  callId: string;
  role: 'caller' | 'callee';
  localTag: string;
  remoteTag: string;
  localUri: string;
  remoteUri: string;
  remoteTarget: string;
  routeSet: string[];
  cseq: number;
  media: WebphoneMedia;
  answeredAt?: number;
  /** the far end's BYE arrived (we were told) */
  remoteByeAt?: number;
  remoteByeReason?: string;
  /** we hung up */
  localByeAt?: number;
  localByeStatus?: number;
}

interface Pending {
  resolve: (m: SipText) => void;
  timer: NodeJS.Timeout;
}

export interface WsWebphoneEvents {
  incoming: [call: WebphoneCall];
  'remote-bye': [call: WebphoneCall];
}

export class WsWebphone extends EventEmitter<WsWebphoneEvents> {
  private readonly host = `${token(4)}.invalid`;
  private readonly pending = new Map<string, Pending>();
  private regCseq = 0;
  private readonly regCallId = token(8);
  call: WebphoneCall | undefined;
  /** the last call the far end ended with a BYE */
  lastEnded: WebphoneCall | undefined;
  answerDelayMs = 200;

  /** every time ferry sip closed our WebSocket (we reconnect and register again, as JsSIP does) */
  readonly disconnects: { at: number; code: number; reason: string; inCall: boolean }[] = [];
  private closing = false;
  private registeredExpires = 3600;

  private constructor(
    private ws: WebSocket,
    private readonly url: string,
    readonly user: string,
    private readonly password: string,
    private readonly domain: string,
  ) {
    super();
    this.attach(ws);
  }

  static async connect(url: string, user: string, password: string, domain: string): Promise<WsWebphone> {
    return new WsWebphone(await WsWebphone.open(url), url, user, password, domain);
  }

  private static async open(url: string): Promise<WebSocket> {
    const ws = new WebSocket(url, 'sip');
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.on('error', () => undefined);
    return ws;
  }

  private attach(ws: WebSocket): void {
    ws.on('message', (data) => {
      const m = parseSip(data.toString());
      if (m) this.onMessage(m);
    });
    ws.once('close', (code, reason) => {
      if (this.closing || ws !== this.ws) return;
      this.disconnects.push({ at: Date.now(), code, reason: reason.toString(), inCall: this.call !== undefined });
      void this.reconnect();
    });
  }

  private async reconnect(): Promise<void> {
    for (let attempt = 0; !this.closing; attempt++) {
      await new Promise((r) => setTimeout(r, Math.min(2000, 200 * 2 ** attempt)));
      try {
        this.ws = await WsWebphone.open(this.url);
        this.attach(this.ws);
        await this.register(this.registeredExpires);
        return;
      } catch {
        // ferry sip not reachable yet: try again
      }
    }
  }

  get aor(): string {
    return `sip:${this.user}@${this.domain}`;
  }

  private get contact(): string {
    return `<sip:${this.user}@${this.host};transport=ws>`;
  }

  /** REGISTER with digest; resolves on 200. */
  async register(expires = 3600): Promise<void> {
    this.registeredExpires = expires;
    const uri = `sip:${this.domain}`;
    const build = (auth?: string): { text: string; branch: string } => {
      const branch = `z9hG4bK${token()}`;
      this.regCseq++;
      const headers: [string, string][] = [
        ['Via', `SIP/2.0/WS ${this.host};branch=${branch}`],
        ['Max-Forwards', '70'],
        ['From', `<${this.aor}>;tag=${this.regCallId.slice(0, 8)}`],
        ['To', `<${this.aor}>`],
        ['Call-ID', this.regCallId],
        ['CSeq', `${this.regCseq} REGISTER`],
        ['Contact', `${this.contact};expires=${expires}`],
        ['Expires', String(expires)],
      ];
      if (auth) headers.push(['Authorization', auth]);
      return { text: buildMessage(`REGISTER ${uri} SIP/2.0`, headers), branch };
    };
    let req = build();
    let res = await this.transact(req.text, req.branch, 10_000);
    if (statusOf(res) === 401) {
      req = build(digestAnswer(header(res, 'www-authenticate') ?? '', { user: this.user, password: this.password }, 'REGISTER', uri));
      res = await this.transact(req.text, req.branch, 10_000);
    }
    if (statusOf(res) !== 200) throw new Error(`${this.user}: REGISTER ${res.startLine}`);
  }

  /** Place a call to `target` (user part or number); resolves once answered and ACKed. */
  async dial(target: string, timeoutMs: number): Promise<WebphoneCall> {
    if (this.call) throw new Error(`${this.user}: already in a call`);
    const media = new WebphoneMedia();
    const offer = await media.offer();
    const requestUri = `sip:${target}@${this.domain}`;
    const call: WebphoneCall = {
      callId: token(10), role: 'caller', localTag: token(4), remoteTag: '', localUri: this.aor, remoteUri: requestUri,
      remoteTarget: requestUri, routeSet: [], cseq: 1, media,
    };
    this.call = call;
    try {
      const invite = (auth?: string): { text: string; branch: string } => {
        const branch = `z9hG4bK${token()}`;
        const headers: [string, string][] = [
          ['Via', `SIP/2.0/WS ${this.host};branch=${branch}`],
          ['Max-Forwards', '70'],
          ['From', `<${this.aor}>;tag=${call.localTag}`],
          ['To', `<${requestUri}>`],
          ['Call-ID', call.callId],
          ['CSeq', `${call.cseq} INVITE`],
          ['Contact', this.contact],
          ['Allow', 'INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO'],
          ['Content-Type', 'application/sdp'],
        ];
        if (auth) headers.push(['Proxy-Authorization', auth]);
        return { text: buildMessage(`INVITE ${requestUri} SIP/2.0`, headers, offer), branch };
      };
      let req = invite();
      let res = await this.transact(req.text, req.branch, timeoutMs);
      if (statusOf(res) === 407) {
        this.ackNon2xx(res, requestUri, req.branch);
        call.cseq++;
        req = invite(digestAnswer(header(res, 'proxy-authenticate') ?? '', { user: this.user, password: this.password }, 'INVITE', requestUri));
        res = await this.transact(req.text, req.branch, timeoutMs);
      }
      const status = statusOf(res);
      if (status !== 200) {
        if (status >= 300) this.ackNon2xx(res, requestUri, req.branch);
        throw Object.assign(new Error(`${this.user}: INVITE ${target}: ${res.startLine}`), { status });
      }
      call.remoteTag = tagOf(header(res, 'to'));
      call.remoteTarget = uriOf(header(res, 'contact') ?? requestUri);
      call.routeSet = [...(res.headers.get('record-route') ?? [])].reverse();
      this.sendInDialog(call, 'ACK', `${call.cseq} ACK`);
      call.answeredAt = Date.now();
      await media.acceptAnswer(res.body);
      media.startSending();
      return call;
    } catch (err) {
      this.call = undefined;
      await media.close();
      throw err;
    }
  }

  /** Hang up the current call with BYE; resolves with the response status (0 when none came). */
  async hangup(timeoutMs = 5000): Promise<number> {
    const call = this.call;
    if (!call) return 0;
    this.call = undefined;
    call.localByeAt = Date.now();
    call.cseq++;
    const branch = `z9hG4bK${token()}`;
    const text = this.inDialogText(call, 'BYE', `${call.cseq} BYE`, branch);
    await call.media.close();
    try {
      const res = await this.transact(text, branch, timeoutMs);
      call.localByeStatus = statusOf(res);
    } catch {
      call.localByeStatus = 0;
    }
    return call.localByeStatus;
  }

  /** Forget the current call without telling anyone (its far end already ended it). */
  async drop(): Promise<void> {
    const call = this.call;
    this.call = undefined;
    await call?.media.close();
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.drop();
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    this.ws.close();
  }

  // ---------------------------------------------------------------- wire

  private send(text: string): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(text);
  }

  private transact(text: string, branch: string, timeoutMs: number): Promise<SipText> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(branch);
        reject(new Error(`${this.user}: no final response within ${timeoutMs} ms to ${text.split('\r\n')[0]}`));
      }, timeoutMs);
      this.pending.set(branch, { resolve, timer });
      this.send(text);
    });
  }

  private inDialogText(call: WebphoneCall, method: string, cseq: string, branch = `z9hG4bK${token()}`, extra: [string, string][] = [], body = ''): string {
    return buildMessage(`${method} ${call.remoteTarget} SIP/2.0`, [
      ['Via', `SIP/2.0/WS ${this.host};branch=${branch}`],
      ...call.routeSet.map((r): [string, string] => ['Route', r]),
      ['Max-Forwards', '70'],
      ['From', `<${call.localUri}>;tag=${call.localTag}`],
      ['To', `<${call.remoteUri}>${call.remoteTag ? `;tag=${call.remoteTag}` : ''}`],
      ['Call-ID', call.callId],
      ['CSeq', cseq],
      ...extra,
    ], body);
  }

  private sendInDialog(call: WebphoneCall, method: string, cseq: string): void {
    this.send(this.inDialogText(call, method, cseq));
  }

  private ackNon2xx(res: SipText, requestUri: string, branch: string): void {
    this.send(buildMessage(`ACK ${requestUri} SIP/2.0`, [
      ['Via', `SIP/2.0/WS ${this.host};branch=${branch}`],
      ['Max-Forwards', '70'],
      ['From', header(res, 'from')!],
      ['To', header(res, 'to')!],
      ['Call-ID', header(res, 'call-id')!],
      ['CSeq', `${(header(res, 'cseq') ?? '1').split(' ')[0]} ACK`],
    ]));
  }

  private respond(req: SipText, status: number, reason: string, extra: [string, string][] = [], body = '', toTag?: string): void {
    let to = header(req, 'to') ?? '';
    if (status > 100 && !tagOf(to) && toTag) to = `${to};tag=${toTag}`;
    this.send(buildMessage(`SIP/2.0 ${status} ${reason}`, [
      ...(req.headers.get('via') ?? []).map((v): [string, string] => ['Via', v]),
      ...(req.headers.get('record-route') ?? []).map((r): [string, string] => ['Record-Route', r]),
      ['From', header(req, 'from') ?? ''],
      ['To', to],
      ['Call-ID', header(req, 'call-id') ?? ''],
      ['CSeq', header(req, 'cseq') ?? ''],
      ...extra,
    ], body));
  }

  private onMessage(m: SipText): void {
    if (statusOf(m) > 0) {
      const branch = /branch=([^;,\s]+)/.exec(header(m, 'via') ?? '')?.[1];
      const p = branch ? this.pending.get(branch) : undefined;
      if (p && statusOf(m) >= 200) {
        clearTimeout(p.timer);
        this.pending.delete(branch!);
        p.resolve(m);
      } else if (!p && statusOf(m) === 200 && methodOf(m) === 'INVITE') {
        // a retransmitted 2xx: ACK it again
        const call = this.call;
        if (call && call.callId === header(m, 'call-id')) this.sendInDialog(call, 'ACK', `${(header(m, 'cseq') ?? '1').split(' ')[0]} ACK`);
      }
      return;
    }
    const method = methodOf(m);
    const call = this.call && this.call.callId === header(m, 'call-id') ? this.call : undefined;
    switch (method) {
      case 'INVITE':
        if (call && tagOf(header(m, 'to'))) void this.onReinvite(call, m);
        else void this.onInvite(m);
        return;
      case 'ACK':
        return;
      case 'BYE':
        this.respond(m, call ? 200 : 481, call ? 'OK' : 'Call/Transaction Does Not Exist');
        if (call) {
          call.remoteByeAt = Date.now();
          call.remoteByeReason = header(m, 'reason');
          this.call = undefined;
          this.lastEnded = call;
          void call.media.close();
          this.emit('remote-bye', call);
        }
        return;
      case 'CANCEL':
        this.respond(m, 200, 'OK');
        if (call && !call.answeredAt) this.cancelled.add(call.callId);
        return;
      default:
        this.respond(m, call || method === 'OPTIONS' ? 200 : 481, call || method === 'OPTIONS' ? 'OK' : 'Call/Transaction Does Not Exist');
    }
  }

  private readonly cancelled = new Set<string>();

  private async onInvite(m: SipText): Promise<void> {
    if (this.call) {
      this.respond(m, 486, 'Busy Here', [], '', token(4));
      return;
    }
    const media = new WebphoneMedia();
    const call: WebphoneCall = {
      callId: header(m, 'call-id') ?? '', role: 'callee', localTag: token(4), remoteTag: tagOf(header(m, 'from')),
      localUri: uriOf(header(m, 'to') ?? this.aor), remoteUri: uriOf(header(m, 'from') ?? ''),
      remoteTarget: uriOf(header(m, 'contact') ?? ''), routeSet: [...(m.headers.get('record-route') ?? [])], cseq: 100, media,
    };
    this.call = call;
    this.respond(m, 180, 'Ringing', [['Contact', this.contact]], '', call.localTag);
    this.emit('incoming', call);
    try {
      const answer = await media.answer(m.body);
      await new Promise((r) => setTimeout(r, this.answerDelayMs));
      if (this.cancelled.delete(call.callId) || this.call !== call) {
        this.respond(m, 487, 'Request Terminated', [], '', call.localTag);
        if (this.call === call) this.call = undefined;
        await media.close();
        return;
      }
      this.respond(m, 200, 'OK', [['Contact', this.contact], ['Content-Type', 'application/sdp']], answer, call.localTag);
      call.answeredAt = Date.now();
      media.startSending();
    } catch {
      this.respond(m, 488, 'Not Acceptable Here', [], '', call.localTag);
      if (this.call === call) this.call = undefined;
      await media.close();
    }
  }

  private async onReinvite(call: WebphoneCall, m: SipText): Promise<void> {
    const offered = /a=(sendonly|recvonly|inactive|sendrecv)/.exec(m.body)?.[1] ?? 'sendrecv';
    const mine = offered === 'sendonly' ? 'recvonly' : offered === 'recvonly' ? 'sendonly' : offered;
    const base = call.media.localSdp();
    const version = ++this.sdpVersion;
    const sdp = base
      .replace(/a=(sendrecv|sendonly|recvonly|inactive)/g, `a=${mine}`)
      .replace(/^(o=\S+ \S+ )(\d+)/m, (_s, pre: string, v: string) => `${pre}${Number(v) + version}`);
    this.respond(m, 200, 'OK', [['Contact', this.contact], ['Content-Type', 'application/sdp']], sdp, call.localTag);
  }

  private sdpVersion = 0;
}
