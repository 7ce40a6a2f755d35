/**
 * The real npm kurento-client 7.3.0 for ferry media tests, with the one guard every app needs: a
 * refused/closed connection must not throw an unhandled 'error'.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const kurento = require('kurento-client') as (url: string, options?: Record<string, unknown>) => Promise<KurentoClientLike>;

// The client is untyped JavaScript: describe the little we use.
export interface KurentoObjectLike {
  id: string;
  on(event: string, fn: (data: Record<string, unknown>) => void): void;
  release(): Promise<void>;
  [method: string]: unknown;
}

export interface KurentoClientLike {
  create(type: string, ...args: unknown[]): Promise<KurentoObjectLike>;
  getMediaobjectById(id: string): Promise<KurentoObjectLike>;
  getServerManager(): Promise<KurentoObjectLike>;
  close(): void;
  sessionId?: string;
  on(event: string, fn: (...args: unknown[]) => void): void;
}

export async function connectKurento(url: string): Promise<KurentoClientLike> {
  const client = await kurento(url, { failAfter: 1, request_timeout: 10000, response_timeout: 200, duplicates_timeout: 200 });
  client.on('error', () => undefined);
  return client;
}

/** Call a kurento-client method by name (they are promise-returning when no callback is given). */
export function call<T = unknown>(obj: KurentoObjectLike, method: string, ...args: unknown[]): Promise<T> {
  const fn = obj[method] as ((...a: unknown[]) => unknown) | undefined;
  if (typeof fn !== 'function') throw new Error(`no method ${method}`);
  // Node-style callback: some generated getters swallow errors into a no-op when only a promise is used.
  return new Promise<T>((resolve, reject) => {
    fn.apply(obj, [...args, (err: unknown, value: T) => (err ? reject(err) : resolve(value))]);
  });
}

/** ferry media's GET /stats. */
export interface MediaStatsReport {
  pipelines: number;
  elements: number;
  sessions: number;
  boundPorts: number;
  pipelinesDetail: { id: string; owners: string[]; orphaned: boolean; elements: Record<string, unknown>[] }[];
  sessionsDetail: { id: string; bound: boolean; pipelines: string[]; subscriptions: number }[];
  legEndsByReason: Record<string, number>;
  releasesByReason: Record<string, number>;
  draining: boolean;
}

export async function fetchStats(port: number, host = '127.0.0.1'): Promise<MediaStatsReport> {
  const res = await fetch(`http://${host}:${port}/stats`);
  return (await res.json()) as MediaStatsReport;
}
