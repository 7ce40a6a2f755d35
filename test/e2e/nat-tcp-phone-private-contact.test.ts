import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import path from 'node:path';
import { NetNamespace } from '../helpers/netns';
import { digestAnswer } from '../helpers/sip-raw-client';
import { startStack, type Stack } from '../helpers/stack';
import { pollUntil } from '../helpers/wait-for';

/**
 * A phone behind NAT registers over TCP from a public address with a Contact naming its private address
 * (`sip:1001@10.x.y.z:port;transport=tcp`). Calls reach it over its connection; once that connection has
 * closed, and after a restart of ferry sip, a call to the user must not make ferry sip open a connection
 * to that private address (on ferry's own network: another host's Redis, a control port). Real ferry sip,
 * media and gateway; the phone sends from this host's non-loopback public-class address; "a private host"
 * is a TCP listener on a private address of this host (the root end of a veth pair into a network
 * namespace) counting every connection it gets, at the very address and port the Contact names.
 */
const DOMAIN = 'ferry.local';
/** this host's first non-loopback, non-private IPv4 address, to register from a public source */
const PUBLIC_ADDRESS = Object.values(networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal && !/^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.|169\.254\.)/.test(i.address))?.address;
const SKIP = process.getuid?.() !== 0 ? 'needs root (network namespaces)' : !PUBLIC_ADDRESS ? 'this host has no public-class IPv4 address to send from' : false;

interface Msg {
  text: string;
  start: string;
  header(name: string): string | undefined;
}

function parse(text: string): Msg {
  const head = text.split('\r\n\r\n')[0]!.split('\r\n');
  return {
    text,
    start: head[0] ?? '',
    header(name) {
      const l = head.find((h) => h.toLowerCase().startsWith(`${name.toLowerCase()}:`));
      return l?.slice(l.indexOf(':') + 1).trim();
    },
  };
}

/** one SIP endpoint: a UDP socket or a TCP connection from a chosen local address; keeps every message received */
class Endpoint {
  readonly received: Msg[] = [];
  private buffer = '';
  private constructor(
    readonly transport: 'udp' | 'tcp',
    readonly address: string,
    private readonly sendText: (t: string) => void,
    readonly port: () => number,
    readonly close: () => void,
    readonly closed: () => boolean,
  ) {}

  static async udp(address: string, serverPort: number): Promise<Endpoint> {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, address, () => r()));
    let closed = false;
    const e = new Endpoint('udp', address, (t) => s.send(Buffer.from(t), serverPort, '127.0.0.1'), () => s.address().port, () => { if (!closed) { closed = true; s.close(); } }, () => closed);
    s.on('message', (d) => e.received.push(parse(d.toString('utf8'))));
    return e;
  }

  static async tcp(address: string, serverPort: number): Promise<Endpoint> {
    const s = net.connect({ host: '127.0.0.1', port: serverPort, localAddress: address });
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve);
      s.once('error', reject);
    });
    s.on('error', () => {});
    let closed = false;
    s.once('close', () => { closed = true; });
    const port = s.localPort!;
    const e = new Endpoint('tcp', address, (t) => s.write(t), () => port, () => s.destroy(), () => closed);
    s.on('data', (d) => e.onStream(d.toString('utf8')));
    return e;
  }

  private onStream(chunk: string): void {
    this.buffer += chunk;
    for (;;) {
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const len = Number(/\r\n(?:Content-Length|l)\s*:\s*(\d+)/i.exec(this.buffer.slice(0, end))?.[1] ?? 0);
      if (this.buffer.length < end + 4 + len) return;
      const m = parse(this.buffer.slice(0, end + 4 + len));
      this.buffer = this.buffer.slice(end + 4 + len);
      this.received.push(m);
      // the phone is busy: every INVITE it gets is answered 486 (ferry sip ACKs it)
      if (m.start.startsWith('INVITE ')) this.answer(m, 486, 'Busy Here');
    }
  }

  private answer(req: Msg, status: number, reason: string): void {
    const to = req.header('To') ?? '';
    this.send([
      `SIP/2.0 ${status} ${reason}`,
      ...req.text.split('\r\n\r\n')[0]!.split('\r\n').filter((l) => /^via\s*:/i.test(l)),
      `From: ${req.header('From')}`,
      `To: ${/;tag=/.test(to) ? to : `${to};tag=${randomBytes(4).toString('hex')}`}`,
      `Call-ID: ${req.header('Call-ID')}`,
      `CSeq: ${req.header('CSeq')}`,
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'));
  }

  send(text: string): void {
    this.sendText(text);
  }

  request(o: { method: 'REGISTER' | 'INVITE'; uri: string; user: string; to: string; contact: string; callId: string; cseq: number; auth?: string; body?: string }): void {
    const body = o.body ?? '';
    this.send([
      `${o.method} ${o.uri} SIP/2.0`,
      `Via: SIP/2.0/${this.transport.toUpperCase()} ${this.address}:${this.port()};branch=z9hG4bK${randomBytes(6).toString('hex')};rport`,
      'Max-Forwards: 70',
      `From: <sip:${o.user}@${DOMAIN}>;tag=${randomBytes(4).toString('hex')}`,
      `To: <${o.to}>`,
      `Call-ID: ${o.callId}`,
      `CSeq: ${o.cseq} ${o.method}`,
      `Contact: <${o.contact}>`,
      ...(o.method === 'REGISTER' ? ['Expires: 600'] : []),
      ...(o.auth ? [`${o.method === 'REGISTER' ? 'Authorization' : 'Proxy-Authorization'}: ${o.auth}`] : []),
      ...(body ? ['Content-Type: application/sdp'] : []),
      `Content-Length: ${Buffer.byteLength(body)}`,
      '',
      body,
    ].join('\r\n'));
  }

  async response(callId: string, cseq: number, timeoutMs = 10_000): Promise<Msg> {
    return pollUntil(() => this.received.find((m) => m.start.startsWith('SIP/2.0 ') && !/^SIP\/2\.0 1\d\d/.test(m.start) && m.header('Call-ID') === callId && m.header('CSeq')?.startsWith(`${cseq} `)), { timeoutMs, what: `final response to ${callId} ${cseq}` });
  }

  /** REGISTER `user` with `contact`, answering the 401 challenge; resolves with the final status line */
  async register(user: string, password: string, contact: string): Promise<string> {
    const callId = randomBytes(8).toString('hex');
    const uri = `sip:${DOMAIN}`;
    this.request({ method: 'REGISTER', uri, user, to: `sip:${user}@${DOMAIN}`, contact, callId, cseq: 1 });
    const challenge = await this.response(callId, 1);
    assert.match(challenge.start, /^SIP\/2\.0 401/);
    const auth = digestAnswer(challenge.header('WWW-Authenticate')!, { user, password, method: 'REGISTER', uri });
    this.request({ method: 'REGISTER', uri, user, to: `sip:${user}@${DOMAIN}`, contact, callId, cseq: 2, auth });
    return (await this.response(callId, 2)).start;
  }

  /** bob calls `user`; resolves with the final response's status line */
  async call(user: string, timeoutMs = 20_000): Promise<string> {
    const callId = randomBytes(8).toString('hex');
    const uri = `sip:${user}@${DOMAIN}`;
    const sdp = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n';
    const invite = { method: 'INVITE' as const, uri, user: 'bob', to: uri, contact: `sip:bob@127.0.0.1:${this.port()}`, callId, body: sdp };
    this.request({ ...invite, cseq: 1 });
    const challenge = await this.response(callId, 1);
    assert.match(challenge.start, /^SIP\/2\.0 407/);
    this.ack(uri, challenge, 1);
    const auth = digestAnswer(challenge.header('Proxy-Authenticate')!, { user: 'bob', password: 'bob-nat-tcp-secret', method: 'INVITE', uri });
    this.request({ ...invite, cseq: 2, auth });
    const final = await this.response(callId, 2, timeoutMs);
    this.ack(uri, final, 2);
    return final.start;
  }

  private ack(uri: string, res: Msg, cseq: number): void {
    this.send(`ACK ${uri} SIP/2.0\r\nVia: ${res.header('Via')}\r\nMax-Forwards: 70\r\nFrom: ${res.header('From')}\r\nTo: ${res.header('To')}\r\nCall-ID: ${res.header('Call-ID')}\r\nCSeq: ${cseq} ACK\r\nContent-Length: 0\r\n\r\n`);
  }
}

describe('NAT: a phone registered over TCP from a public address with a private Contact is never dialled at that private address', { skip: SKIP, timeout: 150_000 }, () => {
  let stack: Stack;
  let ns: NetNamespace;
  let dir: string;
  let privateHost: net.Server;
  let privatePort = 0;
  /** connections "the private host" got */
  let privateConnections = 0;
  const endpoints: Endpoint[] = [];
  let contact = '';

  before(async () => {
    ns = await NetNamespace.create();
    privateHost = net.createServer((s) => {
      privateConnections++;
      s.on('error', () => {});
      // reads what it is sent and answers nothing, as a service that does not speak SIP
      s.resume();
      setTimeout(() => s.destroy(), 2000).unref();
    });
    privateHost.maxConnections = 16;
    await new Promise<void>((resolve, reject) => {
      privateHost.once('error', reject);
      privateHost.listen(0, ns.hostAddress, () => resolve());
    });
    privatePort = (privateHost.address() as net.AddressInfo).port;
    contact = `sip:1001@${ns.hostAddress}:${privatePort};transport=tcp`;
    dir = mkdtempSync(path.join(tmpdir(), 'ferry-nat-tcp-'));
    const config = {
      domain: DOMAIN,
      users: [
        { user: '1001', password: 'desk-1001-nat-tcp-secret' },
        { user: 'bob', password: 'bob-nat-tcp-secret' },
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
    await new Promise<void>((r) => (privateHost ? privateHost.close(() => r()) : r()));
    await ns?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const phone = async (): Promise<Endpoint> => {
    const p = await Endpoint.tcp(PUBLIC_ADDRESS!, stack.sipPort);
    endpoints.push(p);
    assert.match(await p.register('1001', 'desk-1001-nat-tcp-secret', contact), /^SIP\/2\.0 200/);
    return p;
  };
  const caller = async (): Promise<Endpoint> => {
    const c = await Endpoint.udp('127.0.0.1', stack.sipPort);
    endpoints.push(c);
    return c;
  };
  const isInvite = (m: Msg): boolean => m.start.startsWith('INVITE ');
  /** ferry sip logged that the INVITE found no connection at the phone's public source address and port (where it went instead of the Contact) */
  const triedPublicSource = (p: Endpoint): boolean =>
    stack.output.some((l) => l.includes('request target unreachable') && l.includes(`no TCP connection to ${PUBLIC_ADDRESS}:${p.port()}`));

  test('N1: while the phone\'s TCP connection is up, its call goes over that connection (positive control)', async () => {
    const p = await phone();
    const status = await (await caller()).call('1001');
    assert.equal(p.received.filter(isInvite).length, 1, 'the phone gets the INVITE over its connection');
    assert.equal(p.received.find(isInvite)!.start, `INVITE ${contact} SIP/2.0`, 'the Request-URI stays the Contact');
    assert.match(status, /^SIP\/2\.0 486/, 'the phone\'s answer reaches the caller');
    assert.equal(privateConnections, 0, 'nothing connected to the private address');
    p.close();
    await pollUntil(() => p.closed(), { timeoutMs: 5000, what: 'the phone\'s connection closed' });
  });

  test('N2: after the phone\'s connection closed, a call to it fails without a connection to the private address', async () => {
    const p = await phone();
    p.close();
    await pollUntil(() => p.closed(), { timeoutMs: 5000, what: 'the phone\'s connection closed' });
    const was = privateConnections;
    const status = await (await caller()).call('1001');
    assert.match(status, /^SIP\/2\.0 480/, `the caller gets a clean failure: ${status}`);
    assert.equal(privateConnections - was, 0, `ferry sip connected to the private Contact address ${ns.hostAddress}:${privatePort}`);
    await pollUntil(() => triedPublicSource(p), { timeoutMs: 5000, what: 'ferry sip logging that it found no connection at the phone\'s public source' });
  });

  test('N3: after a restart of ferry sip (it remembers no binding), a call to it fails without a connection to the private address', async () => {
    const p = await phone();
    p.close();
    await pollUntil(() => p.closed(), { timeoutMs: 5000, what: 'the phone\'s connection closed' });
    await stack.restart('sip');
    // the gateway is back on ferry sip once a REGISTER is answered again (bob's own UDP registration)
    const c = await caller();
    await pollUntil(async () => {
      try {
        return /^SIP\/2\.0 200/.test(await c.register('bob', 'bob-nat-tcp-secret', `sip:bob@127.0.0.1:${c.port()}`));
      } catch {
        return false;
      }
    }, { timeoutMs: 30_000, stepMs: 500, what: 'the gateway answering REGISTERs through the restarted ferry sip' });
    const was = privateConnections;
    const status = await c.call('1001');
    assert.match(status, /^SIP\/2\.0 480/, `the caller gets a clean failure: ${status}`);
    assert.equal(privateConnections - was, 0, `ferry sip connected to the private Contact address ${ns.hostAddress}:${privatePort}`);
    await pollUntil(() => triedPublicSource(p), { timeoutMs: 5000, what: 'ferry sip logging that it found no connection at the phone\'s public source' });
  });
});
