/**
 * CPU profiling of the media server over exactly one measurement window, through the V8 inspector
 * the server was started with (`node --inspect=127.0.0.1:0`): Profiler.start at the window's start,
 * Profiler.stop at its end, so call setup and start-up do not blur the steady-state picture.
 *
 * The relay worker threads (where a call's packets are handled) are profiled too: the inspector's
 * NodeWorker domain attaches a session to every worker thread, and each gets its own Profiler.start /
 * Profiler.stop; `stop(file)` writes the main thread's profile to `file` and each worker's next to it
 * as `<file without .cpuprofile>.worker<threadId>.cpuprofile`.
 */
import { writeFileSync } from 'node:fs';
import WebSocket from 'ws';

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

interface InspectorMessage {
  id?: number;
  method?: string;
  params?: { sessionId?: string; message?: string; workerInfo?: { workerId?: string; title?: string; url?: string } };
  result?: unknown;
  error?: { message: string };
}

export class InspectorProfiler {
  private ws: WebSocket | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Attached worker sessions: sessionId → worker label, with their own pending calls. */
  private readonly workers = new Map<string, { label: string; pending: Map<number, Pending>; enabled: Promise<unknown> }>();

  /** Connect to `ws://127.0.0.1:<port>/<uuid>` (from "Debugger listening on ..."). */
  async connect(url: string): Promise<void> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    this.ws = ws;
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.on('message', (data) => this.onMessage(JSON.parse(String(data)) as InspectorMessage));
    ws.on('close', () => {
      for (const p of this.pending.values()) p.reject(new Error('inspector connection closed'));
      this.pending.clear();
      for (const w of this.workers.values()) for (const p of w.pending.values()) p.reject(new Error('inspector connection closed'));
      this.workers.clear();
    });
    await this.call('Profiler.enable');
    await this.call('Profiler.setSamplingInterval', { interval: 500 });
    await this.call('NodeWorker.enable', { waitForDebuggerOnStart: false }).catch(() => undefined);
  }

  private onMessage(msg: InspectorMessage): void {
    if (msg.method === 'NodeWorker.attachedToWorker' && msg.params?.sessionId) {
      const sessionId = msg.params.sessionId;
      const info = msg.params.workerInfo;
      const label = (info?.workerId ?? sessionId).replace(/\W+/g, '');
      const pending = new Map<number, Pending>();
      const entry = { label, pending, enabled: Promise.resolve() as Promise<unknown> };
      this.workers.set(sessionId, entry);
      entry.enabled = this.callWorker(sessionId, 'Profiler.enable')
        .then(() => this.callWorker(sessionId, 'Profiler.setSamplingInterval', { interval: 500 }))
        .catch(() => undefined);
      return;
    }
    if (msg.method === 'NodeWorker.detachedFromWorker' && msg.params?.sessionId) {
      const w = this.workers.get(msg.params.sessionId);
      for (const p of w?.pending.values() ?? []) p.reject(new Error('worker detached'));
      this.workers.delete(msg.params.sessionId);
      return;
    }
    if (msg.method === 'NodeWorker.receivedMessageFromWorker' && msg.params?.sessionId && msg.params.message) {
      const w = this.workers.get(msg.params.sessionId);
      if (w) settle(w.pending, JSON.parse(msg.params.message) as InspectorMessage);
      return;
    }
    settle(this.pending, msg);
  }

  private call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.reject(new Error('inspector not connected'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params }));
    });
  }

  private callWorker(sessionId: string, method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const w = this.workers.get(sessionId);
    if (!w) return Promise.reject(new Error('worker not attached'));
    const id = this.nextId++;
    const p = new Promise((resolve, reject) => w.pending.set(id, { resolve, reject }));
    void this.call('NodeWorker.sendMessageToWorker', { sessionId, message: JSON.stringify({ id, method, params }) }).catch(
      (e: Error) => settle(w.pending, { id, error: { message: e.message } }),
    );
    return p;
  }

  async start(): Promise<unknown> {
    const started = await this.call('Profiler.start');
    await Promise.all(
      [...this.workers.entries()].map(async ([sessionId, w]) => {
        await w.enabled;
        await this.callWorker(sessionId, 'Profiler.start').catch(() => undefined);
      }),
    );
    return started;
  }

  /** Stop and write the profiles: the main thread's to `file`, each worker's beside it. */
  async stop(file: string): Promise<void> {
    const result = (await this.call('Profiler.stop')) as { profile: unknown };
    writeFileSync(file, JSON.stringify(result.profile));
    const base = file.replace(/\.cpuprofile$/, '');
    await Promise.all(
      [...this.workers.entries()].map(async ([sessionId, w]) => {
        const r = (await this.callWorker(sessionId, 'Profiler.stop').catch(() => undefined)) as { profile?: unknown } | undefined;
        if (r?.profile) writeFileSync(`${base}.worker${w.label}.cpuprofile`, JSON.stringify(r.profile));
      }),
    );
  }

  close(): void {
    this.ws?.close();
    this.ws = undefined;
  }
}

function settle(pending: Map<number, Pending>, msg: InspectorMessage): void {
  if (msg.id === undefined) return;
  const p = pending.get(msg.id);
  if (!p) return;
  pending.delete(msg.id);
  if (msg.error) p.reject(new Error(msg.error.message));
  else p.resolve(msg.result);
}
