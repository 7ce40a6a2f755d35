import http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { Logger } from '../../common/logger';
import { CallEvent, CallEventBus, CallEventType, callEventTypes } from './call-events';

export interface EventStreamOptions {
  /** open streams at most; one more is refused with 503 */
  maxClients?: number;
  /** bytes queued for one client at most; a client that falls further behind is disconnected */
  maxBufferedBytes?: number;
  /** ping interval: a client that did not answer the previous ping is disconnected */
  pingMs?: number;
}

export const EVENT_STREAM_DEFAULTS = { maxClients: 32, maxBufferedBytes: 1 << 20, pingMs: 30_000 } as const;

interface Client {
  ws: WebSocket;
  types: ReadonlySet<CallEventType> | undefined;
  alive: boolean;
}

/**
 * `/api/events`: the bus's events, one JSON text message each (the same object webhooks POST),
 * to dashboards over a WebSocket on the gateway's HTTP port. The HTTP server has checked the Host
 * and the bearer token before the upgrade reaches here. `?types=call.ended,call.answered` narrows
 * the stream. Clients only listen: what they send is ignored (and limited to 1 KiB a message).
 */
export class EventStream {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 1024, perMessageDeflate: false });
  private readonly clients = new Set<Client>();
  private readonly opts: Required<EventStreamOptions>;
  private unsubscribe: (() => void) | undefined;
  private pinger: NodeJS.Timeout | undefined;
  /** clients disconnected because they fell behind */
  slowClientsDropped = 0;
  refusedOverCap = 0;

  constructor(
    private readonly bus: CallEventBus,
    private readonly log: Logger,
    opts: EventStreamOptions = {},
  ) {
    this.opts = { ...EVENT_STREAM_DEFAULTS, ...opts };
  }

  get clientCount(): number {
    return this.clients.size;
  }

  start(): void {
    this.unsubscribe ??= this.bus.subscribe((e) => this.broadcast(e));
    this.pinger ??= setInterval(() => this.ping(), this.opts.pingMs).unref();
  }

  /** takes over an authorised upgrade request for `/api/events` */
  handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://gateway');
    const asked = parseTypesParam(url.searchParams.get('types'));
    if (!asked.ok) {
      rejectUpgrade(socket, 400, asked.error);
      return;
    }
    const types = asked.types;
    if (this.clients.size >= this.opts.maxClients) {
      this.refusedOverCap++;
      rejectUpgrade(socket, 503, `at most ${this.opts.maxClients} event streams are open`);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const client: Client = { ws, types, alive: true };
      this.clients.add(client);
      ws.on('pong', () => (client.alive = true));
      ws.on('error', () => ws.terminate());
      ws.on('close', () => this.clients.delete(client));
      this.log.info('event stream opened', { clients: this.clients.size, remote: req.socket.remoteAddress });
    });
  }

  private broadcast(e: CallEvent): void {
    if (this.clients.size === 0) return;
    const text = JSON.stringify(e);
    for (const c of this.clients) {
      if (c.types && !c.types.has(e.type)) continue;
      if (c.ws.readyState !== WebSocket.OPEN) continue;
      if (c.ws.bufferedAmount + text.length > this.opts.maxBufferedBytes) {
        // a client that does not read must not make the gateway hold its events
        this.slowClientsDropped++;
        this.clients.delete(c);
        this.log.warn('event stream client dropped: too slow', { bufferedBytes: c.ws.bufferedAmount });
        c.ws.terminate();
        continue;
      }
      c.ws.send(text);
    }
  }

  private ping(): void {
    for (const c of this.clients) {
      if (!c.alive) {
        this.clients.delete(c);
        c.ws.terminate();
        continue;
      }
      c.alive = false;
      c.ws.ping();
    }
  }

  metricLines(): string[] {
    return [
      '# HELP ferry_event_stream_clients Open /api/events WebSocket streams.',
      '# TYPE ferry_event_stream_clients gauge',
      `ferry_event_stream_clients ${this.clients.size}`,
      '# HELP ferry_event_stream_dropped_total /api/events clients disconnected for falling behind (slow) or refused over the cap (full).',
      '# TYPE ferry_event_stream_dropped_total counter',
      `ferry_event_stream_dropped_total{reason="slow"} ${this.slowClientsDropped}`,
      `ferry_event_stream_dropped_total{reason="full"} ${this.refusedOverCap}`,
    ];
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    if (this.pinger) clearInterval(this.pinger);
    this.pinger = undefined;
    for (const c of this.clients) c.ws.close(1001, 'gateway stopping');
    this.clients.clear();
    this.wss.close();
  }
}

/** `?types=a,b`: the event types a stream wants (undefined: all), or the 400 error naming the bad one */
export function parseTypesParam(value: string | null): { ok: true; types: ReadonlySet<CallEventType> | undefined } | { ok: false; error: string } {
  if (value === null) return { ok: true, types: undefined };
  const list = value.slice(0, 1024).split(',', 16).map((t) => t.trim()).filter(Boolean);
  const bad = list.find((t) => !(callEventTypes as readonly string[]).includes(t));
  if (bad !== undefined || list.length === 0) {
    const what = bad !== undefined ? `unknown event type ${JSON.stringify(bad.slice(0, 40))}` : 'empty';
    return { ok: false, error: `types: ${what} (known: ${callEventTypes.join(', ')})` };
  }
  return { ok: true, types: new Set(list as CallEventType[]) };
}

/** answers an upgrade request with a plain HTTP error and closes the connection */
export function rejectUpgrade(socket: Duplex, status: number, error: string, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ error });
  const reason = http.STATUS_CODES[status] ?? 'Error';
  const lines = [`HTTP/1.1 ${status} ${reason}`, 'Content-Type: application/json', `Content-Length: ${Buffer.byteLength(body)}`, 'Connection: close', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
}
