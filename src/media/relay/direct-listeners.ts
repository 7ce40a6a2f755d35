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

  constructor(
    private readonly emitter: EventEmitter,
    private readonly event: string,
  ) {
    const onListenersChanged = (name: string | symbol): void => {
      if (name === event) this.stale = true;
    };
    emitter.on('newListener', onListenersChanged);
    emitter.on('removeListener', onListenersChanged);
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
