/**
 * A drachtio-srf B2BUA app run as its own process, so a test can SIGKILL it mid-call (an app that
 * dies, not one that disconnects politely).
 *
 *   node --import tsx test/helpers/srf-b2bua-child.ts <controlHost> <controlPort> <secret> <bLegUri>
 *
 * It bridges every INVITE to <bLegUri> with createB2BUA and prints one JSON line per event on
 * stdout: {"event":"ready"} once connected, {"event":"bridged", "uas": <snapshot>, "uac": <snapshot>}
 * per call, where a snapshot holds what a gateway stores to take a dialog over
 * (docs/sip-control-extension.md section 2).
 */
import Srf from 'drachtio-srf';
import { destroyDialog } from './srf-app';

export interface DialogSnapshot {
  dialogId: string;
  callId: string;
  type: 'uas' | 'uac';
  localParty: string;
  remoteParty: string;
  remoteTarget: string;
}

export type ChildEvent =
  | { event: 'ready' }
  | { event: 'error'; message: string }
  | { event: 'bridged'; uas: DialogSnapshot; uac: DialogSnapshot }
  | { event: 'destroyed'; leg: 'uas' | 'uac' };

function emit(e: ChildEvent): void {
  process.stdout.write(`${JSON.stringify(e)}\n`);
}

function snapshot(d: Srf.Dialog): DialogSnapshot {
  const dlg = d as Srf.Dialog & { id: string; res: Srf.SrfResponse };
  return {
    dialogId: dlg.id,
    callId: dlg.sip.callId,
    type: dlg.type,
    localParty: dlg.type === 'uas' ? `${dlg.req.get('To')};tag=${dlg.sip.localTag}` : dlg.req.get('From'),
    remoteParty: dlg.type === 'uas' ? dlg.req.get('From') : dlg.res.get('To'),
    remoteTarget: dlg.remote.uri,
  };
}

function main(): void {
  const [host, port, secret, bLegUri] = process.argv.slice(2);
  if (!host || !port || !secret || !bLegUri) {
    emit({ event: 'error', message: 'usage: srf-b2bua-child <controlHost> <controlPort> <secret> <bLegUri>' });
    process.exit(2);
  }
  const srf = new Srf();
  srf.on('error', () => {});
  srf.invite(async (req, res) => {
    try {
      const { uas, uac } = await srf.createB2BUA(req, res, bLegUri, { localSdpB: req.body });
      uas.on('destroy', () => {
        emit({ event: 'destroyed', leg: 'uas' });
        destroyDialog(uac).catch(() => {});
      });
      uac.on('destroy', () => {
        emit({ event: 'destroyed', leg: 'uac' });
        destroyDialog(uas).catch(() => {});
      });
      emit({ event: 'bridged', uas: snapshot(uas), uac: snapshot(uac) });
    } catch (e) {
      emit({ event: 'error', message: `createB2BUA failed: ${String(e)}` });
    }
  });
  srf.on('connect', (err: Error | null) => emit(err ? { event: 'error', message: String(err) } : { event: 'ready' }));
  (srf as unknown as { connect(o: object): void }).connect({ host, port: Number(port), secret });
}

if (require.main === module) main();
