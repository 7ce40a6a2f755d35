import type { SessionKeys } from '../srtp/key-derivation';
import type { SrtpContext, SrtpCounters, SrtpRtpState } from '../srtp/srtp-context';
import type { SrtpProfileSpec } from '../srtp/srtp-profile';
import { loadNativeAddon } from './native-relay';
import type { NativeSrtpHandle } from './offload-types';

/**
 * JavaScript face of the native SRTP context (srtp.c): the same RTP protect/unprotect as an SrtpContext
 * (RFC 3711 AES_CM_128_HMAC_SHA1_80, RFC 7714 AEAD_AES_128_GCM; per-SSRC ROC and replay window), made from
 * an SrtpContext's RTP session keys, with the per-SSRC state handed over both ways so the native forwarder
 * can take a stream mid-call and give it back without a refused or misdecrypted packet. SRTCP stays with
 * the SrtpContext. `handle` is what a native route's srtpIn / srtpOut takes.
 */

/** The functions srtp.c registers on the addon's exports (ferry_srtp_register). */
export interface NativeSrtpAddon {
  srtpCreate(profileId: number, encryptionKey: Uint8Array, authKey: Uint8Array, salt: Uint8Array): NativeSrtpHandle;
  /** In place; the plain length, or a negative NATIVE_SRTP_REFUSED code. */
  srtpUnprotectRtp(handle: NativeSrtpHandle, packet: Uint8Array, length?: number): number;
  /** In place: packet[0, length) plain, packet's size the room; the protected length, or a negative code. */
  srtpProtectRtp(handle: NativeSrtpHandle, packet: Uint8Array, length: number): number;
  srtpCounters(handle: NativeSrtpHandle): SrtpCounters;
  srtpExportState(handle: NativeSrtpHandle): SrtpRtpState;
  srtpImportState(handle: NativeSrtpHandle, state: SrtpRtpState): void;
  srtpOverhead(handle: NativeSrtpHandle): number;
  /** Native contexts alive in the process (freed when their handle is collected and no route holds them). */
  srtpLiveContexts(): number;
}

/** srtp.h's refusal codes. */
export const NATIVE_SRTP_REFUSED = {
  malformed: -1,
  replay: -2,
  auth: -3,
  space: -4,
  tooLong: -5,
} as const;

export class NativeSrtp {
  readonly handle: NativeSrtpHandle;
  readonly rtpOverhead: number;
  /** counters already added to an SrtpContext by handBackSrtpState */
  private handedBack: SrtpCounters = { unprotected: 0, authFailures: 0, replays: 0, malformed: 0 };

  constructor(
    private readonly addon: NativeSrtpAddon,
    readonly profile: SrtpProfileSpec,
    keys: SessionKeys,
  ) {
    this.handle = addon.srtpCreate(profile.dtlsId, keys.encryptionKey, keys.authKey, keys.salt);
    this.rtpOverhead = addon.srtpOverhead(this.handle);
  }

  /** `packet` protected into `out` (at least packet.length + rtpOverhead bytes) or a new buffer; `packet` is left untouched. */
  protectRtp(packet: Buffer, out?: Buffer): Buffer {
    const need = packet.length + this.rtpOverhead;
    if (out !== undefined && out.length < need) throw new Error(`SRTP output buffer of ${out.length} bytes is shorter than ${need}`);
    const dst = out === undefined ? Buffer.allocUnsafe(need) : out.subarray(0, need);
    packet.copy(dst, 0, 0, packet.length);
    const n = this.addon.srtpProtectRtp(this.handle, dst, packet.length);
    if (n < 0) throw new Error(n === NATIVE_SRTP_REFUSED.tooLong ? 'RTP packet too long for SRTP' : 'not an RTP packet');
    return dst.subarray(0, n);
  }

  /** The decrypted packet (a view of `packet`, decrypted in place), or undefined when refused (counted). */
  unprotectRtp(packet: Buffer): Buffer | undefined {
    const n = this.addon.srtpUnprotectRtp(this.handle, packet);
    return n < 0 ? undefined : packet.subarray(0, n);
  }

  /** Like unprotectRtp, the raw result: the plain length or a negative NATIVE_SRTP_REFUSED code. */
  unprotectRtpCode(packet: Uint8Array, length?: number): number {
    return this.addon.srtpUnprotectRtp(this.handle, packet, length);
  }

  get counters(): SrtpCounters {
    return this.addon.srtpCounters(this.handle);
  }

  exportRtpState(): SrtpRtpState {
    return this.addon.srtpExportState(this.handle);
  }

  /** Each entry replaces that SSRC's state; throws (changing nothing) on an invalid entry. */
  importRtpState(state: SrtpRtpState): void {
    this.addon.srtpImportState(this.handle, state);
  }

  /** The counters since the last hand-back, marking them handed back. */
  takeCounterDeltas(): SrtpCounters {
    const now = this.counters;
    const d = {
      unprotected: now.unprotected - this.handedBack.unprotected,
      authFailures: now.authFailures - this.handedBack.authFailures,
      replays: now.replays - this.handedBack.replays,
      malformed: now.malformed - this.handedBack.malformed,
    };
    this.handedBack = now;
    return d;
  }
}

/**
 * A native context doing the same RTP work as `context` (its RTP session keys and profile). With `state`
 * (the default) it takes over the context's per-SSRC RTP state now, so the stream continues natively
 * where the JavaScript left it; `context` must not handle that stream's RTP until handBackSrtpState.
 * `addon`: the environment's loaded addon (a handle works only in the thread that made it).
 */
export function nativeSrtpFrom(context: SrtpContext, addon: NativeSrtpAddon = loadNativeAddon(), options: { state?: boolean } = {}): NativeSrtp {
  const native = new NativeSrtp(addon, context.profile, context.rtpSessionKeys);
  if (options.state !== false) native.importRtpState(context.exportRtpState());
  return native;
}

/**
 * Give the streams back to `context`: it takes the native context's per-SSRC RTP state (each SSRC the native
 * context knows replaces the context's own) and the counts the native context made since the last hand-back
 * are added to context.counters, so the JavaScript counters read as if it had handled every packet itself.
 */
export function handBackSrtpState(native: NativeSrtp, context: SrtpContext): void {
  context.importRtpState(native.exportRtpState());
  const d = native.takeCounterDeltas();
  context.counters.unprotected += d.unprotected;
  context.counters.authFailures += d.authFailures;
  context.counters.replays += d.replays;
  context.counters.malformed += d.malformed;
}
