/**
 * A worker thread with a native relay of its own (test/unit/media-native-relay-hardening.test.ts H7):
 * routes one socket to workerData.far, reads everything else as 'message', and posts its in port.
 */
import { parentPort, workerData } from 'node:worker_threads';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { nativeRelay, newRouteState } from '../../src/media/native/native-relay';

async function main(): Promise<void> {
  const relay = nativeRelay();
  const inS = dgram.createSocket('udp4');
  const outS = dgram.createSocket('udp4');
  inS.bind(0, '127.0.0.1');
  outS.bind(0, '127.0.0.1');
  await Promise.all([once(inS, 'listening'), once(outS, 'listening')]);
  const ptMap = new Uint8Array(128).fill(255);
  ptMap[0] = 0;
  relay.route(inS, {
    peer: null,
    out: outS,
    dest: { address: '127.0.0.1', port: (workerData as { far: number }).far },
    outSsrc: 1,
    ptMap,
    clockRates: new Uint32Array(128).fill(8000),
    receiveClockRate: 8000,
    srtpIn: null,
    srtpOut: null,
    state: newRouteState(),
  });
  let work = 0;
  inS.on('message', (m: Buffer) => {
    for (let i = 0; i < 1000; i++) work += m.length;
  });
  parentPort!.postMessage(inS.address().port);
  if (work < 0) parentPort!.postMessage(work);
}

void main();
