import WebSocket from 'ws';

/** A bare JSON-RPC client for ferry media protocol tests (what kurento-client hides: ids, sessionId, errors). */
export interface RpcReply {
  id?: number | string | null;
  result?: Record<string, unknown> & { value?: unknown; sessionId?: string };
  error?: { code: number; message: string; data?: { type?: string } };
}

export class RawRpc {
  private nextId = 1;
  private readonly pending = new Map<number | string | null, (r: RpcReply) => void>();
  readonly notifications: Record<string, unknown>[] = [];
  readonly unmatched: RpcReply[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString()) as RpcReply & { method?: string; params?: Record<string, unknown> };
      if (Array.isArray(msg)) {
        this.unmatched.push(...(msg as RpcReply[]));
        return;
      }
      if (msg.method) {
        this.notifications.push(msg.params ?? {});
        return;
      }
      const f = this.pending.get(msg.id ?? null);
      if (f) {
        this.pending.delete(msg.id ?? null);
        f(msg);
      } else this.unmatched.push(msg);
    });
  }

  static open(url: string, options: WebSocket.ClientOptions = {}): Promise<RawRpc> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, options);
      ws.once('open', () => resolve(new RawRpc(ws)));
      ws.once('error', reject);
    });
  }

  request(method: string, params?: Record<string, unknown>): Promise<RpcReply> {
    const id = this.nextId++;
    return this.sendFrame(JSON.stringify({ jsonrpc: '2.0', id, method, ...(params ? { params } : {}) }), id);
  }

  /** Send raw text; resolves with the reply carrying `id` (use null for parse errors). */
  sendFrame(text: string, id: number | string | null): Promise<RpcReply> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no reply to ${text.slice(0, 80)}`)), 10000);
      this.pending.set(id, (r) => {
        clearTimeout(t);
        resolve(r);
      });
      this.ws.send(text);
    });
  }

  /** Fire and forget (for pipelined / fuzz frames). */
  sendRaw(text: string): void {
    this.ws.send(text);
  }

  async ok(method: string, params?: Record<string, unknown>): Promise<Record<string, unknown> & { value?: unknown; sessionId?: string }> {
    const r = await this.request(method, params);
    if (r.error) throw new Error(`${method} failed: ${r.error.code} ${r.error.message}`);
    return r.result!;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.ws.readyState === WebSocket.CLOSED) return resolve();
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
  }
}
