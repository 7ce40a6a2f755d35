/**
 * SUBSCRIBE dialogs in ferry sip, as drachtio-server keeps them: the unmodified drachtio-srf answers a
 * SIPp subscriber's SUBSCRIBE with 202 (`srf.createUAS`), gets a dialog id in the control reply, sends
 * NOTIFYs in the dialog, and the dialog ends once a NOTIFY with `Subscription-State: terminated` is
 * answered — sent explicitly or by `dialog.destroy()`. Engine counts return to zero after each.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type Srf from 'drachtio-srf';
import { startSipEngine, type RunningSipEngine } from '../../src/sip/sip-engine-server';
import { connectSrf, dialogIdOf, waitFor, type ConnectedSrf } from '../helpers/srf-app';
import { freePort } from '../helpers/free-port';
import { startSipp, killAllSipp, describeSipp, tracedMessages, headerOf, type TracedMessage } from '../helpers/sipp';

type EndMode = 'notify-terminated' | 'destroy';

const PIDF = '<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:ferry@example.test"/>';

function tagOfHeader(value: string | undefined): string | undefined {
  return /;\s*tag=([^;\s>]+)/i.exec(value ?? '')?.[1];
}

describe('ferry sip: SUBSCRIBE dialogs with drachtio-srf createUAS and a SIPp subscriber', () => {
  let engine: RunningSipEngine;
  let app: ConnectedSrf;
  let mode: EndMode = 'notify-terminated';
  const seen: string[] = [];
  let dialogId = '';
  let notifyStatuses: number[] = [];
  let failure: unknown;

  before(async () => {
    engine = await startSipEngine({ timers: { t1: 20, t2: 160, t4: 200 } });
    app = await connectSrf({ host: '127.0.0.1', port: engine.ports.control, secret: 'cymru' }, (srf: Srf) => {
      (srf as unknown as { subscribe(h: (req: Srf.SrfRequest, res: Srf.SrfResponse) => void): void }).subscribe(async (req, res) => {
        try {
          const dlg = await srf.createUAS(req, res, { headers: { Expires: '60' } } as unknown as Srf.CreateUASOptions);
          dialogId = dialogIdOf(dlg);
          seen.push(`dialog:${dlg.sip.callId === req.get('Call-ID')}`);
          dlg.on('destroy', () => seen.push('destroy'));
          const request = dlg.request as unknown as (o: object) => Promise<{ status: number }>;
          const active = await request.call(dlg, {
            method: 'NOTIFY', headers: { Event: 'presence', 'Subscription-State': 'active;expires=60', 'Content-Type': 'application/pidf+xml' }, body: PIDF,
          });
          notifyStatuses.push(active.status);
          seen.push(`stats-after-active:${engine.engine.stats().dialogs}`);
          if (mode === 'destroy') {
            await (dlg.destroy as unknown as () => Promise<unknown>).call(dlg);
            seen.push('destroyed-by-app');
          } else {
            const terminated = await request.call(dlg, { method: 'NOTIFY', headers: { Event: 'presence', 'Subscription-State': 'terminated;reason=noresource' } });
            notifyStatuses.push(terminated.status);
          }
        } catch (err) {
          failure = err;
        }
      });
    });
  });

  after(async () => {
    killAllSipp();
    app?.close();
    await engine?.close();
  });

  function srfDialogCount(): number {
    return (app.srf as unknown as { _dialogs: Map<string, unknown> })._dialogs.size;
  }

  /** Both NOTIFYs are in the subscription's dialog: the SUBSCRIBE's Call-ID, From tag = the 202's To tag, To tag = the subscriber's tag. */
  function assertNotifiesInDialog(trace: TracedMessage[]): void {
    const subscribe = trace.find((m) => m.direction === 'sent' && m.firstLine.startsWith('SUBSCRIBE '))!;
    const accepted = trace.find((m) => m.direction === 'received' && /^SIP\/2\.0 20[02]/.test(m.firstLine))!;
    const notifies = trace.filter((m) => m.direction === 'received' && m.firstLine.startsWith('NOTIFY '));
    assert.equal(notifies.length, 2, 'two NOTIFYs reached the subscriber');
    assert.ok(headerOf(accepted, 'Contact'), 'the 202 carries a Contact (the dialog\'s remote target)');
    for (const n of notifies) {
      assert.equal(headerOf(n, 'Call-ID'), headerOf(subscribe, 'Call-ID'));
      assert.equal(tagOfHeader(headerOf(n, 'From')), tagOfHeader(headerOf(accepted, 'To')), "NOTIFY From tag = the 202's To tag");
      assert.equal(tagOfHeader(headerOf(n, 'To')), tagOfHeader(headerOf(subscribe, 'From')), "NOTIFY To tag = the subscriber's From tag");
      assert.equal(headerOf(n, 'Event'), 'presence');
    }
    assert.match(headerOf(notifies[0]!, 'Subscription-State') ?? '', /^active/);
    assert.match(headerOf(notifies[1]!, 'Subscription-State') ?? '', /^terminated/);
    const cseqs = notifies.map((n) => Number(/^(\d+)/.exec(headerOf(n, 'CSeq') ?? '')?.[1]));
    assert.ok(cseqs[1]! > cseqs[0]!, 'NOTIFY CSeqs increase in the dialog');
  }

  for (const m of ['notify-terminated', 'destroy'] as const) {
    test(`202 creates a dialog with an id; NOTIFY active then terminated (${m === 'destroy' ? 'by dialog.destroy()' : 'sent by the app'}) ends it; counts back to zero`, { timeout: 30_000 }, async () => {
      mode = m;
      seen.length = 0;
      notifyStatuses = [];
      dialogId = '';
      failure = undefined;
      const port = await freePort();
      const subscriber = await startSipp({ scenario: 'uac-subscribe.xml', localPort: port, remote: `127.0.0.1:${engine.ports.sip}`, timeoutS: 20 });
      const result = await subscriber.done;
      assert.equal(result.exitCode, 0, describeSipp(result));
      await waitFor(() => failure !== undefined || (m === 'destroy' ? seen.includes('destroyed-by-app') : notifyStatuses.length === 2), 'the app to finish');
      assert.equal(failure, undefined, `the app's SUBSCRIBE handling failed: ${String(failure)}`);
      assert.ok(dialogId.length > 0, 'the control reply to the 202 carried a dialog id');
      assert.equal(seen[0], 'dialog:true');
      assert.equal(seen[1], 'stats-after-active:1', 'the dialog existed in ferry sip while the subscription was active');
      if (m === 'notify-terminated') {
        assert.deepEqual(notifyStatuses, [200, 200]);
        await waitFor(() => seen.includes('destroy'), "srf's destroy after the NOTIFY terminated was answered");
      } else {
        assert.deepEqual(notifyStatuses, [200]);
      }
      assertNotifiesInDialog(tracedMessages(result));
      await waitFor(() => engine.engine.stats().dialogs === 0, 'the dialog to end in ferry sip');
      await waitFor(() => {
        const s = engine.engine.stats();
        return s.clientTransactions === 0 && s.serverTransactions === 0 && s.pending === 0;
      }, 'the transactions to end');
      assert.equal(srfDialogCount(), 0, 'no dialog left in srf');
      assert.equal(engine.engine.stats().orphanedDialogs, 0);
    });
  }

  test('subscriber side: srf.createUAC SUBSCRIBE gets a dialog from the 202; the notifier\'s NOTIFYs reach it; NOTIFY terminated ends it', { timeout: 30_000 }, async () => {
    const port = await freePort();
    const notifier = await startSipp({ scenario: 'uas-notifier.xml', localPort: port, timeoutS: 20 });
    await notifier.ready();
    const notifies: string[] = [];
    const dlg = await app.srf.createUAC(`sip:presence@127.0.0.1:${port}`, {
      method: 'SUBSCRIBE', headers: { Event: 'presence', Expires: '60', Accept: 'application/pidf+xml' },
    } as unknown as Srf.CreateUACOptions);
    assert.ok(dialogIdOf(dlg).length > 0, 'the 202 came with a dialog id');
    let destroyed = false;
    dlg.on('destroy', () => (destroyed = true));
    dlg.on('notify', (req: Srf.SrfRequest, res: Srf.SrfResponse) => {
      notifies.push(req.get('Subscription-State'));
      res.send(200);
    });
    const result = await notifier.done;
    assert.equal(result.exitCode, 0, describeSipp(result));
    // SIPp requires a 200 to each NOTIFY: in-dialog requests for a dialog ferry sip did not know would get 481.
    // The first NOTIFY may come before createUAC resolves (srf answers it 200 itself); the last reaches the listener.
    assert.equal(notifies.at(-1), 'terminated;reason=timeout', 'the NOTIFY terminated reached the dialog in srf');
    // ferry sip ends the dialog once the app answered the NOTIFY terminated, as drachtio-server does. drachtio-srf
    // 5.x keeps its own subscriber-side Dialog: it looks the subscription up by the NOTIFY's To URI, which is
    // the subscriber's, not the notifier's it was stored under, so it emits no 'destroy' here (on either server).
    await waitFor(() => engine.engine.stats().dialogs === 0, 'the dialog to end in ferry sip');
    assert.equal(destroyed, false, "drachtio-srf's subscriber Dialog is not destroyed by the NOTIFY (see above)");
    (app.srf as unknown as { removeDialog(d: unknown): void }).removeDialog(dlg);
    await waitFor(() => {
      const s = engine.engine.stats();
      return s.clientTransactions === 0 && s.serverTransactions === 0 && s.pending === 0;
    }, 'the transactions to end');
    assert.equal(srfDialogCount(), 0, 'no dialog left in srf');
  });
});
