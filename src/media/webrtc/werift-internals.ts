import type { RemoteInfo, Socket } from 'node:dgram';
import { isIP } from 'node:net';
import { CandidatePairState, type RTCDtlsTransport, type RTCPeerConnection } from 'werift';
import { classifyDatagram } from './rfc7983';
import { useSynchronousIpLookup } from './dgram-internals';
import { LeanEvent } from './werift-lean-event';

/**
 * Every place ferry reaches into werift 0.25.2 below its public API, in one file. The narrow interfaces
 * below describe exactly the internals used (docs/werift-notes.md lists each and why);
 * test/unit/werift-compat.test.ts asserts every one of them on the installed werift and fails when any
 * other file in src/ reads one. ferry's media path (SRTP/SRTCP, replay, rollover) is ferry's own
 * (src/media/srtp/): werift does ICE and DTLS, and sees no media.
 */

/** werift's DTLS socket (`RTCDtlsTransport.dtls`), the members used for close_notify and the two DTLS guards. */
export interface DtlsSocketInternals {
  connected: boolean;
  dtls: { recordSequenceNumber: number; epoch: number; version: { major: number; minor: number }; flight: number };
  onHandleHandshakes: (assembled: Array<{ msg_type: number }>) => Promise<void>;
  cipher: { encryptPacket(pkt: PlaintextLike): PlaintextLike; decryptPacket(pkt: PlaintextLike): Buffer };
}
/** An ICE socket as werift's StunProtocol holds it (`UdpTransport`). */
export interface IceSocketTransportInternals {
  socket?: Socket;
  closed?: boolean;
  onData?: (data: Buffer, addr: [string, number]) => void;
}
/** werift's ICE agent (`Connection` in ice/src/ice.js): private `protocols` and `canSendApplicationData`. */
export interface IceConnectionInternals {
  send(data: Buffer): Promise<void>;
  canSendApplicationData(): boolean;
  protocols: Array<{ transport?: IceSocketTransportInternals }>;
  checkList?: Array<{ remoteAddr: [string, number]; state: number; protocol: { transport?: IceSocketTransportInternals } }>;
  nominated?: { protocol: { transport?: IceSocketTransportInternals }; remoteAddr: [string, number] };
  stunServer?: unknown;
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

const DTLS_CONTENT_TYPE_ALERT = 21;
/** The pair is in the valid list (its connectivity check succeeded). */
const PAIR_SUCCEEDED: number = CandidatePairState.SUCCEEDED;

function dtlsSocket(t: RTCDtlsTransport): DtlsSocketInternals | undefined {
  return (t as unknown as { dtls?: DtlsSocketInternals }).dtls;
}

function iceConnection(t: RTCDtlsTransport): IceConnectionInternals {
  return t.iceTransport.connection as unknown as IceConnectionInternals;
}

function connectionsOf(pc: RTCPeerConnection): IceConnectionInternals[] {
  return pc.iceTransports.map((it) => it.connection as unknown as IceConnectionInternals);
}

// ---- the selected pair ------------------------------------------------------------------------------

/** The nominated pair's socket and address, re-read only when werift nominates another pair (no array per packet). */
interface SelectedPath {
  pair: NonNullable<IceConnectionInternals['nominated']>;
  transport: IceSocketTransportInternals;
  socket: Socket;
  host: string;
  port: number;
}
const selectedPaths = new WeakMap<IceConnectionInternals, SelectedPath>();

function selectedPath(conn: IceConnectionInternals): SelectedPath | undefined {
  const pair = conn.nominated;
  if (!pair) return undefined;
  const cached = selectedPaths.get(conn);
  if (cached && cached.pair === pair) return cached;
  const transport = pair.protocol.transport;
  const socket = transport?.socket;
  if (!transport || !socket) return undefined;
  const [host, port] = pair.remoteAddr;
  if (isIP(host) === 0) return undefined;
  const path = { pair, transport, socket, host, port };
  selectedPaths.set(conn, path);
  return path;
}

/**
 * Send one media datagram (already SRTP/SRTCP-protected by ferry) on the selected pair's socket, as werift's
 * `Connection.send` does (nothing while RFC 7675 consent is not fresh) but without its three
 * promise-returning layers per packet. Falls back to `Connection.send` when the pair has no usable socket.
 * Returns false when nothing was sent (no consent, no pair).
 */
export function sendOnSelectedPair(transport: RTCDtlsTransport, datagram: Buffer): boolean {
  const conn = iceConnection(transport);
  if (!conn.canSendApplicationData()) return false;
  const path = selectedPath(conn);
  if (!path || path.transport.closed) {
    conn.send(datagram).catch(() => undefined);
    return true;
  }
  path.socket.send(datagram, path.port, path.host);
  return true;
}

/**
 * Send a datagram on the selected pair's socket and resolve once the kernel has it: used for the goodbye
 * packets sent right before the sockets close (a send still queued in libuv is cancelled by close()).
 */
export function sendOnSelectedPairNow(transport: RTCDtlsTransport, datagram: Buffer): Promise<boolean> {
  const path = selectedPath(iceConnection(transport));
  if (!path) return Promise.resolve(false);
  return new Promise((resolve) => {
    try {
      path.socket.send(datagram, path.port, path.host, (err) => resolve(!err));
    } catch {
      resolve(false);
    }
  });
}

/** The nominated pair as the native relay takes it (src/media/native/offload-types.ts OffloadPath). */
export interface SelectedPairMedia {
  /** The nominated pair's local ICE socket (werift's, bound while gathering). */
  socket: Socket;
  /** The pair's remote address: where media to the browser goes. */
  address: string;
  port: number;
  /** RFC 7675 consent to send is fresh now (what sendOnSelectedPair checks before every send). */
  consent: boolean;
}

/**
 * The nominated pair's local socket and remote address, and whether consent to send on it is fresh; undefined
 * before nomination, after an ICE restart cleared it, or once its socket is closed.
 */
export function selectedPairMedia(transport: RTCDtlsTransport): SelectedPairMedia | undefined {
  const conn = iceConnection(transport);
  const path = selectedPath(conn);
  if (!path || path.transport.closed) return undefined;
  return { socket: path.socket, address: path.host, port: path.port, consent: conn.canSendApplicationData() };
}

/** Where media on a valid pair other than the nominated one came from (demultiplexIceSockets' `media`). */
export interface MediaElsewhere {
  /** The ICE socket it arrived on. */
  socket: Socket;
  address: string;
  port: number;
}

// ---- the demultiplexer on the ICE sockets -------------------------------------------------------------

export interface IceSocketCounters {
  /** non-STUN datagrams from an address that is not one of the agent's candidate pairs */
  dropped: number;
  /** DTLS alert records (from a peer address) that do not decrypt under the session keys */
  forgedAlerts: number;
  /** SRTP/SRTCP datagrams handed to ferry's media path (from the selected pair, or another valid pair) */
  media: number;
  /** of those, the ones that came on a valid pair other than werift's nominated one (the browser moved its selected pair) */
  mediaOnOtherValidPair: number;
  /** SRTP/SRTCP datagrams from a peer address whose pair is not valid (checks not succeeded), or before nomination */
  mediaOffPath: number;
  /** datagrams from a peer that are neither STUN, DTLS nor RTP/RTCP (ZRTP, TURN channel data, junk) */
  otherDropped: number;
  /** DTLS records kept because they came before the DTLS socket existed (see `EarlyDtlsRecords`) */
  earlyDtlsKept: number;
  /** of those, handed to ferry's DTLS server once it existed (from a candidate pair's address by then) */
  earlyDtlsReplayed: number;
  /** early DTLS records dropped: over the bound, from an address that never became a pair's, or ferry was the client */
  earlyDtlsDropped: number;
}

/** The counters of a demultiplexer that has not been installed yet. */
export function emptyIceSocketCounters(): IceSocketCounters {
  return { dropped: 0, forgedAlerts: 0, media: 0, mediaOnOtherValidPair: 0, mediaOffPath: 0, otherDropped: 0, earlyDtlsKept: 0, earlyDtlsReplayed: 0, earlyDtlsDropped: 0 };
}

/** At most this many DTLS records, and this many bytes, are kept per call for a DTLS server that does not exist yet. */
export const EARLY_DTLS_MAX_RECORDS = 4;
export const EARLY_DTLS_MAX_BYTES = 8192;

interface EarlyRecord {
  data: Buffer;
  addr: [string, number];
  deliver: (data: Buffer, addr: [string, number]) => void;
}

/**
 * DTLS records that reach an ICE socket before the DTLS socket of its transport exists. When ferry offered, the
 * browser answers `a=setup:active` and is the DTLS client; it starts its handshake as soon as its own side of ICE
 * works: often before werift (the controlling agent) has finished its nomination and created the DTLS server, and
 * even before ferry has the browser's answer (so before its address is one of the agent's candidate pairs; the
 * browser already has ferry's candidates and ferry answers its checks). werift drops such a ClientHello and the
 * call waits for the browser's retransmission (50 ms to 1 s later). Browsers keep an early ClientHello for the
 * same race (WebRTC's DTLS transport caches it), and so does ferry: the records are copied and kept (at most
 * `EARLY_DTLS_MAX_RECORDS` / `EARLY_DTLS_MAX_BYTES` a call), and on the microtask after the transport enters
 * 'connecting' (its DTLS socket exists then) each one from an address that is now a candidate pair's goes to a
 * DTLS server the way any DTLS datagram would; the rest are dropped, and all of them when ferry is the client
 * (a server's records answer the client's ClientHello and cannot come first).
 */
class EarlyDtlsRecords {
  private records: EarlyRecord[] = [];
  private bytes = 0;
  private open = true;

  constructor(
    private readonly transport: RTCDtlsTransport,
    private readonly conn: IceConnectionInternals,
    private readonly counter: IceSocketCounters,
  ) {
    const sub = transport.onStateChange.subscribe((state) => {
      if (state === 'new') return;
      sub.unSubscribe();
      this.open = false;
      const records = this.records;
      this.records = [];
      if (state !== 'connecting') {
        this.counter.earlyDtlsDropped += records.length;
        return;
      }
      if (records.length > 0) queueMicrotask(() => this.replay(records));
    });
  }

  /** Keeps the record if the DTLS socket does not exist yet; false: the caller handles it now. */
  keep(data: Buffer, addr: [string, number], deliver: EarlyRecord['deliver']): boolean {
    if (!this.open || dtlsSocket(this.transport)) return false;
    if (this.records.length >= EARLY_DTLS_MAX_RECORDS || this.bytes + data.length > EARLY_DTLS_MAX_BYTES) {
      this.counter.earlyDtlsDropped++;
      return true;
    }
    this.records.push({ data: Buffer.from(data), addr: [addr[0], addr[1]], deliver });
    this.bytes += data.length;
    this.counter.earlyDtlsKept++;
    return true;
  }

  private replay(records: EarlyRecord[]): void {
    const server = this.transport.role === 'server' && dtlsSocket(this.transport) !== undefined && this.transport.state === 'connecting';
    for (const r of records) {
      if (!server || !fromPeer(this.conn, r.addr)) {
        this.counter.earlyDtlsDropped++;
        continue;
      }
      this.counter.earlyDtlsReplayed++;
      r.deliver(r.data, r.addr);
    }
  }
}

/**
 * The RFC 7983 demultiplexer on every ICE socket of `pc` (wrapping werift's per-socket `onData`):
 * - STUN (first byte 0–3) goes to werift untouched, from anyone (werift authenticates it);
 * - DTLS (20–63) goes to werift only from an address of one of the agent's candidate pairs, and after the
 *   handshake an alert record only if it decrypts under the session keys (werift would take a stranger's
 *   plaintext alert as the end of the call);
 * - SRTP/SRTCP (128–191) from the selected (nominated) pair goes to `media`, ferry's own SRTP, and so does media
 *   on another valid pair of the same socket (a browser that moved its selected pair; counted apart); werift
 *   never sees media (its SRTP handler stays idle, so nothing is decrypted or parsed twice); media from a pair
 *   whose checks have not succeeded, or before nomination, is dropped;
 * - everything else is dropped and counted;
 * - DTLS that comes before the transport's DTLS socket exists is kept for it (`EarlyDtlsRecords`), whoever sent it.
 * Call after gathering (the ICE sockets exist then); DTLS is kept early only when the transport is still 'new'.
 */
export function demultiplexIceSockets(
  pc: RTCPeerConnection,
  media: (data: Buffer, elsewhere?: MediaElsewhere) => void,
  options: { nominatedChanged?: () => void } = {},
): IceSocketCounters {
  const counter = emptyIceSocketCounters();
  for (const conn of connectionsOf(pc)) {
    const nomination = new NominationWatch(conn, options.nominatedChanged);
    const transport = pc.dtlsTransports.find((t) => iceConnection(t) === conn);
    const early = transport && transport.state === 'new' ? new EarlyDtlsRecords(transport, conn, counter) : undefined;
    for (const p of conn.protocols) {
      const t = p.transport;
      const inner = t?.onData;
      if (!t || typeof inner !== 'function') continue;
      // media to the browser leaves on this socket: no deferred dns.lookup per send (dgram-internals.ts)
      if (t.socket) {
        useSynchronousIpLookup(t.socket);
        takeSelectedPairMedia(conn, t, t.socket, counter, media, nomination);
      }
      t.onData = (data: Buffer, addr: [string, number]) => {
        nomination.check();
        const kind = classifyDatagram(data);
        if (kind === 'stun') {
          inner.call(t, data, addr);
          return;
        }
        if (kind === 'media') {
          const path = selectedPath(conn);
          if (path && path.transport === t && path.port === addr[1] && path.host === addr[0]) {
            counter.media++;
            media(data);
          } else if (path && onValidPair(conn, t, addr)) {
            counter.media++;
            counter.mediaOnOtherValidPair++;
            media(data, t.socket ? { socket: t.socket, address: addr[0], port: addr[1] } : undefined);
          } else if (fromPeer(conn, addr)) {
            counter.mediaOffPath++;
          } else {
            counter.dropped++;
          }
          return;
        }
        if (kind === 'dtls' && early?.keep(data, addr, toDtls)) return;
        if (!fromPeer(conn, addr)) {
          counter.dropped++;
          return;
        }
        if (kind !== 'dtls') {
          counter.otherDropped++;
          return;
        }
        toDtls(data, addr);
      };
      const toDtls = (data: Buffer, addr: [string, number]): void => {
        if (!alertsAuthentic(pc, data)) {
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
 * The common datagram — SRTP/SRTCP from the selected pair — taken off the ICE socket before werift's own
 * 'message' listener, which per datagram builds an `[address, port]` array, stores the sender on its
 * transport and calls `onData` (the demultiplexer above) in a try block: measured under load, that hop was
 * about 1 µs of every packet from a browser. werift's listener stays the path for everything else (STUN,
 * DTLS, media from another pair), unchanged. werift 0.25.2 puts exactly one 'message' listener on each ICE
 * socket (werift-compat pins it); with any other count the socket is left as it is.
 */
function takeSelectedPairMedia(
  conn: IceConnectionInternals,
  t: IceSocketTransportInternals,
  socket: Socket,
  counter: IceSocketCounters,
  media: (data: Buffer) => void,
  nomination: NominationWatch,
): void {
  const listeners = socket.listeners('message');
  const werift = listeners[0];
  if (listeners.length !== 1 || typeof werift !== 'function') return;
  socket.removeListener('message', werift as (...args: unknown[]) => void);
  let path: SelectedPath | undefined;
  socket.on('message', (data: Buffer, rinfo: RemoteInfo) => {
    const b = data.length > 0 ? data[0]! : 0;
    if (b >= 128 && b <= 191) {
      if (path === undefined || path.pair !== conn.nominated) {
        nomination.check();
        path = selectedPath(conn);
      }
      if (path !== undefined && path.transport === t && path.port === rinfo.port && path.host === rinfo.address) {
        counter.media++;
        try {
          media(data);
        } catch {
          // as under werift's listener: a throw costs this datagram, never the socket or the process
        }
        return;
      }
    }
    (werift as (d: Buffer, r: RemoteInfo) => void).call(socket, data, rinfo);
  });
}

/** The listeners of each ICE agent whose `nominated` field is observed (observeNomination). */
const nominationListeners = new WeakMap<IceConnectionInternals, Set<() => void>>();

/**
 * Calls `listener` synchronously whenever werift assigns another pair to the agent's `nominated` field: its
 * first nomination and each later one (checkComplete, after a renomination's resetNominatedPair), the clearing
 * by resetNominatedPair, restart() and close(). werift 0.25.2 raises no event of its own for it (its ICE state
 * stays 'connected' across a renomination), so the agent's own data property `nominated` is replaced by an
 * accessor holding the same value. Returns false, changing nothing, when the property does not have that shape
 * (test/unit/werift-compat.test.ts pins it). A listener that throws does not break werift's assignment: the
 * error is rethrown on a microtask.
 */
export function observeNomination(conn: IceConnectionInternals, listener: () => void): boolean {
  let listeners = nominationListeners.get(conn);
  if (!listeners) {
    const d = Object.getOwnPropertyDescriptor(conn, 'nominated');
    if (!d || !('value' in d) || d.writable !== true || d.configurable !== true) return false;
    let value = d.value as IceConnectionInternals['nominated'];
    const set = new Set<() => void>();
    Object.defineProperty(conn, 'nominated', {
      enumerable: d.enumerable ?? true,
      configurable: true,
      get: () => value,
      set: (next: IceConnectionInternals['nominated']) => {
        if (next === value) return;
        value = next;
        for (const l of [...set]) {
          try {
            l();
          } catch (err) {
            queueMicrotask(() => {
              throw err;
            });
          }
        }
      },
    });
    nominationListeners.set(conn, (listeners = set));
  }
  listeners.add(listener);
  return true;
}

/**
 * Tells when werift's nominated pair is another object than last seen (first nomination, an ICE restart or
 * resetNominatedPair clearing it, a new nomination): at once, from werift's own assignment (observeNomination);
 * also checked on every datagram werift's listener handles and whenever the selected-pair media path finds the
 * pair replaced (the only ways left if the assignment could not be observed).
 */
class NominationWatch {
  private seen: IceConnectionInternals['nominated'];

  constructor(
    private readonly conn: IceConnectionInternals,
    private readonly changed: (() => void) | undefined,
  ) {
    this.seen = conn.nominated;
    if (changed) observeNomination(conn, () => this.check());
  }

  check(): void {
    const now = this.conn.nominated;
    if (now === this.seen) return;
    this.seen = now;
    this.changed?.();
  }
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
      socket ??= pc.dtlsTransports.map((t) => dtlsSocket(t)).find((d) => d !== undefined);
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

/**
 * Media on a valid pair other than werift's nominated one: a controlling browser may nominate again and move
 * its selected pair (Chromium does when several pairs succeed), while werift keeps the first nominated pair
 * (it sends there; the browser takes media on any valid pair). The last match is remembered per socket.
 */
const lastValidPair = new WeakMap<IceSocketTransportInternals, { pair: NonNullable<IceConnectionInternals['checkList']>[number]; host: string; port: number }>();

function onValidPair(conn: IceConnectionInternals, t: IceSocketTransportInternals, addr: [string, number]): boolean {
  const last = lastValidPair.get(t);
  if (last && last.port === addr[1] && last.host === addr[0] && last.pair.state === PAIR_SUCCEEDED) return true;
  for (const pair of conn.checkList ?? []) {
    if (pair.state !== PAIR_SUCCEEDED || pair.protocol.transport !== t) continue;
    const [host, port] = pair.remoteAddr;
    if (port === addr[1] && host === addr[0]) {
      lastValidPair.set(t, { pair, host, port });
      return true;
    }
  }
  return false;
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

// ---- DTLS ---------------------------------------------------------------------------------------------

/**
 * Put ferry's SRTP protection profile preference on a DTLS transport before its handshake starts. werift
 * hands every transport the same module-level list, AEAD_AES_128_GCM first; the DTLS server picks the first
 * of its own list that the client offers, so the order decides whenever werift is the DTLS server (ferry
 * offered; the browser answered `a=setup:active`). The transport's private `srtpProfiles` is replaced by a
 * reordered copy (only ids werift supports are kept). Returns false (and changes nothing) once DTLS started.
 */
export function preferSrtpProfiles(transport: RTCDtlsTransport, dtlsIds: readonly number[]): boolean {
  const t = transport as unknown as { srtpProfiles?: number[]; state: string };
  const current = t.srtpProfiles;
  if (!Array.isArray(current)) throw new Error('werift RTCDtlsTransport has no srtpProfiles list');
  if (t.state !== 'new') return false;
  const ordered = dtlsIds.filter((id) => current.includes(id));
  for (const id of current) if (!ordered.includes(id)) ordered.push(id);
  t.srtpProfiles = ordered;
  return true;
}

/**
 * Send a DTLS close_notify alert (level warning=1, description close_notify=0) as one protected record
 * of the current epoch, the way werift's own application-data `send` builds its records. werift 0.25.2
 * has no call for this (`RTCDtlsTransport.stop()`: "todo impl send alert").
 */
export async function sendDtlsCloseNotify(transport: RTCDtlsTransport): Promise<boolean> {
  const socket = dtlsSocket(transport);
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
  return sendOnSelectedPairNow(transport, record);
}

/**
 * werift keys SRTP and SRTCP sessions of its own when DTLS connects (`RTCDtlsTransport.startSrtp`: two sets of
 * ciphers and HMACs, the key material, a subscriber on every ICE datagram) for media it never sees on ferry's
 * path: the demultiplexer hands SRTP/SRTCP to ferry's contexts (dtls-srtp-session.ts), and werift's senders and
 * receivers, which would send RTCP through those sessions, start only on media werift carries (none here).
 * Skip it on one transport, before DTLS connects: each call keeps less memory. werift's `sendRtp`/`sendRtcp` then
 * have no session; their callers catch that (and none runs on ferry's path). Returns false and changes nothing
 * when this werift has no such step or it already ran.
 */
export function skipWeriftSrtp(transport: RTCDtlsTransport): boolean {
  const t = transport as unknown as { startSrtp?: unknown; srtpStarted?: boolean };
  if (typeof t.startSrtp !== 'function' || t.srtpStarted === true) return false;
  t.startSrtp = () => {
    t.srtpStarted = true;
  };
  return true;
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
    const socket = dtlsSocket(transport);
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
 * When ferry's first ClientHello is sent again if no HelloVerifyRequest came (ms after it was first sent). It now
 * leaves as soon as ICE connects (`startDtlsClientAtOnce`), often before the browser's DTLS has started, so the
 * first resends come soon (bench/media/webrtc-leg-timing.ts --resend compares schedules; docs/benchmarks.md).
 */
export const CLIENT_HELLO_RESEND_MS: readonly number[] = [10, 25, 50, 100, 200, 350];

/**
 * werift's DTLS client sends its first ClientHello when ICE is connected (at once with `startDtlsClientAtOnce`;
 * werift alone waits 100 ms) and resends it only after 500 ms. The browser, the controlling ICE agent, learns the
 * ICE result after ferry does; a browser whose DTLS is not started yet when the ClientHello arrives drops it (werift's does; a loaded one often is late), and the
 * call then waits the 500 ms. So while the handshake is still at flight 1 (no HelloVerifyRequest yet) the same
 * datagram is sent again `resendAfterMs` after the first send, as werift's own retransmission would (identical
 * bytes; a duplicate HelloVerifyRequest is ignored by `ignoreDuplicateHelloVerify`). Call when the DTLS transport
 * enters 'connecting' (the DTLS socket exists on the next microtask); only a client is affected.
 */
export function resendClientHelloEarly(transport: RTCDtlsTransport, resendAfterMs: readonly number[] = CLIENT_HELLO_RESEND_MS): void {
  queueMicrotask(() => {
    const socket = dtlsSocket(transport) as (DtlsSocketInternals & { transport?: { send?: (buf: Buffer, addr?: unknown) => unknown } }) | undefined;
    const tc = socket?.transport;
    if (!socket || transport.role !== 'client' || !tc || typeof tc.send !== 'function') return;
    const send = tc.send;
    // a flag, not the datagram: this hook lives as long as the call, the ClientHello need not
    let seenFirst = false;
    tc.send = (buf: Buffer, addr?: unknown) => {
      if (!seenFirst && socket.dtls.flight === 1) {
        seenFirst = true;
        for (const ms of resendAfterMs) {
          setTimeout(() => {
            if (socket.dtls.flight !== 1 || transport.state !== 'connecting') return;
            Promise.resolve()
              .then(() => send(buf, addr))
              .catch(() => undefined);
          }, ms).unref();
        }
      }
      return send(buf, addr);
    };
  });
}

/** werift's DTLS client socket (`DtlsClient`): `connect()` sends flight 1 and resolves when its retransmissions end. */
interface DtlsClientInternals extends DtlsSocketInternals {
  connect: () => Promise<void>;
}

/**
 * werift's `RTCDtlsTransport.start()` creates its DTLS client right after entering 'connecting', then waits a
 * fixed 100 ms (`await setTimeout(100)`) before calling the client's `connect()`, which sends the first
 * ClientHello: 100 ms of every call's set-up, for nothing. Here the handshake starts at once (on the next
 * microtask, when the DTLS socket exists) and the socket's `connect` is replaced by one that returns that same
 * promise, so werift's own call 100 ms later sends nothing again (werift's flight 1 throws when started twice)
 * and still sees its outcome (a failure still fails the transport). Call when the DTLS transport enters
 * 'connecting', after `resendClientHelloEarly` (whose hook on `send` must be in place before the first
 * ClientHello); only a client is affected. Returns nothing; the started promise is kept on the socket.
 */
export function startDtlsClientAtOnce(transport: RTCDtlsTransport): void {
  queueMicrotask(() => {
    const socket = dtlsSocket(transport) as Partial<DtlsClientInternals> | undefined;
    if (!socket || transport.role !== 'client' || typeof socket.connect !== 'function' || socket.dtls?.flight !== 0) return;
    const connect = socket.connect;
    const started = connect.call(socket);
    // werift attaches its handler when it calls connect() 100 ms later; until then a failure must not be unhandled
    started.catch(() => undefined);
    socket.connect = () => started;
  });
}

// ---- ICE agent set-up -----------------------------------------------------------------------------------

/**
 * werift 0.25.2 falls back to stun.l.google.com:19302 whenever no STUN server is configured
 * (ice.js DEFAULT_STUN_SERVER), even with `iceServers: []`: every gathering would resolve that name and send
 * a STUN request off the machine. Clear it on every ICE agent of `pc`; call before setLocalDescription
 * (which gathers). Host candidates only.
 */
export function disableDefaultStunServer(pc: RTCPeerConnection): void {
  for (const conn of connectionsOf(pc)) conn.stunServer = undefined;
}

/** The UDP sockets the peer connection's ICE agents hold right now. */
export function iceSockets(pc: RTCPeerConnection): Socket[] {
  const out: Socket[] = [];
  for (const conn of connectionsOf(pc)) {
    for (const p of conn.protocols ?? []) {
      const s = p.transport?.socket;
      if (s) out.push(s);
    }
  }
  return out;
}

export interface IceBaseModule {
  CONSENT_INTERVAL: number;
  CONSENT_TIMEOUT: number;
}

/** werift's `ice/src/iceBase.js` module (its RFC 7675 consent constants), found next to werift's resolved entry point. */
export function weriftIceBaseModule(): IceBaseModule {
  return weriftModule<IceBaseModule>('ice/src/iceBase.js');
}

let weriftLib: string | undefined;

/** A path inside werift's `lib/` (its entry point is lib/webrtc/src/index.js): where its unexported modules are. */
function weriftLibPath(relative: string): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const path = require('node:path') as typeof import('node:path');
  weriftLib ??= path.join(path.dirname(require.resolve('werift')), '../..');
  return path.join(weriftLib, relative);
}

/** werift's modules looked up so far, by path inside `lib/`: a peer connection's set-up asks for several, every call. */
const weriftModules = new Map<string, unknown>();

/** One of werift's modules by its path inside `lib/` (the same instance werift itself uses). */
function weriftModule<T>(relative: string): T {
  let mod = weriftModules.get(relative);
  if (mod === undefined) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require(weriftLibPath(relative)) as unknown;
    weriftModules.set(relative, mod);
  }
  return mod as T;
}

/**
 * Tune werift's RFC 7675 consent timing (process-wide: werift reads these module constants at each use).
 * Defaults are werift's: a check every 5 s, consent lost 30 s after the last answer.
 */
export function configureIceConsent(timing: { intervalMs: number; timeoutMs: number }): void {
  const iceBase = weriftIceBaseModule();
  iceBase.CONSENT_INTERVAL = timing.intervalMs / 1000;
  iceBase.CONSENT_TIMEOUT = timing.timeoutMs / 1000;
}

// ---- DTLS handshake crypto on node:crypto ----------------------------------------------------------------------

/** werift's `dtls/src/cipher/namedCurve.js`: the ECDHE key pair of a handshake (raw key bytes). */
export interface DtlsNamedCurveModule {
  generateKeyPair(namedCurve: number): { curve: number; privateKey: Buffer; publicKey: Buffer };
}
/** werift's `dtls/src/cipher/prf.js`: the ECDHE shared secret (the pre-master secret). */
export interface DtlsPrfModule {
  prfPreMasterSecret(publicKey: Buffer, privateKey: Buffer, curve: number): Buffer;
}
/** werift's `dtls/src/cipher/const.js`: the TLS NamedCurve code points werift names. */
export interface DtlsConstModule {
  NamedCurveAlgorithm: { secp256r1_23: number; x25519_29: number };
}
/** werift's `dtls/src/context/cipher.js`: the CertificateVerify signature (`signatureData`), its private key, and `parseX509`. */
export interface DtlsCipherContextModule {
  CipherContext: {
    prototype: {
      signatureData(this: { localPrivateKey: PemPrivateKey }, data: Buffer, hash: string): Buffer;
      parseX509(this: ParsedCertificateHolder, certPem: string | Buffer, keyPem: string | Buffer, signatureHash: unknown): void;
    };
  };
}
/** What `CipherContext.parseX509` sets on the context: the certificate's DER and its parsed private key. */
export interface ParsedCertificateHolder {
  localCert?: Buffer;
  localPrivateKey?: unknown;
  signatureHashAlgorithm?: unknown;
}
/** @fidm/x509's `Certificate` as werift's DTLS parses its certificate (`raw`: the DER). */
export interface FidmCertificateClass {
  fromPEM(pem: Buffer): { raw: Buffer };
}
/** werift's `RTCCertificate` (webrtc/src/transport/dtls.js, exported): the PEM text and the fingerprint it computes from it. */
export interface WeriftCertificateClass {
  prototype: { certPem: string; getFingerprints(): Array<{ algorithm: string; value: string }> };
}
/** werift's `dtls/src/cipher/suites/aead.js`: the record cipher, whose `summary` getter werift's debug logging reads. */
export interface DtlsAeadModule {
  default: { prototype: object };
}
/** werift's `dtls/src/helper.js`: `getObjectSummary`, what the cipher's `summary` getter returns. */
export interface DtlsHelperModule {
  getObjectSummary(obj: object): Record<string, unknown>;
}
/** @fidm/x509's `PrivateKey` as werift's DTLS holds its certificate's key (ServerKeyExchange signs with `sign`). */
export interface FidmPrivateKeyClass {
  prototype: { sign(this: PemPrivateKey, data: Buffer, hashAlgorithm: string): Buffer; toPEM(): Buffer | string };
  _signers: Record<string, unknown>;
  fromPEM(pem: Buffer): PemPrivateKey;
}
interface PemPrivateKey {
  oid?: string;
  toPEM(): Buffer | string;
}

/** The werift DTLS modules the handshake-crypto hook replaces functions of, found next to werift's resolved entry point. */
export function weriftDtlsCryptoModules(): {
  namedCurve: DtlsNamedCurveModule;
  prf: DtlsPrfModule;
  constants: DtlsConstModule;
  cipherContext: DtlsCipherContextModule;
  fidmPrivateKey: FidmPrivateKeyClass;
} {
  const fidm = weriftFidmX509();
  return {
    namedCurve: weriftModule<DtlsNamedCurveModule>('dtls/src/cipher/namedCurve.js'),
    prf: weriftModule<DtlsPrfModule>('dtls/src/cipher/prf.js'),
    constants: weriftModule<DtlsConstModule>('dtls/src/cipher/const.js'),
    cipherContext: weriftModule<DtlsCipherContextModule>('dtls/src/context/cipher.js'),
    fidmPrivateKey: fidm.PrivateKey,
  };
}

/** @fidm/x509 as werift's DTLS resolves it (the copy whose classes werift's objects are instances of). */
function weriftFidmX509(): { PrivateKey: FidmPrivateKeyClass; Certificate: FidmCertificateClass } {
  let fidm = weriftModules.get('@fidm/x509') as { PrivateKey: FidmPrivateKeyClass; Certificate: FidmCertificateClass } | undefined;
  if (!fidm) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    fidm = require(require.resolve('@fidm/x509', { paths: [weriftLibPath('dtls/src')] })) as { PrivateKey: FidmPrivateKeyClass; Certificate: FidmCertificateClass };
    weriftModules.set('@fidm/x509', fidm);
  }
  return fidm;
}

/** How often each replaced step ran on node:crypto (the compat test reads them). */
export const dtlsCryptoCalls = { keyPairs: 0, sharedSecrets: 0, signatures: 0 };

let dtlsCryptoInstalled = false;

/**
 * A P-256 private key as the 32 bytes werift's own code expects. node:crypto's ECDH.getPrivateKey() drops leading
 * zero bytes (one key in 256 comes out 31 bytes long), and @noble/curves refuses a scalar that is not 32 bytes.
 */
export function p256PrivateKeyBytes(key: Buffer): Buffer {
  if (key.length >= 32) return key;
  const padded = Buffer.alloc(32);
  key.copy(padded, 32 - key.length);
  return padded;
}

/** The DER prefix of an X25519 private key's PKCS#8 encoding; the raw 32 bytes follow. */
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/**
 * werift does a DTLS handshake's public-key work in JavaScript: ECDHE on P-256 with @noble/curves (≈ 9 ms per
 * handshake on this project's build machine) or on X25519 with tweetnacl (≈ 6 ms), and it signs with the
 * certificate's key from its PEM text, parsed again for every signature (≈ 1 ms). All of that runs on the
 * media server's event loop while other calls' packets wait. This replaces, process-wide and once, werift's
 * `generateKeyPair` and `prfPreMasterSecret` (module exports werift reads at each call) with node:crypto's
 * ECDH and X25519, and its two signing steps with node:crypto on a key object parsed once per certificate key:
 * the same key formats and the same bytes on the wire (the compat test compares every result with werift's own
 * functions), ≈ 0.1–0.5 ms per handshake.
 */
export function useNodeCryptoForDtls(): void {
  if (dtlsCryptoInstalled) return;
  dtlsCryptoInstalled = true;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const crypto = require('node:crypto') as typeof import('node:crypto');
  const { namedCurve, prf, constants, cipherContext, fidmPrivateKey } = weriftDtlsCryptoModules();
  const { secp256r1_23: P256, x25519_29: X25519 } = constants.NamedCurveAlgorithm;
  const originalKeyPair = namedCurve.generateKeyPair.bind(namedCurve);
  const originalSecret = prf.prfPreMasterSecret.bind(prf);
  const x25519KeyObjects = new WeakMap<Buffer, import('node:crypto').KeyObject>();

  namedCurve.generateKeyPair = (curve) => {
    if (curve === P256) {
      const ecdh = crypto.createECDH('prime256v1');
      const publicKey = ecdh.generateKeys();
      dtlsCryptoCalls.keyPairs++;
      return { curve, privateKey: p256PrivateKeyBytes(ecdh.getPrivateKey()), publicKey };
    }
    if (curve === X25519) {
      const pair = crypto.generateKeyPairSync('x25519');
      // one JWK export carries both raw keys (d, x): ≈ 10 µs, where two DER exports cost ≈ 120 µs
      const jwk = pair.privateKey.export({ format: 'jwk' });
      const privateKey = Buffer.from(String(jwk.d), 'base64url');
      // parsing a private key back costs ≈ 0.4 ms in OpenSSL 3: the shared-secret step takes this object instead
      x25519KeyObjects.set(privateKey, pair.privateKey);
      dtlsCryptoCalls.keyPairs++;
      return { curve, privateKey, publicKey: Buffer.from(String(jwk.x), 'base64url') };
    }
    return originalKeyPair(curve);
  };

  prf.prfPreMasterSecret = (publicKey, privateKey, curve) => {
    if (curve === P256) {
      const ecdh = crypto.createECDH('prime256v1');
      ecdh.setPrivateKey(privateKey);
      dtlsCryptoCalls.sharedSecrets++;
      return ecdh.computeSecret(publicKey);
    }
    if (curve === X25519 && publicKey.length === 32 && privateKey.length === 32) {
      const secret = crypto.diffieHellman({
        privateKey:
          x25519KeyObjects.get(privateKey) ??
          crypto.createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, privateKey]), format: 'der', type: 'pkcs8' }),
        // a JWK import skips OpenSSL's decoder (≈ 0.4 ms for DER)
        publicKey: crypto.createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: publicKey.toString('base64url') }, format: 'jwk' }),
      });
      dtlsCryptoCalls.sharedSecrets++;
      return secret;
    }
    return originalSecret(publicKey, privateKey, curve);
  };

  // One parsed key object per certificate key, by its PEM text: werift parses its (shared) certificate's key
  // into a new object for every peer connection. A few keys at most; the bound keeps a misuse from growing it.
  // With shareParsedDtlsCertificate every peer connection holds the same key object: found by it, without toPEM().
  const keyObjects = new Map<string, import('node:crypto').KeyObject>();
  const keyObjectByKey = new WeakMap<PemPrivateKey, import('node:crypto').KeyObject>();
  const keyObjectOf = (key: PemPrivateKey): import('node:crypto').KeyObject => {
    const known = keyObjectByKey.get(key);
    if (known) return known;
    const pem = key.toPEM().toString();
    let k = keyObjects.get(pem);
    if (!k) {
      k = crypto.createPrivateKey(pem);
      if (keyObjects.size >= 16) keyObjects.clear();
      keyObjects.set(pem, k);
    }
    keyObjectByKey.set(key, k);
    return k;
  };
  cipherContext.CipherContext.prototype.signatureData = function signatureData(data, hash) {
    dtlsCryptoCalls.signatures++;
    return crypto.createSign(hash).update(data).sign(keyObjectOf(this.localPrivateKey));
  };
  const originalSign = fidmPrivateKey.prototype.sign;
  fidmPrivateKey.prototype.sign = function sign(data, hashAlgorithm) {
    // keys with a signer of their own (Ed25519) keep @fidm/x509's path
    if (this.oid !== undefined && fidmPrivateKey._signers[this.oid] != null) return originalSign.call(this, data, hashAlgorithm);
    dtlsCryptoCalls.signatures++;
    return crypto.createSign(hashAlgorithm).update(data).sign(keyObjectOf(this));
  };
}

// ---- the DTLS certificate, parsed once per process -------------------------------------------------------------

/** Counters for the compat test: certificate parses werift still did, and the ones the cache answered. */
export const dtlsCertificateParses = { parsed: 0, shared: 0, fingerprintsComputed: 0, fingerprintsShared: 0 };

/** Objects every call's DTLS state shares (the parsed certificate and key): compactDtlsBuffers leaves them alone. */
const sharedDtlsObjects = new WeakSet<object>();

let certificateSharingInstalled = false;

/**
 * werift uses one certificate for every peer connection of the process (RTCDtlsTransport.localCertificate), yet
 * parses its PEM text again and again: each DTLS socket's CipherContext parses the certificate and its private key
 * with @fidm/x509 (ASN.1 in JavaScript), and each SDP werift writes parses the certificate again to hash it for
 * a=fingerprint. This makes both happen once per certificate, process-wide: `parseX509` takes the DER and the
 * parsed key object from a small cache keyed by the PEM texts (every context then holds the same objects;
 * nothing in werift writes to them: it copies the DER before sending it, and signs with the key, which
 * useNodeCryptoForDtls does on node:crypto), and `RTCCertificate.getFingerprints` keeps its result per
 * certificate (a new array of new fingerprint objects each call, as before). Same bytes on the wire.
 */
export function shareParsedDtlsCertificate(certificateClass: WeriftCertificateClass): void {
  if (certificateSharingInstalled) return;
  certificateSharingInstalled = true;
  const fidm = weriftFidmX509();
  const { CipherContext } = weriftModule<DtlsCipherContextModule>('dtls/src/context/cipher.js');
  const parsed = new Map<string, { cert: Buffer; key: unknown }>();
  CipherContext.prototype.parseX509 = function parseX509(certPem, keyPem, signatureHash) {
    const id = `${certPem.toString()}\n${keyPem.toString()}`;
    let entry = parsed.get(id);
    if (entry) dtlsCertificateParses.shared++;
    else {
      entry = { cert: fidm.Certificate.fromPEM(Buffer.from(certPem)).raw, key: fidm.PrivateKey.fromPEM(Buffer.from(keyPem)) };
      dtlsCertificateParses.parsed++;
      sharedDtlsObjects.add(entry.cert);
      sharedDtlsObjects.add(entry.key as object);
      // a few certificates at most; the bound keeps a misuse from growing it
      if (parsed.size >= 16) parsed.clear();
      parsed.set(id, entry);
    }
    this.localCert = entry.cert;
    this.localPrivateKey = entry.key;
    this.signatureHashAlgorithm = signatureHash;
  };
  const originalFingerprints = certificateClass.prototype.getFingerprints;
  const fingerprints = new WeakMap<object, { certPem: string; list: Array<{ algorithm: string; value: string }> }>();
  certificateClass.prototype.getFingerprints = function getFingerprints() {
    let known = fingerprints.get(this);
    if (known?.certPem === this.certPem) dtlsCertificateParses.fingerprintsShared++;
    else {
      known = { certPem: this.certPem, list: originalFingerprints.call(this) };
      dtlsCertificateParses.fingerprintsComputed++;
      fingerprints.set(this, known);
    }
    return known.list.map((f) => Object.assign(Object.create(Object.getPrototypeOf(f) as object) as { algorithm: string; value: string }, f));
  };
}

let leanCipherSummaryInstalled = false;

/**
 * werift's DTLS flights pass `cipher.summary` to their debug logger on every handshake (flight5/flight6): the
 * getter copies the cipher and hex-dumps each of its key buffers whether debug logging is on or not. This makes
 * the getter return a small object that computes the same summary only when it is formatted (debug's %O
 * formatting goes through util.inspect), so a handshake with werift's debug logging off no longer pays for it.
 * Returns false (nothing changed) when werift's cipher has no such getter.
 */
export function useLazyDtlsCipherSummary(): boolean {
  if (leanCipherSummaryInstalled) return true;
  const proto = weriftModule<DtlsAeadModule>('dtls/src/cipher/suites/aead.js').default?.prototype;
  const helper = weriftModule<DtlsHelperModule>('dtls/src/helper.js');
  const getter = proto ? Object.getOwnPropertyDescriptor(proto, 'summary')?.get : undefined;
  if (!proto || typeof getter !== 'function' || typeof helper.getObjectSummary !== 'function') return false;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { inspect } = require('node:util') as typeof import('node:util');
  Object.defineProperty(proto, 'summary', {
    configurable: true,
    enumerable: false,
    get(this: object) {
      const cipher = this;
      return { [inspect.custom]: (depth: number, options: import('node:util').InspectOptionsStylized) => inspect(helper.getObjectSummary(cipher), { ...options, depth }) };
    },
  });
  leanCipherSummaryInstalled = true;
  return true;
}

// ---- memory a call keeps ---------------------------------------------------------------------------------------

/** werift's `common/src/event.js`: the `Event` class every werift module constructs as `new common_1.Event()`. */
export interface WeriftEventModule {
  Event: new () => object;
}

/** werift's event module, found next to werift's resolved entry point. */
export function weriftEventModule(): WeriftEventModule {
  return weriftModule<WeriftEventModule>('common/src/event.js');
}

/**
 * werift's `Event` defines ten arrow functions per instance, and a WebRTC call makes ~60 of them (≈ 45 KB held
 * per call). werift's modules construct it by a property lookup at each construction (`new common_1.Event()`,
 * through getters re-exporting the event module's `Event`), so replacing that one export, process-wide and before
 * the first peer connection, gives every later werift object a `LeanEvent` (werift-lean-event.ts: the same
 * behaviour, methods on the prototype). Returns true when the lean class is in place; false (and nothing
 * changed) when werift's export is not the class this was written against (its instances own `execute`).
 */
export function useLeanWeriftEvent(): boolean {
  const mod = weriftEventModule();
  if (mod.Event === (LeanEvent as unknown)) return true;
  if (typeof mod.Event !== 'function' || typeof Object.getOwnPropertyDescriptor(new mod.Event(), 'execute')?.value !== 'function') return false;
  mod.Event = LeanEvent as unknown as WeriftEventModule['Event'];
  return true;
}

/** Keys of werift's DTLS socket state the compaction does not enter (options hold the ICE transport; the rest are not buffers). */
const COMPACT_SKIP = new Set(['options', 'transport', 'socket', 'onConnect', 'onData', 'onError', 'onClose', 'srtp']);

/** The blocks compactDtlsBuffers made: views into them are not copied again. */
const compactBlocks = new WeakSet<ArrayBufferLike>();

/** A bound on the objects one compaction looks at (a call's DTLS state is a few hundred). */
const COMPACT_MAX_OBJECTS = 2000;

/**
 * Plain data of the DTLS state (records, handshake messages, key pairs, parsed keys and their ASN.1 trees): not
 * an event, timer, emitter, socket handle, promise or collection, whose members lead out of this call's state.
 */
function isDtlsStateObject(value: object): boolean {
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer || value instanceof Promise || value instanceof Map || value instanceof Set) return false;
  const v = value as Record<string, unknown>;
  return typeof v.subscribe !== 'function' && typeof v.emit !== 'function' && typeof v.then !== 'function' && !('_onTimeout' in v) && !('_handle' in v);
}

/**
 * A `Buffer` made with `Buffer.from`/`slice`/`subarray` of a small size is a view into an 8 KiB pool slab (or
 * into a larger received datagram); as long as the view lives, the whole slab does. werift's DTLS socket keeps
 * dozens of such views for the life of the call: its handshake cache and last flight, the master secret, the
 * certificates, randoms, key pairs and record keys (heap snapshots: ~3 slabs, ~25 KiB per call). Once DTLS is
 * connected (nothing of the handshake is rebuilt: werift keeps them only to retransmit or to recompute the same
 * values), each is replaced by a view of one block of their exact total size (one per call), walking the DTLS
 * socket's `dtls`, `cipher`, `extensions` and client `flight5` state a few levels deep. Returns how many buffers
 * were copied.
 */
export function compactDtlsBuffers(transport: RTCDtlsTransport): number {
  const socket = dtlsSocket(transport) as unknown as Record<string, unknown> | undefined;
  if (!socket) return 0;
  const seen = new Set<object>();
  const found: Array<{ holder: Record<string, unknown> | unknown[]; key: string | number; value: Uint8Array }> = [];
  let visits = 0;
  const visit = (holder: Record<string, unknown> | unknown[], depth: number): void => {
    if (seen.has(holder)) return;
    seen.add(holder);
    visits++;
    const keys = Array.isArray(holder) ? holder.keys() : Object.keys(holder);
    for (const key of keys) {
      if (typeof key === 'string' && COMPACT_SKIP.has(key)) continue;
      const value = (holder as Record<string | number, unknown>)[key];
      if (value === null || typeof value !== 'object') continue;
      if (sharedDtlsObjects.has(value)) continue;
      if (value instanceof Uint8Array) {
        if (value.byteLength < value.buffer.byteLength && !compactBlocks.has(value.buffer)) found.push({ holder, key, value });
        continue;
      }
      if (depth > 0 && visits < COMPACT_MAX_OBJECTS && isDtlsStateObject(value)) visit(value as Record<string, unknown>, depth - 1);
    }
  };
  for (const root of ['dtls', 'cipher', 'extensions', 'flight5']) {
    const value = socket[root];
    if (value !== null && typeof value === 'object') visit(value as Record<string, unknown>, 6);
  }
  if (found.length === 0) return 0;
  // one exact-size block for all of them: a separate ArrayBuffer per small buffer would cost more than its bytes
  const copies = new Map<Uint8Array, Uint8Array>();
  let total = 0;
  for (const f of found) {
    if (copies.has(f.value)) continue;
    copies.set(f.value, f.value);
    total += f.value.byteLength;
  }
  const block = Buffer.allocUnsafeSlow(total);
  compactBlocks.add(block.buffer);
  let offset = 0;
  for (const value of copies.keys()) {
    block.set(value, offset);
    copies.set(value, Buffer.isBuffer(value) ? block.subarray(offset, offset + value.byteLength) : new Uint8Array(block.buffer, offset, value.byteLength));
    offset += value.byteLength;
  }
  for (const { holder, key, value } of found) (holder as Record<string | number, unknown>)[key] = copies.get(value);
  return found.length;
}
