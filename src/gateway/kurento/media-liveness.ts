import { EventEmitter } from 'node:events';
import { guarded } from '../../common/process-faults';

/** FERRY_GATEWAY_MEDIA_PING_TIMEOUT_MS's default: a media server silent this long is treated as lost */
export const DEFAULT_MEDIA_PING_TIMEOUT_MS = 15_000;

/** how often a media server is pinged for a given bound: a fifth of it, between 100 ms and 2 s */
export function mediaPingIntervalMs(timeoutMs: number): number {
  return Math.max(100, Math.min(2000, Math.round(timeoutMs / 5)));
}

/** the id prefix of the gateway's own pings; kurento-client's requests have numeric ids */
const ID_PREFIX = 'ferry-liveness-';

/** the control connection's stream as kurento-client's reconnector holds it (`re._connection`) */
export interface LivenessTransport extends EventEmitter {
  write(frame: string): unknown;
}

export interface MediaLivenessOptions {
  /** no answer to any ping for this long (counted while the gateway's own checks run on time): deaf */
  timeoutMs: number;
  /** the server is deaf; the watch has stopped itself */
  onDeaf: (silentMs: number) => void;
}

/**
 * Is the media server at the other end of an open control connection still answering? A server that
 * stops answering without closing the connection (a hung KMS, a SIGSTOPped process, a host whose
 * network black-holes the packets) is otherwise never noticed: TCP stays open, requests wait for
 * kurento-client's 20 s timeout one by one, and the server's calls sit with dead media.
 *
 * kurento-client 7.3.0's own ping cannot serve: it pings once a minute, keeps its state in module
 * globals shared by every client of the process (with several media servers one client's pings stop
 * the others'), and when a ping is not answered it only stops pinging. So the gateway sends its own
 * Kurento `ping` (JSON-RPC, the request KMS and ferry media answer with `pong` at once) on the same
 * connection every `mediaPingIntervalMs(timeoutMs)`, with string ids of its own, and takes the
 * answers off the stream before kurento-client's JSON-RPC layer sees them (it would log each as a
 * response nobody asked for). Any answer — a result or an error — means the server is there.
 *
 * Silence is counted like ferry media's own main-loop watchdog counts a stall: only while this
 * watch's checks run on time. A check that comes late (the gateway itself paused: a long GC, a
 * suspended VM) adds at most two intervals, so answers waiting unread in the gateway's socket are
 * read before a pause of the gateway can make the server look deaf.
 */
export class MediaLiveness {
  readonly intervalMs: number;
  private transport: LivenessTransport | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastTickAt = 0;
  /** an unanswered ping is out (since the last answer) */
  private awaiting = false;
  private silentMs = 0;
  private seq = 0;

  constructor(private readonly o: MediaLivenessOptions) {
    this.intervalMs = mediaPingIntervalMs(o.timeoutMs);
  }

  /** watches this connection (the one just connected); a watch of an earlier one ends */
  start(transport: LivenessTransport | undefined): void {
    this.stop();
    if (!transport || this.o.timeoutMs <= 0) return;
    this.transport = transport;
    interceptAnswers(transport, () => this.answered(transport));
    this.awaiting = false;
    this.silentMs = 0;
    this.lastTickAt = Date.now();
    this.timer = setInterval(guarded('gateway.media-ping', () => this.tick()), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.transport = undefined;
  }

  private answered(from: LivenessTransport): void {
    if (from !== this.transport) return;
    this.awaiting = false;
    this.silentMs = 0;
  }

  private tick(): void {
    const now = Date.now();
    const gap = now - this.lastTickAt;
    this.lastTickAt = now;
    if (this.awaiting) {
      this.silentMs += Math.min(gap, 2 * this.intervalMs);
      if (this.silentMs >= this.o.timeoutMs) {
        const silentMs = this.silentMs;
        this.stop();
        this.o.onDeaf(silentMs);
        return;
      }
    }
    const frame = JSON.stringify({ jsonrpc: '2.0', id: `${ID_PREFIX}${++this.seq}`, method: 'ping', params: {} });
    try {
      this.transport?.write(frame);
    } catch {
      // a stream closing under us: its 'close' ends the connection the usual way
    }
    this.awaiting = true;
  }
}

/** per intercepted stream: who is told of an answer (the watch of the connection it carries) */
const ANSWER_HANDLERS = new WeakMap<EventEmitter, () => void>();

/**
 * Answers to the gateway's pings are handed to `onAnswer` and never emitted as 'data' (kurento-jsonrpc
 * reads the stream's 'data'); every other frame passes untouched. The stream emits one WebSocket
 * message per 'data' event, so a frame is never split or joined here.
 */
function interceptAnswers(transport: LivenessTransport, onAnswer: () => void): void {
  const wrapped = ANSWER_HANDLERS.has(transport);
  ANSWER_HANDLERS.set(transport, onAnswer);
  if (wrapped) return;
  const emit = transport.emit.bind(transport);
  transport.emit = ((event: string | symbol, ...args: unknown[]): boolean => {
    if (event === 'data' && isPingAnswer(args[0])) {
      ANSWER_HANDLERS.get(transport)?.();
      return true;
    }
    return emit(event, ...args);
  }) as typeof transport.emit;
}

/** a JSON-RPC response (result or error) to one of the gateway's own pings */
export function isPingAnswer(chunk: unknown): boolean {
  const text = Buffer.isBuffer(chunk) ? chunk : typeof chunk === 'string' ? chunk : undefined;
  if (text === undefined || !text.includes(ID_PREFIX)) return false;
  try {
    const msg = JSON.parse(text.toString()) as { id?: unknown; method?: unknown };
    return typeof msg.id === 'string' && msg.id.startsWith(ID_PREFIX) && msg.method === undefined;
  } catch {
    return false;
  }
}
