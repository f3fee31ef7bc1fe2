import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import type { OutboxAttempt } from '../src/notify/outbox.js';
import { conditions } from './kit/conditions.js';
import { imapsMailbox } from './kit/mailboxes.js';
import { buildMail } from './kit/mails.js';
import { deliverMaildir, listInbox } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';
import { type SmtpTestServer, startSmtpServer } from './support/smtp.js';

/**
 * The reference's "Configure Notifications for Connectivity Issues" end to end: a real Dovecot that is stopped
 * and started again, a real SMTP server on loopback that receives the notification mail, both engines.
 * Rounds are driven with `fetch.once`, the very round the scheduler runs (fetchMailbox → recordRound), so the
 * test does not wait out five fetch intervals.
 */

const TECHS = ['tech1@example.test', 'tech2@example.test'];

describe.each(ENGINES)('connection-failure alerts on %s', (engine) => {
  let dovecot: DovecotServer;
  let smtpServer: SmtpTestServer;
  let rt: Runtime;
  let cleanup: () => Promise<void>;
  const sent: OutboxAttempt[] = [];
  const outbox = conditions();

  beforeAll(async () => {
    dovecot = await startDovecot({ users: [{ name: 'flaky', password: 'flaky-pw' }] });
    smtpServer = await startSmtpServer({
      tls: 'starttls',
      auth: { username: 'alerts', password: 'alerts-pw' },
    });
    const fresh = await freshConfig(engine, { MAILINTAKE_PUBLIC_URL: 'https://helpdesk.example.test' });
    cleanup = fresh.cleanup;
    rt = await openRuntime(fresh.config, {
      onOutboxAttempt: (a) => {
        sent.push(a);
        outbox.recheck();
      },
    });
    await rt.services.smtp.set({
      host: '127.0.0.1',
      port: smtpServer.port,
      username: 'alerts',
      password: 'alerts-pw',
      from: 'Mailintake <mailintake@example.test>',
      caFile: smtpServer.caFile,
    });
    await rt.services.notificationRules.set({ event: 'connection-failure', recipients: TECHS });
    await rt.services.notificationRules.set({ event: 'connection-recovered', recipients: TECHS });
  });
  afterAll(async () => {
    await rt?.close();
    await smtpServer?.close();
    await dovecot?.stop();
    await cleanup?.();
  });

  const failures = async (name: string) => (await rt.services.mailboxes.get(name)).state.consecutiveFailures;
  const sentOk = () => sent.filter((a) => a.ok).length;

  it('Dovecot down: 5 failed rounds give one bell and one email, the count resets; back up: recovered, nothing lost', async () => {
    await rt.services.mailboxes.add(imapsMailbox(dovecot, 'flaky', 'flaky'));
    await deliverMaildir(dovecot, 'flaky', [buildMail({ subject: 'Before the outage' })]);
    expect((await rt.services.fetch.once({ mailbox: 'flaky' }))[0]).toMatchObject({
      reached: true,
      created: 1,
    });

    await dovecot.kill();
    // mail keeps arriving at the server while we cannot reach it
    await deliverMaildir(dovecot, 'flaky', [
      buildMail({ subject: 'During the outage 1' }),
      buildMail({ subject: 'During the outage 2' }),
    ]);

    expect((await rt.services.mailboxes.get('flaky')).state.failingSince).toBeNull();
    let since: string | null = null;
    for (let round = 1; round <= 4; round++) {
      const [summary] = await rt.services.fetch.once({ mailbox: 'flaky' });
      expect(summary).toMatchObject({ reached: false, error: { code: 'CONNECT_FAILED' } });
      expect(await failures('flaky')).toBe(round);
      // the run's first failure is kept while the run lasts
      const state = (await rt.services.mailboxes.get('flaky')).state;
      if (round === 1) since = state.failingSince;
      expect(since).toEqual(expect.any(String));
      expect(state.failingSince).toBe(since);
    }
    expect(await rt.services.notifications.unreadCount()).toEqual({ unread: 0 });
    expect(await rt.services.outbox.status()).toMatchObject({ pending: 0, retrying: 0, sent: 0 });

    // round 5 reaches the threshold
    expect((await rt.services.fetch.once({ mailbox: 'flaky' }))[0]).toMatchObject({ reached: false });
    expect(await failures('flaky')).toBe(0);
    const bell = await rt.services.notifications.list({});
    expect(bell.total).toBe(1);
    expect(bell.items[0]).toMatchObject({
      event: 'connection-failure',
      mailbox: 'flaky',
      portal: 'default',
      readAt: null,
      title: 'Mailbox flaky cannot connect: 5 failed rounds in a row',
    });
    expect(bell.items[0]!.body).toContain('CONNECT_FAILED');
    await outbox.until(() => sentOk() >= 1);
    const [alert] = await smtpServer.waitFor(1);
    expect(alert!.to).toEqual(TECHS);
    expect(alert!.parsed.subject).toBe('Mailbox flaky cannot connect: 5 failed rounds in a row');
    expect(alert!.parsed.text).toContain(`imaps://localhost:${dovecot.ports.imaps}`);
    expect(alert!.parsed.text).toContain('Last error: CONNECT_FAILED');
    expect(alert!.parsed.text).toContain('No mail is lost');
    // the mailbox's page, on the public URL; the bell links to the same page
    expect(alert!.parsed.text).toContain('https://helpdesk.example.test/mailboxes/flaky');
    expect(bell.items[0]!.link).toBe('/mailboxes/flaky');
    const failureLog = await rt.services.systemLog.list({ category: 'connection-failure' });
    expect(failureLog.total).toBe(1);
    expect(failureLog.items[0]).toMatchObject({ level: 'error', details: { mailbox: 'flaky', failures: 5 } });

    // the count started again: a sixth failed round is round 1 of the next five, no second notice
    expect((await rt.services.fetch.once({ mailbox: 'flaky' }))[0]).toMatchObject({ reached: false });
    expect(await failures('flaky')).toBe(1);
    // ...while the run of failures, and its start, go on (the console says "failing since" it)
    expect((await rt.services.mailboxes.get('flaky')).state.failingSince).toBe(since);
    expect((await rt.services.notifications.list({})).total).toBe(1);
    expect(await rt.services.outbox.status()).toMatchObject({ pending: 0, retrying: 0, failed: 0, sent: 1 });

    await dovecot.restart();
    const [back] = await rt.services.fetch.once({ mailbox: 'flaky' });
    expect(back).toMatchObject({ reached: true, created: 2, errored: 0, error: null });
    expect(await failures('flaky')).toBe(0);
    expect((await rt.services.mailboxes.get('flaky')).state.failingSince).toBeNull();
    const after = await rt.services.notifications.list({ unread: true });
    expect(after.items.map((n) => n.event)).toEqual(['connection-recovered', 'connection-failure']);
    expect(after.items[0]!.title).toBe('Mailbox flaky connects again');
    await outbox.until(() => sentOk() >= 2);
    const mails = await smtpServer.waitFor(2);
    expect(mails).toHaveLength(2);
    expect(mails[1]!.to).toEqual(TECHS);
    expect(mails[1]!.parsed.subject).toBe('Mailbox flaky connects again');
    expect((await rt.services.systemLog.list({ category: 'connection-recovered' })).total).toBe(1);

    // nothing lost, nothing twice: every mail is one request, and read on the server
    const requests = await rt.services.requests.list({});
    expect(requests.items.map((r) => r.subject).sort()).toEqual([
      'Before the outage',
      'During the outage 1',
      'During the outage 2',
    ]);
    const log = await rt.services.log.list({ mailbox: 'flaky' });
    expect(log.items.map((e) => e.outcome)).toEqual(['created', 'created', 'created']);
    expect((await listInbox(dovecot, 'flaky')).every((m) => m.flags.includes('\\Seen'))).toBe(true);

    // mail flows again, and a round that connects tells nobody anything more
    await deliverMaildir(dovecot, 'flaky', [buildMail({ subject: 'After the outage' })]);
    expect((await rt.services.fetch.once({ mailbox: 'flaky' }))[0]).toMatchObject({
      reached: true,
      created: 1,
    });
    expect((await rt.services.requests.list({})).total).toBe(4);
    expect((await rt.services.notifications.list({})).total).toBe(2);
    expect(await rt.services.outbox.status()).toMatchObject({ pending: 0, retrying: 0, sent: 2 });

    expect(await rt.services.notifications.markAllRead()).toEqual({ marked: 2 });
    expect(await rt.services.notifications.unreadCount()).toEqual({ unread: 0 });
  });

  it('threshold and switch are instance settings; switched off, rounds are counted and nobody is notified', async () => {
    // nothing listens on port 1: every round fails with CONNECT_FAILED at once
    await rt.services.mailboxes.add(
      imapsMailbox(dovecot, 'unreachable', 'flaky', { server: '127.0.0.1', port: 1, idle: false }),
    );
    const bellBefore = (await rt.services.notifications.list({})).total;
    const mailsBefore = smtpServer.mails.length;
    const round = async () =>
      expect((await rt.services.fetch.once({ mailbox: 'unreachable' }))[0]).toMatchObject({
        reached: false,
        error: { code: 'CONNECT_FAILED' },
      });

    expect(await rt.services.alerts.get()).toEqual({ threshold: 5, enabled: true });
    expect(await rt.services.alerts.set({ threshold: 2 })).toEqual({ threshold: 2, enabled: true });
    await round();
    expect(await failures('unreachable')).toBe(1);
    await round();
    expect(await failures('unreachable')).toBe(0);
    expect((await rt.services.notifications.list({})).total).toBe(bellBefore + 1);
    await smtpServer.waitFor(mailsBefore + 1);
    expect(smtpServer.mails.at(-1)!.parsed.subject).toBe(
      'Mailbox unreachable cannot connect: 2 failed rounds in a row',
    );

    expect(await rt.services.alerts.set({ enabled: false })).toEqual({ threshold: 2, enabled: false });
    for (let n = 1; n <= 3; n++) {
      await round();
      // past the threshold: counted on, not reset, nobody told
      expect(await failures('unreachable')).toBe(n);
    }
    expect((await rt.services.notifications.list({})).total).toBe(bellBefore + 1);
    const outboxRows = await rt.services.outbox.status();
    expect(outboxRows.sent + outboxRows.pending + outboxRows.retrying).toBe(mailsBefore + 1);

    // switched on again: the count (4 by then) is past the threshold, so the next failed round notifies
    await rt.services.alerts.set({ enabled: true });
    await round();
    expect(await failures('unreachable')).toBe(0);
    const bell = await rt.services.notifications.list({});
    expect(bell.total).toBe(bellBefore + 2);
    expect(bell.items[0]!.title).toBe('Mailbox unreachable cannot connect: 4 failed rounds in a row');

    const invalid = await rt.services.alerts.set({ threshold: 0, enabled: 'yes' }).catch((e: unknown) => e);
    expect(invalid).toMatchObject({ code: 'INVALID_SETTINGS' });
    expect(
      (invalid as { details: { fields: { field: string }[] } }).details.fields.map((f) => f.field).sort(),
    ).toEqual(['enabled', 'threshold']);
    const settingsLog = await rt.services.systemLog.list({ category: 'notification-settings' });
    expect(settingsLog.items.map((e) => e.message)).toContain(
      'connection-failure notifications off, threshold 2 consecutive failed rounds',
    );
    await rt.services.alerts.set({ threshold: 5 });
  });
});
