/**
 * The RFC 4475 fixtures themselves: one file per corpus entry and no stray file, CRLF line ends, a
 * Content-Length that matches the body except in the messages that are about a wrong one, and the
 * parser's reading of the messages the socket-level test cannot see into (responses matching no
 * transaction, the exact bytes of the valid messages).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { parseSipMessage } from '../../src/sip/message/sip-parser';
import { SipParseError } from '../../src/sip/message/sip-parse-error';
import { SipStreamFramer } from '../../src/sip/message/sip-stream-framer';
import { RFC4475_CORPUS, loadRfc4475 } from '../fixtures/rfc4475/corpus';

const DIR = path.join(__dirname, '..', 'fixtures', 'rfc4475');
/** the messages whose Content-Length is the point (or, for the datagram ones, their trailing bytes) */
const LENGTH_TESTS = new Set(['clerr', 'ncl', 'mcl01', 'dblreq', 'inv2543']);

describe('RFC 4475 corpus files', () => {
  test('one .dat file per corpus entry, none without an entry, 49 messages of sections 3.1 to 3.4', { timeout: 5000 }, () => {
    const files = fs.readdirSync(DIR).filter((f) => f.endsWith('.dat')).map((f) => f.slice(0, -4)).sort();
    assert.deepEqual(files, RFC4475_CORPUS.map((m) => m.name).sort());
    assert.equal(files.length, 49);
  });

  test('CRLF line ends and a Content-Length that matches the body', { timeout: 5000 }, () => {
    for (const { name } of RFC4475_CORPUS) {
      const data = loadRfc4475(name);
      const headEnd = data.indexOf('\r\n\r\n');
      assert.ok(headEnd > 0, `${name} has an end of headers`);
      const head = data.subarray(0, headEnd).toString('latin1');
      assert.ok(!/[^\r]\n/.test(head), `${name}: every header line ends in CRLF`);
      if (LENGTH_TESTS.has(name)) continue;
      const cl = /(?:^|\r\n)(?:content-length|l)[ \t]*:[ \t]*(\d+)/i.exec(head);
      assert.ok(cl, `${name} has a Content-Length`);
      assert.equal(Number(cl[1]), data.length - headEnd - 4, `${name}: Content-Length equals the body length`);
    }
  });

  test('the valid responses parse as the RFC reads them; the overlarge ones are refused', { timeout: 5000 }, () => {
    const unreason = parseSipMessage(loadRfc4475('unreason'));
    assert.equal(unreason.kind === 'response' && unreason.status, 200);
    assert.equal(unreason.kind === 'response' && unreason.reason, '= 2**3 * 5**2 но сто девяносто девять - простое');
    assert.equal(unreason.body.length, 154);
    const noreason = parseSipMessage(loadRfc4475('noreason'));
    assert.equal(noreason.kind === 'response' && `${noreason.status}|${noreason.reason}`, '100|');
    for (const name of ['bigcode', 'scalarlg']) {
      assert.throws(() => parseSipMessage(loadRfc4475(name)), (e: unknown) => e instanceof SipParseError && !e.isRequest, name);
    }
  });

  test('what the valid requests carry comes out of the parser intact', { timeout: 5000 }, () => {
    const wsinv = parseSipMessage(loadRfc4475('wsinv'));
    assert.equal(wsinv.headers.get('Max-Forwards'), '0068');
    assert.equal(wsinv.headers.getAll('Via').length, 3);
    assert.equal(wsinv.body.length, 150);
    const mpart = parseSipMessage(loadRfc4475('mpart01'));
    const raw = loadRfc4475('mpart01');
    assert.ok(raw.subarray(raw.length - 553).equals(mpart.body), 'the binary multipart body is kept byte for byte');
    const esc02 = parseSipMessage(loadRfc4475('esc02'));
    assert.equal(esc02.kind === 'request' && esc02.method, 'RE%47IST%45R');
    const dblreq = parseSipMessage(loadRfc4475('dblreq'));
    assert.equal(dblreq.kind === 'request' && `${dblreq.method}|${dblreq.body.length}`, 'REGISTER|0');
  });

  test('on a byte stream: conflicting or negative Content-Length is refused with the head kept for a 400, clerr waits', { timeout: 5000 }, () => {
    const mcl = new SipStreamFramer().push(loadRfc4475('mcl01'));
    assert.equal(mcl.error, 'conflicting Content-Length values');
    assert.ok(mcl.refusedHead?.toString('latin1').startsWith('OPTIONS sip:user@example.com SIP/2.0'));
    assert.equal(new SipStreamFramer().push(loadRfc4475('ncl')).error, 'bad Content-Length');
    const clerr = new SipStreamFramer();
    const out = clerr.push(loadRfc4475('clerr'));
    assert.deepEqual([out.messages.length, out.error, clerr.pending], [0, undefined, 'body']);
    // the same Content-Length twice frames (the validator answers the duplicate 400)
    const twice = Buffer.from('OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\nl: 0\r\n\r\n');
    assert.equal(new SipStreamFramer().push(twice).messages.length, 1);
  });
});
