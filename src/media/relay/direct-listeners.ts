import type { EventEmitter } from 'node:events';

/**
 * Calls one event's listeners directly, as `emit(event, packet)` would (each in order, `this` = the emitter,
 * once() wrappers included, a throw propagates), without emit's argument array per call. The list is read
 * from the emitter again after any listener of that event is added or removed. For per-packet events
 * ('rtp' of the media legs).
 */
export class DirectListeners<T> {
  private list: ReadonlyArray<(value: T) => void> = [];
  private stale = true;
  /** Listeners of the event now: a caller with a direct handler skips `call` while this is 0. */
  size = 0;

  constructor(
    private readonly emitter: EventEmitter,
    private readonly event: string,
  ) {
    emitter.on('newListener', (name: string | symbol) => {
      if (name !== event) return;
      this.stale = true;
      this.size++;
    });
    emitter.on('removeListener', (name: string | symbol) => {
      if (name !== event) return;
      this.stale = true;
      this.size--;
    });
  }

  call(value: T): void {
    if (this.stale) {
      this.list = this.emitter.rawListeners(this.event) as Array<(value: T) => void>;
      this.stale = false;
    }
    const list = this.list;
    const n = list.length;
    if (n === 1) list[0]!.call(this.emitter, value);
    else for (let i = 0; i < n; i++) list[i]!.call(this.emitter, value);
  }
}
