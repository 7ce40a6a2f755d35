import { isIP } from 'node:net';

/**
 * Where the WebRTC leg's ICE agent gathers host candidates. Default: loopback only, so nothing leaves
 * 127.0.0.1 in tests. Production sets FERRY_MEDIA_ICE_ADDRESSES to the addresses browsers can reach.
 *   FERRY_MEDIA_ICE_ADDRESSES  comma-separated IPv4 addresses to advertise (default: the media server's
 *                              RTP address, FERRY_MEDIA_RTP_HOST or FERRY_MEDIA_HOST, when it is a concrete IPv4 address, else 127.0.0.1)
 *   FERRY_MEDIA_PUBLIC_IP      IPv4 address written in host candidates (and c=) instead of the gathered
 *                              ones: the public address of a 1:1 NAT in front of the media server
 *   FERRY_MEDIA_ICE_PORT_MIN / FERRY_MEDIA_ICE_PORT_MAX  optional UDP port range (both or neither)
 *   FERRY_MEDIA_ICE_CONSENT_INTERVAL_MS (default 5000), FERRY_MEDIA_ICE_CONSENT_TIMEOUT_MS (default 30000, RFC 7675)
 * No STUN/TURN server is ever contacted (werift's default public STUN server is switched off).
 */
export interface IceSettings {
  readonly addresses: readonly string[];
  readonly portRange: readonly [number, number] | undefined;
  /** written in candidates instead of `addresses` (FERRY_MEDIA_PUBLIC_IP); the sockets stay on `addresses` */
  readonly publicAddress?: string;
  /** RFC 7675 consent: a check every `consentIntervalMs`, the pair is dead `consentTimeoutMs` after the last answer. */
  readonly consentIntervalMs: number;
  readonly consentTimeoutMs: number;
}

export function loadIceSettings(env: NodeJS.ProcessEnv = process.env, defaultAddress = '127.0.0.1'): IceSettings {
  const raw = env.FERRY_MEDIA_ICE_ADDRESSES ?? '';
  const fallback = isIP(defaultAddress) === 4 && defaultAddress !== '0.0.0.0' ? defaultAddress : '127.0.0.1';
  const addresses = (raw.trim() === '' ? fallback : raw).split(',').map((a) => a.trim()).filter((a) => a !== '');
  const errors: string[] = [];
  for (const a of addresses) {
    if (isIP(a) !== 4) errors.push(`FERRY_MEDIA_ICE_ADDRESSES: ${JSON.stringify(a)} is not an IPv4 address`);
  }
  if (addresses.length === 0) errors.push('FERRY_MEDIA_ICE_ADDRESSES: no address given');
  const publicAddress = (env.FERRY_MEDIA_PUBLIC_IP ?? '').trim() || undefined;
  if (publicAddress !== undefined && (isIP(publicAddress) !== 4 || publicAddress === '0.0.0.0')) errors.push(`FERRY_MEDIA_PUBLIC_IP: ${JSON.stringify(publicAddress)} is not a unicast IPv4 address`);
  const min = env.FERRY_MEDIA_ICE_PORT_MIN;
  const max = env.FERRY_MEDIA_ICE_PORT_MAX;
  let portRange: [number, number] | undefined;
  if ((min ?? '') !== '' || (max ?? '') !== '') {
    const lo = Number(min);
    const hi = Number(max);
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 1024 || hi > 65535 || lo > hi) {
      errors.push(`FERRY_MEDIA_ICE_PORT_MIN/MAX: need 1024 <= min <= max <= 65535, got ${JSON.stringify(min)}..${JSON.stringify(max)}`);
    } else {
      portRange = [lo, hi];
    }
  }
  const consentIntervalMs = positiveInt(env, 'FERRY_MEDIA_ICE_CONSENT_INTERVAL_MS', 5000, errors);
  const consentTimeoutMs = positiveInt(env, 'FERRY_MEDIA_ICE_CONSENT_TIMEOUT_MS', 30000, errors);
  if (consentTimeoutMs <= consentIntervalMs) errors.push('FERRY_MEDIA_ICE_CONSENT_TIMEOUT_MS must exceed the consent interval');
  if (errors.length > 0) throw new Error(`invalid ICE settings: ${errors.join('; ')}`);
  return { addresses, portRange, consentIntervalMs, consentTimeoutMs, ...(publicAddress ? { publicAddress } : {}) };
}

function positiveInt(env: NodeJS.ProcessEnv, name: string, fallback: number, errors: string[]): number {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 100) {
    errors.push(`${name}: ${JSON.stringify(v)} is not an integer >= 100`);
    return fallback;
  }
  return n;
}
