import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, rename, rm, stat, utimes } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { MailintakeError } from '../../kernel/errors.js';
import { BLOB_HEAD_BYTES as HEAD_BYTES } from '../../kernel/limits.js';
import { diskError } from './disk-errors.js';

/**
 * Content-addressed storage for attachment bodies and encrypted error reports. The key is the sha256 of the
 * content, so storing the same bytes twice is one file and a key names exactly one content forever.
 * The file store below is the embedded default; an S3-compatible store can implement the same interface.
 */
export interface BlobStore {
  /**
   * Stores the stream's bytes; resolves with their key and length once they are durable — or, with
   * `{ sync: false }`, once they are written, leaving durability to a later `syncAll` of the keys.
   */
  put(stream: Readable, opts?: { sync?: boolean }): Promise<{ sha256: string; size: number }>;
  /** Makes earlier unsynced puts durable (file data and directory entries), several at once. */
  syncAll(keys: Iterable<string>): Promise<void>;
  /**
   * The content of a blob. A missing blob is reported as a NOT_FOUND MailintakeError on the stream (a remote
   * store only learns it on the first read); call `has` first to answer "not found" before streaming.
   * A string that is not a key throws NOT_FOUND at once.
   */
  get(sha256: string): Readable;
  has(sha256: string): Promise<boolean>;
  /** Size in bytes; NOT_FOUND when missing. */
  size(sha256: string): Promise<number>;
  /**
   * Deletes a blob (no error when it is gone already). Only for blobs one row owns alone — sealed error reports
   * after `secret-key reseal` wrote them anew: content addressing shares a key between identical contents.
   */
  remove?(sha256: string): Promise<void>;
}

const KEY = /^[0-9a-f]{64}$/;

/** Whether a string is a blob key: exactly 64 lower-case hex digits (a sha256). */
export function isBlobKey(value: string): boolean {
  return KEY.test(value);
}

/**
 * Refuses anything but a sha256 before it is joined into a path. Keys reach us from the API and the database;
 * without this, a key like `../../../etc/passwd` or `/abs/path` (or one with a NUL byte) would make `get`
 * read, and `size`/`has` probe, any file the process can see.
 */
function assertKey(sha256: string): void {
  if (!isBlobKey(sha256)) {
    throw new MailintakeError('NOT_FOUND', 'Not a blob key (expected 64 lower-case hex digits).');
  }
}

function isEnoent(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === 'ENOENT';
}

/**
 * Blobs as files under `rootDir`: `ab/cd/<sha256>` (two fan-out levels keep directories small).
 * A put streams into `tmp/<random>` while hashing, fsyncs, then renames into place, so a reader never sees a
 * half-written blob and a crash leaves at most a stray temp file. The path is built from the hash only:
 * attachment file names never become paths.
 */
export class FileBlobStore implements BlobStore {
  readonly rootDir: string;
  readonly #tmpDir: string;
  /** Directories known to exist: a put costs several file-system calls, each a trip to libuv's pool. */
  readonly #dirs = new Set<string>();

  constructor(rootDir: string) {
    this.rootDir = rootDir;
    this.#tmpDir = join(rootDir, 'tmp');
  }

  async #ensureDir(dir: string): Promise<void> {
    if (this.#dirs.has(dir)) return;
    await mkdir(dir, { recursive: true });
    this.#dirs.add(dir);
  }

  pathOf(sha256: string): string {
    assertKey(sha256);
    return join(this.rootDir, sha256.slice(0, 2), sha256.slice(2, 4), sha256);
  }

  async put(stream: Readable, opts: { sync?: boolean } = {}): Promise<{ sha256: string; size: number }> {
    let sourceError: unknown = null;
    const onSourceError = (err: unknown) => {
      sourceError ??= err;
    };
    stream.once('error', onSourceError);
    try {
      return await this.#put(stream, opts.sync ?? true);
    } catch (err) {
      // The source's own failure (a connection that broke mid-mail) stays what it is; the rest is the disk's.
      if (sourceError !== null && err === sourceError) throw err;
      throw diskError(err, this.rootDir, 'a blob (attachment, raw mail or error report)');
    } finally {
      stream.off('error', onSourceError);
    }
  }

  async #put(stream: Readable, sync: boolean): Promise<{ sha256: string; size: number }> {
    await this.#ensureDir(this.#tmpDir);
    const tmp = join(this.#tmpDir, `${randomBytes(16).toString('hex')}.part`);
    const hash = createHash('sha256');
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        hash.update(chunk);
        size += chunk.length;
        callback(null, chunk);
      },
    });
    try {
      // 'wx': the random name must be new; never write through an existing file or link.
      await pipeline(stream, meter, createWriteStream(tmp, { flags: 'wx', mode: 0o600 }));
      if (sync) await syncFile(tmp);
      const sha256 = hash.digest('hex');
      const target = this.pathOf(sha256);
      if (await touch(target)) {
        // Same content stored before: keep the existing file, the key already names these bytes. Its mtime is
        // renewed: the leftover sweep (sweep.ts) deletes only OLD unreferenced blobs, and this one is about to
        // be referenced by a commit that has not happened yet.
        await rm(tmp, { force: true });
        return { sha256, size };
      }
      const dir = join(this.rootDir, sha256.slice(0, 2), sha256.slice(2, 4));
      await this.#ensureDir(dir);
      // rename is atomic within one file system; two concurrent puts of the same bytes both succeed.
      await rename(tmp, target);
      if (sync) await syncDir(dir);
      return { sha256, size };
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => {});
      stream.destroy();
      throw err;
    }
  }

  /**
   * fsync costs ~0.5 ms each on this kind of disk, twice per blob (file, directory). A fetch round writes a
   * batch of blobs unsynced, then syncs them all here at once (in parallel on libuv's pool, each directory
   * once) before the one transaction that refers to them: a committed row never points at a blob a power cut
   * could take back.
   */
  async syncAll(keys: Iterable<string>): Promise<void> {
    const files = [...new Set(keys)].map((k) => this.pathOf(k));
    const dirs = [...new Set(files.map((f) => dirname(f)))];
    try {
      await inParallel(files, 8, syncFile);
      await inParallel(dirs, 8, syncDir);
    } catch (err) {
      // fsync is where a delayed write-back learns of a full disk (ENOSPC, EIO) on some file systems.
      throw diskError(err, this.rootDir, 'blobs (attachments, raw mails)');
    }
  }

  get(sha256: string): Readable {
    const path = this.pathOf(sha256);
    return Readable.from(readFile(path, sha256), { objectMode: false });
  }

  async has(sha256: string): Promise<boolean> {
    if (!isBlobKey(sha256)) return false;
    return exists(this.pathOf(sha256));
  }

  async size(sha256: string): Promise<number> {
    const path = this.pathOf(sha256);
    try {
      return (await stat(path)).size;
    } catch (err) {
      if (isEnoent(err)) throw notFound(sha256);
      throw err;
    }
  }

  async remove(sha256: string): Promise<void> {
    const path = this.pathOf(sha256);
    await rm(path, { force: true });
    await syncDir(dirname(path));
  }
}

function notFound(sha256: string): MailintakeError {
  return new MailintakeError('NOT_FOUND', `No blob ${sha256}.`, { details: { sha256 } });
}

async function* readFile(path: string, sha256: string): AsyncGenerator<Buffer> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if (isEnoent(err)) throw notFound(sha256);
    throw err;
  }
  try {
    const chunk = Buffer.allocUnsafe(64 * 1024);
    for (;;) {
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) return;
      yield Buffer.from(chunk.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if (isEnoent(err)) return false;
    throw err;
  }
}

/**
 * Sets a file's times to now; false when it does not exist, or is not ours to touch (a data directory copied by
 * another user): the caller then renames its own copy of the same bytes over it, which is new too.
 */
async function touch(path: string): Promise<boolean> {
  const now = new Date();
  try {
    await utimes(path, now, now);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException | null)?.code;
    if (code === 'ENOENT' || code === 'EPERM' || code === 'EACCES') return false;
    throw err;
  }
}

async function syncFile(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function inParallel<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}

/**
 * A BlobStore whose puts are not synced one by one: `flush()` syncs everything put through it since the last
 * flush. The parser writes attachments through one of these; the fetch round flushes before it commits.
 */
export class DeferredSyncBlobs implements BlobStore {
  readonly #inner: BlobStore;
  readonly #written = new Set<string>();
  readonly #heads = new Map<string, Buffer>();

  constructor(inner: BlobStore) {
    this.#inner = inner;
  }

  async put(stream: Readable): Promise<{ sha256: string; size: number }> {
    // The first bytes are kept as they pass: the attachment checks sniff them (magic bytes) without opening
    // the file again. 16 KB is more than file-type's 4,100-byte sample.
    const head: Buffer[] = [];
    let kept = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        if (kept < HEAD_BYTES) {
          const part = chunk.subarray(0, HEAD_BYTES - kept);
          head.push(Buffer.from(part));
          kept += part.length;
        }
        callback(null, chunk);
      },
    });
    stream.once('error', (err) => tap.destroy(err));
    const stored = await this.#inner.put(stream.pipe(tap), { sync: false });
    this.#written.add(stored.sha256);
    this.#heads.set(stored.sha256, Buffer.concat(head));
    return stored;
  }

  /** The first bytes of a blob put through this writer (up to 16 KB), if it was. */
  head(sha256: string): Buffer | undefined {
    return this.#heads.get(sha256);
  }

  async flush(): Promise<void> {
    const keys = [...this.#written];
    this.#written.clear();
    await this.#inner.syncAll(keys);
  }

  syncAll(keys: Iterable<string>): Promise<void> {
    return this.#inner.syncAll(keys);
  }
  get(sha256: string): Readable {
    return this.#inner.get(sha256);
  }
  has(sha256: string): Promise<boolean> {
    return this.#inner.has(sha256);
  }
  size(sha256: string): Promise<number> {
    return this.#inner.size(sha256);
  }
}

/**
 * A BlobStore that keeps nothing: puts are hashed and dropped. For reading a mail's headers again when the
 * real store refused its attachments (a full disk): the error row gets the sender and subject, and nothing is
 * written to the disk that is full.
 */
export class DiscardingBlobs implements BlobStore {
  async put(stream: Readable): Promise<{ sha256: string; size: number }> {
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of stream) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    return { sha256: hash.digest('hex'), size };
  }
  async syncAll(): Promise<void> {}
  get(sha256: string): Readable {
    throw notFound(sha256);
  }
  async has(): Promise<boolean> {
    return false;
  }
  async size(sha256: string): Promise<number> {
    throw notFound(sha256);
  }
}

/** Makes the rename durable: the directory entry is data too (POSIX). Not every platform can fsync a directory. */
async function syncDir(dir: string): Promise<void> {
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // Windows and some file systems refuse fsync on a directory; the file itself is synced already.
  } finally {
    await fh?.close().catch(() => {});
  }
}
