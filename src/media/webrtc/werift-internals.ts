import type { Socket } from 'node:dgram';
import { isIP } from 'node:net';
import type { RTCDtlsTransport, RTCPeerConnection } from 'werift';
import { ReplayGuard } from './srtp-replay-window';

/**
 * Every place ferry reaches into werift 0.25.2 below its public API, in one file (out of the box
 * werift drops RTCP BYE, sends no DTLS close_notify, keeps no SRTP replay list). The narrow interfaces
 * below describe exactly the internals used; a werift upgrade is checked against this file and its tests.
 */

interface SrtpSessionInternals {
  decrypt: (buf: Buffer) => Buffer;
  encrypt(payload: Buffer, header: RtpHeaderLike): Buffer;
  remoteContext: { srtpSSRCStates: Record<number, { rolloverCounter: number } | undefined> };
  config: { profile: number };
}
interface SrtcpSessionInternals {
  decrypt: (buf: Buffer) => Buffer;
  encrypt(raw: Buffer): Buffer;
  config: { profile: number };
}
interface DtlsSocketInternals {
  connected: boolean;
  dtls: { recordSequenceNumber: number; epoch: number; version: { major: number; minor: number }; flight: number };
  onHandleHandshakes: (assembled: Array<{ msg_type: number }>) => Promise<void>;
  cipher: { encryptPacket(pkt: PlaintextLike): PlaintextLike; decryptPacket(pkt: PlaintextLike): Buffer };
  transport: { send(buf: Buffer): Promise<unknown> | unknown };
}
interface IceConnectionInternals {
  send(data: Buffer): Promise<void>;
  canSendApplicationData(): boolean;
  protocols: Array<{ transport?: { socket?: Socket; onData?: (data: Buffer, addr: [string, number]) => void } }>;
  checkList?: Array<{ remoteAddr: [string, number] }>;
  nominated?: { protocol: { transport?: { socket?: Socket; closed?: boolean } }; remoteAddr: [string, number] };
}
interface DtlsTransportInternals {
  dtls?: DtlsSocketInternals;
  srtp?: SrtpSessionInternals;
  srtcp?: SrtcpSessionInternals;
  iceTransport: { connection: IceConnectionInternals };
}

/** The header shape werift's SRTP ciphers read (CTR and GCM): ssrc, sequenceNumber and the header bytes. */
interface RtpHeaderLike {
  ssrc: number;
  sequenceNumber: number;
  serializeSize: number;
  serialize(size?: number): Buffer;
}
interface PlaintextLike {
  recordLayerHeader: {
    contentType: number;
    protocolVersion: { major: number; minor: number };
    epoch: number;
    sequenceNumber: number;
    contentLen: number;
  };
  fragment: Buffer;
}

const PROFILE_AEAD_AES_128_GCM = 0x0007;
const DTLS_CONTENT_TYPE_ALERT = 21;

function internals(t: RTCDtlsTransport): DtlsTransportInternals {
  return t as unknown as DtlsTransportInternals;
}

export interface DecryptedMediaSink {
  rtp(packet: Buffer): void;
  rtcp(packet: Buffer): void;
  replayed(kind: 'rtp' | 'rtcp'): void;
}

interface WeriftEventInternals {
  event: { stack: Array<{ execute: (...args: unknown[]) => void }> };
  subscribe(fn: (data: Buffer) => void): { unSubscribe(): void };
}

const PROFILE_GCM = PROFILE_AEAD_AES_128_GCM;

/**
 * Take over the media receive path of a connected DTLS transport: werift's own SRTP handler (decrypt,
 * parse into objects, route to receivers and tracks, and an RTCP parser that drops BYE) is removed from
 * the ICE connection, and ours decrypts with werift's SRTP contexts, applies the replay check (werift
 * keeps no replay list), and hands plain RTP/RTCP bytes to `sink`. DTLS records still go to werift.
 * werift's receivers therefore see nothing and send no RTCP: the leg sends its own SR/RR.
 */
export function takeOverMediaReceive(transport: RTCDtlsTransport, sink: DecryptedMediaSink): void {
  const t = internals(transport);
  const srtp = t.srtp;
  const srtcp = t.srtcp;
  if (!srtp || !srtcp) throw new Error('SRTP is not started on this DTLS transport');
  const onData = (t.iceTransport.connection as unknown as { onData: WeriftEventInternals }).onData;
  const stack = onData.event.stack;
  const weriftSrtp = stack.filter((item) => String(item.execute).includes('srtcp.decrypt'));
  if (weriftSrtp.length !== 1) throw new Error(`expected one werift SRTP handler on the ICE connection, found ${weriftSrtp.length}`);
  stack.splice(stack.indexOf(weriftSrtp[0]!), 1);
  const rtpReplay = new ReplayGuard();
  const rtcpReplay = new ReplayGuard();
  const rtcpIndexAt = srtcp.config.profile === PROFILE_GCM ? 4 : 14;
  onData.subscribe((data: Buffer) => {
    // RFC 7983 demultiplexing: RTP/RTCP first byte 128..191; RTCP packet types 192..223 (RFC 5761).
    if (data.length < 12 || data[0]! < 128 || data[0]! > 191) return;
    const pt = data[1]!;
    if (pt >= 192 && pt <= 223) {
      let plain: Buffer;
      try {
        plain = srtcp.decrypt(data);
      } catch {
        return; // failed authentication: dropped, as werift does
      }
      // SRTCP index (E flag + 31 bits): before the 10-byte tag for AES-CM, the last 4 bytes for AEAD-GCM (RFC 7714 §9.1).
      if (!rtcpReplay.accept(data.readUInt32BE(4), data.readUInt32BE(data.length - rtcpIndexAt) & 0x7fffffff)) {
        sink.replayed('rtcp');
        return;
      }
      sink.rtcp(plain);
      return;
    }
    let plain: Buffer;
    try {
      plain = srtp.decrypt(data);
    } catch {
      return;
    }
    const ssrc = plain.readUInt32BE(8);
    const roc = srtp.remoteContext.srtpSSRCStates[ssrc]?.rolloverCounter ?? 0;
    if (!rtpReplay.accept(ssrc, roc * 65536 + plain.readUInt16BE(2))) {
      sink.replayed('rtp');
      return;
    }
    sink.rtp(plain);
  });
}

/** RTP header length (fixed part + CSRCs + extension), or -1 if the packet is too short to hold it. */
export function rtpHeaderLength(packet: Buffer): number {
  if (packet.length < 12) return -1;
  let len = 12 + (packet[0]! & 0x0f) * 4;
  if (packet[0]! & 0x10) {
    if (packet.length < len + 4) return -1;
    len += 4 + packet.readUInt16BE(len + 2) * 4;
  }
  return packet.length < len ? -1 : len;
}

/**
 * Send one media datagram on the selected pair, as werift's `IceConnection.send` does (no send while RFC 7675
 * consent is not fresh) but without its three promise-returning layers per packet.
 */
function sendMedia(conn: IceConnectionInternals, datagram: Buffer): void {
  if (!conn.canSendApplicationData()) return;
  const pair = conn.nominated;
  const transport = pair?.protocol.transport;
  const socket = transport?.socket;
  if (!pair || !socket || transport.closed || isIP(pair.remoteAddr[0]) === 0) {
    conn.send(datagram).catch(() => undefined);
    return;
  }
  socket.send(datagram, pair.remoteAddr[1], pair.remoteAddr[0]);
}

/** Encrypt a plain RTP packet with our SSRC stamped on it and send it on the selected ICE pair. Returns bytes sent (0 if not sent). */
export function sendSrtp(transport: RTCDtlsTransport, packet: Buffer, ssrc: number): number {
  const t = internals(transport);
  const srtp = t.srtp;
  if (!srtp) return 0;
  const headerLength = rtpHeaderLength(packet);
  if (headerLength < 0) return 0;
  const headerBytes = Buffer.from(packet.subarray(0, headerLength));
  headerBytes.writeUInt32BE(ssrc >>> 0, 8);
  const header: RtpHeaderLike = {
    ssrc: ssrc >>> 0,
    sequenceNumber: headerBytes.readUInt16BE(2),
    serializeSize: headerLength,
    serialize: () => headerBytes,
  };
  const enc = srtp.encrypt(packet.subarray(headerLength), header);
  sendMedia(t.iceTransport.connection, enc);
  return enc.length;
}

/**
 * Send a datagram on the selected pair's socket and resolve once the kernel has it: used for the goodbye
 * packets sent right before the sockets close (a send still queued in libuv is cancelled by close()).
 */
function sendOnSelectedPair(t: DtlsTransportInternals, datagram: Buffer): Promise<boolean> {
  const pair = t.iceTransport.connection.nominated;
  const socket = pair?.protocol.transport?.socket;
  if (!pair || !socket) return Promise.resolve(false);
  return new Promise((resolve) => {
    try {
      socket.send(datagram, pair.remoteAddr[1], pair.remoteAddr[0], (err) => resolve(!err));
    } catch {
      resolve(false);
    }
  });
}

/** Encrypt a plain RTCP compound and send it, resolving when it is on the wire (for a goodbye before close). */
export function sendSrtcpNow(transport: RTCDtlsTransport, compound: Buffer): Promise<boolean> {
  const t = internals(transport);
  if (!t.srtcp) return Promise.resolve(false);
  return sendOnSelectedPair(t, t.srtcp.encrypt(compound));
}

/** Encrypt a plain RTCP compound and send it. */
export function sendSrtcp(transport: RTCDtlsTransport, compound: Buffer): boolean {
  const t = internals(transport);
  if (!t.srtcp) return false;
  sendMedia(t.iceTransport.connection, t.srtcp.encrypt(compound));
  return true;
}

/**
 * Send a DTLS close_notify alert (level warning=1, description close_notify=0) as one protected record
 * of the current epoch, the way werift's own application-data `send` builds its records. werift 0.25.2
 * has no call for this (`RTCDtlsTransport.stop()`: "todo impl send alert").
 */
export async function sendDtlsCloseNotify(transport: RTCDtlsTransport): Promise<boolean> {
  const socket = internals(transport).dtls;
  if (!socket) return false;
  const ctx = socket.dtls;
  const fragment = Buffer.from([1, 0]);
  const pkt = socket.cipher.encryptPacket({
    recordLayerHeader: {
      contentType: DTLS_CONTENT_TYPE_ALERT,
      protocolVersion: ctx.version,
      epoch: ctx.epoch,
      sequenceNumber: ++ctx.recordSequenceNumber,
      contentLen: fragment.length,
    },
    fragment,
  });
  const h = pkt.recordLayerHeader;
  const record = Buffer.alloc(13 + pkt.fragment.length);
  record[0] = h.contentType;
  record[1] = h.protocolVersion.major;
  record[2] = h.protocolVersion.minor;
  record.writeUInt16BE(h.epoch, 3);
  record.writeUIntBE(h.sequenceNumber, 5, 6);
  record.writeUInt16BE(pkt.fragment.length, 11);
  pkt.fragment.copy(record, 13);
  return sendOnSelectedPair(internals(transport), record);
}

/**
 * werift 0.25.2 falls back to stun.l.google.com:19302 whenever no STUN server is configured
 * (ice.js DEFAULT_STUN_SERVER), even with `iceServers: []`: every gathering would resolve that name and send
 * a STUN request off the machine. Clear it on every ICE agent of `pc`; call before setLocalDescription
 * (which gathers). Host candidates only.
 */
export function disableDefaultStunServer(pc: RTCPeerConnection): void {
  for (const it of pc.iceTransports) {
    const conn = (it as unknown as { connection: { stunServer?: unknown } }).connection;
    conn.stunServer = undefined;
  }
}

const HANDSHAKE_HELLO_VERIFY_REQUEST = 3;

/**
 * werift's DTLS client fails the whole handshake when a second HelloVerifyRequest arrives (client
 * Flight3: `if (flight === 3) throw new Error()`), and restarts it from flight 3 when one arrives later.
 * That happens whenever the client's first ClientHello is retransmitted (the peer was slower than 0.5 s, e.g.
 * a loaded machine) and the server answers both: the browser then shows "connected" while we are FAILED,
 * and the call is silent. A duplicate HelloVerifyRequest is ignored here (the first Flight3 already answers
 * and retransmits), as RFC 6347 §4.2.1 allows. Call when the DTLS transport enters 'connecting'; the DTLS
 * socket is created right after that state change, so the guard is installed on the next microtask.
 */
export function ignoreDuplicateHelloVerify(transport: RTCDtlsTransport): void {
  queueMicrotask(() => {
    const socket = internals(transport).dtls;
    if (!socket || typeof socket.onHandleHandshakes !== 'function') return;
    const original = socket.onHandleHandshakes;
    socket.onHandleHandshakes = (assembled) => {
      if (socket.dtls.flight < 3) return original(assembled);
      const kept = assembled.filter((h) => h.msg_type !== HANDSHAKE_HELLO_VERIFY_REQUEST);
      return kept.length > 0 ? original(kept) : Promise.resolve();
    };
  });
}

/**
 * werift hands every non-STUN datagram that reaches an ICE socket to DTLS/SRTP, whoever sent it, and its DTLS
 * layer treats any record of content type alert as the end of the connection, without authentication: a
 * 15-byte datagram from a stranger would close the call. Only STUN (which werift authenticates) is taken from
 * anyone; DTLS and media are taken only from the addresses of the agent's candidate pairs (RFC 8445 checks
 * passed or in progress; the nominated pair first). Returns a counter of dropped datagrams.
 * Call after gathering (the ICE sockets exist then).
 */
export function acceptDataOnlyFromPeers(pc: RTCPeerConnection): { dropped: number; forgedAlerts: number } {
  const counter = { dropped: 0, forgedAlerts: 0 };
  for (const it of pc.iceTransports) {
    const conn = (it as unknown as { connection: IceConnectionInternals }).connection;
    for (const p of conn.protocols) {
      const t = p.transport;
      const inner = t?.onData;
      if (!t || typeof inner !== 'function') continue;
      t.onData = (data: Buffer, addr: [string, number]) => {
        // RFC 7983: first byte 0..3 is STUN; everything else (DTLS 20..63, RTP/RTCP 128..191, junk) must come from a peer.
        if (data.length > 0 && data[0]! > 3 && !fromPeer(conn, addr)) {
          counter.dropped++;
          return;
        }
        if (data.length > 0 && data[0]! >= 20 && data[0]! <= 63 && !alertsAuthentic(pc, data)) {
          counter.forgedAlerts++;
          return;
        }
        inner.call(t, data, addr);
      };
    }
  }
  return counter;
}

/**
 * Once the DTLS handshake is done, an alert record counts only if it decrypts under the session keys (werift
 * takes a plaintext alert, or any record whose second byte looks like an alert code, as the end of the
 * connection). Before that, plaintext alerts (handshake failures) pass. Datagrams without alerts pass.
 */
function alertsAuthentic(pc: RTCPeerConnection, data: Buffer): boolean {
  let pos = 0;
  let socket: DtlsSocketInternals | undefined;
  while (pos + 13 <= data.length) {
    const type = data[pos]!;
    const length = data.readUInt16BE(pos + 11);
    if (type === DTLS_CONTENT_TYPE_ALERT) {
      socket ??= pc.dtlsTransports.map((t) => internals(t).dtls).find((d) => d !== undefined);
      if (socket?.connected) {
        const epoch = data.readUInt16BE(pos + 3);
        if (epoch === 0) return false;
        try {
          socket.cipher.decryptPacket({
            recordLayerHeader: {
              contentType: type,
              protocolVersion: { major: data[pos + 1]!, minor: data[pos + 2]! },
              epoch,
              sequenceNumber: data.readUIntBE(pos + 5, 6),
              contentLen: length,
            },
            fragment: data.subarray(pos + 13, pos + 13 + length),
          });
        } catch {
          return false;
        }
      }
    }
    pos += 13 + length;
  }
  return true;
}

function fromPeer(conn: IceConnectionInternals, addr: [string, number]): boolean {
  const n = conn.nominated?.remoteAddr;
  if (n && n[1] === addr[1] && n[0] === addr[0]) return true;
  const pairs = conn.checkList;
  if (!pairs) return false;
  for (const pair of pairs) {
    const r = pair.remoteAddr;
    if (r[1] === addr[1] && r[0] === addr[0]) return true;
  }
  return false;
}

/** The UDP sockets the peer connection's ICE agents hold right now. */
export function iceSockets(pc: RTCPeerConnection): Socket[] {
  const out: Socket[] = [];
  for (const it of pc.iceTransports) {
    const conn = (it as unknown as { connection: IceConnectionInternals }).connection;
    for (const p of conn.protocols ?? []) {
      const s = p.transport?.socket;
      if (s) out.push(s);
    }
  }
  return out;
}

interface IceBaseModule {
  CONSENT_INTERVAL: number;
  CONSENT_TIMEOUT: number;
}

/**
 * Tune werift's RFC 7675 consent timing (process-wide: werift reads these module constants at each use).
 * Defaults are werift's: a check every 5 s, consent lost 30 s after the last answer.
 */
export function configureIceConsent(timing: { intervalMs: number; timeoutMs: number }): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const path = require('node:path') as typeof import('node:path');
  const iceBasePath = path.join(path.dirname(require.resolve('werift')), '../../ice/src/iceBase.js');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const iceBase = require(iceBasePath) as IceBaseModule;
  iceBase.CONSENT_INTERVAL = timing.intervalMs / 1000;
  iceBase.CONSENT_TIMEOUT = timing.timeoutMs / 1000;
}
