import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { G711Law } from '../../src/media/media-files/g711';
import { call, connectKurento, type KurentoClientLike, type KurentoObjectLike } from '../helpers/media-kurento';
import { RtpTestPeer } from '../helpers/media-rtp-test-peer';
import { MediaServerProcess } from '../helpers/media-server-process';
import { formatPowers, sendTone, tonePowers, TONES } from '../helpers/mix-tones';

/**
 * Mixer and AlphaBlending (audio) driven by the unmodified kurento-client against a real
 * `bin/ferry media`. Mixer, a call-centre supervisor: caller (400 Hz), agent (700 Hz) and supervisor
 * (1100 Hz, A-law) each behind an RtpEndpoint and a HubPort; the caller's port mixes the agent, the
 * agent's the caller and the supervisor (whispering), the supervisor's the caller and the agent; each
 * phone hears exactly the tones selected for it (Goertzel), then the whisper is disconnected and the agent
 * no longer hears it; KMS's error codes for DATA and VIDEO disconnect. AlphaBlending: two parties hear
 * each other and not themselves (KMS mixes its audio N-1); its video settings are checked and answered.
 * Everything released, /stats back to zero.
 */

interface Party {
  ep: KurentoObjectLike;
  port: KurentoObjectLike;
  peer: RtpTestPeer;
  law: G711Law;
}

describe('media: Mixer and AlphaBlending audio (kurento-client, bin/ferry media)', { timeout: 90_000 }, () => {
  let server: MediaServerProcess;
  let client: KurentoClientLike;
  const peers: RtpTestPeer[] = [];
  const senders: { stop: () => void }[] = [];

  before(async () => {
    server = await MediaServerProcess.start();
    client = await connectKurento(server.url);
  });
  after(async () => {
    senders.forEach((s) => s.stop());
    client?.close();
    peers.forEach((p) => p.close());
    await server?.stop();
  });

  async function party(pipeline: KurentoObjectLike, hub: KurentoObjectLike, law: G711Law = 'mulaw'): Promise<Party> {
    const ep = await call<KurentoObjectLike>(pipeline, 'create', 'RtpEndpoint');
    const peer = await RtpTestPeer.open();
    peers.push(peer);
    peer.useRemoteSdp(await call<string>(ep, 'processOffer', peer.sdp({ codecs: [law === 'alaw' ? [8, 'PCMA/8000'] : [0, 'PCMU/8000']] })));
    const port = await call<KurentoObjectLike>(hub, 'createHubPort');
    await call(ep, 'connect', port);
    await call(port, 'connect', ep);
    return { ep, port, peer, law };
  }

  /** What each party hears over the next 0.6 s of mix (after 0.2 s to let a change through). */
  async function listen(parties: Party[]): Promise<number[][]> {
    const from = parties.map((p) => p.peer.received.length + 10);
    await Promise.all(parties.map((p, i) => p.peer.waitFor(() => p.peer.received.length >= from[i]! + 30, 5000, `0.6 s of mix at party ${i}`)));
    return parties.map((p, i) => tonePowers(p.peer, from[i]!, from[i]! + 30));
  }

  const hears = (powers: number[], yes: number[], no: number[], who: string) => {
    for (const y of yes) for (const n of no) assert.ok(powers[y]! > 1000 && powers[y]! > 100 * powers[n]!, `${who} hears ${TONES[y]} Hz and not ${TONES[n]} Hz: ${formatPowers(powers)}`);
  };

  test('Mixer: a supervisor hears caller and agent, whispers to the agent only; the whisper disconnected; errors', async () => {
    const pipeline = await client.create('MediaPipeline');
    const mixer = await call<KurentoObjectLike>(pipeline, 'create', 'Mixer');
    const caller = await party(pipeline, mixer);
    const agent = await party(pipeline, mixer);
    const supervisor = await party(pipeline, mixer, 'alaw');
    const parties = [caller, agent, supervisor];
    await call(mixer, 'connect', 'AUDIO', agent.port, caller.port);
    await call(mixer, 'connect', 'AUDIO', caller.port, agent.port);
    await call(mixer, 'connect', 'AUDIO', supervisor.port, agent.port);
    await call(mixer, 'connect', 'AUDIO', caller.port, supervisor.port);
    await call(mixer, 'connect', 'AUDIO', agent.port, supervisor.port);
    await call(mixer, 'connect', 'VIDEO', agent.port, supervisor.port); // accepted; ferry carries no video
    parties.forEach((p, i) => senders.push(sendTone(p.peer, TONES[i]!, p.law)));

    const [atCaller, atAgent, atSupervisor] = await listen(parties);
    hears(atCaller!, [1], [0, 2], 'the caller');
    hears(atAgent!, [0, 2], [1], 'the agent');
    hears(atSupervisor!, [0, 1], [2], 'the supervisor');
    assert.ok(supervisor.peer.received.slice(-30).every((r) => r.pt === 8), 'the supervisor in A-law');

    await call(mixer, 'disconnect', 'AUDIO', supervisor.port, agent.port);
    const [, agentAfter] = await listen(parties);
    hears(agentAfter!, [0], [2], 'the agent after the whisper is disconnected');

    const code = (c: number, text?: RegExp) => (err: { code?: number; message?: string }) => err.code === c && (!text || text.test(String(err.message)));
    await assert.rejects(call(mixer, 'connect', 'DATA', agent.port, caller.port), code(40005, /Invalid media type/));
    await assert.rejects(call(mixer, 'disconnect', 'VIDEO', agent.port, supervisor.port), code(40005, /Video disconnection is not implemented yet/));
    await assert.rejects(call(mixer, 'disconnect', 'AUDIO', supervisor.port, agent.port), code(40004), 'not connected any more');
    const info = await server.stats();
    const ports = (info.pipelinesDetail as { elements: { id: string; type: string; mixSources?: string[] }[] }[])[0]!.elements;
    assert.deepEqual(ports.find((e) => e.id === supervisor.port.id)?.mixSources, [caller.port.id, agent.port.id]);
    senders.splice(0).forEach((s) => s.stop());
    await pipeline.release();
    await server.waitForStats((s) => s.pipelines === 0 && s.elements === 0 && s.boundPorts === 0, 5000);
  });

  test('AlphaBlending: two parties hear each other and not themselves; setMaster and setPortProperties answered', async () => {
    const pipeline = await client.create('MediaPipeline');
    const hub = await call<KurentoObjectLike>(pipeline, 'create', 'AlphaBlending');
    const again = await client.getMediaobjectById(hub.id);
    assert.equal(typeof again.setMaster, 'function', 'described as an AlphaBlending');
    const parties = [await party(pipeline, hub), await party(pipeline, hub)];
    // kurento-client sends the port as an object unless it is given its id (see media-kurento-dispatchers.test.ts)
    await call(hub, 'setMaster', parties[0]!.port.id, 1);
    await call(hub, 'setPortProperties', 0.5, 0.5, 2, 0.25, 0.25, parties[1]!.port.id);
    await assert.rejects(call(hub, 'setMaster', parties[0]!.port.id, 1.5), (err: { code?: number }) => err.code === 40001);
    parties.forEach((p, i) => senders.push(sendTone(p.peer, TONES[i]!, p.law)));
    const [at0, at1] = await listen(parties);
    hears(at0!, [1], [0], 'party 0');
    hears(at1!, [0], [1], 'party 1');
    senders.splice(0).forEach((s) => s.stop());
    await hub.release();
    await server.waitForStats((s) => s.pipelines === 1 && s.elements === 2, 5000);
    await pipeline.release();
    await server.waitForStats((s) => s.pipelines === 0 && s.elements === 0 && s.boundPorts === 0, 5000);
  });
});
