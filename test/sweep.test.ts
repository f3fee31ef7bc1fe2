import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import { createLogger } from '../src/kernel/logger.js';
import { FileBlobStore } from '../src/store/blobs/blob-store.js';
import { RawPacks } from '../src/store/blobs/raw-packs.js';
import { type SweepResult, sweepGraceMs, sweepLeftovers } from '../src/store/blobs/sweep.js';
import { openStore, type Store } from '../src/store/db.js';
import { conditions } from './kit/conditions.js';
import { imapsMailbox } from './kit/mailboxes.js';
import { buildMail } from './kit/mails.js';
import { deliverMaildir } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';

/**
 * Issue 10 item 7: what batches that never committed leave behind (blobs, raw packs, blobs/tmp/*.part and
 * raw/xx/*.tmp) is swept at `serve`'s start, and nothing a committed row refers to, or a running round may still
 * use (a young file, a blob stored again), is touched. Committed files are made OLD too, so they survive by
 * their references and not by their age. Real Dovecot, both engines.
 */

const DAY_MS = 24 * 3600 * 1000;
const readAll = async (stream: Readable): Promise<Buffer> => {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
};
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name));
}

function age(file: string, ms: number): void {
  const t = new Date(Date.now() - ms);
  fs.utimesSync(file, t, t);
}

/** A mail of about 1.5 MB: streamed into the blob store (not a pack), and over a 1 MB limit: an error mail. */
function bigMail(subject: string, messageId: string): Buffer {
  const line = `${'0123456789'.repeat(7)}\r\n`;
  return buildMail({ subject, messageId, body: `A log follows.\r\n${line.repeat(21_000)}` });
}

describe.each(ENGINES)('sweeping leftovers of batches that never committed, on %s', (engine) => {
  let dovecot: DovecotServer;
  let fresh: Awaited<ReturnType<typeof freshConfig>>;
  let store: Store;

  beforeAll(async () => {
    dovecot = await startDovecot({ users: [{ name: 'sweep', password: 'sweep-pw' }] });
    fresh = await freshConfig(engine, { MAILINTAKE_MAX_MAIL_MB: '1' });
    store = await openStore({ databaseUrl: fresh.env.DATABASE_URL, dataDir: fresh.config.dataDir });
  });
  afterAll(async () => {
    await store?.close();
    await dovecot?.stop();
    await fresh?.cleanup();
  });

  it('at start: leftovers go, every committed blob and pack still opens, young files and re-stored blobs stay', async () => {
    const blobsDir = path.join(fresh.config.dataDir, 'blobs');
    const rawDir = path.join(fresh.config.dataDir, 'raw');
    const blobs = new FileBlobStore(blobsDir);
    const packs = new RawPacks(rawDir);

    // 1. committed data of every kind: packed small mails, attachments, a streamed raw blob, an error mail's report
    let rt = await openRuntime(fresh.config);
    try {
      await rt.services.mailboxes.add(
        imapsMailbox(dovecot, 'sweep', 'sweep', { idle: false, moveToErrorFolder: true }),
      );
      await deliverMaildir(dovecot, 'sweep', [
        ...Array.from({ length: 5 }, (_, i) =>
          buildMail({
            subject: `small ${i}`,
            messageId: `small-${i}@sweep.test`,
            attachments: [
              { filename: `note-${i}.txt`, contentType: 'text/plain', content: Buffer.from(`note ${i}\n`) },
            ],
          }),
        ),
        bigMail('too large', 'big@sweep.test'),
      ]);
      const [summary] = await rt.services.fetch.once({ mailbox: 'sweep' });
      expect(summary).toMatchObject({ created: 5, errored: 1, movedToErrorFolder: 1 });
    } finally {
      await rt.close();
    }
    const attachments = await store.db.selectFrom('attachments').select('sha256').execute();
    const logRows = await store.db
      .selectFrom('intake_log')
      .select(['raw_sha256', 'raw_pack', 'raw_offset', 'raw_length', 'content_hash'])
      .execute();
    const errorRows = await store.db.selectFrom('error_mails').select(['report_blob', 'raw_blob']).execute();
    expect(attachments.length).toBe(5);
    expect(logRows.filter((r) => r.raw_pack).length).toBe(5);
    expect(logRows.filter((r) => r.raw_sha256 && !r.raw_pack).length).toBe(1);
    expect(errorRows).toHaveLength(1);
    const committedBlobs = new Set([
      ...attachments.map((a) => a.sha256),
      ...logRows.flatMap((r) => (r.raw_sha256 && !r.raw_pack ? [r.raw_sha256] : [])),
      ...errorRows.flatMap((r) => [r.report_blob, ...(r.raw_blob ? [r.raw_blob] : [])]),
    ]);
    const committedFiles = new Set([
      ...[...committedBlobs].map((k) => blobs.pathOf(k)),
      ...filesUnder(rawDir),
    ]);

    // 2. leftovers of batches that never committed, old; and young ones a running round may still use
    const orphanBlobs: string[] = [];
    for (let i = 0; i < 7; i++) {
      orphanBlobs.push((await blobs.put(Readable.from([randomBytes(1000 + i)]))).sha256);
    }
    const orphanPack = packs.writer();
    orphanPack.add(randomBytes(3000));
    await orphanPack.flush();
    const packFiles = new Set(filesUnder(rawDir));
    const orphanPackFile = [...packFiles].find((f) => !committedFiles.has(f))!;
    fs.mkdirSync(path.join(blobsDir, 'tmp'), { recursive: true });
    const partFile = path.join(blobsDir, 'tmp', `${randomBytes(16).toString('hex')}.part`);
    fs.writeFileSync(partFile, randomBytes(2048));
    const packTmp = path.join(path.dirname(orphanPackFile), `${randomBytes(16).toString('hex')}.tmp`);
    fs.writeFileSync(packTmp, randomBytes(4096));
    const youngBlob = (await blobs.put(Readable.from([randomBytes(777)]))).sha256;
    const youngPart = path.join(blobsDir, 'tmp', `${randomBytes(16).toString('hex')}.part`);
    fs.writeFileSync(youngPart, randomBytes(10));
    // an old unreferenced blob a round stores again (same bytes): about to be referenced, so it must stay
    const again = randomBytes(555);
    const reStored = (await blobs.put(Readable.from([again]))).sha256;

    const grace = sweepGraceMs(fresh.config.leaseSeconds);
    const old = grace + DAY_MS;
    for (const f of committedFiles) age(f, old);
    for (const k of orphanBlobs) age(blobs.pathOf(k), old);
    for (const f of [orphanPackFile, partFile, packTmp]) age(f, old);
    age(blobs.pathOf(reStored), old);
    age(youngPart, grace / 2);
    expect((await blobs.put(Readable.from([again]))).sha256).toBe(reStored);
    const leftoverBytes =
      orphanBlobs.reduce((n, k) => n + fs.statSync(blobs.pathOf(k)).size, 0) +
      [orphanPackFile, partFile, packTmp].reduce((n, f) => n + fs.statSync(f).size, 0);

    // 3. serve's start sweeps
    const swept = conditions();
    const results: SweepResult[] = [];
    rt = await openRuntime(fresh.config, {
      onSweep: (r) => {
        results.push(r);
        swept.recheck();
      },
    });
    try {
      rt.startScheduler();
      await swept.until(() => results.length >= 1);
    } finally {
      await rt.close();
    }
    expect(results[0]).toEqual({
      partial: { count: 2, bytes: 2048 + 4096 },
      blobs: { count: orphanBlobs.length, bytes: orphanBlobs.reduce((n, _, i) => n + 1000 + i, 0) },
      packs: { count: 1, bytes: 3000 },
    });
    expect(results[0]!.partial.bytes + results[0]!.blobs.bytes + results[0]!.packs.bytes).toBe(leftoverBytes);

    for (const k of orphanBlobs) expect(fs.existsSync(blobs.pathOf(k)), k).toBe(false);
    for (const f of [orphanPackFile, partFile, packTmp]) expect(fs.existsSync(f), f).toBe(false);
    expect(fs.existsSync(blobs.pathOf(youngBlob))).toBe(true);
    expect(fs.existsSync(youngPart)).toBe(true);
    expect(fs.existsSync(blobs.pathOf(reStored))).toBe(true);
    // nothing set aside is left in tmp
    expect(fs.readdirSync(path.join(blobsDir, 'tmp')).filter((n) => n.endsWith('.swept'))).toEqual([]);

    // every committed row's blobs and packs still open, with the bytes recorded
    for (const k of committedBlobs) expect(sha(await readAll(blobs.get(k)))).toBe(k);
    for (const r of logRows.filter((x) => x.raw_pack)) {
      const raw = await readAll(
        packs.open({ pack: r.raw_pack!, offset: Number(r.raw_offset), length: Number(r.raw_length) }),
      );
      expect(raw.length).toBe(Number(r.raw_length));
      expect(raw.toString('latin1')).toMatch(/^From: /);
    }

    const log = await store.db
      .selectFrom('system_log')
      .select(['message', 'details'])
      .where('category', '=', 'sweep')
      .execute();
    expect(log).toHaveLength(1);
    expect(log[0]!.message).toContain(`(${leftoverBytes} bytes)`);
    expect(JSON.parse(log[0]!.details)).toMatchObject({ blobs: { count: orphanBlobs.length } });

    // a second sweep finds nothing and logs nothing
    const again2 = await sweepLeftovers({
      store,
      blobsDir,
      rawDir,
      graceMs: grace,
      logger: createLogger('silent'),
    });
    expect(again2.blobs.count + again2.packs.count + again2.partial.count).toBe(0);
  });

  it('a blob set aside by a sweep that was cut off is put back and judged again', async () => {
    const blobsDir = path.join(fresh.config.dataDir, 'blobs');
    const blobs = new FileBlobStore(blobsDir);
    const used = (await store.db.selectFrom('attachments').select('sha256').executeTakeFirstOrThrow()).sha256;
    const file = blobs.pathOf(used);
    const aside = path.join(blobsDir, 'tmp', `${used}.${randomBytes(8).toString('hex')}.swept`);
    fs.renameSync(file, aside);
    const grace = sweepGraceMs(fresh.config.leaseSeconds);
    // the set-aside file looks 11 minutes old to the sweep (ctime cannot be set; the clock is moved instead)
    const result = await sweepLeftovers({
      store,
      blobsDir,
      rawDir: path.join(fresh.config.dataDir, 'raw'),
      graceMs: grace,
      logger: createLogger('silent'),
      now: () => Date.now() + 11 * 60_000,
    });
    expect(result.blobs.count).toBe(0);
    expect(fs.existsSync(aside)).toBe(false);
    expect(sha(fs.readFileSync(file))).toBe(used);
  });
});
