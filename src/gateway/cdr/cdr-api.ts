import { ApiError, badField } from '../api/api-error';
import { RouteTable } from '../api/route-table';
import { CdrQuery, CdrStore } from './cdr-store';
import { csvHeader, csvRow } from './cdr-csv';

export const CDR_LIMIT_MAX = 1000;
export const CDR_LIMIT_DEFAULT = 100;
/** the CSV export reads this many CDRs per store request */
const CSV_PAGE = 500;
/** at most this many rows in one CSV answer (narrow from/to for more) */
export const CSV_MAX_ROWS = 100_000;

/** a time: epoch ms, or an ISO 8601 date-time */
function parseTime(name: string, raw: string | null, fallback: number): number {
  if (raw === null || raw === '') return fallback;
  if (raw.length > 40) throw badField(name, 'epoch milliseconds or an ISO 8601 date-time');
  const n = /^\d{1,15}$/.test(raw) ? Number(raw) : Date.parse(raw);
  if (!Number.isFinite(n)) throw badField(name, 'epoch milliseconds or an ISO 8601 date-time');
  return n;
}

/** `GET /api/cdrs?from=&to=&limit=&offset=&format=json|csv` */
export function parseCdrQuery(q: URLSearchParams, now: number): CdrQuery & { format: 'json' | 'csv' } {
  for (const k of q.keys()) if (!['from', 'to', 'limit', 'offset', 'format'].includes(k)) throw badField(k, 'unknown query parameter (allowed: from, to, limit, offset, format)');
  const from = parseTime('from', q.get('from'), 0);
  const to = parseTime('to', q.get('to'), now + 1);
  if (to <= from) throw badField('to', 'must be after from');
  const format = q.get('format') ?? 'json';
  if (format !== 'json' && format !== 'csv') throw badField('format', "'json' or 'csv'");
  const limitRaw = q.get('limit');
  let limit = format === 'csv' ? CSV_MAX_ROWS : CDR_LIMIT_DEFAULT;
  if (limitRaw !== null) {
    const max = format === 'csv' ? CSV_MAX_ROWS : CDR_LIMIT_MAX;
    if (!/^\d{1,6}$/.test(limitRaw) || Number(limitRaw) < 1 || Number(limitRaw) > max) throw badField('limit', `an integer from 1 to ${max}`);
    limit = Number(limitRaw);
  }
  const offsetRaw = q.get('offset');
  let offset = 0;
  if (offsetRaw !== null) {
    if (!/^\d{1,9}$/.test(offsetRaw)) throw badField('offset', 'a non-negative integer');
    offset = Number(offsetRaw);
  }
  return { from, to, limit, offset, format };
}

/**
 * `GET /api/cdrs`: the CDRs of calls that ended in [from, to) (epoch ms or ISO 8601; default: all),
 * oldest first, `limit` (default 100, at most 1000) from `offset`, as `{cdrs, next?}` (`next`: the URL of
 * the next page); `format=csv` streams them as CSV (docs/cdr.md, "CSV export").
 */
export function addCdrRoutes(table: RouteTable, deps: { store: () => CdrStore | undefined; now?: () => number }): RouteTable {
  const now = deps.now ?? Date.now;
  table.add('GET', '/api/cdrs', async ({ url, res }) => {
    const q = parseCdrQuery(url.searchParams, now());
    const store = deps.store();
    if (!store) throw new ApiError(503, 'CDRs are not available (the gateway is starting)');
    if (q.format === 'json') {
      const page = await store.list(q).catch((err: Error) => {
        throw new ApiError(503, `CDR store unavailable: ${err.message}`);
      });
      const next = page.nextOffset !== undefined ? `/api/cdrs?from=${q.from}&to=${q.to}&limit=${q.limit}&offset=${page.nextOffset}` : undefined;
      return { status: 200, body: { cdrs: page.cdrs, ...(next ? { next } : {}) } };
    }
    // CSV: the first page decides the status; later pages are streamed
    let offset = q.offset;
    let left = q.limit;
    let page = await store.list({ ...q, offset, limit: Math.min(CSV_PAGE, left) }).catch((err: Error) => {
      throw new ApiError(503, `CDR store unavailable: ${err.message}`);
    });
    res.writeHead(200, {
      'Content-Type': 'text/csv; charset=utf-8',
      'Content-Disposition': 'attachment; filename="cdrs.csv"',
      'X-Content-Type-Options': 'nosniff',
      'Cache-Control': 'no-store',
    });
    res.write(csvHeader());
    for (;;) {
      for (const cdr of page.cdrs) res.write(csvRow(cdr));
      left -= page.cdrs.length;
      if (page.nextOffset === undefined || left <= 0) break;
      offset = page.nextOffset;
      try {
        page = await store.list({ ...q, offset, limit: Math.min(CSV_PAGE, left) });
      } catch {
        break; // the rows so far went out; the client sees a short export (the status was already sent)
      }
    }
    res.end();
  });
  return table;
}
