/**
 * What the webphone page is told besides the SIP WebSocket: STUN/TURN servers for its
 * RTCPeerConnection (FERRY_WEBPHONE_ICE_SERVERS, a JSON array of RTCIceServer), whether it may use
 * relayed candidates only (FERRY_WEBPHONE_ICE_TRANSPORT_POLICY) and the HTTPS address it links to
 * when opened over plain http:// (FERRY_HTTPS_URL).
 */
export interface IceServer {
  urls: string | string[];
  username?: string;
  credential?: string;
}

export interface WebphoneSettings {
  iceServers: IceServer[];
  iceTransportPolicy: 'all' | 'relay';
  httpsUrl: string | undefined;
}

type Env = Record<string, string | undefined>;

const ICE_URL = /^(stun|stuns|turn|turns):[^\s]+$/;

function parseIceServers(raw: string, problems: string[]): IceServer[] {
  const where = 'environment: FERRY_WEBPHONE_ICE_SERVERS';
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    problems.push(`${where}: not JSON: ${(err as Error).message}`);
    return [];
  }
  if (!Array.isArray(value)) {
    problems.push(`${where}: must be a JSON array of {"urls": ..., "username"?, "credential"?}`);
    return [];
  }
  const servers: IceServer[] = [];
  value.forEach((v: unknown, i) => {
    const s = v as Record<string, unknown>;
    const urls = typeof s?.urls === 'string' ? [s.urls] : Array.isArray(s?.urls) ? s.urls : undefined;
    if (!urls || urls.length === 0 || !urls.every((u) => typeof u === 'string' && ICE_URL.test(u))) {
      problems.push(`${where}[${i}].urls: must be stun:, stuns:, turn: or turns: URLs`);
      return;
    }
    for (const k of ['username', 'credential'] as const) {
      if (s[k] !== undefined && typeof s[k] !== 'string') problems.push(`${where}[${i}].${k}: must be a string`);
    }
    servers.push({ urls: s.urls as string | string[], ...(typeof s.username === 'string' ? { username: s.username } : {}), ...(typeof s.credential === 'string' ? { credential: s.credential } : {}) });
  });
  return servers;
}

export function loadWebphoneSettings(env: Env, problems: string[]): WebphoneSettings {
  const policy = env.FERRY_WEBPHONE_ICE_TRANSPORT_POLICY || 'all';
  if (policy !== 'all' && policy !== 'relay') problems.push(`environment: FERRY_WEBPHONE_ICE_TRANSPORT_POLICY=${JSON.stringify(policy)}: must be all or relay`);
  const httpsUrl = env.FERRY_HTTPS_URL || undefined;
  if (httpsUrl !== undefined && !/^https:\/\/[^\s/]+/.test(httpsUrl)) problems.push(`environment: FERRY_HTTPS_URL=${JSON.stringify(httpsUrl)}: must be an https:// URL`);
  return {
    iceServers: env.FERRY_WEBPHONE_ICE_SERVERS ? parseIceServers(env.FERRY_WEBPHONE_ICE_SERVERS, problems) : [],
    iceTransportPolicy: policy === 'relay' ? 'relay' : 'all',
    httpsUrl,
  };
}

/**
 * The SIP WebSocket URL a page opened as `pageHost` connects to: FERRY_WEBPHONE_WS_URL, except that a
 * wildcard host in it (`ferry start` with FERRY_HOST=0.0.0.0 gives ws://0.0.0.0:8088) is replaced by the
 * name the page was opened with: browsers refuse ws://0.0.0.0, and from another machine it would name
 * the browser's own host. `pageHost` is a Host header's name, IPv6 in brackets.
 */
export function pageWsUrl(configured: string, pageHost: string | undefined): string {
  if (!pageHost) return configured;
  const m = /^(wss?:\/\/)(0\.0\.0\.0|\[::\])(?=[:/]|$)(.*)$/i.exec(configured);
  return m ? `${m[1]}${pageHost}${m[3]}` : configured;
}
