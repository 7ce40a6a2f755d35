/**
 * Fuzz of the gateway's SDP validator (src/gateway/calls/sdp-validator.ts), the first parser a stranger's
 * SDP meets (before authentication). Seeded, so a failure replays from its seed. What must hold for every
 * input: it never throws, a refusal names one of the known problems, it stays linear (a 64 kB body of
 * anything in milliseconds), and — judged by an independent oracle, Node's own BlockList, which reads every
 * spelling of an IPv6 address — an SDP it accepts from a remote party names no loopback, multicast or
 * link-local target in `c=` or `a=rtcp`, whatever the spelling (`::0:1`, `::ffff:7f00:1`,
 * `0:0:0:0:0:ffff:169.254.169.254`). Before this test those three were accepted as unicast targets.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockList, isIP } from 'node:net';
import * as sdpTransform from 'sdp-transform';
import { classifyAddress, validateSdp, type SdpProblem, type SdpValidationContext } from '../../src/gateway/calls/sdp-validator';
import { direction, g711Codecs, isWebRtc, restrictCodecs, SdpError, withDirection } from '../../src/gateway/calls/sdp-rewriter';
import { rng } from '../helpers/seeded-random';

const REMOTE: SdpValidationContext = { source: '198.51.100.7', loopbackMedia: 'from-loopback' };
const PROBLEMS: readonly SdpProblem[] = ['too-large', 'too-many-lines', 'line-too-long', 'control-bytes', 'malformed', 'too-many-media', 'too-many-candidates', 'no-connection',
  'bad-address', 'multicast', 'loopback', 'link-local', 'reserved-address', 'bad-port'];

/** the targets a remote party's SDP must never name in c= or a=rtcp, as Node's BlockList reads them */
const forbidden = new BlockList();
forbidden.addSubnet('127.0.0.0', 8, 'ipv4');
forbidden.addSubnet('169.254.0.0', 16, 'ipv4');
forbidden.addSubnet('224.0.0.0', 4, 'ipv4');
forbidden.addSubnet('240.0.0.0', 4, 'ipv4');
forbidden.addAddress('::1', 'ipv6');
forbidden.addSubnet('fe80::', 10, 'ipv6');
forbidden.addSubnet('ff00::', 8, 'ipv6');
const isForbidden = (address: string): boolean => {
  const kind = isIP(address);
  return kind !== 0 && forbidden.check(address.replace(/%.*$/, ''), kind === 4 ? 'ipv4' : 'ipv6');
};

const IPV4 = ['127.0.0.1', '127.1.2.3', '169.254.169.254', '224.0.0.1', '239.255.255.250', '192.0.2.10', '203.0.113.5', '10.0.0.7', '0.0.0.0', '255.255.255.255', '240.0.0.1', '8.8.8.8'];
const IPV6 = ['::1', '2001:db8::1', 'fe80::1', 'ff02::1', 'fc00::5', '::', '2001:db8:0:0:0:0:0:7'];

/** one IPv4 address written as one of the IPv6 spellings that carry it, or an IPv6 address in another spelling */
function spell(rnd: () => number): { family: 'IP4' | 'IP6'; address: string } {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  if (rnd() < 0.5) {
    const v4 = pick(IPV4);
    const [a, b, c, d] = v4.split('.').map(Number) as [number, number, number, number];
    const hi = ((a << 8) | b).toString(16);
    const lo = ((c << 8) | d).toString(16);
    const forms = [v4, `::ffff:${v4}`, `::ffff:${hi}:${lo}`, `0:0:0:0:0:ffff:${v4}`, `0:0:0:0:0:FFFF:${hi}:${lo}`, `::FFFF:${v4}`, `0::ffff:${hi}:${lo}`, `0000:0000::ffff:${v4}`];
    const address = pick(forms);
    return { family: address.includes(':') ? 'IP6' : 'IP4', address };
  }
  const v6 = pick(IPV6);
  const forms = [v6, v6.toUpperCase(), v6 === '::1' ? pick(['::0:1', '0::1', '0:0::1', '0000:0000:0000:0000:0000:0000:0000:0001', '::0001']) : v6,
    v6.startsWith('fe80') ? pick(['FE80::1', 'fe80:0::1', 'febf::1']) : v6, v6.startsWith('ff') ? pick(['FF02:0::1', 'ff0e::1']) : v6];
  return { family: 'IP6', address: pick(forms) };
}

function offer(rnd: () => number): string {
  const c = spell(rnd);
  const lines = ['v=0', 'o=- 1 1 IN IP4 192.0.2.10', 's=-', `c=IN ${c.family} ${c.address}`, 't=0 0', `m=audio ${1 + Math.floor(rnd() * 65535)} RTP/AVP 0 8 101`, 'a=rtpmap:0 PCMU/8000', 'a=sendrecv'];
  if (rnd() < 0.4) {
    const r = spell(rnd);
    lines.push(`a=rtcp:${1 + Math.floor(rnd() * 65535)} IN ${r.family} ${r.address}`);
  }
  if (rnd() < 0.4) {
    const m = spell(rnd);
    lines.push(`c=IN ${m.family} ${m.address}`);
  }
  if (rnd() < 0.3) lines.push(`a=candidate:1 1 udp 2122260223 ${spell(rnd).address} ${1 + Math.floor(rnd() * 65535)} typ host`);
  return `${lines.join('\r\n')}\r\n`;
}

const JUNK = ['\r\n', '\n', ' ', 'm=', 'c=IN IP4 ', 'c=IN IP6 ', 'a=rtcp:', 'a=candidate:', '/127', '::', ':', '.', '0', '65536', '99999', '-1', 'typ', '.local',
  '\u0000', '\u007f', 'é', '☎', 'x'.repeat(1100), 'a=x\r\n'.repeat(60), 'm=audio 1 RTP/AVP 0\r\n'.repeat(3)];

function mutate(text: string, rnd: () => number): string {
  let s = text;
  const edits = 1 + Math.floor(rnd() * 4);
  for (let k = 0; k < edits; k++) {
    const at = Math.floor(rnd() * (s.length + 1));
    const op = Math.floor(rnd() * 4);
    if (op === 0) s = s.slice(0, at) + s.slice(at + 1 + Math.floor(rnd() * 20));
    else if (op === 1) s = s.slice(0, at) + JUNK[Math.floor(rnd() * JUNK.length)] + s.slice(at);
    else if (op === 2) s = s.slice(0, at) + String.fromCharCode(Math.floor(rnd() * 256)) + s.slice(at);
    else s = s.slice(0, at) + s.slice(at).split('\r\n').slice(1).join('\r\n');
  }
  return s;
}

/** every c= and a=rtcp address of an SDP, read with the plainest possible split */
function targets(sdp: string): string[] {
  const out: string[] = [];
  for (const line of sdp.split(/\r?\n/)) {
    const c = /^c=IN IP[46] (\S+)$/.exec(line);
    if (c) out.push(c[1]!);
    const r = /^a=rtcp:\S+ IN IP[46] (\S+)$/.exec(line);
    if (r) out.push(r[1]!);
  }
  return out;
}

describe('gateway SDP validator under fuzz', () => {
  test('every spelling of a loopback, link-local or multicast IPv6 address is classified as the address it is', { timeout: 10_000 }, () => {
    const cases: [string, string][] = [
      ['::0:1', 'loopback'], ['0::1', 'loopback'], ['0000:0000:0000:0000:0000:0000:0000:0001', 'loopback'],
      ['::ffff:7f00:1', 'loopback'], ['0:0:0:0:0:ffff:127.0.0.1', 'loopback'], ['::FFFF:127.0.0.1', 'loopback'], ['::ffff:0:127.0.0.1', 'loopback'],
      ['::127.0.0.1', 'loopback'], ['64:ff9b::7f00:1', 'loopback'],
      ['::ffff:a9fe:a9fe', 'link-local'], ['0:0:0:0:0:ffff:169.254.169.254', 'link-local'], ['FE80::1', 'link-local'], ['febf::1', 'link-local'],
      ['::ffff:e000:1', 'multicast'], ['FF02::1', 'multicast'],
      ['::', 'unspecified'], ['0:0:0:0:0:0:0:0', 'unspecified'],
      ['2001:db8::1', 'unicast'], ['::ffff:192.0.2.1', 'unicast'], ['64:ff9b::c000:20a', 'unicast'], ['fc00::5', 'unicast'], ['fec0::1', 'unicast'],
    ];
    for (const [address, expected] of cases) assert.equal(classifyAddress(address), expected, address);
  });

  test('seeded offers with every spelling of their addresses: accepted ones name no forbidden target (BlockList as the oracle)', { timeout: 30_000 }, () => {
    const rnd = rng(20261204);
    let accepted = 0;
    let refusedForbidden = 0;
    for (let i = 0; i < 20_000; i++) {
      const sdp = offer(rnd);
      const r = validateSdp(sdp, REMOTE);
      const bad = targets(sdp).filter(isForbidden);
      if (r.ok) {
        accepted++;
        assert.deepEqual(bad, [], `accepted an SDP naming ${bad.join(', ')}:\n${sdp}`);
      } else if (bad.length > 0) refusedForbidden++;
    }
    // positive controls: both sides of the rule were exercised
    assert.ok(accepted > 1000, `${accepted} offers accepted`);
    assert.ok(refusedForbidden > 1000, `${refusedForbidden} offers with a forbidden target refused`);
  });

  test('mutated offers: never a throw, a known problem when refused, no forbidden target when accepted; what passes, the rewriter takes', { timeout: 60_000 }, () => {
    const rnd = rng(4475);
    const seen = new Set<string>();
    let accepted = 0;
    for (let i = 0; i < 20_000; i++) {
      const sdp = mutate(offer(rnd), rnd);
      let r: ReturnType<typeof validateSdp>;
      try {
        r = validateSdp(sdp, REMOTE);
      } catch (err) {
        assert.fail(`validateSdp threw ${String(err)} on ${JSON.stringify(sdp).slice(0, 300)}`);
      }
      if (!r.ok) {
        assert.ok(PROBLEMS.includes(r.problem), `unknown problem ${r.problem}`);
        assert.equal(typeof r.detail, 'string');
        seen.add(r.problem);
        continue;
      }
      accepted++;
      assert.deepEqual(targets(sdp).filter(isForbidden), [], `accepted a forbidden target: ${JSON.stringify(sdp)}`);
      assert.doesNotThrow(() => sdpTransform.parse(sdp), `sdp-transform on ${JSON.stringify(sdp)}`);
      for (const fn of [() => restrictCodecs(sdp, ['PCMU', 'PCMA']), () => direction(sdp), () => g711Codecs(sdp), () => withDirection(sdp, 'sendonly'), () => isWebRtc(sdp)]) {
        try {
          fn();
        } catch (err) {
          assert.ok(err instanceof SdpError, `rewriter threw ${String(err)} on accepted ${JSON.stringify(sdp).slice(0, 300)}`);
        }
      }
    }
    assert.ok(accepted > 500, `${accepted} mutated offers accepted (the accept path was exercised)`);
    for (const p of ['malformed', 'bad-address', 'loopback', 'bad-port', 'control-bytes', 'line-too-long']) assert.ok(seen.has(p), `no mutation was refused as ${p}`);
  });

  test('random bodies up to 64 kB: a verdict each in milliseconds, never a throw', { timeout: 30_000 }, () => {
    const rnd = rng(99);
    const alphabet = 'v=0\r\nmca:IPN 0123456789.fe/-x ';
    let slowest = 0;
    for (let i = 0; i < 300; i++) {
      const n = Math.floor(rnd() * 65536);
      const chars = new Array<string>(n);
      for (let k = 0; k < n; k++) chars[k] = alphabet[Math.floor(rnd() * alphabet.length)]!;
      const body = (rnd() < 0.5 ? 'v=0\r\n' : '') + chars.join('');
      const t0 = process.hrtime.bigint();
      const r = validateSdp(body, REMOTE);
      slowest = Math.max(slowest, Number(process.hrtime.bigint() - t0) / 1e6);
      if (!r.ok) assert.ok(PROBLEMS.includes(r.problem));
    }
    assert.ok(slowest < 50, `slowest verdict took ${slowest.toFixed(1)} ms`);
  });
});
