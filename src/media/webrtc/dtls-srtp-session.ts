import type { RTCDtlsTransport } from 'werift';
import { DTLS_SRTP_EXPORTER_LABEL, dtlsSrtpExportBytes, srtpMastersFromDtls } from '../srtp/dtls-srtp-keys';
import { SrtpContext } from '../srtp/srtp-context';
import { srtpProfileByDtlsId, type SrtpProfileSpec } from '../srtp/srtp-profile';

/** ferry's two SRTP contexts of one WebRTC leg: `inbound` unprotects what the browser sends, `outbound` protects ours. */
export interface DtlsSrtpSession {
  profile: SrtpProfileSpec;
  inbound: SrtpContext;
  outbound: SrtpContext;
}

/**
 * Key ferry's own SRTP contexts from a connected DTLS transport (RFC 5764 §4.2): the negotiated
 * protection profile, then "EXTRACTOR-dtls_srtp" keying material of 2 × (key + salt) bytes for it,
 * split into client and server write keys and salts by our DTLS role. Only werift's typed, public
 * members are read (`RTCDtlsTransport.role`, `.dtls`, the DTLS socket's `srtp.srtpProfile` and
 * `exportKeyingMaterial()`); test/unit/werift-compat.test.ts pins them.
 */
export function srtpFromDtls(transport: RTCDtlsTransport): DtlsSrtpSession {
  const socket = transport.dtls;
  if (!socket) throw new Error('the DTLS transport has no DTLS session');
  const id = socket.srtp.srtpProfile;
  const profile = srtpProfileByDtlsId(id);
  if (!profile) throw new Error(`DTLS negotiated SRTP protection profile ${String(id)}, which ferry does not speak`);
  const role = transport.role;
  if (role !== 'client' && role !== 'server') throw new Error(`DTLS role is '${role}' after the handshake`);
  const material = socket.exportKeyingMaterial(DTLS_SRTP_EXPORTER_LABEL, dtlsSrtpExportBytes(profile));
  const { local, remote } = srtpMastersFromDtls(Buffer.from(material), role, profile);
  return { profile, inbound: new SrtpContext(remote, profile), outbound: new SrtpContext(local, profile) };
}
