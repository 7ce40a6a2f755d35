import type { SipMessage } from './sip-message';

/** Serialises a message; Content-Length is always recomputed from the body's byte length. */
export function serializeSipMessage(msg: SipMessage): Buffer {
  const start = msg.kind === 'request' ? `${msg.method} ${msg.uri} SIP/2.0` : `SIP/2.0 ${msg.status} ${msg.reason}`;
  const lines = [start];
  for (const h of msg.headers.list()) {
    if (h.name === 'Content-Length') continue;
    lines.push(`${h.name}: ${h.value}`);
  }
  lines.push(`Content-Length: ${msg.body.length}`);
  const head = Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'utf8');
  return msg.body.length ? Buffer.concat([head, msg.body]) : head;
}

export function sipMessageToString(msg: SipMessage): string {
  return serializeSipMessage(msg).toString('utf8');
}
