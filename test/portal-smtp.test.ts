import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import { type Logger, silentLogger } from '../src/kernel/logger.js';
import { loadSecretBox } from '../src/kernel/secret-box.js';
import { type OutboxAttempt, OutboxSender } from '../src/notify/outbox.js';
import { SmtpServers } from '../src/notify/smtp-settings.js';
import { StoreNotifier } from '../src/notify/store-notifier.js';
import { openStore, type Store } from '../src/store/db.js';
import { withTransaction } from '../src/store/tx.js';
import { conditions } from './kit/conditions.js';
import { imapsMailbox } from './kit/mailboxes.js';
import { buildMail } from './kit/mails.js';
import { deliverMaildir } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';
import { type ReceivedMail, type SmtpTestServer, startSmtpServer } from './support/smtp.js';

/**
 * A portal with an outgoing SMTP server of its own, next to one without (issue 13: replies go "through the
 * portal's outgoing SMTP server"). Real Dovecot, two real SMTP servers on loopback (the instance's, plain; the
 * portal's, STARTTLS with a login), the service's own outbox, on both engines. What must hold: each portal's
 * replies, forwards and acknowledgements leave through its own server and nowhere else, notifications through the
 * instance's; a portal's server that is down holds up only that portal's mail, however much of it waits; and
 * taking the portal's server away sends what waits through the instance's, once.
 */
const SALES_USER = 'sales-relay';
const SALES_PASSWORD = 'sales-relay-pw';
const MINUTE = 60_000;

describe.each(ENGINES)('a portal’s own outgoing SMTP server on %s', (engine) => {
  let dovecot: DovecotServer;
  let instanceServer: SmtpTestServer;
  let salesServer: SmtpTestServer;
  let rt: Runtime;
  let cleanup: () => Promise<void>;
  /** A second handle on the database, with a sender of the test's own whose clock the test moves. */
  let store: Store;
  let servers: SmtpServers;
  const attempts: OutboxAttempt[] = [];
  const attempted = conditions();
  let salesPortalId: number;

  const mailsTo = (server: SmtpTestServer, address: string) =>
    server.mails.filter((m) => m.to.includes(address));
  const subjects = (mails: ReceivedMail[]) => mails.map((m) => m.parsed.subject ?? '');
  /** Resolves once the service's outbox tried `count` mails in all. */
  const triedAtLeast = (count: number) => attempted.until(() => attempts.length >= count);

  beforeAll(async () => {
    dovecot = await startDovecot({
      users: [
        { name: 'support', password: 'support-pw' },
        { name: 'sales', password: 'sales-pw' },
      ],
    });
    instanceServer = await startSmtpServer({ tls: 'none' });
    salesServer = await startSmtpServer({
      tls: 'starttls',
      auth: { username: SALES_USER, password: SALES_PASSWORD },
    });
    const fresh = await freshConfig(engine);
    cleanup = fresh.cleanup;
    rt = await openRuntime(fresh.config, {
      onOutboxAttempt: (a) => {
        attempts.push(a);
        attempted.recheck();
      },
    });
    await rt.services.smtp.set({
      host: '127.0.0.1',
      port: instanceServer.port,
      starttls: false,
      from: 'Help desk <desk@example.test>',
    });
    salesPortalId = (await rt.services.portals.add('sales')).id;
    const view = await rt.services.portals.smtp.set('sales', salesSettings());
    expect(view).toMatchObject({ inEffect: 'portal', own: { passwordSet: true, auth: 'password' } });
    expect(JSON.stringify(view)).not.toContain(SALES_PASSWORD);
    for (const portal of ['default', 'sales']) {
      await rt.services.portals.update(portal, { mailSettings: { acknowledgement: { enabled: true } } });
    }
    await rt.services.mailboxes.add(imapsMailbox(dovecot, 'support', 'support'));
    await rt.services.mailboxes.add(imapsMailbox(dovecot, 'sales', 'sales', { portal: 'sales' }));
    store = await openStore({ databaseUrl: fresh.config.databaseUrl, dataDir: fresh.config.dataDir });
    servers = new SmtpServers(
      store,
      loadSecretBox({ secretKey: fresh.config.secretKey, dataDir: fresh.config.dataDir }),
    );
  }, 120_000);
  afterAll(async () => {
    await rt?.close();
    await store?.close();
    await instanceServer?.close();
    await salesServer?.close();
    await dovecot?.stop();
    await cleanup?.();
  });

  /** A sender on the test's handle, at `now + offsetMs`: what the service's would do once a back-off passed. */
  const laterSender = (offsetMs: number, logger: Logger = silentLogger) =>
    new OutboxSender({
      store,
      smtp: () => servers.instance.config(),
      portalSmtp: () => servers.portalConfigs(),
      logger,
      now: () => new Date(Date.now() + offsetMs),
    });
  const salesSettings = () => ({
    host: '127.0.0.1',
    port: salesServer.port,
    username: SALES_USER,
    password: SALES_PASSWORD,
    caFile: salesServer.caFile,
    from: 'Sales <sales-desk@example.test>',
  });

  /** A customer's mail into a mailbox, fetched: the id of the request it opened. */
  const newRequest = async (mailbox: 'support' | 'sales', customer: string, subject: string) => {
    await deliverMaildir(dovecot, mailbox, [
      buildMail({ from: `Customer <${customer}>`, to: `${mailbox}@example.test`, subject }),
    ]);
    const [round] = await rt.services.fetch.once({ mailbox });
    expect(round).toMatchObject({ created: 1 });
    const found = (await rt.services.requests.list({ requester: customer })).items;
    expect(found).toHaveLength(1);
    return found[0]!.id;
  };
  const deliveryOf = async (requestId: number, conversationId: number) => {
    const detail = await rt.services.requests.show(requestId);
    return detail.conversations.find((c) => c.id === conversationId)!.delivery!;
  };

  let salesRequest: number;
  let supportRequest: number;

  it('each portal’s acknowledgements and replies leave through its own server only; the other portal’s through the instance’s', async () => {
    salesRequest = await newRequest('sales', 'sam@customer.example', 'Quote please');
    supportRequest = await newRequest('support', 'sue@customer.example', 'Printer jam');
    await rt.services.requests.reply(salesRequest, { text: 'Here is your quote.' });
    await rt.services.requests.reply(supportRequest, { text: 'Try the other tray.' });
    await rt.services.requests.forward(salesRequest, { to: ['finance@partner.example'], text: 'For you.' });
    await triedAtLeast(5);
    expect(attempts.every((a) => a.ok)).toBe(true);

    // the sales portal's three mails: through its own server, logged in, over TLS, From the sales mailbox
    await salesServer.waitFor(3);
    expect(salesServer.mails).toHaveLength(3);
    for (const m of salesServer.mails) {
      expect(m).toMatchObject({ user: SALES_USER, secure: true, from: 'sales@example.test' });
      // the mailbox's address, with the display name of the server it left through
      expect(m.parsed.from?.value).toEqual([{ address: 'sales@example.test', name: 'Sales' }]);
    }
    expect(subjects(mailsTo(salesServer, 'sam@customer.example')).sort()).toEqual(
      [
        `Re: Quote please ##${salesRequest}##`,
        `We received your request ##${salesRequest}##: Quote please`,
      ].sort(),
    );
    expect(subjects(mailsTo(salesServer, 'finance@partner.example'))).toEqual([
      `Fwd: Quote please ##${salesRequest}##`,
    ]);
    // the default portal has no server of its own: the instance's carries its two, and nothing of sales
    await instanceServer.waitFor(2);
    expect(instanceServer.mails).toHaveLength(2);
    expect(instanceServer.mails.every((m) => m.from === 'support@example.test' && m.user === null)).toBe(
      true,
    );
    expect(instanceServer.mails.map((m) => m.parsed.from?.value)).toEqual([
      [{ address: 'support@example.test', name: 'Help desk' }],
      [{ address: 'support@example.test', name: 'Help desk' }],
    ]);
    expect(subjects(mailsTo(instanceServer, 'sue@customer.example')).sort()).toEqual(
      [
        `Re: Printer jam ##${supportRequest}##`,
        `We received your request ##${supportRequest}##: Printer jam`,
      ].sort(),
    );
    const detail = await rt.services.requests.show(salesRequest);
    expect(detail.acknowledgement).toMatchObject({ state: 'sent' });
    expect(detail.conversations.filter((c) => c.direction === 'out').map((c) => c.delivery?.state)).toEqual([
      'sent',
      'sent',
    ]);
  });

  it('a bounce of the acknowledgement marks it failed on the request, and nothing is sent in answer', async () => {
    const ack = salesServer.mails.find(
      (m) => m.to.includes('sam@customer.example') && m.parsed.subject?.startsWith('We received'),
    )!;
    const messageId = ack.parsed.messageId!.replace(/^<|>$/g, '');
    const before = { instance: instanceServer.mails.length, sales: salesServer.mails.length };
    const dsn = [
      'From: MAILER-DAEMON@mx.customer.example (Mail Delivery System)',
      'To: sales@example.test',
      'Subject: Undelivered Mail Returned to Sender',
      'Message-ID: <ack-bounce@mx.customer.example>',
      'Auto-Submitted: auto-replied',
      'MIME-Version: 1.0',
      'Content-Type: multipart/report; report-type=delivery-status; boundary="B"',
      '',
      '--B',
      'Content-Type: text/plain',
      '',
      '<sam@customer.example>: mailbox unknown',
      '--B',
      'Content-Type: message/delivery-status',
      '',
      'Reporting-MTA: dns; mx.customer.example',
      '',
      'Final-Recipient: rfc822; sam@customer.example',
      'Action: failed',
      'Status: 5.1.1',
      'Diagnostic-Code: smtp; 550 5.1.1 <sam@customer.example>: User unknown',
      '',
      '--B',
      'Content-Type: text/rfc822-headers',
      '',
      'From: sales@example.test',
      'To: sam@customer.example',
      `Message-ID: <${messageId}>`,
      '',
      '--B--',
      '',
    ].join('\r\n');
    await deliverMaildir(dovecot, 'sales', [Buffer.from(dsn)]);
    const [round] = await rt.services.fetch.once({ mailbox: 'sales' });
    expect(round).toMatchObject({ fetched: 1, created: 0, appended: 0 });
    const log = (await rt.services.log.list({ mailbox: 'sales', limit: 1 })).items[0]!;
    expect(log).toMatchObject({ outcome: 'ignored', requestId: salesRequest });
    expect((await rt.services.requests.show(salesRequest)).acknowledgement).toMatchObject({
      state: 'failed',
      bounced: true,
      status: '5.1.1',
      reason: 'smtp; 550 5.1.1 <sam@customer.example>: User unknown',
    });
    expect(salesServer.mails).toHaveLength(before.sales);
    expect(instanceServer.mails).toHaveLength(before.instance);
  });

  it('notification mail of the portal goes through the instance’s server, not the portal’s', async () => {
    const before = { instance: instanceServer.mails.length, sales: salesServer.mails.length };
    await rt.services.notificationRules.set({
      event: 'mail-error',
      portal: 'sales',
      recipients: ['ops@example.test'],
      enabled: true,
    });
    await withTransaction(store, (tx) =>
      new StoreNotifier().record(tx, {
        event: 'mail-error',
        portalId: salesPortalId,
        mailboxId: null,
        title: 'A mail of sales went to the error folder',
        body: 'details',
      }),
    );
    expect(await laterSender(0).drain()).toMatchObject({ sent: 1, failed: 0 });
    const [mail] = (await instanceServer.waitFor(before.instance + 1)).slice(before.instance);
    expect(mail!.parsed.subject).toContain('A mail of sales went to the error folder');
    expect(mail!.from).toBe('desk@example.test');
    expect(salesServer.mails).toHaveLength(before.sales);
  });

  it('the portal’s server down holds up only its own mail, even with more than a batch of it waiting; it goes out once when the server is back', async () => {
    await salesServer.stop();
    const before = { instance: instanceServer.mails.length, sales: salesServer.mails.length };
    const tried = attempts.length;
    // more than one batch (100) of the sales portal's mail is due before the default portal's one reply
    const salesReplies: number[] = [];
    for (let i = 0; i < 101; i++) {
      const sent = await rt.services.requests.reply(salesRequest, { text: `Update ${i}` });
      salesReplies.push(sent.id);
    }
    const supportReply = await rt.services.requests.reply(supportRequest, { text: 'It works now?' });
    // the default portal's reply leaves through the instance's server although every sales mail is stuck
    const [mail] = (await instanceServer.waitFor(before.instance + 1)).slice(before.instance);
    expect(mail!.parsed.subject).toBe(`Re: Printer jam ##${supportRequest}##`);
    await attempted.until(
      () =>
        attempts.slice(tried).some((a) => !a.ok) &&
        attempts.some((a) => a.ok && a.id === supportReply.delivery!.outboxId),
    );
    const failure = attempts.slice(tried).find((a) => !a.ok)!;
    expect(failure.error).toMatchObject({ code: 'CONNECT_FAILED' });
    expect(failure.error!.message).toContain(`127.0.0.1:${salesServer.port}`);
    expect(await deliveryOf(supportRequest, supportReply.id)).toMatchObject({ state: 'sent' });
    // each pass that met the dead server spent one try on one sales mail (how many passes ran depends on the
    // timing of the kicks); the rest kept their turn. None was sent, given up, or sent anywhere else.
    const detail = await rt.services.requests.show(salesRequest);
    const states = salesReplies.map((id) => detail.conversations.find((c) => c.id === id)!.delivery!);
    const retrying = states.filter((d) => d.state === 'retrying');
    expect(retrying.length).toBeGreaterThanOrEqual(1);
    expect(states.filter((d) => d.state === 'pending')).toHaveLength(101 - retrying.length);
    for (const d of retrying) expect(d.reason).toContain(`127.0.0.1:${salesServer.port}`);
    expect(instanceServer.mails).toHaveLength(before.instance + 1);

    // back: every one of them goes out once, through the sales server (a batch per pass, after the failed
    // ones' back-off; the service's own sender may take some of them too: a row is claimed by one sender only)
    await salesServer.start();
    const later = laterSender(2 * MINUTE);
    const unsent = async () =>
      (await rt.services.requests.show(salesRequest)).conversations.filter(
        (c) => salesReplies.includes(c.id) && c.delivery?.state !== 'sent',
      ).length;
    for (let pass = 0; pass < 10 && (await unsent()) > 0; pass++) await later.drain();
    expect(await unsent()).toBe(0);
    // marked sent only after the server took it: every one has arrived by now, and nothing else
    const arrived = (await salesServer.waitFor(before.sales + 101)).slice(before.sales);
    expect(arrived).toHaveLength(101);
    expect(new Set(arrived.map((m) => m.parsed.messageId)).size).toBe(101);
    expect(new Set(arrived.map((m) => m.parsed.text?.trim())).size).toBe(101);
    expect(instanceServer.mails).toHaveLength(before.instance + 1);
  });

  it('without its own server the portal’s waiting mail goes through the instance’s, once', async () => {
    await salesServer.stop();
    const before = { instance: instanceServer.mails.length, sales: salesServer.mails.length };
    const tried = attempts.length;
    const reply = await rt.services.requests.reply(salesRequest, { text: 'Sent the other way.' });
    await attempted.until(() => attempts.slice(tried).some((a) => a.id === reply.delivery!.outboxId));
    expect(await deliveryOf(salesRequest, reply.id)).toMatchObject({ state: 'retrying' });

    // the admin takes the portal's server away; a due pass sends the reply through the instance's
    const view = await rt.services.portals.smtp.clear('sales');
    expect(view).toEqual({ portal: 'sales', inEffect: 'instance', own: null });
    expect(await laterSender(2 * MINUTE).drain()).toMatchObject({ sent: 1, failed: 0 });
    const [mail] = (await instanceServer.waitFor(before.instance + 1)).slice(before.instance);
    expect(mail!.parsed.subject).toBe(`Re: Quote please ##${salesRequest}##`);
    // still From the sales mailbox: the server changed, not who writes
    expect(mail!.from).toBe('sales@example.test');
    expect(await deliveryOf(salesRequest, reply.id)).toMatchObject({ state: 'sent' });
    await salesServer.start();
    expect(salesServer.mails).toHaveLength(before.sales);
    // the sealed password went with the settings
    const keys = (await store.db.selectFrom('instance_settings').select('key').execute()).map((r) => r.key);
    expect(keys).not.toContain(`smtp.portal.${salesPortalId}`);
  });

  it('a portal whose stored server cannot be read keeps its mail waiting and says why; nothing goes elsewhere, and clearing it is the way out', async () => {
    await rt.services.portals.smtp.set('sales', salesSettings());
    // a hand-edited row: not settings any more
    await store.db
      .updateTable('instance_settings')
      .set({ value: '{"host": 42}' })
      .where('key', '=', `smtp.portal.${salesPortalId}`)
      .execute();
    const before = { instance: instanceServer.mails.length, sales: salesServer.mails.length };
    const salesReply = await rt.services.requests.reply(salesRequest, { text: 'Held back.' });
    const supportReply = await rt.services.requests.reply(supportRequest, { text: 'Goes out.' });
    await attempted.until(() => attempts.some((a) => a.ok && a.id === supportReply.delivery!.outboxId));

    const logged: { msg: string; fields?: Record<string, unknown> }[] = [];
    const capture = {
      ...silentLogger,
      error: (msg: string, fields?: Record<string, unknown>) => logged.push({ msg, fields }),
    };
    await laterSender(2 * MINUTE, capture).drain();
    expect(logged).toContainEqual({
      msg: 'outgoing mail of a portal waits: its SMTP settings cannot be read',
      fields: expect.objectContaining({ portalId: salesPortalId, code: 'INTERNAL' }),
    });
    expect(await deliveryOf(salesRequest, salesReply.id)).toMatchObject({ state: 'pending', attempts: 0 });
    expect(instanceServer.mails.slice(before.instance).map((m) => m.parsed.subject)).toEqual([
      `Re: Printer jam ##${supportRequest}##`,
    ]);
    expect(salesServer.mails).toHaveLength(before.sales);
    await expect(rt.services.portals.smtp.get('sales')).rejects.toMatchObject({ code: 'INTERNAL' });

    // clear removes what cannot be read and wakes the service's outbox: the reply leaves through the instance's
    // server, once
    expect(await rt.services.portals.smtp.clear('sales')).toMatchObject({ inEffect: 'instance', own: null });
    await attempted.until(() => attempts.some((a) => a.ok && a.id === salesReply.delivery!.outboxId));
    expect(await deliveryOf(salesRequest, salesReply.id)).toMatchObject({ state: 'sent', attempts: 1 });
    const arrived = (await instanceServer.waitFor(before.instance + 2)).slice(before.instance + 1);
    expect(arrived.map((m) => m.parsed.subject)).toEqual([`Re: Quote please ##${salesRequest}##`]);
  });
});
