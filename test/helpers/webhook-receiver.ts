import http from 'node:http';
import { AddressInfo } from 'node:net';
import type { CallEvent } from '../../src/gateway/events/call-events';
import { verifyWebhook } from '../../src/gateway/webhooks/webhook-signature';

export interface ReceivedWebhook {
  at: number;
  event: CallEvent;
  eventId: string | undefined;
  attempt: number;
  /** the signature checked with the receiver's secret and replay window (as docs/webhooks.md tells a receiver to) */
  verified: boolean;
  verifyProblem?: string;
  /** the raw body, as signed */
  body: string;
}

/**
 * A webhook receiver in the test process, on a real HTTP socket: records every POST (signature
 * checked), answers 200 ('ok'), 503 ('fail') or never ('hang'); 'take-and-hang' records the POST and
 * never answers it (a receiver that handled an event but answered after the gateway's timeout, as a
 * loaded one does: the gateway sends it again). `stop()` closes the port (connections refused) and
 * `start()` opens the same port again.
 */
export class WebhookReceiverServer {
  readonly received: ReceivedWebhook[] = [];
  /** POSTs that arrived, whatever was answered */
  posts = 0;
  mode: 'ok' | 'fail' | 'hang' | 'take-and-hang' = 'ok';
  port = 0;
  private server: http.Server | undefined;
  private readonly hanging = new Set<http.ServerResponse>();

  constructor(readonly secret: string) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}/hooks/ferry`;
  }

  async start(): Promise<number> {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.posts++;
        if (this.mode === 'hang') {
          this.hanging.add(res);
          res.on('close', () => this.hanging.delete(res));
          return;
        }
        if (this.mode === 'fail') {
          res.writeHead(503).end();
          return;
        }
        const body = Buffer.concat(chunks).toString('utf8');
        const check = verifyWebhook({ secret: this.secret, body, timestamp: header(req, 'x-ferry-timestamp'), signature: header(req, 'x-ferry-signature') });
        this.received.push({
          at: Date.now(),
          event: JSON.parse(body) as CallEvent,
          eventId: header(req, 'x-ferry-event-id'),
          attempt: Number(header(req, 'x-ferry-attempt') ?? 0),
          verified: check.ok,
          ...(check.ok ? {} : { verifyProblem: check.problem }),
          body,
        });
        if (this.mode === 'take-and-hang') {
          this.hanging.add(res);
          res.on('close', () => this.hanging.delete(res));
          return;
        }
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    return this.port;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    for (const res of this.hanging) res.destroy();
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  /** every POST of the call's events, repeats included */
  eventsOf(callId: string): ReceivedWebhook[] {
    return this.received.filter((r) => r.event.callId === callId);
  }

  /**
   * The call's events as a receiver following docs/webhooks.md sees them: deliveries are at least
   * once, so a repeat of an id already handled is ignored (the first POST of each id, in order). A
   * repeat must be the same event: a different body under one id throws.
   */
  uniqueEventsOf(callId: string): ReceivedWebhook[] {
    const first = new Map<string, ReceivedWebhook>();
    for (const r of this.eventsOf(callId)) {
      const seen = first.get(r.event.id);
      if (!seen) first.set(r.event.id, r);
      else if (seen.body !== r.body) throw new Error(`event ${r.event.id} (${r.event.type}) delivered twice with different bodies`);
    }
    return [...first.values()];
  }
}

function header(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
