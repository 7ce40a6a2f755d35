/**
 * Child-process entry for a scripted RTP phone (rtp-phone.ts) that must live in another network
 * namespace (`ip netns exec NS node --import tsx rtp-phone-child.ts '<options json>'`).
 * Protocol: one JSON line per command on stdin `{"id":1,"op":"mute","args":[]}`, one JSON line per
 * answer on stdout `{"id":1,"ok":true,"value":...}` (or `"ok":false,"error":"..."`).
 * Driven by rtp-phone-process.ts; not a test itself.
 */
import readline from 'node:readline';
import { RtpPhone, type RtpPhoneOptions } from './rtp-phone';

const options = JSON.parse(process.argv[2] ?? '{}') as RtpPhoneOptions;
const phone = new RtpPhone(options);
const ops: Record<string, (...args: never[]) => Promise<unknown>> = {
  start: () => phone.start(),
  sdp: (direction?: never) => phone.sdp(direction),
  applyRemoteSdp: (sdp: never) => phone.applyRemoteSdp(sdp),
  startMedia: () => phone.startMedia(),
  mute: () => phone.mute(),
  unmute: () => phone.unmute(),
  sendBye: () => phone.sendBye(),
  stopMedia: () => phone.stopMedia(),
  closeSockets: () => phone.closeSockets(),
  stats: () => phone.stats(),
  maxRtpGap: (from: never, to: never) => phone.maxRtpGap(from, to),
  rtpReceivedBetween: (from: never, to: never) => phone.rtpReceivedBetween(from, to),
  maxSendGap: (from: never, to: never) => phone.maxSendGap(from, to),
  rtpSentBetween: (from: never, to: never) => phone.rtpSentBetween(from, to),
  close: () => phone.close(),
};

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  let request: { id: number; op: string; args: unknown[] };
  try {
    request = JSON.parse(line) as { id: number; op: string; args: unknown[] };
  } catch {
    return;
  }
  const op = ops[request.op];
  if (!op) {
    process.stdout.write(JSON.stringify({ id: request.id, ok: false, error: `unknown op ${request.op}` }) + '\n');
    return;
  }
  op(...(request.args as never[])).then(
    (value) => process.stdout.write(JSON.stringify({ id: request.id, ok: true, value: value ?? null }) + '\n'),
    (err: unknown) => process.stdout.write(JSON.stringify({ id: request.id, ok: false, error: String(err) }) + '\n'),
  );
});
lines.on('close', () => {
  void phone.close().then(() => process.exit(0));
});
process.stdout.write(JSON.stringify({ ready: true }) + '\n');
