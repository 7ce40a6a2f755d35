/**
 * The per-source rate of new requests as a user sets it (docs/security.md "New requests per source"):
 * `bin/ferry sip` with FERRY_SIP_REQUESTS_PER_SOURCE_PER_SECOND, FERRY_SIP_REQUEST_BURST and
 * FERRY_SIP_RATE_EXEMPT from its environment, probed with real UDP sockets from several loopback addresses.
 * A flood from one address gets its burst answered and nothing more, counted in the `ferry sip stats` line
 * and logged once with the address and its key; the bucket refills in real time (a low rate, waited for);
 * another address and an exempt one are served; `off` turns it off; a bad value refuses to start.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSipEngine, type SipEngineProcess } from '../helpers/sip-engine-process';
import { SourcePeer, requestIds } from '../helpers/sip-source-peer';
import { pollUntil } from '../helpers/wait-for';
import { expectFerrySipRefusesToStart } from '../helpers/ferry-sip-refusal';

const FLOOD = 30;

interface RequestStats {
  dropped: number;
  sources: number;
  perSecond: number;
  burst: number;
}

/** The request-rate counts of the newest `ferry sip stats` line. */
function requestStats(e: SipEngineProcess): RequestStats | undefined {
  const lines = e.stdout().split('\n').filter((l) => l.startsWith('ferry sip stats '));
  const last = lines[lines.length - 1];
  return last ? (JSON.parse(last.slice('ferry sip stats '.length)) as { requests: RequestStats }).requests : undefined;
}

/** ferry sip's JSON log lines that say it dropped requests over the rate. */
function dropLines(e: SipEngineProcess): Record<string, unknown>[] {
  return e.stderr().split('\n').filter((l) => l.includes('over the per-source rate of new requests'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('ferry sip: FERRY_SIP_REQUESTS_PER_SOURCE_PER_SECOND, FERRY_SIP_REQUEST_BURST and FERRY_SIP_RATE_EXEMPT', { timeout: 120_000 }, () => {
  const engines: SipEngineProcess[] = [];
  const peers: SourcePeer[] = [];
  after(async () => {
    peers.forEach((p) => p.close());
    await Promise.all(engines.map((e) => e.stop()));
  });

  async function engine(env: Record<string, string>): Promise<SipEngineProcess> {
    const e = await spawnSipEngine({ FERRY_LOG_LEVEL: 'info', FERRY_LOG_FORMAT: 'json', FERRY_SIP_STATS_INTERVAL_MS: '100', ...env });
    engines.push(e);
    return e;
  }
  async function peer(address: string, e: SipEngineProcess): Promise<SourcePeer> {
    const p = await SourcePeer.open(address, e.ports.sip);
    peers.push(p);
    return p;
  }
  /** Sends FLOOD new OPTIONS at once from `p`; resolves with their Call-IDs once each is answered or counted dropped. */
  async function flood(e: SipEngineProcess, p: SourcePeer): Promise<string[]> {
    const before = requestStats(e)?.dropped ?? 0;
    const ids = Array.from({ length: FLOOD }, () => requestIds());
    for (const i of ids) p.send(p.request('OPTIONS', i));
    const callIds = ids.map((i) => i.callId);
    await pollUntil(() => p.answeredOf(callIds) + (requestStats(e)?.dropped ?? 0) - before === FLOOD,
      { timeoutMs: 10_000, what: `each of ${FLOOD} OPTIONS from ${p.address} answered or counted dropped` });
    return callIds;
  }

  test('a flood from one address: its burst is answered, the rest dropped, counted in the stats line and logged once; another address and an exempt one are served; the bucket refills', { timeout: 60_000 }, async () => {
    const e = await engine({ FERRY_SIP_REQUESTS_PER_SOURCE_PER_SECOND: '1', FERRY_SIP_REQUEST_BURST: '5', FERRY_SIP_RATE_EXEMPT: '127.0.0.3' });
    await pollUntil(() => requestStats(e), { timeoutMs: 5_000, what: 'the first stats line' });
    const flooder = await peer('127.0.0.1', e);
    const startedAt = Date.now();
    const sent = await flood(e, flooder);
    const seconds = Math.ceil((Date.now() - startedAt) / 1000);
    const answered = flooder.answeredOf(sent);
    // 5 at once, and one more per second the flood took (it takes milliseconds)
    assert.ok(answered >= 5 && answered <= 5 + seconds, `${answered} of ${FLOOD} answered in ${seconds} s`);
    const s = requestStats(e)!;
    assert.equal(s.dropped, FLOOD - answered);
    assert.deepEqual([s.perSecond, s.burst], [1, 5]);
    const lines = await pollUntil(() => { const l = dropLines(e); return l.length ? l : undefined; }, { timeoutMs: 5_000, what: 'the drop log line' });
    assert.equal(lines.length, 1, 'one line for the whole flood (the rest are counted, not logged)');
    assert.equal(lines[0]!.source, '127.0.0.1');
    assert.equal(lines[0]!.sourceKey, '127.0.0.1');
    assert.equal(lines[0]!.method, 'OPTIONS');
    assert.equal(lines[0]!.level, 'warn');

    // the positive controls: another address is served, an exempt one is never limited
    const other = await peer('127.0.0.2', e);
    const fromOther = requestIds();
    other.send(other.request('OPTIONS', fromOther));
    await pollUntil(() => other.answersTo(fromOther.callId).length > 0, { timeoutMs: 5_000, what: 'an answer to 127.0.0.2' });
    const exempt = await peer('127.0.0.3', e);
    const droppedBefore = requestStats(e)!.dropped;
    const exemptSent = await flood(e, exempt);
    assert.equal(exempt.answeredOf(exemptSent), FLOOD);
    assert.equal(requestStats(e)!.dropped, droppedBefore);

    // the flooder's bucket refills at 1 per second: a new OPTIONS is answered again
    const retries: string[] = [];
    await pollUntil(() => {
      if (flooder.answeredOf(retries) > 0) return true;
      const i = requestIds();
      retries.push(i.callId);
      flooder.send(flooder.request('OPTIONS', i));
      return false;
    }, { timeoutMs: 5_000, stepMs: 250, what: 'an OPTIONS from the flooder answered once its bucket refilled' });
  });

  test('FERRY_SIP_REQUESTS_PER_SOURCE_PER_SECOND=off: the same flood is answered in full', { timeout: 30_000 }, async () => {
    const e = await engine({ FERRY_SIP_REQUESTS_PER_SOURCE_PER_SECOND: 'off', FERRY_SIP_REQUEST_BURST: '5' });
    await pollUntil(() => requestStats(e), { timeoutMs: 5_000, what: 'the first stats line' });
    const p = await peer('127.0.0.1', e);
    const sent = await flood(e, p);
    assert.equal(p.answeredOf(sent), FLOOD);
    assert.deepEqual(requestStats(e), { dropped: 0, sources: 0, perSecond: 0, burst: 0 });
    assert.equal(dropLines(e).length, 0);
  });

  test('a bad rate or exempt entry: ferry sip refuses to start with one line naming the variable', { timeout: 60_000 }, async () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ FERRY_SIP_REQUESTS_PER_SOURCE_PER_SECOND: 'fast' }, /^ferry sip: refusing to start: environment variable FERRY_SIP_REQUESTS_PER_SOURCE_PER_SECOND="fast" is not a whole number/],
      [{ FERRY_SIP_REQUEST_BURST: '-3' }, /^ferry sip: refusing to start: environment variable FERRY_SIP_REQUEST_BURST="-3" is not a whole number/],
      [{ FERRY_SIP_RATE_EXEMPT: '203.0.113.0/24,sbc.example.net' }, /^ferry sip: refusing to start: environment variable FERRY_SIP_RATE_EXEMPT=.*"sbc\.example\.net" is not an IP address or network/],
      [{ FERRY_SIP_RATE_EXEMPT: '203.0.113.9/24' }, /^ferry sip: refusing to start: environment variable FERRY_SIP_RATE_EXEMPT=.*has bits set past its \/24 prefix/],
    ];
    for (const [env, message] of cases) await expectFerrySipRefusesToStart(env, message);
  });
});
