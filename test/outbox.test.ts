import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../src/kernel/logger.js';
import { loadSecretBox } from '../src/kernel/secret-box.js';
import type { Notice } from '../src/notify/notifier.js';
import { type OutboxAttempt, OutboxSender, outboxStatus, retryOutboxMail } from '../src/notify/outbox.js';
import { NotificationRules } from '../src/notify/rules.js';
import { SmtpSettings } from '../src/notify/smtp-settings.js';
import { StoreNotifier } from '../src/notify/store-notifier.js';
import { nowIso, openStore, type Store } from '../src/store/db.js';
import { withTransaction } from '../src/store/tx.js';
import { ENGINES, freshConfig } from './support/engines.js';
import { type SmtpTestServer, startSmtpServer } from './support/smtp.js';

/**
 * The notification outbox against a real SMTP server on loopback (STARTTLS or implicit TLS, AUTH PLAIN), on
 * both engines: recipients from the rules, sending, retries after the server was down or refused, giving up,
 * and several senders (processes) on one database sending every mail exactly once. Time is an injected clock:
 * a retry "an hour later" is a clock step, not a wait.
 */

const SMTP_USER = 'notifier';
const SMTP_PASSWORD = 'Smtp-Secret-42';
const MINUTE = 60_000;

describe.each(ENGINES)('notification outbox on %s', (engine) => {
  let fresh: Awaited<ReturnType<typeof freshConfig>>;
  let store: Store;
  let smtpServer: SmtpTestServer;
  let smtp: SmtpSettings;
  let portalId: number;
  let otherPortalId: number;
  const attempts: OutboxAttempt[] = [];
  let offset = 0;
  const now = () => new Date(Date.now() + offset);
  const notifier = new StoreNotifier();
  const sender = (s: Store = store, extra: Partial<ConstructorParameters<typeof OutboxSender>[0]> = {}) =>
    new OutboxSender({
      store: s,
      smtp: () => smtp.config(),
      logger: silentLogger,
      now,
      onAttempt: (a) => attempts.push(a),
      ...extra,
    });
  const record = (notice: Partial<Notice> & { title: string }) =>
    withTransaction(store, (tx) =>
      notifier.record(tx, {
        event: 'connection-failure',
        portalId,
        mailboxId: null,
        body: `Body of ${notice.title}`,
        ...notice,
      }),
    );
  const smtpInput = (server: SmtpTestServer, extra: Record<string, unknown> = {}) => ({
    host: '127.0.0.1',
    port: server.port,
    username: SMTP_USER,
    password: SMTP_PASSWORD,
    from: 'Mailintake Alerts <alerts@example.test>',
    caFile: server.caFile,
    ...extra,
  });

  beforeAll(async () => {
    fresh = await freshConfig(engine);
    store = await openStore({ databaseUrl: fresh.config.databaseUrl, dataDir: fresh.config.dataDir });
    const box = loadSecretBox({ secretKey: undefined, dataDir: fresh.config.dataDir });
    for (const name of ['default', 'other']) {
      await store.db
        .insertInto('portals')
        .values({ name, header_threading: 1, created_at: nowIso() })
        .execute();
    }
    const ids = await store.db.selectFrom('portals').select(['id', 'name']).execute();
    portalId = ids.find((p) => p.name === 'default')!.id;
    otherPortalId = ids.find((p) => p.name === 'other')!.id;
    smtpServer = await startSmtpServer({
      tls: 'starttls',
      auth: { username: SMTP_USER, password: SMTP_PASSWORD },
    });
    smtp = new SmtpSettings(store, box);
    await smtp.set(smtpInput(smtpServer, { secure: false, starttls: true }));
    const rules = new NotificationRules(store);
    await rules.set({
      event: 'connection-failure',
      recipients: ['Tech1@Example.test', 'tech2@example.test'],
    });
    await rules.set({
      event: 'connection-failure',
      portal: 'default',
      recipients: ['tech2@example.test', 'lead@example.test'],
    });
    const disabled = await rules.set({
      event: 'connection-failure',
      portal: 'other',
      recipients: ['nobody@example.test'],
    });
    await rules.setEnabled(disabled.id, false);
    await rules.set({ event: 'mail-error', recipients: ['errors@example.test'] });
  });
  afterAll(async () => {
    await store?.close();
    await smtpServer?.close();
    await fresh?.cleanup();
  });
  beforeEach(async () => {
    await store.db.deleteFrom('mail_outbox').execute();
    await store.db.deleteFrom('notifications').execute();
    smtpServer.mails.length = 0;
    smtpServer.refuseRecipients(null);
    attempts.length = 0;
    offset = 0;
  });

  it('records a bell and one mail to the rules’ recipients, each address once; no recipients, no mail', async () => {
    await record({ title: 'Default portal alert', bell: true });
    await record({ title: 'Other portal alert', portalId: otherPortalId });
    await record({ title: 'Nobody wants this', event: 'attachment-dropped' });
    await record({ title: 'Bell only', event: 'mail-error', bell: true, email: false });

    const outbox = await store.db.selectFrom('mail_outbox').selectAll().orderBy('id').execute();
    expect(outbox.map((r) => [r.subject, JSON.parse(r.recipients)])).toEqual([
      // every-portal rule + the portal's rule, deduplicated and lower-cased
      ['Default portal alert', ['tech1@example.test', 'tech2@example.test', 'lead@example.test']],
      // the other portal's own rule is disabled: only the every-portal rule
      ['Other portal alert', ['tech1@example.test', 'tech2@example.test']],
    ]);
    expect(outbox.every((r) => r.sent_at === null && r.attempts === 0)).toBe(true);
    const bell = await store.db.selectFrom('notifications').selectAll().orderBy('id').execute();
    expect(bell.map((n) => [n.title, n.event, n.read_at])).toEqual([
      ['Default portal alert', 'connection-failure', null],
      ['Bell only', 'mail-error', null],
    ]);
  });

  it('sends through STARTTLS with AUTH PLAIN as the configured sender, marked automatic, and marks the row sent', async () => {
    await record({ title: 'Mailbox support cannot connect', body: 'Line one\nLine two' });
    const result = await sender().drain();
    expect(result).toEqual({ sent: 1, failed: 0, unconfigured: false });
    const [mail] = await smtpServer.waitFor(1);
    expect(mail!.secure).toBe(true);
    expect(mail!.user).toBe(SMTP_USER);
    expect(mail!.from).toBe('alerts@example.test');
    expect(mail!.to).toEqual(['tech1@example.test', 'tech2@example.test', 'lead@example.test']);
    expect(mail!.parsed.subject).toBe('Mailbox support cannot connect');
    expect(mail!.parsed.from?.value).toEqual([{ address: 'alerts@example.test', name: 'Mailintake Alerts' }]);
    expect(mail!.parsed.text?.trim()).toBe('Line one\nLine two');
    expect(mail!.parsed.headers.get('auto-submitted')).toBe('auto-generated');
    expect(mail!.parsed.headers.get('x-mailintake-event')).toBe('connection-failure');
    // with our Message-ID domain, what recognises this mail if it comes back to one of our mailboxes
    expect(mail!.parsed.headers.get('x-mailintake-loop')).toBe('mailintake');
    const row = await store.db.selectFrom('mail_outbox').selectAll().executeTakeFirstOrThrow();
    expect(row).toMatchObject({ attempts: 1, last_error: null, failed_at: null });
    expect(row.sent_at).not.toBeNull();
    expect(mail!.parsed.messageId).toBe(
      `<mailintake-outbox-${row.id}-${Date.parse(row.created_at)}@mailintake.invalid>`,
    );
    // sent is sent: another pass sends nothing
    expect(await sender().drain()).toEqual({ sent: 0, failed: 0, unconfigured: false });
    expect(smtpServer.mails).toHaveLength(1);
  });

  it('keeps a subject from a mail on one line: CR/LF cannot add headers', async () => {
    await record({ title: 'Dropped from: evil\r\nBcc: victim@example.test\r\nX-Injected: yes' });
    await sender().drain();
    const [mail] = await smtpServer.waitFor(1);
    expect(mail!.parsed.subject).toBe('Dropped from: evil Bcc: victim@example.test X-Injected: yes');
    expect(mail!.parsed.headers.has('x-injected')).toBe(false);
    expect(mail!.to).not.toContain('victim@example.test');
  });

  it('retries after the SMTP server was down, then sends each mail once', async () => {
    await smtpServer.stop();
    await record({ title: 'First while down' });
    await record({ title: 'Second while down' });
    const s = sender();
    expect(await s.drain()).toEqual({ sent: 0, failed: 1, unconfigured: false });
    let rows = await store.db.selectFrom('mail_outbox').selectAll().orderBy('id').execute();
    expect(rows[0]).toMatchObject({ attempts: 1, sent_at: null, failed_at: null });
    expect(rows[0]!.last_error).toMatch(/^CONNECT_FAILED: no connection to the SMTP server 127\.0\.0\.1:\d+/);
    // one minute later, by the default back-off
    expect(Date.parse(rows[0]!.next_attempt_at) - Date.now()).toBeGreaterThan(MINUTE - 5_000);
    // the server is down: the second mail keeps its turn, no attempt counted against it
    expect(rows[1]).toMatchObject({ attempts: 0, last_error: null });
    expect(attempts).toEqual([
      expect.objectContaining({
        ok: false,
        attempts: 1,
        error: expect.objectContaining({ code: 'CONNECT_FAILED' }),
      }),
    ]);

    await smtpServer.start();
    // the second mail is due and goes out; the first waits for its back-off
    expect(await s.drain()).toEqual({ sent: 1, failed: 0, unconfigured: false });
    offset = MINUTE + 1_000;
    expect(await s.drain()).toEqual({ sent: 1, failed: 0, unconfigured: false });
    await smtpServer.waitFor(2);
    expect(smtpServer.mails.map((m) => m.parsed.subject).sort()).toEqual([
      'First while down',
      'Second while down',
    ]);
    rows = await store.db.selectFrom('mail_outbox').selectAll().orderBy('id').execute();
    expect(rows.map((r) => [r.attempts, r.sent_at !== null, r.last_error])).toEqual([
      [2, true, null],
      [1, true, null],
    ]);
  });

  it('retries a temporary refusal (451) and gives up on a permanent one (550) until an operator retries it', async () => {
    await record({ title: 'Refused mail' });
    const s = sender();
    smtpServer.refuseRecipients({ code: 451, message: 'Mailbox busy, try later' });
    expect(await s.drain()).toMatchObject({ sent: 0, failed: 1 });
    let status = await outboxStatus(store, true);
    expect(status).toMatchObject({ pending: 0, retrying: 1, failed: 0 });
    expect(status.unsent[0]!.lastError).toMatch(/^SEND_FAILED: .*451 Mailbox busy, try later/);

    smtpServer.refuseRecipients({ code: 550, message: 'No such user here' });
    offset = MINUTE + 1_000;
    expect(await s.drain()).toMatchObject({ sent: 0, failed: 1 });
    expect(attempts.at(-1)).toMatchObject({ ok: false, attempts: 2, gaveUp: true });
    status = await outboxStatus(store, true);
    expect(status).toMatchObject({ pending: 0, retrying: 0, failed: 1, sent: 0 });
    expect(status.unsent[0]).toMatchObject({ state: 'failed', attempts: 2, nextAttemptAt: null });
    expect(status.unsent[0]!.lastError).toMatch(/550 No such user here/);
    // given up: not tried again, however late it gets
    offset = 24 * 60 * MINUTE;
    expect(await s.drain()).toMatchObject({ sent: 0, failed: 0 });

    smtpServer.refuseRecipients(null);
    const again = await retryOutboxMail(store, status.unsent[0]!.id);
    expect(again).toMatchObject({ state: 'pending', attempts: 0 });
    expect(await s.drain()).toMatchObject({ sent: 1, failed: 0 });
    expect((await smtpServer.waitFor(1)).map((m) => m.parsed.subject)).toEqual(['Refused mail']);
    await expect(retryOutboxMail(store, again.id)).rejects.toMatchObject({ code: 'CONFLICT' });
  });

  it('gives up after the maximum number of attempts', async () => {
    await smtpServer.stop();
    try {
      await record({ title: 'Never reachable' });
      const s = sender(store, { maxAttempts: 3, retryDelayMs: () => MINUTE });
      for (let i = 1; i <= 3; i++) {
        offset = i * 2 * MINUTE;
        expect(await s.drain()).toMatchObject({ sent: 0, failed: 1 });
      }
      expect(attempts.map((a) => [a.attempts, a.gaveUp ?? false])).toEqual([
        [1, false],
        [2, false],
        [3, true],
      ]);
      expect(await outboxStatus(store, true)).toMatchObject({ failed: 1, retrying: 0 });
    } finally {
      await smtpServer.start();
    }
  });

  it('two senders on one database (two processes) send every mail exactly once', async () => {
    const second = await openStore({ databaseUrl: fresh.config.databaseUrl, dataDir: fresh.config.dataDir });
    try {
      const N = 30;
      for (let i = 0; i < N; i++) await record({ title: `Mail ${i}` });
      const [a, b] = await Promise.all([sender(store).drain(), sender(second).drain()]);
      expect(a.sent + b.sent).toBe(N);
      expect(a.failed + b.failed).toBe(0);
      await smtpServer.waitFor(N);
      const subjects = smtpServer.mails.map((m) => m.parsed.subject);
      expect(new Set(subjects).size).toBe(N);
      expect(subjects).toHaveLength(N);
      const rows = await store.db.selectFrom('mail_outbox').select(['attempts', 'sent_at']).execute();
      expect(rows.every((r) => r.attempts === 1 && r.sent_at !== null)).toBe(true);
    } finally {
      await second.close();
    }
  });

  it('a mail claimed by a process that died is sent by another once the claim deadline passed', async () => {
    await record({ title: 'Claimed, then the process died' });
    // what a claim by another process looks like: due time moved to its deadline, one attempt counted
    await store.db
      .updateTable('mail_outbox')
      .set({ next_attempt_at: new Date(Date.now() + 10 * MINUTE).toISOString(), attempts: 1 })
      .execute();
    const s = sender();
    expect(await s.drain()).toMatchObject({ sent: 0, failed: 0 });
    expect(smtpServer.mails).toHaveLength(0);
    offset = 10 * MINUTE + 1_000;
    expect(await s.drain()).toMatchObject({ sent: 1, failed: 0 });
    expect((await smtpServer.waitFor(1))[0]!.parsed.subject).toBe('Claimed, then the process died');
  });

  it('sends through implicit TLS, and reports a refused login as AUTH_FAILED (retried)', async () => {
    const implicit = await startSmtpServer({
      tls: 'implicit',
      auth: { username: SMTP_USER, password: SMTP_PASSWORD },
    });
    try {
      await smtp.set(smtpInput(implicit, { secure: true }));
      await record({ title: 'Over implicit TLS' });
      expect(await sender().drain()).toMatchObject({ sent: 1 });
      const [mail] = await implicit.waitFor(1);
      expect(mail).toMatchObject({ secure: true, user: SMTP_USER });

      await smtp.set(smtpInput(implicit, { secure: true, password: 'wrong-password' }));
      await record({ title: 'Wrong password' });
      expect(await sender().drain()).toMatchObject({ sent: 0, failed: 1 });
      expect(implicit.refusedLogins).toBe(1);
      const status = await outboxStatus(store, true);
      expect(status).toMatchObject({ retrying: 1, failed: 0 });
      expect(status.unsent[0]!.lastError).toMatch(
        /^AUTH_FAILED: the SMTP server 127\.0\.0\.1:\d+ refused the login/,
      );
      expect(status.unsent[0]!.lastError).not.toContain('wrong-password');
    } finally {
      await smtp.set(smtpInput(smtpServer, { secure: false }));
      await implicit.close();
    }
  });

  it('requires STARTTLS unless switched off: a server without it is TLS_FAILED, never plain text by surprise', async () => {
    const plain = await startSmtpServer({ tls: 'none' });
    try {
      await smtp.set({ host: '127.0.0.1', port: plain.port, from: 'alerts@example.test' });
      await record({ title: 'Needs TLS' });
      expect(await sender().drain()).toMatchObject({ sent: 0, failed: 1 });
      expect(plain.mails).toHaveLength(0);
      const status = await outboxStatus(store, true);
      expect(status.unsent[0]!.lastError).toMatch(/^TLS_FAILED: /);

      await smtp.set({ host: '127.0.0.1', port: plain.port, from: 'alerts@example.test', starttls: false });
      offset = MINUTE + 1_000;
      expect(await sender().drain()).toMatchObject({ sent: 1, failed: 0 });
      const [mail] = await plain.waitFor(1);
      expect(mail).toMatchObject({ secure: false, user: null });
      expect(mail!.parsed.subject).toBe('Needs TLS');
    } finally {
      await smtp.set(smtpInput(smtpServer, { secure: false }));
      await plain.close();
    }
  });

  it('a row that cannot be made into a mail fails alone with its code; the mail after it still goes out in the same pass', async () => {
    await record({ title: 'Broken row' });
    await record({ title: 'Fine row' });
    const [broken] = await store.db.selectFrom('mail_outbox').select('id').orderBy('id').execute();
    await store.db
      .updateTable('mail_outbox')
      .set({ recipients: 'not json' })
      .where('id', '=', broken!.id)
      .execute();
    expect(await sender().drain()).toEqual({ sent: 1, failed: 1, unconfigured: false });
    await smtpServer.waitFor(1);
    expect(smtpServer.mails.map((m) => m.parsed.subject)).toEqual(['Fine row']);
    const row = await store.db
      .selectFrom('mail_outbox')
      .selectAll()
      .where('id', '=', broken!.id)
      .executeTakeFirstOrThrow();
    expect(row).toMatchObject({ sent_at: null, attempts: 1 });
    expect(row.last_error).toMatch(
      /^INTERNAL: the stored mail_outbox\.recipients of row \d+ is not valid JSON/,
    );
  });

  it('keeps mail waiting while no SMTP server is configured', async () => {
    await record({ title: 'Waiting for a server' });
    const s = sender(store, { smtp: async () => undefined });
    expect(await s.drain()).toEqual({ sent: 0, failed: 0, unconfigured: true });
    const row = await store.db.selectFrom('mail_outbox').selectAll().executeTakeFirstOrThrow();
    expect(row).toMatchObject({ attempts: 0, sent_at: null, last_error: null });
    expect(await sender().drain()).toMatchObject({ sent: 1 });
    await smtpServer.waitFor(1);
  });

  it('kick() sends what was recorded, and stop() waits for the running pass', async () => {
    const s = sender();
    const wired = new StoreNotifier(() => s.kick());
    await withTransaction(store, (tx) =>
      wired.record(tx, {
        event: 'connection-failure',
        portalId,
        mailboxId: null,
        title: 'Kicked',
        body: 'b',
      }),
    );
    wired.kick();
    await s.stop();
    expect(smtpServer.mails.map((m) => m.parsed.subject)).toEqual(['Kicked']);
    // stopped: a kick does nothing any more
    await record({ title: 'After stop' });
    s.kick();
    await s.stop();
    expect(smtpServer.mails).toHaveLength(1);
  });
});
