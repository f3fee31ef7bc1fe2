import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import { commitBatch, recordFailure } from '../src/intake/commit-mail.js';
import { MailintakeError } from '../src/kernel/errors.js';
import type { ParsedMail } from '../src/mail/types.js';
import { openStore, type Store } from '../src/store/db.js';
import { storableText } from '../src/store/keys.js';
import { imapsMailbox } from './kit/mailboxes.js';
import { buildMail } from './kit/mails.js';
import { prng } from './kit/prng.js';
import { NO_SENDER_LIMIT } from './kit/sender-limit.js';
import { deliverMaildir } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';

/**
 * A sender controls every header, and PostgreSQL refuses a btree index entry over ~2.7 KB: a value that went
 * into an index as it stood stopped the mailbox at that mail in every round (DESIGN.md guarantee 6). Here
 * every header a mail can make huge, at 3 KB and at 100 KB of random characters (random, so that PostgreSQL's
 * compression cannot shrink it under the limit), and NUL bytes (which PostgreSQL refuses in text) wherever a
 * decoder can produce one. Each hostile mail is followed by an ordinary one, which must be taken in too.
 */
const SEED = 20261207;
const SIZES = [3_000, 100_000];
const ASCII = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_+=!#$%&*~';
const WIDE = `${ASCII}éüßжщ中文漢字😀`;

function randomText(rand: () => number, length: number, alphabet: string): string {
  const chars = [...alphabet];
  let out = '';
  while (out.length < length) out += chars[Math.floor(rand() * chars.length)];
  return out;
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const png = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
  'base64',
);

interface Case {
  name: string;
  raw: Buffer;
}

function hostileCases(): Case[] {
  const rand = prng(SEED);
  const cases: Case[] = [];
  const add = (name: string, raw: Buffer) => cases.push({ name, raw });
  const marked = (name: string) => `case:${name}\r\n`;
  for (const size of SIZES) {
    const id = () => `${randomText(rand, size, ASCII)}@example.test`;
    const word = () => randomText(rand, size, WIDE);
    let n = `message-id-${size}`;
    add(n, buildMail({ messageId: id(), body: marked(n) }));
    n = `in-reply-to-${size}`;
    add(n, buildMail({ inReplyTo: id(), body: marked(n) }));
    n = `references-one-${size}`;
    add(n, buildMail({ references: `<${id()}>`, body: marked(n) }));
    n = `references-many-${size}`;
    const many = Array.from({ length: Math.ceil(size / 60) }, () => `<${randomText(rand, 50, ASCII)}@x>`);
    add(n, buildMail({ references: many.join('\r\n '), body: marked(n) }));
    n = `from-address-${size}`;
    add(n, buildMail({ from: `Someone <${randomText(rand, size, ASCII)}@example.test>`, body: marked(n) }));
    n = `from-name-${size}`;
    add(n, buildMail({ from: `"${word()}" <name@example.test>`, body: marked(n) }));
    n = `to-address-${size}`;
    add(n, buildMail({ to: `${randomText(rand, size, ASCII)}@example.test`, body: marked(n) }));
    n = `cc-address-${size}`;
    add(n, buildMail({ cc: `${randomText(rand, size, ASCII)}@example.test`, body: marked(n) }));
    n = `subject-${size}`;
    add(n, buildMail({ subject: word(), body: marked(n) }));
    n = `filename-quoted-${size}`;
    add(
      n,
      buildMail({
        body: marked(n),
        attachments: [
          {
            filename: `${randomText(rand, size, ASCII)}.txt`,
            contentType: 'text/plain',
            content: Buffer.from('x'),
          },
        ],
      }),
    );
    n = `filename-rfc2231-${size}`;
    add(n, rfc2231Mail(n, encodeURIComponent(word()), marked(n)));
    n = `content-id-${size}`;
    add(
      n,
      buildMail({
        body: marked(n),
        html: '<p>image</p>',
        attachments: [{ filename: 'logo.png', contentType: 'image/png', content: png, inlineCid: id() }],
      }),
    );
    n = `everything-${size}`;
    add(
      n,
      buildMail({
        messageId: id(),
        inReplyTo: id(),
        references: `<${id()}>`,
        from: `"${word()}" <${randomText(rand, size, ASCII)}@example.test>`,
        to: `${randomText(rand, size, ASCII)}@example.test`,
        cc: `${randomText(rand, size, ASCII)}@example.test`,
        subject: word(),
        body: marked(n),
        attachments: [
          {
            filename: `${randomText(rand, size, ASCII)}.txt`,
            contentType: 'text/plain',
            content: Buffer.from('x'),
          },
        ],
      }),
    );
  }
  // NUL: PostgreSQL text refuses it ("invalid byte sequence for encoding UTF8: 0x00"); decoders produce it.
  let n = 'nul-subject';
  add(n, buildMail({ subject: `=?utf-8?B?${b64('before\0after')}?=`, body: marked(n) }));
  n = 'nul-from-name';
  add(n, buildMail({ from: `=?utf-8?B?${b64('Eve\0Null')}?= <eve@example.test>`, body: marked(n) }));
  n = 'nul-filename';
  add(n, rfc2231Mail(n, 'a%00b.txt', marked(n)));
  n = 'nul-body';
  add(n, base64BodyMail(`${marked(n)}text with a \0 in it\r\n`));
  return cases;
}

/** An attachment whose name comes in RFC 2231 continuations (`filename*0*=utf-8''…; filename*1*=…`). */
function rfc2231Mail(name: string, encodedName: string, body: string): Buffer {
  const pieces = encodedName.match(/.{1,60}/g) ?? [''];
  const params = pieces.map((p, i) => `\tfilename*${i}*=${i === 0 ? "utf-8''" : ''}${p}`).join(';\r\n');
  return Buffer.from(
    [
      'From: Customer <customer@example.test>',
      'To: support@example.test',
      `Subject: ${name}`,
      'Date: Mon, 01 Jan 2024 10:00:00 +0000',
      `Message-ID: <${name}-${process.pid}@example.test>`,
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b1"',
      '',
      '--b1',
      'Content-Type: text/plain; charset=utf-8',
      '',
      body,
      '--b1',
      'Content-Type: application/octet-stream',
      'Content-Transfer-Encoding: base64',
      `Content-Disposition: attachment;\r\n${params}`,
      '',
      b64('attachment body'),
      '--b1--',
      '',
    ].join('\r\n'),
  );
}

function base64BodyMail(body: string): Buffer {
  return Buffer.from(
    [
      'From: Customer <customer@example.test>',
      'To: support@example.test',
      'Subject: a body with NUL',
      'Date: Mon, 01 Jan 2024 10:00:00 +0000',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: base64',
      '',
      b64(body),
      '',
    ].join('\r\n'),
  );
}

describe.each(ENGINES)('mail values that cannot be index keys or text, on %s', (engine) => {
  let dovecot: DovecotServer;
  let rt: Runtime;
  let store: Store;
  let fresh: Awaited<ReturnType<typeof freshConfig>>;

  beforeAll(async () => {
    dovecot = await startDovecot({ users: [{ name: 'hostile', password: 'hostile-pw' }] });
    fresh = await freshConfig(engine);
    rt = await openRuntime(fresh.config);
    await rt.services.portals.update('default', NO_SENDER_LIMIT);
    await rt.services.mailboxes.add(imapsMailbox(dovecot, 'hostile', 'hostile'));
    store = await openStore({ databaseUrl: fresh.env.DATABASE_URL, dataDir: fresh.config.dataDir });
  });
  afterAll(async () => {
    await store?.close();
    await rt?.close();
    await dovecot?.stop();
    await fresh?.cleanup();
  });

  it('takes in every hostile mail and every mail after it, in one round, and the next round finds nothing', async () => {
    const cases = hostileCases();
    const raws: Buffer[] = [];
    for (const c of cases) {
      raws.push(c.raw, buildMail({ subject: `after ${c.name}`, body: `case:after-${c.name}\r\n` }));
    }
    await deliverMaildir(dovecot, 'hostile', raws);

    const [round] = await rt.services.fetch.once({ mailbox: 'hostile' });
    expect(round!.error).toBeNull();
    expect(round).toMatchObject({ fetched: raws.length, created: raws.length, errored: 0 });

    const bodies = (await store.db.selectFrom('requests').select('text_body').execute()).map(
      (r) => (r.text_body ?? '').split(/\r?\n/)[0],
    );
    for (const c of cases) {
      expect(
        bodies.filter((b) => b === `case:${c.name}`),
        c.name,
      ).toHaveLength(1);
      expect(
        bodies.filter((b) => b === `case:after-${c.name}`),
        c.name,
      ).toHaveLength(1);
    }
    const log = await store.db.selectFrom('intake_log').select(['outcome', 'message_id']).execute();
    expect(log.map((r) => r.outcome)).toEqual(raws.map(() => 'created'));
    // The full value is kept for display, not cut to what an index could hold.
    expect(Math.max(...log.map((r) => r.message_id?.length ?? 0))).toBeGreaterThanOrEqual(100_000);
    const subjects = (await store.db.selectFrom('requests').select('subject').execute()).map(
      (r) => r.subject,
    );
    // The parser drops NUL from decoded words; what it does not decode is made storable by the commit (below).
    expect(subjects).toContain('beforeafter');
    expect(Math.max(...subjects.map((s) => s.length))).toBeGreaterThanOrEqual(100_000);

    const [again] = await rt.services.fetch.once({ mailbox: 'hostile' });
    expect(again).toMatchObject({ fetched: 0, error: null });
  });

  it('the same huge Message-ID seen again is recognised as a copy, by its key and its full value', async () => {
    const messageId = `${randomText(prng(SEED + 1), 5_000, ASCII)}@example.test`;
    const mail = buildMail({ messageId, subject: 'copy twice', body: 'same' });
    await deliverMaildir(dovecot, 'hostile', [mail, mail]);
    const [round] = await rt.services.fetch.once({ mailbox: 'hostile' });
    expect(round).toMatchObject({ fetched: 2, created: 1, ignored: 1, errored: 0, error: null });
  });

  it('a NUL in what the parser leaves as sent (Message-ID, References, Content-ID) does not break the commit', async () => {
    const box = await store.db
      .selectFrom('mailboxes')
      .select(['id', 'name', 'portal_id'])
      .where('name', '=', 'hostile')
      .executeTakeFirstOrThrow();
    const mailbox = { id: box.id, name: box.name, portalId: box.portal_id, headerThreading: true };
    const parsed = (n: number): ParsedMail => ({
      messageId: `nul\0id-${n}@example.test`,
      inReplyTo: [`parent\0${n}@x`],
      references: [`root\0${n}@x`],
      subject: `nul ${n}`,
      from: { address: 'sender@example.test', name: '' },
      to: [],
      cc: [],
      replyTo: [],
      date: null,
      text: 'body',
      html: null,
      attachments: [
        {
          filename: 'a.png',
          contentType: 'image/png',
          size: png.length,
          sha256: 'a'.repeat(64),
          contentId: `cid\0${n}`,
          disposition: 'inline',
        },
      ],
      headers: { 'x-loop': 'a\0b' },
      contentHash: `${n}`.padStart(64, '0'),
      size: 10,
    });
    const item = (n: number) => ({
      serverIdentity: `nul;1;${n}`,
      retry: false,
      rawSha256: null,
      rawPacked: null,
      size: 10,
      parsed: parsed(n),
      error: null,
    });
    const results = await commitBatch(store, mailbox, [item(1), item(2)]);
    expect(results.map((r) => r.outcome)).toEqual(['created', 'created']);
    const ids = await store.db
      .selectFrom('intake_log')
      .select('message_id')
      .where('server_identity', 'in', ['nul;1;1', 'nul;1;2'])
      .orderBy('id')
      .execute();
    expect(ids.map((r) => r.message_id)).toEqual([
      'nul\uFFFDid-1@example.test',
      'nul\uFFFDid-2@example.test',
    ]);
  });

  it('when even the error row is refused, a minimal row (identity, code, short reason) is written', async () => {
    const box = await store.db
      .selectFrom('mailboxes')
      .select(['id', 'name', 'portal_id'])
      .where('name', '=', 'hostile')
      .executeTakeFirstOrThrow();
    // The full error row carries the mail's subject and sender. PostgreSQL refuses NUL in text by itself; SQLite
    // stores anything, so there a trigger plays the database that refuses the value.
    if (engine === 'sqlite') {
      for (const event of ['insert', 'update']) {
        await sql
          .raw(
            `create trigger refuse_subject_${event} before ${event} on intake_log when new.subject like 'refused%' begin select raise(abort, 'value refused'); end`,
          )
          .execute(store.db);
      }
    }
    const parsed: ParsedMail = {
      messageId: `${'m'.repeat(4_000)}\0@example.test`,
      inReplyTo: [],
      references: [],
      subject: 'refused\0subject',
      from: { address: 'sender\0@example.test', name: 'N\0' },
      to: [],
      cc: [],
      replyTo: [],
      date: null,
      text: 'body',
      html: null,
      attachments: [],
      headers: {},
      contentHash: 'c'.repeat(64),
      size: 10,
    };
    const mailbox = { id: box.id, name: box.name, portalId: box.portal_id, headerThreading: true };
    const error = new MailintakeError('STORE_FAILED', `the store refused it: ${'x'.repeat(5_000)}`);
    const result = await recordFailure(
      store,
      mailbox,
      {
        serverIdentity: 'direct;1;1',
        retry: false,
        rawSha256: null,
        rawPacked: null,
        size: 10,
        parsed,
        error: null,
      },
      error,
    );
    expect(result.outcome).toBe('error');
    const row = await store.db
      .selectFrom('intake_log')
      .selectAll()
      .where('server_identity', '=', 'direct;1;1')
      .executeTakeFirstOrThrow();
    expect(row).toMatchObject({
      outcome: 'error',
      error_code: 'STORE_FAILED',
      subject: null,
      message_id: null,
    });
    const reasons = JSON.parse(row.reasons) as string[];
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toContain('the full error row was refused too');
    expect(reasons[0]!.length).toBeLessThan(1_000);
    expect(storableText(reasons[0]!)).toBe(reasons[0]);

    // A retry that fails the same way replaces the minimal row instead of breaking the identity's constraint.
    const again = await recordFailure(
      store,
      mailbox,
      {
        serverIdentity: 'direct;1;1',
        retry: true,
        rawSha256: null,
        rawPacked: null,
        size: 10,
        parsed,
        error: null,
      },
      error,
    );
    expect(again.outcome).toBe('error');
    const rows = await store.db
      .selectFrom('intake_log')
      .select('attempts')
      .where('server_identity', '=', 'direct;1;1')
      .execute();
    expect(rows).toEqual([{ attempts: 2 }]);
  });
});
