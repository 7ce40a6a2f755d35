import type { RequestHandler } from '../control/request-handler';
import { parseNameAddr } from '../message/name-addr';
import type { SipRequest } from '../message/sip-message';
import { callIdOf } from '../message/sip-message';
import { serializeSipMessage } from '../message/sip-serializer';
import type { ServerTransaction } from '../transaction/server-transaction-table';
import type { Flow } from '../transport/flow';
import type { EngineContext } from './engine-context';
import { makeResponse, randomToken } from './message-builders';
import type { AppConnection } from '../control/app-connection';

/**
 * Outbound connection mode, the engine's half: a new request of a method the request handler takes is not
 * dealt to the connected apps; the handler finds its app (opening a connection to it) and the request goes
 * there as to any app (`deliver`); its in-dialog requests then reach that connection as the dialog's owner.
 * The caller already has its 100 Trying; it gets the handler's refusal (480, 500, 503, a `reject`) or its
 * redirect (302) otherwise. A request answered meanwhile (CANCEL, shutdown) is not delivered.
 */
export function dispatchToRequestHandler(
  ctx: EngineContext,
  handler: RequestHandler,
  req: SipRequest,
  flow: Flow,
  txn: ServerTransaction,
  deliver: (app: AppConnection) => void,
): void {
  const userOf = (header: string): string => /^sips?:([^@;:]+)(?::[^@]*)?@/i.exec(parseNameAddr(req.headers.get(header) ?? '')?.uri ?? '')?.[1] ?? '';
  handler.route({
    method: req.method,
    uri: req.uri,
    fromUser: userOf('From'),
    toUser: userOf('To'),
    contentType: req.headers.get('Content-Type') ?? '',
    protocol: flow.protocol,
    sourceAddress: flow.remoteAddress,
    raw: () => serializeSipMessage(req).toString('utf8'),
  }).then((decision) => {
    if (txn.finalSent || txn.terminated) {
      ctx.log.info('request answered before its app was found: not delivered', { method: req.method, callId: callIdOf(req) });
      return;
    }
    if (decision.kind === 'app') {
      if (decision.app.closed || !ctx.router.find(decision.app.id)) {
        txn.respond(makeResponse(req, 480, randomToken()));
        ctx.log.info('outbound app connection gone before the request went to it: answered 480', { method: req.method, callId: callIdOf(req) });
        return;
      }
      ctx.log.info('new request handed to app (request handler)', { method: req.method, callId: callIdOf(req), app: decision.app.id });
      deliver(decision.app);
      return;
    }
    if (decision.kind === 'redirect') {
      const res = makeResponse(req, 302, randomToken());
      for (const c of decision.contacts) res.headers.append('Contact', c.includes('<') ? c : `<${c}>`);
      txn.respond(res);
      ctx.log.info('new request redirected by the request handler', { method: req.method, callId: callIdOf(req), contacts: decision.contacts.length });
      return;
    }
    txn.respond(makeResponse(req, decision.status, randomToken(), decision.reason));
    ctx.log.info('new request refused in outbound connection mode', { method: req.method, callId: callIdOf(req), status: decision.status, why: decision.why });
  }).catch((err: unknown) => {
    ctx.log.warn('request handler failed', { method: req.method, callId: callIdOf(req), error: err instanceof Error ? err.message : String(err) });
    if (!txn.finalSent && !txn.terminated) txn.respond(makeResponse(req, 500, randomToken()));
  });
}
