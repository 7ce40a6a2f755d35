import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type WebSocket from 'ws';
import type { SipPhone } from './sip-phone';
import { getJson, startStack, TEST_API_TOKEN, waitFor, type Part, type Stack } from './stack';
import { answerOver, vanish, webphoneRegisters } from './raw-webphone-registration';
import type { CallRecord } from '../../src/gateway/state/call-record';

export interface UserCallMediaStats {
  pipelines: number;
  elements: number;
  boundPorts: number;
}

export interface SipCounts {
  dialogs: number;
  pending: number;
}

/** A call's timeline as one line, for assertion messages */
export const events = (r: CallRecord): string => r.timeline.map((e) => `${e.event}${e.detail ? `(${e.detail})` : ''}`).join(', ');

/** How often `event` stands in a call's timeline */
export const count = (r: CallRecord, event: string): number => r.timeline.filter((e) => e.event === event).length;

/** The requests of `method` a scripted phone received since `since` */
export const requests = (phone: SipPhone, method: string, since: number) => phone.received.filter((m) => m.method === method && m.at >= since);

/** A request's Reason header */
export const reasonOf = (m: { message: { headers: Map<string, string[]> } }): string | undefined => m.message.headers.get('reason')?.[0];

/** More than `n` RTP packets arrived at `phone` after `since` */
export const hears = (phone: SipPhone, since: number, what: string, n = 20): Promise<unknown> =>
  waitFor(async () => (await phone.media.rtpReceivedBetween(since, Date.now())) > n, 10_000, 25, what);

/**
 * A registered webphone socket that rings (180) on every INVITE and answers a CANCEL 200; with `invites`
 * (from requestsTo(), set up before this) it then ends the newest INVITE 487 as well.
 */
export function tabRings(tab: WebSocket, invites?: string[]): void {
  tab.on('message', (d) => {
    const text = d.toString();
    if (text.startsWith('INVITE ')) answerOver(tab, text, '180 Ringing');
    if (text.startsWith('CANCEL ')) {
      answerOver(tab, text, '200 OK');
      if (invites) answerOver(tab, invites.at(-1)!, '487 Request Terminated');
    }
  });
}

/** FERRY_RING=all with FERRY_NO_ANSWER_MS `noAnswerMs`, records kept 60 s, ferry sip's stats line every 200 ms (for backToZero) */
export function ringAllEnv(noAnswerMs: number): UserCallWorldOptions['partEnv'] {
  return {
    gateway: { FERRY_CALL_RECORD_TTL_MS: '60000', FERRY_NO_ANSWER_MS: String(noAnswerMs), FERRY_RING: 'all' },
    sip: { FERRY_SIP_STATS_INTERVAL_MS: '200' },
  };
}

export interface UserCallWorldOptions {
  /** prefix of the temporary directory that holds the sip-config */
  dirPrefix: string;
  /** the users of domain ferry.local, all with `password` */
  users: readonly string[];
  password: string;
  /** the trunk phones by trunk name (UDP, accepted from their own address), started in this order; `caller` dials the users */
  trunks: { caller: SipPhone } & Record<string, SipPhone>;
  /** the users' phones, started after the trunks */
  desks: readonly SipPhone[];
  routes: { match: string; to: string; rewrite?: string }[];
  /** environment per part; the gateway's FERRY_SIP_CONFIG is added */
  partEnv: Partial<Record<Part, Record<string, string>>>;
  /** Redis for the gateways' store (none: in memory) */
  redisUrl?: string;
  /** a second gateway on the same ferry sip, ferry media and store (`redisUrl` needed) */
  secondGateway?: boolean;
}

/**
 * Calls to users with several registrations through the three real ferry processes: scripted UDP trunk
 * and desk phones, a sip-config naming them (users, trunks, routes), and the reads a test of the gateway's
 * user calls makes (/api/calls, /api/registrations, ferry media's /stats, ferry sip's stats line,
 * /metrics). start() in before(), close() in after().
 */
export class UserCallWorld {
  stack!: Stack;
  private dir: string | undefined;
  /** webphone sockets the tests opened: vanished by close() */
  readonly sockets: WebSocket[] = [];
  readonly caller: SipPhone;

  constructor(private readonly opts: UserCallWorldOptions) {
    this.caller = opts.trunks.caller;
  }

  async start(): Promise<void> {
    const ports: Record<string, number> = {};
    for (const [name, phone] of Object.entries(this.opts.trunks)) ports[name] = await phone.start();
    for (const desk of this.opts.desks) await desk.start();
    this.dir = await mkdtemp(path.join(os.tmpdir(), this.opts.dirPrefix));
    const file = path.join(this.dir, 'ferry.json');
    await writeFile(file, JSON.stringify({
      domain: 'ferry.local',
      users: this.opts.users.map((user) => ({ user, password: this.opts.password })),
      trunks: Object.keys(this.opts.trunks).map((name) => ({ name, address: `127.0.0.1:${ports[name]}`, transport: 'udp', acceptFrom: [`127.0.0.1:${ports[name]}`] })),
      routes: this.opts.routes,
    }));
    const { gateway, ...others } = this.opts.partEnv;
    this.stack = await startStack({
      partEnv: { ...others, gateway: { FERRY_SIP_CONFIG: file, ...gateway } },
      ...(this.opts.redisUrl ? { redisUrl: this.opts.redisUrl } : {}),
      ...(this.opts.secondGateway ? { secondGateway: true } : {}),
    });
  }

  async close(): Promise<void> {
    if (process.env.FERRY_TEST_DUMP) console.log(this.stack?.output.join('\n'));
    for (const ws of this.sockets) await vanish(ws);
    for (const phone of [...Object.values(this.opts.trunks), ...this.opts.desks]) await phone.close();
    await this.stack?.stop();
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }

  /** a webphone tab of `user` registers over a SIP WebSocket with the Contact tabContact(`tab`); close() vanishes it */
  readonly webphoneTab = async (user: string, tab: string): Promise<WebSocket> => {
    const ws = await webphoneRegisters(this.stack.wsPort, user, this.opts.password, 'ferry.local', tab);
    this.sockets.push(ws);
    return ws;
  };

  readonly via = (): { host: string; port: number } => ({ host: '127.0.0.1', port: this.stack.sipPort });
  readonly mediaStats = (): Promise<UserCallMediaStats> => getJson<UserCallMediaStats>(this.stack.mediaPort, '/stats');
  readonly calls = async (): Promise<CallRecord[]> => (await getJson<{ calls: CallRecord[] }>(this.stack.httpPort, '/api/calls?state=all')).calls;
  readonly knownCalls = async (): Promise<Set<string>> => new Set((await this.calls()).map((c) => c.id));
  readonly record = (id: string): Promise<CallRecord> => getJson<CallRecord>(this.stack.httpPort, `/api/calls/${id}`);
  readonly contacts = async (user: string): Promise<string[]> =>
    (await getJson<{ registrations: { contact: string }[] }>(this.stack.httpPort, `/api/registrations?user=${user}`)).registrations.map((r) => r.contact);
  readonly newCall = async (known: Set<string>): Promise<CallRecord> => waitFor(async () => (await this.calls()).find((c) => !known.has(c.id)), 5000, 25, 'the new call');
  /** the call's record once it is in `state` */
  readonly inState = (id: string, state: CallRecord['state'], what: string, timeoutMs = 5000): Promise<CallRecord> => waitFor(async () => {
    const r = await this.record(id);
    return r.state === state ? r : undefined;
  }, timeoutMs, 25, what);
  readonly ended = (id: string): Promise<CallRecord> => this.inState(id, 'ended', 'the call ended', 10_000);
  /** `phone` dials `target` through ferry sip: resolves with undefined once answered, with the failure otherwise */
  readonly dials = (phone: SipPhone, target: string): Promise<{ status?: number } | undefined> =>
    phone.call(target, this.via()).then(() => undefined, (err: { status?: number }) => err);
  /** the caller dials `target` (a trunk phone that answers at once); resolves with the new call's id once `far` hears the caller */
  readonly connects = async (target: string, far: SipPhone, what: string): Promise<string> => {
    const known = await this.knownCalls();
    const since = Date.now();
    await this.caller.call(target, this.via());
    await hears(far, since, what);
    return (await this.newCall(known)).id;
  };
  /** POSTs `body` as JSON to the gateway's API at `p` */
  readonly post = (p: string, body: unknown): Promise<Response> => fetch(`http://127.0.0.1:${this.stack.httpPort}${p}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${TEST_API_TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  /** ferry media holds exactly `pipelines` pipelines and `elements` elements */
  readonly mediaHolds = (pipelines: number, elements: number, what: string): Promise<UserCallMediaStats> => waitFor(async () => {
    const s = await this.mediaStats();
    return s.pipelines === pipelines && s.elements === elements ? s : undefined;
  }, 5000, 25, what);

  /** ferry sip's newest live counts (FERRY_SIP_STATS_INTERVAL_MS set for the sip part) */
  readonly sipCounts = (): SipCounts | undefined => {
    const line = [...this.stack.output].reverse().find((l) => l.startsWith('[sip] ferry sip stats '));
    return line ? (JSON.parse(line.slice('[sip] ferry sip stats '.length)) as SipCounts) : undefined;
  };
  readonly activeCalls = async (): Promise<number> => {
    const res = await fetch(`http://127.0.0.1:${this.stack.httpPort}/metrics`, { headers: { Authorization: `Bearer ${TEST_API_TOKEN}` } });
    return Number(/^ferry_active_calls (\d+)$/m.exec(await res.text())?.[1] ?? NaN);
  };
  /** no pipeline, element or bound port in ferry media, no dialog or pending request in ferry sip, no active call */
  readonly backToZero = async (): Promise<void> => {
    await waitFor(async () => {
      const s = await this.mediaStats();
      return s.pipelines === 0 && s.elements === 0 && s.boundPorts === 0;
    }, 5000, 25, 'ferry media back to no pipeline, element or bound port');
    await waitFor(() => {
      const c = this.sipCounts();
      return !!c && c.dialogs === 0 && c.pending === 0;
    }, 5000, 50, `ferry sip back to no dialog and no pending request (last: ${JSON.stringify(this.sipCounts())})`);
    assert.equal(await this.activeCalls(), 0, 'the gateway has no active call');
  };

  /** `from` (default the caller) hangs up; `other` gets the BYE; both stop their media */
  readonly hangUp = async (other: SipPhone, from: SipPhone = this.caller): Promise<void> => {
    const since = Date.now();
    await from.hangup();
    await from.media.stopMedia();
    await other.waitForRequest('BYE', 5000, since);
    await other.media.stopMedia();
  };
}
