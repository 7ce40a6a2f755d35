import http from 'node:http';
import https from 'node:https';
import { Logger } from '../../common/logger';
import { guarded } from '../../common/process-faults';

/** the figures of ferry media's GET /stats that placing a call uses (docs/media-server.md) */
export interface MediaServerFigures {
  pipelines: number;
  /** the 99th percentile of the server's event-loop lag over its window; ties between equal loads */
  eventLoopLagP99Ms: number | undefined;
  /** the server takes no new calls (POST /drain); a server without the field is not draining */
  draining: boolean;
}

/**
 * What the last poll said:
 * - `stats`: the server answered its figures;
 * - `no-stats`: an HTTP answer that is not ferry media's /stats (a real KMS has none): the gateway
 *   counts its own live calls on that server instead;
 * - `failed`: no answer (refused, reset, timed out);
 * - `unknown`: no poll has finished yet.
 */
export type StatsOutcome = 'unknown' | 'stats' | 'no-stats' | 'failed';

export interface MediaStatsPollerOptions {
  statsUrl: string;
  intervalMs: number;
  /** bound of one GET /stats */
  timeoutMs?: number;
  log: Logger;
}

/** the most a /stats body may be (ferry media's is well under 2 kB) */
const MAX_BODY_BYTES = 64 * 1024;
const DEFAULT_TIMEOUT_MS = 1500;

/**
 * Reads one media server's GET /stats every `intervalMs` (one request at a time, each bounded by
 * `timeoutMs` and a body cap) and keeps the last figures. Call set-up never waits for it: placing a
 * call reads what the last poll left.
 */
export class MediaStatsPoller {
  outcome: StatsOutcome = 'unknown';
  /** the last figures the server answered (kept through later failures: draining stays known) */
  figures: MediaServerFigures | undefined;
  /** when the request behind `figures` was sent (calls placed after it are not in its count) */
  figuresSentAt = 0;
  /** polls in a row without an answer */
  failuresInARow = 0;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: http.ClientRequest | undefined;
  private stopped = true;
  private readonly timeoutMs: number;

  constructor(private readonly o: MediaStatsPollerOptions) {
    this.timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.pollNow();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.inFlight?.destroy();
    this.inFlight = undefined;
  }

  /** forget failures seen before now (the control connection came back) and poll at once */
  freshStart(): void {
    this.failuresInARow = 0;
    if (this.outcome === 'failed') this.outcome = 'unknown';
    this.pollNow();
  }

  /** a poll now (unless one is running); the next one `intervalMs` after it finishes */
  pollNow(): void {
    if (this.stopped || this.inFlight) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const sentAt = Date.now();
    this.inFlight = this.get((result) => {
      this.inFlight = undefined;
      this.take(result, sentAt);
      if (this.stopped) return;
      this.timer = setTimeout(guarded('gateway.media-stats-poll', () => {
        this.timer = undefined;
        this.pollNow();
      }), this.o.intervalMs);
      this.timer.unref();
    });
  }

  private take(result: { kind: 'stats'; figures: MediaServerFigures } | { kind: 'no-stats' | 'failed'; detail: string }, sentAt: number): void {
    const before = this.outcome;
    if (result.kind === 'stats') {
      this.outcome = 'stats';
      this.figures = result.figures;
      this.figuresSentAt = sentAt;
      this.failuresInARow = 0;
    } else if (result.kind === 'no-stats') {
      this.outcome = 'no-stats';
      this.failuresInARow = 0;
    } else {
      this.outcome = 'failed';
      this.failuresInARow++;
    }
    if (before !== this.outcome && (this.outcome !== 'failed' || this.failuresInARow === 1)) {
      const detail = result.kind === 'stats' ? undefined : result.detail;
      const log = this.outcome === 'failed' ? this.o.log.warn.bind(this.o.log) : this.o.log.info.bind(this.o.log);
      log('media server stats', { statsUrl: this.o.statsUrl, outcome: this.outcome, ...(detail ? { detail } : {}) });
    }
  }

  private get(done: (r: { kind: 'stats'; figures: MediaServerFigures } | { kind: 'no-stats' | 'failed'; detail: string }) => void): http.ClientRequest {
    let finished = false;
    const finish = (r: Parameters<typeof done>[0]): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      done(r);
    };
    const lib = this.o.statsUrl.startsWith('https:') ? https : http;
    const req = lib.get(this.o.statsUrl, { headers: { accept: 'application/json' }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_BODY_BYTES) {
          req.destroy();
          finish({ kind: 'no-stats', detail: `body over ${MAX_BODY_BYTES} bytes` });
          return;
        }
        chunks.push(c);
      });
      res.on('error', (err) => finish({ kind: 'failed', detail: err.message }));
      res.on('end', () => {
        if (res.statusCode !== 200) return finish({ kind: 'no-stats', detail: `HTTP ${res.statusCode}` });
        const figures = parseFigures(Buffer.concat(chunks).toString('utf8'));
        finish(figures ? { kind: 'stats', figures } : { kind: 'no-stats', detail: 'not ferry media /stats' });
      });
    });
    const timer = setTimeout(() => {
      req.destroy();
      finish({ kind: 'failed', detail: `no answer within ${this.timeoutMs} ms` });
    }, this.timeoutMs);
    timer.unref();
    req.on('error', (err) => finish({ kind: 'failed', detail: err.message }));
    return req;
  }
}

/** the figures out of a /stats body; undefined when it is not ferry media's (no numeric `pipelines`) */
export function parseFigures(body: string): MediaServerFigures | undefined {
  let j: unknown;
  try {
    j = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (!j || typeof j !== 'object') return undefined;
  const o = j as Record<string, unknown>;
  if (typeof o.pipelines !== 'number' || !Number.isFinite(o.pipelines) || o.pipelines < 0) return undefined;
  const lag = o.eventLoopLagP99Ms;
  return {
    pipelines: o.pipelines,
    eventLoopLagP99Ms: typeof lag === 'number' && Number.isFinite(lag) ? lag : undefined,
    draining: o.draining === true,
  };
}
