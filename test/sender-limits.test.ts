import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import { DEFAULT_ERROR_FOLDER } from '../src/connectors/settings.js';
import { silentLogger } from '../src/kernel/logger.js';
import { loadSecretBox } from '../src/kernel/secret-box.js';
import { OWN_MESSAGE_ID_DOMAIN } from '../src/mail/machine.js';
import { type OutboxAttempt, OutboxSender } from '../src/notify/outbox.js';
import { SmtpSettings } from '../src/notify/smtp-settings.js';
import { openStore, type Store } from '../src/store/db.js';
import { conditions } from './kit/conditions.js';
import { imapsMailbox } from './kit/mailboxes.js';
import { buildMail } from './kit/mails.js';
import { deliverMaildir, folderExists, folderMessages } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';
import { type SmtpTestServer, startSmtpServer } from './support/smtp.js';

/**
 * The per-sender limit and the acknowledgement, through a real Dovecot, a real SMTP server on loopback and a
 * real store on both engines.
 */
describe.each(ENGINES)('per-sender limit and acknowledgements on %s', (engine) => {
  let dovecot: DovecotServer;
  let smtp: SmtpTestServer;
  let rt: Runtime;
  /** A second handle on the same database: an outbox sender of the test's own, drained when the test says. */
  let store: Store;
  let drain: () => ReturnType<OutboxSender['drain']>;
  /** The service's own outbox attempts (it sends what a commit queued), to wait on before reading a state. */
  const outboxAttempts: OutboxAttempt[] = [];
  const attempted = conditions();
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    dovecot = await startDovecot({
      users: [
        { name: 'support', password: 'support-pw' },
        { name: 'helpdesk', password: 'helpdesk-pw' },
      ],
    });
    smtp = await startSmtpServer({ tls: 'none' });
    const fresh = await freshConfig(engine);
    cleanup = fresh.cleanup;
    rt = await openRuntime(fresh.config, {
      onOutboxAttempt: (a) => {
        outboxAttempts.push(a);
        attempted.recheck();
      },
    });
    await rt.services.smtp.set({
      host: '127.0.0.1',
      port: smtp.port,
      starttls: false,
      from: 'Help desk <desk@example.test>',
    });
    for (const name of ['support', 'helpdesk']) {
      await rt.services.mailboxes.add(
        imapsMailbox(dovecot, name, name, {
          moveToErrorFolder: true,
          // a runaway sender held back must not stop the mailbox for everyone else
          stopAfterErrors: 2,
          ...(name === 'support' ? { emailAddress: 'support@example.test, help@example.test' } : {}),
        }),
      );
    }
    store = await openStore({ databaseUrl: fresh.config.databaseUrl, dataDir: fresh.config.dataDir });
    const box = loadSecretBox({ secretKey: fresh.config.secretKey, dataDir: fresh.config.dataDir });
    const settings = new SmtpSettings(store, box);
    const sender = new OutboxSender({ store, smtp: () => settings.config(), logger: silentLogger });
    drain = () => sender.drain();
  }, 120_000);
  afterAll(async () => {
    await rt?.close();
    await store?.close();
    await smtp?.close();
    await dovecot?.stop();
    await cleanup?.();
  });

  const requestsOf = async (address: string) =>
    (await rt.services.requests.list({ requester: address, limit: 1000 })).items;
  const logOf = async (mailbox: string) => (await rt.services.log.list({ mailbox, limit: 1000 })).items;
  const outboxTotal = async () => {
    const s = await rt.services.outbox.status();
    return s.pending + s.retrying + s.failed + s.sent;
  };

  /**
   * N+5 new requests of one sender, over two mailboxes fetched at once: exactly N. Each race uses a sender of its
   * own; with N around a hundred, both rounds' transactions count while the other writes (the same way the
   * Message-ID race is made to overlap in concurrency.test.ts), which without the per-sender lock lets both
   * rounds count the same requests on PostgreSQL.
   */
  const RACES = 4;
  const N = 90;
  it(`N+5 new requests of one sender through two mailboxes racing, ${RACES} times: exactly N, five RATE_LIMITED in the error folders, nothing lost`, async () => {
    await rt.services.portals.update('default', { mailSettings: { rateLimit: { maxRequests: N } } });
    const rule = await rt.services.notificationRules.set({
      event: 'mail-error',
      recipients: ['ops@example.test'],
      enabled: true,
    });
    let routed = 0;
    for (let race = 0; race < RACES; race++) {
      const address = `runaway-${race}@script.example`;
      const mails = Array.from({ length: N + 5 }, (_, i) =>
        buildMail({
          from: `Runaway <${address}>`,
          messageId: `runaway-${race}-${i}@script.example`,
          subject: `Alert ${i}`,
        }),
      );
      // interleaved over the two mailboxes, and a person under the limit in both
      await deliverMaildir(dovecot, 'support', [
        ...mails.filter((_, i) => i % 2 === 0),
        buildMail({ from: 'vera@customer.example', messageId: `vera-${race}-1@customer.example` }),
      ]);
      await deliverMaildir(dovecot, 'helpdesk', [
        ...mails.filter((_, i) => i % 2 === 1),
        buildMail({ from: 'vera@customer.example', messageId: `vera-${race}-2@customer.example` }),
      ]);
      const summaries = await Promise.all([
        rt.services.fetch.once({ mailbox: 'support' }),
        rt.services.fetch.once({ mailbox: 'helpdesk' }),
      ]);
      const total = summaries.flat().reduce(
        (t, s) => ({
          fetched: t.fetched + s.fetched,
          created: t.created + s.created,
          errored: t.errored + s.errored,
          moved: t.moved + s.movedToErrorFolder,
        }),
        { fetched: 0, created: 0, errored: 0, moved: 0 },
      );
      expect(total, `race ${race}`).toEqual({ fetched: N + 7, created: N + 2, errored: 5, moved: 5 });
      expect(summaries.flat().map((sum) => sum.stopped)).toEqual([null, null]);
      for (const name of ['support', 'helpdesk'])
        expect(await rt.services.mailboxes.get(name), name).toMatchObject({ enabled: true });
      expect(await requestsOf(address), `race ${race}`).toHaveLength(N);
      expect(await requestsOf('vera@customer.example'), `race ${race}`).toHaveLength(2 * (race + 1));

      const log = [...(await logOf('support')), ...(await logOf('helpdesk'))].filter((l) =>
        l.messageId?.startsWith(`runaway-${race}-`),
      );
      expect(log, `race ${race}`).toHaveLength(N + 5);
      const limited = log.filter((l) => l.outcome === 'error');
      expect(limited, `race ${race}`).toHaveLength(5);
      for (const l of limited) {
        expect(l).toMatchObject({ errorCode: 'RATE_LIMITED', from: address, rawAvailable: true });
        expect(l.reasons[0]).toMatch(
          new RegExp(
            `^runaway-${race}@script\\.example opened ${N} new requests in this portal within 60 minutes \\(the limit is ${N}\\)`,
          ),
        );
        const { open } = await rt.services.log.raw(l.id);
        expect((await buffer(open())).toString('latin1')).toContain(`Message-ID: <${l.messageId}>`);
      }
      // every mail is either a request of the sender or one of the five: none lost, none twice
      const created = log.filter((l) => l.outcome === 'created');
      expect([...created, ...limited].map((l) => l.messageId).sort()).toEqual(
        Array.from({ length: N + 5 }, (_, i) => `runaway-${race}-${i}@script.example`).sort(),
      );
      routed += 5;
      // the error route took each: a row in the error folder list, the mail moved to the folder on the server
      const errorMails = (await rt.services.errorMails.list({ limit: 1000 })).items;
      expect(errorMails.map((e) => e.errorCode)).toEqual(Array(routed).fill('RATE_LIMITED'));
      // which mailbox's round got the excess is the race's to decide: one of them may have none
      const moved = [];
      for (const user of ['support', 'helpdesk']) {
        if (await folderExists(dovecot, user, DEFAULT_ERROR_FOLDER))
          moved.push(...(await folderMessages(dovecot, user, DEFAULT_ERROR_FOLDER)));
      }
      expect(
        moved
          .filter((m) => m.messageId?.startsWith(`<runaway-${race}-`))
          .map((m) => m.messageId)
          .sort(),
      ).toEqual(limited.map((l) => `<${l.messageId}>`).sort());
    }

    // the admins were told once per mailbox that held mails back, not once per mail (the rows stay open)
    const notices = await store.db
      .selectFrom('mail_outbox')
      .selectAll()
      .where('event', '=', 'mail-error')
      .execute();
    const held = (await rt.services.errorMails.list({ limit: 1000 })).items;
    expect(notices).toHaveLength(new Set(held.map((e) => e.mailbox)).size);
    for (const n of notices) expect(n.body).toContain('RATE_LIMITED');
    await drain();
    await smtp.waitFor(notices.length);
    await rt.services.notificationRules.setEnabled(rule.id, false);

    // a reply of the sender on one of its requests is a conversation, never limited
    const [one] = await requestsOf('runaway-0@script.example');
    await deliverMaildir(dovecot, 'support', [
      buildMail({
        from: 'runaway-0@script.example',
        messageId: 'runaway-reply@script.example',
        subject: `Re: ##${one!.id}##`,
      }),
    ]);
    const [reply] = await rt.services.fetch.once({ mailbox: 'support' });
    expect(reply).toMatchObject({ fetched: 1, appended: 1, errored: 0 });

    // our own alias is never counted
    await deliverMaildir(
      dovecot,
      'support',
      Array.from({ length: N + 2 }, (_, i) =>
        buildMail({ from: 'help@example.test', messageId: `own-${i}@example.test` }),
      ),
    );
    const [own] = await rt.services.fetch.once({ mailbox: 'support' });
    expect(own).toMatchObject({ fetched: N + 2, created: N + 2, errored: 0 });
    await rt.services.portals.update('default', { mailSettings: { rateLimit: null } });
  }, 600_000);

  it('acknowledgements: off by default; on, one per request through SMTP with ##id##; none to lists, no-reply, us, machines', async () => {
    const before = await outboxTotal();
    await deliverMaildir(dovecot, 'support', [
      buildMail({ from: 'wes@customer.example', messageId: 'ack-off@customer.example' }),
    ]);
    await rt.services.fetch.once({ mailbox: 'support' });
    expect(await outboxTotal()).toBe(before);
    expect(
      (await logOf('support')).find((l) => l.messageId === 'ack-off@customer.example')!.reasons.join('\n'),
    ).not.toMatch(/acknowledgement/);

    await rt.services.portals.update('default', {
      mailSettings: {
        acknowledgement: { enabled: true, perSenderPerHour: 2, subject: 'Got it: {{subject}}' },
      },
    });
    const people = ['xena@customer.example', 'yann@customer.example', 'zoe@customer.example'];
    const refused: Record<string, [string, RegExp]> = {
      'ack-list@lists.example': [
        'From: list@lists.example',
        /^no acknowledgement: it is list mail \(List-Id/,
      ],
      'ack-unsub@news.example': [
        'From: news@news.example',
        /^no acknowledgement: it is list mail \(List-Unsubscribe\)$/,
      ],
      'ack-bulk@news.example': [
        'From: promo@news.example',
        /^no acknowledgement: it is bulk mail \(Precedence: bulk\)$/,
      ],
      'ack-noreply@shop.example': ['From: no-reply@shop.example', /no-reply-style address$/],
      'ack-donotreply@shop.example': ['From: DoNotReply@shop.example', /no-reply-style address$/],
      'ack-own@example.test': [
        'From: help@example.test',
        /help@example\.test is one of our own mailbox addresses$/,
      ],
      'ack-suppress@corp.example': [
        'From: robot@corp.example',
        /^no acknowledgement: the mail is flagged as sent by a machine/,
      ],
      // a monitoring system's alert: machine-made (auto-generated) but answering nothing, so it opens a request
      // like any mail, and is never answered (RFC 3834)
      'ack-monitor@monitor.example': [
        'From: zabbix@monitor.example',
        /^no acknowledgement: the mail is flagged as sent by a machine \(bulk: Auto-Submitted: auto-generated/,
      ],
    };
    const extra: Record<string, string[]> = {
      'ack-list@lists.example': ['List-Id: <users.lists.example>'],
      'ack-unsub@news.example': ['List-Unsubscribe: <mailto:unsub@news.example>'],
      'ack-bulk@news.example': ['Precedence: bulk'],
      'ack-suppress@corp.example': ['X-Auto-Response-Suppress: All'],
      'ack-monitor@monitor.example': ['Auto-Submitted: auto-generated'],
    };
    const wantAck = [
      ...people.map((p, i) => [p, `ack-${i}@customer.example`] as const),
      [people[0]!, 'ack-again@customer.example'] as const,
    ];
    await deliverMaildir(dovecot, 'support', [
      ...wantAck.map(([from, id]) => buildMail({ from, messageId: id, subject: `Question ${id}` })),
      ...Object.entries(refused).map(([id, [from]]) =>
        buildMail({ from: from.slice('From: '.length), messageId: id, headers: extra[id] ?? [] }),
      ),
      // an auto-reply opens nothing at all (and so is acknowledged by nothing)
      buildMail({
        from: 'abe@customer.example',
        messageId: 'ack-ooo@customer.example',
        subject: 'Out of Office',
        headers: ['Auto-Submitted: auto-replied'],
      }),
      // the per-sender cap: xena's third new request in the hour gets none
      buildMail({ from: people[0]!, messageId: 'ack-third@customer.example' }),
    ]);
    const sentBefore = smtp.mails.length;
    const [summary] = await rt.services.fetch.once({ mailbox: 'support' });
    expect(summary).toMatchObject({
      created: wantAck.length + Object.keys(refused).length + 1,
      ignored: 1,
      errored: 0,
    });
    const received = await smtp.waitFor(sentBefore + wantAck.length);
    const log = await logOf('support');
    const entry = (id: string) => log.find((l) => l.messageId === id)!;
    const acks = received.slice(sentBefore);
    expect(acks).toHaveLength(wantAck.length);
    for (const [to, id] of wantAck) {
      const requestId = entry(id).requestId!;
      expect(entry(id).reasons).toContain(`acknowledgement queued to ${to}`);
      const ack = acks.find((m) => m.parsed.subject?.includes(`##${requestId}##`));
      expect(ack, id).toBeDefined();
      expect(ack!.parsed.subject).toBe(`Got it: Question ${id} ##${requestId}##`);
      expect(ack!.to).toEqual([to]);
      expect(ack!.parsed.messageId).toMatch(new RegExp(`@${OWN_MESSAGE_ID_DOMAIN.replace('.', '\\.')}>$`));
      // from the mailbox the mail came through, answering that mail, and marked as a machine's answer
      // (the SMTP settings' From is desk@example.test: notifications come from there, not acknowledgements)
      expect(ack!.from).toBe('support@example.test');
      expect(ack!.parsed.inReplyTo).toBe(`<${id}>`);
      expect(ack!.parsed.headers.get('auto-submitted')).toBe('auto-generated');
      // the request shows it, with its delivery (sent once the outbox noted the SMTP server took it)
      const shown0 = await rt.services.requests.show(requestId);
      const outboxId = shown0.acknowledgement!.outboxId;
      await attempted.until(() => outboxAttempts.some((a) => a.id === outboxId && a.ok));
      const shown = await rt.services.requests.show(requestId);
      expect(shown.acknowledgement).toMatchObject({ state: 'sent', bounced: false });
    }
    for (const [id, [, reason]] of Object.entries(refused)) {
      expect(entry(id).outcome, id).toBe('created');
      expect((await rt.services.requests.show(entry(id).requestId!)).acknowledgement, id).toBeNull();
      expect(
        entry(id).reasons.filter((r) => r.includes('acknowledgement')),
        id,
      ).toEqual([expect.stringMatching(reason)]);
    }
    expect(entry('ack-ooo@customer.example')).toMatchObject({ outcome: 'ignored', requestId: null });
    expect(entry('ack-third@customer.example').reasons).toContain(
      'no acknowledgement: xena@customer.example had 2 in the last hour (at most 2)',
    );
    // nothing else is waiting to go out
    expect(await drain()).toEqual({ sent: 0, failed: 0, unconfigured: false });
  }, 180_000);

  it('an out-of-office answering our acknowledgement creates nothing and sends nothing: no loop in 100 rounds', async () => {
    await deliverMaildir(dovecot, 'support', [
      buildMail({
        from: 'Olivia <olivia@customer.example>',
        messageId: 'oof-start@customer.example',
        subject: 'VPN down',
      }),
    ]);
    const sentBefore = smtp.mails.length;
    await rt.services.fetch.once({ mailbox: 'support' });
    const [ack] = (await smtp.waitFor(sentBefore + 1)).slice(sentBefore);
    const ackId = ack!.parsed.messageId!;
    const ackSubject = ack!.parsed.subject!;
    const requestsBefore = (await rt.services.requests.list({ limit: 1 })).total;
    const outboxBefore = await outboxTotal();

    // as the usual auto-responders send them, to our mailbox address, answering the acknowledgement
    const styles = [
      (n: number) =>
        buildMail({
          from: 'Olivia <olivia@customer.example>',
          to: 'Support <support@example.test>',
          messageId: `exchange-oof-${n}@customer.example`,
          subject: `Automatic reply: ${ackSubject}`,
          inReplyTo: ackId.slice(1, -1),
          references: ackId,
          headers: [
            'Auto-Submitted: auto-generated',
            'X-Auto-Response-Suppress: All',
            'X-MS-Exchange-Inbox-Rules-Loop: olivia@customer.example',
            'Return-Path: <>',
          ],
          body: 'I am out of the office until Monday.\r\n',
        }),
      (n: number) =>
        buildMail({
          from: 'Olivia <olivia@customer.example>',
          to: 'support@example.test',
          messageId: `gmail-vacation-${n}@customer.example`,
          subject: 'On vacation',
          inReplyTo: ackId.slice(1, -1),
          references: ackId,
          headers: ['Auto-Submitted: auto-replied', 'Precedence: bulk'],
          body: 'I am on vacation.\r\n',
        }),
      (n: number) =>
        buildMail({
          from: 'olivia@customer.example',
          to: 'support@example.test',
          messageId: `subject-only-${n}@customer.example`,
          subject: `Abwesenheitsnotiz: ${ackSubject}`,
          inReplyTo: ackId.slice(1, -1),
          body: 'Ich bin nicht im Büro.\r\n',
        }),
    ];
    for (let round = 0; round < 100; round++) {
      await deliverMaildir(dovecot, 'support', [styles[round % styles.length]!(round)]);
      const [summary] = await rt.services.fetch.once({ mailbox: 'support' });
      expect(summary, `round ${round}`).toMatchObject({ fetched: 1, created: 0, errored: 0 });
      expect(await drain(), `round ${round}`).toEqual({ sent: 0, failed: 0, unconfigured: false });
    }
    expect(smtp.mails.length - sentBefore).toBe(1);
    expect(await outboxTotal()).toBe(outboxBefore);
    expect((await rt.services.requests.list({ limit: 1 })).total).toBe(requestsBefore);
    const oofs = (await logOf('support')).filter((l) =>
      /^(exchange-oof|gmail-vacation|subject-only)-/.test(l.messageId ?? ''),
    );
    expect(oofs).toHaveLength(100);
    // each answers the acknowledgement, whose Message-ID is the request's: kept as an automatic conversation there
    const ackRequest = Number(/##(\d+)##/.exec(ackSubject)![1]);
    for (const l of oofs) {
      expect(l.outcome).toBe('appended');
      expect(l.requestId).toBe(ackRequest);
      expect(l.reasons[0]).toMatch(/^auto-reply: /);
      expect(l.reasons.join('\n')).not.toMatch(/acknowledgement queued/);
    }
  }, 600_000);
});
