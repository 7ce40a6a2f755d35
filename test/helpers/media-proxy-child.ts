/**
 * Child-process entry for the "proxy" of the media-only lifecycle scenarios: a real kurento-client
 * 7.3.0 application (what the gateway is, minus SIP) that builds a call's pipeline on ferry media and
 * can be SIGKILLed mid-call (S3-S7). Driven by media-proxy-process.ts over stdin/stdout JSON lines:
 *   -> {"id":1,"op":"call","args":[{"legs":[{"kind":"rtp","offer":"v=0..."},{"kind":"webrtc","offer":"v=0..."}]}]}
 *   <- {"id":1,"ok":true,"value":{"pipelineId":..,"legs":[{"id":..,"answer":..}]}}
 *   <- {"event":"MediaSessionTerminated","leg":0,"data":{...}}   (every subscribed event, unsolicited)
 * Usage: node --import tsx media-proxy-child.ts ws://127.0.0.1:PORT/kurento
 */
import readline from 'node:readline';

// kurento-client ships no TypeScript types.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const kurento = require('kurento-client') as (url: string, options?: Record<string, unknown>) => Promise<KurentoClient>;

interface KurentoObject {
  id: string;
  on(event: string, fn: (data: unknown) => void): void;
  release(): Promise<void>;
  [method: string]: unknown;
}
interface KurentoClient {
  create(type: string): Promise<KurentoObject>;
  getMediaobjectById(id: string): Promise<KurentoObject>;
  close(): void;
}

type LegSpec = { kind: 'rtp' | 'webrtc'; offer: string };

const EVENTS: Record<LegSpec['kind'], string[]> = {
  rtp: ['MediaSessionTerminated', 'MediaSessionStarted', 'MediaStateChanged', 'ConnectionStateChanged', 'MediaFlowInStateChanged', 'MediaFlowOutStateChanged'],
  webrtc: ['MediaSessionTerminated', 'MediaSessionStarted', 'MediaStateChanged', 'ConnectionStateChanged', 'MediaFlowInStateChanged', 'MediaFlowOutStateChanged', 'IceCandidateFound', 'IceGatheringDone', 'IceComponentStateChanged'],
};

const url = process.argv[2];
if (!url) throw new Error('usage: media-proxy-child.ts <ws url>');
const objects = new Map<string, KurentoObject>();
let legs: KurentoObject[] = [];

function emit(message: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(message) + '\n');
}

async function main(): Promise<void> {
  const client = await kurento(url!, { failAfter: 1 });

  const ops: Record<string, (arg: never) => Promise<unknown>> = {
    async call(arg: { legs: LegSpec[] }) {
      const pipeline = await client.create('MediaPipeline');
      objects.set('pipeline', pipeline);
      legs = [];
      const answers: { id: string; answer: string }[] = [];
      for (const [index, spec] of arg.legs.entries()) {
        const type = spec.kind === 'rtp' ? 'RtpEndpoint' : 'WebRtcEndpoint';
        const ep = (await (pipeline as unknown as { create(t: string): Promise<KurentoObject> }).create(type)) as KurentoObject;
        for (const name of EVENTS[spec.kind]) ep.on(name, (data) => emit({ event: name, leg: index, data }));
        legs.push(ep);
        objects.set(`leg${index}`, ep);
        const answer = await (ep.processOffer as (sdp: string) => Promise<string>).call(ep, spec.offer);
        if (spec.kind === 'webrtc') await (ep.gatherCandidates as () => Promise<void>).call(ep);
        answers.push({ id: ep.id, answer });
      }
      if (legs.length === 2) {
        await (legs[0]!.connect as (s: KurentoObject) => Promise<void>).call(legs[0], legs[1]!);
        await (legs[1]!.connect as (s: KurentoObject) => Promise<void>).call(legs[1], legs[0]!);
      }
      return { pipelineId: pipeline.id, legs: answers };
    },
    async addIceCandidate(arg: { leg: number; candidate: Record<string, unknown> }) {
      const ep = legs[arg.leg];
      if (!ep) throw new Error(`no leg ${arg.leg}`);
      const candidate = kurentoIceCandidate(arg.candidate);
      await (ep.addIceCandidate as (c: unknown) => Promise<void>).call(ep, candidate);
    },
    /** Release 'pipeline' or 'leg0'/'leg1' (S15: release on one endpoint takes the whole pipeline). */
    async release(arg: { which: string }) {
      const obj = objects.get(arg.which);
      if (!obj) throw new Error(`no object ${arg.which}`);
      await obj.release();
    },
    /** A raw invoke on a leg, e.g. getMediaState. */
    async invoke(arg: { leg: number; method: string; params?: unknown[] }) {
      const ep = legs[arg.leg];
      if (!ep) throw new Error(`no leg ${arg.leg}`);
      return (ep[arg.method] as (...a: unknown[]) => Promise<unknown>).apply(ep, arg.params ?? []);
    },
  };

  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    let request: { id: number; op: string; args: unknown[] };
    try {
      request = JSON.parse(line) as typeof request;
    } catch {
      return;
    }
    const op = ops[request.op];
    if (!op) return emit({ id: request.id, ok: false, error: `unknown op ${request.op}` });
    op(request.args[0] as never).then(
      (value) => emit({ id: request.id, ok: true, value: value ?? null }),
      (err: unknown) => emit({ id: request.id, ok: false, error: err instanceof Error ? err.message : JSON.stringify(err) }),
    );
  });
  emit({ ready: true });
}

function kurentoIceCandidate(c: Record<string, unknown>): unknown {
  // kurento-client's complexTypes.IceCandidate, as an app builds it from a browser candidate.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { getComplexType } = require('kurento-client') as { getComplexType(name: string): (v: unknown) => unknown };
  return getComplexType('IceCandidate')(c);
}

main().catch((err: unknown) => {
  emit({ fatal: err instanceof Error ? err.message : String(err) });
  process.exit(1);
});
