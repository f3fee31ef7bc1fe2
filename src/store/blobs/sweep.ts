import { randomBytes } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { lstat, opendir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  SQL_IN_LIST_MAX as CHUNK,
  SWEEP_SET_ASIDE_STALE_MS as SET_ASIDE_STALE_MS,
  SWEEP_GRACE_LEASES,
  SWEEP_INTERVAL_MS,
  SWEEP_MIN_GRACE_MS,
} from '../../kernel/limits.js';
import type { Logger } from '../../kernel/logger.js';
import type { Store } from '../db.js';
import { systemLog } from '../system-log.js';
import { withTransaction } from '../tx.js';
import { isBlobKey } from './blob-store.js';

export { SWEEP_GRACE_LEASES, SWEEP_INTERVAL_MS, SWEEP_MIN_GRACE_MS };

/**
 * How old a leftover must be before it is swept. A round writes its blobs and its batch's pack BEFORE the commit
 * that refers to them, and with several processes on PostgreSQL another machine's round may be between the two
 * right now: nothing in the database tells us so. What bounds that gap is the lease: a round renews it before
 * every batch and stops when it lost it, so a batch that outlives many lease periods belongs to a round that is
 * long gone. 30 lease periods (1 hour at the default 120 s, never less than an hour) leaves a wide margin for a
 * slow batch (a large mail streamed over a slow link) without leaving leftovers for days.
 */
export function sweepGraceMs(leaseSeconds: number): number {
  return Math.max(SWEEP_MIN_GRACE_MS, leaseSeconds * 1000 * SWEEP_GRACE_LEASES);
}

export interface SweepCount {
  count: number;
  bytes: number;
}

export interface SweepResult {
  /** Unfinished blob writes (blobs/tmp/*.part) and pack writes (raw/xx/*.tmp). */
  partial: SweepCount;
  /** Blobs no committed row refers to. */
  blobs: SweepCount;
  /** Raw packs no committed row refers to. */
  packs: SweepCount;
}

/**
 * Deletes what batches that never committed left behind (a crash, a failed commit, a lost lease): partial
 * files, blobs and raw packs no row refers to. Only files older than `graceMs` are considered (see
 * sweepGraceMs), and a blob is checked against the database after it was found old, so:
 * - a committed row's blob or pack is never deleted (it is referenced);
 * - a running round's files are young, and a blob a round stores again (same content, see FileBlobStore.put)
 *   has its mtime renewed, so it is young again before that round commits.
 * The last race (a put renewing a blob between our check and the delete) is closed by moving the blob aside
 * first, looking at its mtime again, and moving it back when it was renewed: a put that came after the move
 * finds no file and writes its own copy.
 * Memory stays bounded: files are read directory by directory and asked about CHUNK keys at a time.
 */
export async function sweepLeftovers(deps: {
  store: Store;
  blobsDir: string;
  rawDir: string;
  graceMs: number;
  logger: Logger;
  now?: () => number;
}): Promise<SweepResult> {
  const cutoff = (deps.now ?? Date.now)() - deps.graceMs;
  const result: SweepResult = {
    partial: { count: 0, bytes: 0 },
    blobs: { count: 0, bytes: 0 },
    packs: { count: 0, bytes: 0 },
  };
  const tmpDir = join(deps.blobsDir, 'tmp');
  await restoreSetAside(deps.blobsDir, tmpDir, (deps.now ?? Date.now)() - SET_ASIDE_STALE_MS);

  for (const entry of await entries(tmpDir)) {
    if (!entry.isFile() || !entry.name.endsWith('.part')) continue;
    await removeIfOld(join(tmpDir, entry.name), cutoff, result.partial);
  }

  for (const top of await entries(deps.blobsDir)) {
    if (!top.isDirectory() || !/^[0-9a-f]{2}$/.test(top.name)) continue;
    const old: { key: string; path: string }[] = [];
    for (const mid of await entries(join(deps.blobsDir, top.name))) {
      if (!mid.isDirectory() || !/^[0-9a-f]{2}$/.test(mid.name)) continue;
      const dir = join(deps.blobsDir, top.name, mid.name);
      for (const f of await entries(dir)) {
        if (!f.isFile() || !isBlobKey(f.name) || !f.name.startsWith(top.name + mid.name)) continue;
        const st = await lstat(join(dir, f.name)).catch(() => null);
        if (st && st.mtimeMs < cutoff) old.push({ key: f.name, path: join(dir, f.name) });
      }
    }
    for (let i = 0; i < old.length; i += CHUNK) {
      const chunk = old.slice(i, i + CHUNK);
      const used = await referencedBlobs(
        deps.store,
        chunk.map((c) => c.key),
      );
      for (const c of chunk) {
        if (!used.has(c.key)) await removeBlobIfStillOld(c.path, c.key, tmpDir, cutoff, result.blobs);
      }
    }
  }

  for (const top of await entries(deps.rawDir)) {
    if (!top.isDirectory() || !/^[0-9a-f]{2}$/.test(top.name)) continue;
    const dir = join(deps.rawDir, top.name);
    const old: { pack: string; path: string }[] = [];
    for (const f of await entries(dir)) {
      if (!f.isFile()) continue;
      const path = join(dir, f.name);
      if (/^[0-9a-f]{32}\.tmp$/.test(f.name)) {
        await removeIfOld(path, cutoff, result.partial);
        continue;
      }
      const m = /^([0-9a-f]{32})\.pack$/.exec(f.name);
      if (!m) continue;
      const st = await lstat(path).catch(() => null);
      if (st && st.mtimeMs < cutoff) old.push({ pack: m[1]!, path });
    }
    for (let i = 0; i < old.length; i += CHUNK) {
      const chunk = old.slice(i, i + CHUNK);
      // Packs are never written twice (a random name per batch), so a pack found old and unreferenced stays so.
      const used = new Set(
        (
          await deps.store.db
            .selectFrom('intake_log')
            .select('raw_pack')
            .where(
              'raw_pack',
              'in',
              chunk.map((c) => c.pack),
            )
            .execute()
        ).map((r) => r.raw_pack),
      );
      for (const c of chunk) if (!used.has(c.pack)) await removeIfOld(c.path, cutoff, result.packs);
    }
  }

  const total = result.partial.count + result.blobs.count + result.packs.count;
  if (total > 0) {
    const bytes = result.partial.bytes + result.blobs.bytes + result.packs.bytes;
    await withTransaction(deps.store, (tx) =>
      systemLog(tx, {
        level: 'info',
        category: 'sweep',
        message: `swept ${total} leftover files of batches that never committed (${bytes} bytes): ${result.blobs.count} blobs, ${result.packs.count} raw packs, ${result.partial.count} unfinished writes`,
        details: { ...result, graceMs: deps.graceMs },
      }),
    );
    deps.logger.info('swept leftovers', { ...result });
  }
  return result;
}

/** Every key of `keys` that a row refers to. */
async function referencedBlobs(store: Store, keys: string[]): Promise<Set<string>> {
  const db = store.db;
  const lists = await Promise.all([
    db.selectFrom('attachments').select('sha256 as k').where('sha256', 'in', keys).execute(),
    db.selectFrom('dropped_attachments').select('sha256 as k').where('sha256', 'in', keys).execute(),
    db.selectFrom('intake_log').select('raw_sha256 as k').where('raw_sha256', 'in', keys).execute(),
    db.selectFrom('error_mails').select('report_blob as k').where('report_blob', 'in', keys).execute(),
    db.selectFrom('error_mails').select('raw_blob as k').where('raw_blob', 'in', keys).execute(),
  ]);
  const used = new Set<string>();
  for (const list of lists) for (const r of list) if (r.k) used.add(r.k);
  return used;
}

async function entries(dir: string): Promise<Dirent[]> {
  const out: Dirent[] = [];
  try {
    for await (const e of await opendir(dir)) out.push(e);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  return out;
}

async function removeIfOld(path: string, cutoff: number, count: SweepCount): Promise<void> {
  const st = await lstat(path).catch(() => null);
  if (!st || st.mtimeMs >= cutoff) return;
  await rm(path, { force: true });
  count.count++;
  count.bytes += st.size;
}

const SET_ASIDE = /^([0-9a-f]{64})\.[0-9a-f]{16}\.swept$/;

/** Moves the blob aside, looks at it again, deletes it if still old, else puts it back. */
async function removeBlobIfStillOld(
  path: string,
  key: string,
  tmpDir: string,
  cutoff: number,
  count: SweepCount,
): Promise<void> {
  const aside = join(tmpDir, `${key}.${randomBytes(8).toString('hex')}.swept`);
  try {
    await rename(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // another sweep took it
    throw err;
  }
  const st = await lstat(aside).catch(() => null);
  if (!st) return;
  if (st.mtimeMs < cutoff) {
    await rm(aside, { force: true });
    count.count++;
    count.bytes += st.size;
  } else {
    // a round stored these bytes again meanwhile: they are about to be referenced
    await rename(aside, path).catch(() => undefined);
  }
}

/**
 * A sweep cut off between moving a blob aside and deciding leaves it in tmp: put back, to be judged again. Only
 * ones set aside a while ago (the move renewed their ctime): a younger one is another process's sweep deciding.
 */
async function restoreSetAside(blobsDir: string, tmpDir: string, before: number): Promise<void> {
  for (const e of await entries(tmpDir)) {
    const m = SET_ASIDE.exec(e.name);
    if (!m) continue;
    const key = m[1]!;
    const path = join(tmpDir, e.name);
    const st = await lstat(path).catch(() => null);
    if (!st || st.ctimeMs >= before) continue;
    await rename(path, join(blobsDir, key.slice(0, 2), key.slice(2, 4), key)).catch(() => undefined);
  }
}
