import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';

export interface ProbeResponse {
  status: number;
  reason: string;
  /** header name (lower case) -> values */
  headers: Map<string, string[]>;
}

/**
 * One INVITE from its own UDP socket, for checking how a SIP server answers a new call (e.g. 503 +
 * Retry-After while the media server is away): resolves with the first final response, ACKed
 * when it is a failure (meant for refusals: a 2xx is reported but its dialog is not handled). The
 * socket's port is known before sending (`open()`), so a test can declare it as a trunk.
 */
export class SipInviteProbe {
  private constructor(private readonly socket: dgram.Socket, readonly port: number) {}

  static async open(): Promise<SipInviteProbe> {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, '127.0.0.1', () => resolve());
    });
    return new SipInviteProbe(socket, (socket.address() as { port: number }).port);
  }

  invite(target: string, server: { host: string; port: number }, timeoutMs = 10_000): Promise<ProbeResponse> {
    const callId = randomBytes(8).toString('hex');
    const tag = randomBytes(4).toString('hex');
    const branch = `z9hG4bK${randomBytes(6).toString('hex')}`;
    const local = `127.0.0.1:${this.port}`;
    const sdp = ['v=0', `o=probe 1 1 IN IP4 127.0.0.1`, 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', 'm=audio 9 RTP/AVP 0', 'a=rtpmap:0 PCMU/8000', 'a=sendrecv', ''].join('\r\n');
    const head = (method: string, cseq: string, extra: string[] = [], toTag = ''): string[] => [
      `${method} ${target} SIP/2.0`,
      `Via: SIP/2.0/UDP ${local};branch=${branch};rport`,
      'Max-Forwards: 70',
      `From: <sip:probe@${local}>;tag=${tag}`,
      `To: <${target}>${toTag ? `;tag=${toTag}` : ''}`,
      `Call-ID: ${callId}`,
      `CSeq: ${cseq}`,
      ...extra,
    ];
    const send = (lines: string[], body = ''): void => {
      const text = `${lines.join('\r\n')}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
      this.socket.send(text, server.port, server.host);
    };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.socket.off('message', onMessage);
        reject(new Error(`sip-invite-probe: no final response within ${timeoutMs} ms`));
      }, timeoutMs);
      const onMessage = (buf: Buffer): void => {
        const text = buf.toString('utf8');
        const [start, ...lines] = text.slice(0, text.indexOf('\r\n\r\n')).split('\r\n');
        const m = /^SIP\/2\.0 (\d{3}) ?(.*)$/.exec(start ?? '');
        if (!m || !text.includes(callId)) return;
        const status = Number(m[1]);
        if (status < 200) return;
        const headers = new Map<string, string[]>();
        for (const l of lines) {
          const i = l.indexOf(':');
          if (i > 0) headers.set(l.slice(0, i).trim().toLowerCase(), [...(headers.get(l.slice(0, i).trim().toLowerCase()) ?? []), l.slice(i + 1).trim()]);
        }
        clearTimeout(timer);
        this.socket.off('message', onMessage);
        const toTag = /;\s*tag=([^;>\s]+)/.exec(headers.get('to')?.[0] ?? '')?.[1] ?? '';
        if (status >= 300) send(head('ACK', '1 ACK', [], toTag));
        resolve({ status, reason: m[2] ?? '', headers });
      };
      this.socket.on('message', onMessage);
      send(head('INVITE', '1 INVITE', [`Contact: <sip:probe@${local}>`, 'Content-Type: application/sdp']), sdp);
    });
  }

  close(): Promise<void> {
    return new Promise((r) => this.socket.close(() => r()));
  }
}
