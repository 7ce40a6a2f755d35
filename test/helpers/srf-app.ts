/**
 * A drachtio-srf application for tests: the real npm drachtio-srf, connected in inbound mode to the
 * server under test (ferry sip or a real drachtio-server). Handlers are installed before connecting
 * so the `route` messages go out right after authentication, as in a production app.
 *
 * The SIP addresses phones must use are read from the server's answer to `authenticate`
 * (`udp/1.2.3.4:5060,tcp/...`), so the same test works against either server.
 */
import Srf from 'drachtio-srf';
import { pollUntil } from './wait-for';

export type SrfTransport = 'udp' | 'tcp' | 'ws' | 'wss' | 'tls';

export interface ConnectedSrf {
  srf: Srf;
  /** The server's SIP listen addresses as it announced them (`udp/127.0.0.1:5060,...`). */
  hostports: string;
  /** host:port of the server's SIP listener for a transport; throws when it announced none. */
  sipAddress(transport: SrfTransport): string;
  /** Disconnects without reconnecting. Safe to call twice. */
  close(): void;
}

export interface ControlAddress {
  host: string;
  port: number;
  secret: string;
}

/** Parses drachtio's hostports list into transport -> host:port. */
export function parseHostports(hostports: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const item of hostports.split(',')) {
    const m = /^\s*([a-z]+)\/(.+)\s*$/i.exec(item);
    if (m && !out.has(m[1].toLowerCase())) out.set(m[1].toLowerCase(), m[2]);
  }
  return out;
}

/**
 * A bare drachtio-srf connected to ferry sip's control port on 127.0.0.1 (secret `cymru`), untyped as
 * the sip-engine tests drive it; its 'error' events (reconnect noise after an engine is stopped) are ignored.
 */
export async function connectBareSrf(port: number): Promise<any> {
  const srf: any = new Srf();
  srf.on('error', () => { /* reconnect noise after an engine is stopped */ });
  await new Promise<void>((resolve, reject) => {
    srf.connect({ host: '127.0.0.1', port, secret: 'cymru' });
    srf.once('connect', (err: Error | null) => (err ? reject(err) : resolve()));
  });
  return srf;
}

/**
 * `connectBareSrf` with the app most sip-engine tests need: it answers every INVITE with `sdp` (createUAS) and
 * every OPTIONS with 200, and its routes are in place when this resolves. `destroyed` collects the ids of its
 * dialogs as they end.
 */
export async function connectAnsweringSrf(port: number, sdp: string): Promise<{ srf: any; destroyed: string[] }> {
  const srf = await connectBareSrf(port);
  const destroyed: string[] = [];
  srf.invite(async (req: any, res: any) => {
    const d = await srf.createUAS(req, res, { localSdp: sdp });
    d.on('destroy', () => destroyed.push(d.id));
  });
  srf.options((_req: any, res: any) => res.send(200));
  await routesApplied(srf);
  return { srf, destroyed };
}

interface SrfAgentInternals {
  wp: { send(socket: unknown, msg: string): string };
  mapServer: Map<unknown, { pendingRequests: Map<string, (reply: string[]) => void> }>;
}

/**
 * Resolves once the server has answered a `ping` sent now on srf's control connection. The server
 * handles the frames of one connection in order, so by then it has handled every `route` frame srf
 * sent before the ping (the ones sent at authentication and the ones a handler registered later
 * sent): a request a phone sends afterwards reaches the handler. This replaces "sleep 100 ms so the
 * route reaches the engine". drachtio-srf 5.0.29 keeps its agent at `srf._app.client`; `wp.send`
 * returns the frame's id and `pendingRequests` maps that id to the callback of its answer.
 */
export async function routesApplied(srf: Srf, timeoutMs = 5_000): Promise<void> {
  const agent = (srf as unknown as { _app?: { client?: SrfAgentInternals } })._app?.client;
  if (!agent) throw new Error('routesApplied: srf is not connected');
  const sockets = [...agent.mapServer.keys()];
  if (sockets.length === 0) throw new Error('routesApplied: srf has no control connection');
  await Promise.all(sockets.map((socket) => new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer to a control-port ping within ${timeoutMs} ms`)), timeoutMs);
    const id = agent.wp.send(socket, 'ping');
    agent.mapServer.get(socket)?.pendingRequests.set(id, (reply) => {
      clearTimeout(timer);
      if (reply[0] === 'OK') resolve();
      else reject(new Error(`control-port ping answered ${reply.join('|')}`));
    });
  })));
}

/**
 * Creates an Srf, lets `setup` install handlers (srf.invite, srf.use('register'), ...), connects and
 * waits for the authenticated `connect` event. Rejects on a refused secret or after `timeoutMs`.
 */
export async function connectSrf(
  control: ControlAddress,
  setup: (srf: Srf) => void = () => {},
  timeoutMs = 10_000,
): Promise<ConnectedSrf> {
  const srf = new Srf();
  setup(srf);
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      srf.disconnect();
    } catch {
      // never connected: nothing to close
    }
  };
  // srf re-emits socket errors; without a listener a refused connection would throw
  srf.on('error', () => {});
  const hostports = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      close();
      reject(new Error(`drachtio-srf did not connect to ${control.host}:${control.port} within ${timeoutMs} ms`));
    }, timeoutMs);
    srf.on('connect', (err: Error | null, hp: string) => {
      clearTimeout(timer);
      if (err) {
        close();
        reject(err);
      } else resolve(hp);
    });
    (srf as unknown as { connect(o: ControlAddress): void }).connect(control);
  });
  // the `route` frames sent right after authentication have reached the server before traffic starts
  await routesApplied(srf, timeoutMs);
  const map = parseHostports(hostports);
  return {
    srf,
    hostports,
    sipAddress(transport) {
      const address = map.get(transport);
      if (!address) throw new Error(`server announced no ${transport} listener in "${hostports}"`);
      return address;
    },
    close,
  };
}

/** A simple G.711 SDP an srf app offers or answers with. */
export function g711Sdp(port: number, direction: 'sendrecv' | 'sendonly' | 'recvonly' = 'sendrecv', version = 1): string {
  return [
    'v=0',
    `o=ferry-test 1000 ${version} IN IP4 127.0.0.1`,
    's=-',
    'c=IN IP4 127.0.0.1',
    't=0 0',
    `m=audio ${port} RTP/AVP 0`,
    'a=rtpmap:0 PCMU/8000',
    `a=${direction}`,
    '',
  ].join('\r\n');
}

/** Resolves when `predicate()` becomes true; rejects with `what` after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  await pollUntil(predicate, { timeoutMs, what });
}

/**
 * `Dialog.destroy()` without a callback returns a Promise of the BYE it sent (drachtio-srf 5.0.29
 * lib/dialog.js); its bundled typings say `void`.
 */
export function destroyDialog(dialog: Srf.Dialog): Promise<Srf.SrfRequest> {
  return (dialog.destroy as unknown as () => Promise<Srf.SrfRequest>).call(dialog);
}

/** The server-assigned dialog id (`Dialog#id`, missing from the bundled typings). */
export function dialogIdOf(dialog: Srf.Dialog): string {
  return (dialog as unknown as { id: string }).id;
}
