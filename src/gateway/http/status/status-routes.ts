import type { StatusService } from './status-service';

/** the part of the gateway's RouteTable (src/gateway/api/route-table.ts) this needs */
interface RouteAdder {
  add(method: 'GET', path: string, handler: () => Promise<{ status: number; body: unknown }>): unknown;
}

/**
 * `GET /api/status`: what the `/status` page draws (live calls with quality, the last hour's charts).
 * Mounted on the API's route table, so it needs the bearer token like every `/api/` route.
 */
export function addStatusRoutes(table: RouteAdder, status: Pick<StatusService, 'snapshot'>): void {
  table.add('GET', '/api/status', async () => ({ status: 200, body: await status.snapshot() }));
}
