import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';

export interface ReceivedSip {
  text: string;
  startLine: string;
  header(name: string): string | undefined;
}

function parse(text: string): ReceivedSip {
  const head = text.split('\r\n\r\n')[0].split('\r\n');
  return {
    text,
    startLine: head[0],
    header(name: string) {
      const l = head.find((h) => h.toLowerCase().startsWith(`${name.toLowerCase()}:`));
      return l?.slice(l.indexOf(':') + 1).trim();
    },
  };
}

/** A scripted SIP phone on a real UDP socket: sends raw text, records everything it receives. */
export class SipUdpPhone {
  readonly received: ReceivedSip[] = [];
  private waiters: Array<() => void> = [];
  readonly socket = dgram.createSocket('udp4');
  port = 0;
  autoAnswer: ((m: ReceivedSip) => string | undefined) | undefined;

  async start(): Promise<void> {
    this.socket.on('message', (d, rinfo) => {
      const m = parse(d.toString('utf8'));
      this.received.push(m);
      const reply = this.autoAnswer?.(m);
      if (reply) this.socket.send(Buffer.from(reply, 'utf8'), rinfo.port, rinfo.address);
      for (const w of this.waiters.splice(0)) w();
    });
    await new Promise<void>((r) => this.socket.bind(0, '127.0.0.1', () => r()));
    this.port = this.socket.address().port;
  }

  target = { host: '127.0.0.1', port: 0 };

  /** A started phone (bound on 127.0.0.1) that sends to 127.0.0.1:targetPort. */
  static async open(targetPort: number): Promise<SipUdpPhone> {
    const phone = new SipUdpPhone();
    await phone.start();
    phone.target.port = targetPort;
    return phone;
  }

  sendRaw(text: string): void {
    this.socket.send(Buffer.from(text, 'utf8'), this.target.port, this.target.host);
  }

  count(pred: (m: ReceivedSip) => boolean): number {
    return this.received.filter(pred).length;
  }

  async waitFor(pred: (m: ReceivedSip) => boolean, timeoutMs = 10_000): Promise<ReceivedSip> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.received.find(pred);
      if (m) return m;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting; got: ${this.received.map((r) => r.startLine).join(' / ')}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  close(): void {
    try { this.socket.close(); } catch { /* already closed */ }
  }
}

export function sipToken(): string {
  return randomBytes(6).toString('hex');
}

export const TEST_SDP = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n';

/** An INVITE from this phone with a fresh Call-ID/branch/tag. */
export function inviteText(phone: SipUdpPhone, ids: { callId: string; fromTag: string; branch: string }, toPort: number): string {
  const body = TEST_SDP;
  return [
    `INVITE sip:service@127.0.0.1:${toPort} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${phone.port};branch=z9hG4bK${ids.branch};rport`,
    'Max-Forwards: 70',
    `From: <sip:phone@127.0.0.1:${phone.port}>;tag=${ids.fromTag}`,
    `To: <sip:service@127.0.0.1:${toPort}>`,
    `Call-ID: ${ids.callId}`,
    'CSeq: 1 INVITE',
    `Contact: <sip:phone@127.0.0.1:${phone.port}>`,
    'Content-Type: application/sdp',
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ].join('\r\n');
}
