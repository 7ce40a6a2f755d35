/**
 * The parts of the dialog-target tests (where ferry sip sends a dialog's in-dialog requests): a local
 * service on 127.0.0.1 (a TCP listener and a UDP socket recording what reaches them), an app that answers
 * every INVITE with the npm drachtio-srf, and a raw UDP caller that sends an INVITE, ACKs the 200 and
 * collects what it is sent.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { RunningSipEngine } from '../../src/sip/sip-engine-server';
import { connectBareSrf, routesApplied } from './srf-app';
import { sipToken, TEST_SDP } from './sip-udp-phone';
import { pollUntil } from './wait-for';

/** what the local service got: TCP connections (with their bytes) and UDP datagrams */
export interface LocalServiceRecord { tcp: string[]; udp: string[]; tcpPort: number; udpPort: number }

/** a dialog-target test's state: the app's dialogs by Call-ID, closers for sockets, and what the local service got */
export function emptyDialogTargetState(): { dialogs: Map<string, any>; closers: Array<() => void>; local: LocalServiceRecord } {
  return { dialogs: new Map<string, any>(), closers: [], local: { tcp: [], udp: [], tcpPort: 0, udpPort: 0 } };
}

/** Starts a TCP listener and a UDP socket on 127.0.0.1 recording into `local`; their closers go to `closers`. */
export async function startLocalService(local: LocalServiceRecord, closers: Array<() => void>): Promise<void> {
  const server = net.createServer((s) => {
    const i = local.tcp.push('') - 1;
    s.on('data', (d) => { local.tcp[i] += d.toString('latin1'); });
    s.on('error', () => { /* closed by ferry */ });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  local.tcpPort = (server.address() as net.AddressInfo).port;
  const udp = dgram.createSocket('udp4');
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
  udp.on('message', (m) => local.udp.push(m.toString('latin1')));
  local.udpPort = udp.address().port;
  closers.push(() => server.close(), () => udp.close());
}

/** Connects the npm drachtio-srf to `engine`, answering every INVITE and keeping its dialog in `dialogs` by Call-ID. */
export async function connectAnsweringSrf(engine: RunningSipEngine, dialogs: Map<string, any>): Promise<any> {
  const srf: any = await connectBareSrf(engine.ports.control);
  srf.invite(async (req: any, res: any) => {
    const d = await srf.createUAS(req, res, { localSdp: TEST_SDP });
    dialogs.set(req.get('Call-ID'), d);
  });
  await routesApplied(srf);
  return srf;
}

/**
 * A caller on `address` that sends an INVITE with `contact` (given the caller's port, or as it is) and
 * `recordRoute`, ACKs the 200, waits for the app's dialog, and collects what it is sent.
 */
export async function callFrom(
  engine: RunningSipEngine, dialogs: Map<string, any>, closers: Array<() => void>,
  address: string, contact: string | ((port: number) => string), recordRoute?: string,
): Promise<{ got: string[]; callId: string; port: number }> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, address, () => r()));
  closers.push(() => socket.close());
  const port = socket.address().port;
  const got: string[] = [];
  socket.on('message', (m) => got.push(m.toString('latin1')));
  const callId = sipToken();
  const send = (text: string): void => { socket.send(Buffer.from(text, 'latin1'), engine.ports.sip, address); };
  const contactText = typeof contact === 'function' ? contact(port) : contact;
  send([`INVITE sip:service@${address}:${engine.ports.sip} SIP/2.0`, `Via: SIP/2.0/UDP ${address}:${port};branch=z9hG4bK${sipToken()};rport`, 'Max-Forwards: 70',
    'From: <sip:caller@example.org>;tag=c1', `To: <sip:service@${address}>`, `Call-ID: ${callId}`, 'CSeq: 1 INVITE', `Contact: ${contactText}`,
    ...(recordRoute ? [`Record-Route: ${recordRoute}`] : []), 'Content-Type: application/sdp', `Content-Length: ${TEST_SDP.length}`, '', TEST_SDP].join('\r\n'));
  const ok = await pollUntil(() => got.find((m) => m.startsWith('SIP/2.0 200 ')), { timeoutMs: 5_000, what: `the 200 to the INVITE from ${address}` });
  const to = /\r\nTo: ([^\r\n]+)/i.exec(ok)![1]!;
  send([`ACK sip:service@${address}:${engine.ports.sip} SIP/2.0`, `Via: SIP/2.0/UDP ${address}:${port};branch=z9hG4bK${sipToken()};rport`, 'Max-Forwards: 70',
    'From: <sip:caller@example.org>;tag=c1', `To: ${to}`, `Call-ID: ${callId}`, 'CSeq: 1 ACK', 'Content-Length: 0', '', ''].join('\r\n'));
  await pollUntil(() => dialogs.has(callId), { timeoutMs: 5_000, what: 'the app\'s dialog' });
  return { got, callId, port };
}

/** how many BYEs of call `callId` are among `msgs` */
export const byesOf = (msgs: string[], callId: string): number => msgs.filter((m) => m.startsWith('BYE ') && m.includes(callId)).length;
