import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMail } from './kit/mails.js';
import { type StrictPage, startBrowser, strictPage, type TestBrowser } from './support/browser.js';
import { cli, freePort, serve, signIn } from './support/console.js';
import { addMailbox, requestIds, takeIn } from './support/console-intake.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';
import { type SmtpTestServer, startSmtpServer } from './support/smtp.js';

/**
 * The reply box of the request page end to end, on both engines: a real `mailintake serve`, Debian's Chromium,
 * a real SMTP server on loopback. A technician replies with an attachment and the request's Cc person checked;
 * the page shows the reply Queued (or already Sent) and then Sent, updated by the page's script without a
 * reload; the SMTP server got it with the file and the Cc. A forward without an address is refused beside the
 * To field with the typed text kept, and nothing is sent.
 */
const TECH = { email: 'tech@example.org', password: 'a long technician passphrase' };

const MAIL = buildMail({
  from: 'Ann Lee <ann@example.test>',
  to: 'help@example.test',
  cc: 'Bo Chen <bo@example.test>',
  messageId: 'printer@example.test',
  subject: 'Printer on floor 3 is jammed',
  body: 'The paper tray keeps jamming.\r\n',
  attachments: [
    { filename: 'invoice.pdf', contentType: 'application/pdf', content: Buffer.from('%PDF-1.4 invoice') },
    { filename: 'private-notes.txt', contentType: 'text/plain', content: Buffer.from('not for the vendor') },
  ],
});

let browser: TestBrowser;
let dovecot: DovecotServer;
let smtp: SmtpTestServer;
beforeAll(async () => {
  browser = await startBrowser();
  dovecot = await startDovecot({ users: [{ name: 'help', password: 'help-pw' }] });
  smtp = await startSmtpServer({ tls: 'none' });
}, 120_000);
afterAll(async () => {
  await browser?.close();
  await dovecot?.stop();
  await smtp?.close();
});

describe.each(ENGINES)('the reply box (%s)', (engine) => {
  let fresh: Awaited<ReturnType<typeof freshConfig>>;
  let server: Awaited<ReturnType<typeof serve>>;
  let env: NodeJS.ProcessEnv;
  let url: string;
  let requestId: number;
  const pages: StrictPage[] = [];

  beforeAll(async () => {
    smtp.mails.length = 0;
    const port = await freePort();
    fresh = await freshConfig(engine);
    url = `http://127.0.0.1:${port}`;
    env = { ...process.env, ...fresh.env, MAILINTAKE_PORT: String(port), MAILINTAKE_PUBLIC_URL: url };
    await addMailbox(env, dovecot, { name: 'help', user: 'help', portal: 'helpdesk' });
    await takeIn(env, dovecot, { mailbox: 'help', user: 'help', mails: [MAIL] });
    requestId = (await requestIds(env)).get('Printer on floor 3 is jammed')!;
    const smtpSet = await cli(
      env,
      ['smtp', 'set', '--file', '-'],
      JSON.stringify({ host: smtp.host, port: smtp.port, starttls: false, from: 'alerts@example.test' }),
    );
    expect(smtpSet.code, smtpSet.err).toBe(0);
    const made = await cli(
      env,
      ['user', 'create', '--email', TECH.email, '--role', 'technician', '--portal', 'helpdesk'],
      `${TECH.password}\n`,
    );
    expect(made.code, made.err).toBe(0);
    server = await serve(env);
  }, 180_000);
  afterAll(async () => {
    for (const p of pages) await p.context.close();
    await server?.stop();
    await fresh?.cleanup();
  });

  it('a technician replies with an attachment and sees Queued turn into Sent', async () => {
    const p = await strictPage(browser, url);
    pages.push(p);
    await signIn(p, url, TECH.email, TECH.password);
    await p.page.goto(`${url}/requests/${requestId}`);
    const cc = p.page.getByLabel('Bo Chen <bo@example.test>');
    expect(await cc.isChecked()).toBe(true);
    await p.page.getByLabel('Text').fill('Please open the tray and remove the paper.');
    await p.page.getByLabel('Attachments').setInputFiles({
      name: 'tray.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from('open, pull, close'),
    });
    // the help desk's own address typed as a blind copy is left out, and the technician is told
    await p.page.getByLabel('Bcc').fill('HELP@example.test');
    await Promise.all([
      p.page.waitForURL(new RegExp(`/requests/${requestId}\\?changed=reply-own$`)),
      p.page.getByRole('button', { name: 'Send reply' }).click(),
    ]);
    expect(await p.page.locator('main').textContent()).toContain('The reply is queued');
    expect(await p.page.locator('main').textContent()).toContain(
      'The help desk’s own addresses you typed were left out.',
    );
    const state = p.page.locator('[data-delivery-state]');
    expect(await state.count()).toBe(1);
    // made right after the commit: the outbox, woken by it, may have sent it already
    expect(['Queued', 'Sent']).toContain((await state.textContent())?.trim());
    // the page's script updates the state in place, without a reload
    await p.page.locator('[data-delivery-state="sent"]').waitFor();
    expect((await state.textContent())?.trim()).toBe('Sent');

    const [mail] = await smtp.waitFor(1);
    expect(mail!.from).toBe('help@example.test');
    expect(mail!.to.sort()).toEqual(['ann@example.test', 'bo@example.test']);
    expect(mail!.parsed.subject).toBe(`Re: Printer on floor 3 is jammed ##${requestId}##`);
    expect(mail!.parsed.attachments.map((a) => [a.filename, a.content.toString()])).toEqual([
      ['tray.txt', 'open, pull, close'],
    ]);
    // the sent mail is on the page with its attachment and who sent it
    const sent = p.page.locator('section.mail').last();
    expect(await sent.textContent()).toContain(`Sent by the help desk (user:${TECH.email})`);
    expect(await sent.getByRole('link', { name: 'tray.txt' }).count()).toBe(1);
    p.assertClean();
  }, 60_000);

  it('a forward without an address is refused beside To, the typed text kept, nothing sent', async () => {
    const p = await strictPage(browser, url);
    pages.push(p);
    await signIn(p, url, TECH.email, TECH.password);
    await p.page.goto(`${url}/requests/${requestId}`);
    const before = smtp.mails.length;
    await p.page.getByLabel('Text').fill('FYI, see below.');
    await p.page.getByLabel('More Cc').fill('not an address');
    const [response] = await Promise.all([
      p.page.waitForResponse((r) => r.url().endsWith(`/requests/${requestId}/replies`)),
      p.page.getByRole('button', { name: 'Forward' }).click(),
    ]);
    expect(response.status()).toBe(400);
    await p.page.waitForLoadState();
    expect(await p.page.locator('#reply-to-error').textContent()).toContain('a forward needs an address');
    expect(await p.page.getByLabel('Text').inputValue()).toBe('FYI, see below.');
    expect(await p.page.getByLabel('More Cc').inputValue()).toBe('not an address');
    expect(await p.page.locator('[data-delivery-state]').count()).toBe(1);
    expect(smtp.mails).toHaveLength(before);
  }, 60_000);

  it('a bounce of the reply shows it Failed with the DSN status and diagnostic, and the bounce in its trace', async () => {
    const reply = smtp.mails.find((m) => m.parsed.subject?.startsWith('Re: Printer'))!;
    const dsn = Buffer.from(
      [
        'From: Mail Delivery System <MAILER-DAEMON@mx.example.test>',
        'To: help@example.test',
        'Subject: Undelivered Mail Returned to Sender',
        'Date: Mon, 07 Dec 2026 10:00:00 +0000',
        'Message-ID: <dsn-console@mx.example.test>',
        'MIME-Version: 1.0',
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"',
        '',
        '--B',
        'Content-Type: text/plain; charset=us-ascii',
        '',
        'This is the mail system at host mx.example.test.',
        '',
        '--B',
        'Content-Type: message/delivery-status',
        '',
        'Reporting-MTA: dns; mx.example.test',
        '',
        'Final-Recipient: rfc822; bo@example.test',
        'Action: failed',
        'Status: 5.2.2',
        'Diagnostic-Code: smtp; 552 5.2.2 Mailbox full',
        '',
        '--B',
        'Content-Type: text/rfc822-headers',
        '',
        `Message-ID: ${reply.parsed.messageId}`,
        `Subject: ${reply.parsed.subject}`,
        '',
        '--B--',
        '',
      ].join('\r\n'),
    );
    await takeIn(env, dovecot, { mailbox: 'help', user: 'help', mails: [dsn] });
    const p = await strictPage(browser, url);
    pages.push(p);
    await signIn(p, url, TECH.email, TECH.password);
    await p.page.goto(`${url}/requests/${requestId}`);
    const state = p.page.locator('[data-delivery-state]');
    expect(await state.getAttribute('data-delivery-state')).toBe('failed');
    expect((await state.textContent())?.trim()).toBe('Failed (bounced): 5.2.2 smtp; 552 5.2.2 Mailbox full');
    const sent = p.page.locator('section.mail').last();
    expect(await sent.locator('.trace').textContent()).toContain(
      'a bounce of this mail: its delivery failed',
    );
    p.assertClean();
  }, 60_000);

  it('a forward carries only the request’s attachments left checked; a reply carries none of them', async () => {
    const p = await strictPage(browser, url);
    pages.push(p);
    await signIn(p, url, TECH.email, TECH.password);
    await p.page.goto(`${url}/requests/${requestId}`);
    // both offered, checked by default
    const invoice = p.page.getByLabel('invoice.pdf', { exact: true });
    const notes = p.page.getByLabel('private-notes.txt', { exact: true });
    expect([await invoice.isChecked(), await notes.isChecked()]).toEqual([true, true]);
    await notes.uncheck();
    const before = smtp.mails.length;
    await p.page.getByLabel('To', { exact: true }).fill('vendor@partner.example');
    await p.page.getByLabel('Text').fill('Please send a technician.');
    await Promise.all([
      p.page.waitForURL(new RegExp(`/requests/${requestId}\\?changed=forward$`)),
      p.page.getByRole('button', { name: 'Forward' }).click(),
    ]);
    const [mail] = (await smtp.waitFor(before + 1)).slice(before);
    expect(mail!.parsed.subject).toBe(`Fwd: Printer on floor 3 is jammed ##${requestId}##`);
    expect(mail!.parsed.attachments.map((a) => [a.filename, a.content.toString()])).toEqual([
      ['invoice.pdf', '%PDF-1.4 invoice'],
    ]);
    p.assertClean();
  }, 60_000);

  it('a crafted reply form with NUL in its text and file name is stored and sent without it (PostgreSQL refuses NUL)', async () => {
    const p = await strictPage(browser, url);
    pages.push(p);
    await signIn(p, url, TECH.email, TECH.password);
    await p.page.goto(`${url}/requests/${requestId}`);
    const token = await p.page.locator('#reply-form input[name="_csrf"]').getAttribute('value');
    const before = smtp.mails.length;
    const res = await p.page.request.post(`${url}/requests/${requestId}/replies`, {
      headers: { Origin: url },
      multipart: {
        _csrf: token!,
        action: 'reply',
        text: 'Fixed\u0000 now.',
        attachments: { name: 'log\u0000.txt', mimeType: 'text/plain', buffer: Buffer.from('ok') },
      },
      maxRedirects: 0,
    });
    expect(res.status()).toBe(303);
    const [mail] = (await smtp.waitFor(before + 1)).slice(before);
    expect(mail!.parsed.text?.trim()).toBe('Fixed now.');
    expect(mail!.parsed.attachments.map((a) => a.filename)).toEqual(['log.txt']);
  }, 60_000);
});
