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
import { startSipEngine, type RunningSipEngine } from '../../src/sip/sip-engine-server';
import { byesOf, callFrom, connectAnsweringSrf, emptyDialogTargetState, startLocalService } from '../helpers/sip-dialog-target-world';
import { ownIPv4Address } from '../helpers/own-address';
import { pollUntil } from '../helpers/wait-for';

const OWN = ownIPv4Address();

describe('ferry sip: a peer elsewhere cannot point its dialog\'s requests at this host or the metadata service', { timeout: 60_000, skip: OWN ? false : 'this host has no non-loopback IPv4 address' }, () => {
  let engine: RunningSipEngine;
  let srf: any;
  const { dialogs, closers, local } = emptyDialogTargetState();

  before(async () => {
    engine = await startSipEngine({ host: '0.0.0.0', advertisedHost: OWN!, restartHoldMs: 0 });
    srf = await connectAnsweringSrf(engine, dialogs);
    await startLocalService(local, closers);
  });
  after(async () => {
    closers.forEach((c) => c());
    try { srf.disconnect(); } catch { /* gone */ }
    await engine.close();
  });

  /** a caller on `address` that sends an INVITE with `contact` (and `recordRoute`), ACKs the 200, and collects what it is sent */
  const call = (address: string, contact: string, recordRoute?: string) => callFrom(engine, dialogs, closers, address, contact, recordRoute);
  const byes = byesOf;

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
