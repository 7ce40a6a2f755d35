import { randomUUID } from 'node:crypto';
import type { Logger } from '../../common/logger';
import { KurentoErrors } from '../errors/kurento-error';
import type { MediaSession, SessionConnection } from '../server/media-session';
import { pipelineIdOf, type MediaSet } from '../server/media-set';
import { SERVER_MANAGER_ID } from '../server/server-manager';
import {
  errorFrame,
  idOf,
  JsonRpcError,
  JSONRPC_INVALID_REQUEST,
  JSONRPC_METHOD_NOT_FOUND,
  JSONRPC_PARSE_ERROR,
  successFrame,
  toRequest,
  type JsonRpcRequest,
} from './json-rpc';
import { KeyedQueue } from './keyed-queue';

/** Methods whose request creates/uses a session (getOrCreateSessionId). */
const SESSION_METHODS = new Set(['create', 'describe', 'invoke', 'subscribe', 'unsubscribe', 'release', 'ref', 'unref', 'transaction']);

let nextConnectionId = 1;

/** More operations than this in one `transaction` is a malformed transaction (hostile input bound). */
export const MAX_TRANSACTION_OPERATIONS = 256;

/**
 * One Kurento control connection (a WebSocket): frames in, frames out, session binding, FIFO per
 * pipeline. Turns JSON-RPC into MediaSet calls; no media object sees a request id or a socket.
 */
export class RpcConnection implements SessionConnection {
  readonly connectionId = nextConnectionId++;
  private boundSessionId: string | undefined;
  private readonly queue: KeyedQueue;
  private closed = false;

  constructor(
    private readonly set: MediaSet,
    private readonly send: (text: string) => void,
    private readonly serverId: string,
    private readonly logger: Logger,
  ) {
    // a request task that fails outside execute()'s own error handling (a reply on a closing socket, a bug)
    this.queue = new KeyedQueue((key, err) =>
      this.logger.error('control request task failed', { connection: this.connectionId, queue: key, error: err instanceof Error ? err.message : String(err) }));
  }

  get sessionId(): string | undefined {
    return this.boundSessionId;
  }

  sendNotification(method: string, params: Record<string, unknown>): void {
    if (this.closed) return;
    this.send(JSON.stringify({ jsonrpc: '2.0', method, params }));
  }

  sessionExpired(sessionId: string): void {
    this.sessionLost(sessionId);
  }

  /** The session was taken over by another connection. */
  sessionLost(sessionId: string): void {
    if (this.boundSessionId === sessionId) this.boundSessionId = undefined;
  }

  closedByPeer(): void {
    if (this.closed) return;
    this.closed = true;
    this.set.connectionClosed(this, this.boundSessionId);
  }

  handleFrame(text: string): void {
    let decoded: unknown;
    try {
      decoded = JSON.parse(text);
    } catch {
      this.reply(errorFrame(null, new JsonRpcError(JSONRPC_PARSE_ERROR, 'Parse error')));
      return;
    }
    if (Array.isArray(decoded)) {
      if (decoded.length === 0) {
        this.reply(errorFrame(null, new JsonRpcError(JSONRPC_INVALID_REQUEST, 'Invalid request: empty batch')));
        return;
      }
      this.queue.run('', async () => {
        const out: Record<string, unknown>[] = [];
        for (const item of decoded as unknown[]) {
          const frame = await this.handleOne(item);
          if (frame) out.push(frame);
        }
        if (out.length) this.reply(out);
      });
      return;
    }
    let req: JsonRpcRequest;
    try {
      req = toRequest(decoded);
    } catch (err) {
      this.reply(errorFrame(idOf(decoded) ?? null, err));
      return;
    }
    if (req.method === 'ping') {
      // never queued: a ping tells the client this connection is served, so it must not wait behind a
      // request still at work (a pipeline creation waiting for a busy or stopped relay worker)
      void this.execute(req).then((frame) => {
        if (frame) this.reply(frame);
      });
      return;
    }
    this.queue.run(queueKey(req), async () => {
      const frame = await this.execute(req);
      if (frame) this.reply(frame);
    });
  }

  private async handleOne(item: unknown): Promise<Record<string, unknown> | undefined> {
    let req: JsonRpcRequest;
    try {
      req = toRequest(item);
    } catch (err) {
      return errorFrame(idOf(item) ?? null, err);
    }
    return this.execute(req);
  }

  /** Run one request; returns its response frame (undefined for notifications). */
  private async execute(req: JsonRpcRequest): Promise<Record<string, unknown> | undefined> {
    try {
      const result = await this.dispatch(req.method, req.params);
      return req.id === undefined ? undefined : successFrame(req.id, result);
    } catch (err) {
      if (!(err instanceof JsonRpcError) && !(err instanceof Error && 'code' in err)) {
        this.logger.error('unexpected error in request', { method: req.method, error: String(err) });
      }
      return req.id === undefined ? undefined : errorFrame(req.id, err);
    }
  }

  private async dispatch(method: string, params: Record<string, unknown>): Promise<Record<string, unknown>> {
    switch (method) {
      case 'ping':
        return this.boundSessionId ? { value: 'pong', sessionId: this.boundSessionId } : { value: 'pong' };
      case 'connect':
        return this.connect(params);
      case 'keepAlive': {
        const sid = stringOr(params.sessionId, this.boundSessionId);
        if (!sid || !this.set.session(sid)) throw KurentoErrors.invalidSession();
        return { sessionId: sid };
      }
      case 'closeSession': {
        const sid = stringOr(params.sessionId, this.boundSessionId);
        const s = sid ? this.set.session(sid) : undefined;
        if (s) await this.set.closeSession(s, params.release === true);
        if (sid && this.boundSessionId === sid) this.boundSessionId = undefined;
        return sid ? { sessionId: sid } : {};
      }
      default:
        if (!SESSION_METHODS.has(method)) throw new JsonRpcError(JSONRPC_METHOD_NOT_FOUND, 'Method not found.');
        return this.sessionMethod(method, params);
    }
  }

  private connect(params: Record<string, unknown>): Record<string, unknown> {
    const asked = typeof params.sessionId === 'string' && params.sessionId !== '' ? params.sessionId : undefined;
    if (asked && !this.set.session(asked)) throw KurentoErrors.invalidSession();
    const session = this.set.getOrCreateSession(asked ?? randomUUID());
    this.bindTo(session);
    return { sessionId: session.id, serverId: this.serverId };
  }

  private bindTo(session: MediaSession): void {
    if (this.closed) return;
    const previous = this.boundSessionId ? this.set.session(this.boundSessionId) : undefined;
    const oldConn = session.connection;
    if (oldConn && oldConn !== this && oldConn instanceof RpcConnection) oldConn.sessionLost(session.id);
    this.boundSessionId = session.id;
    this.set.bind(session, this, previous);
  }

  private async sessionMethod(method: string, params: Record<string, unknown>): Promise<Record<string, unknown>> {
    const sid = stringOr(params.sessionId, this.boundSessionId) ?? randomUUID();
    const session = this.set.getOrCreateSession(sid);
    this.bindTo(session);
    const fields = await this.sessionOperation(method, params, session);
    return { ...fields, sessionId: sid };
  }

  /** The result fields of one session method, without sessionId. */
  private async sessionOperation(method: string, params: Record<string, unknown>, session: MediaSession): Promise<Record<string, unknown>> {
    switch (method) {
      case 'create':
        return { value: await this.set.create(session, params.type, asObject(params.constructorParams, 'constructorParams')) };
      case 'describe': {
        const d = this.set.describe(params.object);
        this.set.adopt(session, params.object as string);
        return { ...d };
      }
      case 'invoke': {
        const target = this.set.get(params.object);
        if (typeof params.operation !== 'string' || params.operation === '') throw KurentoErrors.marshall("'operation' parameter should be a string");
        this.set.adopt(session, target.id);
        const value = await target.invoke(params.operation, asObject(params.operationParams, 'operationParams'));
        return { value: value === undefined ? null : value };
      }
      case 'subscribe':
        return { value: this.set.subscribe(session, params.object, params.type) };
      case 'unsubscribe':
        this.set.unsubscribe(session, params.subscription);
        return {};
      case 'release':
        await this.set.release(params.object, 'control-release', session);
        return {};
      case 'ref':
        this.set.get(params.object);
        this.set.adopt(session, params.object as string);
        return {};
      case 'unref':
        await this.set.unref(session, params.object);
        return {};
      case 'transaction':
        return { value: await this.transaction(params.operations, session.id) };
      default:
        throw new JsonRpcError(JSONRPC_METHOD_NOT_FOUND, 'Method not found.');
    }
  }

  /**
   * `transaction` (KMS ServerMethods::transaction): run the operations in order under the transaction's
   * session (an operation's own sessionId is overridden, as KMS does), replacing every string
   * "newref:K" with operation K's result value; stop at the first operation that fails, whose entry
   * carries the error, and answer the entries so far (no rollback). A malformed transaction — not an
   * array, ids not 0..n-1, a nested transaction, a "newref:K" that names no earlier operation, more than
   * MAX_TRANSACTION_OPERATIONS operations — is answered 40008 MALFORMED_TRANSACTION as a whole, and
   * ferry checks all of it before running anything (KMS checks ids and references as it goes, after
   * running the operations before them, so their objects are created for nobody to know).
   */
  private async transaction(operations: unknown, sessionId: string): Promise<unknown> {
    if (!Array.isArray(operations)) throw KurentoErrors.malformedTransaction("'operations' must be an array");
    if (operations.length > MAX_TRANSACTION_OPERATIONS) throw KurentoErrors.malformedTransaction(`a transaction has at most ${MAX_TRANSACTION_OPERATIONS} operations`);
    const reqs: JsonRpcRequest[] = [];
    operations.forEach((op, i) => {
      let r: JsonRpcRequest;
      try {
        r = toRequest(op);
      } catch {
        throw KurentoErrors.malformedTransaction(`operation ${i} is not a valid request`);
      }
      if (r.id !== i) throw KurentoErrors.malformedTransaction(`Id of request '${i}' should be '${i}'`);
      if (r.method === 'transaction') throw KurentoErrors.malformedTransaction('nested transactions are not allowed');
      checkNewRefs(r.params, i);
      reqs.push(r);
    });
    const values: unknown[] = [];
    const responses: Record<string, unknown>[] = [];
    for (const r of reqs) {
      const params = { ...(substituteNewRefs(r.params, values) as Record<string, unknown>), sessionId };
      const frame = (await this.execute({ ...r, params }))!;
      responses.push(frame);
      if ('error' in frame) break;
      values.push((frame.result as Record<string, unknown>).value);
    }
    return responses;
  }

  private reply(frame: unknown): void {
    if (this.closed) return;
    this.send(JSON.stringify(frame));
  }
}

function queueKey(req: JsonRpcRequest): string {
  const p = req.params;
  const target = typeof p.object === 'string' ? p.object : undefined;
  if (target && target !== SERVER_MANAGER_ID) return pipelineIdOf(target) ?? target;
  const cp = p.constructorParams as Record<string, unknown> | undefined;
  if (req.method === 'create' && cp && typeof cp.mediaPipeline === 'string') return cp.mediaPipeline;
  if (req.method === 'create' && cp && typeof cp.hub === 'string') return pipelineIdOf(cp.hub) ?? ''; // a HubPort names only its hub
  return '';
}

function stringOr(v: unknown, fallback: string | undefined): string | undefined {
  return typeof v === 'string' && v !== '' ? v : fallback;
}

function asObject(v: unknown, name: string): Record<string, unknown> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw KurentoErrors.marshall(`'${name}' should be an object`);
  return v as Record<string, unknown>;
}

const NEW_REF = 'newref:';

/** Operation `index`'s "newref:K" strings must name an earlier operation (whose result will be there). */
function checkNewRefs(v: unknown, index: number, depth = 0): void {
  if (depth > 32) throw KurentoErrors.malformedTransaction(`operation ${index} is nested too deeply`);
  if (typeof v === 'string') {
    if (!v.startsWith(NEW_REF) || v.length === NEW_REF.length) return;
    const ref = v.slice(NEW_REF.length);
    if (!/^\d{1,6}$/.test(ref)) throw KurentoErrors.malformedTransaction(`Invalid index of newref '${ref}'`);
    if (Number(ref) >= index) throw KurentoErrors.malformedTransaction(`Result not found on request ${Number(ref)}`);
    return;
  }
  if (Array.isArray(v)) for (const x of v) checkNewRefs(x, index, depth + 1);
  else if (typeof v === 'object' && v !== null) for (const x of Object.values(v)) checkNewRefs(x, index, depth + 1);
}

/** Replace every "newref:K" (checked by checkNewRefs) with operation K's result value. */
function substituteNewRefs(v: unknown, values: unknown[]): unknown {
  if (typeof v === 'string' && v.startsWith(NEW_REF) && v.length > NEW_REF.length) return values[Number(v.slice(NEW_REF.length))];
  if (Array.isArray(v)) return v.map((x) => substituteNewRefs(x, values));
  if (typeof v === 'object' && v !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = substituteNewRefs(x, values);
    return out;
  }
  return v;
}
