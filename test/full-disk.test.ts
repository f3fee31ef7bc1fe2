import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import { openStore, type Store } from '../src/store/db.js';
import { imapsMailbox } from './kit/mailboxes.js';
import { buildMail } from './kit/mails.js';
import { deliverMaildir, listInbox } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';

/**
 * A full disk, for real: the data directory's blob store is a 2 MB tmpfs, filled up but for a little room.
 * Mails whose attachments do not fit must end as STORE_FAILED naming the full directory (not INTERNAL, not
 * PARSE_FAILED, which would move them to the error folder), with their sender and subject; the mails that fit
 * go in; nothing failed is acknowledged; a store that keeps failing raises an alert like a failing
 * connection; once there is room again the waiting mails go in and admins are told.
 * Mounting needs root (the test run is root here); elsewhere the test is skipped, not faked.
 */
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

describe.runIf(isRoot).each(ENGINES)('a full disk under the blob store, on %s', (engine) => {
  let dovecot: DovecotServer;
  let rt: Runtime;
  let store: Store;
  let fresh: Awaited<ReturnType<typeof freshConfig>>;
  let blobsDir: string;
  let filler: string;
  let mounted = false;

  beforeAll(async () => {
    dovecot = await startDovecot({ users: [{ name: 'full', password: 'full-pw' }] });
    fresh = await freshConfig(engine);
    blobsDir = path.join(fresh.config.dataDir, 'blobs');
    fs.mkdirSync(blobsDir, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'tmpfs', blobsDir]);
    mounted = true;
    // Filled but for ~200 KB: room for small attachments, none for a 400 KB one.
    filler = path.join(blobsDir, 'filler');
    fs.writeFileSync(filler, Buffer.alloc(2 * 1024 * 1024 - 200 * 1024));
    rt = await openRuntime(fresh.config);
    await rt.services.mailboxes.add(imapsMailbox(dovecot, 'full', 'full'));
    await rt.services.alerts.set({ threshold: 2 });
    await rt.services.notificationRules.set({ event: 'mail-error', recipients: ['tech@example.test'] });
    store = await openStore({ databaseUrl: fresh.env.DATABASE_URL, dataDir: fresh.config.dataDir });
  });
  afterAll(async () => {
    await store?.close();
    await rt?.close();
    await dovecot?.stop();
    if (mounted) execFileSync('umount', [blobsDir]);
    await fresh?.cleanup();
  });

  const attachment = (kb: number) => ({
    filename: `scan-${kb}.pdf`,
    contentType: 'application/pdf',
    content: Buffer.concat([Buffer.from('%PDF-1.4\n'), randomBytes(kb * 1024)]),
  });

  it('records STORE_FAILED naming the full directory, alerts when it keeps failing, and takes the mails in once there is room', async () => {
    await deliverMaildir(dovecot, 'full', [
      buildMail({
        from: 'Big One <big1@example.test>',
        subject: 'too big 1',
        attachments: [attachment(400)],
      }),
      buildMail({ subject: 'fits' }),
      buildMail({
        from: 'Big Two <big2@example.test>',
        subject: 'too big 2',
        attachments: [attachment(450)],
      }),
    ]);

    const [first] = await rt.services.fetch.once({ mailbox: 'full' });
    expect(first).toMatchObject({ reached: true, error: null, fetched: 3, created: 1, errored: 2 });
    const failed = await store.db
      .selectFrom('intake_log')
      .selectAll()
      .where('outcome', '=', 'error')
      .orderBy('id')
      .execute();
    expect(failed.map((r) => [r.error_code, r.subject, r.from_address, r.acknowledged])).toEqual([
      ['STORE_FAILED', 'too big 1', 'big1@example.test', 0],
      ['STORE_FAILED', 'too big 2', 'big2@example.test', 0],
    ]);
    for (const r of failed) {
      const [reason] = JSON.parse(r.reasons) as string[];
      expect(reason).toContain(`the file system of ${blobsDir} is full`);
      expect(reason).toContain('ENOSPC');
    }
    const seen = (await listInbox(dovecot, 'full')).map((m) => m.flags.includes('\\Seen'));
    expect(seen).toEqual([false, true, false]);

    // The threshold is 2: the second round that cannot store raises the alert (bell + system log).
    const [second] = await rt.services.fetch.once({ mailbox: 'full' });
    expect(second).toMatchObject({ fetched: 2, errored: 2, error: null });
    const bell = (await rt.services.notifications.list({})).items;
    expect(bell.map((n) => n.title)).toEqual(['Mailbox full cannot store mail: 2 rounds in a row']);
    expect(bell[0]!.body).toContain(`the file system of ${blobsDir} is full`);
    // The technicians of the 'mail-error' rule get it by email (the outbox row commits with the alert).
    const mails = await store.db
      .selectFrom('mail_outbox')
      .select(['event', 'recipients', 'subject'])
      .execute();
    expect(mails).toEqual([
      {
        event: 'mail-error',
        recipients: JSON.stringify(['tech@example.test']),
        subject: 'Mailbox full cannot store mail: 2 rounds in a row',
      },
    ]);
    const alerts = (await rt.services.systemLog.list({ category: 'store-failure' })).items;
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.details).toMatchObject({ code: 'STORE_FAILED', path: blobsDir, failures: 2 });

    // Room again: the waiting mails go in (their error rows replaced), and admins are told it works again.
    fs.rmSync(filler);
    const [third] = await rt.services.fetch.once({ mailbox: 'full' });
    expect(third).toMatchObject({ fetched: 2, created: 2, errored: 0, error: null });
    const log = await store.db.selectFrom('intake_log').select(['outcome', 'acknowledged']).execute();
    expect(log.map((r) => [r.outcome, r.acknowledged])).toEqual([
      ['created', 1],
      ['created', 1],
      ['created', 1],
    ]);
    expect((await listInbox(dovecot, 'full')).every((m) => m.flags.includes('\\Seen'))).toBe(true);
    const titles = (await rt.services.notifications.list({})).items.map((n) => n.title);
    expect(titles).toContain('Mailbox full stores mail again');
    // "Works again" is for the admins' bell only: no second email.
    expect(await store.db.selectFrom('mail_outbox').select('id').execute()).toHaveLength(1);
    expect((await rt.services.systemLog.list({ category: 'store-recovered' })).items).toHaveLength(1);
  });

  it('a reply whose attachment does not fit is refused as STORE_FAILED naming the directory, with nothing half stored or queued; with room it goes in', async () => {
    const requestId = (await rt.services.requests.list({})).items[0]!.id;
    const conversations = async () => (await rt.services.requests.show(requestId)).conversations.length;
    const outboxRows = async () => (await store.db.selectFrom('mail_outbox').select('id').execute()).length;
    const before = { conversations: await conversations(), outbox: await outboxRows() };
    // filled again but for ~200 KB (the mails taken in above hold some of it now)
    const free = Number(execFileSync('df', ['--output=avail', '-B1', blobsDir]).toString().split('\n')[1]);
    fs.writeFileSync(filler, Buffer.alloc(Math.max(0, free - 200 * 1024)));
    try {
      const refused = await rt.services.requests
        .reply(requestId, { text: 'Here is the big file.', attachments: [attachment(400)] })
        .then(
          () => null,
          (e: unknown) => e,
        );
      expect(refused).toMatchObject({ code: 'STORE_FAILED' });
      expect((refused as Error).message).toContain(`the file system of ${blobsDir} is full`);
      expect(await conversations()).toBe(before.conversations);
      expect(await outboxRows()).toBe(before.outbox);
    } finally {
      fs.rmSync(filler);
    }
    const sent = await rt.services.requests.reply(requestId, {
      text: 'Here is the big file.',
      attachments: [attachment(400)],
    });
    expect(sent.attachments).toHaveLength(1);
    expect(await conversations()).toBe(before.conversations + 1);
    expect(await outboxRows()).toBe(before.outbox + 1);
  });
});

/**
 * The disk under the SQLite database fills up: the data directory is a small tmpfs (the blobs and raw packs
 * on tmpfs mounts of their own, with room). Not even an error row can be written then: the round must end
 * as STORE_FAILED naming the database file (it was INTERNAL), acknowledge nothing, and take the mails in once
 * there is room. PostgreSQL's disk is the machine's and is not filled here.
 */
describe.runIf(isRoot)('a full disk under the SQLite database', () => {
  let dovecot: DovecotServer;
  let rt: Runtime;
  let fresh: Awaited<ReturnType<typeof freshConfig>>;
  const mounts: string[] = [];
  let filler: string;

  beforeAll(async () => {
    dovecot = await startDovecot({ users: [{ name: 'dbfull', password: 'dbfull-pw' }] });
    fresh = await freshConfig('sqlite');
    const dir = fresh.config.dataDir;
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', dir]);
    mounts.push(dir);
    for (const sub of ['blobs', 'raw']) {
      fs.mkdirSync(path.join(dir, sub));
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m,mode=0700', 'tmpfs', path.join(dir, sub)]);
      mounts.unshift(path.join(dir, sub));
    }
    rt = await openRuntime(fresh.config);
    await rt.services.mailboxes.add(imapsMailbox(dovecot, 'dbfull', 'dbfull'));
    filler = path.join(dir, 'filler');
    const free = Number(execFileSync('df', ['--output=avail', '-B1', dir]).toString().split('\n')[1]);
    fs.writeFileSync(filler, Buffer.alloc(Math.max(0, free - 16 * 1024)));
  });
  afterAll(async () => {
    await rt?.close();
    await dovecot?.stop();
    for (const m of mounts) execFileSync('umount', [m]);
    await fresh?.cleanup();
  });

  it('ends the round as STORE_FAILED naming the database file, and takes the mails in once there is room', async () => {
    const body = `${randomBytes(150 * 1024).toString('base64')}\r\n`;
    await deliverMaildir(dovecot, 'dbfull', [
      buildMail({ subject: 'one', body }),
      buildMail({ subject: 'two', body }),
    ]);
    const [full] = await rt.services.fetch.once({ mailbox: 'dbfull' });
    expect(full!.error?.code).toBe('STORE_FAILED');
    expect(full!.error?.message).toContain(
      `the disk under ${path.join(fresh.config.dataDir, 'mailintake.sqlite')} is full`,
    );
    expect((await listInbox(dovecot, 'dbfull')).filter((m) => m.flags.includes('\\Seen'))).toEqual([]);

    fs.rmSync(filler);
    const [room] = await rt.services.fetch.once({ mailbox: 'dbfull' });
    expect(room).toMatchObject({ fetched: 2, created: 2, errored: 0, error: null });
    expect((await listInbox(dovecot, 'dbfull')).every((m) => m.flags.includes('\\Seen'))).toBe(true);
  });
});
