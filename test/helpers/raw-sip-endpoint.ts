import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { digestAnswer } from './sip-raw-client';
import { pollUntil } from './wait-for';

/**
 * A hand-written SIP endpoint for tests that must choose exactly what a phone sends (its Contact, its
 * source address): a UDP socket or a TCP connection from a chosen local address to ferry sip on
 * 127.0.0.1, keeping every message it receives. It registers with digest, and can call a user.
 */

export interface RawSipMessage {
  text: string;
  start: string;
  header(name: string): string | undefined;
}

export function parseRawSip(text: string): RawSipMessage {
  const head = text.split('\r\n\r\n')[0]!.split('\r\n');
  return {
    text,
    start: head[0] ?? '',
    header(name) {
      const l = head.find((h) => h.toLowerCase().startsWith(`${name.toLowerCase()}:`));
      return l?.slice(l.indexOf(':') + 1).trim();
    },
  };
}

export interface RawSipEndpointOptions {
  /** the SIP domain of From, To and the REGISTER's Request-URI */
  domain: string;
  /** answer every INVITE received `486 Busy Here` (a phone that is there but busy) */
  busy?: boolean;
}

export class RawSipEndpoint {
  readonly received: RawSipMessage[] = [];
  private buffer = '';
  private constructor(
    readonly transport: 'udp' | 'tcp',
    readonly address: string,
    private readonly opts: RawSipEndpointOptions,
    private readonly sendText: (t: string) => void,
    readonly port: () => number,
    readonly close: () => void,
    readonly closed: () => boolean,
  ) {}

  static async udp(address: string, serverPort: number, opts: RawSipEndpointOptions): Promise<RawSipEndpoint> {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, address, () => r()));
    let closed = false;
    const close = (): void => {
      if (closed) return;
      closed = true;
      s.close();
    };
    const e = new RawSipEndpoint('udp', address, opts, (t) => s.send(Buffer.from(t), serverPort, '127.0.0.1'), () => s.address().port, close, () => closed);
    s.on('message', (d) => e.onMessage(parseRawSip(d.toString('utf8'))));
    return e;
  }

  static async tcp(address: string, serverPort: number, opts: RawSipEndpointOptions): Promise<RawSipEndpoint> {
    const s = net.connect({ host: '127.0.0.1', port: serverPort, localAddress: address });
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve);
      s.once('error', reject);
    });
    s.on('error', () => {});
    let closed = false;
    s.once('close', () => {
      closed = true;
    });
    const port = s.localPort!;
    const e = new RawSipEndpoint('tcp', address, opts, (t) => s.write(t), () => port, () => s.destroy(), () => closed);
    s.on('data', (d) => e.onStream(d.toString('utf8')));
    return e;
  }

  private onStream(chunk: string): void {
    this.buffer += chunk;
    for (;;) {
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const len = Number(/\r\n(?:Content-Length|l)\s*:\s*(\d+)/i.exec(this.buffer.slice(0, end))?.[1] ?? 0);
      if (this.buffer.length < end + 4 + len) return;
      this.onMessage(parseRawSip(this.buffer.slice(0, end + 4 + len)));
      this.buffer = this.buffer.slice(end + 4 + len);
    }
  }

  private onMessage(m: RawSipMessage): void {
    this.received.push(m);
    // a busy phone: every INVITE it gets is answered 486 (ferry sip ACKs it)
    if (this.opts.busy && m.start.startsWith('INVITE ')) this.answer(m, 486, 'Busy Here');
  }

  private answer(req: RawSipMessage, status: number, reason: string): void {
    const to = req.header('To') ?? '';
    this.send([
      `SIP/2.0 ${status} ${reason}`,
      ...req.text.split('\r\n\r\n')[0]!.split('\r\n').filter((l) => /^via\s*:/i.test(l)),
      `From: ${req.header('From')}`,
      `To: ${/;tag=/.test(to) ? to : `${to};tag=${randomBytes(4).toString('hex')}`}`,
      `Call-ID: ${req.header('Call-ID')}`,
      `CSeq: ${req.header('CSeq')}`,
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'));
  }

  send(text: string): void {
    this.sendText(text);
  }

  /** a request out of dialog; `auth` is the Authorization / Proxy-Authorization value */
  request(o: { method: 'REGISTER' | 'INVITE'; uri: string; user: string; to: string; contact: string; callId: string; cseq: number; auth?: string; body?: string }): void {
    const body = o.body ?? '';
    this.send([
      `${o.method} ${o.uri} SIP/2.0`,
      `Via: SIP/2.0/${this.transport.toUpperCase()} ${this.address}:${this.port()};branch=z9hG4bK${randomBytes(6).toString('hex')};rport`,
      'Max-Forwards: 70',
      `From: <sip:${o.user}@${this.opts.domain}>;tag=${randomBytes(4).toString('hex')}`,
      `To: <${o.to}>`,
      `Call-ID: ${o.callId}`,
      `CSeq: ${o.cseq} ${o.method}`,
      `Contact: <${o.contact}>`,
      ...(o.method === 'REGISTER' ? ['Expires: 600'] : []),
      ...(o.auth ? [`${o.method === 'REGISTER' ? 'Authorization' : 'Proxy-Authorization'}: ${o.auth}`] : []),
      ...(body ? ['Content-Type: application/sdp'] : []),
      `Content-Length: ${Buffer.byteLength(body)}`,
      '',
      body,
    ].join('\r\n'));
  }

  async response(callId: string, cseq: number, timeoutMs = 10_000): Promise<RawSipMessage> {
    return pollUntil(() => this.received.find((m) => m.start.startsWith('SIP/2.0 ') && !/^SIP\/2\.0 1\d\d/.test(m.start) && m.header('Call-ID') === callId && m.header('CSeq')?.startsWith(`${cseq} `)), { timeoutMs, what: `final response to ${callId} ${cseq}` });
  }

  /** REGISTER `user` with `contact`, answering the 401 challenge; resolves with the final status line */
  async register(user: string, password: string, contact: string): Promise<string> {
    const callId = randomBytes(8).toString('hex');
    const uri = `sip:${this.opts.domain}`;
    this.request({ method: 'REGISTER', uri, user, to: `sip:${user}@${this.opts.domain}`, contact, callId, cseq: 1 });
    const challenge = await this.response(callId, 1);
    assert.match(challenge.start, /^SIP\/2\.0 401/);
    const auth = digestAnswer(challenge.header('WWW-Authenticate')!, { user, password, method: 'REGISTER', uri });
    this.request({ method: 'REGISTER', uri, user, to: `sip:${user}@${this.opts.domain}`, contact, callId, cseq: 2, auth });
    return (await this.response(callId, 2)).start;
  }

  /** `as` calls `user`, answering the 407 challenge; resolves with the final response's status line (ACKed) */
  async call(user: string, as: { user: string; password: string }, timeoutMs = 20_000): Promise<string> {
    const callId = randomBytes(8).toString('hex');
    const uri = `sip:${user}@${this.opts.domain}`;
    const sdp = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n';
    const invite = { method: 'INVITE' as const, uri, user: as.user, to: uri, contact: `sip:${as.user}@127.0.0.1:${this.port()}`, callId, body: sdp };
    this.request({ ...invite, cseq: 1 });
    const challenge = await this.response(callId, 1);
    assert.match(challenge.start, /^SIP\/2\.0 407/);
    this.ack(uri, challenge, 1);
    const auth = digestAnswer(challenge.header('Proxy-Authenticate')!, { user: as.user, password: as.password, method: 'INVITE', uri });
    this.request({ ...invite, cseq: 2, auth });
    const final = await this.response(callId, 2, timeoutMs);
    this.ack(uri, final, 2);
    return final.start;
  }

  private ack(uri: string, res: RawSipMessage, cseq: number): void {
    this.send(`ACK ${uri} SIP/2.0\r\nVia: ${res.header('Via')}\r\nMax-Forwards: 70\r\nFrom: ${res.header('From')}\r\nTo: ${res.header('To')}\r\nCall-ID: ${res.header('Call-ID')}\r\nCSeq: ${cseq} ACK\r\nContent-Length: 0\r\n\r\n`);
  }
}
