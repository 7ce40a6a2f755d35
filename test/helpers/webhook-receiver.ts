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
}

/**
 * A webhook receiver in the test process, on a real HTTP socket: records every POST (signature
 * checked), answers 200 ('ok'), 503 ('fail') or never ('hang'); `stop()` closes the port (connections
 * refused) and `start()` opens the same port again.
 */
export class WebhookReceiverServer {
  readonly received: ReceivedWebhook[] = [];
  /** POSTs that arrived, whatever was answered */
  posts = 0;
  mode: 'ok' | 'fail' | 'hang' = 'ok';
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
        });
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

  eventsOf(callId: string): ReceivedWebhook[] {
    return this.received.filter((r) => r.event.callId === callId);
  }
}

function header(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
