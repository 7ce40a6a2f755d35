import { Registration } from '../state/registration';
import { CallRecord } from '../state/call-record';
import { StateStore } from '../state/state-store';
import { summarizeCall } from '../http/call-summary';
import { ApiError } from './api-error';
import { CallControl } from './call-control';
import { readJsonBody } from './json-body';
import { encodeCursor, parseDtmf, parseHold, parseListQuery, parseOriginate, parseTransfer, ListQuery } from './api-validation';
import { Originator } from './originator';
import { openApiDocument } from './openapi';
import { RouteTable } from './route-table';

export interface CallApiDeps {
  store: StateStore;
  control: CallControl;
  /** absent until the gateway's SIP side is up: originating then answers 503 */
  originator: () => Originator | undefined;
  /** the configured user names (registrations are listed per user) */
  users: () => string[];
}

/** the calls of one page: filtered, ordered by creation (then id), from the offset or after the cursor */
export function pageOfCalls(all: CallRecord[], q: ListQuery): { page: CallRecord[]; total: number; next?: string } {
  const matching = all
    .filter((c) => !q.states || q.states.includes(c.state))
    .filter((c) => !q.party || c.caller.party === q.party || c.callee.party === q.party)
    .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  let start = q.offset;
  if (q.cursor) {
    const { createdAt, id } = q.cursor;
    start = matching.findIndex((c) => c.createdAt > createdAt || (c.createdAt === createdAt && c.id > id));
    if (start < 0) start = matching.length;
  }
  const page = matching.slice(start, start + q.limit);
  const last = page[page.length - 1];
  const more = start + q.limit < matching.length;
  return { page, total: matching.length, ...(more && last ? { next: encodeCursor(last) } : {}) };
}

/** one registration as GET /api/registrations lists it: `reachable` false (and since when) while qualify has it marked */
export function registrationView(r: Registration): Record<string, unknown> {
  return {
    user: r.user,
    aor: r.aor,
    contact: r.contact,
    transport: r.transport,
    webrtc: r.webrtc,
    source: r.source,
    registeredAt: r.registeredAt,
    expiresAt: r.expiresAt,
    reachable: r.unreachableSince === undefined,
    ...(r.unreachableSince !== undefined ? { unreachableSince: r.unreachableSince } : {}),
  };
}

/**
 * The REST call control routes (docs/api.md), mounted on the gateway's HTTP server behind its
 * bearer token. Every route here is in the OpenAPI document (src/gateway/api/openapi.ts; a test
 * compares the two).
 */
export function callApiRoutes(d: CallApiDeps, table = new RouteTable()): RouteTable {
  const { control } = d;
  return table
    .add('GET', '/api/openapi.json', async () => ({ status: 200, body: openApiDocument }))
    .add('GET', '/api/calls', async ({ url }) => {
      const q = parseListQuery(url.searchParams);
      const { page, total, next } = pageOfCalls(await d.store.listCalls(), q);
      return { status: 200, body: { calls: page.map(summarizeCall), total, ...(next ? { next } : {}) } };
    })
    .add('POST', '/api/calls', async ({ req }) => {
      const body = parseOriginate(await readJsonBody(req));
      const originator = d.originator();
      if (!originator) throw new ApiError(503, 'the gateway is starting', {}, { 'Retry-After': '1' });
      const call = await originator.originate(body);
      return { status: 201, body: { id: call.record.id, state: call.record.state, url: `/api/calls/${call.record.id}` }, headers: { Location: `/api/calls/${call.record.id}` } };
    })
    .add('GET', '/api/calls/{id}', async ({ params }) => {
      const call = await d.store.getCall(params.id!);
      return call ? { status: 200, body: call } : { status: 404, body: { error: 'no such call' } };
    })
    .add('DELETE', '/api/calls/{id}', async ({ params }) => {
      const call = await control.live(params.id!);
      await control.hangup(call);
      return { status: 200, body: { id: call.record.id, state: call.record.state, reason: call.record.reason } };
    })
    .add('POST', '/api/calls/{id}/hold', async ({ req, params }) => {
      const sides = parseHold(await readJsonBody(req));
      const call = await control.live(params.id!);
      return { status: 200, body: { id: call.record.id, directions: await control.setHold(call, sides, true) } };
    })
    .add('POST', '/api/calls/{id}/resume', async ({ req, params }) => {
      const sides = parseHold(await readJsonBody(req));
      const call = await control.live(params.id!);
      return { status: 200, body: { id: call.record.id, directions: await control.setHold(call, sides, false) } };
    })
    .add('POST', '/api/calls/{id}/dtmf', async ({ req, params }) => {
      const dtmf = parseDtmf(await readJsonBody(req));
      const call = await control.live(params.id!);
      return { status: 200, body: { id: call.record.id, party: dtmf.party, ...(await control.dtmf(call, dtmf)) } };
    })
    .add('POST', '/api/calls/{id}/transfer', async ({ req, params }) => {
      const t = parseTransfer(await readJsonBody(req));
      const call = await control.live(params.id!);
      return { status: 200, body: { id: call.record.id, ...(await control.transfer(call, t)) } };
    })
    .add('GET', '/api/registrations', async ({ url }) => {
      const user = url.searchParams.get('user');
      const users = user !== null ? d.users().filter((u) => u === user) : d.users();
      const regs = (await Promise.all(users.map((u) => d.store.getRegistrations(u)))).flat();
      return { status: 200, body: { registrations: regs.map(registrationView) } };
    });
}
