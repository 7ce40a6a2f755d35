import { LoadWorker } from './load-worker';
import type { Direction } from './stream-stamp';
import type { StreamSpec } from './worker-protocol';

/** One plain-RTP phone played by an rtp-peer-worker. */
export interface Phone {
  worker: LoadWorker;
  streamId: number;
  direction: Direction;
  /** Its RTP port on 127.0.0.1 (RTCP on port+1). */
  port: number;
}

/** The plain-RTP phones of a phase, spread round-robin over several rtp-peer-worker processes. */
export class PhonePool {
  private readonly pool: LoadWorker[];
  private next = 0;
  private readonly opened = new Map<LoadWorker, number[]>();

  constructor(
    count: number,
    private readonly streamIds: () => number,
    label: string,
  ) {
    this.pool = Array.from({ length: Math.max(1, count) }, (_, i) => new LoadWorker('rtp-peer', `${label}-rtp${i}`));
  }

  workers(): LoadWorker[] {
    return this.pool;
  }

  /** Open one phone per entry of `directions` (each call's phones land on different workers when possible). */
  async open(directions: readonly Direction[]): Promise<Phone[]> {
    const perWorker = new Map<LoadWorker, { index: number; spec: StreamSpec }[]>();
    directions.forEach((direction, index) => {
      const worker = this.pool[this.next++ % this.pool.length]!;
      const streamId = this.streamIds();
      const spec: StreamSpec = { streamId, direction, ssrc: (0x10000000 + streamId) >>> 0 };
      const list = perWorker.get(worker) ?? [];
      list.push({ index, spec });
      perWorker.set(worker, list);
    });
    const phones = new Array<Phone>(directions.length);
    await Promise.all(
      [...perWorker.entries()].map(async ([worker, list]) => {
        const ports = await worker.request<{ streamId: number; port: number }[]>({
          op: 'open',
          streams: list.map((x) => x.spec),
        });
        list.forEach((x, k) => {
          phones[x.index] = { worker, streamId: x.spec.streamId, direction: x.spec.direction, port: ports[k]!.port };
        });
        this.opened.set(worker, [...(this.opened.get(worker) ?? []), ...list.map((x) => x.spec.streamId)]);
      }),
    );
    return phones;
  }

  /** Start the phone sending to the media server's address for it. */
  target(phone: Phone, host: string, port: number): Promise<unknown> {
    return phone.worker.request({ op: 'target', streamId: phone.streamId, host, port });
  }

  /** Stop and close every phone opened so far. */
  async closeAll(): Promise<void> {
    const opened = [...this.opened.entries()];
    this.opened.clear();
    await Promise.all(opened.map(([w, ids]) => w.request({ op: 'close', streamIds: ids }).catch(() => undefined)));
  }

  async stop(): Promise<void> {
    await Promise.all(this.pool.map((w) => w.stop()));
  }
}
