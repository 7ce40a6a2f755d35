/**
 * A BYE the app sends that the far end challenges (407) does not end the dialog in ferry sip: the
 * unmodified drachtio-srf retries it with credentials (`dialog.destroy({ auth })`) in the same dialog,
 * as it can against drachtio-server, and the retry is answered 200. A SIPp phone answers the call,
 * challenges the first BYE and answers the second 200; the test checks the second's digest (RFC 2617,
 * over the digest-uri drachtio-srf writes in it).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type Srf from 'drachtio-srf';
import { startSipEngine, type RunningSipEngine } from '../../src/sip/sip-engine-server';
import { connectSrf, destroyDialog, g711Sdp, waitFor, type ConnectedSrf } from '../helpers/srf-app';
import { freePort } from '../helpers/free-port';
import { startSipp, killAllSipp, describeSipp, tracedMessages, headerOf } from '../helpers/sipp';

const T1_MS = 20;

function md5(s: string): string {
  return createHash('md5').update(s).digest('hex');
}

/** RFC 2617 without qop: response = MD5(MD5(user:realm:password):nonce:MD5(method:digest-uri)). */
function digestIsRight(header: string, method: string, password: string): boolean {
  const p = (k: string): string => new RegExp(`${k}="([^"]*)"`).exec(header)?.[1] ?? '';
  const ha1 = md5(`${p('username')}:${p('realm')}:${password}`);
  return p('response') === md5(`${ha1}:${p('nonce')}:${md5(`${method}:${p('uri')}`)}`);
}

describe('ferry sip: a BYE challenged with 407 keeps its dialog for drachtio-srf\'s retry with credentials', () => {
  let engine: RunningSipEngine;
  let app: ConnectedSrf;

  before(async () => {
    engine = await startSipEngine({ timers: { t1: T1_MS, t2: 160, t4: 200 } });
    app = await connectSrf({ host: '127.0.0.1', port: engine.ports.control, secret: 'cymru' });
  });

  after(async () => {
    killAllSipp();
    app?.close();
    await engine?.close();
  });

  test('dialog.destroy({ auth }) after a 407: the retried BYE goes in the same dialog, carries Proxy-Authorization and gets 200', { timeout: 30_000 }, async () => {
    const port = await freePort();
    const phone = await startSipp({ scenario: 'uas-challenge-bye.xml', localPort: port, timeoutS: 20 });
    await phone.ready();
    const dialog = await app.srf.createUAC(`sip:phone@127.0.0.1:${port}`, { localSdp: g711Sdp(32100) });
    assert.equal(engine.engine.stats().dialogs, 1);
    const destroy = dialog.destroy as unknown as (opts: { auth: { username: string; password: string } }) => Promise<Srf.SrfRequest>;
    const bye = await destroy.call(dialog, { auth: { username: 'ferry-bye', password: 'bye-secret' } });
    assert.equal(bye.method, 'BYE');
    const result = await phone.done;
    assert.equal(result.exitCode, 0, describeSipp(result));
    const trace = tracedMessages(result);
    const byes = trace.filter((m) => m.direction === 'received' && m.firstLine.startsWith('BYE '));
    assert.equal(byes.length, 2, 'the phone got the BYE and its authenticated retry');
    assert.equal(headerOf(byes[0]!, 'Proxy-Authorization'), undefined);
    assert.match(headerOf(byes[1]!, 'Proxy-Authorization') ?? '', /username="ferry-bye"/);
    for (const h of ['Call-ID', 'From', 'To']) assert.equal(headerOf(byes[1]!, h), headerOf(byes[0]!, h), `retry in the same dialog (${h})`);
    const cseq = byes.map((m) => Number(/^(\d+)/.exec(headerOf(m, 'CSeq') ?? '')?.[1]));
    assert.equal(cseq[1], cseq[0]! + 1, 'the retry has the next CSeq');
    assert.ok(digestIsRight(headerOf(byes[1]!, 'Proxy-Authorization') ?? '', 'BYE', 'bye-secret'), 'the digest response matches the password');
    const finals = trace.filter((m) => m.direction === 'sent' && /BYE/.test(headerOf(m, 'CSeq') ?? '')).map((m) => m.firstLine);
    assert.deepEqual(finals, ['SIP/2.0 407 Proxy Authentication Required', 'SIP/2.0 200 OK']);
    await waitFor(() => engine.engine.stats().dialogs === 0, 'the dialog to end after the 200');
    await waitFor(() => engine.engine.stats().clientTransactions === 0, 'the BYE transactions to end');
    assert.equal((app.srf as unknown as { _dialogs: Map<string, unknown> })._dialogs.size, 0, 'no dialog left in srf');
  });

  test('a challenged BYE the app does not retry: the dialog is kept for 64*T1, then dropped (counts back to zero)', { timeout: 30_000 }, async () => {
    const port = await freePort();
    const phone = await startSipp({ scenario: 'uas-challenge-bye-no-retry.xml', localPort: port, timeoutS: 20 });
    await phone.ready();
    const dialog = await app.srf.createUAC(`sip:phone@127.0.0.1:${port}`, { localSdp: g711Sdp(32102) });
    const started = Date.now();
    await destroyDialog(dialog); // no credentials: srf takes the 407 as the answer and forgets the dialog
    assert.equal(engine.engine.stats().dialogs, 1, 'right after the 407 the dialog is still kept for a retry');
    const result = await phone.done;
    assert.equal(result.exitCode, 0, describeSipp(result));
    await waitFor(() => engine.engine.stats().dialogs === 0, 'the kept dialog to be dropped');
    const keptMs = Date.now() - started;
    assert.ok(keptMs >= 64 * T1_MS * 0.9, `kept about 64*T1 (${keptMs} ms), not dropped at once`);
    await waitFor(() => engine.engine.stats().clientTransactions === 0, 'the BYE transaction to end');
    assert.equal((app.srf as unknown as { _dialogs: Map<string, unknown> })._dialogs.size, 0, 'no dialog left in srf');
  });
});
