import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, Socket } from 'node:dgram';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { CandidatePairState, RTCDtlsTransport, RTCPeerConnection, RtpHeader } from 'werift';
import { srtpFromDtls } from '../../src/media/webrtc/dtls-srtp-session';
import { LeanEvent } from '../../src/media/webrtc/werift-lean-event';
import {
  compactDtlsBuffers,
  demultiplexIceSockets,
  EARLY_DTLS_MAX_RECORDS,
  emptyIceSocketCounters,
  iceSockets,
  ignoreDuplicateHelloVerify,
  observeNomination,
  preferSrtpProfiles,
  resendClientHelloEarly,
  sendDtlsCloseNotify,
  selectedPairMedia,
  sendOnSelectedPair,
  skipWeriftSrtp,
  startDtlsClientAtOnce,
  useLeanWeriftEvent,
  weriftEventModule,
  weriftIceBaseModule,
  type DtlsSocketInternals,
  type IceConnectionInternals,
  type IceSocketCounters,
  type MediaElsewhere,
} from '../../src/media/webrtc/werift-internals';
import { blankComments } from '../helpers/test-source-scan';
import { pollUntil } from '../helpers/wait-for';
import { exchangeDescriptions, LoopbackPeers } from '../helpers/werift-loopback';

/**
 * werift 0.25.2 below its public API, pinned. ferry's WebRTC leg reaches into werift only through
 * src/media/webrtc/werift-internals.ts (docs/werift-notes.md); a werift upgrade that renames or reshapes any
 * of those internals must fail here, not silence calls. Two real werift peer connections are connected over
 * loopback in this process and every private shape the file relies on is asserted on them, then used
 * (the demultiplexer carries an SRTP packet to ferry's context; close_notify closes the other side).
 * A second part scans src/ so no other file reads werift's private fields.
 */

// ---- the private shapes, on live objects -------------------------------------------------------------

interface Peer {
  pc: RTCPeerConnection;
  conn: IceConnectionInternals;
  transport: RTCDtlsTransport;
}

const peers = new LoopbackPeers();
after(() => peers.closeAll());

async function connectedPair(beforeConnect?: (b: RTCPeerConnection, a: RTCPeerConnection) => void): Promise<{ a: Peer; b: Peer }> {
  const a = peers.create();
  const b = peers.create();
  await exchangeDescriptions(a, b, {
    afterOffer: () => {
      // A offers actpass and B answers active, so A is the DTLS server and its list decides: AES-CM first (werift's own order is GCM first).
      const srtpProfiles = (a.dtlsTransports[0] as unknown as { srtpProfiles: unknown }).srtpProfiles;
      assert.ok(Array.isArray(srtpProfiles) && srtpProfiles.includes(1) && srtpProfiles.includes(7), 'RTCDtlsTransport.srtpProfiles lists 0x0001 and 0x0007');
      assert.equal(preferSrtpProfiles(a.dtlsTransports[0]!, [1, 7]), true);
    },
    afterAnswer: () => {
      // B is the DTLS client: guarded as ferry's leg guards its client (a loaded machine resends ClientHellos, and
      // werift's client fails on the second HelloVerifyRequest that brings)
      const bt = b.dtlsTransports[0]!;
      bt.onStateChange.subscribe((state) => {
        if (state === 'connecting') ignoreDuplicateHelloVerify(bt);
      });
      beforeConnect?.(b, a);
    },
  });
  const peer = (pc: RTCPeerConnection): Peer => ({
    pc,
    conn: pc.iceTransports[0]!.connection as unknown as IceConnectionInternals,
    transport: pc.dtlsTransports[0]!,
  });
  await pollUntil(() => a.dtlsTransports[0]?.state === 'connected' && b.dtlsTransports[0]?.state === 'connected', { timeoutMs: 20_000, what: 'both DTLS transports connected' });
  return { a: peer(a), b: peer(b) };
}

describe('werift private shapes ferry relies on (werift-internals.ts)', { timeout: 60_000 }, () => {
  test('ICE agent, DTLS socket, DTLS-SRTP keying and iceBase constants exist with the shapes ferry uses, and work', async () => {
    const { a, b } = await connectedPair();

    // ICE agent (ice/src/ice.js Connection): protocols[i].transport {socket, onData, closed}, canSendApplicationData,
    // checkList[i].remoteAddr, nominated {protocol.transport, remoteAddr}, stunServer, send
    for (const { conn } of [a, b]) {
      assert.ok(Array.isArray(conn.protocols) && conn.protocols.length > 0, 'connection.protocols');
      for (const p of conn.protocols) {
        assert.ok(p.transport?.socket instanceof Socket, 'protocols[i].transport.socket is a dgram socket');
        assert.equal(typeof p.transport.onData, 'function', 'protocols[i].transport.onData');
        assert.equal(typeof p.transport.closed, 'boolean', 'protocols[i].transport.closed');
      }
      assert.equal(typeof conn.canSendApplicationData, 'function', 'connection.canSendApplicationData');
      assert.equal(conn.canSendApplicationData(), true, 'consent is fresh on a connected pair');
      assert.ok(Array.isArray(conn.checkList) && conn.checkList.length > 0, 'connection.checkList');
      const r = conn.checkList[0]!.remoteAddr;
      assert.ok(typeof r[0] === 'string' && typeof r[1] === 'number', 'checkList[i].remoteAddr is [host, port]');
      for (const pair of conn.checkList) {
        assert.equal(typeof pair.state, 'number', 'checkList[i].state');
        assert.ok(conn.protocols.some((p) => p.transport === pair.protocol.transport), 'checkList[i].protocol.transport is one of the ICE sockets');
      }
      assert.ok(conn.checkList.some((pair) => pair.state === CandidatePairState.SUCCEEDED), 'a valid pair has state SUCCEEDED');
      assert.ok(conn.nominated, 'connection.nominated');
      assert.ok(conn.protocols.some((p) => p.transport === conn.nominated!.protocol.transport), 'nominated.protocol.transport is one of the ICE sockets');
      assert.equal(typeof conn.nominated.remoteAddr[1], 'number', 'nominated.remoteAddr');
      assert.ok('stunServer' in conn, 'connection.stunServer (cleared before gathering)');
      assert.equal(conn.stunServer, undefined, 'disableDefaultStunServer cleared it');
      assert.equal(typeof conn.send, 'function', 'connection.send (the fallback)');
    }
    assert.ok(iceSockets(a.pc).length > 0);

    // DTLS socket (RTCDtlsTransport.dtls): connected, dtls {recordSequenceNumber, epoch, version, flight},
    // onHandleHandshakes, cipher.encryptPacket / decryptPacket
    for (const { transport } of [a, b]) {
      const s = transport.dtls as unknown as DtlsSocketInternals;
      assert.equal(s.connected, true, 'dtls.connected');
      assert.equal(typeof s.dtls.recordSequenceNumber, 'number', 'dtls.dtls.recordSequenceNumber');
      assert.ok(s.dtls.epoch >= 1, 'dtls.dtls.epoch');
      assert.equal(typeof s.dtls.version.major, 'number', 'dtls.dtls.version');
      assert.equal(typeof s.dtls.flight, 'number', 'dtls.dtls.flight');
      assert.equal(typeof s.onHandleHandshakes, 'function', 'dtls.onHandleHandshakes');
      assert.equal(typeof s.cipher.encryptPacket, 'function', 'dtls.cipher.encryptPacket');
      assert.equal(typeof s.cipher.decryptPacket, 'function', 'dtls.cipher.decryptPacket');
      // resendClientHelloEarly wraps the DTLS socket's transport context's send (werift's flights send through it)
      assert.equal(typeof (s as unknown as { transport?: { send?: unknown } }).transport?.send, 'function', 'dtls.transport.send');
    }

    // DTLS-SRTP keying (typed public members): role, dtls.srtp.srtpProfile, dtls.exportKeyingMaterial
    assert.deepEqual(new Set([a.transport.role, b.transport.role]), new Set(['client', 'server']));
    assert.equal(a.transport.role, 'server');
    assert.equal(a.transport.dtls!.srtp.srtpProfile, 1, 'the preference put on the DTLS server decided: AES_CM_128_HMAC_SHA1_80');
    assert.equal(b.transport.dtls!.srtp.srtpProfile, 1);
    assert.equal(preferSrtpProfiles(a.transport, [7, 1]), false, 'too late once DTLS started');
    assert.equal(a.transport.dtls!.exportKeyingMaterial('EXTRACTOR-dtls_srtp', 56).length, 56);
    const ours = srtpFromDtls(b.transport);
    assert.equal(ours.profile.dtlsId, a.transport.dtls!.srtp.srtpProfile);

    // The demultiplexer sits in werift's data path: an SRTP packet werift protects on A reaches B's sink
    // (not werift's SRTP handler) and ferry's context keyed from B's DTLS session decrypts it.
    // werift puts exactly one 'message' listener on each ICE socket; the demultiplexer replaces it with one of
    // its own that takes selected-pair media first and hands everything else to werift's
    const sockets = iceSockets(b.pc);
    for (const s of sockets) assert.equal(s.listenerCount('message'), 1, "one 'message' listener (werift's) per ICE socket");
    const weriftListeners = sockets.map((s) => s.listeners('message')[0]);
    const media: Buffer[] = [];
    const counters = demultiplexIceSockets(b.pc, (d) => media.push(Buffer.from(d)));
    sockets.forEach((s, i) => {
      assert.equal(s.listenerCount('message'), 1, 'still one listener');
      assert.notEqual(s.listeners('message')[0], weriftListeners[i], "ferry's listener in place of werift's");
    });
    const header = new RtpHeader({ payloadType: 0, sequenceNumber: 4242, timestamp: 160, ssrc: 0x1234abcd, marker: false });
    await a.transport.sendRtp(Buffer.alloc(160, 0x55), header);
    await pollUntil(() => media.length >= 1, { timeoutMs: 5000, what: 'the SRTP datagram at the demultiplexer' });
    assert.equal(counters.media, 1);
    const plain = ours.inbound.unprotectRtp(media[0]!);
    assert.ok(plain, 'ferry decrypts werift-protected SRTP with keys from the exporter');
    assert.equal(plain.readUInt16BE(2), 4242);
    assert.ok(plain.subarray(12).equals(Buffer.alloc(160, 0x55)));
    // and back: ferry protects with A's keys as seen from B (outbound), werift on A decrypts (its own receive path)
    const got: number[] = [];
    a.transport.onRtp.subscribe((rtp) => got.push(rtp.header.sequenceNumber));
    const packet = Buffer.alloc(172);
    packet[0] = 0x80;
    packet.writeUInt16BE(777, 2);
    assert.equal(sendOnSelectedPair(b.transport, ours.outbound.protectRtp(packet, undefined, 0x0a0b0c0d)), true);
    await pollUntil(() => got.includes(777), { timeoutMs: 5000, what: 'werift on A to decrypt what ferry sent' });

    // close_notify built on the DTLS socket's private state closes the other side
    assert.equal(await sendDtlsCloseNotify(b.transport), true);
    await pollUntil(() => a.transport.state === 'closed', { timeoutMs: 5000, what: "A's DTLS transport closed by ferry's close_notify" });

    // werift's own SRTP sessions (RTCDtlsTransport.startSrtp / srtpStarted / srtp / srtcp) exist unless skipped
    const wt = (t: RTCDtlsTransport) => t as unknown as { startSrtp: unknown; srtpStarted: boolean; srtp: unknown; srtcp: unknown };
    assert.equal(typeof wt(a.transport).startSrtp, 'function', 'RTCDtlsTransport.startSrtp');
    assert.equal(wt(a.transport).srtpStarted, true, 'RTCDtlsTransport.srtpStarted once connected');
    assert.ok(wt(a.transport).srtp && wt(a.transport).srtcp, 'werift keyed its SRTP/SRTCP sessions (positive control for the skip below)');
    assert.equal(skipWeriftSrtp(a.transport), false, 'too late once SRTP started');

    // iceBase module constants (RFC 7675 consent timing)
    const iceBase = weriftIceBaseModule();
    assert.equal(typeof iceBase.CONSENT_INTERVAL, 'number', 'iceBase.CONSENT_INTERVAL');
    assert.equal(typeof iceBase.CONSENT_TIMEOUT, 'number', 'iceBase.CONSENT_TIMEOUT');
  });

  test('skipWeriftSrtp: werift keys no SRTP session of its own, DTLS still connects and ferry keys and carries media', async () => {
    let skipped: boolean | undefined;
    const { a, b } = await connectedPair((pc) => {
      skipped = skipWeriftSrtp(pc.dtlsTransports[0]!);
    });
    assert.equal(skipped, true);
    const wb = b.transport as unknown as { srtpStarted: boolean; srtp: unknown; srtcp: unknown };
    assert.equal(b.transport.state, 'connected');
    assert.equal(wb.srtpStarted, true);
    assert.equal(wb.srtp, undefined, 'no werift SRTP session on the skipped side');
    assert.equal(wb.srtcp, undefined, 'no werift SRTCP session on the skipped side');
    // ferry's own path is untouched: keyed from the exporter, protects, and werift on A decrypts it
    const ours = srtpFromDtls(b.transport);
    const got: number[] = [];
    a.transport.onRtp.subscribe((rtp) => got.push(rtp.header.sequenceNumber));
    demultiplexIceSockets(b.pc, () => undefined);
    const packet = Buffer.alloc(172);
    packet[0] = 0x80;
    packet.writeUInt16BE(4343, 2);
    assert.equal(sendOnSelectedPair(b.transport, ours.outbound.protectRtp(packet, undefined, 0x0a0b0c0d)), true);
    await pollUntil(() => got.includes(4343), { timeoutMs: 5000, what: 'werift on A to decrypt what ferry sent with werift SRTP skipped' });
    // werift's own send path on the skipped side fails softly (its callers catch): no throw, nothing sent
    assert.equal(await b.transport.sendRtp(Buffer.alloc(160), new RtpHeader({ payloadType: 0, sequenceNumber: 1, timestamp: 0, ssrc: 1, marker: false })), 0);
  });

  test("selectedPairMedia (the native relay's view): the nominated pair's ICE socket, remote address and consent; the demultiplexer tells when the nomination changes", async () => {
    const { a, b } = await connectedPair();
    const changes: unknown[] = [];
    const media: Buffer[] = [];
    demultiplexIceSockets(b.pc, (d) => media.push(Buffer.from(d)), { nominatedChanged: () => changes.push(b.conn.nominated) });
    const nominated = b.conn.nominated!;
    const selected = selectedPairMedia(b.transport);
    assert.ok(selected, 'a nominated pair');
    assert.equal(selected.socket, nominated.protocol.transport!.socket, "the nominated pair's local socket");
    assert.ok(iceSockets(b.pc).includes(selected.socket), 'one of the ICE sockets');
    assert.deepEqual([selected.address, selected.port], [nominated.remoteAddr[0], nominated.remoteAddr[1]], "the pair's remote address");
    assert.equal(selected.consent, true, 'consent fresh on a connected pair');
    // media through the demultiplexer with the same nomination: no change told (the control)
    const header = (seq: number) => new RtpHeader({ payloadType: 0, sequenceNumber: seq, timestamp: 160, ssrc: 0x1234abcd, marker: false });
    await a.transport.sendRtp(Buffer.alloc(160, 1), header(1));
    await pollUntil(() => media.length >= 1 || undefined, { timeoutMs: 5000, what: 'media at the demultiplexer' });
    assert.deepEqual(changes, []);
    // werift drops the nomination (as on a renomination, or an ICE restart): told at once, no datagram needed
    (b.conn as unknown as { resetNominatedPair(): void }).resetNominatedPair();
    assert.deepEqual(changes, [undefined], 'the nomination change told at once');
    assert.equal(selectedPairMedia(b.transport), undefined, 'no nominated pair');
    // werift nominates again, as after the browser's USE-CANDIDATE on a succeeded pair (checkComplete assigns
    // `nominated`): told at once too, and the pair is the native relay's view again
    assert.equal((nominated as unknown as { state: number }).state, CandidatePairState.SUCCEEDED);
    (b.conn as unknown as { checkComplete(pair: unknown): void }).checkComplete(nominated);
    assert.deepEqual(changes, [undefined, nominated], 'the new nomination told at once');
    assert.equal(selectedPairMedia(b.transport)?.socket, selected.socket);
    // a datagram with the same nomination tells nothing more (the control)
    await a.transport.sendRtp(Buffer.alloc(160, 2), header(2));
    await pollUntil(() => media.length >= 2 || undefined, { timeoutMs: 5000, what: 'media at the demultiplexer again' });
    assert.equal(changes.length, 2);
  });

  test("observeNomination: the ICE agent's own `nominated` is a writable, configurable data property; observed, every assignment of another pair is told synchronously and the value kept", async () => {
    const { b } = await connectedPair();
    const d = Object.getOwnPropertyDescriptor(b.conn, 'nominated');
    assert.ok(d && 'value' in d && d.writable === true && d.configurable === true, "connection.nominated is an own writable, configurable data property");
    const seen: unknown[] = [];
    const nominated = b.conn.nominated!;
    assert.equal(observeNomination(b.conn, () => seen.push(b.conn.nominated)), true);
    assert.equal(b.conn.nominated, nominated, 'the value kept');
    b.conn.nominated = nominated;
    assert.deepEqual(seen, [], 'the same pair again: nothing told (the control)');
    b.conn.nominated = undefined;
    b.conn.nominated = nominated;
    assert.deepEqual(seen, [undefined, nominated]);
    // a second listener on the same agent, and an object without the shape
    const second: unknown[] = [];
    assert.equal(observeNomination(b.conn, () => second.push(1)), true);
    b.conn.nominated = undefined;
    assert.deepEqual(second, [1]);
    assert.equal(observeNomination({} as IceConnectionInternals, () => undefined), false, 'no own `nominated`: not observed');
    b.conn.nominated = nominated;
  });

  test('media on a valid pair other than the nominated one reaches the media path with its socket and address (the browser moved its selected pair)', async () => {
    const { a, b } = await connectedPair();
    const got: { data: Buffer; elsewhere: MediaElsewhere | undefined }[] = [];
    demultiplexIceSockets(b.pc, (d, elsewhere) => got.push({ data: Buffer.from(d), elsewhere }));
    const header = (seq: number) => new RtpHeader({ payloadType: 0, sequenceNumber: seq, timestamp: 160, ssrc: 0x1234abcd, marker: false });
    // from the nominated pair: no `elsewhere` (the control)
    await a.transport.sendRtp(Buffer.alloc(160, 1), header(1));
    await pollUntil(() => got.length >= 1 || undefined, { timeoutMs: 5000, what: 'media from the nominated pair' });
    assert.equal(got[0]!.elsewhere, undefined);
    // werift's nomination now names another remote address of the same socket: A's address is still a valid pair's
    const nominated = b.conn.nominated!;
    const [host, port] = nominated.remoteAddr;
    b.conn.nominated = { ...nominated, remoteAddr: [host, port === 9 ? 10 : 9] };
    await a.transport.sendRtp(Buffer.alloc(160, 2), header(2));
    await pollUntil(() => got.length >= 2 || undefined, { timeoutMs: 5000, what: 'media from the other valid pair' });
    const e = got[1]!.elsewhere;
    assert.ok(e, 'told where it came from');
    assert.equal(e.socket, nominated.protocol.transport!.socket, 'the ICE socket it arrived on');
    assert.deepEqual([e.address, e.port], [host, port], "the browser's address on that pair");
  });
});

/**
 * A connects with B's first DTLS datagram (its ClientHello) dropped at A, as a browser whose DTLS has not started
 * yet drops it; B is the DTLS client. Returns how long after the drop the next DTLS datagram reached A.
 */
async function clientHelloResendGap(early: boolean): Promise<number> {
  let droppedAt: number | undefined;
  let nextAt: number | undefined;
  await connectedPair((b, a) => {
    const t = b.dtlsTransports[0]!;
    t.onStateChange.subscribe((state) => {
      if (state === 'connecting' && early) resendClientHelloEarly(t);
    });
    for (const conn of a.iceTransports.map((it) => it.connection as unknown as IceConnectionInternals)) {
      for (const p of conn.protocols) {
        const tr = p.transport!;
        const inner = tr.onData!;
        tr.onData = (data, addr) => {
          const dtls = data[0]! >= 20 && data[0]! <= 63;
          if (dtls && droppedAt === undefined) {
            droppedAt = performance.now();
            return;
          }
          if (dtls && nextAt === undefined) nextAt = performance.now();
          inner.call(tr, data, addr);
        };
      }
    }
  });
  assert.ok(droppedAt !== undefined && nextAt !== undefined, 'a ClientHello was dropped and another came');
  return nextAt - droppedAt;
}

describe('resendClientHelloEarly (werift-internals.ts): a lost first ClientHello is sent again before werift would', { timeout: 60_000 }, () => {
  test('with it, the ClientHello comes again well before 500 ms; without it (control), only after werift\'s 500 ms', async () => {
    const withResend = await clientHelloResendGap(true);
    const without = await clientHelloResendGap(false);
    console.log(`# ClientHello again after ${withResend.toFixed(0)} ms (early resend) vs ${without.toFixed(0)} ms (werift alone)`);
    assert.ok(without >= 450, `control: werift alone resends after ~500 ms (${without.toFixed(0)} ms)`);
    assert.ok(withResend < 400, `the early resend came after ${withResend.toFixed(0)} ms`);
  });
});

/** A cookieless ClientHello (the first flight): DTLS handshake record (22), epoch 0, msg_type client_hello (1), empty session id and cookie. */
function isFirstClientHello(d: Buffer): boolean {
  return d.length > 61 && d[0] === 22 && d.readUInt16BE(3) === 0 && d[13] === 1 && d[59] === 0 && d[60] === 0;
}

interface ClientStart {
  /** ms from the client's DTLS transport entering 'connecting' to its first ClientHello handed to the ICE socket */
  firstHelloAfterMs: number;
  /** cookieless ClientHellos the client's ICE sockets sent within 400 ms of 'connecting' (werift's own retransmission comes at 500 ms) */
  firstHellos: number;
  /** calls of the DTLS socket's connect() made by werift after ferry's hook (werift's own, after its pause) */
  weriftConnectCalls: number;
  /** werift's own connect() calls made when the first ClientHello left (0: it left before werift's pause ended) */
  weriftConnectCallsAtFirstHello: number;
}

/**
 * B (the DTLS client) connects to A, with or without `startDtlsClientAtOnce`; every datagram B's real ICE sockets
 * send is timed from B's 'connecting' (dgram `send` wrapped). No early resend is installed, so every cookieless
 * ClientHello counted is werift's flight 1 (or its own 500 ms retransmission).
 */
async function clientStart(atOnce: boolean): Promise<ClientStart> {
  let connectingAt: number | undefined;
  let firstHelloAt: number | undefined;
  const helloTimes: number[] = [];
  let weriftConnectCalls = 0;
  let weriftConnectCallsAtFirstHello: number | undefined;
  const { b } = await connectedPair((bpc) => {
    const t = bpc.dtlsTransports[0]!;
    t.onStateChange.subscribe((state) => {
      if (state !== 'connecting') return;
      connectingAt = performance.now();
      for (const sock of iceSockets(bpc)) {
        const send = sock.send;
        sock.send = function (this: Socket, msg: unknown, ...rest: unknown[]) {
          if (Buffer.isBuffer(msg) && isFirstClientHello(msg)) {
            helloTimes.push(performance.now());
            firstHelloAt ??= performance.now();
            weriftConnectCallsAtFirstHello ??= weriftConnectCalls;
          }
          return (send as (...a: unknown[]) => void).call(this, msg, ...rest);
        } as typeof sock.send;
      }
      if (atOnce) startDtlsClientAtOnce(t);
      queueMicrotask(() => {
        // after the hook's microtask: count werift's own later connect() calls
        const s = t.dtls as unknown as { connect: () => Promise<void> };
        const hooked = s.connect;
        s.connect = () => {
          weriftConnectCalls++;
          return hooked.call(s);
        };
      });
    });
  });
  assert.equal(b.transport.state, 'connected');
  assert.ok(connectingAt !== undefined && firstHelloAt !== undefined, 'the client sent a ClientHello');
  // werift's own connect() comes 100 ms after 'connecting', possibly after the handshake finished
  await pollUntil(() => weriftConnectCalls >= 1, { timeoutMs: 5000, what: "werift's own connect() after its pause" });
  const firstHellos = helloTimes.filter((at) => at - connectingAt! < 400).length;
  return { firstHelloAfterMs: firstHelloAt - connectingAt, firstHellos, weriftConnectCalls, weriftConnectCallsAtFirstHello: weriftConnectCallsAtFirstHello ?? -1 };
}

describe("startDtlsClientAtOnce (werift-internals.ts): the first ClientHello leaves without werift's 100 ms pause", { timeout: 60_000 }, () => {
  test("werift's DTLS transport still pauses 100 ms and then calls the client's connect() once; DtlsClient has connect", () => {
    const start = RTCDtlsTransport.prototype.start.toString();
    assert.match(start, /instanceof\s+dtls_1\.DtlsClient\)\s*\{\s*await\s*\(0,\s*promises_1\.setTimeout\)\(100\);\s*this\.dtls\.connect\(\)/, 'RTCDtlsTransport.start: `await setTimeout(100); this.dtls.connect()` for a client');
    assert.equal(start.match(/\.connect\(\)/g)?.length, 1, 'connect() is called exactly once in start()');
    assert.match(start, /this\.dtls\s*=\s*new\s+dtls_1\.DtlsClient\(/, 'the client is created in start(), before the pause');
    assert.ok(start.indexOf('this.setState("connecting")') < start.indexOf('new dtls_1.DtlsClient('), "'connecting' is set before the DTLS socket is created (the hook runs on the next microtask)");
  });

  test('with it the first ClientHello goes at once, exactly one is sent, werift calls connect() once more and DTLS connects; without it (control), after 100 ms', async () => {
    const atOnce = await clientStart(true);
    const control = await clientStart(false);
    console.log(`# first ClientHello ${atOnce.firstHelloAfterMs.toFixed(1)} ms after 'connecting' (at once) vs ${control.firstHelloAfterMs.toFixed(1)} ms (werift alone)`);
    assert.ok(control.firstHelloAfterMs >= 99, `control: werift alone sends its first ClientHello after its 100 ms pause (${control.firstHelloAfterMs.toFixed(1)} ms)`);
    assert.equal(control.weriftConnectCallsAtFirstHello, 1, "control: werift alone sends it from its own connect() call");
    // the order does not depend on the machine's load: the first ClientHello left before werift's pause ended
    assert.equal(atOnce.weriftConnectCallsAtFirstHello, 0, "the first ClientHello left before werift's own connect() call");
    assert.ok(atOnce.firstHelloAfterMs < 90, `the first ClientHello left ${atOnce.firstHelloAfterMs.toFixed(1)} ms after 'connecting'`);
    assert.equal(atOnce.weriftConnectCalls, 1, "werift's own connect() is called once, after its pause");
    assert.equal(atOnce.firstHellos, 1, "werift's later connect() sent no second first flight");
    assert.equal(control.firstHellos, 1);
  });
});

interface EarlyServerStart {
  /** cookieless ClientHellos B (the client) sent before both DTLS transports were connected */
  firstHellos: number;
  /** ms from B's first ClientHello to both transports connected */
  connectedAfterMs: number;
  /** A's demultiplexer counters (all 0 when A had none: the control) */
  counters: IceSocketCounters;
}

/**
 * A (the DTLS server, as ferry is when it offered) starts its DTLS only once B's first ClientHello has reached A's
 * ICE agent, the order a browser that answered ferry's offer often produces (its ICE works before the controlling
 * agent's nomination ends). B starts its handshake at once (as browsers do); no early resend is installed on B, so
 * a second cookieless ClientHello can only be werift's own retransmission, 500 ms later. With `demux`, A has
 * ferry's ICE socket demultiplexer (which keeps early DTLS); without it, werift alone (the control).
 */
async function earlyClientHello(demux: boolean): Promise<EarlyServerStart> {
  let counters = emptyIceSocketCounters();
  const hellos: number[] = [];
  let helloSeen = false;
  await connectedPair((b, a) => {
    const at = a.dtlsTransports[0]!;
    if (demux) counters = demultiplexIceSockets(a, () => undefined);
    // werift alone: the ClientHello reaches the ICE agent (and is dropped); with the demultiplexer: it is kept
    at.iceTransport.connection.onData.subscribe((data: Buffer) => {
      if (isFirstClientHello(data)) helloSeen = true;
    });
    const start = at.start.bind(at);
    at.start = async () => {
      await pollUntil(() => helloSeen || counters.earlyDtlsKept > 0, { timeoutMs: 10_000, what: "B's first ClientHello at A", stepMs: 1 });
      return start();
    };
    const bt = b.dtlsTransports[0]!;
    bt.onStateChange.subscribe((state) => {
      if (state !== 'connecting') return;
      for (const sock of iceSockets(b)) {
        const send = sock.send;
        sock.send = function (this: Socket, msg: unknown, ...rest: unknown[]) {
          if (Buffer.isBuffer(msg) && isFirstClientHello(msg)) hellos.push(performance.now());
          return (send as (...x: unknown[]) => void).call(this, msg, ...rest);
        } as typeof sock.send;
      }
      startDtlsClientAtOnce(bt);
    });
  });
  const connectedAt = performance.now();
  assert.ok(hellos.length >= 1, 'B sent a ClientHello');
  return { firstHellos: hellos.length, connectedAfterMs: connectedAt - hellos[0]!, counters };
}

describe('the ICE socket demultiplexer keeps DTLS that comes before the DTLS server exists (werift-internals.ts)', { timeout: 60_000 }, () => {
  test('with it the server answers the first ClientHello (one sent); without it (control) the client has to send it again', async () => {
    const kept = await earlyClientHello(true);
    const control = await earlyClientHello(false);
    console.log(`# DTLS connected ${kept.connectedAfterMs.toFixed(0)} ms after the first ClientHello (kept) vs ${control.connectedAfterMs.toFixed(0)} ms (werift alone)`);
    assert.ok(control.firstHellos >= 2, `control: werift alone drops the early ClientHello, so the client sent it again (${control.firstHellos} sent)`);
    const c = kept.counters;
    assert.ok(c.earlyDtlsKept >= 1 && c.earlyDtlsReplayed === c.earlyDtlsKept && c.earlyDtlsDropped === 0, `kept ${c.earlyDtlsKept}, replayed ${c.earlyDtlsReplayed}, dropped ${c.earlyDtlsDropped}`);
    assert.equal(kept.firstHellos, 1, 'the server answered the first ClientHello');
  });

  test(`before the peer's address is known: kept, then handed on once it is a pair's; a stranger's, and more than ${EARLY_DTLS_MAX_RECORDS} records, dropped; a client hands none on`, async () => {
    // a ChangeCipherSpec record at epoch 0: werift's DTLS socket parses it and ignores it, so handing it on is harmless
    const ccs = Buffer.from([20, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
    const stranger = createSocket('udp4');
    await new Promise<void>((r) => stranger.bind(0, '127.0.0.1', () => r()));
    let server = emptyIceSocketCounters();
    let client = emptyIceSocketCounters();
    const sent: Array<Promise<void>> = [];
    const send = (from: Socket, port: number) =>
      sent.push(new Promise<void>((resolve, reject) => from.send(ccs, port, '127.0.0.1', (err) => (err ? reject(err) : resolve()))));
    try {
      await connectedPair((b, a) => {
        // A has not applied B's answer yet: B's address is not one of A's candidate pairs
        server = demultiplexIceSockets(a, () => undefined);
        client = demultiplexIceSockets(b, () => undefined);
        const aPort = (iceSockets(a)[0]!.address() as { port: number }).port;
        const bPort = (iceSockets(b)[0]!.address() as { port: number }).port;
        send(iceSockets(b)[0]!, aPort); // from B's own ICE socket
        for (let i = 0; i < EARLY_DTLS_MAX_RECORDS + 1; i++) send(stranger, aPort);
        send(stranger, bPort); // to B, the DTLS client
      });
      await Promise.all(sent);
      console.log(`# A (server): ${JSON.stringify(server)}; B (client): ${JSON.stringify(client)}`);
      assert.equal(server.earlyDtlsKept, EARLY_DTLS_MAX_RECORDS, 'the bound');
      assert.equal(server.earlyDtlsReplayed, 1, "B's record, handed on once B's address was a pair's");
      // 3 of the stranger's kept then dropped, 2 over the bound (and B's own early ClientHello, if it came before A's server, over the bound)
      assert.ok(server.earlyDtlsDropped === 5 || server.earlyDtlsDropped === 6, `dropped ${server.earlyDtlsDropped}`);
      assert.equal(client.earlyDtlsKept, 1, 'B kept the record sent to it before its DTLS started');
      assert.equal(client.earlyDtlsReplayed, 0, 'a client hands nothing on');
      assert.equal(client.earlyDtlsDropped, 1);
    } finally {
      stranger.close();
    }
  });
});

// ---- what a call keeps: werift's Event and the DTLS state's pooled buffers ----------------------------------

/** werift's JavaScript files, for the source pins below. */
function weriftSources(): Array<{ file: string; text: string }> {
  const root = path.join(path.dirname(require.resolve('werift')), '../..');
  const out: Array<{ file: string; text: string }> = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir)) {
      const full = path.join(dir, entry);
      if (statSync(full).isDirectory()) walk(full);
      else if (entry.endsWith('.js')) out.push({ file: path.relative(root, full), text: readFileSync(full, 'utf8') });
    }
  };
  walk(root);
  return out;
}

const EVENT_METHODS = 'execute|complete|error|allUnsubscribe|subscribe|queuingSubscribe|once|watch|asPromise';
/** Ways of using werift's Event that LeanEvent (methods on the prototype, installed by replacing the export) would not serve. */
function eventUsesLeanEventBreaks(text: string): string[] {
  const code = blankComments(text);
  const found: string[] = [];
  // a method taken off an instance (called later without its `this`)
  for (const m of code.matchAll(new RegExp(`[\\w\\]\\)]\\.(${EVENT_METHODS})\\b(?!\\s*\\()`, 'g'))) found.push(`detached .${m[1]}`);
  for (const m of code.matchAll(new RegExp(`\\{[^{}=;]*?\\b(${EVENT_METHODS})\\b[^{}=;]*\\}\\s*=\\s*[\\w.]+\\s*;`, 'g'))) found.push(`destructured ${m[1]}`);
  if (/\breturn(?:Trigger|Listener)\b/.test(code)) found.push('returnTrigger/returnListener');
  // the class used other than by `new <module>.Event(` at construction (kept in a variable, extended, compared)
  for (const m of code.matchAll(/(?<!new\s+)\b\w+\.Event\b(?!\s*=)|\bextends\s+\w+\.Event\b|\{\s*Event\s*[,}]/g)) found.push(`Event referenced: ${m[0]}`);
  return found;
}

/**
 * The bytes of ArrayBuffers (pool slabs, received datagrams) that werift's DTLS socket state keeps alive through
 * views into them beyond what those views cover: the slack a compaction removes.
 */
function pinnedSlackUnder(transport: RTCDtlsTransport): number {
  const socket = (transport as unknown as { dtls: Record<string, unknown> }).dtls;
  const seen = new Set<object>();
  const views = new Map<ArrayBufferLike, Set<Uint8Array>>();
  const visit = (o: unknown, depth: number): void => {
    if (o === null || typeof o !== 'object' || seen.has(o) || depth < 0) return;
    seen.add(o);
    if (o instanceof Uint8Array) {
      if (!views.has(o.buffer)) views.set(o.buffer, new Set());
      views.get(o.buffer)!.add(o);
      return;
    }
    for (const [k, v] of Object.entries(o)) if (!['options', 'transport', 'socket', 'srtp'].includes(k) && typeof (v as { subscribe?: unknown })?.subscribe !== 'function') visit(v, depth - 1);
  };
  for (const root of ['dtls', 'cipher', 'extensions', 'flight5']) visit(socket[root], 7);
  let slack = 0;
  for (const [buffer, set] of views) slack += Math.max(0, buffer.byteLength - [...set].reduce((n, v) => n + v.byteLength, 0));
  return slack;
}

describe("useLeanWeriftEvent and compactDtlsBuffers (werift-internals.ts): less memory per call", { timeout: 60_000 }, () => {
  test("werift's sources construct Event only as `new <module>.Event()` and never take a method off one (positive control: the scanner flags each)", () => {
    assert.deepEqual(eventUsesLeanEventBreaks('dtls.onConnect.subscribe(() => {});\nnew common_1.Event();\nthis.onData.execute(buf);'), []);
    assert.deepEqual(eventUsesLeanEventBreaks('socket.on("message", this.onData.execute);'), ['detached .execute']);
    assert.deepEqual(eventUsesLeanEventBreaks('const { execute, complete } = this.onData;'), ['destructured execute']);
    assert.deepEqual(eventUsesLeanEventBreaks('const E = common_1.Event;'), ['Event referenced: common_1.Event']);
    assert.deepEqual(eventUsesLeanEventBreaks('class X extends common_1.Event {}'), ['Event referenced: extends common_1.Event']);
    const sources = weriftSources().filter(({ file }) => !file.endsWith(path.join('common', 'src', 'event.js')));
    assert.ok(sources.length > 200, `scanned ${sources.length} werift files`);
    const constructions = sources.reduce((n, { text }) => n + (blankComments(text).match(/new \w+\.Event\(\)/g)?.length ?? 0), 0);
    assert.ok(constructions > 50, `werift constructs Event in ${constructions} places`);
    // not Event methods: an error string of the H.264/H.265 depacketizer, an addEventListener option
    const known = new Set(['rtp/src/codec/h264.js: detached .error', 'rtp/src/codec/h265.js: detached .error', 'webrtc/src/helper.js: detached .once']);
    const offenders: string[] = [];
    for (const { file, text } of sources) for (const use of eventUsesLeanEventBreaks(text)) if (!known.has(`${file}: ${use}`)) offenders.push(`${file}: ${use}`);
    assert.deepEqual(offenders, []);
  });

  test("after useLeanWeriftEvent every new werift object holds LeanEvents (before it, werift's own: the control), and a call still connects", async () => {
    const mod = weriftEventModule();
    assert.notEqual(mod.Event, LeanEvent, 'not installed yet in this process');
    const before = peers.create();
    assert.equal(typeof Object.getOwnPropertyDescriptor(before.iceConnectionStateChange, 'execute')?.value, 'function', "werift's Event owns its methods");
    assert.equal(useLeanWeriftEvent(), true);
    assert.equal(useLeanWeriftEvent(), true, 'a second call changes nothing');
    const after = peers.create();
    for (const e of [after.iceConnectionStateChange, after.connectionStateChange, after.onIceCandidate, after.onTransceiverAdded]) {
      assert.ok(e instanceof LeanEvent, 'a werift RTCPeerConnection made after the install holds LeanEvents');
    }
    const { a, b } = await connectedPair();
    const socket = (t: RTCDtlsTransport) => (t as unknown as { dtls: { onConnect: unknown; onData: unknown } }).dtls;
    assert.ok(socket(a.transport).onConnect instanceof LeanEvent && socket(b.transport).onData instanceof LeanEvent, "the DTLS sockets' events are LeanEvents");
    assert.equal(await sendDtlsCloseNotify(b.transport), true);
    await pollUntil(() => a.transport.state === 'closed', { timeoutMs: 5000, what: "A's DTLS transport closed by close_notify (its onClose a LeanEvent)" });
  });

  test('compactDtlsBuffers: no pooled view is left under a connected DTLS socket (before: some, the control), and the session still works', async () => {
    const { a, b } = await connectedPair();
    const material = (t: RTCDtlsTransport) => Buffer.from(t.dtls!.exportKeyingMaterial('EXTRACTOR-dtls_srtp', 60)).toString('hex');
    const exported = [material(b.transport), material(a.transport)];
    assert.equal(exported[0], exported[1], 'both ends export the same DTLS-SRTP keying material');
    for (const { transport } of [b, a]) {
      const slack = pinnedSlackUnder(transport);
      assert.ok(slack > 8192, `werift's DTLS state pins ${slack} bytes it does not use after the handshake`);
      const copied = compactDtlsBuffers(transport);
      assert.ok(copied > 5, `copied ${copied} buffers`);
      assert.equal(pinnedSlackUnder(transport), 0, 'nothing pinned beyond the bytes in use');
      assert.equal(compactDtlsBuffers(transport), 0, 'a second pass finds nothing');
    }
    // the DTLS-SRTP keying material (master secret, randoms) is unchanged, and the record keys still seal
    assert.deepEqual([material(b.transport), material(a.transport)], exported);
    assert.equal(srtpFromDtls(b.transport).profile.name, srtpFromDtls(a.transport).profile.name);
    assert.equal(await sendDtlsCloseNotify(b.transport), true);
    await pollUntil(() => a.transport.state === 'closed', { timeoutMs: 5000, what: "A's DTLS transport closed by a close_notify sealed with the compacted keys" });
  });
});

// ---- nobody else reads werift's private fields ---------------------------------------------------------

const SRC = path.join(__dirname, '..', '..', 'src');
const INTERNALS = path.join('media', 'webrtc', 'werift-internals.ts');

/** The private members werift-internals.ts uses, and the ones it used to (a rename must not come back elsewhere). */
const PRIVATE_NAMES = [
  'protocols',
  'checkList',
  'nominated',
  'stunServer',
  'canSendApplicationData',
  'recordSequenceNumber',
  'onHandleHandshakes',
  'encryptPacket',
  'decryptPacket',
  'srtpSSRCStates',
  'rolloverCounter',
  'remoteContext',
  'srtcp',
  'startSrtp',
  'srtpStarted',
];

/** What a source text does below werift's public API: deep imports, casts of werift objects, private names. */
function weriftPrivateUses(text: string): string[] {
  const code = blankComments(text);
  const found: string[] = [];
  if (/\bfrom\s+['"]werift\/(?!nonstandard['"]|polyfill)/.test(code) || /require(?:\.resolve)?\(\s*['"]werift(?:\/|['"])/.test(code) || /['"][^'"\n]*werift\/lib\//.test(code)) {
    found.push('deep import of werift');
  }
  const importsWerift = /\bfrom\s+['"]werift['"/]/.test(code) || /require\(\s*['"]werift/.test(code);
  if (importsWerift && /\bas\s+unknown\s+as\b/.test(code)) found.push('`as unknown as` cast in a file that uses werift');
  for (const name of PRIVATE_NAMES) if (new RegExp(`\\.${name}\\b`).test(code)) found.push(`.${name}`);
  if (/\.event\.stack\b/.test(code)) found.push('.event.stack');
  if (/\b(?:CONSENT_INTERVAL|CONSENT_TIMEOUT|DEFAULT_STUN_SERVER)\b/.test(code)) found.push('werift iceBase constants');
  return found;
}

/** Every TypeScript file under `dir`: the code that runs in ferry's processes (src/'s .js files are browser pages, which have no werift). */
function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const full = path.join(dir, entry);
    if (statSync(full).isDirectory()) out.push(...sourceFiles(full));
    else if (/\.(ts|mts|cts)$/.test(entry)) out.push(full);
  }
  return out;
}

describe('werift private fields are read only in werift-internals.ts', { timeout: 30_000 }, () => {
  test('positive control: the scanner flags each way of reaching below werift, and passes public use and comments', () => {
    const flagged = (text: string) => weriftPrivateUses(text);
    assert.deepEqual(flagged("import { iceBase } from 'werift/lib/ice/src/iceBase';"), ['deep import of werift']);
    assert.deepEqual(flagged("const p = require.resolve('werift');"), ['deep import of werift']);
    assert.deepEqual(flagged("import type { RTCDtlsTransport } from 'werift';\nconst s = (t as unknown as { x: number }).x;"), ['`as unknown as` cast in a file that uses werift']);
    assert.deepEqual(flagged('const roc = srtp.remoteContext.srtpSSRCStates[ssrc].rolloverCounter;'), ['.srtpSSRCStates', '.rolloverCounter', '.remoteContext']);
    assert.deepEqual(flagged('conn.onData.event.stack.splice(0, 1);'), ['.event.stack']);
    assert.deepEqual(flagged('for (const p of conn.protocols) p.transport;'), ['.protocols']);
    assert.deepEqual(flagged('t.srtcp.decrypt(data);'), ['.srtcp']);
    assert.deepEqual(flagged('ctx.recordSequenceNumber++; socket.onHandleHandshakes = f;'), ['.recordSequenceNumber', '.onHandleHandshakes']);
    assert.deepEqual(flagged('iceBase.CONSENT_TIMEOUT = 2;'), ['werift iceBase constants']);
    assert.deepEqual(flagged("import { RTCPeerConnection } from 'werift';\n// reads conn.nominated and .protocols in a comment only\nconst pc = new RTCPeerConnection({});"), []);
    assert.deepEqual(flagged("import { RtpPacket } from 'werift/nonstandard';"), []);
    assert.deepEqual(flagged('const x = (y as unknown as number) + 1; // no werift here'), []);
  });

  test('no file in src/ other than werift-internals.ts reads werift private fields', () => {
    const files = sourceFiles(SRC);
    assert.ok(files.length > 100, `scanned ${files.length} files`);
    assert.ok(files.some((f) => f.endsWith(INTERNALS)), 'werift-internals.ts is among them');
    const offenders: string[] = [];
    for (const file of files) {
      if (file.endsWith(INTERNALS)) continue;
      const uses = weriftPrivateUses(readFileSync(file, 'utf8'));
      if (uses.length > 0) offenders.push(`${path.relative(SRC, file)}: ${uses.join(', ')}`);
    }
    assert.deepEqual(offenders, []);
    assert.ok(weriftPrivateUses(readFileSync(path.join(SRC, INTERNALS), 'utf8')).length >= 5, 'positive control: werift-internals.ts itself is flagged');
  });
});
