/** The OpenAPI `paths` of the CDR and recording routes (spread into src/gateway/api/openapi.ts). */
type Json = Record<string, unknown>;

const errorBody = (description: string): Json => ({ description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } });
const common = { '401': errorBody('no or invalid bearer token'), '403': errorBody('the generated token is usable from this host only') };

const legQuality: Json = {
  type: 'object',
  description: 'the media server\'s figures for the endpoint facing the party (docs/cdr.md, "Quality")',
  properties: {
    endpointId: { type: 'string' },
    ssrcIn: { type: 'string' },
    ssrcOut: { type: 'string' },
    packetsSent: { type: 'integer' },
    packetsReceived: { type: 'integer' },
    packetsLost: { type: 'integer' },
    packetsLostByPeer: { type: 'integer' },
    jitterMs: { type: 'number' },
    rttMs: { type: 'number' },
    lossPercent: { type: 'number' },
    rFactor: { type: 'number' },
    mos: { type: 'number' },
    sampledAt: { type: 'integer' },
    final: { type: 'boolean' },
  },
};

const party: Json = { type: 'object', properties: { uri: { type: 'string' }, party: { type: 'string' }, kind: { type: 'string' } } };

export const cdrSchema: Json = {
  type: 'object',
  required: ['callId', 'createdAt', 'endedAt', 'ringMs', 'talkMs', 'durationMs', 'quality'],
  properties: {
    callId: { type: 'string' },
    sipCallIds: { type: 'object', properties: { caller: { type: 'string' }, callee: { type: 'string' } } },
    gatewayId: { type: 'string' },
    caller: party,
    callee: party,
    createdAt: { type: 'integer' },
    ringingAt: { type: 'integer' },
    answeredAt: { type: 'integer' },
    endedAt: { type: 'integer' },
    releasedAt: { type: 'integer' },
    ringMs: { type: 'integer' },
    talkMs: { type: 'integer' },
    durationMs: { type: 'integer' },
    answered: { type: 'boolean' },
    reason: { type: 'string' },
    endedBy: { type: 'string' },
    codec: { type: 'string' },
    transfers: { type: 'array', items: { type: 'object' } },
    recording: {
      type: 'object',
      properties: {
        url: { type: 'string' },
        format: { type: 'string' },
        sampleRate: { type: 'integer' },
        files: { type: 'object', properties: { caller: { type: 'string' }, callee: { type: 'string' } } },
        startedAt: { type: 'integer' },
      },
    },
    tags: { type: 'object', additionalProperties: { type: 'string' } },
    quality: { type: 'object', properties: { caller: legQuality, callee: legQuality } },
  },
};

export const cdrOpenApiPaths: Record<string, Json> = {
  '/api/cdrs': {
    get: {
      summary: 'CDRs of the calls that ended in [from, to), oldest first; format=csv for a CSV export',
      parameters: [
        { name: 'from', in: 'query', schema: { type: 'string' }, description: 'epoch ms or ISO 8601 (inclusive; default: the beginning)' },
        { name: 'to', in: 'query', schema: { type: 'string' }, description: 'epoch ms or ISO 8601 (exclusive; default: now)' },
        { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 }, description: 'JSON page size (CSV: rows, at most 100000)' },
        { name: 'offset', in: 'query', schema: { type: 'integer', minimum: 0 } },
        { name: 'format', in: 'query', schema: { type: 'string', enum: ['json', 'csv'], default: 'json' } },
      ],
      responses: {
        '200': {
          description: 'a page of CDRs (`next`: the next page\'s URL), or text/csv',
          content: {
            'application/json': { schema: { type: 'object', properties: { cdrs: { type: 'array', items: cdrSchema }, next: { type: 'string' } } } },
            'text/csv': { schema: { type: 'string' } },
          },
        },
        '400': errorBody('a bad query parameter'),
        '503': errorBody('the CDR store does not answer'),
        ...common,
      },
    },
  },
  '/api/recordings/{callId}': {
    parameters: [{ name: 'callId', in: 'path', required: true, schema: { type: 'string' }, description: 'the call id' }],
    get: {
      summary: 'a recorded call\'s audio once it ended: a 2-channel WAV (caller, callee), or one party\'s mono WAV',
      parameters: [{ name: 'party', in: 'query', schema: { type: 'string', enum: ['caller', 'callee'] }, description: 'one party only (mono)' }],
      responses: {
        '200': { description: '16-bit PCM WAV, 8 kHz', content: { 'audio/wav': { schema: { type: 'string', format: 'binary' } } } },
        '400': errorBody('a bad query parameter'),
        '404': errorBody('no recording for this call (unknown, not recorded, not ended yet, or its files are not on this host)'),
        '503': errorBody('the CDR store does not answer'),
        ...common,
      },
    },
  },
};
