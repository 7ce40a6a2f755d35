/**
 * werift's `Event` (werift/lib/common/src/event.js) with its methods on the prototype. werift's own class defines
 * ten arrow functions per instance (execute, complete, error, allUnsubscribe, subscribe, queuingSubscribe, once,
 * watch, asPromise, onerror); a WebRTC call makes ~60 Events, ~45 KB of closures that live as long as the call.
 * This class keeps werift's behaviour statement for statement (the same `event` record of stack, promiseStack
 * and eventId, the same order of calls, the async promiseStack run after the synchronous subscribers, the same
 * quirks: `queuingSubscribe`'s unSubscribe filters `stack`, `error` unsubscribes without ending) and differs only
 * where werift's methods are looked up: on the prototype, so a method taken off an instance and called
 * detached has no `this` (werift never does that: test/unit/werift-compat.test.ts checks its sources;
 * `returnTrigger`/`returnListener` hand out bound functions). `werift-internals.ts` installs it
 * (`useLeanWeriftEvent`); test/unit/werift-lean-event.test.ts runs werift's class and this one side by side.
 */

type Execute<T extends unknown[]> = (...args: T) => void;
type PromiseExecute<T extends unknown[]> = (...args: T) => Promise<void>;
type Complete = () => void;
type ErrorCb = (e: unknown) => void;

interface Item<T extends unknown[]> {
  execute: Execute<T> | PromiseExecute<T>;
  id: number;
  complete?: Complete;
  error?: ErrorCb;
}

interface EventRecord<T extends unknown[]> {
  stack: Item<T>[];
  promiseStack: Item<T>[];
  eventId: number;
}

/** The disposer list werift's `subscribe(...).disposer` pushes into (werift's `EventDisposer`). */
interface DisposerList {
  push(disposer: () => void): void;
}

export interface Subscription {
  unSubscribe: () => void;
  disposer: (disposer: DisposerList) => void;
}

/** One no-op shared by every instance (werift's default `onerror` is a per-instance `(e) => {}`). */
const ignoreError: ErrorCb = () => undefined;

export class LeanEvent<T extends unknown[]> {
  event: EventRecord<T> = { stack: [], promiseStack: [], eventId: 0 };
  ended = false;
  onended?: () => void = undefined;
  onerror: ErrorCb = ignoreError;

  execute(...args: T): void {
    if (this.ended) {
      return;
    }
    const record = this.event;
    for (const item of record.stack) {
      (item.execute as Execute<T>)(...args);
    }
    (async () => {
      for (const item of this.event.promiseStack) {
        await item.execute(...args);
      }
    })().catch((e: unknown) => {
      this.onerror(e);
    });
  }

  complete(): void {
    if (this.ended) {
      return;
    }
    const record = this.event;
    for (const item of record.stack) {
      if (item.complete) {
        item.complete();
      }
    }
    this.allUnsubscribe();
    this.ended = true;
    if (this.onended) {
      this.onended();
      this.onended = undefined;
    }
  }

  error(e: unknown): void {
    if (this.ended) {
      return;
    }
    const record = this.event;
    for (const item of record.stack) {
      if (item.error) {
        item.error(e);
      }
    }
    this.allUnsubscribe();
  }

  allUnsubscribe(): void {
    if (this.ended) {
      return;
    }
    this.event = { stack: [], promiseStack: [], eventId: 0 };
  }

  subscribe(execute: Execute<T>, complete?: Complete, error?: ErrorCb): Subscription {
    const record = this.event;
    const id = record.eventId;
    record.stack.push({ execute, id, complete, error });
    record.eventId++;
    const unSubscribe = (): void => {
      const current = this.event;
      current.stack = current.stack.filter((item) => item.id !== id && item);
    };
    const disposer = (list: DisposerList): void => {
      list.push(unSubscribe);
    };
    return { unSubscribe, disposer };
  }

  queuingSubscribe(execute: PromiseExecute<T>, complete?: Complete, error?: ErrorCb): Subscription {
    if (this.ended) throw new Error('event completed');
    const record = this.event;
    const id = record.eventId;
    record.promiseStack.push({ execute, id, complete, error });
    record.eventId++;
    // as werift: this unSubscribe filters the synchronous stack (where the item is not)
    const unSubscribe = (): void => {
      const current = this.event;
      current.stack = current.stack.filter((item) => item.id !== id && item);
    };
    const disposer = (list: DisposerList): void => {
      list.push(unSubscribe);
    };
    return { unSubscribe, disposer };
  }

  once(execute: Execute<T>, complete?: Complete, error?: ErrorCb): void {
    const off = this.subscribe(
      (...args: T) => {
        off.unSubscribe();
        execute(...args);
      },
      complete,
      error,
    );
  }

  watch(cb: (...args: T) => boolean, timeLimit?: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const timeout =
        timeLimit &&
        setTimeout(() => {
          reject('Event watch timeout');
        }, timeLimit);
      const { unSubscribe } = this.subscribe((...args: T) => {
        const done = cb(...args);
        if (done) {
          if (timeout) clearTimeout(timeout);
          unSubscribe();
          resolve(args);
        }
      });
    });
  }

  asPromise(timeLimit?: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const timeout =
        timeLimit &&
        setTimeout(() => {
          reject('Event asPromise timeout');
        }, timeLimit);
      this.once(
        (...args: T) => {
          if (timeout) clearTimeout(timeout);
          resolve(args);
        },
        () => {
          if (timeout) clearTimeout(timeout);
          resolve([] as unknown as T);
        },
        (err) => {
          if (timeout) clearTimeout(timeout);
          reject(err);
        },
      );
    });
  }

  pipe(e: LeanEvent<T>): void {
    this.subscribe((...args: T) => {
      e.execute(...args);
    });
  }

  get returnTrigger(): { execute: Execute<T>; error: ErrorCb; complete: Complete } {
    return { execute: this.execute.bind(this), error: this.error.bind(this), complete: this.complete.bind(this) };
  }

  get returnListener(): {
    subscribe: LeanEvent<T>['subscribe'];
    once: LeanEvent<T>['once'];
    asPromise: LeanEvent<T>['asPromise'];
  } {
    return { subscribe: this.subscribe.bind(this), once: this.once.bind(this), asPromise: this.asPromise.bind(this) };
  }

  get length(): number {
    const record = this.event;
    return record.stack.length;
  }
}
