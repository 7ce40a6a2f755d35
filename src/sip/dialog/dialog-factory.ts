import { parseNameAddr, tagOf } from '../message/name-addr';
import type { SipRequest, SipResponse } from '../message/sip-message';
import { callIdOf, cseqOf, parseCSeq } from '../message/sip-message';
import type { Flow } from '../transport/flow';
import { Dialog, makeDialogId } from './dialog';
import { dialogFlow } from './dialog-flow';

function peerOf(flow: Flow): Dialog['peer'] {
  return flow.remoteAddress ? { address: flow.remoteAddress, port: flow.remotePort, protocol: flow.protocol } : undefined;
}

/** RFC 3261 §12.1.1: the UAS dialog of an INVITE we answered 2xx (local tag = our To tag). */
export function uasDialog(invite: SipRequest, ok: SipResponse, localTag: string, flow: Flow, localContact: string, ownerId: string): Dialog {
  const fromTag = tagOf(invite.headers.get('From')) ?? '';
  const remoteTarget = parseNameAddr(invite.headers.getAll('Contact')[0] ?? '')?.uri ?? invite.uri;
  const d = new Dialog(makeDialogId(callIdOf(invite), fromTag), 'uas', callIdOf(invite), localTag, fromTag,
    ok.headers.get('To') ?? '', invite.headers.get('From') ?? '', remoteTarget, invite.headers.getAll('Record-Route'),
    dialogFlow(remoteTarget, flow), ok.headers.get('Contact') ?? localContact, 0);
  d.remoteCSeq = cseqOf(invite).seq;
  d.ownerId = ownerId;
  d.peer = peerOf(flow);
  return d;
}

/** RFC 3261 §12.1.2: the UAC dialog of an INVITE we sent, from its 2xx or reliable 1xx (route set reversed). */
export function uacDialog(invite: SipRequest, res: SipResponse, flow: Flow, ownerId: string | undefined): Dialog {
  const fromTag = tagOf(invite.headers.get('From')) ?? '';
  const cseq = cseqOf(invite).seq;
  const remoteTarget = parseNameAddr(res.headers.getAll('Contact')[0] ?? '')?.uri ?? invite.uri;
  const d = new Dialog(makeDialogId(callIdOf(invite), fromTag), 'uac', callIdOf(invite), fromTag, tagOf(res.headers.get('To')) ?? '',
    invite.headers.get('From') ?? '', res.headers.get('To') ?? '', remoteTarget, res.headers.getAll('Record-Route').reverse(),
    dialogFlow(remoteTarget, flow), invite.headers.get('Contact') ?? '', cseq);
  d.lastInviteCSeq = cseq;
  d.ownerId = ownerId;
  d.peer = peerOf(flow);
  return d;
}

/**
 * The surviving-app extension (docs/sip-control-extension.md §4): a dialog rebuilt from a request an
 * app sent with `X-Ferry-Dialog: <id>` and the stored identifiers in Call-ID, From, To, CSeq, R-URI, Route.
 */
export function dialogFromSnapshot(id: string, req: SipRequest, ownerId: string): Dialog {
  const callId = req.headers.get('Call-ID');
  const from = req.headers.get('From');
  const to = req.headers.get('To');
  const cseq = parseCSeq(req.headers.get('CSeq'));
  const localTag = tagOf(from);
  const remoteTag = tagOf(to);
  if (!callId || !from || !to || !localTag || !remoteTag || !cseq) {
    throw new Error('unable to find dialog: X-Ferry-Dialog needs Call-ID, From with tag, To with tag and CSeq');
  }
  const d = new Dialog(id, 'uac', callId, localTag, remoteTag, from, to, req.uri, req.headers.getAll('Route'), undefined,
    req.headers.get('Contact') ?? '', Math.max(0, cseq.seq - 1));
  d.ownerId = ownerId;
  return d;
}
