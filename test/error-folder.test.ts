import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime, type RuntimeOptions } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import type { Connector, RemoteMail } from '../src/connectors/connector.js';
import { type AppConfig, loadConfig } from '../src/kernel/env.js';
import { MailintakeError } from '../src/kernel/errors.js';
import { SecretBox } from '../src/kernel/secret-box.js';
import { FileBlobStore } from '../src/store/blobs/blob-store.js';
import { openStore, type Store } from '../src/store/db.js';
import { GraphDouble } from './doubles/graph-double.js';
import { imapsMailbox } from './kit/mailboxes.js';
import { buildMail } from './kit/mails.js';
import { appendImap, deliverMaildir, folderExists, folderMessages, listInbox } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';

/**
 * The error folder end to end (issue 5, item 1): real Dovecot (IMAPS and POP3S), the Graph double, both store
 * engines. The failure is a real one the pipeline produces: MAIL_TOO_LARGE, with the instance's limit lowered
 * to 1 MB (MAILINTAKE_MAX_MAIL_MB); "the admin fixed the cause" is raising it again and restarting.
 */
const ERROR_FOLDER = 'Mailintake Errors';
const GRAPH_TOKEN = 'error-folder-graph-token-0123456789';

/** A mail of about 1.5 MB: over a 1 MB limit, under 10 MB. */
function bigMail(subject: string, messageId: string): Buffer {
  const line = `${'0123456789'.repeat(7)}\r\n`;
  return buildMail({
    from: 'Erika Mustermann <erika@example.test>',
    subject,
    messageId,
    body: `The printer log follows.\r\n${line.repeat(21_000)}`,
  });
}

/**
 * Wraps every round's connector so that the first moveTo of the runtime fails: the crash window between the
 * record and the move.
 */
function failFirstMove(): (c: Connector) => Connector {
  let failed = false;
  return (c) => ({
    traits: c.traits,
    open: () => c.open(),
    listNew: () => c.listNew(),
    stream: (mail) => c.stream(mail),
    ...(c.fetchMany ? { fetchMany: (mails: RemoteMail[]) => c.fetchMany!(mails) } : {}),
    acknowledge: (mails, action) => c.acknowledge(mails, action),
    moveTo: async (mails, folder) => {
      if (!failed) {
        failed = true;
        throw new MailintakeError('ACK_FAILED', 'the move was cut off (test)');
      }
      return c.moveTo(mails, folder);
    },
    close: () => c.close(),
  });
}

describe.each(ENGINES)('the error folder on %s', (engine) => {
  let dovecot: DovecotServer;
  let graph: GraphDouble;
  let rt: Runtime;
  let env: Record<string, string>;
  let dataDir: string;
  let store: Store;
  let cleanup: () => Promise<void>;
  /** What each POP3 delete found committed at the moment it was asked for (see the POP3 test). */
  const deletes: { identity: string; rowCommitted: boolean; copyOpens: boolean }[] = [];

  const configWith = (extra: Record<string, string>): AppConfig => loadConfig({ ...env, ...extra });
  const withLimit = (mb: number, opts: RuntimeOptions = {}) =>
    openRuntime(configWith({ MAILINTAKE_MAX_MAIL_MB: String(mb) }), opts);
  /** Restarts the runtime with another limit ("the admin fixed the cause"). */
  const restart = async (mb: number, opts: RuntimeOptions = {}) => {
    await rt.close();
    rt = await withLimit(mb, opts);
  };
  const instanceBox = () =>
    new SecretBox(Buffer.from(fs.readFileSync(path.join(dataDir, 'secret.key'), 'utf8'), 'base64'));
  const blobFile = (sha256: string) => new FileBlobStore(path.join(dataDir, 'blobs')).pathOf(sha256);
  const errorRows = (mailbox: string) =>
    store.db
      .selectFrom('error_mails')
      .innerJoin('mailboxes', 'mailboxes.id', 'error_mails.mailbox_id')
      .selectAll('error_mails')
      .where('mailboxes.name', '=', mailbox)
      .orderBy('error_mails.id')
      .execute();

  /** Records, for every POP3 delete, whether the error row and its sealed copy were committed first. */
  const observeDeletes = (c: Connector): Connector => {
    if (c.traits.folders) return c;
    return {
      ...c,
      traits: c.traits,
      open: () => c.open(),
      listNew: () => c.listNew(),
      stream: (mail) => c.stream(mail),
      ...(c.fetchMany ? { fetchMany: (mails: RemoteMail[]) => c.fetchMany!(mails) } : {}),
      acknowledge: async (mails, action) => {
        if (action.action === 'delete') {
          for (const m of mails) {
            const row = await store.db
              .selectFrom('error_mails')
              .select('raw_blob')
              .where('server_identity', '=', m.identity)
              .executeTakeFirst();
            let copyOpens = false;
            if (row?.raw_blob) {
              copyOpens = instanceBox().openBytes(fs.readFileSync(blobFile(row.raw_blob))).length > 0;
            }
            deletes.push({ identity: m.identity, rowCommitted: row !== undefined, copyOpens });
          }
        }
        return c.acknowledge(mails, action);
      },
      moveTo: (mails, folder) => c.moveTo(mails, folder),
      close: () => c.close(),
    };
  };

  beforeAll(async () => {
    dovecot = await startDovecot({
      users: ['errbox', 'crashy', 'later', 'badfolder', 'poperr'].map((n) => ({
        name: n,
        password: `${n}-pw`,
      })),
    });
    graph = await GraphDouble.start({ token: GRAPH_TOKEN });
    const fresh = await freshConfig(engine);
    cleanup = fresh.cleanup;
    env = fresh.env;
    dataDir = fresh.config.dataDir;
    rt = await withLimit(1, { wrapConnector: observeDeletes });
    store = await openStore({ databaseUrl: fresh.config.databaseUrl, dataDir });
    await rt.services.notificationRules.set({
      event: 'mail-error',
      recipients: ['helpdesk-admins@example.test'],
    });
  });
  afterAll(async () => {
    await store?.close();
    await rt?.close();
    await graph?.stop();
    await dovecot?.stop();
    await cleanup?.();
  });

  it('IMAPS: a failing mail is moved to the error folder with a sealed report; at N fetching stops; "move mails to inbox" and the fix make them requests and reset the count', async () => {
    await rt.services.mailboxes.add(
      imapsMailbox(dovecot, 'errbox', 'errbox', { moveToErrorFolder: true, stopAfterErrors: 2, idle: false }),
    );
    const big1 = bigMail('Quarterly figures', 'big-1@example.test');
    await deliverMaildir(dovecot, 'errbox', [
      buildMail({ subject: 'fine 1' }),
      big1,
      buildMail({ subject: 'fine 2' }),
    ]);
    const [first] = await rt.services.fetch.once({ mailbox: 'errbox' });
    expect(first).toMatchObject({
      reached: true,
      fetched: 3,
      created: 2,
      errored: 1,
      movedToErrorFolder: 1,
      stopped: null,
      error: null,
    });
    // on the server: the good mails read in the inbox, the failing one in the error folder (created for it)
    expect((await listInbox(dovecot, 'errbox')).map((m) => [m.subject, m.flags])).toEqual([
      ['fine 1', ['\\Seen']],
      ['fine 2', ['\\Seen']],
    ]);
    const inFolder = await folderMessages(dovecot, 'errbox', ERROR_FOLDER);
    expect(inFolder.map((m) => [m.subject, m.flags])).toEqual([['Quarterly figures', []]]);

    expect(await rt.services.mailboxes.get('errbox')).toMatchObject({
      enabled: true,
      status: 'enabled',
      moveToErrorFolder: true,
      errorFolder: ERROR_FOLDER,
      stopAfterErrors: 2,
      notifyOnErrorFolder: true,
      errorMails: 1,
    });
    const listed = (await rt.services.errorMails.list({ mailbox: 'errbox' })).items;
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({
      mailbox: 'errbox',
      errorCode: 'MAIL_TOO_LARGE',
      location: 'server-folder',
      folder: ERROR_FOLDER,
      status: 'in-error-folder',
      rawAvailable: false,
      movedBackAt: null,
    });

    // the report, opened for the admin: mail details and the exception
    const { report } = await rt.services.errorMails.report(listed[0]!.id);
    expect(report.mail).toMatchObject({
      // as mailparser renders an address with a display name
      from: '"Erika Mustermann" <erika@example.test>',
      to: 'support@example.test',
      subject: 'Quarterly figures',
      messageId: 'big-1@example.test',
      size: big1.length,
    });
    expect(report.mail.rawSha256).toBe(crypto.createHash('sha256').update(big1).digest('hex'));
    expect(report.error).toMatchObject({
      code: 'MAIL_TOO_LARGE',
      message: 'The mail is larger than the maximum of 1048576 bytes.',
      details: { maxMailBytes: 1048576 },
    });
    expect(report.movedTo).toEqual({ location: 'server-folder', folder: ERROR_FOLDER });

    // on disk the report is ciphertext: no sender, no subject, and it opens with the instance's key only
    const [row] = await errorRows('errbox');
    const onDisk = fs.readFileSync(blobFile(row!.report_blob));
    for (const plain of ['Quarterly figures', 'erika@example.test', 'Mustermann', 'MAIL_TOO_LARGE']) {
      expect(onDisk.includes(plain)).toBe(false);
    }
    expect(() => new SecretBox(crypto.randomBytes(32)).openBytes(onDisk)).toThrow();
    expect(JSON.parse(instanceBox().openBytes(onDisk).toString('utf8')).mail.subject).toBe(
      'Quarterly figures',
    );

    // traces: the system log entry, and the notification mail to the rule's recipients
    const logged = (await rt.services.systemLog.list({ category: 'error-folder' })).items;
    expect(logged.filter((e) => e.details.mailbox === 'errbox')).toHaveLength(1);
    expect(logged[0]).toMatchObject({ level: 'warn', actor: 'system', details: { code: 'MAIL_TOO_LARGE' } });
    const mailed = await store.db
      .selectFrom('mail_outbox')
      .select(['subject', 'body', 'recipients'])
      .where('event', '=', 'mail-error')
      .execute();
    expect(mailed).toHaveLength(1);
    expect(mailed[0]!.subject).toBe('Mail moved to the error folder of errbox');
    expect(mailed[0]!.body).toContain('Subject: Quarterly figures');
    expect(JSON.parse(mailed[0]!.recipients)).toEqual(['helpdesk-admins@example.test']);

    // the second error mail reaches N = 2: fetching stops; the mail after it stays untouched in the inbox
    await deliverMaildir(dovecot, 'errbox', [
      bigMail('Annual report', 'big-2@example.test'),
      buildMail({ subject: 'fine 3', messageId: 'fine-3@example.test' }),
    ]);
    const [second] = await rt.services.fetch.once({ mailbox: 'errbox' });
    expect(second).toMatchObject({
      fetched: 1,
      errored: 1,
      created: 0,
      movedToErrorFolder: 1,
      stopped: 'error-folder-limit',
    });
    expect((await listInbox(dovecot, 'errbox')).map((m) => [m.subject, m.flags])).toEqual([
      ['fine 1', ['\\Seen']],
      ['fine 2', ['\\Seen']],
      ['fine 3', []],
    ]);
    expect((await folderMessages(dovecot, 'errbox', ERROR_FOLDER)).map((m) => m.subject)).toEqual([
      'Quarterly figures',
      'Annual report',
    ]);
    expect(await rt.services.mailboxes.get('errbox')).toMatchObject({
      enabled: false,
      status: 'stopped-by-errors',
      errorMails: 2,
    });
    // visible: the bell notice and the system log say so; scheduled rounds leave the mailbox out
    const bell = (await rt.services.notifications.list({})).items;
    expect(bell.map((n) => n.title)).toContain('Mail fetching stopped for errbox');
    expect(
      (await rt.services.systemLog.list({ category: 'error-folder' })).items.some(
        (e) => e.details.change === 'stopped-by-errors' && e.details.mailbox === 'errbox',
      ),
    ).toBe(true);
    expect((await rt.services.fetch.once({})).map((s) => s.mailbox)).not.toContain('errbox');

    // the admin raises the limit (restart), moves the mails to the inbox, and enables the mailbox
    await restart(10, { wrapConnector: observeDeletes });
    // a mail the admin filed in the error folder by hand is not ours to move
    await appendImap(dovecot, 'errbox', buildMail({ subject: 'admin note' }), ['\\Seen'], ERROR_FOLDER);
    const back = await rt.services.errorMails.moveToInbox('errbox');
    expect(back).toEqual({
      mailbox: 'errbox',
      moved: listedIds(await errorRows('errbox')),
      notFound: [],
      remaining: 0,
    });
    expect((await folderMessages(dovecot, 'errbox', ERROR_FOLDER)).map((m) => m.subject)).toEqual([
      'admin note',
    ]);
    expect((await listInbox(dovecot, 'errbox')).map((m) => m.subject)).toEqual([
      'fine 1',
      'fine 2',
      'fine 3',
      'Quarterly figures',
      'Annual report',
    ]);
    expect(await rt.services.mailboxes.get('errbox')).toMatchObject({
      errorMails: 0,
      status: 'stopped-by-errors',
    });
    expect((await rt.services.mailboxes.setEnabled('errbox', true)).status).toBe('enabled');
    const [third] = await rt.services.fetch.once({ mailbox: 'errbox' });
    expect(third).toMatchObject({ fetched: 3, created: 3, errored: 0, stopped: null });
    const subjects = (await rt.services.requests.list({ limit: 500 })).items.map((r) => r.subject);
    expect(subjects).toEqual(expect.arrayContaining(['Quarterly figures', 'Annual report', 'fine 3']));
    expect(
      (await rt.services.errorMails.list({ mailbox: 'errbox' })).items.map((e) => [e.status, e.errorCode]),
    ).toEqual([
      ['moved-to-inbox', 'MAIL_TOO_LARGE'],
      ['moved-to-inbox', 'MAIL_TOO_LARGE'],
    ]);
    expect((await listInbox(dovecot, 'errbox')).every((m) => m.flags.includes('\\Seen'))).toBe(true);
    // nothing is left for the next round
    const [fourth] = await rt.services.fetch.once({ mailbox: 'errbox' });
    expect(fourth).toMatchObject({ fetched: 0, skippedErrors: 0, movedToErrorFolder: 0 });
  });

  it('a move cut off after the record is finished by the next round: one row, one log entry, one notice', async () => {
    await restart(1, { wrapConnector: failFirstMove() });
    await rt.services.mailboxes.add(
      imapsMailbox(dovecot, 'crashy', 'crashy', { moveToErrorFolder: true, idle: false }),
    );
    await deliverMaildir(dovecot, 'crashy', [bigMail('Cut off', 'cut-1@example.test')]);
    const [first] = await rt.services.fetch.once({ mailbox: 'crashy' });
    expect(first).toMatchObject({ errored: 1, movedToErrorFolder: 0, error: { code: 'ACK_FAILED' } });
    // recorded, but still in the inbox
    expect(await errorRows('crashy')).toHaveLength(1);
    expect((await listInbox(dovecot, 'crashy')).map((m) => m.subject)).toEqual(['Cut off']);
    expect(await folderExists(dovecot, 'crashy', ERROR_FOLDER)).toBe(false);

    const [second] = await rt.services.fetch.once({ mailbox: 'crashy' });
    expect(second).toMatchObject({
      fetched: 0,
      errored: 0,
      movedToErrorFolder: 1,
      skippedErrors: 0,
      error: null,
    });
    expect(await listInbox(dovecot, 'crashy')).toEqual([]);
    expect((await folderMessages(dovecot, 'crashy', ERROR_FOLDER)).map((m) => m.subject)).toEqual([
      'Cut off',
    ]);
    expect(await errorRows('crashy')).toHaveLength(1);
    const entries = (await rt.services.systemLog.list({ category: 'error-folder', limit: 500 })).items;
    expect(entries.filter((e) => e.details.mailbox === 'crashy')).toHaveLength(1);
    const notices = await store.db
      .selectFrom('mail_outbox')
      .select('subject')
      .where('subject', '=', 'Mail moved to the error folder of crashy')
      .execute();
    expect(notices).toHaveLength(1);
    expect((await rt.services.mailboxes.get('crashy')).errorMails).toBe(1);
  });

  it('mails that failed before the error folder was switched on are moved at the next round', async () => {
    await restart(1);
    const settings = imapsMailbox(dovecot, 'later', 'later', { idle: false });
    await rt.services.mailboxes.add(settings);
    await deliverMaildir(dovecot, 'later', [bigMail('Too big, long ago', 'later-1@example.test')]);
    expect((await rt.services.fetch.once({ mailbox: 'later' }))[0]).toMatchObject({ errored: 1 });
    expect((await rt.services.fetch.once({ mailbox: 'later' }))[0]).toMatchObject({ skippedErrors: 1 });
    expect((await listInbox(dovecot, 'later')).map((m) => m.subject)).toEqual(['Too big, long ago']);

    await rt.services.mailboxes.update('later', { ...settings, moveToErrorFolder: true });
    const [round] = await rt.services.fetch.once({ mailbox: 'later' });
    expect(round).toMatchObject({ fetched: 0, skippedErrors: 0, movedToErrorFolder: 1 });
    expect(await listInbox(dovecot, 'later')).toEqual([]);
    const [row] = (await rt.services.errorMails.list({ mailbox: 'later' })).items;
    const { report } = await rt.services.errorMails.report(row!.id);
    // read from the intake log and the raw copy: the same details as a fresh failure
    expect(report.mail).toMatchObject({ subject: 'Too big, long ago', messageId: 'later-1@example.test' });
    expect(report.error.code).toBe('MAIL_TOO_LARGE');
  });

  it('an error folder the server refuses does not block the mailbox: other mails go in, the round reports ACK_FAILED', async () => {
    await restart(1);
    // Dovecot refuses adjacent hierarchy separators in a folder name
    await rt.services.mailboxes.add(
      imapsMailbox(dovecot, 'badfolder', 'badfolder', {
        moveToErrorFolder: true,
        errorFolder: 'Errors//Broken',
        idle: false,
      }),
    );
    await deliverMaildir(dovecot, 'badfolder', [
      bigMail('Stuck', 'stuck@example.test'),
      buildMail({ subject: 'after the stuck one' }),
    ]);
    const [first] = await rt.services.fetch.once({ mailbox: 'badfolder' });
    expect(first).toMatchObject({ fetched: 2, created: 1, errored: 1, movedToErrorFolder: 0 });
    expect(first!.error?.code).toBe('ACK_FAILED');
    await deliverMaildir(dovecot, 'badfolder', [buildMail({ subject: 'next day' })]);
    const [second] = await rt.services.fetch.once({ mailbox: 'badfolder' });
    expect(second).toMatchObject({ fetched: 1, created: 1, movedToErrorFolder: 0 });
    expect(second!.error?.code).toBe('ACK_FAILED');
    // recorded once, still in the inbox; the good mails are read
    expect(await errorRows('badfolder')).toHaveLength(1);
    expect((await listInbox(dovecot, 'badfolder')).map((m) => [m.subject, m.flags])).toEqual([
      ['Stuck', []],
      ['after the stuck one', ['\\Seen']],
      ['next day', ['\\Seen']],
    ]);
  });

  it('POP3S: the failing mail is kept sealed on our side, deleted from the server only after that copy is committed, and "move to inbox" takes it in', async () => {
    await restart(1, { wrapConnector: observeDeletes });
    await rt.services.mailboxes.add({
      name: 'poperr',
      protocol: 'pops',
      server: 'localhost',
      port: dovecot.ports.pop3s,
      username: 'poperr',
      password: 'poperr-pw',
      emailAddress: 'poperr@example.test',
      caFile: dovecot.caFile,
      afterFetch: 'leave',
      moveToErrorFolder: true,
    });
    const big = bigMail('Scanned contract', 'pop-big@example.test');
    await deliverMaildir(dovecot, 'poperr', [buildMail({ subject: 'pop fine' }), big]);
    const [first] = await rt.services.fetch.once({ mailbox: 'poperr' });
    expect(first).toMatchObject({ fetched: 2, created: 1, errored: 1, movedToErrorFolder: 1, error: null });
    // "leave" keeps the good mail; the error mail is gone from the server, its delete came after the commit
    expect((await listInbox(dovecot, 'poperr')).map((m) => m.subject)).toEqual(['pop fine']);
    const [row] = await errorRows('poperr');
    expect(deletes).toEqual([{ identity: row!.server_identity, rowCommitted: true, copyOpens: true }]);

    const [listed] = (await rt.services.errorMails.list({ mailbox: 'poperr' })).items;
    expect(listed).toMatchObject({
      location: 'kept-locally',
      folder: null,
      rawAvailable: true,
      status: 'in-error-folder',
      errorCode: 'MAIL_TOO_LARGE',
    });
    expect((await rt.services.mailboxes.get('poperr')).errorFolder).toBeNull();
    // the kept copy: byte for byte as fetched, readable by the admin; on disk ciphertext
    const raw = await rt.services.errorMails.raw(listed!.id);
    const bytes = await buffer(raw.open());
    expect(bytes.equals(big)).toBe(true);
    expect(raw.meta.size).toBe(big.length);
    const onDisk = fs.readFileSync(blobFile(row!.raw_blob!));
    expect(onDisk.includes('Scanned contract')).toBe(false);
    expect(onDisk.includes('erika@example.test')).toBe(false);
    expect(() => new SecretBox(crypto.randomBytes(32)).openBytes(onDisk)).toThrow();
    expect((await rt.services.errorMails.report(listed!.id)).report.movedTo).toEqual({
      location: 'kept-locally',
    });

    // fixed: the kept copy is taken in by the next round, once; the count resets
    await restart(10, { wrapConnector: observeDeletes });
    expect(await rt.services.errorMails.moveToInbox('poperr')).toMatchObject({
      moved: [listed!.id],
      notFound: [],
      remaining: 0,
    });
    const [second] = await rt.services.fetch.once({ mailbox: 'poperr' });
    expect(second).toMatchObject({ fetched: 1, created: 1, errored: 0 });
    const log = (await rt.services.log.list({ mailbox: 'poperr', outcome: 'created' })).items;
    expect(log.map((e) => [e.serverIdentity, e.subject])).toContainEqual([
      `kept;${listed!.id}`,
      'Scanned contract',
    ]);
    expect((await rt.services.mailboxes.get('poperr')).errorMails).toBe(0);
    const [third] = await rt.services.fetch.once({ mailbox: 'poperr' });
    expect(third).toMatchObject({ fetched: 0, created: 0 });
  });

  it('Graph (double): moved to the error folder by immutable id, moved back, and taken in again under the same id', async () => {
    await restart(1);
    graph.addMailbox('gerr@graph.test');
    await rt.services.mailboxes.add({
      name: 'gerr',
      protocol: 'graph',
      graphEndpoint: graph.url,
      accessToken: GRAPH_TOKEN,
      emailAddress: 'gerr@graph.test',
      caFile: graph.caFile,
      moveToErrorFolder: true,
      errorFolder: 'Broken mail',
    });
    await graph.deliver('gerr@graph.test', [bigMail('Graph giant', 'graph-big@example.test')]);
    const [first] = await rt.services.fetch.once({ mailbox: 'gerr' });
    expect(first).toMatchObject({ errored: 1, movedToErrorFolder: 1 });
    expect(graph.messages('gerr@graph.test')).toEqual([]);
    const parked = graph.messages('gerr@graph.test', 'Broken mail');
    expect(parked.map((m) => m.messageId)).toEqual(['<graph-big@example.test>']);

    await restart(10);
    expect(await rt.services.errorMails.moveToInbox('gerr')).toMatchObject({ notFound: [], remaining: 0 });
    expect(graph.messages('gerr@graph.test').map((m) => m.id)).toEqual(parked.map((m) => m.id));
    const [second] = await rt.services.fetch.once({ mailbox: 'gerr' });
    expect(second).toMatchObject({ fetched: 1, created: 1, errored: 0 });
    expect(graph.messages('gerr@graph.test')).toEqual([{ ...parked[0], isRead: true }]);
    const [entry] = (await rt.services.log.list({ mailbox: 'gerr' })).items;
    expect(entry).toMatchObject({ outcome: 'created', subject: 'Graph giant', attempts: 2 });
  });
});

function listedIds(rows: { id: number }[]): number[] {
  return rows.map((r) => r.id);
}
