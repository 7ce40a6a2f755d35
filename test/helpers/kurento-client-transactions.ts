/**
 * Import this module BEFORE anything that loads kurento-client (test/helpers/media-kurento.ts), in a
 * test file of its own, to use kurento-client 7.3.0's explicit transactions (`beginTransaction()`,
 * `transaction(fn)`) on Node 20.
 *
 * kurento-client's `Transaction` extends Node's `domain.Domain` the pre-ES6 way (`Domain.super_.call(this)`),
 * and on Node 20 `Domain` is a class, so `beginTransaction()` throws "Class constructor Domain cannot be
 * invoked without 'new'" before anything is sent. With `domain.Domain` hidden while kurento-client loads,
 * kurento-client falls back to its own `FakeDomain` (the code path it uses in browsers): the client's
 * code is unmodified, only the choice between its two paths changes. Only the process that imports this
 * is affected (node --test runs each file in its own process).
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const domain = require('node:domain') as { Domain?: unknown };
domain.Domain = undefined;

export {};
