import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import path from 'node:path';
import { NetNamespace } from '../helpers/netns';
import { digestAnswer } from '../helpers/sip-raw-client';
import { startStack, type Stack } from '../helpers/stack';
import { pollUntil } from '../helpers/wait-for';
import { parseRawSip, RawSipEndpoint, type RawSipMessage } from '../helpers/raw-sip-endpoint';

/**
 * A desk phone on ferry's own network configured with a STUN server (as Yealink, Grandstream and Snom
 * set-ups often are): its REGISTER comes from its private LAN address, while its Contact and its SDP name
 * the public address STUN told it. The registration is accepted, and every request to it — the call's
 * INVITE, the ACK and BYE in the dialog, qualify's OPTIONS — goes to the address and port its REGISTER came
 * from; the address its Contact names (a third party's, for all ferry can tell) is sent nothing, counted by
 * a UDP socket listening there. The call's RTP flows both ways although the phone's SDP names a public
 * address and its RTP comes from its private one. A REGISTER from this host (loopback) naming the same
 * address is the positive control: its call does reach that socket.
 *
 * Real ferry sip, media and gateway. The phone is a hand-written SIP and RTP endpoint on a private address
 * of this host (the root end of a veth pair into a network namespace, 10.213.x.y); the address its Contact
 * names is this host's non-loopback public-class address. Its SDP names 203.0.113.77 (TEST-NET-3, not this
 * host's): an address of this host would be latched by ferry media's own-host rule whatever the phone's
 * source, and prove nothing about latching from a private source. The caller sends no RTP before the
 * phone has, so ferry media sends nothing there either.
 */
const DOMAIN = 'ferry.local';
const DESK = { user: '1001', password: 'desk-stun-secret' };
const BOB = { user: 'bob', password: 'bob-stun-secret' };
const CTL = { user: 'ctl', password: 'ctl-stun-secret' };
const STUN_SDP_ADDRESS = '203.0.113.77';
/** this host's first non-loopback, non-private IPv4 address: the public address the phone's Contact names */
const PUBLIC_ADDRESS = Object.values(networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal && !/^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.|169\.254\.)/.test(i.address))?.address;
const SKIP = process.getuid?.() !== 0 ? 'needs root (network namespaces)' : !PUBLIC_ADDRESS ? 'this host has no public-class IPv4 address to listen on' : false;

/** a UDP socket that counts every datagram it gets (the address the phone's Contact names) */
async function countingSocket(address: string): Promise<{ socket: dgram.Socket; got: string[] }> {
  const socket = dgram.createSocket('udp4');
  const got: string[] = [];
  socket.on('message', (m) => got.push(m.toString('utf8').split('\r\n')[0] ?? ''));
  await new Promise<void>((r) => socket.bind(0, address, () => r()));
  return { socket, got };
}

function rtp(seq: number, ssrc: number): Buffer {
  const b = Buffer.alloc(172, 0x55);
  b[0] = 0x80;
  b[1] = 0; // PCMU
  b.writeUInt16BE(seq, 2);
  b.writeUInt32BE(seq * 160, 4);
  b.writeUInt32BE(ssrc, 8);
  return b;
}

/**
 * The desk phone: SIP and RTP sockets on its private address; it writes `contact` (the public address) in
 * its REGISTER and its 2xx, and the STUN address in its SDP; it answers OPTIONS and BYE 200 and INVITE 200.
 */
class StunDeskPhone {
  readonly received: RawSipMessage[] = [];
  rtpIn = 0;
  offer?: { address: string; port: number };
  private constructor(readonly sip: dgram.Socket, readonly rtp: dgram.Socket, readonly address: string, private readonly serverPort: number, readonly contact: string) {}

  static async open(address: string, serverPort: number, contactHost: string, contactPort: number): Promise<StunDeskPhone> {
    const sip = dgram.createSocket('udp4');
    const media = dgram.createSocket('udp4');
    await new Promise<void>((r) => sip.bind(0, address, () => r()));
    await new Promise<void>((r) => media.bind(0, address, () => r()));
    const p = new StunDeskPhone(sip, media, address, serverPort, `sip:${DESK.user}@${contactHost}:${contactPort}`);
    sip.on('message', (d, rinfo) => p.onMessage(parseRawSip(d.toString('utf8')), rinfo));
    media.on('message', () => p.rtpIn++);
    return p;
  }

  close(): void {
    this.sip.close();
    this.rtp.close();
  }

  private onMessage(m: RawSipMessage, rinfo: dgram.RemoteInfo): void {
    this.received.push(m);
    if (m.start.startsWith('OPTIONS ') || m.start.startsWith('BYE ')) this.respond(m, rinfo, '200 OK');
    if (m.start.startsWith('INVITE ')) {
      const body = m.text.split('\r\n\r\n')[1] ?? '';
      const address = /^c=IN IP4 (\S+)/m.exec(body)?.[1];
      const port = Number(/^m=audio (\d+) /m.exec(body)?.[1]);
      if (address && port) this.offer = { address, port };
      const sdp = `v=0\r\no=- 7 7 IN IP4 ${STUN_SDP_ADDRESS}\r\ns=-\r\nc=IN IP4 ${STUN_SDP_ADDRESS}\r\nt=0 0\r\nm=audio ${this.rtp.address().port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n`;
      this.respond(m, rinfo, '200 OK', [`Contact: <${this.contact}>`, 'Content-Type: application/sdp'], sdp);
    }
  }

  private respond(req: RawSipMessage, rinfo: dgram.RemoteInfo, status: string, extra: string[] = [], body = ''): void {
    const to = req.header('To') ?? '';
    const text = [
      `SIP/2.0 ${status}`,
      ...req.text.split('\r\n\r\n')[0]!.split('\r\n').filter((l) => /^via\s*:/i.test(l)),
      `From: ${req.header('From')}`,
      `To: ${/;tag=/.test(to) ? to : `${to};tag=desk${randomBytes(3).toString('hex')}`}`,
      `Call-ID: ${req.header('Call-ID')}`,
      `CSeq: ${req.header('CSeq')}`,
      ...extra,
      `Content-Length: ${Buffer.byteLength(body)}`,
      '',
      body,
    ].join('\r\n');
    this.sip.send(Buffer.from(text), rinfo.port, rinfo.address);
  }

  private request(callId: string, cseq: number, auth?: string): void {
    const uri = `sip:${DOMAIN}`;
    this.sip.send(Buffer.from([
      `REGISTER ${uri} SIP/2.0`,
      `Via: SIP/2.0/UDP ${this.address}:${this.sip.address().port};branch=z9hG4bK${randomBytes(6).toString('hex')};rport`,
      'Max-Forwards: 70',
      `From: <sip:${DESK.user}@${DOMAIN}>;tag=${randomBytes(4).toString('hex')}`,
      `To: <sip:${DESK.user}@${DOMAIN}>`,
      `Call-ID: ${callId}`,
      `CSeq: ${cseq} REGISTER`,
      `Contact: <${this.contact}>`,
      'Expires: 600',
      ...(auth ? [`Authorization: ${auth}`] : []),
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n')), this.serverPort, '127.0.0.1');
  }

  /** REGISTER with digest; the final response */
  async register(): Promise<RawSipMessage> {
    const callId = randomBytes(8).toString('hex');
    const final = (cseq: number): Promise<RawSipMessage> => pollUntil(() => this.received.find((m) => /^SIP\/2\.0 [2-6]/.test(m.start) && m.header('Call-ID') === callId && m.header('CSeq')?.startsWith(`${cseq} `)), { timeoutMs: 10_000, what: `the answer to REGISTER ${cseq}` });
    this.request(callId, 1);
    const challenge = await final(1);
    assert.match(challenge.start, /^SIP\/2\.0 401/);
    this.request(callId, 2, digestAnswer(challenge.header('WWW-Authenticate')!, { user: DESK.user, password: DESK.password, method: 'REGISTER', uri: `sip:${DOMAIN}` }));
    return final(2);
  }
}

describe('NAT: a desk phone on ferry\'s network with a STUN server (public Contact and SDP, private source)', { skip: SKIP, timeout: 150_000 }, () => {
  let stack: Stack;
  let ns: NetNamespace;
  let dir: string;
  let named: { socket: dgram.Socket; got: string[] };
  let phone: StunDeskPhone;
  const endpoints: RawSipEndpoint[] = [];
  const sockets: dgram.Socket[] = [];

  before(async () => {
    ns = await NetNamespace.create();
    named = await countingSocket(PUBLIC_ADDRESS!);
    dir = mkdtempSync(path.join(tmpdir(), 'ferry-nat-stun-'));
    const config = { domain: DOMAIN, users: [DESK, BOB, CTL], trunks: [], routes: [{ match: '.*', to: 'user' }] };
    writeFileSync(path.join(dir, 'ferry.json'), JSON.stringify(config, null, 2));
    stack = await startStack({ partEnv: { gateway: { FERRY_SIP_CONFIG: path.join(dir, 'ferry.json'), FERRY_NO_ANSWER_MS: '5000', FERRY_QUALIFY_MS: '1000' } } });
    phone = await StunDeskPhone.open(ns.hostAddress, stack.sipPort, PUBLIC_ADDRESS!, named.socket.address().port);
  });

  after(async () => {
    phone?.close();
    for (const e of endpoints) e.close();
    for (const s of sockets) s.close();
    named?.socket.close();
    await stack?.stop();
    await ns?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const isRequest = (method: string) => (m: RawSipMessage): boolean => m.start.startsWith(`${method} `);

  test('N4: the REGISTER is accepted (200), and qualify pings the phone at its source, not at its Contact', async () => {
    const final = await phone.register();
    assert.match(final.start, /^SIP\/2\.0 200/, `${final.start} ${final.header('Warning') ?? ''}`);
    assert.ok((final.header('Contact') ?? '').includes(`<${phone.contact}>`), 'the binding is the Contact as the phone wrote it');
    await pollUntil(() => phone.received.some(isRequest('OPTIONS')), { timeoutMs: 10_000, what: 'a qualify OPTIONS at the phone\'s private source' });
    assert.equal(phone.received.find(isRequest('OPTIONS'))!.start, `OPTIONS ${phone.contact} SIP/2.0`, 'the Request-URI stays the Contact');
    assert.deepEqual(named.got, [], 'the address the Contact names was sent something');
  });

  test('N5: a call reaches the phone at its source; ACK and BYE go there; RTP flows both ways; the named address gets nothing', async () => {
    const caller = await RawSipEndpoint.udp('127.0.0.1', stack.sipPort, { domain: DOMAIN });
    endpoints.push(caller);
    const callerRtp = dgram.createSocket('udp4');
    sockets.push(callerRtp);
    let callerRtpIn = 0;
    callerRtp.on('message', () => callerRtpIn++);
    await new Promise<void>((r) => callerRtp.bind(0, '127.0.0.1', () => r()));

    const callId = randomBytes(8).toString('hex');
    const uri = `sip:${DESK.user}@${DOMAIN}`;
    const sdp = `v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio ${callerRtp.address().port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n`;
    const invite = { method: 'INVITE' as const, uri, user: BOB.user, to: uri, contact: `sip:bob@127.0.0.1:${caller.port()}`, callId, body: sdp };
    caller.request({ ...invite, cseq: 1 });
    const challenge = await caller.response(callId, 1);
    assert.match(challenge.start, /^SIP\/2\.0 407/);
    caller.send(`ACK ${uri} SIP/2.0\r\nVia: ${challenge.header('Via')}\r\nMax-Forwards: 70\r\nFrom: ${challenge.header('From')}\r\nTo: ${challenge.header('To')}\r\nCall-ID: ${callId}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n`);
    caller.request({ ...invite, cseq: 2, auth: digestAnswer(challenge.header('Proxy-Authenticate')!, { user: BOB.user, password: BOB.password, method: 'INVITE', uri }) });
    const ok = await caller.response(callId, 2, 20_000);
    assert.match(ok.start, /^SIP\/2\.0 200/, ok.start);
    const ferryContact = /<([^>]+)>/.exec(ok.header('Contact') ?? '')?.[1] ?? uri;
    caller.send(`ACK ${ferryContact} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${caller.port()};branch=z9hG4bK${randomBytes(6).toString('hex')};rport\r\nMax-Forwards: 70\r\nFrom: ${ok.header('From')}\r\nTo: ${ok.header('To')}\r\nCall-ID: ${callId}\r\nCSeq: 2 ACK\r\nContent-Length: 0\r\n\r\n`);

    assert.equal(phone.received.filter(isRequest('INVITE')).length, 1, 'the phone got the INVITE at its private source');
    assert.equal(phone.received.find(isRequest('INVITE'))!.start, `INVITE ${phone.contact} SIP/2.0`, 'the Request-URI stays the Contact');
    await pollUntil(() => phone.received.some(isRequest('ACK')), { timeoutMs: 10_000, what: 'ferry\'s ACK of the phone\'s 2xx at its private source (the dialog keeps its flow)' });

    // RTP: the phone sends from its private address (its SDP named the STUN address); ferry media latches it
    const offer = phone.offer;
    assert.ok(offer, 'ferry\'s offer to the phone names an address and port');
    const answer = { address: /^c=IN IP4 (\S+)/m.exec(ok.text.split('\r\n\r\n')[1] ?? '')?.[1], port: Number(/^m=audio (\d+) /m.exec(ok.text.split('\r\n\r\n')[1] ?? '')?.[1]) };
    assert.ok(answer.address && answer.port, 'ferry\'s answer to the caller names an address and port');
    let seq = 0;
    await pollUntil(() => {
      phone.rtp.send(rtp(++seq, 0x5101), offer.port, offer.address);
      return callerRtpIn >= 20;
    }, { timeoutMs: 10_000, stepMs: 20, what: 'the phone\'s RTP (from its private address) relayed to the caller' });
    let cseq = 0;
    await pollUntil(() => {
      callerRtp.send(rtp(++cseq, 0xca11), answer.port, answer.address!);
      phone.rtp.send(rtp(++seq, 0x5101), offer.port, offer.address);
      return phone.rtpIn >= 20;
    }, { timeoutMs: 10_000, stepMs: 20, what: 'the caller\'s RTP relayed to the phone\'s private address' });

    // the caller hangs up: ferry's BYE to the phone goes where its 2xx came from
    caller.send(`BYE ${ferryContact} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${caller.port()};branch=z9hG4bK${randomBytes(6).toString('hex')};rport\r\nMax-Forwards: 70\r\nFrom: ${ok.header('From')}\r\nTo: ${ok.header('To')}\r\nCall-ID: ${callId}\r\nCSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n`);
    await pollUntil(() => phone.received.some(isRequest('BYE')), { timeoutMs: 10_000, what: 'ferry\'s BYE at the phone\'s private source' });
    assert.deepEqual(named.got, [], 'the address the Contact names was sent something');
  });

  test('N6 (positive control): the same Contact registered from this host (loopback may name any) is dialled where it says: the counting socket gets the INVITE', async () => {
    const ctl = await RawSipEndpoint.udp('127.0.0.1', stack.sipPort, { domain: DOMAIN });
    endpoints.push(ctl);
    const contact = `sip:${CTL.user}@${PUBLIC_ADDRESS}:${named.socket.address().port}`;
    assert.match(await ctl.register(CTL.user, CTL.password, contact), /^SIP\/2\.0 200/);
    const caller = await RawSipEndpoint.udp('127.0.0.1', stack.sipPort, { domain: DOMAIN });
    endpoints.push(caller);
    caller.call(CTL.user, BOB, 30_000).catch(() => undefined);
    await pollUntil(() => named.got.some((l) => l.startsWith('INVITE ')), { timeoutMs: 15_000, what: 'the INVITE for ctl at the address its Contact names' });
    assert.equal(named.got.find((l) => l.startsWith('INVITE ')), `INVITE ${contact} SIP/2.0`);
  });
});
