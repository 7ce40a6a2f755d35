import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SipPhone } from '../helpers/sip-phone';
import { RtpPhone } from '../helpers/rtp-phone';
import { digestAnswer } from '../helpers/sip-raw-client';
import { WebSocket } from 'ws';
import { getJson, startStack, TEST_API_TOKEN, waitFor, type Stack } from '../helpers/stack';
import { WebhookReceiverServer } from '../helpers/webhook-receiver';
import type { CallRecord } from '../../src/gateway/state/call-record';
import type { CallEvent } from '../../src/gateway/events/call-events';

/**
 * Qualify through the real three ferry processes (docs/gateway.md, "Qualify"): a phone that looks as if
 * it were behind NAT — it registers over UDP from 127.0.0.1 with a private address in its Contact, so the
 * gateway reaches it through the REGISTER's source, as it reaches a phone behind a router — is sent an
 * OPTIONS every FERRY_QUALIFY_MS by the gateway, through ferry sip, to that source. While it answers, it
 * is kept and called; when it stops answering, two pings later it is marked unreachable (logged) and a
 * call skips it for the user's other phone; its next answer, or its next REGISTER, makes it callable
 * again. The user's other phone is a desk phone registered from 127.0.0.2 (no NAT: not pinged) that
 * answers every call busy, so a call ends without media and says which phones it tried. The calls try
 * the registrations one at a time (FERRY_RING=newest), so "called first" is the order of the INVITEs;
 * ringing them all at once skips an unreachable one the same way (both take the router's candidates).
 * Integrators see each change: `GET /api/registrations` says `reachable` (and `unreachableSince`), and
 * `registration.unreachable` / `registration.reachable` are POSTed to a real HTTP webhook receiver in this
 * process (signatures checked) and sent over `/api/events`, once per change, with the same event ids.
 */
const PASSWORD = 'qualify-secret';
const QUALIFY_MS = 2000;
const PRIVATE_CONTACT = 'sip:nina@192.168.77.20:5060';
const WEBHOOK_SECRET = 'qualify-webhook-secret-0123456789';
const REACHABILITY = ['registration.unreachable', 'registration.reachable'];

interface ListedRegistration {
  user: string;
  contact: string;
  transport: string;
  source: string;
  reachable: boolean;
  unreachableSince?: number;
}

interface Received {
  method: string;
  uri: string;
  text: string;
  at: number;
  header(name: string): string | undefined;
}

/** A UDP phone with a private address in its Contact; answers OPTIONS while `answering`, and INVITEs 503. */
class NatLookingPhone {
  readonly socket = dgram.createSocket('udp4');
  readonly received: Received[] = [];
  answering = true;
  port = 0;
  private readonly responses = new Map<string, (text: string) => void>();

  async start(): Promise<void> {
    this.socket.on('message', (d, rinfo) => this.onMessage(d.toString('utf8'), rinfo));
    await new Promise<void>((r) => this.socket.bind(0, '127.0.0.1', () => r()));
    this.port = this.socket.address().port;
  }

  private onMessage(text: string, rinfo: dgram.RemoteInfo): void {
    const head = text.split('\r\n\r\n')[0]!.split('\r\n');
    const header = (name: string): string | undefined => {
      const l = head.find((h) => h.toLowerCase().startsWith(`${name.toLowerCase()}:`));
      return l?.slice(l.indexOf(':') + 1).trim();
    };
    if (head[0]!.startsWith('SIP/2.0 ')) {
      this.responses.get(`${header('Call-ID')} ${header('CSeq')}`)?.(text);
      return;
    }
    const [method, uri] = head[0]!.split(' ');
    this.received.push({ method: method!, uri: uri!, text, at: Date.now(), header });
    const reply = (status: string): void => {
      const to = header('To') ?? '';
      const lines = [`SIP/2.0 ${status}`, ...head.filter((h) => /^(Via|From|Call-ID|CSeq):/i.test(h)), `To: ${/;\s*tag=/i.test(to) ? to : `${to};tag=${randomBytes(4).toString('hex')}`}`, 'Content-Length: 0', '', ''];
      this.socket.send(lines.join('\r\n'), rinfo.port, rinfo.address);
    };
    if (method === 'OPTIONS' && this.answering) reply('200 OK');
    if (method === 'INVITE') reply('503 Service Unavailable');
  }

  /** distinct requests of a method (a retransmission repeats its Via branch) since `since` */
  requests(method: string, since = 0): Received[] {
    const seen = new Set<string>();
    return this.received.filter((r) => {
      if (r.method !== method || r.at < since) return false;
      const branch = /branch=([^;,\s]+)/.exec(r.header('Via') ?? '')?.[1] ?? r.text;
      if (seen.has(branch)) return false;
      seen.add(branch);
      return true;
    });
  }

  private send(text: string, port: number, callId: string, cseq: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer to ${cseq}`)), 5000);
      this.responses.set(`${callId} ${cseq}`, (t) => {
        clearTimeout(timer);
        resolve(t);
      });
      this.socket.send(text, port, '127.0.0.1');
    });
  }

  /** REGISTERs the private Contact as `user` with digest; resolves on the 200 */
  async register(sipPort: number, user: string, password: string): Promise<void> {
    const callId = randomBytes(8).toString('hex');
    const tag = randomBytes(4).toString('hex');
    const request = (cseq: number, auth?: string): string => [
      'REGISTER sip:ferry.local SIP/2.0',
      `Via: SIP/2.0/UDP 192.168.77.20:5060;branch=z9hG4bK${randomBytes(6).toString('hex')};rport`,
      'Max-Forwards: 70',
      `From: <sip:${user}@ferry.local>;tag=${tag}`,
      `To: <sip:${user}@ferry.local>`,
      `Call-ID: ${callId}`,
      `CSeq: ${cseq} REGISTER`,
      `Contact: <${PRIVATE_CONTACT}>`,
      'Expires: 600',
      ...(auth ? [`Authorization: ${auth}`] : []),
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
    const first = await this.send(request(1), sipPort, callId, '1 REGISTER');
    const challenge = /\r\nWWW-Authenticate:\s*([^\r\n]+)/i.exec(first)?.[1];
    assert.ok(challenge, `REGISTER challenged: ${first.split('\r\n')[0]}`);
    const ok = await this.send(request(2, digestAnswer(challenge, { user, password, method: 'REGISTER', uri: 'sip:ferry.local' })), sipPort, callId, '2 REGISTER');
    assert.match(ok.split('\r\n')[0]!, /^SIP\/2\.0 200/);
  }

  close(): void {
    this.socket.close();
  }
}

describe('qualify: the gateway pings a NAT\'d UDP registration through ferry sip; no answer makes calls skip it, an answer brings it back', { timeout: 120_000 }, () => {
  let stack: Stack;
  let dir: string;
  const caller = new SipPhone(new RtpPhone(), { user: 'caller' });
  const desk = new SipPhone(new RtpPhone(), { user: 'nina', address: '127.0.0.2', autoAnswer: false });
  const nat = new NatLookingPhone();
  const receiver = new WebhookReceiverServer(WEBHOOK_SECRET);
  /** what /api/events sent, in order */
  const streamed: CallEvent[] = [];
  let stream: WebSocket | undefined;

  before(async () => {
    const callerPort = await caller.start();
    await desk.start();
    await nat.start();
    await receiver.start();
    dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-qualify-'));
    const file = path.join(dir, 'ferry.json');
    await writeFile(file, JSON.stringify({
      domain: 'ferry.local',
      users: [{ user: 'nina', password: PASSWORD }],
      trunks: [{ name: 'caller', address: `127.0.0.1:${callerPort}`, transport: 'udp', acceptFrom: [`127.0.0.1:${callerPort}`] }],
      routes: [{ match: '.*', to: 'user' }],
      webhooks: [{ name: 'integrator', url: receiver.url, secret: WEBHOOK_SECRET, timeoutMs: 1000, retryInitialMs: 200, retryMaxMs: 1000 }],
    }));
    stack = await startStack({
      partEnv: { gateway: { FERRY_SIP_CONFIG: file, FERRY_QUALIFY_MS: String(QUALIFY_MS), FERRY_QUALIFY_MAX_FAILURES: '2', FERRY_LOG_LEVEL: 'info', FERRY_NO_ANSWER_MS: '8000', FERRY_RING: 'newest' } },
    });
    stream = await new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${stack.httpPort}/api/events?types=${REACHABILITY.join(',')}`, { headers: { Authorization: `Bearer ${TEST_API_TOKEN}` } });
      ws.on('message', (m) => streamed.push(JSON.parse(String(m)) as CallEvent));
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
    });
  });

  after(async () => {
    if (process.env.FERRY_TEST_DUMP) console.log(stack?.output.join('\n'));
    stream?.close();
    nat.close();
    await receiver.stop();
    for (const phone of [caller, desk]) await phone.close();
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const via = (): { host: string; port: number } => ({ host: '127.0.0.1', port: stack.sipPort });
  const calls = async (): Promise<CallRecord[]> => (await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls?state=all')).calls;
  const events = (r: CallRecord): string => r.timeline.map((e) => `${e.event}${e.detail ? `(${e.detail})` : ''}`).join(', ');
  /** the gateway's log lines naming `event` for the NAT'd Contact, after output line `from` */
  const logged = (event: string, from: number): string[] => stack.output.slice(from).filter((l) => l.includes(`"${event}"`) && l.includes(PRIVATE_CONTACT));

  /** the NAT'd registration as GET /api/registrations lists it (and every one of nina's) */
  async function listed(): Promise<{ nat: ListedRegistration | undefined; all: ListedRegistration[] }> {
    const all = (await getJson<{ registrations: ListedRegistration[] }>(stack.httpPort, '/api/registrations?user=nina')).registrations;
    return { nat: all.find((r) => r.contact === PRIVATE_CONTACT), all };
  }
  /** the reachability events the webhook receiver got, in order */
  const hooked = (): CallEvent[] => receiver.received.filter((r) => REACHABILITY.includes(r.event.type)).map((r) => r.event);

  /**
   * waits for the `n`th reachability event (1-based) at the receiver and on /api/events; checks it is
   * `type`, signed, the same event on both, and names the NAT'd binding; returns it
   */
  async function nthEvent(n: number, type: string, within: number): Promise<CallEvent> {
    await waitFor(() => hooked().length >= n && streamed.length >= n, within, 20, `${type} (event ${n}) at the webhook receiver and on /api/events`);
    const got = receiver.received.filter((r) => REACHABILITY.includes(r.event.type))[n - 1]!;
    assert.equal(got.event.type, type, `event ${n}: ${hooked().map((e) => e.type).join(', ')}`);
    assert.ok(got.verified, `signed: ${got.verifyProblem}`);
    assert.equal(streamed[n - 1]!.id, got.event.id, 'the same event (id) over /api/events');
    assert.deepEqual(streamed[n - 1], got.event);
    const d = got.event.data;
    assert.deepEqual([d.user, d.aor, d.contact, d.transport], ['nina', 'sip:nina@ferry.local', PRIVATE_CONTACT, 'udp']);
    assert.equal(d.source, `127.0.0.1:${nat.port}`, 'the REGISTER\'s source: where the pings go');
    assert.equal(typeof d.unreachableSince, 'number');
    assert.equal(got.event.callId, undefined);
    assert.ok(!JSON.stringify(got.event).includes(PASSWORD));
    return got.event;
  }

  /** the caller calls nina; the desk phone answers busy: the call's record and the status the caller got */
  async function callNina(): Promise<{ status: number | undefined; record: CallRecord; since: number }> {
    const known = new Set((await calls()).map((c) => c.id));
    const since = Date.now();
    const failure = await caller.call('sip:nina@ferry.local', via()).then(() => undefined, (err: { status?: number }) => err);
    const record = await waitFor(async () => {
      const r = (await calls()).find((c) => !known.has(c.id));
      return r?.state === 'ended' ? r : undefined;
    }, 10_000, 25, 'the call ended');
    return { status: failure?.status, record, since };
  }

  test('S1: pings every FERRY_QUALIFY_MS to the REGISTER\'s source, Request-URI the private Contact; answered: kept and called first; the desk phone (no NAT) is not pinged', { timeout: 40_000 }, async () => {
    await desk.register(via(), PASSWORD);
    await nat.register(stack.sipPort, 'nina', PASSWORD);
    const registeredAt = Date.now();
    const pings = await waitFor(() => (nat.requests('OPTIONS').length >= 3 ? nat.requests('OPTIONS') : undefined), 5 * QUALIFY_MS + 5000, 50, 'three OPTIONS at the NAT\'d phone\'s socket');
    assert.equal(pings[0]!.uri, PRIVATE_CONTACT, 'the Request-URI is the Contact; the datagram came to the REGISTER\'s source');
    assert.match(pings[0]!.header('From') ?? '', /<sip:ferry@ferry\.local>;tag=/);
    assert.ok(pings[0]!.at - registeredAt < QUALIFY_MS + 1500, `the first ping within one interval of the REGISTER (${pings[0]!.at - registeredAt} ms)`);
    for (let i = 1; i < pings.length; i++) {
      const gap = pings[i]!.at - pings[i - 1]!.at;
      assert.ok(gap > QUALIFY_MS / 2 && gap < QUALIFY_MS * 2, `one ping per interval (gap ${gap} ms)`);
    }
    assert.equal(desk.received.filter((m) => m.method === 'OPTIONS').length, 0, 'the desk phone registered without NAT is not pinged (scope nat)');
    const { status, record } = await callNina();
    assert.equal(status, 486, events(record));
    assert.equal(nat.requests('INVITE').length, 1, 'the NAT\'d phone (the newest registration) was INVITEd first');
    assert.ok(record.timeline.some((e) => e.event === 'registration-unavailable' && e.detail?.includes(PRIVATE_CONTACT)), events(record));
    const { nat: listedNat, all } = await listed();
    assert.equal(all.length, 2, 'both of nina\'s registrations listed');
    for (const r of all) {
      assert.equal(r.reachable, true, `${r.contact} reachable`);
      assert.equal('unreachableSince' in r, false);
    }
    assert.equal(listedNat?.source, `127.0.0.1:${nat.port}`);
    // answered pings change nothing: no reachability event (S2 is the positive control)
    assert.equal(hooked().length, 0);
    assert.equal(streamed.length, 0);
  });

  test('S2: it stops answering: after two unanswered pings it is unreachable (one log line); a call skips it and reaches the desk phone at once', { timeout: 40_000 }, async () => {
    const from = stack.output.length;
    const invitesBefore = nat.requests('INVITE').length;
    nat.answering = false;
    const stoppedAt = Date.now();
    await waitFor(() => logged('registration-unreachable', from)[0], 4 * QUALIFY_MS + 10_000, 50, 'registration-unreachable in the gateway log');
    const line = JSON.parse(logged('registration-unreachable', from)[0]!.replace(/^\[[^\]]*\]\s*/, '')) as Record<string, unknown>;
    assert.deepEqual([line.user, line.contact, line.failures, line.level], ['nina', PRIVATE_CONTACT, 2, 'warn']);
    assert.match(String(line.source), /^127\.0\.0\.1:\d+$/);
    assert.ok(!JSON.stringify(line).includes(PASSWORD));
    assert.ok(nat.requests('OPTIONS', stoppedAt).length >= 2, 'two pings went unanswered');
    const unreachable = await nthEvent(1, 'registration.unreachable', 5000);
    assert.equal(unreachable.data.failures, 2);
    assert.ok((unreachable.data.unreachableSince as number) >= stoppedAt && (unreachable.data.unreachableSince as number) <= unreachable.at, 'marked after it stopped answering');
    const { nat: marked, all } = await listed();
    assert.equal(marked?.reachable, false, 'the API says it is unreachable');
    assert.equal(marked?.unreachableSince, unreachable.data.unreachableSince, 'since the time the event gives');
    assert.equal(all.find((r) => r.contact !== PRIVATE_CONTACT)?.reachable, true, 'the desk phone stays reachable');
    const { status, record, since } = await callNina();
    assert.equal(status, 486, events(record));
    assert.equal(record.callee.uri, desk.contact, events(record));
    assert.equal(nat.requests('INVITE').length, invitesBefore, 'no INVITE to the unreachable registration');
    assert.ok(!record.timeline.some((e) => e.event === 'next-registration'), `the desk phone was the first try: ${events(record)}`);
    assert.equal(desk.received.filter((m) => m.method === 'INVITE' && m.at >= since).length, 1);
    const regs = await getJson<{ registrations: { contact: string }[] }>(stack.httpPort, '/api/registrations?user=nina');
    assert.ok(regs.registrations.some((r) => r.contact === PRIVATE_CONTACT), 'kept (marked), not forgotten: it is still pinged');
    await waitFor(() => logged('registration-unreachable', from).length === 1 && nat.requests('OPTIONS', stoppedAt).length >= 4, 4 * QUALIFY_MS, 50, 'more pings, still one log line');
    assert.deepEqual(hooked().map((e) => e.type), ['registration.unreachable'], 'more unanswered pings: still one event');
    assert.equal(streamed.length, 1);
  });

  test('S3: it answers a ping again: reachable (logged), the next call tries it first', { timeout: 40_000 }, async () => {
    const from = stack.output.length;
    const invitesBefore = nat.requests('INVITE').length;
    nat.answering = true;
    await waitFor(() => logged('registration-reachable', from)[0], 2 * QUALIFY_MS + 10_000, 50, 'registration-reachable in the gateway log');
    const reachable = await nthEvent(2, 'registration.reachable', 5000);
    assert.equal(reachable.data.by, 'answer');
    assert.equal(reachable.data.unreachableSince, hooked()[0]!.data.unreachableSince, 'names when the mark was set');
    const { nat: cleared } = await listed();
    assert.equal(cleared?.reachable, true, 'the API says it is reachable again');
    assert.equal(cleared && 'unreachableSince' in cleared, false);
    const { status, record } = await callNina();
    assert.equal(status, 486, events(record));
    assert.equal(nat.requests('INVITE').length, invitesBefore + 1, `INVITEd first again: ${events(record)}`);
    assert.equal(hooked().length, 2, 'answered pings after that: no further event');
  });

  test('S4: unreachable, then it registers again without answering a ping: callable at once', { timeout: 40_000 }, async () => {
    const from = stack.output.length;
    nat.answering = false;
    await waitFor(() => logged('registration-unreachable', from)[0], 4 * QUALIFY_MS + 10_000, 50, 'registration-unreachable in the gateway log');
    await nthEvent(3, 'registration.unreachable', 5000);
    assert.equal((await listed()).nat?.reachable, false);
    // positive control: unreachable now, so a call does not reach it
    const invites0 = nat.requests('INVITE').length;
    await callNina();
    assert.equal(nat.requests('INVITE').length, invites0, 'unreachable: not INVITEd');
    await nat.register(stack.sipPort, 'nina', PASSWORD);
    // from now on it answers again, so the pings do not mark the new binding unreachable once more
    nat.answering = true;
    // the REGISTER cleared the mark: the registrar tells it, without waiting for a ping
    const reachable = await nthEvent(4, 'registration.reachable', 3000);
    assert.equal(reachable.data.by, 'register');
    assert.equal((await listed()).nat?.reachable, true);
    const { status, record } = await callNina();
    assert.equal(status, 486, events(record));
    assert.equal(nat.requests('INVITE').length, invites0 + 1, `registered again: INVITEd first: ${events(record)}`);
    assert.deepEqual(hooked().map((e) => e.type), ['registration.unreachable', 'registration.reachable', 'registration.unreachable', 'registration.reachable'], 'one event per change');
    assert.equal(streamed.length, 4);
  });
});
