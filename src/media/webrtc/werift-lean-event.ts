/**
 * werift's `Event` (werift/lib/common/src/event.js) with its methods on the prototype. werift's own class defines
 * ten arrow functions per instance (execute, complete, error, allUnsubscribe, subscribe, queuingSubscribe, once,
 * watch, asPromise, onerror) and a record of two arrays; a WebRTC call makes ~60 Events, ~45 KB that live as long
 * as the call. This class keeps werift's behaviour statement for statement: the same order of calls, the async
 * promiseStack run after the synchronous subscribers, the same quirks (`queuingSubscribe`'s unSubscribe filters
 * `stack`, `error` unsubscribes without ending). What differs is unobservable through the methods: they are on
 * the prototype (a method taken off an instance and called detached has no `this`; werift never does that, as
 * test/unit/werift-compat.test.ts checks in its sources, and `returnTrigger`/`returnListener` hand out bound
 * functions), werift's `event` record {stack, promiseStack, eventId} is three fields, an empty list is one shared
 * frozen array, and the async run is not started when there is no queuing subscriber. `werift-internals.ts`
 * installs it (`useLeanWeriftEvent`); test/unit/werift-lean-event.test.ts runs werift's class and this one side
 * by side.
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

/**
 * The empty subscriber list every event starts with (and returns to on allUnsubscribe): werift gives each event
 * two empty arrays; the first subscriber replaces it with a one-element array (a push onto an empty array
 * would reserve 17 slots). Frozen, so nothing can add to the shared one.
 */
const NO_ITEMS: readonly never[] = Object.freeze([]);

/**
 * `list` with `item` appended. An empty list (the shared frozen one, or one emptied by unsubscribing) is
 * never being iterated, so a fresh one-element array is indistinguishable from a push.
 */
function withItem<I>(list: I[], item: I): I[] {
  if (list.length === 0) return [item];
  list.push(item);
  return list;
}

export class LeanEvent<T extends unknown[]> {
  /** werift's `event.stack`: the synchronous subscribers (an array only ever grows by push; removal makes a new one) */
  private stack: Item<T>[] = NO_ITEMS as never;
  /** werift's `event.promiseStack`: the queuing subscribers, awaited one after another */
  private promiseStack: Item<T>[] = NO_ITEMS as never;
  /** werift's `event.eventId` */
  private eventId = 0;
  ended = false;
  onended?: () => void = undefined;
  onerror: ErrorCb = ignoreError;

  execute(...args: T): void {
    if (this.ended) {
      return;
    }
    for (const item of this.stack) {
      (item.execute as Execute<T>)(...args);
    }
    // werift starts this async run on every execute; with no queuing subscriber (read here, as werift reads it
    // at the run's start) it would do nothing
    if (this.promiseStack.length === 0) return;
    (async () => {
      for (const item of this.promiseStack) {
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
    for (const item of this.stack) {
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
    for (const item of this.stack) {
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
    this.stack = NO_ITEMS as never;
    this.promiseStack = NO_ITEMS as never;
    this.eventId = 0;
  }

  subscribe(execute: Execute<T>, complete?: Complete, error?: ErrorCb): Subscription {
    const id = this.eventId++;
    this.stack = withItem(this.stack, { execute, id, complete, error });
    return this.subscription(id);
  }

  queuingSubscribe(execute: PromiseExecute<T>, complete?: Complete, error?: ErrorCb): Subscription {
    if (this.ended) throw new Error('event completed');
    const id = this.eventId++;
    this.promiseStack = withItem(this.promiseStack, { execute, id, complete, error });
    // as werift's: this unSubscribe filters the synchronous stack (where the item is not)
    return this.subscription(id);
  }

  private subscription(id: number): Subscription {
    const unSubscribe = (): void => {
      this.stack = this.stack.filter((item) => item.id !== id && item);
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
    return this.stack.length;
  }
}
