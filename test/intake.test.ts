import { buffer, text } from 'node:stream/consumers';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import type { AppConfig } from '../src/kernel/env.js';
import { openStore } from '../src/store/db.js';
import { imapsMailbox } from './kit/mailboxes.js';
import { buildMail } from './kit/mails.js';
import { addFlags, appendImap, deliverMaildir, folderMessages, listInbox } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';

/**
 * The foundation end to end: real Dovecot, real store (both engines), the services the CLI and API use.
 * Each engine gets its own Dovecot users so the two runs never see each other's mail.
 */
describe.each(ENGINES)('intake from a real IMAP mailbox on %s', (engine) => {
  let dovecot: DovecotServer;
  let rt: Runtime;
  let cleanup: () => Promise<void>;
  let config: AppConfig;
  const box = (name: string, user: string, extra: Record<string, unknown> = {}) =>
    imapsMailbox(dovecot, name, user, extra);

  beforeAll(async () => {
    dovecot = await startDovecot({
      users: ['support', 'helpdesk', 'deleter', 'mover', 'threads', 'halfdone', 'poison', 'raw'].map((n) => ({
        name: n,
        password: `${n}-pw`,
      })),
    });
    const fresh = await freshConfig(engine);
    cleanup = fresh.cleanup;
    config = fresh.config;
    rt = await openRuntime(fresh.config);
  });
  afterAll(async () => {
    await rt?.close();
    await dovecot?.stop();
    await cleanup?.();
  });

  it('turns a new mail into a request, field by field, and marks it read on the server', async () => {
    await rt.services.mailboxes.add(box('support', 'support'));
    const png = Buffer.from(
      'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
      'base64',
    );
    await deliverMaildir(dovecot, 'support', [
      buildMail({
        from: 'Ünal Çelik <Unal@Example.TEST>',
        to: 'Support <support@example.test>',
        cc: 'boss@example.test',
        subject: '=?ISO-8859-1?Q?Drucker_br=E4nnt?=',
        messageId: 'first@example.test',
        body: 'Bitte helfen.',
        html: '<p>Bitte <img src="cid:logo@x"></p>',
        attachments: [
          { filename: 'report.pdf', contentType: 'application/pdf', content: Buffer.from('%PDF-1.4 test') },
          { filename: 'logo.png', contentType: 'image/png', content: png, inlineCid: 'logo@x' },
        ],
      }),
    ]);
    const [summary] = await rt.services.fetch.once({ mailbox: 'support' });
    expect(summary).toMatchObject({ mailbox: 'support', reached: true, fetched: 1, created: 1, errored: 0 });

    const list = await rt.services.requests.list({});
    expect(list.total).toBe(1);
    const req = await rt.services.requests.show(list.items[0]!.id);
    expect(req.subject).toBe('Drucker brännt');
    expect(req.requester).toEqual({ address: 'unal@example.test', name: 'Ünal Çelik' });
    expect(req.to).toEqual([{ address: 'support@example.test', name: 'Support' }]);
    expect(req.cc).toEqual([{ address: 'boss@example.test', name: '' }]);
    expect(req.messageId).toBe('first@example.test');
    expect(req.text?.trim()).toBe('Bitte helfen.');
    expect(req.html).toContain('cid:logo@x');
    expect(req.mailbox).toBe('support');
    const pdf = req.attachments.find((a) => a.filename === 'report.pdf');
    expect(pdf).toMatchObject({ contentType: 'application/pdf', size: 13, disposition: 'attachment' });
    const logo = req.attachments.find((a) => a.filename === 'logo.png');
    expect(logo).toMatchObject({
      contentType: 'image/png',
      size: png.length,
      contentId: 'logo@x',
      disposition: 'inline',
    });
    const download = await rt.services.requests.attachment(pdf!.id);
    expect(await text(download.open())).toBe('%PDF-1.4 test');

    const server = await listInbox(dovecot, 'support');
    expect(server).toHaveLength(1);
    expect(server[0]!.flags).toContain('\\Seen');

    const log = await rt.services.log.list({ mailbox: 'support' });
    expect(log.items).toHaveLength(1);
    expect(log.items[0]).toMatchObject({
      outcome: 'created',
      requestId: req.id,
      acknowledged: true,
      messageId: 'first@example.test',
    });
    expect(log.items[0]!.serverIdentity).toMatch(/^INBOX;\d+;1$/);
    expect(log.items[0]!.contentHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('decodes non-UTF-8 bodies and encoded-word subjects', async () => {
    const koi8 = Buffer.from([0xf0, 0xd2, 0xc9, 0xd7, 0xc5, 0xd4]); // "Привет" in KOI8-R
    const raw = Buffer.concat([
      Buffer.from(
        [
          'From: =?KOI8-R?B?8NLJ18XU?= <ivan@example.test>',
          'To: support@example.test',
          'Subject: =?UTF-8?B?0J/RgNC40LLQtdGC?= =?ISO-8859-1?Q?_caf=E9?=',
          'Message-ID: <koi8@example.test>',
          'MIME-Version: 1.0',
          'Content-Type: text/plain; charset=koi8-r',
          'Content-Transfer-Encoding: 8bit',
          '',
          '',
        ].join('\r\n'),
      ),
      koi8,
      Buffer.from('\r\n'),
    ]);
    await deliverMaildir(dovecot, 'support', [raw]);
    const [summary] = await rt.services.fetch.once({ mailbox: 'support' });
    expect(summary).toMatchObject({ fetched: 1, created: 1 });
    const list = await rt.services.requests.list({});
    const req = await rt.services.requests.show(list.items[0]!.id);
    expect(req.subject).toBe('Привет café');
    expect(req.requester?.name).toBe('Привет');
    expect(req.text?.trim()).toBe('Привет');
  });

  it('threads replies by In-Reply-To and References, and by ##id## in the subject', async () => {
    await rt.services.mailboxes.add(box('threads', 'threads'));
    await deliverMaildir(dovecot, 'threads', [buildMail({ messageId: 'root@t', subject: 'VPN down' })]);
    await rt.services.fetch.once({ mailbox: 'threads' });
    const root = (await rt.services.requests.list({})).items[0]!;
    expect(root.subject).toBe('VPN down');

    await deliverMaildir(dovecot, 'threads', [
      buildMail({ messageId: 'r1@t', inReplyTo: 'root@t', subject: 'Re: VPN down' }),
      buildMail({ messageId: 'r2@t', references: '<unknown@x> <r1@t>', subject: 'Re: Re: VPN down' }),
      buildMail({ messageId: 'r3@t', subject: `Still broken [##${root.id}##]` }),
      buildMail({ messageId: 'r4@t', subject: 'Unrelated ##999999##' }),
    ]);
    const [s] = await rt.services.fetch.once({ mailbox: 'threads' });
    expect(s).toMatchObject({ fetched: 4, appended: 3, created: 1 });
    const detail = await rt.services.requests.show(root.id);
    expect(detail.conversations.map((c) => c.messageId)).toEqual(['r1@t', 'r2@t', 'r3@t']);
    const log = (await rt.services.log.list({ mailbox: 'threads' })).items;
    const reasons = (mid: string) => log.find((e) => e.messageId === mid)!.reasons.join(' | ');
    expect(reasons('r1@t')).toMatch(/In-Reply-To/);
    expect(reasons('r2@t')).toMatch(/References/);
    expect(reasons('r3@t')).toMatch(new RegExp(`##${root.id}##`));
    expect(log.find((e) => e.messageId === 'r4@t')!.outcome).toBe('created');
  });

  it('with header threading off, only the ##id## subject token threads (the reference’s switch)', async () => {
    await rt.services.portals.add('hr');
    await rt.services.portals.update('hr', { headerThreading: false });
    await rt.services.mailboxes.update('threads', box('threads', 'threads', { portal: 'hr' }));
    await deliverMaildir(dovecot, 'threads', [buildMail({ messageId: 'hr-root@t', subject: 'Payslip' })]);
    await rt.services.fetch.once({ mailbox: 'threads' });
    const root = (await rt.services.requests.list({ portal: 'hr' })).items[0]!;
    await deliverMaildir(dovecot, 'threads', [
      buildMail({ messageId: 'hr-r1@t', inReplyTo: 'hr-root@t', subject: 'Re: Payslip' }),
      buildMail({ messageId: 'hr-r2@t', inReplyTo: 'hr-root@t', subject: `Re: Payslip ##${root.id}##` }),
    ]);
    const [s] = await rt.services.fetch.once({ mailbox: 'threads' });
    expect(s).toMatchObject({ created: 1, appended: 1 });
    const log = (await rt.services.log.list({ mailbox: 'threads', limit: 2 })).items;
    expect(log.find((e) => e.messageId === 'hr-r1@t')!.reasons.join(' ')).toMatch(/header threading is off/i);
    // A request of another portal is not reachable by its id from this portal.
    const other = (await rt.services.requests.list({ portal: 'default' })).items[0]!;
    await deliverMaildir(dovecot, 'threads', [
      buildMail({ messageId: 'hr-r3@t', subject: `x ##${other.id}##` }),
    ]);
    const [s2] = await rt.services.fetch.once({ mailbox: 'threads' });
    expect(s2).toMatchObject({ created: 1, appended: 0 });
  });

  it('a mail sent to two of our mailboxes becomes one request', async () => {
    await rt.services.mailboxes.add(box('helpdesk', 'helpdesk'));
    const mail = buildMail({
      messageId: 'both@example.test',
      to: 'support@example.test',
      cc: 'helpdesk@example.test',
      subject: 'Both x',
    });
    // The one mail, delivered twice: the copies differ only in the headers each delivering server adds.
    await deliverMaildir(dovecot, 'support', [
      Buffer.concat([
        Buffer.from('Delivered-To: support@example.test\r\nReceived: from a by b; Mon, 1 Jan 2024\r\n'),
        mail,
      ]),
    ]);
    await deliverMaildir(dovecot, 'helpdesk', [
      Buffer.concat([Buffer.from('Delivered-To: helpdesk@example.test\r\n'), mail]),
    ]);
    const before = (await rt.services.requests.list({})).total;
    const summaries = await rt.services.fetch.once({});
    const bySupport = summaries.find((s) => s.mailbox === 'support')!;
    const byHelpdesk = summaries.find((s) => s.mailbox === 'helpdesk')!;
    expect(bySupport.created + byHelpdesk.created).toBe(1);
    expect(bySupport.ignored + byHelpdesk.ignored).toBe(1);
    expect((await rt.services.requests.list({})).total).toBe(before + 1);
    const ignored = (await rt.services.log.list({ outcome: 'ignored' })).items.find(
      (e) => e.messageId === 'both@example.test',
    );
    expect(ignored?.reasons.join(' ')).toMatch(/duplicate|copy|already/i);
    // A mailer that reuses a Message-ID for a different mail (same sender and subject, new body) is not a copy:
    // it becomes a request of its own, with the reason in the log.
    await deliverMaildir(dovecot, 'support', [
      buildMail({
        messageId: 'both@example.test',
        to: 'support@example.test',
        cc: 'helpdesk@example.test',
        subject: 'Both x',
        body: 'Disk full again, a different alert.',
      }),
    ]);
    const [reused] = await rt.services.fetch.once({ mailbox: 'support' });
    expect(reused).toMatchObject({ created: 1, ignored: 0 });
    const note = (await rt.services.log.list({ mailbox: 'support', limit: 1 })).items[0]!;
    expect(note.reasons.join(' ')).toMatch(/used before by a different mail/);
    // Both copies are acknowledged on their servers: nothing is left behind to be fetched again.
    expect((await listInbox(dovecot, 'helpdesk')).every((m) => m.flags.includes('\\Seen'))).toBe(true);
  });

  it('a fetch round with nothing new creates nothing; the log keeps one entry per mail', async () => {
    const before = (await rt.services.log.list({ limit: 500 })).total;
    const summaries = await rt.services.fetch.once({});
    for (const s of summaries)
      expect(s).toMatchObject({ reached: true, fetched: 0, created: 0, reacknowledged: 0 });
    expect((await rt.services.log.list({ limit: 500 })).total).toBe(before);
  });

  it('after fetch: delete removes exactly the taken mails; move puts them in the named folder', async () => {
    await rt.services.mailboxes.add(box('deleter', 'deleter', { afterFetch: 'delete' }));
    await rt.services.mailboxes.add(
      box('mover', 'mover', { afterFetch: 'move', moveToFolder: 'Done/Tickets' }),
    );
    await deliverMaildir(dovecot, 'deleter', [buildMail({}), buildMail({})]);
    await deliverMaildir(dovecot, 'mover', [buildMail({ messageId: 'moved@t' })]);
    const [d] = await rt.services.fetch.once({ mailbox: 'deleter' });
    const [m] = await rt.services.fetch.once({ mailbox: 'mover' });
    expect(d).toMatchObject({ created: 2 });
    expect(m).toMatchObject({ created: 1 });
    expect(await listInbox(dovecot, 'deleter')).toEqual([]);
    expect(await listInbox(dovecot, 'mover')).toEqual([]);
    const moved = await folderMessages(dovecot, 'mover', 'Done/Tickets');
    expect(moved.map((x) => x.messageId)).toEqual(['<moved@t>']);
  });

  it('finishes a delete that a crash cut between STORE \\Deleted and EXPUNGE; leaves a stranger’s \\Deleted mail alone', async () => {
    await rt.services.mailboxes.add(box('halfdone', 'halfdone'));
    await deliverMaildir(dovecot, 'halfdone', [buildMail({ messageId: 'ours@t' })]);
    await rt.services.fetch.once({ mailbox: 'halfdone' });
    // The state a crash leaves: our mail flagged \Deleted but not expunged; and a mail someone else flagged.
    const [ours] = await listInbox(dovecot, 'halfdone');
    await addFlags(dovecot, 'halfdone', ours!.uid, ['\\Deleted']);
    await appendImap(dovecot, 'halfdone', buildMail({ messageId: 'stranger@t' }), ['\\Deleted']);
    await rt.services.mailboxes.update('halfdone', box('halfdone', 'halfdone', { afterFetch: 'delete' }));
    const [s] = await rt.services.fetch.once({ mailbox: 'halfdone' });
    expect(s).toMatchObject({ reached: true, fetched: 0, created: 0, reacknowledged: 1 });
    const left = await listInbox(dovecot, 'halfdone');
    expect(left.map((m) => m.messageId)).toEqual(['<stranger@t>']);
  });

  it('a mail the database refuses fails alone (STORE_FAILED), its batch goes in, and it is retried next round', async () => {
    await rt.services.mailboxes.add(box('poison', 'poison'));
    // A real refusal by the real database: a trigger the test installs, rejecting one subject.
    const store = await openStore({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
    const install =
      engine === 'sqlite'
        ? [
            sql`create trigger poison before insert on requests when new.subject = 'poison' begin select raise(abort, 'poisoned row'); end`,
          ]
        : [
            sql`create function poison() returns trigger language plpgsql as $$ begin if new.subject = 'poison' then raise exception 'poisoned row'; end if; return new; end $$`,
            sql`create trigger poison before insert on requests for each row execute function poison()`,
          ];
    for (const statement of install) await statement.execute(store.db);
    await deliverMaildir(dovecot, 'poison', [
      buildMail({ subject: 'fine 1' }),
      buildMail({ subject: 'poison' }),
      buildMail({ subject: 'fine 2' }),
    ]);
    const [s] = await rt.services.fetch.once({ mailbox: 'poison' });
    expect(s).toMatchObject({ reached: true, fetched: 3, created: 2, errored: 1 });
    const failed = (await rt.services.log.list({ mailbox: 'poison', outcome: 'error' })).items;
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({
      errorCode: 'STORE_FAILED',
      subject: 'poison',
      rawAvailable: true,
      acknowledged: false,
    });
    expect(failed[0]!.reasons.join(' ')).toMatch(/poisoned row/);
    // Left on the server (unread), and nothing of it stored.
    const unread = (await listInbox(dovecot, 'poison')).filter((m) => !m.flags.includes('\\Seen'));
    expect(unread.map((m) => m.subject)).toEqual(['poison']);
    // The cause fixed, the next round takes it in: the same log row becomes its outcome.
    await sql`drop trigger poison${engine === 'postgres' ? sql` on requests` : sql``}`.execute(store.db);
    await store.close();
    const [again] = await rt.services.fetch.once({ mailbox: 'poison' });
    expect(again).toMatchObject({ fetched: 1, created: 1, errored: 0 });
    const log = (await rt.services.log.list({ mailbox: 'poison' })).items;
    expect(log).toHaveLength(3);
    expect(log.find((e) => e.subject === 'poison')).toMatchObject({
      outcome: 'created',
      attempts: 2,
      acknowledged: true,
    });
  });

  it('keeps the raw source of every mail byte for byte: small ones in the batch pack, large ones streamed', async () => {
    await rt.services.mailboxes.add(box('raw', 'raw'));
    const small = buildMail({ messageId: 'raw-small@t', subject: 'small' });
    const large = buildMail({
      messageId: 'raw-large@t',
      subject: 'large',
      attachments: [
        {
          filename: 'big.bin',
          contentType: 'application/octet-stream',
          content: Buffer.alloc(1_500_000, 0x5a),
        },
      ],
    });
    await deliverMaildir(dovecot, 'raw', [small, large]);
    const [s] = await rt.services.fetch.once({ mailbox: 'raw' });
    expect(s).toMatchObject({ fetched: 2, created: 2 });
    for (const entry of (await rt.services.log.list({ mailbox: 'raw' })).items) {
      const { meta, open } = await rt.services.log.raw(entry.id);
      const bytes = await buffer(open());
      const sent = entry.subject === 'small' ? small : large;
      expect(bytes.equals(sent)).toBe(true);
      expect(meta.size).toBe(sent.length);
    }
  });

  it('a wrong password is a coded round failure, not a crash, and the mailbox records it', async () => {
    await rt.services.mailboxes.add(box('badpw', 'support', { password: 'wrong' }));
    const [s] = await rt.services.fetch.once({ mailbox: 'badpw' });
    expect(s).toMatchObject({ reached: false, error: { code: 'AUTH_FAILED' } });
    expect(s!.error!.message).not.toContain('wrong');
    const view = await rt.services.mailboxes.get('badpw');
    expect(view.state).toMatchObject({ lastErrorCode: 'AUTH_FAILED', consecutiveFailures: 1 });
    expect(JSON.stringify(view)).not.toContain('"wrong"');
    await rt.services.mailboxes.setEnabled('badpw', false);
  });
});
