import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import path from 'node:path';
import { digestAnswer } from '../helpers/sip-raw-client';
import { startStack, type Stack } from '../helpers/stack';
import { pollUntil } from '../helpers/wait-for';
import { RawSipEndpoint, type RawSipMessage } from '../helpers/raw-sip-endpoint';

/**
 * A user who knows another phone's Contact (a desk phone's is `sip:<number>@<its address>`) registers
 * that very Contact for themself over a TCP connection of their own. ferry sip must not bind it to that
 * connection: the desk phone's calls would then go to the other user's connection instead of the phone.
 * Real processes (ferry sip, media, gateway), real sockets, from different loopback addresses (the desk
 * phone on 127.0.0.5 over UDP, the other user on 127.0.0.9 over TCP, the caller on 127.0.0.1).
 * And a Contact is where the user's calls are sent: one at a link-local (a cloud's metadata service) or
 * multicast address is refused and binds nothing. One at a public address other than the one the
 * REGISTER came from (a STUN phone's, or a third party's) is accepted, and its calls go to the REGISTER's
 * source, never to the address it names; tested from this host's own non-loopback address.
 */
const DOMAIN = 'ferry.local';
const PHONE_ADDRESS = '127.0.0.5';
const OTHER_ADDRESS = '127.0.0.9';
/** this host's first non-loopback, non-private IPv4 address, to send from a source that is not loopback */
const PUBLIC_ADDRESS = Object.values(networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal && !/^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.|169\.254\.)/.test(i.address))?.address;
/** a public address that is not this host's (documentation range) */
const THIRD_PARTY = PUBLIC_ADDRESS === '198.51.100.77' ? '198.51.100.78' : '198.51.100.77';




describe('registered Contacts: another phone\'s Contact is not captured, addresses of this host or link are refused', { timeout: 90_000 }, () => {
  let stack: Stack;
  let dir: string;
  const endpoints: RawSipEndpoint[] = [];

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'ferry-contact-capture-'));
    const config = {
      domain: DOMAIN,
      users: [
        { user: '1001', password: 'desk-1001-secret' },
        { user: 'alice', password: 'alice-capture-secret' },
        { user: 'bob', password: 'bob-capture-secret' },
      ],
      trunks: [],
      routes: [{ match: '.*', to: 'user' }],
    };
    writeFileSync(path.join(dir, 'ferry.json'), JSON.stringify(config, null, 2));
    stack = await startStack({ partEnv: { gateway: { FERRY_SIP_CONFIG: path.join(dir, 'ferry.json'), FERRY_NO_ANSWER_MS: '5000' } } });
  });

  after(async () => {
    for (const e of endpoints) e.close();
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the desk phone (UDP, 127.0.0.5) still gets its call after another user registered its Contact over TCP from 127.0.0.9', async () => {
    const phone = await RawSipEndpoint.udp(PHONE_ADDRESS, stack.sipPort, { domain: DOMAIN });
    endpoints.push(phone);
    const phoneContact = `sip:1001@${PHONE_ADDRESS}:${phone.port()}`;
    assert.match(await phone.register('1001', 'desk-1001-secret', phoneContact), /^SIP\/2\.0 200/);

    const other = await RawSipEndpoint.tcp(OTHER_ADDRESS, stack.sipPort, { domain: DOMAIN });
    endpoints.push(other);
    // the registrar accepts it (a user may name any Contact for themself): what matters is where 1001's calls go
    assert.match(await other.register('alice', 'alice-capture-secret', phoneContact), /^SIP\/2\.0 200/);

    const caller = await RawSipEndpoint.udp('127.0.0.1', stack.sipPort, { domain: DOMAIN });
    endpoints.push(caller);
    const callId = randomBytes(8).toString('hex');
    const uri = `sip:1001@${DOMAIN}`;
    const sdp = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n';
    const invite = { method: 'INVITE' as const, uri, user: 'bob', to: uri, contact: `sip:bob@127.0.0.1:${caller.port()}`, callId, body: sdp };
    caller.request({ ...invite, cseq: 1 });
    const challenge = await caller.response(callId, 1);
    assert.match(challenge.start, /^SIP\/2\.0 407/);
    caller.send(`ACK ${uri} SIP/2.0\r\nVia: ${challenge.header('Via')}\r\nMax-Forwards: 70\r\nFrom: ${challenge.header('From')}\r\nTo: ${challenge.header('To')}\r\nCall-ID: ${callId}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n`);
    const auth = digestAnswer(challenge.header('Proxy-Authenticate')!, { user: 'bob', password: 'bob-capture-secret', method: 'INVITE', uri });
    caller.request({ ...invite, cseq: 2, auth });

    const isInvite = (m: RawSipMessage): boolean => m.start.startsWith('INVITE ');
    // the call is sent somewhere: to the phone, or (the capture) over the other user's connection
    await pollUntil(() => phone.received.some(isInvite) || other.received.some(isInvite), { timeoutMs: 15_000, what: 'the INVITE for 1001 (to the phone or to the other connection)' });
    assert.equal(other.received.filter(isInvite).length, 0, 'the INVITE for 1001 went over the other user\'s TCP connection');
    assert.ok(phone.received.some(isInvite), 'the desk phone gets the INVITE');
    assert.equal(phone.received.find(isInvite)!.start, `INVITE ${phoneContact} SIP/2.0`);
  });

  test('a Contact at a link-local or multicast address is refused 403 with a Warning and binds nothing; the user\'s own Contact is bound', async () => {
    const c = await RawSipEndpoint.udp('127.0.0.1', stack.sipPort, { domain: DOMAIN });
    endpoints.push(c);
    for (const contact of ['sip:bob@169.254.169.254:80;transport=tcp', 'sip:bob@224.0.0.1']) {
      const callId = randomBytes(8).toString('hex');
      const uri = `sip:${DOMAIN}`;
      c.request({ method: 'REGISTER', uri, user: 'bob', to: `sip:bob@${DOMAIN}`, contact, callId, cseq: 1 });
      const challenge = await c.response(callId, 1);
      const auth = digestAnswer(challenge.header('WWW-Authenticate')!, { user: 'bob', password: 'bob-capture-secret', method: 'REGISTER', uri });
      c.request({ method: 'REGISTER', uri, user: 'bob', to: `sip:bob@${DOMAIN}`, contact, callId, cseq: 2, auth });
      const final = await c.response(callId, 2);
      assert.match(final.start, /^SIP\/2\.0 403/, contact);
      assert.match(final.header('Warning') ?? '', /^399 ferry "Contact host .* (link-local|multicast) address"$/, contact);
    }
    // positive control, and the proof nothing was bound: the 200 lists bob's bindings, only this one
    const own = `sip:bob@127.0.0.1:${c.port()}`;
    assert.match(await c.register('bob', 'bob-capture-secret', own), /^SIP\/2\.0 200/);
    const listed = c.received.filter((m) => /^SIP\/2\.0 200/.test(m.start)).at(-1)!.header('Contact') ?? '';
    assert.equal(listed.replace(/;expires=\d+/g, ''), `<${own}>`);
  });

  test('a Contact at a public address other than the REGISTER\'s source is accepted over UDP and TCP, and its calls go to that source, not to the address it names', { skip: PUBLIC_ADDRESS ? false : 'this host has no public-class IPv4 address to send from' }, async () => {
    const caller = await RawSipEndpoint.udp('127.0.0.1', stack.sipPort, { domain: DOMAIN });
    endpoints.push(caller);
    const isInvite = (m: RawSipMessage): boolean => m.start.startsWith('INVITE ');
    const udp = await RawSipEndpoint.udp(PUBLIC_ADDRESS!, stack.sipPort, { domain: DOMAIN, busy: true });
    const tcp = await RawSipEndpoint.tcp(PUBLIC_ADDRESS!, stack.sipPort, { domain: DOMAIN, busy: true });
    endpoints.push(udp, tcp);
    for (const [e, contact] of [[udp, `sip:bob@${THIRD_PARTY}:5060`], [tcp, `sip:bob@${THIRD_PARTY}:5061;transport=tcp`]] as const) {
      assert.match(await e.register('bob', 'bob-capture-secret', contact), /^SIP\/2\.0 200/, contact);
      const listed = e.received.filter((m) => /^SIP\/2\.0 200/.test(m.start)).at(-1)!.header('Contact') ?? '';
      assert.ok(listed.includes(`<${contact}>`), listed);
      // a call to bob (every registration of bob rings): the INVITE for this Contact arrives at the REGISTER's source (the socket or connection it came from)
      void caller.call('bob', { user: 'alice', password: 'alice-capture-secret' }).catch(() => undefined);
      await pollUntil(() => e.received.some(isInvite), { timeoutMs: 15_000, what: `the INVITE for ${contact} at the REGISTER's source` });
      assert.equal(e.received.find(isInvite)!.start, `INVITE ${contact} SIP/2.0`, 'the Request-URI stays the Contact');
    }
    // that the named address gets nothing is counted by a socket listening there in test/e2e/nat-stun-phone-lan.test.ts
  });
});
