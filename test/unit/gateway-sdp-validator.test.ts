import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { classifyAddress, parseLoopbackMediaRule, SDP_LIMITS, sdpWarning, validateSdp, type SdpValidationContext } from '../../src/gateway/calls/sdp-validator';

/** The gateway's SDP checks on their own: every limit at and past its boundary, every address rule. */
const PUBLIC: SdpValidationContext = { source: '198.51.100.7', loopbackMedia: 'from-loopback' };
const LOCAL: SdpValidationContext = { source: '127.0.0.1', loopbackMedia: 'from-loopback' };

function sdp(opts: { c?: string | null; mediaC?: string; port?: string; extra?: string[]; media?: number } = {}): string {
  const lines = ['v=0', 'o=- 1 1 IN IP4 192.0.2.10', 's=-'];
  if (opts.c !== null) lines.push(`c=IN IP4 ${opts.c ?? '192.0.2.10'}`);
  lines.push('t=0 0');
  for (let i = 0; i < (opts.media ?? 1); i++) {
    lines.push(`m=audio ${opts.port ?? '40000'} RTP/AVP 0 8 101`);
    if (opts.mediaC) lines.push(`c=IN IP4 ${opts.mediaC}`);
    lines.push('a=rtpmap:0 PCMU/8000', 'a=sendrecv');
  }
  lines.push(...(opts.extra ?? []));
  return `${lines.join('\r\n')}\r\n`;
}

const problem = (s: string, ctx = PUBLIC): string => {
  const r = validateSdp(s, ctx);
  return r.ok ? 'ok' : r.problem;
};

describe('gateway SDP validation', () => {
  test('an ordinary phone offer, a WebRTC offer with mDNS and IP candidates, and a rejected m-line pass', { timeout: 30_000 }, () => {
    assert.equal(problem(sdp()), 'ok');
    const webrtc = sdp({ c: '0.0.0.0', extra: ['a=candidate:1 1 udp 2122260223 6f1c-2a.local 54321 typ host', 'a=candidate:2 1 udp 1686052607 203.0.113.5 54321 typ srflx raddr 0.0.0.0 rport 0', 'a=candidate:3 1 tcp 1518280447 192.0.2.10 9 typ host tcptype active', 'a=rtcp:9 IN IP4 0.0.0.0'] });
    assert.equal(problem(webrtc), 'ok');
    assert.equal(problem(`${sdp()}m=video 0 RTP/AVP 96\r\n`), 'ok', 'port 0: a refused stream needs no c=');
    assert.equal(problem(sdp({ c: null, mediaC: '2001:db8::1' }).replace('IN IP4 2001', 'IN IP6 2001')), 'ok', 'media-level IPv6 c=');
  });

  test('c=0.0.0.0 is accepted as RFC 2543 hold; :: and 0.x.x.x other than 0.0.0.0 are not hosts', { timeout: 30_000 }, () => {
    assert.equal(problem(sdp({ c: '0.0.0.0' })), 'ok');
    assert.equal(problem(sdp({ c: '0.1.2.3' })), 'reserved-address');
    assert.equal(problem(sdp({ extra: ['a=candidate:1 1 udp 1 0.0.0.0 5000 typ host'] })), 'bad-address', 'a candidate must name a host');
  });

  test('invalid and missing c= are refused', { timeout: 30_000 }, () => {
    assert.equal(problem(sdp({ c: '999.1.2.3' })), 'bad-address');
    assert.equal(problem(sdp({ c: 'pbx.example.com' })), 'bad-address');
    assert.equal(problem(sdp().replace('c=IN IP4 192.0.2.10', 'c=IN IP4')), 'bad-address');
    assert.equal(problem(sdp().replace('c=IN IP4 192.0.2.10', 'c=IN IP6 192.0.2.10')), 'bad-address', 'family must match');
    assert.equal(problem(sdp({ c: null })), 'no-connection');
    assert.equal(problem(sdp({ c: null, mediaC: '192.0.2.10', media: 2 }).replace(/c=IN IP4 192.0.2.10\r\na=rtpmap:0 PCMU\/8000\r\na=sendrecv\r\n$/, 'a=sendrecv\r\n')), 'no-connection', 'the second m= has none');
  });

  test('multicast, link-local, broadcast are refused; a TTL suffix is multicast syntax', { timeout: 30_000 }, () => {
    assert.equal(problem(sdp({ c: '239.1.1.1' })), 'multicast');
    assert.equal(problem(sdp({ c: '224.2.1.1/127' })), 'multicast');
    assert.equal(problem(sdp({ c: null, mediaC: 'ff02::1' }).replace('IN IP4 ff02', 'IN IP6 ff02')), 'multicast');
    assert.equal(problem(sdp({ c: '169.254.169.254' })), 'link-local');
    assert.equal(problem(sdp({ extra: ['a=candidate:1 1 udp 1 fe80::1c:2d 5000 typ host', 'a=candidate:2 1 udp 1 169.254.3.4 5000 typ host'] })), 'ok', 'ICE agents list link-local candidates: accepted');
    assert.equal(problem(sdp({ c: '255.255.255.255' })), 'reserved-address');
    assert.equal(problem(sdp({ extra: ['a=rtcp:6380 IN IP4 239.0.0.1'] })), 'multicast', 'a=rtcp address checked too');
  });

  test('loopback targets: from-loopback accepts them only from a loopback source; always/never', { timeout: 30_000 }, () => {
    const attack = sdp({ c: '127.0.0.1', port: '6379' });
    assert.equal(problem(attack, PUBLIC), 'loopback', 'a remote party cannot aim media at our loopback');
    assert.equal(problem(attack, LOCAL), 'ok', 'positive control: a phone on this host may');
    assert.equal(problem(attack, { source: '::ffff:127.0.0.1', loopbackMedia: 'from-loopback' }), 'ok', 'IPv4-mapped loopback source');
    assert.equal(problem(attack, { ...LOCAL, loopbackMedia: 'never' }), 'loopback');
    assert.equal(problem(attack, { ...PUBLIC, loopbackMedia: 'always' }), 'ok');
    assert.equal(problem(sdp({ c: '127.5.5.5' }), PUBLIC), 'loopback');
    assert.equal(problem(sdp({ c: null, mediaC: '::1' }).replace('IN IP4 ::1', 'IN IP6 ::1'), PUBLIC), 'loopback');
    assert.equal(problem(sdp({ c: null, mediaC: '::ffff:127.0.0.1' }).replace('IN IP4 ::ffff', 'IN IP6 ::ffff'), PUBLIC), 'loopback');
    assert.equal(problem(sdp({ extra: ['a=candidate:1 1 udp 1 127.0.0.1 6379 typ host'] }), PUBLIC), 'loopback', 'ICE candidates too');
    assert.equal(problem(sdp({ extra: ['a=rtcp:6379 IN IP4 127.0.0.1'] }), PUBLIC), 'loopback', 'a=rtcp too');
  });

  test('ports: 1-65535, 0 only for a refused m-line', { timeout: 30_000 }, () => {
    assert.equal(problem(sdp({ port: '70000' })), 'bad-port');
    assert.equal(problem(sdp({ port: '65535' })), 'ok', 'boundary');
    assert.equal(problem(sdp({ port: '65536' })), 'bad-port');
    assert.equal(problem(sdp({ port: '-1' })), 'bad-port');
    assert.equal(problem(sdp({ port: '40000/70000' })), 'bad-port');
    assert.equal(problem(sdp({ extra: ['a=rtcp:0'] })), 'bad-port');
    assert.equal(problem(sdp({ extra: ['a=rtcp:70000'] })), 'bad-port');
    assert.equal(problem(sdp({ extra: ['a=candidate:1 1 udp 1 192.0.2.1 70000 typ host'] })), 'bad-port');
  });

  test('size limits: body, lines, line length, m= sections, ICE candidates per section, each at and past its boundary', { timeout: 30_000 }, () => {
    assert.equal(problem(sdp({ media: SDP_LIMITS.maxMediaSections })), 'ok');
    assert.equal(problem(sdp({ media: SDP_LIMITS.maxMediaSections + 1 })), 'too-many-media');
    const base = sdp().split('\r\n').length - 1;
    assert.equal(problem(sdp({ extra: Array(SDP_LIMITS.maxLines - base).fill('a=x') })), 'ok');
    assert.equal(problem(sdp({ extra: Array(SDP_LIMITS.maxLines - base + 1).fill('a=x') })), 'too-many-lines');
    assert.equal(problem(sdp({ extra: [`a=${'x'.repeat(SDP_LIMITS.maxLineLength - 2)}`] })), 'ok');
    assert.equal(problem(sdp({ extra: [`a=${'x'.repeat(SDP_LIMITS.maxLineLength - 1)}`] })), 'line-too-long');
    const candidates = (n: number): string[] => Array.from({ length: n }, (_, i) => `a=candidate:${i} 1 udp ${2_000_000 - i} 192.0.2.${(i % 250) + 1} ${40_000 + i} typ host`);
    assert.equal(problem(sdp({ extra: candidates(SDP_LIMITS.maxCandidatesPerMedia) })), 'ok');
    assert.equal(problem(sdp({ extra: candidates(SDP_LIMITS.maxCandidatesPerMedia + 1) })), 'too-many-candidates');
    const twoSections = (n: number): string => sdp({ extra: [...candidates(SDP_LIMITS.maxCandidatesPerMedia), 'm=audio 40002 RTP/AVP 0', 'a=rtpmap:0 PCMU/8000', ...candidates(n)] });
    assert.equal(problem(twoSections(SDP_LIMITS.maxCandidatesPerMedia)), 'ok', 'counted per m= section');
    assert.equal(problem(twoSections(SDP_LIMITS.maxCandidatesPerMedia + 1)), 'too-many-candidates');
    assert.equal(problem(sdp({ extra: Array(20).fill(`a=${'x'.repeat(1000)}`) })), 'too-large');
    assert.equal(problem(sdp({ extra: [`a=${'é'.repeat(SDP_LIMITS.maxBytes / 2)}`] })), 'too-large', 'counted in bytes, not characters');
  });

  test('the issue\'s hostile bodies: 5000 m= lines, a 500 kB attribute, 50 000 a= lines, NUL bytes', { timeout: 30_000 }, () => {
    const t0 = process.hrtime.bigint();
    assert.equal(problem(sdp({ media: 5000 })), 'too-large');
    assert.equal(problem(sdp({ extra: [`a=${'x'.repeat(500_000)}`] })), 'too-large');
    assert.equal(problem(sdp({ extra: Array(50_000).fill('a=sendrecv') })), 'too-large');
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    assert.ok(ms < 200, `refused without parsing: ${ms.toFixed(1)} ms for three huge bodies`);
    assert.equal(problem(sdp({ extra: ['a=tool:x\u0000y'] })), 'control-bytes');
    assert.equal(problem(sdp().replace('s=-', 's=\u0000')), 'control-bytes');
    assert.equal(problem(sdp({ extra: ['a=tool:\u001b[2J'] })), 'control-bytes', 'terminal escapes too');
    assert.equal(problem(sdp({ extra: ['a=tool:\ttab'] })), 'ok', 'a tab is allowed in SDP text (RFC 4566 byte-string)');
  });

  test('malformed shapes are refused', { timeout: 30_000 }, () => {
    assert.equal(problem('v=1\r\n'), 'malformed');
    assert.equal(problem('v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n'), 'malformed', 'no m=');
    assert.equal(problem(sdp({ extra: ['nonsense'] })), 'malformed');
    assert.equal(problem(sdp({ extra: ['a=candidate:1 1 udp'] })), 'malformed');
  });

  test('address classes, the loopback rule setting and the Warning header', { timeout: 30_000 }, () => {
    assert.equal(classifyAddress('10.0.0.20'), 'unicast', 'private LAN phones are fine');
    assert.equal(classifyAddress('2001:db8::5'), 'unicast');
    assert.equal(classifyAddress('fe80::1'), 'link-local');
    assert.equal(classifyAddress('::'), 'unspecified');
    assert.equal(parseLoopbackMediaRule(undefined), 'from-loopback');
    assert.equal(parseLoopbackMediaRule('1'), 'always');
    assert.equal(parseLoopbackMediaRule('0'), 'never');
    assert.equal(parseLoopbackMediaRule('maybe'), undefined);
    assert.equal(sdpWarning('c= "x"\u0000 is bad'), '399 ferry "c= \'x\'? is bad"');
  });
});
