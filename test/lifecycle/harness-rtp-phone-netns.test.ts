import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { pollPause, realTimePause } from '../helpers/wait-for';
import { RtpPhone } from '../helpers/rtp-phone';
import { RtpPhoneProcess } from '../helpers/rtp-phone-process';
import { NetNamespace } from '../helpers/netns';
import { SipPhone } from '../helpers/sip-phone';

/** Polls `check` every 50 ms until it holds (true) or `timeoutMs` passed (false). */
async function eventually(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await pollPause(50);
  }
  return check();
}

/**
 * The lifecycle harness proves itself first: the scripted phone and the namespace faults do what the scenarios rely on.
 * The three tests run at the same time: each has its own phones (own ports) and the namespace test its own
 * namespace and veth pair, and each window counts only its own phones' packets.
 */
describe('lifecycle harness: scripted RTP phone and phone namespaces', { concurrency: true }, () => {
  test('two scripted phones exchange RTP at 50 pps and RTCP; mute stops RTP only; RTCP BYE is counted', { timeout: 300_000 }, async () => {
    const a = new RtpPhone({ rtcpIntervalMs: 500 });
    const b = new RtpPhone({ rtcpIntervalMs: 500 });
    after(() => Promise.all([a.close(), b.close()]));
    const pa = await a.start();
    const pb = await b.start();
    assert.equal(pa.rtcpPort, pa.rtpPort + 1);
    await a.applyRemoteSdp(await b.sdp());
    await b.applyRemoteSdp(await a.sdp());
    await a.startMedia();
    await b.startMedia();
    const started = Date.now();
    assert.ok(await eventually(async () => { const s = await b.stats(); return s.rtpReceived >= 50 && s.rtcpReceived >= 2; }, 5000), 'b receives RTP and RTCP');
    const t0 = Date.now();
    const s1 = await b.stats();
    assert.ok(s1.rtpReceived >= 50, `b received ${s1.rtpReceived} RTP in ${t0 - started} ms`);
    assert.ok(s1.rtcpReceived >= 2, `b received ${s1.rtcpReceived} RTCP`);
    assert.equal(s1.lastPayloadHex?.length, 320);
    assert.ok((await b.maxRtpGap(t0 - 1000, t0)) < 200);
    await a.mute();
    await realTimePause(300); // packets already in flight land before the window starts
    const s2 = await b.stats();
    await realTimePause(1200); // the measured window: no RTP, RTCP (every 500 ms) still arrives
    const s3 = await b.stats();
    assert.equal(s3.rtpReceived, s2.rtpReceived, 'muted phone sends no RTP');
    assert.ok(s3.rtcpReceived > s2.rtcpReceived, 'muted phone keeps sending RTCP');
    await a.sendBye();
    assert.ok(await eventually(async () => (await b.stats()).byeReceived >= 1, 2000), 'the RTCP BYE arrives');
    assert.equal((await b.stats()).byeReceived, 1);
  });

  test('a phone in its own namespace: traffic flows over the veth, the cable pull and the netem blip silence it, both recover, the namespace is deleted', { timeout: 300_000 }, async (t) => {
    const ns = await NetNamespace.create();
    const host = new RtpPhone({ address: ns.hostAddress, rtcpIntervalMs: 500 });
    let phone: RtpPhoneProcess | undefined;
    after(async () => {
      await phone?.close();
      await host.close();
      await ns.destroy();
    });
    phone = await RtpPhoneProcess.spawn({ namespace: ns.name, address: ns.phoneAddress, rtcpIntervalMs: 500 });
    await phone.start();
    await host.start();
    await phone.applyRemoteSdp(await host.sdp());
    await host.applyRemoteSdp(await phone.sdp());
    await phone.startMedia();
    await host.startMedia();
    assert.ok(await eventually(async () => (await host.stats()).rtpReceived >= 30 && (await phone!.stats()).rtpReceived >= 30, 5000), 'RTP both ways over the veth');
    const flowing = await host.stats();
    assert.ok(flowing.rtpReceived >= 30, `host received ${flowing.rtpReceived} from the namespace`);
    assert.ok((await phone.stats()).rtpReceived >= 30);

    await ns.pullCable();
    await realTimePause(300); // packets already in flight land before the window starts
    const cut0 = (await host.stats()).rtpReceived;
    await realTimePause(1000); // the measured window; media resuming after the re-plug is its positive control
    assert.equal((await host.stats()).rtpReceived, cut0, 'nothing arrives from a phone whose cable is pulled');
    await ns.plugCable();
    assert.ok(await eventually(async () => (await host.stats()).rtpReceived > cut0 + 20, 5000), 'media resumes within 5 s of the re-plug');

    const method = await ns.dropAll();
    t.diagnostic('blip method: ' + method);
    await realTimePause(300); // packets already in flight land before the window starts
    const blip0 = (await host.stats()).rtpReceived;
    const phoneBlip0 = (await phone.stats()).rtpReceived;
    await realTimePause(1000); // the measured window; media resuming after the restore is its positive control
    assert.equal((await host.stats()).rtpReceived, blip0, 'netem loss 100% drops phone -> host');
    assert.equal((await phone.stats()).rtpReceived, phoneBlip0, 'netem loss 100% drops host -> phone');
    await ns.restore();
    assert.ok(await eventually(async () => (await host.stats()).rtpReceived > blip0 + 20, 5000), 'media resumes within 5 s after the blip');

    await phone.close();
    phone = undefined;
    await ns.destroy();
    assert.equal(await NetNamespace.exists(ns.name), false);
  });

  test('two scripted SIP phones: INVITE/200/ACK with RTP both ways, sendonly re-INVITE answered recvonly, BYE answered 200', { timeout: 300_000 }, async () => {
    const caller = new SipPhone(new RtpPhone(), { user: 'a' });
    const callee = new SipPhone(new RtpPhone(), { user: 'b' });
    after(() => Promise.all([caller.close(), callee.close()]));
    await caller.start();
    const calleePort = await callee.start();
    await caller.call(`sip:b@127.0.0.1:${calleePort}`, { host: '127.0.0.1', port: calleePort });
    assert.ok(await eventually(async () => (await callee.media.stats()).rtpReceived > 20 && (await caller.media.stats()).rtpReceived > 20, 5000), 'RTP both ways');
    assert.ok((await callee.media.stats()).rtpReceived > 20);
    assert.ok((await caller.media.stats()).rtpReceived > 20);
    const answer = await caller.reinvite('sendonly');
    assert.match(answer, /a=recvonly/);
    const byeSentAt = await caller.hangup();
    const bye = await callee.waitForRequest('BYE', 2000);
    assert.ok(bye.at - byeSentAt < 500);
    assert.equal(callee.inCall, false);
    assert.equal(caller.inCall, false);
  });
});
