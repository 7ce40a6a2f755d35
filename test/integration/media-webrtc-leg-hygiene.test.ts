import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:dgram';
import { MediaStreamTrack, RTCRtpSender, type RTCPeerConnection } from 'werift';
import { systemClock } from '../../src/common/clock';
import { loadIceSettings } from '../../src/media/webrtc/ice-settings';
import { attachLocalTrack } from '../../src/media/webrtc/local-track';
import { iceSockets } from '../../src/media/webrtc/werift-internals';
import { WeriftLeg } from '../../src/media/webrtc/werift-leg';
import { captureLog } from '../helpers/captured-log';

/** The WebRTC leg's small resource rules: /stats reads attach nothing, a failed track attach is logged, not thrown away. */

test('boundPorts() read 200 times attaches no listener to the ICE sockets, and a socket werift closed is not counted again', { timeout: 20_000 }, async () => {
  const { logger } = captureLog();
  const leg = new WeriftLeg({ clock: systemClock, logger, ice: loadIceSettings({}) });
  try {
    await leg.generateOffer('PCMU');
    const pc = (leg as unknown as { pc: RTCPeerConnection }).pc;
    const sockets: Socket[] = iceSockets(pc);
    assert.ok(sockets.length > 0, 'the offer gathered on at least one socket');
    const before = leg.boundPorts();
    assert.equal(before, sockets.length);
    const listeners = (s: Socket) => s.listenerCount('error') + s.listenerCount('close');
    const counts = sockets.map(listeners);
    for (let i = 0; i < 200; i++) leg.boundPorts();
    assert.deepEqual(sockets.map(listeners), counts, 'no listener added by /stats reads');
    // werift closes one socket but still lists it: it leaves the count and gets no new listeners
    const closed = sockets[0]!;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const closedListeners = listeners(closed);
    for (let i = 0; i < 200; i++) assert.equal(leg.boundPorts(), before - 1);
    assert.equal(listeners(closed), closedListeners);
  } finally {
    await leg.close({ notifyPeer: false });
  }
  assert.equal(leg.boundPorts(), 0);
});

test('attachLocalTrack: a stopped track is logged on one line and the promise resolves false; a live track resolves true', { timeout: 5_000 }, async () => {
  const { logger, lines } = captureLog();
  const live = new MediaStreamTrack({ kind: 'audio' });
  assert.equal(await attachLocalTrack(new RTCRtpSender('audio'), live, logger), true, 'positive control');
  assert.equal(lines.length, 0);
  const stopped = new MediaStreamTrack({ kind: 'audio' });
  stopped.stop();
  assert.equal(await attachLocalTrack(new RTCRtpSender('audio'), stopped, logger), false);
  assert.equal(lines.length, 1);
  assert.equal(lines[0]!.message, 'local audio track not attached');
  assert.match(String(lines[0]!.error), /track is ended/);
});
