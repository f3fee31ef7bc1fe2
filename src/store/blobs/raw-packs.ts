import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { MailintakeError } from '../../kernel/errors.js';
import { diskError } from './disk-errors.js';

/** Where one raw mail lives inside a pack. */
export interface RawLocation {
  pack: string;
  offset: number;
  length: number;
}

const PACK = /^[0-9a-f]{32}$/;

/**
 * The raw sources of the mails of one fetch batch, written as ONE file (a pack) and made durable with one
 * fsync, before the batch's transaction records where each mail is. Kept as one file each, the raw copies
 * cost two fsyncs per mail (file and directory) and were measured to cut ingest by a third; in the database,
 * they bloat SQLite's WAL and travel to PostgreSQL as hex text (node-postgres has no binary parameters).
 * No maintained library packs immutable byte ranges with a durability point we control, so this small one is
 * ours. Packs are immutable once written; large mails (streamed, not batched) go to the blob store instead.
 */
export class RawPacks {
  readonly rootDir: string;

  constructor(rootDir: string) {
    this.rootDir = rootDir;
  }

  /** A writer for one batch: `add` each raw mail, then `flush` once, before the commit that refers to them. */
  writer(): RawPackWriter {
    return new RawPackWriter(this.rootDir);
  }

  /** The bytes of one raw mail. A location from anywhere but our own rows is refused before it becomes a path. */
  open(loc: RawLocation): Readable {
    if (!PACK.test(loc.pack) || !Number.isSafeInteger(loc.offset) || !Number.isSafeInteger(loc.length)) {
      throw new MailintakeError('NOT_FOUND', 'not a raw-mail location');
    }
    const path = packPath(this.rootDir, loc.pack);
    return Readable.from(readRange(path, loc.offset, loc.length));
  }
}

function packPath(root: string, pack: string): string {
  return join(root, pack.slice(0, 2), `${pack}.pack`);
}

export class RawPackWriter {
  readonly #root: string;
  readonly #pack = randomBytes(16).toString('hex');
  readonly #parts: Buffer[] = [];
  #size = 0;

  constructor(root: string) {
    this.#root = root;
  }

  add(raw: Buffer): RawLocation {
    const loc = { pack: this.#pack, offset: this.#size, length: raw.length };
    this.#parts.push(raw);
    this.#size += raw.length;
    return loc;
  }

  /** Writes the pack (temp file, fsync, rename, fsync of its directory); a no-op when nothing was added. */
  async flush(): Promise<void> {
    if (this.#parts.length === 0) return;
    try {
      await this.#flush();
    } catch (err) {
      throw diskError(err, this.#root, 'the raw mails of a batch');
    }
  }

  async #flush(): Promise<void> {
    const dir = join(this.#root, this.#pack.slice(0, 2));
    await mkdir(dir, { recursive: true });
    const tmp = join(dir, `${this.#pack}.tmp`);
    try {
      // 'wx': the random name must be new; never write through an existing file or link.
      const fh = await open(tmp, 'wx', 0o600);
      try {
        // writev may write less than asked (a pwritev like any other); go on from where it stopped.
        let written = (await fh.writev(this.#parts)).bytesWritten;
        if (written < this.#size) {
          const all = Buffer.concat(this.#parts);
          while (written < this.#size) {
            written += (await fh.write(all, written, this.#size - written, written)).bytesWritten;
          }
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, packPath(this.#root, this.#pack));
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => undefined);
      throw err;
    }
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } catch {
      // some file systems refuse fsync on a directory; the file itself is synced
    } finally {
      await d.close();
    }
    this.#parts.length = 0;
  }
}

async function* readRange(path: string, offset: number, length: number): AsyncGenerator<Buffer> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new MailintakeError('NOT_FOUND', 'raw mail pack is missing');
    throw err;
  }
  try {
    let done = 0;
    while (done < length) {
      const chunk = Buffer.allocUnsafe(Math.min(64 * 1024, length - done));
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, offset + done);
      if (bytesRead === 0) throw new MailintakeError('NOT_FOUND', 'raw mail pack is shorter than recorded');
      done += bytesRead;
      yield chunk.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}
