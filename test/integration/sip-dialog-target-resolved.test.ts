/**
 * A dialog's in-dialog requests go to the peer's first loose Record-Route, else its Contact (RFC 3261 §12):
 * since 846f3c0's rule (sip-dialog-target-capture.test.ts), a peer elsewhere naming a loopback, link-local,
 * multicast, unspecified or reserved address there has them sent to its own address instead. A host NAME was
 * not judged: it is resolved when the request is sent, so the peer's DNS chose the address, and a Contact
 * `<sip:x@evil.example:6379;transport=tcp>` whose name resolves to 127.0.0.1 had ferry sip connect to a local
 * service and write the call's BYE into it. Now the same rule applies to the addresses a name resolves to,
 * before anything is connected or sent (docs/security.md, "Inside a call").
 * Positive controls: a name resolving to the peer's own address is used, and a phone on loopback naming a
 * name that resolves to loopback is sent its BYE there.
 *
 * Real parts: dnsmasq answering the test's names, ferry sip in process on every interface, the npm
 * drachtio-srf answering and hanging up, raw sockets. The caller sends from this host's own non-loopback
 * address (another machine, as far as ferry can tell); the local service is a TCP listener and a UDP socket
 * on 127.0.0.1.
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
import { Dnsmasq } from '../helpers/dnsmasq';

function ownAddress(): string | undefined {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

const OWN = ownAddress();
const D = `r${process.pid}.test`;

describe('ferry sip: a peer elsewhere cannot point its dialog\'s requests at this host through a name', { timeout: 60_000, skip: OWN ? false : 'this host has no non-loopback IPv4 address' }, () => {
  let engine: RunningSipEngine;
  let srf: any;
  let dns: Dnsmasq;
  const dialogs = new Map<string, any>();
  const closers: Array<() => void> = [];
  const local = { tcp: [] as string[], udp: [] as string[], tcpPort: 0, udpPort: 0 };

  before(async () => {
    dns = await Dnsmasq.start({
      localDomains: ['test'],
      records: [`--host-record=loop.${D},127.0.0.1`, `--host-record=meta.${D},169.254.169.254`, `--host-record=own.${D},${OWN}`],
    });
    engine = await startSipEngine({
      host: '0.0.0.0', advertisedHost: OWN!, restartHoldMs: 0,
      dns: { servers: [{ address: '127.0.0.1', port: dns.port }], timeoutMs: 1000, cacheEntries: 0 },
    });
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
    await engine?.close();
    await dns?.stop();
  });

  /** a caller on `address` that sends an INVITE with `contact` (and `recordRoute`), ACKs the 200, and collects what it is sent */
  async function call(address: string, contact: (port: number) => string, recordRoute?: string): Promise<{ got: string[]; callId: string; port: number }> {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((r) => socket.bind(0, address, () => r()));
    closers.push(() => socket.close());
    const port = socket.address().port;
    const got: string[] = [];
    socket.on('message', (m) => got.push(m.toString('latin1')));
    const callId = sipToken();
    const send = (text: string): void => { socket.send(Buffer.from(text, 'latin1'), engine.ports.sip, address); };
    send([`INVITE sip:service@${address}:${engine.ports.sip} SIP/2.0`, `Via: SIP/2.0/UDP ${address}:${port};branch=z9hG4bK${sipToken()};rport`, 'Max-Forwards: 70',
      'From: <sip:caller@example.org>;tag=c1', `To: <sip:service@${address}>`, `Call-ID: ${callId}`, 'CSeq: 1 INVITE', `Contact: ${contact(port)}`,
      ...(recordRoute ? [`Record-Route: ${recordRoute}`] : []), 'Content-Type: application/sdp', `Content-Length: ${TEST_SDP.length}`, '', TEST_SDP].join('\r\n'));
    const ok = await pollUntil(() => got.find((m) => m.startsWith('SIP/2.0 200 ')), { timeoutMs: 5_000, what: `the 200 to the INVITE from ${address}` });
    const to = /\r\nTo: ([^\r\n]+)/i.exec(ok)![1]!;
    send([`ACK sip:service@${address}:${engine.ports.sip} SIP/2.0`, `Via: SIP/2.0/UDP ${address}:${port};branch=z9hG4bK${sipToken()};rport`, 'Max-Forwards: 70',
      'From: <sip:caller@example.org>;tag=c1', `To: ${to}`, `Call-ID: ${callId}`, 'CSeq: 1 ACK', 'Content-Length: 0', '', ''].join('\r\n'));
    await pollUntil(() => dialogs.has(callId), { timeoutMs: 5_000, what: 'the app\'s dialog' });
    return { got, callId, port };
  }

  const byes = (msgs: string[], callId: string): number => msgs.filter((m) => m.startsWith('BYE ') && m.includes(callId)).length;

  test('Contact naming a local TCP service by name, a loose Record-Route naming a local UDP service by name, Contact naming the metadata service by name: each BYE goes to the caller; names resolving to the caller itself, or to loopback for a phone on loopback, are used', { timeout: 40_000 }, async () => {
    const cases = [
      { what: 'Contact at loop (127.0.0.1) over TCP', contact: () => `<sip:x@loop.${D}:${local.tcpPort};transport=tcp>` },
      { what: 'Record-Route at loop (127.0.0.1)', contact: () => `<sip:x@${OWN}:5999>`, recordRoute: `<sip:loop.${D}:${local.udpPort};lr>` },
      { what: 'Contact at meta (169.254.169.254)', contact: () => `<sip:x@meta.${D}:80;transport=tcp>` },
    ];
    for (const c of cases) {
      const caller = await call(OWN!, c.contact, c.recordRoute);
      dialogs.get(caller.callId).destroy();
      await pollUntil(() => byes(caller.got, caller.callId) >= 1, { timeoutMs: 10_000, what: `${c.what}: the BYE at the caller's own address` });
    }

    // positive controls: a name resolving to the caller's own address is used as it is (the BYE comes to the port it names)
    const named = dgram.createSocket('udp4');
    await new Promise<void>((r) => named.bind(0, OWN!, () => r()));
    closers.push(() => named.close());
    const namedGot: string[] = [];
    named.on('message', (m) => namedGot.push(m.toString('latin1')));
    const honest = await call(OWN!, () => `<sip:x@own.${D}:${named.address().port}>`);
    dialogs.get(honest.callId).destroy();
    await pollUntil(() => byes(namedGot, honest.callId) === 1, { timeoutMs: 10_000, what: 'the BYE at the address the caller\'s name resolves to' });
    assert.equal(byes(honest.got, honest.callId), 0);
    // ...and a phone on this host may name this host by name
    const phone = await call('127.0.0.1', () => `<sip:x@loop.${D}:${local.udpPort}>`);
    dialogs.get(phone.callId).destroy();
    await pollUntil(() => byes(local.udp, phone.callId) === 1, { timeoutMs: 10_000, what: 'the loopback phone\'s BYE at the name it gave' });

    assert.deepEqual(local.tcp, [], 'no connection was opened to the local TCP service');
    assert.equal(local.udp.length, 1, 'the local UDP service got only the loopback phone\'s BYE');
  });
});
