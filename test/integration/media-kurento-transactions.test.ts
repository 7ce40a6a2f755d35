import '../helpers/kurento-client-transactions'; // first: lets kurento-client's explicit transactions run on Node 20
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { call, connectKurento, type KurentoClientLike, type KurentoObjectLike } from '../helpers/media-kurento';
import { MediaServerProcess, type MediaStats } from '../helpers/media-server-process';
import { RawRpc } from '../helpers/media-raw-rpc';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const kurento = require('kurento-client') as (url: string, options?: Record<string, unknown>) => Promise<KurentoClientLike>;

/**
 * kurento-client's transactional API against a real `bin/ferry media` process (ferry advertises
 * `transactions` in getInfo, as KMS does):
 * - explicit: `pipeline.beginTransaction()` / `client.beginTransaction()`, several operations (create,
 *   setName, addTag) queued on the transaction, nothing on the server until `commit()`, then all of it in
 *   one `transaction` request (a failing operation proves it: the ones after it are "not executed");
 * - a failing operation inside a transaction: answered as KMS does — the transaction request succeeds,
 *   the entries stop at the failing one, which carries its Kurento error; no rollback, and nothing is
 *   leaked: what was created is known to the client and released with its pipeline;
 * - implicit (`useImplicitTransactions`): operations issued in one tick travel as one transaction
 *   (connects included), media then flows;
 * - malformed references (a "newref:K" to no earlier operation) are refused whole with 40008 before
 *   anything runs; "newref:K" as an object id outside a transaction is 40109.
 * kurento-client 7.3.0 limits (client bugs, no server can change them): `connect(transaction, sink)` is
 * sent outside the transaction (kurento-client-core re-reads its `transaction` argument after shifting
 * it), and a setter called with a transaction needs an explicit callback (the helper `call` passes one).
 */
interface ElementStats {
  id: string;
  type: string;
}

function elementIds(stats: MediaStats): string[] {
  return ((stats.pipelinesDetail ?? []) as { elements: ElementStats[] }[]).flatMap((p) => p.elements.map((e) => e.id));
}

/** The promise kurento-client gives for an operation queued on a transaction (settled at commit). */
function queued<T>(obj: KurentoObjectLike, method: string, ...args: unknown[]): Promise<T> {
  const p = call<T>(obj, method, ...args);
  p.catch(() => undefined); // observed later; an early rejection must not be an unhandled one
  return p;
}

describe('media: kurento-client transactions (bin/ferry media)', { timeout: 60_000 }, () => {
  let server: MediaServerProcess;
  let client: KurentoClientLike;
  const closers: (() => unknown)[] = [];

  before(async () => {
    server = await MediaServerProcess.start();
    client = await connectKurento(server.url);
  });
  after(async () => {
    for (const c of closers.splice(0)) await Promise.resolve(c()).catch(() => undefined);
    client?.close();
    await server?.stop();
  });

  async function assertServerEmpty(): Promise<void> {
    await server.waitForStats((s) => s.pipelines === 0 && s.elements === 0 && s.boundPorts === 0, 5000);
  }

  test('getInfo advertises transactions', async () => {
    const manager = await client.getServerManager();
    const info = await call<{ capabilities: string[] }>(manager, 'getInfo');
    assert.ok(info.capabilities.includes('transactions'));
  });

  test('pipeline.beginTransaction(): creates, setName and addTag committed together; nothing exists before commit', async () => {
    const pipeline = await client.create('MediaPipeline');
    const tx = (pipeline.beginTransaction as () => { commit(): Promise<unknown> })();
    const create = pipeline.create as (...a: unknown[]) => KurentoObjectLike & PromiseLike<KurentoObjectLike>;
    const a = create.call(pipeline, tx, 'RtpEndpoint');
    const b = create.call(pipeline, tx, 'RtpEndpoint');
    const pass = create.call(pipeline, tx, 'PassThrough');
    const named = queued(a, 'setName', tx, 'phone-a');
    const tagged = queued(b, 'addTag', tx, 'leg', 'b');
    assert.equal((await server.stats()).elements, 0, 'queued, not sent');
    await tx.commit();
    await Promise.all([named, tagged]);
    for (const e of [a, b, pass]) assert.match(String(e.id), /_kurento\.(RtpEndpoint|PassThrough)$/);
    assert.deepEqual(elementIds(await server.stats()).sort(), [a.id, b.id, pass.id].sort());
    assert.equal(await call(a, 'getName'), 'phone-a');
    assert.equal(await call(b, 'getTag', 'leg'), 'b');
    // the committed elements are ordinary ones: media through them
    const pa = await RtpTestPeer.open();
    const pb = await RtpTestPeer.open();
    closers.push(() => pa.close(), () => pb.close());
    pa.useRemoteSdp(await call<string>(a, 'processOffer', pa.sdp()));
    pb.useRemoteSdp(await call<string>(b, 'processOffer', pb.sdp()));
    await call(a, 'connect', pass);
    await call(pass, 'connect', b);
    for (let i = 0; i < 5; i++) pa.send(0, Buffer.alloc(160, i));
    await pb.waitFor(() => pb.received.length >= 5, 5000, 'audio through the elements made in the transaction');
    await pipeline.release();
    await assertServerEmpty();
  });

  test('client.beginTransaction(): a pipeline and its elements in one transaction (newref substitution)', async () => {
    const tx = ((client as unknown as { beginTransaction(): { commit(): Promise<unknown> } }).beginTransaction)();
    const create = client.create as unknown as (...a: unknown[]) => KurentoObjectLike;
    const pipeline = create.call(client, tx, 'MediaPipeline');
    const createIn = pipeline.create as (...a: unknown[]) => KurentoObjectLike;
    const a = createIn.call(pipeline, tx, 'RtpEndpoint');
    const pass = createIn.call(pipeline, tx, 'PassThrough');
    await tx.commit();
    assert.match(String(pipeline.id), /_kurento\.MediaPipeline$/);
    assert.ok(String(a.id).startsWith(`${pipeline.id}/`), 'the element was created in the pipeline of operation 0');
    assert.ok(String(pass.id).startsWith(`${pipeline.id}/`));
    assert.deepEqual(elementIds(await server.stats()).sort(), [a.id, pass.id].sort());
    await pipeline.release();
    await assertServerEmpty();
  });

  test('a failing operation inside a transaction: entries stop at it with its Kurento error, the rest is "not executed", nothing leaks', async () => {
    const pipeline = await client.create('MediaPipeline');
    const tx = (pipeline.beginTransaction as () => { commit(): Promise<unknown> })();
    const create = pipeline.create as (...a: unknown[]) => KurentoObjectLike;
    const a = create.call(pipeline, tx, 'RtpEndpoint');
    const named = queued(a, 'setName', tx, 'kept');
    const failing = queued(a, 'getTag', tx, 'no-such-tag');
    const b = create.call(pipeline, tx, 'RtpEndpoint');
    const afterFailure = queued(a, 'addTag', tx, 'never', 'set');
    await tx.commit(); // as with KMS: the transaction request itself succeeds
    await named;
    await assert.rejects(failing, (e: { code?: number; message?: string }) => {
      assert.equal(e.code, 40110, String(e.message));
      return true;
    });
    await assert.rejects(afterFailure, /not executed in the server/);
    assert.equal(b.id, undefined, 'the create after the failure was not executed');
    assert.equal(await call(a, 'getName'), 'kept', 'no rollback: operations before the failure stay done');
    await assert.rejects(call(a, 'getTag', 'never'), (e: { code?: number }) => e.code === 40110, 'the operation after the failure never ran');
    assert.deepEqual(elementIds(await server.stats()), [a.id], 'exactly what the client was told about exists');
    await pipeline.release();
    await assertServerEmpty();
  });

  test('implicit transactions (useImplicitTransactions): operations of one tick travel together, connects included; media flows', async () => {
    const implicit = await kurento(server.url, { failAfter: 1, useImplicitTransactions: true, request_timeout: 10000, response_timeout: 200, duplicates_timeout: 200 });
    implicit.on('error', () => undefined);
    closers.push(() => implicit.close());
    const pipeline = await implicit.create('MediaPipeline');
    const [a, b] = await Promise.all([call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint'), call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint')]);
    // one tick: setName, a failing getTag, addTag -> one transaction: the addTag after the failure is not executed
    const results = await Promise.allSettled([call(a, 'setName', 'a'), call(a, 'getTag', 'missing'), call(a, 'addTag', 'k', 'v')]);
    assert.equal(results[0]!.status, 'fulfilled');
    assert.equal(results[1]!.status === 'rejected' && (results[1]!.reason as { code?: number }).code, 40110);
    assert.match(String(results[2]!.status === 'rejected' && (results[2]!.reason as Error).message), /not executed in the server/);
    assert.deepEqual(await call(a, 'getTags'), [], 'the addTag after the failing operation never ran');
    // one tick: both connects
    await Promise.all([call(a, 'connect', b), call(b, 'connect', a)]);
    const pa = await RtpTestPeer.open();
    const pb = await RtpTestPeer.open();
    closers.push(() => pa.close(), () => pb.close());
    const [sa, sb] = await Promise.all([call<string>(a, 'processOffer', pa.sdp()), call<string>(b, 'processOffer', pb.sdp())]);
    pa.useRemoteSdp(sa);
    pb.useRemoteSdp(sb);
    for (let i = 0; i < 5; i++) {
      pa.send(0, Buffer.alloc(160, i));
      pb.send(0, Buffer.alloc(160, 10 + i));
    }
    await pb.waitFor(() => pb.received.length >= 5, 5000, 'A -> B');
    await pa.waitFor(() => pa.received.length >= 5, 5000, 'B -> A');
    await pipeline.release();
    await assertServerEmpty();
  });

  test('malformed references: "newref:K" to no earlier operation is 40008 for the whole request and nothing runs; "newref:0" outside a transaction is 40109', async () => {
    const r = await RawRpc.open(server.url);
    closers.push(() => r.close());
    const p = await r.ok('create', { type: 'MediaPipeline' });
    const ops = (ref: string) => [
      { jsonrpc: '2.0', id: 0, method: 'create', params: { type: 'RtpEndpoint', constructorParams: { mediaPipeline: p.value } } },
      { jsonrpc: '2.0', id: 1, method: 'invoke', params: { object: ref, operation: 'getName' } },
    ];
    for (const ref of ['newref:1', 'newref:7', 'newref:x']) {
      const reply = await r.request('transaction', { operations: ops(ref) });
      assert.equal(reply.error?.code, 40008, `${ref}: ${JSON.stringify(reply)}`);
    }
    assert.equal((await server.stats()).elements, 0, 'the create before the bad reference never ran');
    const good = await r.ok('transaction', { operations: ops('newref:0') });
    const entries = good.value as { result?: { value: unknown } }[];
    assert.equal(entries.length, 2, 'positive control: a resolvable reference runs both');
    assert.ok(String(entries[1]!.result?.value).endsWith('_kurento.RtpEndpoint'));
    const outside = await r.request('invoke', { object: 'newref:0', operation: 'getName' });
    assert.equal(outside.error?.code, 40109);
    await r.ok('release', { object: p.value });
    await assertServerEmpty();
  });
});
