import dgram from 'node:dgram';
import { sipToken, TEST_SDP } from './sip-udp-phone';

/** One response a SourcePeer received. */
export interface PeerAnswer {
  status: number;
  callId: string;
  cseq: string;
  to: string;
  from: string;
}

export interface RequestIds {
  callId: string;
  branch: string;
  tag: string;
}

export function requestIds(): RequestIds {
  return { callId: sipToken(), branch: sipToken(), tag: sipToken() };
}

/**
 * A UDP SIP peer bound on a chosen loopback address (127.0.0.x: a distinct source for per-source limits)
 * that sends raw requests to a ferry sip on 127.0.0.1 and records every response it gets.
 */
export class SourcePeer {
  readonly answers: PeerAnswer[] = [];
  private constructor(readonly socket: dgram.Socket, readonly address: string, readonly port: number, private readonly target: number) {}

  static async open(address: string, target: number): Promise<SourcePeer> {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => { socket.once('error', reject); socket.bind(0, address, () => resolve()); });
    const peer = new SourcePeer(socket, address, socket.address().port, target);
    socket.on('message', (d) => {
      const head = d.toString('utf8').split('\r\n\r\n')[0]!.split('\r\n');
      const m = /^SIP\/2\.0 (\d{3})/.exec(head[0] ?? '');
      if (!m) return;
      const h = (name: string): string => {
        const l = head.find((x) => x.toLowerCase().startsWith(`${name.toLowerCase()}:`));
        return l ? l.slice(l.indexOf(':') + 1).trim() : '';
      };
      peer.answers.push({ status: Number(m[1]), callId: h('Call-ID'), cseq: h('CSeq'), to: h('To'), from: h('From') });
    });
    return peer;
  }

  send(text: string | Buffer): void {
    this.socket.send(typeof text === 'string' ? Buffer.from(text, 'utf8') : text, this.target, '127.0.0.1');
  }

  /** A new request (no To tag) to `user`@ferry sip; an INVITE carries an SDP offer. */
  request(method: string, ids: RequestIds, user = 'service'): string {
    const b = method === 'INVITE' ? TEST_SDP : '';
    return [`${method} sip:${user}@127.0.0.1:${this.target} SIP/2.0`, `Via: SIP/2.0/UDP ${this.address}:${this.port};branch=z9hG4bK${ids.branch};rport`,
      'Max-Forwards: 70', `From: <sip:peer@${this.address}>;tag=${ids.tag}`, `To: <sip:${user}@127.0.0.1>`,
      `Call-ID: ${ids.callId}`, `CSeq: 1 ${method}`, `Contact: <sip:peer@${this.address}:${this.port}>`,
      ...(b ? ['Content-Type: application/sdp'] : []), `Content-Length: ${Buffer.byteLength(b)}`, '', b].join('\r\n');
  }

  /** A request inside the dialog `answer` (a 2xx to an INVITE from this peer) set up: ACK (CSeq 1) or BYE (CSeq 2). */
  inDialog(method: 'ACK' | 'BYE', answer: PeerAnswer): string {
    return [`${method} sip:service@127.0.0.1:${this.target} SIP/2.0`, `Via: SIP/2.0/UDP ${this.address}:${this.port};branch=z9hG4bK${sipToken()};rport`,
      'Max-Forwards: 70', `From: ${answer.from}`, `To: ${answer.to}`, `Call-ID: ${answer.callId}`, `CSeq: ${method === 'ACK' ? 1 : 2} ${method}`,
      'Content-Length: 0', '', ''].join('\r\n');
  }

  answersTo(callId: string): PeerAnswer[] {
    return this.answers.filter((a) => a.callId === callId);
  }

  /** how many of `callIds` got at least one response */
  answeredOf(callIds: string[]): number {
    const seen = new Set(this.answers.map((a) => a.callId));
    return callIds.filter((c) => seen.has(c)).length;
  }

  close(): void {
    try { this.socket.close(); } catch { /* closed */ }
  }
}
