/**
 * A dialog's in-dialog requests (ACK, BYE, re-INVITE) go to the peer's first loose Record-Route, else to the
 * Contact of its INVITE or 2xx (RFC 3261 §12) — targets the peer chooses, and ferry sip sends there from its
 * own address. A caller elsewhere (any user with a password, a trunk) used to be able to name one of ferry's
 * own host's addresses — `Contact: <sip:x@127.0.0.1:6379;transport=tcp>` — and have ferry sip open a
 * connection to that local service and write the call's BYE into it, or name the metadata service
 * (169.254.169.254). Registrations were already held to this (docs/security.md, "Bindings per user");
 * dialogs now are too: when the target names a loopback address and the peer is not on loopback, or a
 * link-local, multicast, unspecified or reserved address other than the peer's own, the dialog's requests go
 * to the address and port its INVITE came from.
 *
 * Real parts: ferry sip in process on every interface, the npm drachtio-srf answering and hanging up, raw
 * sockets. The caller sends from this host's own non-loopback address (what another machine would be); the
 * local service is a TCP listener and a UDP socket on 127.0.0.1. Positive control: a phone on this host
 * (loopback) naming a loopback Contact is sent its BYE there.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import os from 'node:os';
import { startSipEngine, type RunningSipEngine } from '../../src/sip/sip-engine-server';
import { connectBareSrf, routesApplied } from '../helpers/srf-app';
import { sipToken, TEST_SDP } from '../helpers/sip-udp-phone';
import { pollUntil } from '../helpers/wait-for';

/** this host's first non-loopback IPv4 address: a source that is not loopback (another machine, as far as ferry can tell) */
function ownAddress(): string | undefined {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

const OWN = ownAddress();

describe('ferry sip: a peer elsewhere cannot point its dialog\'s requests at this host or the metadata service', { timeout: 60_000, skip: OWN ? false : 'this host has no non-loopback IPv4 address' }, () => {
  let engine: RunningSipEngine;
  let srf: any;
  const dialogs = new Map<string, any>();
  const closers: Array<() => void> = [];
  /** what the local service got: TCP connections (with their bytes) and UDP datagrams */
  const local = { tcp: [] as string[], udp: [] as string[], tcpPort: 0, udpPort: 0 };

  before(async () => {
    engine = await startSipEngine({ host: '0.0.0.0', advertisedHost: OWN!, restartHoldMs: 0 });
    srf = await connectBareSrf(engine.ports.control);
    srf.invite(async (req: any, res: any) => {
      const d = await srf.createUAS(req, res, { localSdp: TEST_SDP });
      dialogs.set(req.get('Call-ID'), d);
    });
    await routesApplied(srf);
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
  });
  after(async () => {
    closers.forEach((c) => c());
    try { srf.disconnect(); } catch { /* gone */ }
    await engine.close();
  });

  /** a caller on `address` that sends an INVITE with `contact` (and `recordRoute`), ACKs the 200, and collects what it is sent */
  async function call(address: string, contact: string, recordRoute?: string): Promise<{ got: string[]; callId: string }> {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((r) => socket.bind(0, address, () => r()));
    closers.push(() => socket.close());
    const port = socket.address().port;
    const got: string[] = [];
    socket.on('message', (m) => got.push(m.toString('latin1')));
    const callId = sipToken();
    const send = (text: string): void => { socket.send(Buffer.from(text, 'latin1'), engine.ports.sip, address); };
    send([`INVITE sip:service@${address}:${engine.ports.sip} SIP/2.0`, `Via: SIP/2.0/UDP ${address}:${port};branch=z9hG4bK${sipToken()};rport`, 'Max-Forwards: 70',
      'From: <sip:caller@example.org>;tag=c1', `To: <sip:service@${address}>`, `Call-ID: ${callId}`, 'CSeq: 1 INVITE', `Contact: ${contact}`,
      ...(recordRoute ? [`Record-Route: ${recordRoute}`] : []), 'Content-Type: application/sdp', `Content-Length: ${TEST_SDP.length}`, '', TEST_SDP].join('\r\n'));
    const ok = await pollUntil(() => got.find((m) => m.startsWith('SIP/2.0 200 ')), { timeoutMs: 5_000, what: `the 200 to the INVITE from ${address}` });
    const to = /\r\nTo: ([^\r\n]+)/i.exec(ok)![1]!;
    send([`ACK sip:service@${address}:${engine.ports.sip} SIP/2.0`, `Via: SIP/2.0/UDP ${address}:${port};branch=z9hG4bK${sipToken()};rport`, 'Max-Forwards: 70',
      'From: <sip:caller@example.org>;tag=c1', `To: ${to}`, `Call-ID: ${callId}`, 'CSeq: 1 ACK', 'Content-Length: 0', '', ''].join('\r\n'));
    await pollUntil(() => dialogs.has(callId), { timeoutMs: 5_000, what: 'the app\'s dialog' });
    return { got, callId };
  }

  const byes = (msgs: string[], callId: string): number => msgs.filter((m) => m.startsWith('BYE ') && m.includes(callId)).length;

  test('Contact at a local TCP service, a loose Record-Route at a local UDP service, Contact at the metadata service: each BYE goes to the caller, nothing reaches the named address; a caller on loopback is sent its BYE where it said', async () => {
    const cases = [
      { what: 'Contact at 127.0.0.1 over TCP', contact: `<sip:x@127.0.0.1:${local.tcpPort};transport=tcp>` },
      { what: 'Record-Route at 127.0.0.1', contact: `<sip:x@${OWN}:5999>`, recordRoute: `<sip:127.0.0.1:${local.udpPort};lr>` },
      { what: 'Contact at the metadata service', contact: '<sip:x@169.254.169.254:80;transport=tcp>' },
    ];
    for (const c of cases) {
      const caller = await call(OWN!, c.contact, c.recordRoute);
      dialogs.get(caller.callId).destroy();
      await pollUntil(() => byes(caller.got, caller.callId) >= 1, { timeoutMs: 5_000, what: `${c.what}: the BYE at the caller's own address` });
    }

    // positive control: a phone on this host may name this host; its BYE goes to the local service it named, after the ones above
    const phone = await call('127.0.0.1', `<sip:x@127.0.0.1:${local.udpPort}>`);
    dialogs.get(phone.callId).destroy();
    await pollUntil(() => byes(local.udp, phone.callId) === 1, { timeoutMs: 5_000, what: 'the loopback phone\'s BYE at the address it named' });
    assert.equal(byes(phone.got, phone.callId), 0);

    assert.deepEqual(local.tcp, [], 'no connection was opened to the local TCP service');
    assert.equal(local.udp.length, 1, 'the local UDP service got only the loopback phone\'s BYE');
  });
});
