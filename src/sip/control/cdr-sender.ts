import type { AppRouter } from './app-router';

/** The three call detail records drachtio-server writes for an INVITE. */
export type CdrKind = 'attempt' | 'start' | 'stop';

/** Who sent the message a record carries: received from the network, or sent by ferry sip (for an app or itself). */
export type CdrSource = 'network' | 'application';

/** `cdr:start`'s role, as drachtio-server names it. */
export type CdrRole = 'uac' | 'uas' | 'proxy-uac' | 'proxy-uas';

/** `cdr:stop`'s reason, as drachtio-server names it. */
export type CdrStopReason = 'call-rejected' | 'call-canceled' | 'normal-release' | 'session-expired' | 'system-initiated-termination';

/**
 * drachtio-server's time of a record: the UTC time of day with microseconds, `HH:MM:SS.uuuuuu`
 * (drachtio-srf passes it to the handler as a string, unparsed).
 */
export function cdrTime(epochMs: number): string {
  const d = new Date(epochMs);
  const two = (n: number): string => String(n).padStart(2, '0');
  const micros = String(Math.floor(epochMs % 1000) * 1000).padStart(6, '0');
  return `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}.${micros}`;
}

/**
 * Sends call detail records to the apps that asked for them: an app asks with `route|cdr:attempt`
 * (drachtio-srf's `srf.on('cdr:attempt', …)`), and each record goes to one such app, round robin per
 * record kind, as drachtio-server deals them. The frame is
 * `<uuid>|cdr:<kind>|<source>|<time>[|<role or reason>]` CRLF `<SIP message>`.
 * With no app asking, nothing is built or sent.
 */
export class CdrSender {
  /** records sent since start, by kind */
  readonly sent: Record<CdrKind, number> = { attempt: 0, start: 0, stop: 0 };

  constructor(private readonly router: AppRouter, private readonly now: () => number) {}

  /** true when some connected app asked for records of `kind` */
  wanted(kind: CdrKind): boolean {
    return this.router.connected().some((a) => a.routes.has(`cdr:${kind}`));
  }

  /** Sends one record; `sip` is built only when an app takes it. */
  send(kind: CdrKind, source: CdrSource, detail: CdrRole | CdrStopReason | undefined, sip: () => string): void {
    const app = this.router.next(`cdr:${kind}`);
    if (!app) return;
    const tokens = [`cdr:${kind}`, source, cdrTime(this.now())];
    if (kind !== 'attempt') tokens.push(detail ?? 'undefined');
    app.send(tokens, sip());
    this.sent[kind]++;
  }
}
