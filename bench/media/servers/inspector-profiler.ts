/**
 * CPU profiling of the media server over exactly one measurement window, through the V8 inspector
 * the server was started with (`node --inspect=127.0.0.1:0`): Profiler.start at the window's start,
 * Profiler.stop at its end, so call setup and start-up do not blur the steady-state picture.
 */
import { writeFileSync } from 'node:fs';
import WebSocket from 'ws';

export class InspectorProfiler {
  private ws: WebSocket | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  /** Connect to `ws://127.0.0.1:<port>/<uuid>` (from "Debugger listening on ..."). */
  async connect(url: string): Promise<void> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    this.ws = ws;
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as { id?: number; result?: unknown; error?: { message: string } };
      if (msg.id === undefined) return;
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.error) p.reject(new Error(msg.error.message));
      else p.resolve(msg.result);
    });
    ws.on('close', () => {
      for (const p of this.pending.values()) p.reject(new Error('inspector connection closed'));
      this.pending.clear();
    });
    await this.call('Profiler.enable');
    await this.call('Profiler.setSamplingInterval', { interval: 500 });
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

  start(): Promise<unknown> {
    return this.call('Profiler.start');
  }

  /** Stop and write the profile to `file` (a .cpuprofile DevTools and the summary can read). */
  async stop(file: string): Promise<void> {
    const result = (await this.call('Profiler.stop')) as { profile: unknown };
    writeFileSync(file, JSON.stringify(result.profile));
  }

  close(): void {
    this.ws?.close();
    this.ws = undefined;
  }
}
