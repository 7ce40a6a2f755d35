import type { SipRequest } from '../../src/sip/message/sip-message';
import { parseSipMessage } from '../../src/sip/message/sip-parser';
import type { Flow } from '../../src/sip/transport/flow';

/** A UDP flow from a stranger (198.51.100.7:5070) that keeps what the engine sends it, as text. */
export class RecordingUdpFlow implements Flow {
  readonly id = 'mem';
  readonly remoteAddress = '198.51.100.7';
  readonly remotePort = 5070;
  readonly localAddress = '127.0.0.1';
  readonly localPort = 5060;
  readonly closed = false;
  readonly protocol = 'udp' as const;
  readonly reliable = false;
  readonly sent: string[] = [];
  send(data: Buffer): void {
    this.sent.push(data.toString('utf8'));
  }
  /** messages sent that start with `prefix` (a status line, e.g. `SIP/2.0 401`) */
  count(prefix: string): number {
    return this.sent.filter((s) => s.startsWith(prefix)).length;
  }
}

/** An INVITE from that stranger, with `tag` as its branch suffix and Call-ID. */
export const strangerInvite = (tag: string): SipRequest => parseSipMessage(Buffer.from([
  'INVITE sip:alice@127.0.0.1 SIP/2.0', `Via: SIP/2.0/UDP 198.51.100.7:5070;branch=z9hG4bK${tag}`, 'From: <sip:x@198.51.100.7>;tag=a',
  'To: <sip:alice@127.0.0.1>', `Call-ID: ${tag}`, 'CSeq: 1 INVITE', 'Content-Length: 0', '', ''].join('\r\n'))) as SipRequest;
