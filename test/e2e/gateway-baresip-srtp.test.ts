import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SrtpContext } from '../../src/media/srtp/srtp-context';
import { parseRtcpCompound } from '../../src/media/rtcp/rtcp-packets';
import type { CallRecord } from '../../src/gateway/state/call-record';
import type { BaresipOptions, BaresipPhone } from '../helpers/baresip-phone';
import type { GatewayWebphone } from '../helpers/gateway-webphone';
import { BaresipWebphoneWorld } from '../helpers/baresip-webphone-world';
import { call as kcall, connectKurento } from '../helpers/media-kurento';
import { freePort, freePorts } from '../helpers/free-port';
import { makeTestCertificate, type TestCertificate } from '../helpers/test-certificate';
import { describeSipp, runSipp } from '../helpers/sipp';
import { getJson, sippMediaPort, waitFor, type Stack } from '../helpers/stack';
import { LoopbackCapture, type CapturedPacket } from '../helpers/loopback-capture';

/**
 * baresip with SRTP-SDES (its srtp module) calls the gateway's webphone page in real Chromium. On the
 * phone leg, tcpdump records every datagram between baresip's RTP ports and ferry media; each one is
 * checked against the keys the two sides exchanged in SDP (read back from ferry media's RtpEndpoint):
 * every RTP packet authenticates with its sender's key and its payload on the wire is not the payload
 * it carries. Two ways to ask for SRTP: `srtp-mand` (RTP/SAVP, the IETF way) and `srtp` (RTP/AVP with
 * a=crypto, SRTP when the answer carries a key).
 */
/** ferry media's SR/RR interval here: several reports fit in the call */
const RTCP_INTERVAL_MS = 500;
const DESK = { user: '1001', password: 'desk-srtp-secret' };
const ALICE = { user: 'alice', password: 'alice-srtp-secret' };

function keyOf(sdp: string): SrtpContext {
  const k = /^a=crypto:\d+ AES_CM_128_HMAC_SHA1_80 inline:([A-Za-z0-9+/=]+)/m.exec(sdp);
  if (!k) throw new Error(`no AES_CM_128_HMAC_SHA1_80 key in\n${sdp}`);
  const bytes = Buffer.from(k[1]!, 'base64');
  return new SrtpContext({ masterKey: bytes.subarray(0, 16), masterSalt: bytes.subarray(16) });
}

const isRtcp = (b: Buffer) => b.length >= 8 && b[1]! >= 192 && b[1]! <= 223;
/**
 * baresip sends a few RTCP packets in the clear even with SRTP: the APP packet named PING that opens its
 * RTCP path, and sometimes its goodbye (BYE) when its SRTP state is already gone. They carry no audio;
 * ferry refuses and counts them (srtpRefusedPackets).
 */
const isClearRtcpControl = (b: Buffer) => {
  const s = parseRtcpCompound(b);
  return s.valid && s.types.every((t) => t === 204 || t === 203 || t === 201 || t === 202);
};

const VARIANTS = [
  { mediaenc: 'srtp-mand', sip: 'tls' },
  { mediaenc: 'srtp-mand', sip: 'udp' },
  { mediaenc: 'srtp', sip: 'udp' },
] as const;

/**
 * One stack (with SIP/TLS listeners as well) and one webphone page for the three ways: each way's own
 * baresip replaces the previous one (the same account, its own mediaenc and transport) and registers
 * before its tests; the calls, captures and key checks are each way's own, one call at a time.
 */
describe('baresip with SRTP-SDES calls the Chromium webphone through the gateway: one stack and webphone page, one baresip per way', { timeout: 400_000, concurrency: 1 }, () => {
  let world: BaresipWebphoneWorld | undefined;
  let cert: TestCertificate | undefined;
  let sipTlsPort = 0;
  const phoneOptions = (mediaenc: (typeof VARIANTS)[number]['mediaenc'], sip: (typeof VARIANTS)[number]['sip'], stack: Stack): Omit<BaresipOptions, 'user' | 'password' | 'answer'> => ({
    mediaenc,
    ...(sip === 'tls' ? { registrar: `127.0.0.1:${sipTlsPort}`, transport: 'tls' as const, caFile: cert!.certFile } : { registrar: `127.0.0.1:${stack.sipPort}` }),
  });

  before(async () => {
    cert = makeTestCertificate();
    const [tlsPort, wssPort] = await freePorts(2, { protocols: ['tcp'] });
    sipTlsPort = tlsPort!;
    const sipEnv = { FERRY_TLS_CERT: cert.certFile, FERRY_TLS_KEY: cert.keyFile, FERRY_SIP_TLS_PORT: String(tlsPort), FERRY_SIP_WSS_PORT: String(wssPort) };
    world = new BaresipWebphoneWorld({
      dirPrefix: 'ferry-baresip-srtp-',
      desk: { ...DESK, displayName: 'Desk phone (baresip, SRTP)' },
      alice: ALICE,
      partEnv: { sip: sipEnv, media: { FERRY_MEDIA_RTCP_INTERVAL_MS: String(RTCP_INTERVAL_MS) } },
      phone: (s) => phoneOptions(VARIANTS[0].mediaenc, VARIANTS[0].sip, s),
    });
    await world.start();
  });

  afterEach(async () => {
    await world?.hangUpLeftover();
  });

  after(async () => {
    await world?.stop();
    cert?.remove();
  });

  for (const [variantIndex, { mediaenc, sip }] of VARIANTS.entries()) {
    const mode = `${mediaenc} over SIP/${sip.toUpperCase()}`;
    // concurrency 1 stated: the tests of a way share its phone and the webphone, so they never run at once
    describe(`baresip mediaenc=${mediaenc} (SRTP-SDES) over SIP/${sip.toUpperCase()} calls the Chromium webphone through the gateway`, { timeout: 150_000, concurrency: 1 }, () => {
      let stack: Stack;
      let phone: BaresipPhone;
      let alice: GatewayWebphone;

      const media = () => world!.media();
      const phoneLeg = () => world!.phoneLeg();
      const liveCalls = () => world!.liveCalls();
      const dialUri = (): string => (sip === 'tls' ? `sip:${ALICE.user}@127.0.0.1:${sipTlsPort};transport=tls` : `sip:${ALICE.user}@127.0.0.1:${stack.sipPort}`);
      const diagnose = (err: unknown): Error => (world ? world.diagnose(err) : err as Error);

      before(async () => {
        ({ stack, alice } = world!);
        // the first way's baresip is the one the world started with
        phone = variantIndex === 0 ? world!.phone : await world!.replacePhone(phoneOptions(mediaenc, sip, stack));
      });

      test(`SRTP-SDES (${mode}): baresip calls the webphone, audio both ways, the phone leg's wire carries only SRTP/SRTCP that authenticates with the exchanged keys`, async () => {
        const rtpFilter = `udp and portrange ${phone.rtpPorts[0]}-${phone.rtpPorts[1]}`;
        const sipFilter = sip === 'tls' ? `tcp and port ${sipTlsPort}` : `udp and port ${stack.sipPort}`;
        const capture = await LoopbackCapture.start(`(${rtpFilter}) or (${sipFilter})`);
        let captured: CapturedPacket[] = [];
        try {
          const callStart = Date.now();
          const dialed = await phone.command('dial', dialUri());
          assert.ok(dialed.ok, `dial: ${dialed.data}`);
          await alice.waitCallState('ringing-in', 15_000);
          await alice.answer();
          await alice.waitCallState('connected', 10_000);
          await phone.waitEvent((e) => e.type === 'CALL_ESTABLISHED' && e.at >= callStart, 10_000, 'CALL_ESTABLISHED');
          const listed = (await liveCalls())[0]!;
          assert.equal(listed.caller.kind, 'rtp', 'the SRTP phone is on an RtpEndpoint');
          const call = await getJson<CallRecord>(stack.httpPort, `/api/calls/${listed.id}`); // the full record has the media ids
          const invite = call.timeline.find((e) => e.event === 'invite');
          assert.match(invite?.detail ?? '', new RegExp(`\\(rtp/${sip}\\)`), `the INVITE came over SIP/${sip}`);

          // the keys of the phone leg, as negotiated: baresip's (its offer) and ferry's (the answer)
          const client = await connectKurento(`ws://127.0.0.1:${stack.mediaPort}/kurento`);
          let phoneSdp: string;
          let ferrySdp: string;
          try {
            const ep = await client.getMediaobjectById(call.media.callerEndpointId!);
            phoneSdp = await kcall<string>(ep, 'getRemoteSessionDescriptor');
            ferrySdp = await kcall<string>(ep, 'getLocalSessionDescriptor');
          } finally {
            client.close();
          }
          const profile = mediaenc === 'srtp-mand' ? 'RTP/SAVP' : 'RTP/AVP';
          assert.match(phoneSdp, new RegExp(`^m=audio \\d+ ${profile.replace('/', '\\/')} `, 'm'), 'what baresip offered');
          assert.match(ferrySdp, new RegExp(`^m=audio \\d+ ${profile.replace('/', '\\/')} `, 'm'), 'ferry answers in the offer\'s profile');
          assert.match(ferrySdp, /^a=crypto:\d+ AES_CM_128_HMAC_SHA1_80 inline:/m);

          await waitFor(async () => {
            const s = await alice.rtpStats();
            return s.sent > 150 && s.received > 150;
          }, 20_000, 100, 'RTP both ways at the Chromium webphone (getStats)');
          const leg = await waitFor(async () => {
            const l = await phoneLeg();
            return l && l.packetsFromPeer > 150 && l.packetsToPeer > 150 ? l : undefined;
          }, 10_000, 100, 'RTP both ways at the phone leg in ferry media');
          assert.equal(leg.srtp, true);
          // baresip's RTCP (SRTCP) reports the packets it got from ferry: its decryption worked too
          const report = await phone.waitEvent((e) => {
            const s = e.rtcp_stats as { rx?: { sent?: number } } | undefined;
            return e.type === 'CALL_RTCP' && e.at >= callStart && (s?.rx?.sent ?? 0) > 0;
          }, 12_000, 'an RTCP report at baresip with packets from ferry');
          // several of ferry's SRTCP reports go out during the call
          await new Promise((r) => setTimeout(r, 2.5 * RTCP_INTERVAL_MS));
          console.log(`# ${mode}: baresip RTCP ${JSON.stringify(report.rtcp_stats)}; phone leg ${leg.packetsFromPeer} from / ${leg.packetsToPeer} to baresip`);
          const hangupAt = Date.now();
          assert.ok((await phone.command('hangup')).ok);
          await alice.waitCallState('ended', 3000);
          console.log(`# ${mode}: baresip hang-up -> webphone shows the end: ${(await alice.endedAt())! - hangupAt} ms`);
          await waitFor(async () => (await media()).pipelines === 0, 3000, 25, 'the pipeline released');
          captured = await capture.stop();
          const sipPort = sip === 'tls' ? sipTlsPort : stack.sipPort;
          const datagrams = captured.filter((p) => p.protocol === 'udp' && p.from.port !== sipPort && p.to.port !== sipPort);
          if (sip === 'udp') {
            // the contrast: over SIP/UDP the SDES keys travel readable, which is why docs/security.md pairs SRTP with SIP/TLS
            const sipText = Buffer.concat(captured.filter((p) => p.from.port === sipPort || p.to.port === sipPort).map((p) => p.payload)).toString('latin1');
            assert.match(sipText, /a=crypto:\d+ AES_CM_128_HMAC_SHA1_80 inline:/, 'over SIP/UDP the keys are visible on the wire');
          } else {
            // the signalling that carries the SDES keys went encrypted: TLS records, no SIP or SDP text
            const stream = Buffer.concat(captured.filter((p) => p.protocol === 'tcp').map((p) => p.payload));
            assert.ok(stream.length > 2000, `SIP over TLS captured (${stream.length} bytes)`);
            assert.ok(captured.some((p) => p.protocol === 'tcp' && p.payload[0] === 0x17 && p.payload[1] === 0x03), 'TLS application data records (the connection was set up at registration)');
            for (const text of ['INVITE sip:', 'a=crypto', 'inline:', 'REGISTER', 'SIP/2.0']) assert.equal(stream.indexOf(text), -1, `'${text}' in the clear on the SIP/TLS connection`);
            console.log(`# ${mode}: ${stream.length} bytes of SIP over TLS captured, no SIP or SDP text in them`);
          }

          const fromPhone = keyOf(phoneSdp);
          const fromFerry = keyOf(ferrySdp);
          const phonePorts = (p: number) => p >= phone.rtpPorts[0] && p <= phone.rtpPorts[1];
          // this call's leg in ferry media: the RTP port of its answer and the RTCP port after it
          const legPort = Number(/^m=audio (\d+) /m.exec(ferrySdp)![1]);
          const legPorts = (p: number) => p === legPort || p === legPort + 1;
          // only this call's leg talks to the phone (a second call of the phone, e.g. another test of this world
          // run at the same time, has other keys: its datagrams would be counted as failing to authenticate)
          const strays = datagrams.filter((d) => phonePorts(d.to.port) !== phonePorts(d.from.port) && !legPorts(phonePorts(d.to.port) ? d.from.port : d.to.port));
          assert.deepEqual(strays.map((d) => `${d.from.port}->${d.to.port} ${d.payload.length} B`), [], `datagrams between the phone and a ferry port other than this call's leg (${legPort}/${legPort + 1})`);
          const toPhone = datagrams.filter((d) => phonePorts(d.to.port) && !phonePorts(d.from.port));
          const byPhone = datagrams.filter((d) => phonePorts(d.from.port) && !phonePorts(d.to.port));
          const count = { rtp: [0, 0], rtcp: [0, 0], plainOnWire: 0, failed: 0, clearControl: 0 };
          const failures: string[] = [];
          for (const [i, list, ctx] of [[0, toPhone, fromFerry], [1, byPhone, fromPhone]] as const) {
            for (const d of list) {
              const wire = Buffer.from(d.payload);
              if (i === 1 && isClearRtcpControl(d.payload)) {
                count.clearControl++;
                continue;
              }
              if (isRtcp(d.payload)) {
                if (ctx.unprotectRtcp(wire)) count.rtcp[i]!++;
                else {
                  count.failed++;
                  failures.push(`${i === 0 ? 'to' : 'from'} phone ${d.from.port}->${d.to.port} RTCP ${d.payload.length} B ${d.payload.subarray(0, 16).toString('hex')}`);
                }
                continue;
              }
              const clear = ctx.unprotectRtp(wire);
              if (!clear) {
                count.failed++;
                failures.push(`${i === 0 ? 'to' : 'from'} phone ${d.from.port}->${d.to.port} RTP ${d.payload.length} B ${d.payload.subarray(0, 16).toString('hex')}`);
                continue;
              }
              count.rtp[i]!++;
              // G.711 in the clear vs. what travelled: an SRTP payload differs from the audio it carries
              if (d.payload.subarray(12, 12 + 160).equals(clear.subarray(12, 12 + 160))) count.plainOnWire++;
            }
          }
          console.log(`# ${mode}: captured on the phone leg: ${toPhone.length} datagrams ferry->baresip (SRTP ${count.rtp[0]}, SRTCP ${count.rtcp[0]}), ${byPhone.length} baresip->ferry (SRTP ${count.rtp[1]}, SRTCP ${count.rtcp[1]}), failed ${count.failed}, plain payloads ${count.plainOnWire}, baresip's clear RTCP PING/BYE ${count.clearControl}`);
          assert.ok(count.rtp[0]! > 150 && count.rtp[1]! > 150, 'SRTP both ways on the wire');
          assert.equal(count.failed, 0, `every datagram on the phone leg authenticates with its sender's key: ${failures.join('; ')}`);
          assert.ok(count.rtcp[0]! >= 2, 'ferry sent SRTCP reports (and its BYE)');
          assert.ok(count.rtcp[1]! >= 1, 'baresip sent SRTCP');
          assert.equal(count.plainOnWire, 0, 'no payload travelled in the clear');
          assert.equal(toPhone.length, count.rtp[0]! + count.rtcp[0]!, 'everything ferry sent to the phone is SRTP or SRTCP');
          assert.ok(count.clearControl <= 3, `${count.clearControl} clear RTCP packets from baresip`);
        } catch (err) {
          if (captured.length === 0) await capture.stop().catch(() => undefined);
          throw diagnose(err);
        }
      });

      test(`SRTP-SDES (${mode}): baresip holds and resumes (re-INVITEs with its keys): audio both ways again after resume, still SRTP, the call stays up`, async () => {
        try {
          const callStart = Date.now();
          assert.ok((await phone.command('dial', dialUri())).ok);
          await alice.waitCallState('ringing-in', 15_000);
          await alice.answer();
          await alice.waitCallState('connected', 10_000);
          await phone.waitEvent((e) => e.type === 'CALL_ESTABLISHED' && e.at >= callStart, 10_000, 'CALL_ESTABLISHED');
          await waitFor(async () => ((await phoneLeg())?.packetsFromPeer ?? 0) > 50, 10_000, 100, 'SRTP from the phone');
          assert.ok((await phone.command('hold')).ok);
          await alice.waitCallState('held by the other side', 5000);
          assert.ok((await phone.command('resume')).ok);
          await alice.waitCallState('connected', 5000);
          const resumedFrom = (await phoneLeg())!.packetsFromPeer;
          await waitFor(async () => ((await phoneLeg())?.packetsFromPeer ?? 0) - resumedFrom > 50, 5000, 100, 'SRTP from the phone again after resume');
          const s0 = await alice.rtpStats();
          await waitFor(async () => (await alice.rtpStats()).received - s0.received > 50, 5000, 100, 'the browser receives again after resume');
          const leg = (await phoneLeg())!;
          assert.equal(leg.srtp, true);
          assert.ok((leg.srtpRefusedPackets ?? 0) <= 3, `refused on the SRTP leg: ${leg.srtpRefusedPackets} (baresip's few clear RTCP packets at most)`);
          const calls = await liveCalls();
          assert.equal(calls.length, 1);
          assert.equal(calls[0]!.state, 'answered');
          assert.ok((await phone.command('hangup')).ok);
          await alice.waitCallState('ended', 3000);
          await waitFor(async () => (await media()).pipelines === 0, 3000, 25, 'the pipeline released');
        } catch (err) {
          throw diagnose(err);
        }
      });

      if (mediaenc === 'srtp-mand' && sip === 'udp') {
        test('SRTP-SDES: a phone offering RTP/SAVP with no usable a=crypto (only AES_CM_128_HMAC_SHA1_32) gets 488 with a Warning naming the suite; nothing is created', async () => {
          const before = (await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls?state=all')).calls.length;
          const r = await runSipp({
            scenario: 'gateway-uac-savp-no-usable-crypto.xml', localPort: await freePort(), mediaPort: await sippMediaPort(),
            remote: `127.0.0.1:${stack.sipPort}`, service: ALICE.user, extraArgs: ['-au', DESK.user, '-ap', DESK.password, '-auth_uri', `${ALICE.user}@127.0.0.1:${stack.sipPort}`], timeoutS: 15,
          });
          assert.equal(r.exitCode, 0, describeSipp(r));
          assert.match(r.messages, /Warning: 399 ferry "no supported SRTP crypto suite offered \(AES_CM_128_HMAC_SHA1_32\); needed AES_CM_128_HMAC_SHA1_80"/);
          assert.equal((await getJson<{ calls: CallRecord[] }>(stack.httpPort, '/api/calls?state=all')).calls.length, before, 'no call record');
          const m = await media();
          assert.deepEqual([m.pipelines, m.boundPorts], [0, 0]);
          assert.notEqual(await alice.callState(), 'ringing-in', 'the webphone was never rung');
        });
      }
    });
  }
});
