import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CSP } from '../src/http/console/shell.js';
import { imapsMailbox } from './kit/mailboxes.js';
import { buildMail } from './kit/mails.js';
import {
  type StrictPage,
  seriousA11yViolations,
  startBrowser,
  strictPage,
  type TestBrowser,
} from './support/browser.js';
import { cli, freePort, serve, signIn } from './support/console.js';
import { deliverMaildir } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';
import { type SmtpTestServer, startSmtpServer } from './support/smtp.js';

/**
 * The operations pages end to end, on both engines: a real `mailintake serve`, a real Dovecot, a real SMTP
 * server, Debian's Chromium. An admin sets up the outgoing SMTP server and sends a test mail; a mail fails for
 * real (MAIL_TOO_LARGE under a 1 MB limit), lands in the error folder, its notification mail links to the
 * error folder; the admin reads its decrypted report, "fixes the cause" (restarts with a higher limit), moves it
 * to the inbox and sees it become a request. Notifications, the system log's actor filter, portal settings with
 * per-field errors, a technician's refusals, CSRF, axe.
 */
const ADMIN = { email: 'ops-admin@example.org', password: 'a long admin passphrase' };
const TECH = { email: 'ops-tech@example.org', password: 'technician passphrase 1' };
const SMTP_USER = { username: 'notify', password: 'smtp-secret-pw-0123' };
const RECIPIENT = 'helpdesk-admins@example.test';

let browser: TestBrowser;
beforeAll(async () => {
  browser = await startBrowser();
}, 60_000);
afterAll(async () => browser?.close());

/** A mail of about 1.5 MB: over a 1 MB limit, under 10 MB. */
function bigMail(subject: string): Buffer {
  const line = `${'0123456789'.repeat(7)}\r\n`;
  return buildMail({
    from: 'Erika Mustermann <erika@example.test>',
    subject,
    messageId: `${subject.replace(/\W/g, '-')}@example.test`,
    body: `The printer log follows.\r\n${line.repeat(21_000)}`,
  });
}

describe.each(ENGINES)('the operations pages (%s)', (engine) => {
  let fresh: Awaited<ReturnType<typeof freshConfig>>;
  let dovecot: DovecotServer;
  let smtp: SmtpTestServer;
  let server: Awaited<ReturnType<typeof serve>>;
  let env: NodeJS.ProcessEnv;
  let url: string;
  let admin: StrictPage;
  const pages: StrictPage[] = [];
  /** Documents of ours served without the console's CSP (checked by clean()). */
  const withoutCsp: string[] = [];
  const open = async () => {
    const p = await strictPage(browser, url);
    pages.push(p);
    p.page.on('response', (r) => {
      if (r.url().startsWith(url) && r.request().resourceType() === 'document') {
        if (r.headers()['content-security-policy'] !== CSP) withoutCsp.push(r.url());
      }
    });
    return p;
  };
  /** The page misbehaved in no way, and every page of ours carried the policy. */
  const clean = (p: StrictPage) => {
    p.assertClean();
    expect(withoutCsp).toEqual([]);
  };
  const run = async (args: string[], stdin = '') => {
    const r = await cli(env, args, stdin);
    expect(r.code, `${args.join(' ')}: ${r.err}`).toBe(0);
    return r.out;
  };
  const json = async <T>(args: string[]): Promise<T> => JSON.parse(await run([...args, '--json'])) as T;
  const mainText = async (p: StrictPage) => (await p.page.locator('main').textContent()) ?? '';
  const cookieOf = async (p: StrictPage) => {
    const c = (await p.context.cookies()).find((x) => x.name === 'mi_session');
    return `mi_session=${c?.value}`;
  };
  /** A form POST from outside the page (a forged or replayed request): the session cookie, fields as given. */
  const post = (cookie: string, pathname: string, fields: Record<string, string>) =>
    fetch(`${url}${pathname}`, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
      redirect: 'manual',
    });
  const startServe = async (maxMailMb: number) => {
    server = await serve({ ...env, MAILINTAKE_MAX_MAIL_MB: String(maxMailMb) });
    expect(server.url).toBe(url);
  };

  beforeAll(async () => {
    dovecot = await startDovecot({ users: [{ name: 'errbox', password: 'errbox-pw' }] });
    smtp = await startSmtpServer({ tls: 'starttls', auth: SMTP_USER });
    fresh = await freshConfig(engine);
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    env = { ...process.env, ...fresh.env, MAILINTAKE_PORT: String(port), MAILINTAKE_PUBLIC_URL: url };
    await run(['user', 'create', '--email', ADMIN.email, '--role', 'admin'], `${ADMIN.password}\n`);
    await run(
      ['user', 'create', '--email', TECH.email, '--role', 'technician', '--portal', 'default'],
      `${TECH.password}\n`,
    );
    const file = path.join(fresh.config.dataDir, 'errbox.json');
    await writeFile(
      file,
      JSON.stringify(
        imapsMailbox(dovecot, 'errbox', 'errbox', { moveToErrorFolder: true, intervalSeconds: 10 }),
      ),
    );
    await run(['mailbox', 'add', '--file', file]);
    await run(['rules', 'set', 'mail-error', '--to', RECIPIENT]);
    await startServe(1);
    admin = await open();
    await signIn(admin, url, ADMIN.email, ADMIN.password);
    expect(new URL(admin.page.url()).pathname).toBe('/requests');
  }, 180_000);
  afterAll(async () => {
    for (const p of pages) await p.context.close();
    await server?.stop();
    await smtp?.close();
    await dovecot?.stop();
    await fresh?.cleanup();
  });

  it('SMTP: a dead port is explained on the page; saved against the real server, a test mail arrives and the page says so; the password is never echoed', async () => {
    const p = admin;
    const deadPort = await freePort();
    await p.page.goto(`${url}/settings/smtp`);
    await p.page.getByLabel('Server name or IP address').fill('127.0.0.1');
    await p.page.getByLabel('Port', { exact: true }).fill(String(deadPort));
    await p.page.getByLabel('User name').fill(SMTP_USER.username);
    await p.page.getByLabel('Password').fill(SMTP_USER.password);
    await p.page.getByLabel('From', { exact: true }).fill('Help Desk <helpdesk@example.test>');
    await p.page.getByLabel('CA file (PEM) of a private CA').fill(smtp.caFile);
    // a bad port first: the form comes back with everything typed, the password the admin typed included
    await p.page.getByLabel('Port', { exact: true }).fill('99999');
    const [refused] = await Promise.all([
      p.page.waitForResponse((r) => r.url() === `${url}/settings/smtp` && r.request().method() === 'POST'),
      p.page.getByRole('button', { name: 'Save SMTP settings' }).click(),
    ]);
    expect(refused.status()).toBe(400);
    await p.page.waitForLoadState();
    expect(await p.page.getByLabel('Password').inputValue()).toBe(SMTP_USER.password);
    expect(await p.page.getByLabel('User name').inputValue()).toBe(SMTP_USER.username);
    await p.page.getByLabel('Port', { exact: true }).fill(String(deadPort));
    await Promise.all([
      p.page.waitForURL(`${url}/settings/smtp?saved=1`),
      p.page.getByRole('button', { name: 'Save SMTP settings' }).click(),
    ]);
    expect(await p.page.content()).not.toContain(SMTP_USER.password);
    await p.page.getByLabel('Send a test mail to').fill('someone@example.test');
    await Promise.all([
      p.page.waitForResponse((r) => r.url() === `${url}/settings/smtp/test`),
      p.page.getByRole('button', { name: 'Send test mail' }).click(),
    ]);
    const failure = (await p.page.locator('#test-result').textContent()) ?? '';
    expect(failure).toContain('CONNECT_FAILED');
    expect(failure).toContain(String(deadPort));
    expect(failure).toContain('What to check');
    expect(smtp.mails).toHaveLength(0);

    // the real port; the password field left empty keeps the stored one
    await p.page.getByLabel('Port', { exact: true }).fill(String(smtp.port));
    expect(await p.page.getByLabel('Password').inputValue()).toBe('');
    await Promise.all([
      p.page.waitForURL(`${url}/settings/smtp?saved=1`),
      p.page.getByRole('button', { name: 'Save SMTP settings' }).click(),
    ]);
    expect(await p.page.getByRole('status').first().textContent()).toContain('saved');
    await p.page.getByLabel('Send a test mail to').fill('someone@example.test');
    await Promise.all([
      p.page.waitForResponse((r) => r.url() === `${url}/settings/smtp/test`),
      p.page.getByRole('button', { name: 'Send test mail' }).click(),
    ]);
    expect(await p.page.locator('#test-result').textContent()).toContain(
      'The test mail to someone@example.test was accepted by the server',
    );
    const [mail] = await smtp.waitFor(1);
    expect(mail?.to).toEqual(['someone@example.test']);
    expect(mail?.user).toBe(SMTP_USER.username);
    expect(mail?.secure).toBe(true);
    expect(mail?.parsed.subject).toBe('Mailintake test mail');
    expect(await p.page.content()).not.toContain(SMTP_USER.password);
    clean(p);
  });

  it('a failing mail lands in the error folder; its notification mail links there (kept through sign-in); the admin reads the report, moves it to the inbox, and it becomes a request', async () => {
    await deliverMaildir(dovecot, 'errbox', [bigMail('Quarterly figures')]);
    const p = admin;
    await expect
      .poll(
        async () => {
          await p.page.goto(`${url}/error-mails`);
          return mainText(p);
        },
        { timeout: 90_000, interval: 500 },
      )
      .toContain('MAIL_TOO_LARGE');
    const text = await mainText(p);
    expect(text).toContain('errbox');
    expect(text).toMatch(/MAIL_TOO_LARGE.*(MB|limit|larger)/);

    // the notification mail carries the stable link of the error folder
    const mails = await smtp.waitFor(2);
    const notice = mails.find((m) => m.to.includes(RECIPIENT));
    expect(notice?.parsed.subject).toBe('Mail moved to the error folder of errbox');
    const link = `${url}/error-mails?mailbox=errbox`;
    expect(notice?.parsed.text).toContain(link);
    // opened in a browser that is not signed in: the sign-in keeps where it was going
    const fresh = await open();
    await fresh.page.goto(link);
    expect(fresh.page.url()).toBe(`${url}/login?next=${encodeURIComponent('/error-mails?mailbox=errbox')}`);
    await fresh.page.getByLabel('Email').fill(ADMIN.email);
    await fresh.page.getByLabel('Password').fill(ADMIN.password);
    await Promise.all([
      fresh.page.waitForURL(link),
      fresh.page.getByRole('button', { name: 'Sign in' }).click(),
    ]);
    expect(await fresh.page.getByLabel('Mailbox').inputValue()).toBe('errbox');
    expect(await mainText(fresh)).toContain('MAIL_TOO_LARGE');
    clean(fresh);

    // the decrypted report
    const [listed] = (await json<{ items: { id: number }[] }>(['errors', 'list', '--mailbox', 'errbox']))
      .items;
    await Promise.all([
      p.page.waitForURL(`${url}/error-mails/${listed?.id}`),
      p.page.getByRole('link', { name: `#${listed?.id} report` }).click(),
    ]);
    const report = await mainText(p);
    expect(report).toContain('Quarterly figures');
    expect(report).toContain('Erika Mustermann');
    expect(report).toContain('MAIL_TOO_LARGE');
    expect(await seriousA11yViolations(p.page)).toEqual([]);

    // "the admin fixed the cause": the limit raised, the service restarted; the session is in the database
    await server.stop();
    await startServe(10);
    // the restarted service's first round may hold the mailbox: the page then says MAILBOX_BUSY, and the
    // admin sends the form again
    await expect
      .poll(
        async () => {
          await p.page.goto(`${url}/error-mails?mailbox=errbox`);
          await p.page.getByLabel(`Select error mail #${listed?.id}`).check();
          await Promise.all([
            p.page.waitForNavigation(),
            p.page.getByRole('button', { name: 'Move selected mails to inbox' }).click(),
          ]);
          return (await p.page.locator('#form-message').textContent()) ?? '';
        },
        { timeout: 90_000, interval: 200 },
      )
      .not.toContain('MAILBOX_BUSY');
    expect(p.page.url()).toMatch(/\/error-mails\?mailbox=errbox&moved=/);
    expect(await p.page.getByRole('status').textContent()).toContain(
      'errbox: 1 moved to the inbox; 0 left in the error folder.',
    );
    expect(await mainText(p)).toContain('moved to the inbox');
    await expect
      .poll(
        async () => {
          await p.page.goto(`${url}/requests`);
          return mainText(p);
        },
        { timeout: 90_000, interval: 500 },
      )
      .toContain('Quarterly figures');
    expect((await json<{ errorMails: number }>(['mailbox', 'show', 'errbox'])).errorMails).toBe(0);
    clean(p);
  }, 300_000);

  it('notifications: a connection failure rings the bell; the page lists it with its link; mark read lowers the count', async () => {
    const p = admin;
    const bell = p.page.locator('header a.bell');
    // threshold 1 through the console, then a mailbox nobody answers, fetched once by the CLI
    await p.page.goto(`${url}/settings`);
    await p.page.getByLabel('Consecutive failed rounds before admins and technicians are told').fill('1');
    await Promise.all([
      p.page.waitForURL(`${url}/settings?saved=connection-failure+alerts`),
      p.page.getByRole('button', { name: 'Save alerts' }).click(),
    ]);
    const before = (await json<{ unread: number }>(['notifications', 'count'])).unread;
    const dead = path.join(fresh.config.dataDir, 'deadbox.json');
    const deadPort = await freePort();
    await writeFile(
      dead,
      JSON.stringify({
        ...imapsMailbox(dovecot, 'deadbox', 'errbox'),
        server: '127.0.0.1',
        port: deadPort,
        enabled: false,
      }),
    );
    await run(['mailbox', 'add', '--file', dead]);
    const fetched = await cli(env, ['fetch', '--once', '--mailbox', 'deadbox']);
    expect(fetched.code).toBe(3);

    await p.page.goto(`${url}/notifications`);
    expect(await bell.getAttribute('aria-label')).toBe(`Notifications, ${before + 1} unread`);
    const entry = p.page.getByRole('link', { name: /Mailbox deadbox cannot connect/ });
    expect(await entry.getAttribute('href')).toBe('/mailboxes/deadbox');
    expect(await seriousA11yViolations(p.page)).toEqual([]);
    await Promise.all([
      p.page.waitForURL(/\/notifications\?show=unread&marked=1$/),
      p.page.getByRole('button', { name: /Mark read: Mailbox deadbox cannot connect/ }).click(),
    ]);
    const after = before;
    expect((await json<{ unread: number }>(['notifications', 'count'])).unread).toBe(after);
    expect(await bell.getAttribute('aria-label')).toBe(
      after === 0 ? 'Notifications' : `Notifications, ${after} unread`,
    );
    expect(await p.page.getByRole('link', { name: /Mailbox deadbox cannot connect/ }).count()).toBe(0);
    await p.page.goto(`${url}/notifications?show=all`);
    expect(await p.page.getByRole('link', { name: /Mailbox deadbox cannot connect/ }).count()).toBe(1);
    clean(p);
  });

  it('portal settings: a bad value is marked beside its field with the input kept; a good save shows in the CLI and in the system log as user:<email>, and the filter narrows to it', async () => {
    const p = admin;
    await p.page.goto(`${url}/settings/portals/default`);
    await p.page.getByLabel('Maximum attachment size (MB)').fill('0');
    await p.page.getByLabel('Denied extensions').fill('exe, js, bat');
    await p.page.getByLabel('File-name rule').selectOption('strict');
    const [bad] = await Promise.all([
      p.page.waitForResponse(
        (r) => r.url() === `${url}/settings/portals/default` && r.request().method() === 'POST',
      ),
      p.page.getByRole('button', { name: 'Save portal settings' }).click(),
    ]);
    expect(bad.status()).toBe(400);
    expect(await p.page.locator('#f-maxSizeMb-error').textContent()).toContain('must be a positive number');
    expect(await p.page.getByLabel('Maximum attachment size (MB)').getAttribute('aria-invalid')).toBe('true');
    expect(await p.page.getByLabel('Maximum attachment size (MB)').inputValue()).toBe('0');
    expect(await p.page.getByLabel('Denied extensions').inputValue()).toBe('exe, js, bat');
    expect(await p.page.getByLabel('File-name rule').inputValue()).toBe('strict');
    expect(await p.page.getByRole('alert').first().textContent()).toBeTruthy();
    expect(await seriousA11yViolations(p.page)).toEqual([]);
    const unchanged = await json<{ attachmentPolicy: { maxSizeMb: number; fileNames: string } }>([
      'portal',
      'show',
      'default',
    ]);
    expect(unchanged.attachmentPolicy).toMatchObject({ maxSizeMb: 25, fileNames: 'safe' });

    await p.page.getByLabel('Maximum attachment size (MB)').fill('12');
    await Promise.all([
      p.page.waitForURL(`${url}/settings/portals/default?saved=portal+settings`),
      p.page.getByRole('button', { name: 'Save portal settings' }).click(),
    ]);
    const saved = await json<{
      headerThreading: boolean;
      attachmentPolicy: { maxSizeMb: number; fileNames: string; deniedExtensions: string[] };
    }>(['portal', 'show', 'default']);
    expect(saved.attachmentPolicy).toMatchObject({
      maxSizeMb: 12,
      fileNames: 'strict',
      deniedExtensions: ['exe', 'js', 'bat'],
    });
    expect(saved.headerThreading).toBe(true);

    // a notification rule of the portal: a bad address marked beside it
    await p.page.getByLabel('Recipients of “attachment-dropped” emails').fill('not-an-address');
    await p.page
      .locator('form.rule', { has: p.page.getByLabel('Recipients of “attachment-dropped” emails') })
      .getByRole('button', { name: 'Save rule' })
      .click();
    await p.page.waitForLoadState();
    expect(await p.page.locator('#rule-attachment-dropped-recipients-error').textContent()).toContain(
      'not a valid email address',
    );
    expect(await p.page.getByLabel('Recipients of “attachment-dropped” emails').inputValue()).toBe(
      'not-an-address',
    );

    // the system log: the console's changes carry the admin as actor; the filters narrow to them
    const actor = `user:${ADMIN.email}`;
    await p.page.goto(`${url}/system-log`);
    const actors = p.page.locator('tbody');
    expect(await actors.textContent()).toMatch(/cli:/); // the rule set with the CLI before serve started
    await p.page.getByLabel('Actor').fill(actor);
    await p.page.getByLabel('Kind').selectOption('settings-changed');
    await Promise.all([
      p.page.waitForURL(/\/system-log\?/),
      p.page.getByRole('button', { name: 'Filter' }).click(),
    ]);
    const rows = p.page.locator('tbody tr');
    expect(await rows.count()).toBeGreaterThan(0);
    for (const row of await rows.all()) {
      expect(await row.locator('td').nth(1).textContent()).toBe(actor);
      expect(await row.locator('td').nth(3).textContent()).toBe('settings-changed');
    }
    expect(await mainText(p)).toContain('portal default updated');
    expect(await actors.textContent()).not.toMatch(/cli:/);
    // the SMTP and alert settings of the earlier tests were the admin's too
    await p.page.goto(`${url}/system-log?actor=${encodeURIComponent(actor)}&category=notification-settings`);
    expect(await mainText(p)).toContain('connection-failure notifications on, threshold 1');
    // by mailbox (read from each entry's details, with each engine's JSON function): the error folder's entries
    await p.page.goto(`${url}/system-log?mailbox=errbox`);
    const kinds = await p.page.locator('tbody tr td:nth-child(4)').allTextContents();
    expect(kinds).toContain('error-folder');
    const byCli = await json<{ items: { actor: string; details: { mailbox?: string } }[] }>([
      'system-log',
      '--mailbox',
      'errbox',
      '--since',
      new Date(Date.now() - 3_600_000).toISOString(),
    ]);
    expect(byCli.items.length).toBe(kinds.length);
    expect(new Set(byCli.items.map((e) => e.details.mailbox))).toEqual(new Set(['errbox']));
    const mine = await json<{ items: { actor: string }[] }>(['system-log', '--actor', actor]);
    expect(mine.items.length).toBeGreaterThan(0);
    expect(new Set(mine.items.map((e) => e.actor))).toEqual(new Set([actor]));
    // an actor nobody is (a typo) is told beside the field, not shown as an empty log
    const nobody = await p.page.goto(
      `${url}/system-log?actor=${encodeURIComponent('user:nobdy@example.org')}`,
    );
    expect(nobody?.status()).toBe(404);
    expect(await p.page.locator('#f-actor-error').textContent()).toContain(
      'no system log entry was made by "user:nobdy@example.org"',
    );
    expect(await p.page.getByLabel('Actor').inputValue()).toBe('user:nobdy@example.org');
    // a date range that ends before today finds nothing
    await p.page.goto(`${url}/system-log?actor=${encodeURIComponent(actor)}&to=2000-01-01`);
    expect(await mainText(p)).toContain('No entries match.');
    expect(await seriousA11yViolations(p.page)).toEqual([]);
    clean(p);
  });

  it('a technician sees their portal’s error folder without reports and is refused the admin pages and POSTs; POSTs without the CSRF token change nothing', async () => {
    const t = await open();
    await signIn(t, url, TECH.email, TECH.password);
    await t.page.goto(`${url}/error-mails`);
    expect(await mainText(t)).toContain('MAIL_TOO_LARGE');
    expect(await t.page.getByRole('link', { name: /report/ }).count()).toBe(0);
    expect(await t.page.getByRole('checkbox').count()).toBe(0);
    expect(await t.page.locator('header a.bell').count()).toBe(0);
    const id = (await json<{ items: { id: number }[] }>(['errors', 'list'])).items[0]?.id;
    for (const pathname of [
      `/error-mails/${id}`,
      '/system-log',
      '/settings',
      '/settings/portals/default',
      '/settings/smtp',
      '/notifications',
    ]) {
      const r = await t.page.goto(`${url}${pathname}`);
      expect(r?.status(), pathname).toBe(403);
      expect(await mainText(t), pathname).not.toContain('Erika');
    }
    const cookie = await cookieOf(t);
    const csrf = (await t.page.locator('input[name="_csrf"]').first().getAttribute('value')) ?? '';
    expect(csrf).not.toBe('');
    const alertsBefore = await json<{ threshold: number }>(['alerts', 'show']);
    for (const [pathname, fields] of [
      ['/error-mails/move-to-inbox', { [`pick-${id}`]: 'on' }],
      ['/error-mails/move-mailbox-to-inbox', { mailbox: 'errbox' }],
      ['/settings/portals/default', { maxSizeMb: '1' }],
      ['/settings/rules', { event: 'mail-error', recipients: 'tech@example.test', enabled: 'on' }],
      ['/settings/alerts', { threshold: '9', enabled: 'on' }],
      ['/settings/smtp', { host: 'evil.example', from: 'x@example.test' }],
      ['/settings/smtp/test', { to: 'x@example.test' }],
      ['/notifications/read-all', {}],
    ] as const) {
      const r = await post(cookie, pathname, { ...fields, _csrf: csrf });
      expect(r.status, pathname).toBe(403);
    }
    expect(await json<{ threshold: number }>(['alerts', 'show'])).toEqual(alertsBefore);

    // the admin's own session without the token: refused, nothing changed
    const adminCookie = await cookieOf(admin);
    const unread = (await json<{ unread: number }>(['notifications', 'count'])).unread;
    for (const [pathname, fields] of [
      ['/settings/alerts', { threshold: '9', enabled: 'on' }],
      ['/settings/portals/default', { maxSizeMb: '2' }],
      ['/notifications/read-all', {}],
      ['/settings/smtp', { host: 'evil.example', from: 'x@example.test' }],
    ] as const) {
      const r = await post(adminCookie, pathname, fields);
      expect(r.status, pathname).toBe(403);
      expect(await r.text()).toContain('UNAUTHORIZED');
    }
    expect(await json<{ threshold: number }>(['alerts', 'show'])).toEqual(alertsBefore);
    expect(
      (await json<{ attachmentPolicy: { maxSizeMb: number } }>(['portal', 'show', 'default']))
        .attachmentPolicy.maxSizeMb,
    ).toBe(12);
    expect((await json<{ unread: number }>(['notifications', 'count'])).unread).toBe(unread);
    expect((await json<{ host: string }>(['smtp', 'show'])).host).toBe('127.0.0.1');
    clean(t);
  });

  it('axe finds no serious or critical violation on the operations pages', async () => {
    const p = admin;
    const id = (await json<{ items: { id: number }[] }>(['errors', 'list'])).items[0]?.id;
    for (const pathname of [
      '/error-mails',
      `/error-mails/${id}`,
      '/notifications?show=all',
      '/system-log',
      '/settings',
      '/settings/portals/default',
      '/settings/smtp',
    ]) {
      const r = await p.page.goto(`${url}${pathname}`);
      expect(r?.status(), pathname).toBe(200);
      expect(await seriousA11yViolations(p.page), pathname).toEqual([]);
    }
    clean(p);
  });
});
