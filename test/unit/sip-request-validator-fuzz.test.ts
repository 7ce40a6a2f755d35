/**
 * Seeded fuzz of the request validator and its strict address/Via syntax (src/sip/message/
 * request-validator.ts, address-syntax.ts): mutations of valid SIP messages and of the RFC 4475 corpus
 * go through the parser and the validator, which never throw and only ever answer 400/416/420/501/505
 * with a printable reason phrase.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSipMessage } from '../../src/sip/message/sip-parser';
import { SipParseError } from '../../src/sip/message/sip-parse-error';
import { refusalResponse, validateRequest } from '../../src/sip/message/request-validator';
import { SAMPLES, mutate, prng } from '../helpers/sip-fuzz-samples';
import { RFC4475_CORPUS, loadRfc4475 } from '../fixtures/rfc4475/corpus';

describe('request validator fuzz (seeded mutations of valid messages and of the RFC 4475 corpus)', () => {
  test('20 000 mutations: validation never throws and answers only 400/416/420/501/505', { timeout: 30_000 }, () => {
    const rnd = prng(0x4475);
    const inputs = [...SAMPLES.map((s) => Buffer.from(s)), ...RFC4475_CORPUS.map((m) => loadRfc4475(m.name))];
    const statuses = new Map<number, number>();
    let passed = 0;
    for (let i = 0; i < 20_000; i++) {
      const input = mutate(inputs[i % inputs.length], rnd);
      let m;
      try {
        m = parseSipMessage(input, i % 2 === 0);
      } catch (e) {
        if (!(e instanceof SipParseError)) assert.fail(`iteration ${i}: parser threw ${String(e)}`);
        continue;
      }
      if (m.kind !== 'request') continue;
      const r = validateRequest(m, { routes: () => i % 3 === 0 });
      if (!r) {
        passed++;
        continue;
      }
      assert.ok([400, 416, 420, 501, 505].includes(r.status), `iteration ${i}: status ${r.status}`);
      const res = refusalResponse(m, r);
      assert.ok(/^[\x20-\x7e]*$/.test(res.reason), `iteration ${i}: reason phrase ${JSON.stringify(res.reason)} is printable ASCII`);
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    }
    assert.ok(passed > 500, `some mutations still pass (${passed})`);
    assert.ok((statuses.get(400) ?? 0) > 500, `many are refused 400 (${JSON.stringify([...statuses])})`);
  });
});
