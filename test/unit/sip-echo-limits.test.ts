/**
 * The bounds on what a response echoes (src/sip/message/echo-limits.ts): every valid RFC 4475 message
 * (longreq included) and the messages real phones and JsSIP send stay within them; one byte over a bound
 * is caught; the small 400 carries only the values within bounds. The network side is
 * test/integration/sip-echo-limits.test.ts.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSipMessage } from '../../src/sip/message/sip-parser';
import type { SipRequest } from '../../src/sip/message/sip-message';
import { ECHO_LIMITS, overLongEcho, overLongRefusal } from '../../src/sip/message/echo-limits';
import { serializeSipMessage } from '../../src/sip/message/sip-serializer';
import { SAMPLES } from '../helpers/sip-fuzz-samples';
import { RFC4475_CORPUS, loadRfc4475 } from '../fixtures/rfc4475/corpus';

function request(v: { callId?: string; fromTag?: string; toTag?: string; branch?: string; vias?: number } = {}): SipRequest {
  const vias = Array.from({ length: v.vias ?? 0 }, (_, i) => `Via: SIP/2.0/TCP proxy${i}.example.com;branch=z9hG4bK${'p'.repeat(40)}${i}`);
  const m = parseSipMessage(Buffer.from(['OPTIONS sip:service@127.0.0.1 SIP/2.0', `Via: SIP/2.0/UDP 127.0.0.1:5070;branch=${v.branch ?? 'z9hG4bK776asdhds'}`, ...vias,
    'Max-Forwards: 70', `From: <sip:alice@127.0.0.1>;tag=${v.fromTag ?? '1'}`, `To: <sip:service@127.0.0.1>${v.toTag ? `;tag=${v.toTag}` : ''}`,
    `Call-ID: ${v.callId ?? 'v1'}`, 'CSeq: 1 OPTIONS', 'Content-Length: 0', '', ''].join('\r\n')));
  assert.equal(m.kind, 'request');
  return m as SipRequest;
}

describe('echo limits', () => {
  test('every valid RFC 4475 message and every sample of phones and JsSIP is within the bounds', { timeout: 5000 }, () => {
    for (const msg of RFC4475_CORPUS.filter((m) => m.valid)) {
      const m = parseSipMessage(loadRfc4475(msg.name));
      assert.equal(overLongEcho(m.headers), undefined, msg.name);
    }
    for (const sample of SAMPLES) assert.equal(overLongEcho(parseSipMessage(Buffer.from(sample)).headers), undefined, sample.split('\r\n')[0]);
  });

  test('at the bound passes, one byte over is refused: Call-ID, From tag, To tag, top Via branch, the whole', { timeout: 5000 }, () => {
    const at = (n: number): string => 'a'.repeat(n);
    assert.equal(overLongEcho(request({ callId: at(ECHO_LIMITS.callId), fromTag: at(ECHO_LIMITS.tag), toTag: at(ECHO_LIMITS.tag), branch: at(ECHO_LIMITS.branch) }).headers), undefined);
    assert.match(overLongEcho(request({ callId: at(ECHO_LIMITS.callId + 1) }).headers)!, /Call-ID/);
    assert.match(overLongEcho(request({ fromTag: at(ECHO_LIMITS.tag + 1) }).headers)!, /From tag/);
    assert.match(overLongEcho(request({ toTag: at(ECHO_LIMITS.tag + 1) }).headers)!, /To tag/);
    assert.match(overLongEcho(request({ branch: `z9hG4bK${at(ECHO_LIMITS.branch)}` }).headers)!, /branch/);
    // many Vias, each short: the total bounds them (60 proxies fit, 200 do not)
    assert.equal(overLongEcho(request({ vias: 60 }).headers), undefined);
    assert.match(overLongEcho(request({ vias: 200 }).headers)!, /together/);
  });

  test('the small 400 leaves out what is over its bound and keeps the rest', { timeout: 5000 }, () => {
    const req = request({ callId: 'c'.repeat(5000), fromTag: 'ok' });
    const res = overLongRefusal(req.headers, overLongEcho(req.headers)!);
    assert.equal(res.status, 400);
    assert.equal(res.headers.get('Call-ID'), undefined);
    assert.match(res.headers.get('From')!, /tag=ok/);
    assert.ok(res.headers.get('Via'));
    assert.ok(serializeSipMessage(res).length < 1000);
  });
});
