import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeG711, MULAW_TO_LINEAR } from '../../src/media/media-files/g711';
import { call, connectKurento, type KurentoClientLike, type KurentoObjectLike } from '../helpers/media-kurento';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';
import { MediaServerProcess, type MediaStats } from '../helpers/media-server-process';

/**
 * Dispatcher and DispatcherOneToMany driven by the unmodified kurento-client against a real
 * `bin/ferry media`: RTP phones on real sockets, each behind an RtpEndpoint connected both ways to a
 * HubPort, send numbered payloads; what each phone receives is counted and compared byte for byte
 * (converted to A-law for the phone that negotiated only PCMA), and what did not arrive is checked on the
 * server's own per-endpoint counters once the packets that did arrive are in. Dispatcher: A reaches only
 * the port connected to it, a second sink port too, a port moved to another source no longer hears A,
 * the other direction is its own connect; DispatcherOneToMany: the source reaches every port (its own
 * included, as KMS), a port created later too, setSource switches, removeSource and the release of the
 * source port stop it; KMS's error codes for bad parameters; everything released, /stats back to zero.
 */

interface ElementStats {
  id: string;
  type: string;
  packetsToPeer: number;
  packetsFromPeer: number;
  [key: string]: unknown;
}

function elementOf(stats: MediaStats, id: string): ElementStats | undefined {
  return ((stats.pipelinesDetail ?? []) as { elements: ElementStats[] }[]).flatMap((p) => p.elements).find((e) => e.id === id);
}

interface Party {
  name: string;
  ep: KurentoObjectLike;
  port: KurentoObjectLike;
  peer: RtpTestPeer;
  law: 'mulaw' | 'alaw';
  flowOut: string[];
}

/** 20 ms payloads numbered `tag`/i: byte 0 the tag, byte 1 the number, then a pattern. */
function payloads(tag: number, n: number): Buffer[] {
  return Array.from({ length: n }, (_, i) => Buffer.from(Array.from({ length: 160 }, (_, j) => (j === 0 ? tag : j === 1 ? i : (tag * 7 + i * 3 + j) & 0xff))));
}

/** A µ-law payload as the A-law bytes of the same samples (what a phone that negotiated only PCMA gets). */
function toAlaw(p: Buffer): Buffer {
  const out = Buffer.alloc(p.length);
  encodeG711('alaw', Int16Array.from(p, (b) => MULAW_TO_LINEAR[b]!), 0, p.length, out, 0);
  return out;
}

describe('media: Dispatcher and DispatcherOneToMany (kurento-client, bin/ferry media)', { timeout: 90_000 }, () => {
  let server: MediaServerProcess;
  let client: KurentoClientLike;
  const peers: RtpTestPeer[] = [];

  before(async () => {
    server = await MediaServerProcess.start({ FERRY_MEDIA_MAX_ELEMENTS_PER_PIPELINE: '24' });
    client = await connectKurento(server.url);
  });
  after(async () => {
    client?.close();
    peers.forEach((p) => p.close());
    await server?.stop();
  });

  async function party(pipeline: KurentoObjectLike, hub: KurentoObjectLike, name: string, law: 'mulaw' | 'alaw' = 'mulaw'): Promise<Party> {
    const ep = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const peer = await RtpTestPeer.open();
    peers.push(peer);
    peer.useRemoteSdp(await call<string>(ep, 'processOffer', peer.sdp({ codecs: [law === 'alaw' ? [8, 'PCMA/8000'] : [0, 'PCMU/8000']] })));
    const port = await call<KurentoObjectLike>(hub, 'createHubPort');
    const flowOut: string[] = [];
    port.on('MediaFlowOutStateChanged', (d) => flowOut.push(String(d.state)));
    await call(port, 'addTag', 'party', name);
    await call(ep, 'connect', port);
    await call(port, 'connect', ep);
    return { name, ep, port, peer, law, flowOut };
  }

  /** Sends `sent` from `from`, waits until the server took them all and each of `to` received them, then checks who else got them. */
  async function deliver(from: Party, sent: Buffer[], to: Party[], all: Party[]): Promise<void> {
    const before = await server.stats();
    const toPeerBefore = new Map(all.map((p) => [p.name, elementOf(before, p.ep.id)!.packetsToPeer]));
    const fromBefore = elementOf(before, from.ep.id)!.packetsFromPeer;
    const counts = new Map(all.map((p) => [p.name, p.peer.received.length]));
    for (const p of sent) from.peer.send(from.law === 'alaw' ? 8 : 0, from.law === 'alaw' ? toAlaw(p) : p);
    await server.waitForStats((s) => elementOf(s, from.ep.id)!.packetsFromPeer >= fromBefore + sent.length, 5000);
    for (const p of to) {
      const want = sent.map((b) => (p.law === 'alaw' ? toAlaw(b) : b));
      await p.peer.waitFor(() => p.peer.received.length >= counts.get(p.name)! + sent.length, 5000, `${sent.length} packets at ${p.name}`);
      const got = p.peer.received.slice(counts.get(p.name)!);
      assert.equal(got.length, sent.length, `${p.name} received each packet once`);
      assert.deepEqual(got.map((r) => r.payload), want, `${p.name} received ${from.name}'s payloads byte for byte, in order`);
      assert.ok(got.every((r) => r.pt === (p.law === 'alaw' ? 8 : 0)), `${p.name} in its own payload type`);
    }
    const after = await server.stats();
    for (const p of all) {
      if (to.includes(p)) continue;
      assert.equal(elementOf(after, p.ep.id)!.packetsToPeer, toPeerBefore.get(p.name), `nothing of ${from.name}'s was sent to ${p.name}`);
      assert.equal(p.peer.received.length, counts.get(p.name), `${p.name} received nothing`);
    }
  }

  const code = (c: number, text?: RegExp) => (err: { code?: number; message?: string }) => err.code === c && (!text || text.test(String(err.message)));

  test('Dispatcher: A reaches only the port connected to it; a second sink port; a port moved to another source; the other direction; errors; release of the source port', async () => {
    const pipeline = await client.create('MediaPipeline');
    const dispatcher = await call<KurentoObjectLike>(pipeline, 'create', 'Dispatcher');
    const again = await client.getMediaobjectById(dispatcher.id);
    assert.equal(typeof again.connect, 'function', 'described as a Dispatcher: kurento-client builds one');
    assert.equal(typeof again.createHubPort, 'function', 'a Hub');
    const [a, b, c] = [await party(pipeline, dispatcher, 'A'), await party(pipeline, dispatcher, 'B'), await party(pipeline, dispatcher, 'C')];
    const all = [a, b, c];
    assert.deepEqual((await call<KurentoObjectLike[]>(dispatcher, 'getChildren')).map((o) => o.id), [a.port.id, b.port.id, c.port.id]);

    await deliver(a, payloads(1, 10), [], all); // routed nowhere: nobody hears A
    await call(dispatcher, 'connect', a.port, b.port);
    await deliver(a, payloads(2, 20), [b], all);
    await deliver(b, payloads(3, 10), [], all); // the other direction is not connected
    await call(dispatcher, 'connect', b.port, a.port);
    await deliver(b, payloads(4, 10), [a], all);
    await call(dispatcher, 'connect', a.port, c.port); // A feeds C as well
    await deliver(a, payloads(5, 10), [b, c], all);
    await call(dispatcher, 'connect', c.port, b.port); // B moves to C: A no longer reaches it
    await deliver(a, payloads(6, 10), [c], all);
    await deliver(c, payloads(7, 10), [b], all);
    const stats = await server.stats();
    assert.deepEqual(elementOf(stats, dispatcher.id)!.routes, { [a.port.id]: b.port.id, [b.port.id]: c.port.id, [c.port.id]: a.port.id });
    assert.equal(elementOf(stats, c.port.id)!.dispatchedFrom, a.port.id);
    await server.waitForStats(() => b.flowOut.includes('FLOWING') && c.flowOut.includes('FLOWING'), 5000);

    // errors, with KMS's codes
    const other = await call<KurentoObjectLike>(pipeline, 'create', 'Dispatcher');
    const foreign = await call<KurentoObjectLike>(other, 'createHubPort');
    await assert.rejects(call(dispatcher, 'connect', foreign, b.port), code(40004, /Can not connect ports/), 'a port of another hub');
    await assert.rejects(call(dispatcher, 'connect', a.port, b.ep), code(40001, /should be a HubPort/), 'an endpoint is no HubPort');
    await assert.rejects(call(dispatcher, 'connect', a.port, `${pipeline.id}/00000000-0000-0000-0000-000000000000_kurento.HubPort`), code(40101));
    await other.release();

    // the source port released while it feeds C: no error, C stops at once; the rest goes on
    await a.port.release();
    await server.waitForStats(() => c.flowOut.at(-1) === 'NOT_FLOWING', 5000);
    await deliver(a, payloads(8, 10), [], all);
    await deliver(c, payloads(9, 10), [b], all);
    assert.deepEqual(elementOf(await server.stats(), dispatcher.id)!.routes, { [b.port.id]: c.port.id });
    await assert.rejects(call(dispatcher, 'connect', a.port, b.port), code(40101), 'a released port is not found');

    await pipeline.release();
    await server.waitForStats((s) => s.pipelines === 0 && s.elements === 0 && s.boundPorts === 0, 5000);
  });

  test('DispatcherOneToMany: a supervisor hears the agent; the source reaches every port, later ones too; setSource switches; removeSource and the source port\'s release stop it', async () => {
    const pipeline = await client.create('MediaPipeline');
    const hub = await call<KurentoObjectLike>(pipeline, 'create', 'DispatcherOneToMany');
    const agent = await party(pipeline, hub, 'agent');
    const caller = await party(pipeline, hub, 'caller');
    const supervisor = await party(pipeline, hub, 'supervisor', 'alaw');
    const all = [agent, caller, supervisor];

    await deliver(agent, payloads(1, 10), [], all); // no source yet
    // kurento-client 7.3.0 sends a HubPort argument as an object unless the parameter is named object, hub
    // or sink (its serializeParams), so setSource(port) reaches the server as an object: KMS answers 40001,
    // and so does ferry media. Apps pass the port's id.
    await assert.rejects(call(hub, 'setSource', agent.port), code(40001, /'source' parameter should be a string/));
    await call(hub, 'setSource', agent.port.id);
    // every port, the source's own included (KMS links the source to all its ports)
    await deliver(agent, payloads(2, 20), [agent, caller, supervisor], all);
    await deliver(caller, payloads(3, 10), [], all); // not the source: nobody hears it

    // a port created now hears the source at once
    const late = await party(pipeline, hub, 'late');
    all.push(late);
    await deliver(agent, payloads(4, 10), [agent, caller, supervisor, late], all);

    await call(hub, 'setSource', caller.port.id);
    await deliver(caller, payloads(5, 10), all, all);
    await deliver(agent, payloads(6, 10), [], all);
    assert.equal(elementOf(await server.stats(), hub.id)!.source, caller.port.id);

    await call(hub, 'removeSource');
    await server.waitForStats(() => all.every((p) => p.flowOut.at(-1) === 'NOT_FLOWING'), 5000);
    await deliver(caller, payloads(7, 10), [], all);

    // the source port released: no error, nothing flows, the hub has no source
    await call(hub, 'setSource', agent.port.id);
    await deliver(agent, payloads(8, 10), all, all);
    await agent.port.release();
    await server.waitForStats((s) => elementOf(s, hub.id)?.source === null, 5000);
    const left = all.filter((p) => p !== agent);
    await server.waitForStats(() => left.every((p) => p.flowOut.at(-1) === 'NOT_FLOWING'), 5000);
    await deliver(agent, payloads(9, 10), [], all);
    await deliver(caller, payloads(10, 10), [], all);

    const other = await call<KurentoObjectLike>(pipeline, 'create', 'Composite');
    const foreign = await call<KurentoObjectLike>(other, 'createHubPort');
    await assert.rejects(call(hub, 'setSource', foreign.id), code(40004));
    await assert.rejects(call(hub, 'setSource', agent.port.id), code(40101));
    await assert.rejects(call(hub, 'setSource', caller.ep.id), code(40001, /should be a HubPort/));
    await call(hub, 'setSource', late.port.id);
    await deliver(late, payloads(11, 10), left, all);

    // the hub released: its ports go with it, the endpoints stay
    await hub.release();
    const { stats: afterHub } = await server.waitForStats((s) => s.elements === 6, 5000);
    const types = ((afterHub.pipelinesDetail as { elements: ElementStats[] }[])[0]!.elements).map((e) => (e.type === 'HubPort' ? `HubPort of ${e.hub === other.id ? 'other' : String(e.hub)}` : e.type)).sort();
    assert.deepEqual(types, ['Composite', 'HubPort of other', 'RtpEndpoint', 'RtpEndpoint', 'RtpEndpoint', 'RtpEndpoint']);
    await pipeline.release();
    await server.waitForStats((s) => s.pipelines === 0 && s.elements === 0 && s.boundPorts === 0, 5000);
  });
});
