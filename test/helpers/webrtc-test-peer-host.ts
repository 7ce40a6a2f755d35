import path from 'node:path';
import { WeriftTestPeer, type HeldDatagramKind } from './werift-test-peer';
import { MAX_PEERS_PER_HOST, type HostMessage, type PeerEventName, type PeerRequest } from './webrtc-test-peer-protocol';

/**
 * Child process that hosts the WebRTC test peers of one test process (forked by media-webrtc-peer.ts).
 * It loads werift and test/helpers only, never ferry's src/: ferry tunes werift process-wide (ICE consent
 * timing) and patches its own werift objects, and a peer sharing ferry's process could not be told apart
 * from ferry's code. On start it reports every loaded module under src/ (there must be none). It exits when
 * the test process goes away.
 */

const repoSrc = path.resolve(__dirname, '../../src') + path.sep;
const peers = new Map<number, WeriftTestPeer>();

function post(m: HostMessage): void {
  process.send?.(m);
}

function event(peer: number, name: PeerEventName, ...args: unknown[]): void {
  post({ kind: 'event', peer, event: name, args });
}

function bytes(v: unknown): Buffer {
  if (!(v instanceof Uint8Array)) throw new Error('expected bytes');
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

async function perform(r: PeerRequest): Promise<unknown> {
  if (r.op === 'create') {
    if (peers.has(r.peer)) throw new Error(`peer ${r.peer} exists`);
    if (peers.size >= MAX_PEERS_PER_HOST) throw new Error(`more than ${MAX_PEERS_PER_HOST} open peers`);
    const [opts, ssrc] = r.args as [{ pcmaOnly?: boolean; telephoneEventPt?: number }, number];
    const id = r.peer;
    const peer = new WeriftTestPeer(
      {
        rtp: (p) => event(id, 'rtp', p),
        rtcp: (p, bye, at) => event(id, 'rtcp', p, bye, at),
        dtlsState: (s, at) => event(id, 'dtlsState', s, at),
        candidate: (c) => event(id, 'candidate', c),
        connected: () => event(id, 'connected'),
        sentSrtp: (d) => event(id, 'sentSrtp', d),
      },
      ssrc,
      opts,
    );
    peers.set(id, peer);
    return undefined;
  }
  const peer = peers.get(r.peer);
  if (!peer) throw new Error(`no peer ${r.peer}`);
  switch (r.op) {
    case 'createOffer':
      return peer.createOffer();
    case 'answer':
      return peer.answer(String(r.args[0]));
    case 'setAnswer':
      return peer.setAnswer(String(r.args[0]));
    case 'addCandidate':
      return peer.addCandidate(r.args[0] as { candidate: string; sdpMid?: string | null; sdpMLineIndex?: number | null });
    case 'sendRtp':
      return peer.sendRtp(bytes(r.args[0]));
    case 'sendRtcp':
      return peer.sendRtcp(bytes(r.args[0]));
    case 'replay':
      return peer.replay(bytes(r.args[0]));
    case 'sendRaw':
      return peer.sendRaw(bytes(r.args[0]));
    case 'closeNotify':
      return peer.closeNotify();
    case 'holdDatagrams':
      return peer.holdDatagrams(r.args[0] as HeldDatagramKind, Number(r.args[1]));
    case 'freeze':
      return peer.freeze();
    case 'close':
      peers.delete(r.peer);
      return peer.close();
  }
  throw new Error(`unknown operation ${String(r.op)}`);
}

process.on('message', (m: PeerRequest) => {
  perform(m).then(
    (value) => post({ kind: 'reply', id: m.id, ok: true, value }),
    (e: unknown) => post({ kind: 'reply', id: m.id, ok: false, error: e instanceof Error ? e.message : String(e) }),
  );
});
process.on('disconnect', () => process.exit(0));

post({ kind: 'ready', pid: process.pid, modulesFromSrc: Object.keys(require.cache).filter((f) => f.startsWith(repoSrc)) });
