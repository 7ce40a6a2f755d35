import { InDialogRequest, InDialogResponse } from '../calls/dialog-like';
import { AdoptedDialog } from './adopted-dialog';

/** Adopted dialogs by drachtio dialog id and by Call-ID, so the verb handlers can find them. */
export class AdoptedDialogs {
  private readonly byId = new Map<string, AdoptedDialog>();
  private readonly byCallId = new Map<string, AdoptedDialog>();

  add(d: AdoptedDialog): void {
    this.byId.set(d.id, d);
    this.byCallId.set(d.sip.callId, d);
    d.once('destroy', () => this.remove(d));
  }

  remove(d: AdoptedDialog): void {
    this.byId.delete(d.id);
    this.byCallId.delete(d.sip.callId);
  }

  find(req: { stackDialogId?: string; get(name: string): string | undefined }): AdoptedDialog | undefined {
    if (req.stackDialogId && this.byId.has(req.stackDialogId)) return this.byId.get(req.stackDialogId);
    const callId = req.get('Call-ID');
    return callId ? this.byCallId.get(callId) : undefined;
  }

  /** true when the request belonged to an adopted dialog and was handled */
  dispatch(req: InDialogRequest & { stackDialogId?: string }, res: InDialogResponse): boolean {
    const d = this.find(req);
    if (!d) return false;
    d.handle(req, res);
    return true;
  }

  get size(): number {
    return this.byId.size;
  }
}
