import { KurentoError } from '../errors/kurento-error';

/** JSON-RPC 2.0 envelopes as Kurento uses them. Pure functions. */
export type JsonRpcId = string | number | null;

export interface JsonRpcRequest {
  id: JsonRpcId | undefined;
  method: string;
  params: Record<string, unknown>;
}

export const JSONRPC_PARSE_ERROR = -32700;
export const JSONRPC_INVALID_REQUEST = -32600;
export const JSONRPC_METHOD_NOT_FOUND = -32601;
export const JSONRPC_INVALID_PARAMS = -32602;
export const JSONRPC_INTERNAL_ERROR = -32603;

export class JsonRpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** Validate one decoded request object; throws JsonRpcError(-32600/-32602) with the id it could read. */
export function toRequest(v: unknown): JsonRpcRequest {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new JsonRpcError(JSONRPC_INVALID_REQUEST, 'Invalid request');
  const o = v as Record<string, unknown>;
  if (o.jsonrpc !== '2.0') throw new JsonRpcError(JSONRPC_INVALID_REQUEST, "Invalid request: 'jsonrpc' must be \"2.0\"");
  if (typeof o.method !== 'string' || o.method === '') throw new JsonRpcError(JSONRPC_INVALID_REQUEST, "Invalid request: 'method' must be a string");
  if (o.params !== undefined && (typeof o.params !== 'object' || o.params === null || Array.isArray(o.params))) {
    throw new JsonRpcError(JSONRPC_INVALID_PARAMS, "Invalid params: 'params' must be an object");
  }
  return { id: idOf(o), method: o.method, params: (o.params as Record<string, unknown> | undefined) ?? {} };
}

/** The id of a (possibly invalid) request object, if it has a usable one. */
export function idOf(v: unknown): JsonRpcId | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const id = (v as Record<string, unknown>).id;
  return typeof id === 'string' || typeof id === 'number' || id === null ? id : undefined;
}

export function successFrame(id: JsonRpcId, result: unknown): Record<string, unknown> {
  return { jsonrpc: '2.0', id, result };
}

export function errorFrame(id: JsonRpcId, err: unknown): Record<string, unknown> {
  if (err instanceof KurentoError) {
    return { jsonrpc: '2.0', id, error: { code: err.code, message: err.message, data: { type: err.type } } };
  }
  if (err instanceof JsonRpcError) return { jsonrpc: '2.0', id, error: { code: err.code, message: err.message } };
  const message = err instanceof Error ? err.message : String(err);
  return { jsonrpc: '2.0', id, error: { code: 40003, message: `Unexpected error: ${message}`, data: { type: 'UNEXPECTED_ERROR' } } };
}
