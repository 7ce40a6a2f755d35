import { EventEmitter } from 'node:events';
import type Srf from 'drachtio-srf';
import { DialogLike, InDialogRequest, InDialogResponse } from '../calls/dialog-like';
import { DialogSnapshot } from '../state/call-record';
import { claimDialog, FERRY_CLAIM_HEADER, FERRY_DIALOG_HEADER } from './dialog-claim';

export { FERRY_CLAIM_HEADER, FERRY_DIALOG_HEADER };

interface SentRequest {
  on(event: 'response', cb: (res: { status: number; body?: string }, ack?: () => void) => void): void;
}

/**
 * srf.request in its callback form: the callback runs as soon as the engine confirms the request was
 * sent, before srf reads the next control frame, so a 'response' listener attached inside it can
 * never miss a fast answer (the promise form attaches it a microtask too late: see
 * docs/sip-control-extension.md §3).
 */
type SrfRequestFn = (
  uri: string,
  opts: { method: string; headers: Record<string, string>; body?: string },
  callback: (err: Error | null, sent: SentRequest) => void,
) => void;

/**
 * A dialog this gateway did not create, rebuilt from the call record's snapshot after the gateway
 * that created it died. Same surface as the srf Dialog the Call uses. Requests go out as
 * srf.request(...) carrying `X-Ferry-Dialog: <dialogId>` plus the stored Call-ID, tags and CSeq, so
 * ferry sip sends them inside the existing dialog (or rebuilds it from those headers after its own
 * restart). Requests from the peer arrive through the gateway's verb handlers and `handle()`.
 */
export class AdoptedDialog extends EventEmitter implements DialogLike {
  connected = true;
  local: { sdp: string; uri?: string };
  remote: { sdp: string; uri?: string };
  sip: { callId: string; localTag: string; remoteTag: string };
  private cseq: number;

  constructor(private readonly srf: Srf, readonly snapshot: DialogSnapshot, sdp: { local: string; remote: string }) {
    super();
    this.sip = { callId: snapshot.callId, localTag: snapshot.localTag, remoteTag: snapshot.remoteTag };
    this.local = { sdp: sdp.local, uri: snapshot.localUri };
    this.remote = { sdp: sdp.remote, uri: snapshot.remoteTarget };
    // our next CSeq: the stored one plus a margin, since the old gateway may have sent requests after its last write
    this.cseq = snapshot.localCseq + 100;
  }

  get id(): string {
    return this.snapshot.dialogId;
  }

  private headers(method: string, seq: number): Record<string, string> {
    const s = this.snapshot;
    return {
      [FERRY_DIALOG_HEADER]: s.dialogId,
      'Call-ID': s.callId,
      From: `<${s.localUri}>;tag=${s.localTag}`,
      To: `<${s.remoteUri}>;tag=${s.remoteTag}`,
      CSeq: `${seq} ${method}`,
    };
  }

  private send(method: string, body?: string, extra: Record<string, string> = {}, seq = ++this.cseq): Promise<{ status: number; body?: string }> {
    const request = this.srf.request.bind(this.srf) as unknown as SrfRequestFn;
    return new Promise((resolve, reject) => {
      const opts = { method, headers: { ...this.headers(method, seq), ...extra }, ...(body ? { body } : {}) };
      request(this.snapshot.remoteTarget, opts, (err, sent) => {
        if (err) return reject(err);
        if (method === 'ACK') return resolve({ status: 0 });
        sent.on('response', (res, ack) => {
          if (res.status < 200) return;
          // a 2xx to our re-INVITE: srf hands an ack() bound to the dialog; fall back to our own ACK
          if (method === 'INVITE' && res.status < 300) {
            if (ack) ack();
            else void this.send('ACK', undefined, {}, seq).catch(() => {});
          }
          resolve(res);
        });
      });
    });
  }

  /** Claims the dialog in ferry sip (rebuilding it there after an engine restart): see claimDialog. */
  claim(): Promise<number> {
    return claimDialog(this.srf, this.snapshot, this.cseq);
  }

  async destroy(opts: { headers?: Record<string, string> } = {}): Promise<unknown> {
    if (!this.connected) return undefined;
    this.connected = false;
    return this.send('BYE', undefined, opts.headers ?? {});
  }

  async modify(sdp: string): Promise<string> {
    const seq = ++this.cseq;
    const res = await this.send('INVITE', sdp, { 'Content-Type': 'application/sdp' }, seq);
    if (res.status >= 300) throw Object.assign(new Error(`re-INVITE answered ${res.status}`), { status: res.status });
    this.local.sdp = sdp;
    if (res.body) this.remote.sdp = res.body;
    return res.body ?? '';
  }

  async request(opts: { method: string; body?: string; headers?: Record<string, string> }): Promise<{ status: number }> {
    return this.send(opts.method, opts.body, opts.headers ?? {});
  }

  /** an in-dialog request from the peer, delivered by the gateway's verb handlers */
  handle(req: InDialogRequest, res: InDialogResponse): void {
    switch (req.method) {
      case 'BYE':
        this.connected = false;
        res.send(200);
        this.emit('destroy', req);
        this.removeAllListeners();
        return;
      case 'INVITE':
        this.remote.sdp = req.body || this.remote.sdp;
        this.emit('modify', req, res);
        return;
      case 'ACK':
        return;
      case 'REFER':
        // a transfer of an adopted call (src/gateway/transfer/); nobody listening: not supported
        if (this.listenerCount('refer') === 0) res.send(501);
        else this.emit('refer', req, res);
        return;
      case 'INFO':
      case 'UPDATE':
        if (this.listenerCount(req.method.toLowerCase()) === 0) res.send(200);
        else this.emit(req.method.toLowerCase(), req, res);
        return;
      default:
        res.send(200);
    }
  }
}
