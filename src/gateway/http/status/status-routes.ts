import type { StatusService } from './status-service';

/** the part of the gateway's RouteTable (src/gateway/api/route-table.ts) this needs */
interface RouteAdder {
  add(method: 'GET', path: string, handler: () => Promise<{ status: number; body: unknown }>): unknown;
}

/**
 * `GET /api/status`: what the `/status` page draws (live calls with quality, the last hour's charts).
 * Mounted on the API's route table, so it needs the bearer token like every `/api/` route. Returns the table.
 */
export function addStatusRoutes<T extends RouteAdder>(table: T, status: Pick<StatusService, 'snapshot'>): T {
  table.add('GET', '/api/status', async () => ({ status: 200, body: await status.snapshot() }));
  return table;
}
