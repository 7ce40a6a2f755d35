import { createReadStream } from 'node:fs';
import { mkdir, open, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline';
import { Cdr } from './cdr';
import { CdrPage, CdrQuery, CdrStore } from './cdr-store';

/** a line longer than this is not a CDR we wrote: skipped when reading */
const MAX_LINE_CHARS = 256 * 1024;

/**
 * CDRs as JSON lines appended to one file (FERRY_CDR_FILE). Writes are queued and written in order by
 * one writer; each batch of lines is one append followed by one fdatasync, and `write()` resolves
 * once its line is on disk (docs/cdr.md, "The file"). Reading scans the file (a file of a few million
 * lines takes seconds: use Redis for big volumes, or rotate the file with `logrotate copytruncate`).
 */
export class CdrFileStore implements CdrStore {
  readonly name = 'file';
  private handle: FileHandle | undefined;
  private queue: { line: string; done: (err?: Error) => void }[] = [];
  private writing: Promise<void> | undefined;

  constructor(readonly file: string) {}

  write(cdr: Cdr): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ line: `${JSON.stringify(cdr)}\n`, done: (err) => (err ? reject(err) : resolve()) });
      this.writing ??= this.drain().finally(() => (this.writing = undefined));
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      try {
        let lead = '';
        if (!this.handle) {
          await mkdir(path.dirname(this.file), { recursive: true });
          this.handle = await open(this.file, 'a+', 0o640);
          // a line torn by a crash is closed first, so the next CDR starts a line of its own
          const { size } = await this.handle.stat();
          if (size > 0) {
            const last = Buffer.alloc(1);
            await this.handle.read(last, 0, 1, size - 1);
            if (last[0] !== 0x0a) lead = '\n';
          }
        }
        await this.handle.appendFile(lead + batch.map((b) => b.line).join(''));
        await this.handle.datasync();
        for (const b of batch) b.done();
      } catch (err) {
        // the next write opens the file again (it may have been moved by a rotation)
        await this.handle?.close().catch(() => undefined);
        this.handle = undefined;
        for (const b of batch) b.done(err as Error);
      }
    }
  }

  /** every CDR line of the file, in file order (missing file: none); `stop` ends the scan early */
  private async scan(visit: (cdr: Cdr) => boolean | void): Promise<void> {
    try {
      await stat(this.file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const stream = createReadStream(this.file, { encoding: 'utf8' });
    const lines = readline.createInterface({ input: stream, crlfDelay: Infinity });
    try {
      for await (const line of lines) {
        if (line.length === 0 || line.length > MAX_LINE_CHARS) continue;
        let cdr: Cdr;
        try {
          cdr = JSON.parse(line) as Cdr;
        } catch {
          continue; // a torn last line after a crash
        }
        if (!cdr || typeof cdr.callId !== 'string' || typeof cdr.endedAt !== 'number') continue;
        if (visit(cdr) === true) break;
      }
    } finally {
      lines.close();
      stream.destroy();
    }
  }

  async list(q: CdrQuery): Promise<CdrPage> {
    const hits: Cdr[] = [];
    let matched = 0;
    let more = false;
    await this.scan((cdr) => {
      if (cdr.endedAt < q.from || cdr.endedAt >= q.to) return;
      matched++;
      if (matched <= q.offset) return;
      if (hits.length === q.limit) {
        more = true;
        return true;
      }
      hits.push(cdr);
    });
    hits.sort((a, b) => a.endedAt - b.endedAt);
    return { cdrs: hits, ...(more ? { nextOffset: q.offset + q.limit } : {}) };
  }

  async get(callId: string): Promise<Cdr | undefined> {
    let found: Cdr | undefined;
    await this.scan((cdr) => {
      if (cdr.callId === callId) found = cdr; // the last line for the id wins
    });
    return found;
  }

  async close(): Promise<void> {
    await this.writing;
    await this.handle?.close().catch(() => undefined);
    this.handle = undefined;
  }
}
