import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import type Srf from 'drachtio-srf';
import { spawnSipEngine, type SipEngineProcess } from '../helpers/sip-engine-process';
import { connectSrf, destroyDialog, g711Sdp, type ConnectedSrf } from '../helpers/srf-app';
import { installDigestRegistrar, parseDigest } from '../helpers/srf-digest-registrar';
import { createHash } from 'node:crypto';
import {
  MB, clientFrameHeader, clientTextFrame, rawTcp, rawWebSocket, rssBytes, waitUntil, type RawConnection,
} from '../helpers/sip-raw-connections';
import { pollPause, realTimePause } from '../helpers/wait-for';

/**
 * Connection hygiene of `bin/ferry sip` on its public SIP stream listeners (TCP and WebSocket), probed
 * with real sockets: slow or oversized messages are cut by the size limit and the read deadlines and
 * the memory comes back; connections nobody uses are closed at the idle timeout while a registered
 * webphone keeps its own; per-source and global caps refuse extra connections; a WebSocket peer that
 * stops answering pings is closed. Short limits come from the environment.
 */

interface ConnectionStatsLine {
  open: number;
  refused: Record<string, number>;
  closed: Record<string, number>;
}

/** The connection counts of the newest `ferry sip stats` line (FERRY_SIP_STATS_INTERVAL_MS). */
function connectionStats(e: SipEngineProcess): ConnectionStatsLine | undefined {
  const lines = e.stdout().split('\n').filter((l) => l.startsWith('ferry sip stats '));
  const last = lines[lines.length - 1];
  return last ? (JSON.parse(last.slice('ferry sip stats '.length)) as { connections: ConnectionStatsLine }).connections : undefined;
}

/** Waits for one log line of the engine that matches every pattern. */
async function logged(e: SipEngineProcess, ...patterns: RegExp[]): Promise<void> {
  const matches = () => (e.stderr() + e.stdout()).split('\n').some((line) => patterns.every((p) => p.test(line)));
  await waitUntil(matches, 5000, `a log line matching ${patterns.join(' and ')}`);
}

const sipLines = (lines: string[]): string => lines.join('\r\n');

function optionsRequest(port: number, localPort: number, callId: string, transport = 'TCP'): string {
  return sipLines([`OPTIONS sip:probe@127.0.0.1:${port} SIP/2.0`, `Via: SIP/2.0/${transport} 127.0.0.1:${localPort};branch=z9hG4bK${callId}`,
    'Max-Forwards: 70', `From: <sip:probe@127.0.0.1>;tag=${callId}`, 'To: <sip:probe@127.0.0.1>', `Call-ID: ${callId}`,
    'CSeq: 1 OPTIONS', 'Content-Length: 0', '', '']);
}

function inviteHead(port: number, localPort: number, callId: string, contentLength: number): string {
  return sipLines([`INVITE sip:service@127.0.0.1:${port} SIP/2.0`, `Via: SIP/2.0/TCP 127.0.0.1:${localPort};branch=z9hG4bK${callId}`,
    'Max-Forwards: 70', `From: <sip:slow@127.0.0.1>;tag=${callId}`, 'To: <sip:service@127.0.0.1>', `Call-ID: ${callId}`,
    'CSeq: 1 INVITE', `Contact: <sip:slow@127.0.0.1:${localPort};transport=tcp>`, 'Content-Type: application/sdp',
    `Content-Length: ${contentLength}`, '', '']);
}

/** Headers that never end: one long header line of `bytes` bytes after a valid start. */
function endlessHeaders(port: number, bytes: number): string {
  const start = `INVITE sip:service@127.0.0.1:${port} SIP/2.0\r\nX-Filler: `;
  return start + 'x'.repeat(bytes - start.length);
}

/** Sends an OPTIONS on a fresh TCP connection and waits for its answer (503: no app routes OPTIONS): the listener serves. */
async function servedOverTcp(port: number, localAddress?: string): Promise<string> {
  const c = await rawTcp(port, localAddress);
  try {
    c.socket.write(optionsRequest(port, c.socket.localPort!, `probe${Date.now()}${Math.random().toString(36).slice(2, 8)}`));
    await waitUntil(() => /^SIP\/2\.0 \d{3}/.test(c.text()) || c.closedAt !== undefined, 10_000, 'an answer to OPTIONS');
    return c.text().split('\r\n')[0]!;
  } finally {
    c.socket.destroy();
  }
}

describe('ferry sip: connection hygiene on SIP TCP and WebSocket', { timeout: 240_000 }, () => {
  const engines: SipEngineProcess[] = [];
  const opened: RawConnection[] = [];
  const apps: ConnectedSrf[] = [];
  const clients: WebSocket[] = [];
  const cleanups: (() => void)[] = [];
  after(async () => {
    opened.forEach((c) => c.socket.destroy());
    clients.forEach((c) => c.terminate());
    cleanups.forEach((f) => { try { f(); } catch { /* already stopped */ } });
    apps.forEach((a) => a.close());
    await Promise.all(engines.map((e) => e.stop()));
  });

  async function engine(env: Record<string, string>): Promise<SipEngineProcess> {
    const e = await spawnSipEngine({ FERRY_LOG_LEVEL: 'info', FERRY_SIP_STATS_INTERVAL_MS: '200', ...env });
    engines.push(e);
    return e;
  }

  const keep = <T extends RawConnection>(c: T): T => { opened.push(c); return c; };

  test('connections: 300 slow connections (100 TCP with a 1 MB partial body, 100 TCP with 60 kB partial headers, 100 WS with a 1 MB partial frame) are all closed by the limits and ferry sip RSS returns within 50 MB of its start', async () => {
    const readTimeoutMs = 2000;
    const e = await engine({
      FERRY_SIP_HEADER_TIMEOUT_MS: String(readTimeoutMs),
      FERRY_SIP_BODY_TIMEOUT_MS: String(readTimeoutMs),
      FERRY_SIP_IDLE_TIMEOUT_MS: '600000', // not the idle close: the size limit and the read deadlines do it
      FERRY_SIP_MAX_CONNECTIONS_PER_SOURCE: '2000',
    });
    const pid = e.child.pid!;
    const port = e.ports.sip;
    assert.match(await servedOverTcp(port), /^SIP\/2\.0 503/); // warms the accept path
    await realTimePause(300); // a memory measurement: let start-up garbage settle before the RSS baseline
    const before = rssBytes(pid);
    let peak = before;
    const sampler = setInterval(() => { try { peak = Math.max(peak, rssBytes(pid)); } catch { /* exited */ } }, 20);
    try {
      const startedAt = Date.now();
      const bigBody = await Promise.all(Array.from({ length: 100 }, () => rawTcp(port).then(keep)));
      const bigHeaders = await Promise.all(Array.from({ length: 100 }, () => rawTcp(port).then(keep)));
      const bigFrames = await Promise.all(Array.from({ length: 100 }, () => rawWebSocket(e.ports.ws).then(keep)));
      const partialMb = Buffer.alloc(1_000_000, 0x61);
      bigBody.forEach((c, i) => {
        c.socket.write(inviteHead(port, c.socket.localPort!, `bigbody${i}`, MB));
        c.socket.write(partialMb);
      });
      bigHeaders.forEach((c) => c.socket.write(endlessHeaders(port, 60 * 1024)));
      bigFrames.forEach((c) => {
        c.socket.write(clientFrameHeader(0x1, MB).header); // a text frame of exactly 1 MB, of which 1 000 000 bytes come
        c.socket.write(partialMb);
      });
      // while they are held, a well-behaved client is still served
      assert.match(await servedOverTcp(port), /^SIP\/2\.0 503/);
      const all = [...bigBody, ...bigHeaders, ...bigFrames];
      await waitUntil(() => all.every((c) => c.closedAt !== undefined), readTimeoutMs + 20_000, 'every slow connection closed');
      const closedAfter = (cs: RawConnection[]) => Math.max(...cs.map((c) => c.closedAt! - startedAt));
      const headerLived = Math.min(...bigHeaders.map((c) => c.closedAt! - c.openedAt));
      const got413 = bigBody.filter((c) => /^SIP\/2\.0 413 /.test(c.text())).length;
      console.log(`# 100 x 1 MB bodies closed within ${closedAfter(bigBody)} ms (${got413} read the 413), 100 x 1 MB WS frames within ${closedAfter(bigFrames)} ms, ` +
        `100 x 60 kB partial headers after ${headerLived}..${closedAfter(bigHeaders)} ms (header timeout ${readTimeoutMs} ms)`);
      assert.ok(headerLived >= readTimeoutMs - 200, `partial headers closed after ${headerLived} ms, before the header timeout`);
      assert.ok(got413 > 0, 'the oversized INVITEs were answered 413');
      await waitUntil(() => {
        const s = connectionStats(e);
        return !!s && s.open === 0 && s.closed['message-too-large']! >= 200 && s.closed['header-timeout']! >= 100;
      }, 5000, `the stats line to count the closes (${JSON.stringify(connectionStats(e))})`);
    } finally {
      clearInterval(sampler);
    }
    // the memory comes back: nothing is kept per closed connection
    let after = rssBytes(pid);
    const deadline = Date.now() + 15_000;
    while (after > before + 50 * MB && Date.now() < deadline) {
      await pollPause(100);
      after = rssBytes(pid);
    }
    console.log(`# ferry sip RSS: ${(before / MB).toFixed(1)} MB at start, peak ${(peak / MB).toFixed(1)} MB, ${(after / MB).toFixed(1)} MB after the closes`);
    assert.ok(after <= before + 50 * MB, `RSS ${(after / MB).toFixed(1)} MB is more than 50 MB above its start ${(before / MB).toFixed(1)} MB`);
    assert.ok(e.running(), 'ferry sip still runs');
    await logged(e, /SIP connection closed from 127\.0\.0\.1: header-timeout/);
    await logged(e, /SIP connection closed from 127\.0\.0\.1: message-too-large/);
    assert.match(await servedOverTcp(port), /^SIP\/2\.0 503/, 'still serving after the attack');
  });

  test('connections: a slow body under the size limit is closed at the body timeout, a slow WebSocket frame at the header timeout; complete messages on other connections are served meanwhile', async () => {
    const readTimeoutMs = 1500;
    const e = await engine({
      FERRY_SIP_HEADER_TIMEOUT_MS: String(readTimeoutMs),
      FERRY_SIP_BODY_TIMEOUT_MS: String(readTimeoutMs),
      FERRY_SIP_IDLE_TIMEOUT_MS: '600000',
    });
    const slowBody = keep(await rawTcp(e.ports.sip));
    const slowFrame = keep(await rawWebSocket(e.ports.ws));
    const fine = keep(await rawWebSocket(e.ports.ws));
    slowBody.socket.write(inviteHead(e.ports.sip, slowBody.socket.localPort!, 'slowbody', 30_000));
    slowBody.socket.write(Buffer.alloc(10_000, 0x61));
    slowFrame.socket.write(Buffer.concat([clientFrameHeader(0x1, 30_000).header, Buffer.alloc(10_000, 0x61)]));
    // the well-behaved WebSocket sends whole messages throughout and is answered each time
    let answers = 0;
    const sender = setInterval(() => {
      fine.socket.write(clientTextFrame(optionsRequest(e.ports.sip, fine.socket.localPort!, `fine${answers}${Date.now()}`, 'WS')));
    }, 300);
    try {
      await waitUntil(() => slowBody.closedAt !== undefined && slowFrame.closedAt !== undefined, readTimeoutMs + 10_000, 'the slow connections closed');
    } finally {
      clearInterval(sender);
    }
    answers = (fine.text().match(/SIP\/2\.0 503/g) ?? []).length;
    const bodyLived = slowBody.closedAt! - slowBody.openedAt;
    const frameLived = slowFrame.closedAt! - slowFrame.openedAt;
    console.log(`# slow body closed after ${bodyLived} ms, slow WS frame after ${frameLived} ms (timeouts ${readTimeoutMs} ms); the other WebSocket got ${answers} answers`);
    for (const lived of [bodyLived, frameLived]) {
      assert.ok(lived >= readTimeoutMs - 200 && lived < readTimeoutMs + 5000, `closed after ${lived} ms`);
    }
    assert.equal(fine.closedAt, undefined, 'the WebSocket sending whole messages stays open');
    assert.ok(answers >= 3, `the other WebSocket was served (${answers} answers)`);
    await logged(e, /SIP connection closed from 127\.0\.0\.1: body-timeout/);
    await logged(e, /SIP connection closed from 127\.0\.0\.1: header-timeout/, /"protocol":"ws"/);
  });

  test('connections: a TCP INVITE announcing a body above the size limit is answered 413 before its body is sent, one without Content-Length 400, each connection closed; one under the limit is served', async () => {
    const e = await engine({ FERRY_SIP_MAX_MESSAGE_BYTES: '8192' });
    const big = keep(await rawTcp(e.ports.sip));
    big.socket.write(inviteHead(e.ports.sip, big.socket.localPort!, 'toolarge', 9000)); // headers only: the body never comes
    await waitUntil(() => big.closedAt !== undefined, 5000, 'the oversized INVITE connection closed');
    assert.match(big.text(), /^SIP\/2\.0 413 Request Entity Too Large\r\n/);
    assert.match(big.text(), /\r\nCall-ID: toolarge\r\n/);
    // positive control: an INVITE with a body under the limit is taken (100 Trying; no app routes it yet, so it is held)
    const ok = keep(await rawTcp(e.ports.sip));
    const sdp = g711Sdp(40_000);
    ok.socket.write(inviteHead(e.ports.sip, ok.socket.localPort!, 'fits', Buffer.byteLength(sdp)) + sdp);
    await waitUntil(() => /SIP\/2\.0 100/.test(ok.text()), 5000, 'the INVITE under the limit answered');
    assert.doesNotMatch(ok.text(), /^SIP\/2\.0 413/m);
    await logged(e, /answered refused request with 413/);
    // a stream cannot be framed without Content-Length: answered 400 naming it, then closed
    const noLength = keep(await rawTcp(e.ports.sip));
    noLength.socket.write(inviteHead(e.ports.sip, noLength.socket.localPort!, 'nolength', 0).replace('Content-Length: 0\r\n', ''));
    await waitUntil(() => noLength.closedAt !== undefined, 5000, 'the connection without Content-Length closed');
    assert.match(noLength.text(), /^SIP\/2\.0 400 Bad Request \(missing Content-Length on a stream\)\r\n/);
    assert.match(noLength.text(), /\r\nCall-ID: nolength\r\n/);
  });

  // the two idle-timeout scenarios each have their own ferry sip and wait out its idle timeout in real
  // time: they run at the same time
  describe('idle timeout', { concurrency: true }, () => {
    test('idle: connections without a registration are closed at the idle timeout; a JsSIP webphone registered over WS keeps its connection and still gets an INVITE; a lapsed registration no longer holds one', async () => {
      const idleMs = 1500;
      const e = await engine({ FERRY_SIP_IDLE_TIMEOUT_MS: String(idleMs) });
      let registrar!: ReturnType<typeof installDigestRegistrar>;
      const app = await connectSrf({ host: '127.0.0.1', port: e.ports.control, secret: 'cymru' }, (srf: Srf) => {
        registrar = installDigestRegistrar(srf, 'ferry.test', 'alice', 'pa55-word');
      });
      apps.push(app);
      const jssip = await registerJsSip(e.ports.ws, 'alice', 'pa55-word');
      cleanups.push(() => jssip.stop());
      const jssipContact = registrar.contactUri!;
      // nobody uses these: a silent TCP connection, a silent WebSocket, a TCP client whose OPTIONS was answered
      const silentTcp = keep(await rawTcp(e.ports.sip));
      const silentWs = keep(await rawWebSocket(e.ports.ws));
      const answered = keep(await rawTcp(e.ports.sip));
      answered.socket.write(optionsRequest(e.ports.sip, answered.socket.localPort!, 'idle-options'));
      await waitUntil(() => /^SIP\/2\.0 \d{3}/.test(answered.text()), 5000, 'the OPTIONS answered');
      // a WebSocket that registers for 3 s and does not refresh
      const lapsing = keep(await rawWebSocket(e.ports.ws));
      const registeredAt = await registerRawWs(lapsing, 'alice', 'pa55-word', 3);
      const closing = [silentTcp, silentWs, answered];
      await waitUntil(() => closing.every((c) => c.closedAt !== undefined), idleMs + 5000, 'the unused connections closed');
      for (const c of closing) {
        const lived = c.closedAt! - c.openedAt;
        assert.ok(lived >= idleMs - 200 && lived < idleMs + 4000, `an unused connection was closed after ${lived} ms (idle timeout ${idleMs} ms)`);
      }
      await waitUntil(() => lapsing.closedAt !== undefined, 3000 + idleMs + 5000, 'the lapsed registration\'s connection closed');
      const lapsedAfter = lapsing.closedAt! - registeredAt;
      console.log(`# unused connections closed after ${closing.map((c) => c.closedAt! - c.openedAt).join(', ')} ms; the 3 s registration's after ${lapsedAfter} ms (idle timeout ${idleMs} ms)`);
      assert.ok(lapsedAfter >= 2900, `the registered connection was closed ${lapsedAfter} ms after its REGISTER, before the registration expired`);
      // positive control: the registered webphone's connection, as old as the others, is open and carries an INVITE
      await realTimePause(idleMs); // real time: it must live through one more idle timeout of the ferry sip process
      assert.equal(jssip.disconnectedAt(), undefined, 'the registered webphone\'s WebSocket is still open');
      assert.ok(Date.now() - jssip.connectedAt >= 3 * idleMs, 'it lived through several idle timeouts');
      const uac = app.srf.createUAC(jssipContact, { localSdp: g711Sdp(40_002) }).catch((err: Error) => err);
      await waitUntil(() => jssip.invites() > 0, 5000, 'the INVITE reached the registered webphone');
      await uac;
      jssip.stop();
      await logged(e, /SIP connection closed from 127\.0\.0\.1: idle/);
    });

    test('idle: a TCP phone whose INVITE rings past the idle timeout and whose call then lasts past it keeps its connection; the BYE reaches it over it', async () => {
      const idleMs = 1500;
      const e = await engine({ FERRY_SIP_IDLE_TIMEOUT_MS: String(idleMs) });
      let dialog: Srf.Dialog | undefined;
      const app = await connectSrf({ host: '127.0.0.1', port: e.ports.control, secret: 'cymru' }, (srf: Srf) => {
        srf.invite((req: Srf.SrfRequest, res: Srf.SrfResponse) => {
          res.send(180);
          setTimeout(() => {
            srf.createUAS(req, res, { localSdp: g711Sdp(40_010) }).then((d) => { dialog = d; }, () => { /* the test fails on its own waits */ });
          }, 2 * idleMs);
        });
      });
      apps.push(app);
      const phone = keep(await rawTcp(e.ports.sip));
      const unused = keep(await rawTcp(e.ports.sip)); // control: opened at the same time, carries nothing
      const local = phone.socket.localPort!;
      const sdp = g711Sdp(40_012);
      phone.socket.write(inviteHead(e.ports.sip, local, 'ringing-call', Buffer.byteLength(sdp)) + sdp);
      await waitUntil(() => /^SIP\/2\.0 200 /m.test(phone.text()), 2 * idleMs + 10_000, 'the 200 after ringing past the idle timeout');
      const ok = phone.text().slice(phone.text().search(/^SIP\/2\.0 200 /m));
      const header = (name: string) => new RegExp(`^${name}: ([^\r\n]*)`, 'mi').exec(ok)?.[1] ?? '';
      const contactUri = /<([^>]+)>/.exec(header('Contact'))?.[1] ?? '';
      phone.socket.write(sipLines([`ACK ${contactUri} SIP/2.0`, `Via: SIP/2.0/TCP 127.0.0.1:${local};branch=z9hG4bKack${Date.now()}`,
        'Max-Forwards: 70', `From: ${header('From')}`, `To: ${header('To')}`, 'Call-ID: ringing-call', 'CSeq: 1 ACK', 'Content-Length: 0', '', '']));
      await waitUntil(() => dialog !== undefined, 5000, 'the app\'s dialog confirmed by the ACK');
      assert.ok(unused.closedAt !== undefined, 'the unused connection was closed at the idle timeout meanwhile (control)');
      // the call lasts past the idle timeout with no SIP on its connection
      await realTimePause(2 * idleMs); // real time: two idle timeouts of the ferry sip process pass
      assert.equal(phone.closedAt, undefined, 'the connection of a ringing, then established call is never closed for idleness');
      const bye = destroyDialog(dialog!);
      await waitUntil(() => /^BYE /m.test(phone.text()), 5000, 'the BYE over the same connection');
      const byeText = phone.text().slice(phone.text().search(/^BYE /m));
      const byeHeaders = byeText.split('\r\n').filter((l) => /^(Via|From|To|Call-ID|CSeq):/i.test(l));
      phone.socket.write(sipLines(['SIP/2.0 200 OK', ...byeHeaders, 'Content-Length: 0', '', '']));
      await bye;
      console.log(`# call over TCP: rang ${2 * idleMs} ms and lasted ${2 * idleMs} ms more with idle timeout ${idleMs} ms; the unused connection lived ${unused.closedAt! - unused.openedAt} ms`);
    });
  });

  test('caps: the per-source cap refuses the (cap+1)th connection (TCP and WS count together), the global cap refuses another address; a freed slot is taken again', async () => {
    const e = await engine({ FERRY_SIP_MAX_CONNECTIONS_PER_SOURCE: '4', FERRY_SIP_MAX_CONNECTIONS: '6', FERRY_SIP_IDLE_TIMEOUT_MS: '600000' });
    const held = [
      keep(await rawTcp(e.ports.sip)), keep(await rawTcp(e.ports.sip)),
      keep(await rawWebSocket(e.ports.ws)), keep(await rawWebSocket(e.ports.ws)),
    ];
    const extraTcp = keep(await rawTcp(e.ports.sip));
    await waitUntil(() => extraTcp.closedAt !== undefined, 3000, 'the 5th connection from 127.0.0.1 refused');
    assert.ok(extraTcp.closedAt! - extraTcp.openedAt < 2000, 'refused at once');
    await assert.rejects(rawWebSocket(e.ports.ws), 'a 5th connection from 127.0.0.1 cannot upgrade either');
    await logged(e, /SIP connection refused from 127\.0\.0\.1: per-source-cap/, /"limit":4\b/);
    // another address has its own per-source count, but the global cap (6) holds
    const other = [keep(await rawTcp(e.ports.sip, '127.0.0.2')), keep(await rawWebSocket(e.ports.ws, '127.0.0.2'))];
    const seventh = keep(await rawTcp(e.ports.sip, '127.0.0.2'));
    await waitUntil(() => seventh.closedAt !== undefined, 3000, 'the 7th connection refused by the global cap');
    await logged(e, /SIP connection refused from 127\.0\.0\.2: connection-cap/, /"limit":6\b/);
    // the 7th's refusal (accepted and judged after them) is the positive control of "the others stay open"
    assert.ok([...held, ...other].every((c) => c.closedAt === undefined), 'the connections under the caps stay open');
    // a held connection goes: its slot is free, a new connection from 127.0.0.1 is served
    held[0]!.socket.destroy();
    await waitUntil(() => connectionStats(e)?.open === 5, 3000, 'the freed slot counted');
    assert.match(await servedOverTcp(e.ports.sip), /^SIP\/2\.0 503/);
    const s = connectionStats(e)!;
    assert.ok(s.refused['per-source-cap']! >= 2 && s.refused['connection-cap']! >= 1, `refusals counted: ${JSON.stringify(s.refused)}`);
  });

  test('ws ping: a WebSocket peer that stops answering pings is closed; one that answers stays open', async () => {
    const pingMs = 400;
    const e = await engine({ FERRY_SIP_WS_PING_INTERVAL_MS: String(pingMs), FERRY_SIP_IDLE_TIMEOUT_MS: '600000' });
    const mute = keep(await rawWebSocket(e.ports.ws)); // reads pings, never sends a pong
    const answering = new WebSocket(`ws://127.0.0.1:${e.ports.ws}`, 'sip'); // the ws client answers pings itself
    clients.push(answering);
    let pings = 0;
    let answeringClosed = false;
    answering.on('ping', () => { pings++; });
    answering.on('close', () => { answeringClosed = true; });
    await new Promise<void>((resolve, reject) => { answering.once('open', () => resolve()); answering.once('error', reject); });
    await waitUntil(() => mute.closedAt !== undefined, 6 * pingMs + 5000, 'the mute WebSocket closed');
    const lived = mute.closedAt! - mute.openedAt;
    const pingFramesSeen = Buffer.concat(mute.received).includes(Buffer.from([0x89, 0x00]));
    await waitUntil(() => pings >= 4, 8 * pingMs + 5000, 'four pings answered by the other WebSocket');
    console.log(`# mute WebSocket closed after ${lived} ms (ping interval ${pingMs} ms); the answering one got ${pings} pings and stays open`);
    assert.ok(pingFramesSeen, 'the mute peer was pinged before it was closed');
    assert.ok(lived >= pingMs - 50 && lived < 3 * pingMs + 3000, `closed after ${lived} ms`);
    assert.equal(answeringClosed, false, 'the WebSocket that answers pings stays open');
    await logged(e, /SIP connection closed from 127\.0\.0\.1: no-pong/);
  });
});

// ------------------------------------------------------------------------------------------ webphones

/** Stand-in for the browser API; JsSIP only checks that it exists before taking an incoming INVITE. */
class FakeRTCPeerConnectionNeverConstructed {
  constructor() {
    throw new Error('this test never answers a call, so no RTCPeerConnection may be created');
  }
}

interface RegisteredJsSip {
  connectedAt: number;
  disconnectedAt(): number | undefined;
  invites(): number;
  stop(): void;
}

/** A real JsSIP user agent (npm jssip, the `ws` package as its WebSocket) registered through ferry sip's WS listener. */
async function registerJsSip(wsPort: number, user: string, password: string): Promise<RegisteredJsSip> {
  const g = globalThis as unknown as Record<string, unknown>;
  g.WebSocket ??= WebSocket;
  g.window ??= { RTCPeerConnection: FakeRTCPeerConnectionNeverConstructed };
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const JsSIP = require('jssip') as typeof import('jssip');
  const socket = new JsSIP.WebSocketInterface(`ws://127.0.0.1:${wsPort}`);
  const ua = new JsSIP.UA({ sockets: [socket], uri: `sip:${user}@ferry.test`, password, register: true, register_expires: 600, session_timers: false,
    connection_recovery_min_interval: 60, connection_recovery_max_interval: 60 });
  let connectedAt = 0;
  let disconnectedAt: number | undefined;
  let invites = 0;
  ua.on('connected', () => { connectedAt = Date.now(); });
  ua.on('disconnected', () => { disconnectedAt ??= Date.now(); });
  ua.on('newRTCSession', (ev: { session: { terminate(): void } }) => {
    invites++;
    try { ev.session.terminate(); } catch { /* already ended */ }
  });
  const registered = new Promise<void>((resolve, reject) => {
    ua.once('registered', () => resolve());
    ua.once('registrationFailed', (ev: { cause?: string }) => reject(new Error(`JsSIP registration failed: ${ev.cause}`)));
  });
  ua.start();
  await registered;
  return {
    connectedAt,
    disconnectedAt: () => disconnectedAt,
    invites: () => invites,
    stop: () => {
      ua.stop();
      clearJsSipTimers(ua);
    },
  };
}

/**
 * JsSIP keeps the timers of an invite server transaction (H, I) running after the session it rejected
 * ended; they would hold this test process for 32 s after the test. Cleared once the UA is stopped.
 */
function clearJsSipTimers(ua: unknown): void {
  const ist = (ua as { _transactions?: { ist?: Record<string, { H?: NodeJS.Timeout; I?: NodeJS.Timeout }> } })._transactions?.ist ?? {};
  for (const tr of Object.values(ist)) {
    clearTimeout(tr.H);
    clearTimeout(tr.I);
  }
}

const md5 = (s: string) => createHash('md5').update(s).digest('hex');

/** REGISTER over a raw WebSocket for `expires` seconds, answering the digest challenge; resolves at the 200. */
async function registerRawWs(c: RawConnection, user: string, password: string, expires: number): Promise<number> {
  const contact = '<sip:lapse@r4nd0m.invalid;transport=ws>';
  const register = (cseq: number, authorization?: string) => sipLines(['REGISTER sip:ferry.test SIP/2.0',
    `Via: SIP/2.0/WS r4nd0m.invalid;branch=z9hG4bKlapse${cseq}`, 'Max-Forwards: 70', `From: <sip:${user}@ferry.test>;tag=lapse`,
    `To: <sip:${user}@ferry.test>`, 'Call-ID: lapse-register', `CSeq: ${cseq} REGISTER`, `Contact: ${contact}`, `Expires: ${expires}`,
    ...(authorization ? [`Authorization: ${authorization}`] : []), 'Content-Length: 0', '', '']);
  const frames = () => Buffer.concat(c.received).toString('latin1');
  c.socket.write(clientTextFrame(register(1)));
  await waitUntil(() => /SIP\/2\.0 401[\s\S]*WWW-Authenticate: ([^\r\n]*)/.test(frames()), 5000, 'the 401 challenge');
  const challenge = parseDigest(/WWW-Authenticate: ([^\r\n]*)/.exec(frames())![1]!);
  const realm = challenge.get('realm')!;
  const nonce = challenge.get('nonce')!;
  const uri = 'sip:ferry.test';
  const cnonce = 'c0ffee';
  const nc = '00000001';
  const response = md5(`${md5(`${user}:${realm}:${password}`)}:${nonce}:${nc}:${cnonce}:auth:${md5(`REGISTER:${uri}`)}`);
  c.socket.write(clientTextFrame(register(2, `Digest username="${user}", realm="${realm}", nonce="${nonce}", uri="${uri}", ` +
    `response="${response}", algorithm=MD5, qop=auth, nc=${nc}, cnonce="${cnonce}"`)));
  await waitUntil(() => /SIP\/2\.0 200[^\r\n]*\r\n(?:[^\r\n]+\r\n)*CSeq: 2 REGISTER/.test(frames()), 5000, 'the 200 to the REGISTER');
  return Date.now();
}
