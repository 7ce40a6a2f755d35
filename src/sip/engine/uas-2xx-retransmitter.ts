import type { Clock, TimerHandle } from '../../common/clock';
import type { Dialog } from '../dialog/dialog';
import type { TimerConfig } from '../transaction/timer-config';
import type { Flow } from '../transport/flow';

/**
 * RFC 3261 §13.3.1.4: the UAS core retransmits its 2xx to an INVITE (T1, doubling up to T2; not on
 * reliable transports) until the ACK arrives, and gives up after 64*T1 (`onNoAck`: the engine BYEs).
 */
export function start2xxRetransmission(clock: Clock, timers: TimerConfig, dialog: Dialog, data: Buffer, flow: Flow, cseq: number,
  onNoAck: () => void): void {
  dialog.pending2xx?.cancel();
  let interval = timers.t1;
  let handle: TimerHandle | undefined;
  const giveUp = clock.setTimeout(() => {
    handle?.cancel();
    dialog.pending2xx = undefined;
    onNoAck();
  }, 64 * timers.t1);
  const arm = (): void => {
    if (flow.reliable) return;
    handle = clock.setTimeout(() => {
      flow.send(data);
      interval = Math.min(2 * interval, timers.t2);
      arm();
    }, interval);
  };
  arm();
  dialog.pending2xx = {
    cseq,
    timer: giveUp,
    cancel: () => { giveUp.cancel(); handle?.cancel(); },
  };
}
