import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { LeanEvent } from '../../src/media/webrtc/werift-lean-event';

/**
 * ferry's LeanEvent (src/media/webrtc/werift-lean-event.ts) replaces werift's `Event` in ferry media: it must
 * behave as werift's own class does. Every scenario below runs on werift's installed class and on LeanEvent and
 * records what a user of the event can observe (callbacks, their arguments and order against the microtask
 * queue, promise outcomes, thrown errors, `length`, `ended`); the two records must be equal. A positive control
 * runs a class with one deliberate difference and must be told apart.
 */

type AnyEvent = {
  execute(...args: unknown[]): void;
  complete(): void;
  error(e: unknown): void;
  allUnsubscribe(): void;
  subscribe(execute: (...a: unknown[]) => void, complete?: () => void, error?: (e: unknown) => void): { unSubscribe(): void; disposer(d: { push(f: () => void): void }): void };
  queuingSubscribe(execute: (...a: unknown[]) => Promise<void>, complete?: () => void, error?: (e: unknown) => void): { unSubscribe(): void; disposer(d: { push(f: () => void): void }): void };
  once(execute: (...a: unknown[]) => void, complete?: () => void, error?: (e: unknown) => void): void;
  watch(cb: (...a: unknown[]) => boolean, timeLimit?: number): Promise<unknown[]>;
  asPromise(timeLimit?: number): Promise<unknown[]>;
  pipe(e: AnyEvent): void;
  readonly returnTrigger: { execute(...a: unknown[]): void; error(e: unknown): void; complete(): void };
  readonly returnListener: { subscribe: AnyEvent['subscribe']; once: AnyEvent['once']; asPromise: AnyEvent['asPromise'] };
  readonly length: number;
  ended: boolean;
  onended?: () => void;
  onerror: (e: unknown) => void;
};
type EventClass = new () => AnyEvent;

/** werift's own module, next to werift's resolved entry point (lib/webrtc/src/index.js → lib/common/src/event.js). */
function weriftEventModule(): { Event: EventClass; EventDisposer: new () => { push(f: () => void): void; dispose(): void } } {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(path.join(path.dirname(require.resolve('werift')), '../../common/src/event.js'));
}
const WeriftEvent = weriftEventModule().Event;
const { EventDisposer } = weriftEventModule();

/** Lets every queued microtask and the promiseStack's awaits run (no timer: setImmediate runs after them). */
const settle = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));

type Scenario = (E: EventClass, log: unknown[]) => Promise<void>;

const scenarios: Record<string, Scenario> = {
  'subscribe, execute, unSubscribe, length, eventId order': async (E, log) => {
    const e = new E();
    const a = e.subscribe((...x) => log.push(['a', ...x]));
    e.subscribe((...x) => log.push(['b', ...x]));
    log.push(['length', e.length]);
    e.execute(1, 'two', { three: 3 });
    a.unSubscribe();
    a.unSubscribe();
    log.push(['length', e.length]);
    e.execute(4);
    await settle();
  },
  'a subscriber that unsubscribes another or subscribes a new one while executing': async (E, log) => {
    const e = new E();
    let offB: { unSubscribe(): void } | undefined;
    e.subscribe(() => {
      log.push('a');
      offB?.unSubscribe();
      e.subscribe(() => log.push('late'));
    });
    offB = e.subscribe(() => log.push('b'));
    e.execute();
    log.push('--');
    e.execute();
    log.push(['length', e.length]);
    await settle();
  },
  'a lone subscriber that subscribes another while executing, and one that first unsubscribes itself': async (E, log) => {
    const e = new E();
    let added = 0;
    e.subscribe((x) => {
      log.push(['first', x]);
      if (added++ < 2) e.subscribe((y) => log.push(['added', y]));
    });
    e.execute(1);
    e.execute(2);
    const f = new E();
    const off = f.subscribe((x) => {
      log.push(['self-removing', x]);
      off.unSubscribe();
      f.subscribe((y) => log.push(['replacement', y]));
    });
    f.execute(1);
    f.execute(2);
    log.push(['lengths', e.length, f.length]);
    await settle();
  },
  'once: runs once, keeps complete and error': async (E, log) => {
    const e = new E();
    e.once((...x) => log.push(['once', ...x]), () => log.push('once-complete'), (err) => log.push(['once-error', err]));
    e.execute(1);
    e.execute(2);
    log.push(['length', e.length]);
    const f = new E();
    f.once(() => log.push('f'), () => log.push('f-complete'));
    f.complete();
    await settle();
  },
  'complete: completes subscribers, ends, onended once, later calls do nothing': async (E, log) => {
    const e = new E();
    e.subscribe((x) => log.push(['s', x]), () => log.push('s-complete'));
    e.subscribe(() => log.push('t'));
    e.onended = () => log.push('onended');
    e.complete();
    log.push(['ended', e.ended, 'length', e.length, 'onended', e.onended]);
    e.execute(1);
    e.complete();
    e.error('late');
    e.allUnsubscribe();
    e.subscribe(() => log.push('after-end'));
    log.push(['length', e.length]);
    e.execute(2);
    try {
      e.queuingSubscribe(async () => undefined);
      log.push('no throw');
    } catch (err) {
      log.push(['throws', (err as Error).message]);
    }
    await settle();
  },
  'error: errors subscribers and unsubscribes them without ending': async (E, log) => {
    const e = new E();
    e.subscribe(() => log.push('s'), undefined, (err) => log.push(['s-error', err]));
    e.subscribe(() => log.push('t'));
    e.error('boom');
    log.push(['ended', e.ended, 'length', e.length]);
    e.execute();
    e.subscribe((x) => log.push(['again', x]));
    e.execute(7);
    await settle();
  },
  'queuingSubscribe: awaited one after another after the synchronous subscribers; a rejection goes to onerror': async (E, log) => {
    const e = new E();
    const gates: Array<() => void> = [];
    e.queuingSubscribe(async (x) => {
      log.push(['q1-start', x]);
      await new Promise<void>((resolve) => gates.push(resolve));
      log.push(['q1-end', x]);
    });
    e.queuingSubscribe(async (x) => {
      log.push(['q2', x]);
      if (x === 'bad') throw new Error('rejected');
    });
    e.subscribe((x) => log.push(['sync', x]));
    e.onerror = (err) => log.push(['onerror', (err as Error).message]);
    e.execute('one');
    log.push('after execute one');
    e.execute('bad');
    log.push('after execute bad');
    await settle();
    log.push(['gates', gates.length]);
    for (const g of gates.splice(0)) g();
    await settle();
    await settle();
    const off = e.queuingSubscribe(async () => {
      log.push('q3');
    });
    off.unSubscribe();
    log.push(['length after queuing unSubscribe', e.length]);
    e.execute('three');
    await settle();
    for (const g of gates.splice(0)) g();
    await settle();
    await settle();
  },
  'allUnsubscribe inside execute: the promiseStack run reads the new record': async (E, log) => {
    const e = new E();
    e.queuingSubscribe(async () => {
      log.push('queued ran');
    });
    e.subscribe(() => {
      log.push('sync');
      e.allUnsubscribe();
    });
    e.execute();
    log.push(['length', e.length]);
    await settle();
    e.execute();
    await settle();
  },
  'a throwing subscriber throws out of execute, before the promiseStack runs': async (E, log) => {
    const e = new E();
    e.queuingSubscribe(async () => {
      log.push('queued');
    });
    e.subscribe(() => {
      throw new Error('sync throw');
    });
    try {
      e.execute();
    } catch (err) {
      log.push(['thrown', (err as Error).message]);
    }
    await settle();
  },
  'watch: resolves with the arguments that satisfied it; a time limit rejects': async (E, log) => {
    const e = new E();
    const p = e.watch((x) => x === 3).then((args) => log.push(['watch', args]));
    e.execute(1);
    e.execute(3);
    e.execute(3);
    await p;
    log.push(['length', e.length]);
    const f = new E();
    await f.watch(() => true, 5).then(
      () => log.push('resolved'),
      (err) => log.push(['rejected', err]),
    );
  },
  'asPromise: arguments, complete gives [], error rejects, a time limit rejects': async (E, log) => {
    const a = new E();
    const pa = a.asPromise();
    a.execute('x', 2);
    log.push(['a', await pa, a.length]);
    const b = new E();
    const pb = b.asPromise(1000);
    b.complete();
    log.push(['b', await pb]);
    const c = new E();
    const pc = c.asPromise();
    c.error('bad');
    await pc.then(
      (v) => log.push(['c resolved', v]),
      (err) => log.push(['c rejected', err]),
    );
    const d = new E();
    await d.asPromise(5).then(
      (v) => log.push(['d resolved', v]),
      (err) => log.push(['d rejected', err]),
    );
  },
  'pipe, disposer, returnTrigger and returnListener used detached': async (E, log) => {
    const src = new E();
    const dst = new E();
    dst.subscribe((...x) => log.push(['dst', ...x]));
    src.pipe(dst);
    src.execute(1, 2);
    const disposer = new EventDisposer();
    src.subscribe(() => log.push('disposable')).disposer(disposer);
    src.execute();
    disposer.dispose();
    src.execute();
    const { execute, complete } = src.returnTrigger;
    const { subscribe, once, asPromise } = src.returnListener;
    subscribe((x) => log.push(['via listener', x]));
    once((x) => log.push(['via once', x]));
    const p = asPromise();
    execute('t');
    log.push(['asPromise', await p]);
    complete();
    log.push(['ended', src.ended]);
    await settle();
  },
};

async function record(E: EventClass, scenario: Scenario): Promise<unknown[]> {
  const log: unknown[] = [];
  await scenario(E, log);
  return log;
}

describe('LeanEvent behaves as werift Event', { timeout: 20_000 }, () => {
  for (const [name, scenario] of Object.entries(scenarios)) {
    test(name, async () => {
      const theirs = await record(WeriftEvent, scenario);
      const ours = await record(LeanEvent as unknown as EventClass, scenario);
      assert.ok(theirs.length > 0, 'the scenario observed something');
      assert.deepEqual(ours, theirs);
    });
  }

  test('positive control: a class that differs in one quirk is told apart', async () => {
    class Tidier extends (LeanEvent as unknown as EventClass) {}
    // werift's queuingSubscribe unSubscribe leaves the queued item in place; a "fixed" one removes it
    (Tidier.prototype as unknown as { queuingSubscribe: AnyEvent['queuingSubscribe'] }).queuingSubscribe = function (this: { promiseStack: Array<{ id: number }>; eventId: number }, execute) {
      const id = this.eventId++;
      this.promiseStack = [...this.promiseStack, { execute, id } as never];
      const unSubscribe = (): void => {
        this.promiseStack = this.promiseStack.filter((i) => i.id !== id);
      };
      return { unSubscribe, disposer: (d: { push(f: () => void): void }) => d.push(unSubscribe) };
    };
    const scenario = scenarios['queuingSubscribe: awaited one after another after the synchronous subscribers; a rejection goes to onerror']!;
    assert.notDeepEqual(await record(Tidier, scenario), await record(WeriftEvent, scenario));
  });

  test('a LeanEvent holds no function of its own; a werift Event holds ten', { timeout: 5_000 }, () => {
    const ownFunctions = (o: object) => Object.values(o).filter((v) => typeof v === 'function').length;
    assert.equal(ownFunctions(new WeriftEvent()), 10, 'positive control: werift defines ten per-instance functions');
    assert.equal(ownFunctions(new LeanEvent()), 1, 'only onerror, the one no-op shared by every instance');
    assert.equal(new LeanEvent().onerror, new LeanEvent().onerror);
    assert.deepEqual(Object.keys(new LeanEvent()), ['stack', 'promiseStack', 'eventId', 'ended', 'onended', 'onerror']);
  });
});
