import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import winston from 'winston';
import { MediaStreamTrack } from 'werift';
import { FakeClock, systemClock } from '../../src/common/clock';
import { createLogger } from '../../src/common/logger';
import { ElementTypeRegistry } from '../../src/media/objects/element-type';
import { MediaElement } from '../../src/media/objects/media-element';
import type { ElementContext } from '../../src/media/objects/object-context';
import { loadMediaConfig } from '../../src/media/server/media-config';
import { MediaSet } from '../../src/media/server/media-set';
import { DEFAULT_MEDIA_QUOTAS, type MediaQuotas } from '../../src/media/server/media-quotas';
import { PortAllocator } from '../../src/media/rtp/port-allocator';
import { loadIceSettings } from '../../src/media/webrtc/ice-settings';
import { WeriftLeg } from '../../src/media/webrtc/werift-leg';
import { iceSockets } from '../../src/media/webrtc/werift-internals';
import { pollUntil } from '../helpers/wait-for';
import { loopbackPeerConnection } from '../helpers/werift-loopback';

/**
 * The ports ferry media counts against its quotas (MediaSet.portsCounted, run on every create): each element's
 * bound ports with at least an RTP+RTCP pair per element, plus creates under way, for the server and for the
 * session that created them, in one pass. Checked against real sockets after create, during a create and after
 * release; and WeriftLeg.boundPorts, which stops walking werift's ICE agents once gathering is complete, against
 * the sockets werift really holds.
 */

/** An element holding `ports` real UDP sockets (constructor parameter), closed on teardown. */
class SocketsElement extends MediaElement {
  readonly sockets: dgram.Socket[] = [];

  constructor(ctx: ElementContext) {
    super(ctx, 'SocketsEndpoint');
  }

  override boundPorts(): number {
    return this.sockets.length;
  }

  override async teardown(options: { notifyPeer: boolean }): Promise<void> {
    await Promise.all(this.sockets.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    await super.teardown(options);
  }
}

function world(quotas: Partial<MediaQuotas> = {}): { set: MediaSet; gate: { hold?: Promise<void>; entered?: () => void } } {
  const registry = new ElementTypeRegistry();
  const gate: { hold?: Promise<void>; entered?: () => void } = {};
  registry.register({
    type: 'SocketsEndpoint',
    hierarchy: ['kurento.MediaElement'],
    events: [],
    create: async (ctx) => {
      const e = new SocketsElement(ctx);
      for (let i = 0; i < Number(ctx.constructorParams.ports ?? 0); i++) {
        const s = dgram.createSocket('udp4');
        await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
        e.sockets.push(s);
      }
      if (gate.hold) {
        gate.entered?.();
        await gate.hold;
      }
      return e;
    },
  });
  const set = new MediaSet({
    config: loadMediaConfig({ port: 0, quotas: { ...DEFAULT_MEDIA_QUOTAS, ...quotas } }, {}),
    clock: new FakeClock(),
    logger: winston.createLogger({ silent: true }),
    elementTypes: registry,
    ports: new PortAllocator('127.0.0.1', 0, 0),
    orphanTtlMs: 240_000,
  });
  return { set, gate };
}

test('ports counted per session and for the server: after create, during a create, after release', { timeout: 20_000 }, async () => {
  const { set, gate } = world();
  const s1 = set.getOrCreateSession('s1');
  const s2 = set.getOrCreateSession('s2');
  assert.deepEqual(set.portsCounted('s1'), { server: 0, session: 0 });
  const p1 = await set.create(s1, 'MediaPipeline', {});
  await set.create(s1, 'SocketsEndpoint', { mediaPipeline: p1, ports: 5 });
  await set.create(s1, 'SocketsEndpoint', { mediaPipeline: p1, ports: 0 });
  const p2 = await set.create(s2, 'MediaPipeline', {});
  await set.create(s2, 'SocketsEndpoint', { mediaPipeline: p2, ports: 3 });
  // s1: 5 bound + 2 reserved for the one with none; s2: 3; the server: both
  assert.deepEqual(set.portsCounted('s1'), { server: 10, session: 7 });
  assert.deepEqual(set.portsCounted('s2'), { server: 10, session: 3 });
  assert.deepEqual(set.portsCounted(), { server: 10, session: 0 });
  assert.equal((set.stats() as { quotas: { portsCounted: number } }).quotas.portsCounted, 10, '/stats shows the server count');

  // a create under way holds its reservation, for its session and the server only
  let release!: () => void;
  const entered = new Promise<void>((resolve) => (gate.entered = resolve));
  gate.hold = new Promise<void>((resolve) => (release = resolve));
  const pending = set.create(s2, 'SocketsEndpoint', { mediaPipeline: p2, ports: 4 });
  await entered;
  assert.deepEqual(set.portsCounted('s2'), { server: 12, session: 5 });
  assert.deepEqual(set.portsCounted('s1'), { server: 12, session: 7 });
  release();
  gate.hold = undefined;
  await pending;
  assert.deepEqual(set.portsCounted('s2'), { server: 14, session: 7 }, 'the reservation gave way to the 4 bound ports');

  await set.release(p1);
  assert.deepEqual(set.portsCounted('s1'), { server: 7, session: 0 }, 's1 released: only s2 left');
  assert.deepEqual(set.portsCounted('s2'), { server: 7, session: 7 });
  await set.release(p2);
  assert.deepEqual(set.portsCounted('s2'), { server: 0, session: 0 });
});

test('the port quotas refuse the create that would pass them (they read the counts above)', { timeout: 20_000 }, async () => {
  const { set } = world({ maxPortsPerSession: 9, maxPorts: 14 });
  const s1 = set.getOrCreateSession('s1');
  const s2 = set.getOrCreateSession('s2');
  const p1 = await set.create(s1, 'MediaPipeline', {});
  const p2 = await set.create(s2, 'MediaPipeline', {});
  // positive control: a create within the session's limit is admitted (0 counted + 2 reserved <= 9); then 8 + 2 > 9
  await set.create(s1, 'SocketsEndpoint', { mediaPipeline: p1, ports: 8 });
  await assert.rejects(set.create(s1, 'SocketsEndpoint', { mediaPipeline: p1, ports: 0 }), /port quota of this session reached/);
  // the other session is within its own limit (5 + 2 <= 9), the server is not (8 + 5 + 2 > 14): with no client
  // connected, s1's pipeline is an idle orphan (never negotiated), released to make room (counted again after it)
  await set.create(s2, 'SocketsEndpoint', { mediaPipeline: p2, ports: 5 });
  await set.create(s2, 'SocketsEndpoint', { mediaPipeline: p2, ports: 0 });
  assert.equal(set.pipelineCount(), 1, 'the idle orphan pipeline was released for room');
  assert.deepEqual(set.portsCounted('s1'), { server: 7, session: 0 });
  // s2 now counts 5 + 2: one more reserved pair fits its limit (9), a second does not
  await set.create(s2, 'SocketsEndpoint', { mediaPipeline: p2, ports: 0 });
  await assert.rejects(set.create(s2, 'SocketsEndpoint', { mediaPipeline: p2, ports: 0 }), /port quota of this session reached/);
  await set.release(p2);
  assert.deepEqual(set.portsCounted('s2'), { server: 0, session: 0 });
});

const legs: WeriftLeg[] = [];
after(async () => {
  await Promise.all(legs.map((l) => l.close({ notifyPeer: false })));
});

test('WeriftLeg.boundPorts counts the ICE sockets werift holds, through the call and after close', { timeout: 30_000 }, async () => {
  const browser = loopbackPeerConnection();
  try {
    browser.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendrecv' });
    await browser.setLocalDescription(await browser.createOffer());
    await pollUntil(() => browser.iceGatheringState === 'complete', { timeoutMs: 10_000, what: 'browser gathered' });
    const leg = new WeriftLeg({ clock: systemClock, logger: createLogger('ports-test'), ice: loadIceSettings({}) });
    legs.push(leg);
    assert.equal(leg.boundPorts(), 0, 'nothing bound before the offer');
    const answer = await leg.processOffer(browser.localDescription!.sdp, 'PCMU');
    const held = (): number => iceSockets((leg as unknown as { pc: Parameters<typeof iceSockets>[0] }).pc).length;
    assert.ok(held() >= 1, 'werift bound its ICE sockets');
    assert.equal(leg.boundPorts(), held(), 'after processOffer: every socket werift holds');
    await browser.setRemoteDescription({ type: 'answer', sdp: answer });
    await leg.gatherCandidates();
    await pollUntil(() => leg.dtlsState() === 'CONNECTED', { timeoutMs: 20_000, what: 'DTLS connected' });
    assert.equal(leg.boundPorts(), held(), 'connected: still every socket werift holds');
    await leg.close({ notifyPeer: false });
    assert.equal(leg.boundPorts(), 0, 'closed: none');
  } finally {
    await browser.close();
  }
});
