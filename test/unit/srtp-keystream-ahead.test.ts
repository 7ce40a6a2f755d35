import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AesCmKeystream } from '../../src/media/srtp/aes-cm-keystream';
import { PACKETS_AHEAD, RtpKeystreamAhead, writeIv } from '../../src/media/srtp/rtp-keystream-ahead';
import { rng } from '../helpers/seeded-random';

/** AesCmKeystream that counts its AES calls (runs of several packets go through encryptBlocks). */
class CountingKeystream extends AesCmKeystream {
  runs = 0;
  override encryptBlocks(blocks: Buffer): Buffer {
    this.runs++;
    return super.encryptBlocks(blocks);
  }
}

const KEY = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');
const SALT = Buffer.from('f0f1f2f3f4f5f6f7f8f9fafbfcfd', 'hex');

/** The keystream of one packet made alone (RFC 3711 §4.1.1), the reference. */
function alone(ssrc: number, roc: number, seq: number, length: number): Buffer {
  const iv = Buffer.alloc(16);
  writeIv(iv, SALT, ssrc, roc, seq);
  return new AesCmKeystream(KEY).keystream(iv, length);
}

function made(ahead: RtpKeystreamAhead, ssrc: number, roc: number, seq: number, length: number): Buffer {
  const data = Buffer.alloc(length + 12);
  ahead.xor(data, 12, length, ssrc, roc, seq, Buffer.alloc(16));
  return data.subarray(12);
}

describe('SRTP keystream made 8 packets ahead', { timeout: 30_000 }, () => {
  test('a stream in order: the same keystream as packet by packet, one AES run per 8 packets, across the SEQ wrap into the next ROC', () => {
    const cipher = new CountingKeystream(KEY);
    const ahead = new RtpKeystreamAhead(cipher, SALT);
    const ssrc = 0xdeadbeef;
    let roc = 0;
    let seq = 65536 - 20;
    for (let n = 0; n < 64; n++) {
      assert.deepEqual(made(ahead, ssrc, roc, seq, 160), alone(ssrc, roc, seq, 160), `roc ${roc} seq ${seq}`);
      seq = (seq + 1) & 0xffff;
      if (seq === 0) roc++;
    }
    assert.equal(roc, 1);
    assert.equal(cipher.runs, 64 / PACKETS_AHEAD);
  });

  test('loss, reordering, repeats, a longer payload, interleaved SSRCs and an oversized packet all get the right keystream', () => {
    const cipher = new CountingKeystream(KEY);
    const ahead = new RtpKeystreamAhead(cipher, SALT);
    const random = rng(0x7e57);
    let seq = 1000;
    let checked = 0;
    for (let n = 0; n < 2000; n++) {
      const r = random();
      // mostly in order; sometimes a jump forward (loss), back (reorder/repeat), another SSRC, another length
      seq = r < 0.7 ? seq + 1 : r < 0.8 ? seq + 1 + Math.floor(random() * 40) : r < 0.9 ? seq - Math.floor(random() * 10) : seq;
      const ssrc = random() < 0.1 ? 0x0badcafe : 0x11223344;
      const length = random() < 0.05 ? 1 + Math.floor(random() * 400) : 160;
      const s = seq & 0xffff;
      const roc = Math.floor(seq / 65536);
      assert.deepEqual(made(ahead, ssrc, roc, s, length), alone(ssrc, roc, s, length), `n ${n}`);
      checked++;
    }
    assert.equal(checked, 2000);
    assert.ok(cipher.runs < 2000 / 2, `${cipher.runs} runs for 2000 packets: mostly served from runs`);
  });

  test('two streams strictly alternating are served one packet at a time (no run per packet)', () => {
    const cipher = new CountingKeystream(KEY);
    const ahead = new RtpKeystreamAhead(cipher, SALT);
    for (let n = 0; n < 100; n++) {
      const ssrc = n % 2 === 0 ? 1 : 2;
      const seq = 500 + (n >> 1);
      assert.deepEqual(made(ahead, ssrc, 0, seq, 160), alone(ssrc, 0, seq, 160));
    }
    assert.equal(cipher.runs, 0);
    // positive control: one of them alone gets runs
    for (let n = 0; n < 16; n++) made(ahead, 1, 0, 600 + n, 160);
    assert.ok(cipher.runs >= 1 && cipher.runs <= 3, `${cipher.runs} runs`);
  });
});
