import dgram from 'node:dgram';
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';

/**
 * A scripted SIP client for authentication tests: sends REGISTER / INVITE text over a real UDP
 * socket or TCP connection (optionally from a chosen local port), returns the final response of
 * each request, and computes digest answers the way phones and JsSIP do. Requests are sent once
 * (loopback; a lost datagram fails the test loudly).
 */
export interface SipResponse {
  status: number;
  text: string;
  header(name: string): string | undefined;
}

function parseResponse(text: string): SipResponse | undefined {
  const head = text.split('\r\n\r\n')[0]!.split('\r\n');
  const m = /^SIP\/2\.0 (\d{3})/.exec(head[0] ?? '');
  if (!m) return undefined;
  return {
    status: Number(m[1]),
    text,
    header(name: string) {
      const l = head.find((h) => h.toLowerCase().startsWith(`${name.toLowerCase()}:`));
      return l?.slice(l.indexOf(':') + 1).trim();
    },
  };
}

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

/** the Authorization value a client computes for `challenge` (qop=auth when offered) */
export function digestAnswer(challenge: string, o: { user: string; password: string; method: string; uri: string; nc?: number; cnonce?: string }): string {
  const realm = /realm="([^"]+)"/.exec(challenge)![1]!;
  const nonce = /nonce="([^"]+)"/.exec(challenge)![1]!;
  const ha1 = md5(`${o.user}:${realm}:${o.password}`);
  const ha2 = md5(`${o.method}:${o.uri}`);
  if (!/qop="?auth/.test(challenge)) return `Digest username="${o.user}", realm="${realm}", nonce="${nonce}", uri="${o.uri}", response="${md5(`${ha1}:${nonce}:${ha2}`)}", algorithm=MD5`;
  const nc = (o.nc ?? 1).toString(16).padStart(8, '0');
  const cnonce = o.cnonce ?? randomBytes(4).toString('hex');
  const response = md5(`${ha1}:${nonce}:${nc}:${cnonce}:auth:${ha2}`);
  return `Digest username="${o.user}", realm="${realm}", nonce="${nonce}", uri="${o.uri}", response="${response}", algorithm=MD5, qop=auth, nc=${nc}, cnonce="${cnonce}"`;
}

export interface RequestOptions {
  method: 'REGISTER' | 'INVITE';
  uri: string;
  /** user part of From (and To for REGISTER) */
  fromUser: string;
  toUri?: string;
  contact?: string;
  /** Authorization (REGISTER) or Proxy-Authorization (INVITE) value */
  authorization?: string;
  callId?: string;
  cseq?: number;
  expires?: number;
  /** the INVITE's SDP (default: a plain G.711 offer on 127.0.0.1) */
  body?: string;
}

const SDP = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n';

export class SipRawClient {
  private udp: dgram.Socket | undefined;
  private tcp: net.Socket | undefined;
  private tcpBuffer = '';
  private readonly pending = new Map<string, { resolve: (r: SipResponse) => void; timer: NodeJS.Timeout; ack?: (r: SipResponse) => string }>();
  localPort = 0;

  private constructor(readonly transport: 'udp' | 'tcp', private readonly server: { host: string; port: number }) {}

  /** a client on its own socket; `localPort` 0 = any */
  static async open(transport: 'udp' | 'tcp', serverPort: number, localPort = 0): Promise<SipRawClient> {
    const c = new SipRawClient(transport, { host: '127.0.0.1', port: serverPort });
    if (transport === 'udp') {
      const s = dgram.createSocket('udp4');
      s.on('message', (d) => c.onMessage(d.toString('utf8')));
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.bind(localPort, '127.0.0.1', () => resolve());
      });
      c.udp = s;
      c.localPort = s.address().port;
    } else {
      const s = net.connect({ host: '127.0.0.1', port: serverPort, localAddress: '127.0.0.1', ...(localPort ? { localPort } : {}) });
      await new Promise<void>((resolve, reject) => {
        s.once('connect', resolve);
        s.once('error', reject);
      });
      s.on('error', () => {});
      s.on('data', (d) => c.onStream(d.toString('utf8')));
      c.tcp = s;
      c.localPort = s.localPort!;
    }
    return c;
  }

  private onStream(chunk: string): void {
    this.tcpBuffer += chunk;
    for (;;) {
      const end = this.tcpBuffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const len = Number(/\r\n(?:Content-Length|l)\s*:\s*(\d+)/i.exec(this.tcpBuffer.slice(0, end))?.[1] ?? 0);
      if (this.tcpBuffer.length < end + 4 + len) return;
      this.onMessage(this.tcpBuffer.slice(0, end + 4 + len));
      this.tcpBuffer = this.tcpBuffer.slice(end + 4 + len);
    }
  }

  private onMessage(text: string): void {
    const r = parseResponse(text);
    if (!r || r.status < 200) return;
    const callId = r.header('Call-ID') ?? r.header('i') ?? '';
    const cseq = r.header('CSeq') ?? '';
    const p = this.pending.get(`${callId} ${cseq}`);
    if (!p) return;
    this.pending.delete(`${callId} ${cseq}`);
    clearTimeout(p.timer);
    if (p.ack && r.status >= 300) this.send(p.ack(r));
    p.resolve(r);
  }

  /** sends one request and resolves with its final response */
  request(o: RequestOptions, timeoutMs = 10_000): Promise<SipResponse> {
    const callId = o.callId ?? randomBytes(8).toString('hex');
    const cseq = `${o.cseq ?? 1} ${o.method}`;
    const via = this.transport === 'udp' ? 'UDP' : 'TCP';
    const host = `127.0.0.1:${this.localPort}`;
    const body = o.body ?? (o.method === 'INVITE' ? SDP : '');
    const viaLine = `Via: SIP/2.0/${via} ${host};branch=z9hG4bK${randomBytes(6).toString('hex')};rport`;
    const fromLine = `From: <sip:${o.fromUser}@ferry.local>;tag=${randomBytes(4).toString('hex')}`;
    const toUri = o.toUri ?? (o.method === 'REGISTER' ? `sip:${o.fromUser}@ferry.local` : o.uri);
    // a non-2xx final response to an INVITE is acknowledged in its transaction (RFC 3261 17.1.1.3)
    const ack = o.method === 'INVITE'
      ? (r: SipResponse): string => [`ACK ${o.uri} SIP/2.0`, viaLine, 'Max-Forwards: 70', fromLine, `To: ${r.header('To') ?? `<${toUri}>`}`, `Call-ID: ${callId}`, `CSeq: ${o.cseq ?? 1} ACK`, 'Content-Length: 0', '', ''].join('\r\n')
      : undefined;
    const lines = [
      `${o.method} ${o.uri} SIP/2.0`,
      viaLine,
      'Max-Forwards: 70',
      fromLine,
      `To: <${toUri}>`,
      `Call-ID: ${callId}`,
      `CSeq: ${cseq}`,
      `Contact: ${o.contact ?? `<sip:${o.fromUser}@${host}${this.transport === 'tcp' ? ';transport=tcp' : ''}>`}`,
      ...(o.expires !== undefined ? [`Expires: ${o.expires}`] : []),
      ...(o.authorization ? [`${o.method === 'REGISTER' ? 'Authorization' : 'Proxy-Authorization'}: ${o.authorization}`] : []),
      ...(body ? ['Content-Type: application/sdp'] : []),
      `Content-Length: ${Buffer.byteLength(body)}`,
      '',
      body,
    ];
    const text = lines.join('\r\n');
    return new Promise<SipResponse>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(`${callId} ${cseq}`);
        reject(new Error(`no final response to ${o.method} ${o.uri} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(`${callId} ${cseq}`, { resolve, timer, ...(ack ? { ack } : {}) });
      this.send(text);
    });
  }

  private send(text: string): void {
    if (this.udp) this.udp.send(Buffer.from(text), this.server.port, this.server.host);
    else this.tcp!.write(text);
  }

  close(): void {
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    try {
      this.udp?.close();
    } catch {
      /* closed */
    }
    this.tcp?.destroy();
  }
}
