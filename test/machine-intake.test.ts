import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import { OWN_MESSAGE_ID_DOMAIN } from '../src/mail/machine.js';
import { openSmtpTransport } from '../src/notify/smtp-transport.js';
import { imapsMailbox } from './kit/mailboxes.js';
import { buildMail } from './kit/mails.js';
import { deliverMaildir, listInbox } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';
import { type SmtpTestServer, startSmtpServer } from './support/smtp.js';

/**
 * Machines' mail through a real Dovecot into a real store: a bounce, an out-of-office that threads nowhere, one
 * that answers a request, our own notification mail come back (as our SMTP transport really sends it), and a
 * person's mail. Only the person's mail makes a request; the threading out-of-office is kept on it, marked
 * automatic; the other three are ignored, each with its reason and its raw source kept.
 */
describe.each(ENGINES)('machine mail at intake on %s', (engine) => {
  let dovecot: DovecotServer;
  let smtp: SmtpTestServer;
  let rt: Runtime;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    dovecot = await startDovecot({ users: [{ name: 'support', password: 'support-pw' }] });
    smtp = await startSmtpServer({ tls: 'none' });
    const fresh = await freshConfig(engine);
    cleanup = fresh.cleanup;
    rt = await openRuntime(fresh.config);
  }, 120_000);
  afterAll(async () => {
    await rt?.close();
    await smtp?.close();
    await dovecot?.stop();
    await cleanup?.();
  });

  /** A notification mail exactly as Mailintake sends one (the outbox's Message-ID form, our transport). */
  async function ownNotification(): Promise<Buffer> {
    const transport = await openSmtpTransport({
      host: smtp.host,
      port: smtp.port,
      secure: false,
      starttls: false,
      username: null,
      password: null,
      from: { name: 'Mailintake', address: 'support@example.test' },
      caFile: null,
    });
    try {
      await transport.send({
        to: ['support@example.test'],
        subject: 'Attachment dropped from request #1',
        text: 'An attachment was dropped.',
        messageId: `<mailintake-outbox-1-1700000000000@${OWN_MESSAGE_ID_DOMAIN}>`,
        headers: { 'X-Mailintake-Event': 'attachment-dropped' },
      });
    } finally {
      transport.close();
    }
    const [sent] = await smtp.waitFor(1);
    return sent!.raw;
  }

  const bounce = Buffer.from(
    [
      'From: Mail Delivery System <MAILER-DAEMON@mx.example.org>',
      'To: support@example.test',
      'Subject: Undelivered Mail Returned to Sender',
      'Date: Mon, 01 Jan 2024 11:00:00 +0000',
      'Message-ID: <dsn-1@mx.example.org>',
      'Auto-Submitted: auto-replied',
      'MIME-Version: 1.0',
      'Content-Type: multipart/report; report-type=delivery-status; boundary="dsn"',
      '',
      '--dsn',
      'Content-Type: text/plain; charset=us-ascii',
      '',
      'This is the mail system at host mx.example.org.',
      "I'm sorry to have to inform you that your message could not be delivered.",
      '',
      '--dsn',
      'Content-Type: message/delivery-status',
      '',
      'Reporting-MTA: dns; mx.example.org',
      '',
      'Final-Recipient: rfc822; gone@example.org',
      'Action: failed',
      'Status: 5.1.1',
      '',
      '--dsn',
      'Content-Type: text/rfc822-headers',
      '',
      'Message-ID: <mailintake-outbox-9-1700000000000@mailintake.invalid>',
      'Subject: Request #1 was updated',
      '',
      '--dsn--',
      '',
    ].join('\r\n'),
  );

  it('one request, one automatic conversation, three ignored mails with their reasons and raws', async () => {
    await rt.services.mailboxes.add(imapsMailbox(dovecot, 'support', 'support'));
    const person = buildMail({ messageId: 'person-1@customer.example', subject: 'VPN is down' });
    await deliverMaildir(dovecot, 'support', [person]);
    const [first] = await rt.services.fetch.once({ mailbox: 'support' });
    expect(first).toMatchObject({ fetched: 1, created: 1, errored: 0 });

    const oooNowhere = buildMail({
      from: 'Jane <jane@partner.example>',
      messageId: 'ooo-1@partner.example',
      subject: 'Automatic reply: our newsletter',
      headers: ['Auto-Submitted: auto-replied'],
    });
    const oooThreading = buildMail({
      from: 'Customer <customer@example.test>',
      messageId: 'ooo-2@customer.example',
      inReplyTo: 'person-1@customer.example',
      subject: 'Abwesenheitsnotiz: VPN is down',
    });
    const own = await ownNotification();
    const machines = { bounce, oooNowhere, oooThreading, own };
    await deliverMaildir(dovecot, 'support', Object.values(machines));
    const [second] = await rt.services.fetch.once({ mailbox: 'support' });
    expect(second).toMatchObject({ fetched: 4, created: 0, appended: 1, errored: 0 });

    const list = await rt.services.requests.list({});
    expect(list.total).toBe(1);
    const request = await rt.services.requests.show(list.items[0]!.id);
    expect(request.messageId).toBe('person-1@customer.example');
    expect(request.conversations).toHaveLength(1);
    expect(request.conversations[0]).toMatchObject({ messageId: 'ooo-2@customer.example', automatic: true });

    const log = (await rt.services.log.list({ mailbox: 'support' })).items;
    expect(log).toHaveLength(5);
    const appended = log.find((l) => l.outcome === 'appended')!;
    expect(appended.reasons[0]).toMatch(/^auto-reply: an out-of-office subject "Abwesenheitsnotiz/);
    expect(appended.reasons).toContain(
      `In-Reply-To <person-1@customer.example> matches a mail of request #${request.id}`,
    );

    const ignored = log.filter((l) => l.outcome === 'ignored');
    expect(ignored.map((l) => l.messageId).sort()).toEqual(
      [
        'dsn-1@mx.example.org',
        'ooo-1@partner.example',
        `mailintake-outbox-1-1700000000000@${OWN_MESSAGE_ID_DOMAIN}`,
      ].sort(),
    );
    const byId = (id: string) => ignored.find((l) => l.messageId === id)!;
    expect(byId('dsn-1@mx.example.org').reasons.slice(0, 2)).toEqual([
      'bounce: multipart/report; report-type=delivery-status (a DSN, RFC 3464)',
      'bounce: it reports on <mailintake-outbox-9-1700000000000@mailintake.invalid>',
    ]);
    expect(byId('ooo-1@partner.example').reasons[0]).toBe(
      'auto-reply: Auto-Submitted: auto-replied (RFC 3834)',
    );
    expect(byId(`mailintake-outbox-1-1700000000000@${OWN_MESSAGE_ID_DOMAIN}`).reasons[0]).toMatch(
      /^own mail came back: Message-ID <mailintake-outbox-1-1700000000000@mailintake\.invalid> is ours .* X-Mailintake-Loop: mailintake$/,
    );
    const raws: Record<string, Buffer> = {
      'dsn-1@mx.example.org': bounce,
      'ooo-1@partner.example': oooNowhere,
      [`mailintake-outbox-1-1700000000000@${OWN_MESSAGE_ID_DOMAIN}`]: own,
    };
    for (const entry of ignored) {
      expect(entry).toMatchObject({ requestId: null, rawAvailable: true, acknowledged: true });
      const { open } = await rt.services.log.raw(entry.id);
      expect((await buffer(open())).equals(raws[entry.messageId!]!)).toBe(true);
    }

    // acknowledged on the server like any processed mail
    const server = await listInbox(dovecot, 'support');
    expect(server).toHaveLength(5);
    for (const m of server) expect(m.flags).toContain('\\Seen');
    // nothing was sent in answer to any of them (the one mail the SMTP server got is the notification above)
    expect(smtp.mails).toHaveLength(1);
  }, 180_000);
});
