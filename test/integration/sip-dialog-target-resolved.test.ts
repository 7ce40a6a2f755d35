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
import { startSipEngine, type RunningSipEngine } from '../../src/sip/sip-engine-server';
import { byesOf, callFrom, connectAnsweringSrf, emptyDialogTargetState, startLocalService } from '../helpers/sip-dialog-target-world';
import { ownIPv4Address } from '../helpers/own-address';
import { pollUntil } from '../helpers/wait-for';
import { Dnsmasq } from '../helpers/dnsmasq';

const OWN = ownIPv4Address();
const D = `r${process.pid}.test`;

describe('ferry sip: a peer elsewhere cannot point its dialog\'s requests at this host through a name', { timeout: 60_000, skip: OWN ? false : 'this host has no non-loopback IPv4 address' }, () => {
  let engine: RunningSipEngine;
  let srf: any;
  let dns: Dnsmasq;
  const { dialogs, closers, local } = emptyDialogTargetState();

  before(async () => {
    dns = await Dnsmasq.start({
      localDomains: ['test'],
      records: [`--host-record=loop.${D},127.0.0.1`, `--host-record=meta.${D},169.254.169.254`, `--host-record=own.${D},${OWN}`],
    });
    engine = await startSipEngine({
      host: '0.0.0.0', advertisedHost: OWN!, restartHoldMs: 0,
      dns: { servers: [{ address: '127.0.0.1', port: dns.port }], timeoutMs: 1000, cacheEntries: 0 },
    });
    srf = await connectAnsweringSrf(engine, dialogs);
    await startLocalService(local, closers);
  });
  after(async () => {
    closers.forEach((c) => c());
    try { srf.disconnect(); } catch { /* gone */ }
    await engine?.close();
    await dns?.stop();
  });

  /** a caller on `address` that sends an INVITE with `contact` (and `recordRoute`), ACKs the 200, and collects what it is sent */
  const call = (address: string, contact: (port: number) => string, recordRoute?: string) => callFrom(engine, dialogs, closers, address, contact, recordRoute);
  const byes = byesOf;

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
