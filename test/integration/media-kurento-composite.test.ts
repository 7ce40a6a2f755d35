import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { G711Law } from '../../src/media/media-files/g711';
import { MAX_MIXER_PORTS } from '../../src/media/mixing/audio-mixer';
import { call, connectKurento, type KurentoClientLike, type KurentoObjectLike } from '../helpers/media-kurento';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';
import { MediaServerProcess } from '../helpers/media-server-process';
import { formatPowers, sendTone, tonePowers, TONES } from '../helpers/mix-tones';

/**
 * Composite + HubPort (audio mixing) driven by the unmodified kurento-client against a real
 * `bin/ferry media`: three RTP peers, each sending its own tone (400, 700, 1100 Hz; one of them in
 * A-law) through an RtpEndpoint into a HubPort of one Composite, each hearing the other two tones and
 * not its own (Goertzel power at each frequency); one party goes silent and the others keep receiving
 * 50 packets a second and hear only who still speaks; the port cap answers 40009; releasing a HubPort
 * or the Composite frees everything (/stats back to zero).
 */

describe('media: Composite + HubPort audio mixing (kurento-client, bin/ferry media)', { timeout: 60_000 }, () => {
  let server: MediaServerProcess;
  let client: KurentoClientLike;
  const peers: RtpTestPeer[] = [];
  const senders: { stop: () => void }[] = [];

  before(async () => {
    // room in one pipeline for a hub with every port it takes
    server = await MediaServerProcess.start({ FERRY_MEDIA_MAX_ELEMENTS_PER_PIPELINE: String(MAX_MIXER_PORTS + 4) });
    client = await connectKurento(server.url);
  });
  after(async () => {
    senders.forEach((s) => s.stop());
    client?.close();
    peers.forEach((p) => p.close());
    await server?.stop();
  });

  test('three parties: each hears the other two tones and not its own; a party going silent stalls nobody; releasing a HubPort frees only that port', async () => {
    const pipeline = await client.create('MediaPipeline');
    const composite = await call<KurentoObjectLike>(pipeline, 'create', 'Composite');
    const parties: { ep: KurentoObjectLike; port: KurentoObjectLike; peer: RtpTestPeer; law: G711Law }[] = [];
    for (let i = 0; i < 3; i++) {
      const law: G711Law = i === 2 ? 'alaw' : 'mulaw';
      const ep = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
      const peer = await RtpTestPeer.open();
      peers.push(peer);
      peer.useRemoteSdp(await call<string>(ep, 'processOffer', peer.sdp({ codecs: [law === 'alaw' ? [8, 'PCMA/8000'] : [0, 'PCMU/8000']] })));
      // both ways of making a port: Hub.createHubPort() and create('HubPort', {hub})
      const port = i === 1 ? await call<KurentoObjectLike>(pipeline, 'create', 'HubPort', { hub: composite }) : await call<KurentoObjectLike>(composite, 'createHubPort');
      await call(ep, 'connect', port);
      await call(port, 'connect', ep);
      parties.push({ ep, port, peer, law });
    }
    const info = await server.stats();
    const detail = (info.pipelinesDetail as { elements: { type: string; ports?: string[] }[] }[])[0]!.elements;
    assert.deepEqual(detail.find((e) => e.type === 'Composite')?.ports, parties.map((p) => p.port.id), 'the three ports are the hub\'s');

    parties.forEach((p, i) => senders.push(sendTone(p.peer, TONES[i]!, p.law)));
    // phase 1: everybody speaks for 1 s of mixed audio at each party (after 0.2 s to fill the path)
    const starts = parties.map((p) => p.peer.received.length + 10);
    await Promise.all(parties.map((p, i) => p.peer.waitFor(() => p.peer.received.length >= starts[i]! + 50, 5000, `1 s of mix at party ${i}`)));
    parties.forEach((p, i) => {
      assert.ok(p.peer.received.slice(starts[i]!).every((r) => r.pt === (p.law === 'alaw' ? 8 : 0)), `party ${i} receives in its own codec`);
      const powers = tonePowers(p.peer, starts[i]!, starts[i]! + 50);
      const others = powers.filter((_, j) => j !== i);
      assert.ok(Math.min(...others) > 1000, `party ${i} hears both others: ${formatPowers(powers)}`);
      assert.ok(Math.min(...others) > 100 * powers[i]!, `party ${i} does not hear itself: ${formatPowers(powers)}`);
    });

    // phase 2: party 1 goes silent (stops sending); the others keep getting 50 packets a second and hear only each other
    senders[1]!.stop();
    const quietFrom = parties.map((p) => p.peer.received.length + 10);
    await Promise.all(parties.map((p, i) => p.peer.waitFor(() => p.peer.received.length >= quietFrom[i]! + 25, 3000, `0.5 s more of mix at party ${i}`)));
    const [atA, atB, atC] = parties.map((p, i) => tonePowers(p.peer, quietFrom[i]!, quietFrom[i]! + 25));
    assert.ok(atA![2]! > 1000 && atA![2]! > 100 * atA![1]!, `party 0 hears party 2 and no more party 1: ${formatPowers(atA!)}`);
    assert.ok(atC![0]! > 1000 && atC![0]! > 100 * atC![1]!, `party 2 hears party 0 and no more party 1: ${formatPowers(atC!)}`);
    assert.ok(atB![0]! > 1000 && atB![2]! > 1000, `the silent party still hears both: ${formatPowers(atB!)}`);
    senders.forEach((s) => s.stop());

    // releasing one HubPort releases only that port, as in KMS: the hub keeps the other two, the call goes on
    await parties[0]!.port.release();
    const { stats: after } = await server.waitForStats((s) => s.elements === 6, 5000);
    const left = (after.pipelinesDetail as { elements: { id: string; type: string; ports?: string[] }[] }[])[0]!.elements;
    assert.deepEqual(left.find((e) => e.type === 'Composite')?.ports, parties.slice(1).map((p) => p.port.id), 'the hub keeps the other two ports');
    assert.equal(left.filter((e) => e.type === 'RtpEndpoint').length, 3, 'every party\'s endpoint stays');
    await pipeline.release();
    await server.waitForStats((s) => s.pipelines === 0 && s.elements === 0 && s.boundPorts === 0, 5000);
  });

  test(`at most ${MAX_MIXER_PORTS} HubPorts per Composite (40009 beyond), describe, release of the Composite frees it and its ports`, async () => {
    const pipeline = await client.create('MediaPipeline');
    const composite = await call<KurentoObjectLike>(pipeline, 'create', 'Composite');
    for (let i = 0; i < MAX_MIXER_PORTS; i++) await call(composite, 'createHubPort');
    await assert.rejects(call(composite, 'createHubPort'), (err: { code?: number; message?: string }) => err.code === 40009 && /at most 32 HubPorts/.test(String(err.message)));
    const again = await client.getMediaobjectById(composite.id);
    assert.equal(typeof again.createHubPort, 'function', 'described as a Hub: kurento-client builds a Composite');
    assert.equal(((await call<string[]>(composite, 'getChildren')) ?? []).length, MAX_MIXER_PORTS);
    const stats = await server.stats();
    assert.equal(stats.elements, MAX_MIXER_PORTS + 1, 'the refused port left nothing behind');
    // the hub goes with its ports (its children), the pipeline stays until released
    await composite.release();
    await server.waitForStats((s) => s.pipelines === 1 && s.elements === 0, 5000);
    await pipeline.release();
    await server.waitForStats((s) => s.pipelines === 0 && s.elements === 0 && s.boundPorts === 0, 5000);
  });
});
