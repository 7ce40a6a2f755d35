/**
 * The OpenAPI 3 document of the gateway's HTTP side, served at `/api/openapi.json`. Every route the
 * server answers is listed here and every path here is answered: test/integration/gateway-api-rest.test.ts
 * compares the two both ways. Adding a route: add it to the server (a RouteTable, or BUILT_IN_ROUTES
 * in src/gateway/http/http-server.ts) AND a `paths` entry here (docs/api.md says how).
 */
import { cdrOpenApiPaths } from '../cdr/cdr-openapi';
import { callEventTypes } from '../events/call-events';

type Json = Record<string, unknown>;

const json = (schema: Json, description = 'OK'): Json => ({ description, content: { 'application/json': { schema } } });
const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
const error = (description: string): Json => json(ref('Error'), description);
const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' }, description: 'the call id' };
const bearer = [{ bearer: [] }];
const publicRoute: Json[] = [];

const common = {
  '401': error('no or invalid bearer token'),
  '403': error('the generated token is usable from this host only'),
};
const control = {
  ...common,
  '400': error('a bad body: the message names the field'),
  '404': error('no such call'),
  '409': error('the call has ended, is not answered yet, or is driven by another gateway (`owner` names it)'),
  '415': error('the body is not application/json'),
  '502': error('the party refused the request'),
  '504': error('the party did not answer the request in time'),
};
const body = (schema: string, required = true): Json => ({ required, content: { 'application/json': { schema: ref(schema) } } });

export const openApiDocument = {
  openapi: '3.0.3',
  info: {
    title: 'ferry gateway API',
    version: '1',
    description: 'Call control and state of a ferry gateway. Every /api/ route but /api/webphone-config needs `Authorization: Bearer <token>` (FERRY_API_TOKEN). docs/api.md has curl examples.',
  },
  components: {
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    schemas: {
      Error: { type: 'object', required: ['error'], properties: { error: { type: 'string' }, field: { type: 'string' }, owner: { type: 'string' } } },
      Party: { type: 'string', pattern: '^[A-Za-z0-9+*#._-]{1,64}$', description: 'a user name (its latest registration) or a number routed by the dial plan' },
      OriginateRequest: {
        type: 'object',
        required: ['a', 'b'],
        additionalProperties: false,
        properties: {
          a: { $ref: '#/components/schemas/Party', description: 'rung first (the record\'s caller leg)' },
          b: { $ref: '#/components/schemas/Party', description: 'rung once A answered (the callee leg)' },
          from: { $ref: '#/components/schemas/Party', description: 'caller id shown to B (default: A\'s name)' },
          ringTimeoutMs: { type: 'integer', minimum: 1000, maximum: 300000, description: 'how long each party may ring' },
          record: { type: 'boolean', description: 'record the call (stored on the record)' },
          tags: { type: 'object', additionalProperties: { type: 'string', maxLength: 256 }, maxProperties: 20, description: 'echoed in every event of the call' },
        },
      },
      Originated: { type: 'object', properties: { id: { type: 'string' }, state: { type: 'string' }, url: { type: 'string' } } },
      PartyChoice: { type: 'object', additionalProperties: false, properties: { party: { type: 'string', enum: ['caller', 'callee', 'both'], default: 'both' } } },
      Dtmf: {
        type: 'object',
        required: ['digits'],
        additionalProperties: false,
        properties: {
          digits: { type: 'string', pattern: '^[0-9*#A-Da-d]{1,32}$' },
          party: { type: 'string', enum: ['caller', 'callee'], default: 'callee' },
          durationMs: { type: 'integer', minimum: 40, maximum: 2000, default: 160 },
        },
      },
      Transfer: {
        type: 'object',
        required: ['target'],
        additionalProperties: false,
        properties: { target: { $ref: '#/components/schemas/Party' }, keep: { type: 'string', enum: ['caller', 'callee'], default: 'caller' } },
      },
      CallRecord: { type: 'object', description: 'the whole call record: state, parties, dialogs, media ids, owner, reason, tags, timeline', additionalProperties: true },
      CallSummary: { type: 'object', description: 'a call record without SDP, dialog identifiers and media ids', additionalProperties: true },
      CallList: {
        type: 'object',
        properties: { calls: { type: 'array', items: { $ref: '#/components/schemas/CallSummary' } }, total: { type: 'integer' }, next: { type: 'string', description: 'cursor of the next page' } },
      },
      Registration: {
        type: 'object',
        properties: {
          user: { type: 'string' }, aor: { type: 'string' }, contact: { type: 'string' }, transport: { type: 'string' }, webrtc: { type: 'boolean' },
          source: { type: 'string' }, registeredAt: { type: 'integer' }, expiresAt: { type: 'integer' },
          reachable: { type: 'boolean', description: 'false while the gateway\'s OPTIONS pings go unanswered (qualify: docs/gateway.md); calls skip it then' },
          unreachableSince: { type: 'integer', description: 'epoch ms when it was marked unreachable; only when reachable is false' },
        },
        required: ['user', 'aor', 'contact', 'transport', 'webrtc', 'source', 'registeredAt', 'expiresAt', 'reachable'],
      },
    },
  },
  security: bearer,
  paths: {
    '/': { get: { summary: 'the webphone page', security: publicRoute, responses: { '200': { description: 'HTML' } } } },
    '/webphone.js': { get: { summary: 'the webphone page script', security: publicRoute, responses: { '200': { description: 'JavaScript' } } } },
    '/webphone.css': { get: { summary: 'the webphone page style', security: publicRoute, responses: { '200': { description: 'CSS' } } } },
    '/favicon.svg': { get: { summary: 'the pages\' icon', security: publicRoute, responses: { '200': { description: 'SVG' } } } },
    '/status': { get: { summary: 'the status page (no data itself: it asks /api/status with the token it is given)', security: publicRoute, responses: { '200': { description: 'HTML' } } } },
    '/status.js': { get: { summary: 'the status page script', security: publicRoute, responses: { '200': { description: 'JavaScript' } } } },
    '/status.css': { get: { summary: 'the status page style', security: publicRoute, responses: { '200': { description: 'CSS' } } } },
    '/api/status': {
      get: {
        summary: 'what the status page draws: live calls with state and last quality sample (calls this gateway drives), and the last hour per minute (most live calls, ends by reason)',
        responses: {
          '200': json({
            type: 'object',
            properties: {
              now: { type: 'integer' }, gatewayId: { type: 'string' },
              calls: { type: 'array', items: { type: 'object' } },
              history: { type: 'array', items: { type: 'object', properties: { minute: { type: 'integer' }, activeMax: { type: 'integer' }, ended: { type: 'object', additionalProperties: { type: 'integer' } } } } },
            },
          }),
          ...common,
        },
      },
    },
    '/api/events': {
      get: {
        summary: 'live call and registration events over a WebSocket (upgrade; docs/webhooks.md)',
        parameters: [{ name: 'types', in: 'query', schema: { type: 'string' }, description: `comma list of event types to receive (${callEventTypes.join(', ')})` }],
        responses: { '101': { description: 'switching to the WebSocket protocol; one JSON event per message' }, '400': error('an unknown event type'), '503': error('too many clients'), ...common },
      },
    },
    '/jssip.js': { get: { summary: 'the bundled JsSIP', security: publicRoute, responses: { '200': { description: 'JavaScript' } } } },
    '/healthz': { get: { summary: 'liveness', security: publicRoute, responses: { '200': json({ type: 'object' }) } } },
    '/metrics': { get: { summary: 'Prometheus metrics (loopback without a token unless FERRY_METRICS_AUTH=token)', responses: { '200': { description: 'Prometheus text' }, ...common } } },
    '/api/webphone-config': { get: { summary: 'what the webphone page needs before any login', security: publicRoute, responses: { '200': json({ type: 'object' }) } } },
    '/api/openapi.json': { get: { summary: 'this document', responses: { '200': json({ type: 'object' }), ...common } } },
    '/api/calls': {
      get: {
        summary: 'list calls (summaries), oldest first',
        parameters: [
          { name: 'state', in: 'query', schema: { type: 'string' }, description: 'all, or a comma list of routing, ringing, answered, ending, ended (default: all but ended)' },
          { name: 'party', in: 'query', schema: { type: 'string' }, description: 'calls where this user, trunk or number is a party' },
          { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 500, default: 100 } },
          { name: 'offset', in: 'query', schema: { type: 'integer', minimum: 0 } },
          { name: 'cursor', in: 'query', schema: { type: 'string' }, description: 'the `next` of the previous page' },
        ],
        responses: { '200': json(ref('CallList')), '400': error('a bad query parameter'), ...common },
      },
      post: {
        summary: 'originate (click-to-call): ring A, then B, bridge them',
        requestBody: body('OriginateRequest'),
        responses: {
          '201': { ...json(ref('Originated'), 'created; A is being rung'), headers: { Location: { schema: { type: 'string' } } } },
          '400': error('a bad body: the message names the field'),
          '404': error('no user or route for a party'),
          '409': error('a party is not registered'),
          '413': error('the body is too large'),
          '415': error('the body is not application/json'),
          '429': error('FERRY_RING=all: the API\'s calls ring as many registrations at once as FERRY_RING_MAX_FORKS_PER_SOURCE allows (`limit` per-source; Retry-After)'),
          '503': error('the media server is unreachable, or FERRY_RING=all: the gateway\'s calls ring as many registrations at once as FERRY_RING_MAX_FORKS allows (`limit` total; Retry-After)'),
          ...common,
        },
      },
    },
    '/api/calls/{id}': {
      parameters: [idParam],
      get: { summary: 'the whole call record', responses: { '200': json(ref('CallRecord')), '404': error('no such call'), ...common } },
      delete: { summary: 'hang up (reason api-hangup; both parties told, the pipeline released)', responses: { '200': json({ type: 'object' }), ...control } },
    },
    '/api/calls/{id}/hold': {
      parameters: [idParam],
      post: { summary: 're-INVITE the chosen parties a=sendonly', requestBody: body('PartyChoice', false), responses: { '200': json({ type: 'object' }), ...control } },
    },
    '/api/calls/{id}/resume': {
      parameters: [idParam],
      post: { summary: 're-INVITE the chosen parties a=sendrecv', requestBody: body('PartyChoice', false), responses: { '200': json({ type: 'object' }), ...control } },
    },
    '/api/calls/{id}/dtmf': {
      parameters: [idParam],
      post: {
        summary: 'send DTMF to a party: RFC 4733 telephone-events from its media endpoint (SIP INFO application/dtmf-relay only when the media server lacks ferry\'s sendDtmf); 409 when the party did not negotiate telephone-event',
        requestBody: body('Dtmf'),
        responses: {
          '200': json({
            type: 'object',
            properties: {
              id: { type: 'string' },
              party: { type: 'string', enum: ['caller', 'callee'] },
              sent: { type: 'integer', description: 'digits sent or queued' },
              method: { type: 'string', enum: ['rfc4733', 'sip-info'] },
              untilMs: { type: 'integer', description: 'rfc4733: ms until the last digit has been sent' },
            },
          }),
          ...control,
        },
      },
    },
    '/api/calls/{id}/transfer': {
      parameters: [idParam],
      post: { summary: 'blind transfer: the kept party is connected to the target, the other leg released', requestBody: body('Transfer'), responses: { '200': json({ type: 'object' }), '501': error('no transfer core on this gateway'), ...control } },
    },
    '/api/registrations': {
      get: {
        summary: 'live registrations of the configured users',
        parameters: [{ name: 'user', in: 'query', schema: { type: 'string' } }],
        responses: { '200': json({ type: 'object', properties: { registrations: { type: 'array', items: ref('Registration') } } }), ...common },
      },
    },
    ...cdrOpenApiPaths,
  } as Record<string, Json>,
};

/** the HTTP methods OpenAPI path items may hold */
export const OPENAPI_METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

/** (method, path) pairs the document lists, method upper-case */
export function documentedRoutes(doc: { paths: Record<string, Json> } = openApiDocument): { method: string; path: string }[] {
  const out: { method: string; path: string }[] = [];
  for (const [p, item] of Object.entries(doc.paths)) for (const m of OPENAPI_METHODS) if (item[m]) out.push({ method: m.toUpperCase(), path: p });
  return out;
}
