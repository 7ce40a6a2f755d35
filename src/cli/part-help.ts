/**
 * `ferry <part> --help`: what the part does, its main settings and where the rest are documented.
 * Printed before the part's module is loaded, so asking for help never starts anything.
 */
export const PART_HELP: Record<string, string> = {
  start: `usage: ferry start            (npm start)

Runs ferry sip, ferry media and ferry gateway as supervised child processes on embedded defaults,
prints where the webphone page is, and stops them all on Ctrl-C. A part that crashes after it was
ready is restarted; a part that fails to start stops ferry start with its reason.

Main settings (environment variables):
  FERRY_HOST              public listen address of SIP, WebSocket and the page (default 127.0.0.1)
  FERRY_PUBLIC_HOST       the name or address phones and browsers use to reach this host
  FERRY_DATA_DIR          private Redis data, API token, development certificate (default .ferry/)
  REDIS_URL               use this Redis for calls and registrations instead of a private one
  FERRY_STORE=memory      keep calls and registrations in the gateway's memory only
  FERRY_TLS=0             no SIP over TLS, secure WebSocket or HTTPS page
  FERRY_LOG_FORMAT        json | pretty (default: pretty on a terminal, json otherwise)
Every variable of the parts applies too (ferry sip --help, ferry media --help, ferry gateway --help).
Reference: docs/configuration.md
`,
  sip: `usage: ferry sip

The SIP engine: SIP over UDP/TCP, WebSocket (and TLS, secure WebSocket with a certificate), and the
drachtio control port the gateway (or any drachtio-srf app) connects to.
Prints "ferry sip ready {...}" with its ports once listening.

Main settings (environment variables):
  FERRY_SIP_HOST / FERRY_SIP_PORT        SIP listen address and UDP+TCP port (127.0.0.1 / 5060)
  FERRY_SIP_WS_PORT                      SIP over WebSocket (8088)
  FERRY_SIP_CONTROL_HOST / _PORT         drachtio control port (127.0.0.1 / 9022)
  FERRY_SIP_SECRET                       drachtio shared secret (cymru)
  FERRY_SIP_METRICS_HOST / _PORT         Prometheus GET /metrics (127.0.0.1 / unset: off)
  FERRY_TLS_CERT / FERRY_TLS_KEY         certificate and key: SIP over TLS (5061) and WSS (8089)
  FERRY_LOG_LEVEL / FERRY_LOG_FORMAT     info | debug | warn ... / json | pretty
Port 0 means any free port. Reference: docs/configuration.md
`,
  media: `usage: ferry media

The Kurento-protocol media server: kurento-client connects to ws://HOST:PORT/kurento; GET /stats on
the same port gives its live counts (per relay worker, and whether it is draining); POST /drain marks it
draining (gateways place no new calls on it), POST /undrain clears that. Prints
"ferry media ready {"port":...}" once listening.

Main settings (environment variables):
  FERRY_MEDIA_HOST / FERRY_MEDIA_PORT    control listener (127.0.0.1 / 8888); keep it on loopback
  FERRY_MEDIA_RTP_HOST                   address RTP and ICE candidates bind (default FERRY_MEDIA_HOST)
  FERRY_MEDIA_RTP_PORT_MIN / _MAX        RTP port range (default: any)
  FERRY_MEDIA_ICE_ADDRESSES              IPv4 addresses WebRTC candidates are gathered on
  FERRY_MEDIA_PUBLIC_IP                  public IPv4 in front of the server (1:1 NAT)
  FERRY_MEDIA_WORKERS                    relay workers, each holding whole pipelines (default: the
                                         number of cores; 1 = everything on one thread)
  FERRY_MEDIA_WORKER_KIND                thread | process: relay workers as threads (default) or child
                                         processes (a native crash or kill ends only that worker's calls)
  FERRY_MEDIA_WATCHDOG_MS                a main thread stuck this long ends the process (20000; 0 = off)
  FERRY_LOG_LEVEL / FERRY_LOG_FORMAT     info | debug | warn ... / json | pretty
Port 0 means any free port. Reference: docs/configuration.md, docs/media-server.md
`,
  gateway: `usage: ferry gateway

The B2BUA: drachtio-srf on ferry sip's control port, kurento-client on ferry media, calls and
registrations in Redis (or memory), the webphone page, /api/calls and /metrics over HTTP.
Prints "ferry gateway ready {...}" once up.

Main settings (environment variables):
  FERRY_SIP_CONTROL_URL                  ferry sip's control port (127.0.0.1:9022)
  FERRY_MEDIA_URL                        ferry media, one or more ws:// URLs, comma-separated (ws://127.0.0.1:8888/kurento)
  REDIS_URL                              state store (unset: memory)
  FERRY_HTTP_HOST / FERRY_HTTP_PORT      webphone page, API, metrics (127.0.0.1 / 3000)
  FERRY_SIP_CONFIG                       users and trunks file (sip-config/ferry.json)
  FERRY_API_TOKEN                        bearer token for /api/*
  FERRY_QUALIFY_MS                       OPTIONS ping to each UDP phone behind NAT, keeping its router's
                                         mapping open (25000; 0: none); FERRY_QUALIFY_MAX_FAILURES (2)
                                         unanswered in a row: calls skip it until it answers again
  FERRY_NO_ANSWER_MS                     ring time before the called party is cancelled (60000)
  FERRY_RING                             all | newest: a user's registrations ring all at once, or one
                                         at a time, newest first (all)
  FERRY_RING_MAX_FORKS_PER_SOURCE        registrations rung at once beyond each call's first, for the
                                         calls from one source (64); FERRY_RING_MAX_FORKS in all (1000)
  FERRY_GATEWAY_MEDIA_PING_TIMEOUT_MS    a media server answering no Kurento ping this long is lost as if
                                         its connection closed: its calls end, new calls skip it (15000; 0 = off)
  FERRY_LOG_LEVEL / FERRY_LOG_FORMAT     info | debug | warn ... / json | pretty
Reference: docs/configuration.md, docs/gateway.md
`,
};

/** `--help`, `-h` or `help` anywhere in a part's arguments. */
export function wantsHelp(args: readonly string[]): boolean {
  return args.some((a) => a === '--help' || a === '-h' || a === 'help');
}
