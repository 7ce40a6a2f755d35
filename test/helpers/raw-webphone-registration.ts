import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { digestAnswer } from './sip-raw-client';
import { sipToken } from './sip-udp-phone';
import { waitFor } from './stack';

/**
 * Registers `user` at `domain` over a SIP WebSocket as a webphone does (digest, a `.invalid` Contact, 600 s);
 * resolves with the open socket once the REGISTER got its 200. Closing the socket without unregistering
 * leaves the binding behind, as a browser tab that crashed or lost its network does. `tab`: the Contact's
 * user part and `.invalid` host (JsSIP makes both up per tab: each tab of a user is a registration, and a
 * connection, of its own); default one fixed Contact.
 */
export async function webphoneRegisters(wsPort: number, user: string, password: string, domain = 'ferry.local', tab?: string): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${wsPort}`, 'sip');
  await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
  const answers: string[] = [];
  ws.on('message', (d) => answers.push(d.toString()));
  const callId = `reg-${sipToken()}`;
  const register = (cseq: number, auth?: string): void => ws.send([`REGISTER sip:${domain} SIP/2.0`, `Via: SIP/2.0/WS q7t9.invalid;branch=z9hG4bK${sipToken()}`, 'Max-Forwards: 70',
    `From: <sip:${user}@${domain}>;tag=${sipToken()}`, `To: <sip:${user}@${domain}>`, `Call-ID: ${callId}`, `CSeq: ${cseq} REGISTER`,
    `Contact: <${tab ? tabContact(tab) : 'sip:k3x9@q7t9.invalid;transport=ws'}>;expires=600`, ...(auth ? [`Authorization: ${auth}`] : []), 'Content-Length: 0', '', ''].join('\r\n'));
  const final = (cseq: number): Promise<string> => waitFor(() => answers.find((a) => /^SIP\/2\.0 [2-6]/.test(a) && new RegExp(`^CSeq: ${cseq} REGISTER`, 'mi').test(a)), 5000, 10, `REGISTER ${cseq} answered`);
  register(1);
  const challenge = /^WWW-Authenticate: (.*)$/mi.exec(await final(1))?.[1];
  assert.ok(challenge, 'REGISTER challenged');
  register(2, digestAnswer(challenge, { user, password, method: 'REGISTER', uri: `sip:${domain}` }));
  assert.match(await final(2), /^SIP\/2\.0 200/);
  return ws;
}

/** The Contact webphoneRegisters() registers for `tab` */
export function tabContact(tab: string): string {
  return `sip:${tab}@${tab}.invalid;transport=ws`;
}

/**
 * Webphone tabs of `user` that register in this order (the last is the newest registration), then all
 * vanish without unregistering (crashed, cut off: ferry sip answers an INVITE to any of them 410). Resolves
 * with their Contacts.
 */
export async function vanishedTabs(wsPort: number, user: string, password: string, tabs: readonly string[], domain = 'ferry.local'): Promise<string[]> {
  const sockets: WebSocket[] = [];
  try {
    for (const tab of tabs) sockets.push(await webphoneRegisters(wsPort, user, password, domain, tab));
  } finally {
    for (const ws of sockets) await vanish(ws);
  }
  return tabs.map(tabContact);
}

/** Closes a registered socket without unregistering (a crashed tab); resolves once it is closed. */
export async function vanish(ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return;
  const closed = new Promise((r) => ws.once('close', r));
  ws.terminate();
  await closed;
}

/** The requests of `method` (INVITE, CANCEL, ...) that reached a registered socket from now on, as they arrive. */
export function requestsTo(ws: WebSocket, method: string): string[] {
  const seen: string[] = [];
  ws.on('message', (d) => {
    const text = d.toString();
    if (text.startsWith(`${method} `)) seen.push(text);
  });
  return seen;
}

/** Sends the webphone's answer `statusLine` (e.g. '486 Busy Here') to `request` over `ws` (no body). */
export function answerOver(ws: WebSocket, request: string, statusLine: string, toTag = 'wp1'): void {
  const keep = request.split('\r\n\r\n')[0]!.split('\r\n').filter((l) => /^(via|from|to|call-id|cseq)\s*:/i.test(l))
    .map((l) => (/^to\s*:/i.test(l) && !/;tag=/.test(l) ? `${l};tag=${toTag}` : l));
  ws.send([`SIP/2.0 ${statusLine}`, ...keep, 'Content-Length: 0', '', ''].join('\r\n'));
}
