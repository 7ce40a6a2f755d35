/**
 * A call through ferry sip between two scripted UDP phones, bridged by a drachtio-srf B2BUA app that
 * runs as its own process (test/helpers/srf-b2bua-child.ts), so a test can SIGKILL the app mid-call.
 * Also: the engine's live counts read from its `ferry sip stats` lines, and in-dialog requests sent
 * by dialog id through plain drachtio-srf (BYE, and the X-Ferry-Claim OPTIONS that claims a dialog).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { spawnSipEngine, type SipEngineProcess } from './sip-engine-process';
import { waitFor } from './srf-app';
import { SipUdpPhone, inviteText, sipToken, TEST_SDP, type ReceivedSip } from './sip-udp-phone';
import type { ChildEvent, DialogSnapshot } from './srf-b2bua-child';

export interface B2buaChild {
  child: ChildProcess;
  events: ChildEvent[];
  exited: Promise<void>;
  /** SIGKILLs the app (if still running) and waits for it to exit. */
  kill(): Promise<void>;
}

/** Starts the B2BUA app process against the control port; resolves once it is connected. */
export function startB2buaChild(controlPort: number, bLegUri: string, timeoutMs = 20_000): Promise<B2buaChild> {
  const script = path.join(__dirname, 'srf-b2bua-child.ts');
  const child = spawn(process.execPath, ['--import', 'tsx', script, '127.0.0.1', String(controlPort), 'cymru', bLegUri], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const events: ChildEvent[] = [];
  let buffered = '';
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout!.on('data', (d: Buffer) => {
    buffered += d.toString();
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (line.startsWith('{')) events.push(JSON.parse(line) as ChildEvent);
    }
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      clearInterval(check);
      void kill();
      reject(new Error(`the B2BUA app did not connect: ${stderr.slice(-1500)}`));
    }, timeoutMs);
    const check = setInterval(() => {
      const failed = events.find((e) => e.event === 'error');
      if (failed) {
        clearInterval(check);
        clearTimeout(timer);
        void kill();
        reject(new Error(`B2BUA app: ${JSON.stringify(failed)}`));
      } else if (events.some((e) => e.event === 'ready')) {
        clearInterval(check);
        clearTimeout(timer);
        resolve({ child, events, exited, kill });
      }
    }, 20);
    child.once('exit', (code) => {
      clearInterval(check);
      clearTimeout(timer);
      reject(new Error(`the B2BUA app exited (${code}) before connecting: ${stderr.slice(-1500)}`));
    });
  });
}

/** When the phone received each request (ms since epoch), by method. */
export type ArrivalLog = Array<{ method: string; at: number; message: ReceivedSip }>;

function methodOf(m: ReceivedSip): string | undefined {
  return m.startLine.startsWith('SIP/2.0') ? undefined : m.startLine.split(' ')[0];
}

function okFor(m: ReceivedSip, phone: SipUdpPhone, toTag: string | undefined, body: string): string {
  const to = m.header('To') ?? '';
  return ['SIP/2.0 200 OK', `Via: ${m.header('Via')}`, `From: ${m.header('From')}`, `To: ${toTag && !/;tag=/.test(to) ? `${to};tag=${toTag}` : to}`,
    `Call-ID: ${m.header('Call-ID')}`, `CSeq: ${m.header('CSeq')}`, `Contact: <sip:phone@127.0.0.1:${phone.port}>`,
    ...(body ? ['Content-Type: application/sdp'] : []), `Content-Length: ${Buffer.byteLength(body)}`, '', body].join('\r\n');
}

/**
 * A phone that answers INVITE (200 with SDP, adding its To tag), BYE and OPTIONS with 200, and logs
 * when each request arrived. `ringOnly` makes it answer an initial INVITE with 180 only (a call that rings).
 */
export async function answeringPhone(targetPort: number, options: { ringOnly?: boolean } = {}): Promise<{ phone: SipUdpPhone; arrivals: ArrivalLog }> {
  const phone = await SipUdpPhone.open(targetPort);
  const arrivals: ArrivalLog = [];
  const tag = sipToken();
  phone.autoAnswer = (m) => {
    const method = methodOf(m);
    if (!method) return undefined;
    arrivals.push({ method, at: Date.now(), message: m });
    if (method === 'INVITE') {
      if (options.ringOnly && !/;tag=/.test(m.header('To') ?? '')) {
        return okFor(m, phone, tag, '').replace('SIP/2.0 200 OK', 'SIP/2.0 180 Ringing');
      }
      return okFor(m, phone, tag, TEST_SDP);
    }
    if (method === 'BYE' || method === 'OPTIONS') return okFor(m, phone, undefined, '');
    if (method === 'CANCEL') return okFor(m, phone, undefined, '');
    return undefined;
  };
  return { phone, arrivals };
}

export interface BridgedCall {
  engine: SipEngineProcess;
  caller: { phone: SipUdpPhone; arrivals: ArrivalLog };
  callee: { phone: SipUdpPhone; arrivals: ArrivalLog };
  app: B2buaChild;
  /** the 200 the caller got */
  ok: ReceivedSip;
  bridged: Extract<ChildEvent, { event: 'bridged' }>;
}

/**
 * ferry sip (orphan time `orphanMs`, stats every 100 ms) with a B2BUA app bridging a call between two
 * answering phones; resolves once ferry sip holds both dialogs. What it starts is pushed on `cleanup`
 * (run in reverse). `calleeIgnoresBye`: the callee answers a BYE but leaves its call up.
 */
export async function bridgedCallThroughApp(
  cleanup: Array<() => Promise<void> | void>,
  orphanMs: number,
  options: { calleeIgnoresBye?: boolean } = {},
): Promise<BridgedCall> {
  const engine: SipEngineProcess = await spawnSipEngine({
    FERRY_SIP_ORPHAN_DIALOG_MS: String(orphanMs),
    FERRY_SIP_STATS_INTERVAL_MS: '100',
    FERRY_LOG_LEVEL: 'info',
  });
  cleanup.push(() => engine.stop());
  const caller = await answeringPhone(engine.ports.sip);
  const callee = await answeringPhone(engine.ports.sip);
  cleanup.push(() => { caller.phone.close(); callee.phone.close(); });
  if (options.calleeIgnoresBye) {
    const answer = callee.phone.autoAnswer!;
    callee.phone.autoAnswer = (m) => (m.startLine.startsWith('BYE ') ? (answer(m), undefined) : answer(m));
  }
  const app: B2buaChild = await startB2buaChild(engine.ports.control, `sip:callee@127.0.0.1:${callee.phone.port}`);
  cleanup.push(() => app.kill());
  const ok = await placeCall(caller.phone, engine.ports.sip);
  await waitFor(() => app.events.some((e) => e.event === 'bridged'), 'the app bridging the call', 15_000);
  const bridged = app.events.find((e) => e.event === 'bridged') as Extract<ChildEvent, { event: 'bridged' }>;
  await waitFor(() => latestStats(engine)?.dialogs === 2, 'ferry sip holding both dialogs of the call');
  return { engine, caller, callee, app, ok, bridged };
}

/** The caller's side of a call: INVITE to ferry sip, wait for the 200, ACK it. Returns the 200. */
export async function placeCall(caller: SipUdpPhone, enginePort: number, timeoutMs = 15_000): Promise<ReceivedSip> {
  const callId = sipToken();
  caller.sendRaw(inviteText(caller, { callId, fromTag: sipToken(), branch: sipToken() }, enginePort));
  const ok = await caller.waitFor((m) => m.startLine.startsWith('SIP/2.0 200') && m.header('Call-ID') === callId
    && /INVITE/.test(m.header('CSeq') ?? ''), timeoutMs);
  caller.sendRaw([`ACK sip:service@127.0.0.1:${enginePort} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bK${sipToken()};rport`, 'Max-Forwards: 70',
    `From: ${ok.header('From')}`, `To: ${ok.header('To')}`, `Call-ID: ${callId}`, 'CSeq: 1 ACK', 'Content-Length: 0', '', ''].join('\r\n'));
  return ok;
}

/** A BYE from the caller inside the call its 200 `ok` set up. */
export function byeFromCaller(caller: SipUdpPhone, ok: ReceivedSip, enginePort: number, cseq = 2): string {
  return [`BYE sip:service@127.0.0.1:${enginePort} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${caller.port};branch=z9hG4bK${sipToken()};rport`,
    'Max-Forwards: 70', `From: ${ok.header('From')}`, `To: ${ok.header('To')}`, `Call-ID: ${ok.header('Call-ID')}`, `CSeq: ${cseq} BYE`,
    'Content-Length: 0', '', ''].join('\r\n');
}

export interface EngineStats {
  dialogs: number;
  pending: number;
  serverTransactions: number;
  clientTransactions: number;
  orphanedDialogs: number;
  heldRequests: number;
}

/** The engine's live counts from its newest `ferry sip stats` line (needs FERRY_SIP_STATS_INTERVAL_MS). */
export function latestStats(engine: SipEngineProcess): EngineStats | undefined {
  const lines = engine.stdout().split('\n').filter((l) => l.startsWith('ferry sip stats '));
  const last = lines[lines.length - 1];
  return last ? (JSON.parse(last.slice('ferry sip stats '.length)) as EngineStats) : undefined;
}

/** Number of `ferry sip stats` lines printed so far (wait for one more to read counts taken after an event). */
export function statsLineCount(engine: SipEngineProcess): number {
  return engine.stdout().split('\n').filter((l) => l.startsWith('ferry sip stats ')).length;
}

/** The engine's JSON log lines (stderr; spawn it with FERRY_LOG_LEVEL=info) whose `message` matches. */
export function engineLog(engine: SipEngineProcess, message: RegExp): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of engine.stderr().split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (typeof entry.message === 'string' && message.test(entry.message)) out.push(entry);
    } catch {
      // not a log line
    }
  }
  return out;
}

type SrfLike = { request: (o: object, cb: (err: Error | null, req: any) => void) => void };

/**
 * An in-dialog request on a dialog by its id, through plain `srf.request({stackDialogId})` in callback
 * form (the response listener is in place before the next frame); resolves with the final status.
 */
export function requestByDialogId(srf: unknown, method: string, dialogId: string, headers: Record<string, string> = {}): Promise<number> {
  const s = srf as SrfLike;
  return new Promise((resolve, reject) => {
    s.request.call(s, { uri: 'sip:placeholder', method, stackDialogId: dialogId, headers }, (err, req) => {
      if (err) return reject(err);
      req.on('response', (res: { status: number }) => { if (res.status >= 200) resolve(res.status); });
    });
  });
}

/** Claims a dialog (contract C3): the X-Ferry-Claim OPTIONS, answered by ferry sip itself. */
export function claimDialog(srf: unknown, dialogId: string): Promise<number> {
  return requestByDialogId(srf, 'OPTIONS', dialogId, { 'X-Ferry-Claim': 'true' });
}

export type { DialogSnapshot };
