import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type net from 'node:net';
import { AppRouter } from '../../src/sip/control/app-router';
import { AppConnection } from '../../src/sip/control/app-connection';

function app(id: string, routes: string[]): AppConnection {
  const a = new AppConnection(id, { write: () => true, destroy: () => {} } as unknown as net.Socket);
  a.authenticated = true;
  for (const r of routes) a.routes.add(r);
  return a;
}

describe('AppRouter: new requests are dealt round-robin per verb', () => {
  test('each verb has its own rotation among the apps that routed it', { timeout: 30_000 }, () => {
    const r = new AppRouter();
    const a = app('a', ['invite', 'register']);
    const b = app('b', ['invite']);
    const c = app('c', ['invite', 'bye']);
    for (const x of [a, b, c]) r.add(x);
    assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => r.next('INVITE')?.id), ['a', 'b', 'c', 'a', 'b', 'c']);
    assert.deepEqual([1, 2].map(() => r.next('register')?.id), ['a', 'a']);
    assert.equal(r.next('bye')?.id, 'c');
    assert.equal(r.next('options'), undefined);
  });

  test('closed, removed or unauthenticated apps are skipped; find() only returns live apps', { timeout: 30_000 }, () => {
    const r = new AppRouter();
    const a = app('a', ['invite']);
    const b = app('b', ['invite']);
    const c = app('c', ['invite']);
    c.authenticated = false;
    for (const x of [a, b, c]) r.add(x);
    b.closed = true;
    assert.deepEqual([1, 2, 3].map(() => r.next('invite')?.id), ['a', 'a', 'a']);
    assert.equal(r.find('b'), undefined);
    assert.equal(r.find('a'), a);
    r.remove(a);
    assert.equal(r.next('invite'), undefined);
    assert.equal(r.next('invite', a), undefined);
  });
});
