import { Dialog, dialogKey } from './dialog';

/** Dialogs by dialogId, by (Call-ID, local tag, remote tag) and by Call-ID. */
export class DialogTable {
  private readonly byId = new Map<string, Dialog>();
  private readonly byKey = new Map<string, Dialog>();

  add(d: Dialog): void {
    const old = this.byId.get(d.id);
    if (old) this.remove(old);
    this.byId.set(d.id, d);
    this.byKey.set(d.key, d);
  }

  remove(d: Dialog): void {
    d.pending2xx?.cancel();
    d.pending2xx = undefined;
    d.challengedBye?.cancel();
    d.challengedBye = undefined;
    if (this.byId.get(d.id) === d) this.byId.delete(d.id);
    if (this.byKey.get(d.key) === d) this.byKey.delete(d.key);
  }

  get(id: string): Dialog | undefined {
    return this.byId.get(id);
  }

  find(callId: string, localTag: string, remoteTag: string): Dialog | undefined {
    return this.byKey.get(dialogKey(callId, localTag, remoteTag));
  }

  /** drachtio: a new request whose Call-ID (and From tag, if given) matches a dialog is sent inside it. */
  findByCallId(callId: string, localTag: string | undefined): Dialog | undefined {
    for (const d of this.byId.values()) if (d.callId === callId && (!localTag || d.localTag === localTag)) return d;
    return undefined;
  }

  ownedBy(ownerId: string): Dialog[] {
    return [...this.byId.values()].filter((d) => d.ownerId === ownerId);
  }

  get size(): number {
    return this.byId.size;
  }

  all(): Dialog[] {
    return [...this.byId.values()];
  }
}
