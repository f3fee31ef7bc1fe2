import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CSP } from '../src/http/console/shell.js';
import { buildMail } from './kit/mails.js';
import {
  type StrictPage,
  seriousA11yViolations,
  startBrowser,
  strictPage,
  type TestBrowser,
} from './support/browser.js';
import { cli, freePort, serve, signIn } from './support/console.js';
import { addMailbox, requestDetail, requestIds, takeIn } from './support/console-intake.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';

/**
 * The request pages end to end, on both engines: mail taken in through a real Dovecot by the real CLI, a real
 * `mailintake serve`, Debian's Chromium. A technician of portal "helpdesk" filters and searches the list, opens
 * a request, downloads an attachment and the raw mail (byte for byte), changes status and assignee and sees both
 * in the history; nothing of portal "sales" reaches them by any route; a change without the CSRF token changes
 * nothing; axe finds nothing serious on the list or the request page.
 */
const ADMIN = { email: 'admin@example.org', password: 'a long admin passphrase' };
const TECH = { email: 'tech@example.org', password: 'a long technician passphrase' };

const PDF = Buffer.concat([
  Buffer.from('%PDF-1.4\n'),
  Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 256)),
]);
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
  'base64',
);

const PRINTER = buildMail({
  from: 'Ann Lee <ann@example.test>',
  messageId: 'printer@example.test',
  subject: 'Printer on floor 3 is jammed',
  body: 'The paper tray keeps jamming. The report and the driver are attached.\r\n',
  attachments: [
    { filename: 'report.pdf', contentType: 'application/pdf', content: PDF },
    { filename: 'setup.exe', contentType: 'application/octet-stream', content: Buffer.from('MZ not really') },
  ],
});
const PRINTER_REPLY = buildMail({
  from: 'Ann Lee <ann@example.test>',
  messageId: 'printer-reply@example.test',
  inReplyTo: 'printer@example.test',
  subject: 'Re: Printer on floor 3 is jammed',
  body: 'It jammed again this morning.\r\n',
});
const NEWSLETTER = buildMail({
  from: 'Bob Stone <bob@example.test>',
  messageId: 'newsletter@example.test',
  subject: 'VPN drops every hour',
  body: 'plain part',
  html: '<p>The VPN drops; see <img src="cid:logo@vpn" alt="logo"> and <img src="https://tracker.example/p.gif" alt="pixel">.</p>',
  attachments: [{ filename: 'logo.png', contentType: 'image/png', content: PNG, inlineCid: 'logo@vpn' }],
});
const SECRET = buildMail({
  from: 'Dave Quinn <dave@buyer.test>',
  messageId: 'secret@example.test',
  subject: 'Quote for 40 licences',
  body: 'Our budget is confidential.\r\n',
  attachments: [{ filename: 'budget.pdf', contentType: 'application/pdf', content: PDF }],
});

let browser: TestBrowser;
let dovecot: DovecotServer;
beforeAll(async () => {
  browser = await startBrowser();
  dovecot = await startDovecot({
    users: [
      { name: 'help', password: 'help-pw' },
      { name: 'sales', password: 'sales-pw' },
    ],
  });
}, 120_000);
afterAll(async () => {
  await browser?.close();
  await dovecot?.stop();
});

describe.each(ENGINES)('the request pages (%s)', (engine) => {
  let fresh: Awaited<ReturnType<typeof freshConfig>>;
  let server: Awaited<ReturnType<typeof serve>>;
  let env: NodeJS.ProcessEnv;
  let url: string;
  let ids: Map<string, number>;
  const pages: StrictPage[] = [];
  const open = async () => {
    const p = await strictPage(browser, url);
    pages.push(p);
    return p;
  };
  const id = (subject: string) => {
    const found = ids.get(subject);
    if (found === undefined) throw new Error(`no request "${subject}" in ${[...ids.keys()].join(', ')}`);
    return found;
  };
  const cookieOf = async (p: StrictPage) =>
    `mi_session=${(await p.context.cookies()).find((c) => c.name === 'mi_session')?.value}`;
  const rowsOf = async (p: StrictPage) =>
    (await p.page.locator('table.requests tbody tr td:nth-child(2)').allTextContents()).map((t) => t.trim());

  beforeAll(async () => {
    const port = await freePort();
    fresh = await freshConfig(engine);
    url = `http://127.0.0.1:${port}`;
    env = { ...process.env, ...fresh.env, MAILINTAKE_PORT: String(port), MAILINTAKE_PUBLIC_URL: url };
    await addMailbox(env, dovecot, { name: 'help', user: 'help', portal: 'helpdesk' });
    await addMailbox(env, dovecot, { name: 'sales', user: 'sales', portal: 'sales' });
    await takeIn(env, dovecot, { mailbox: 'help', user: 'help', mails: [PRINTER, NEWSLETTER] });
    await takeIn(env, dovecot, { mailbox: 'help', user: 'help', mails: [PRINTER_REPLY] });
    await takeIn(env, dovecot, { mailbox: 'sales', user: 'sales', mails: [SECRET] });
    ids = await requestIds(env);
    expect([...ids.keys()].sort()).toEqual([
      'Printer on floor 3 is jammed',
      'Quote for 40 licences',
      'VPN drops every hour',
    ]);
    for (const [who, role, portal] of [
      [ADMIN, 'admin', null],
      [TECH, 'technician', 'helpdesk'],
    ] as const) {
      const args = [
        'user',
        'create',
        '--email',
        who.email,
        '--role',
        role,
        ...(portal ? ['--portal', portal] : []),
      ];
      const made = await cli(env, args, `${who.password}\n`);
      expect(made.code, made.err).toBe(0);
    }
    server = await serve(env);
  }, 180_000);
  afterAll(async () => {
    for (const p of pages) await p.context.close();
    await server?.stop();
    await fresh?.cleanup();
  });

  it('a technician filters and searches the list of their portal; the filters stay in the URL', async () => {
    const p = await open();
    await signIn(p, url, TECH.email, TECH.password);
    expect(new URL(p.page.url()).pathname).toBe('/requests');
    expect(await rowsOf(p)).toEqual(['VPN drops every hour', 'Printer on floor 3 is jammed']);
    // no portal filter for a technician, and only their portal's mailboxes to choose from
    expect(await p.page.getByLabel('Portal').count()).toBe(0);
    expect(await p.page.getByLabel('Mailbox').locator('option').allTextContents()).toEqual(['Any', 'help']);
    const row = p.page.locator('table.requests tbody tr').first();
    expect((await row.locator('td').allTextContents()).map((t) => t.trim())).toEqual([
      String(id('VPN drops every hour')),
      'VPN drops every hour',
      'Bob Stone',
      'helpdesk',
      'help',
      'open',
      '—',
      expect.stringMatching(/^\d{4}-\d\d-\d\d \d\d:\d\d$/),
    ]);

    await p.page.getByLabel('Search').fill('jamming');
    await Promise.all([
      p.page.waitForURL(/\/requests\?q=jamming$/),
      p.page.getByRole('button', { name: 'Show' }).click(),
    ]);
    expect(await rowsOf(p)).toEqual(['Printer on floor 3 is jammed']);
    expect(await p.page.getByLabel('Search').inputValue()).toBe('jamming');

    await p.page.getByLabel('Search').fill('');
    await p.page.getByLabel('Requester').fill('bob@example.test');
    await p.page.getByLabel('Status').selectOption('open');
    await p.page.getByLabel('Mailbox').selectOption('help');
    await Promise.all([
      p.page.waitForURL(/\/requests\?mailbox=help&status=open&requester=bob%40example\.test$/),
      p.page.getByRole('button', { name: 'Show' }).click(),
    ]);
    expect(await rowsOf(p)).toEqual(['VPN drops every hour']);

    // a portal in the URL does not widen a technician's list
    await p.page.goto(`${url}/requests?portal=sales`);
    expect(await rowsOf(p)).toEqual(['VPN drops every hour', 'Printer on floor 3 is jammed']);
    // a search of the other portal's words finds nothing
    await p.page.goto(`${url}/requests?q=confidential`);
    expect(await p.page.locator('main').textContent()).toContain('No request matches these filters.');
    // a filter naming no mailbox says so beside the field, the input kept
    const unknown = await p.page.goto(`${url}/requests?mailbox=nope`);
    expect(unknown?.status()).toBe(404);
    expect(await p.page.locator('#filter-mailbox-error').textContent()).toContain('no mailbox named "nope"');
    expect(await p.page.getByLabel('Mailbox').inputValue()).toBe('nope');
    p.assertClean();
  });

  it('an admin sees every portal and filters by one; paging links keep the filters', async () => {
    const p = await open();
    await signIn(p, url, ADMIN.email, ADMIN.password);
    await p.page.goto(`${url}/requests`);
    expect(await rowsOf(p)).toEqual([
      'Quote for 40 licences',
      'VPN drops every hour',
      'Printer on floor 3 is jammed',
    ]);
    await p.page.getByLabel('Portal').selectOption('sales');
    await Promise.all([
      p.page.waitForURL(/\/requests\?portal=sales$/),
      p.page.getByRole('button', { name: 'Show' }).click(),
    ]);
    expect(await rowsOf(p)).toEqual(['Quote for 40 licences']);
    // an offset past the first page shows the pager with a link back that keeps the filter
    await p.page.goto(`${url}/requests?portal=helpdesk&offset=1`);
    expect(await rowsOf(p)).toEqual(['Printer on floor 3 is jammed']);
    expect(await p.page.getByRole('link', { name: 'Previous' }).getAttribute('href')).toBe(
      '/requests?portal=helpdesk',
    );
    p.assertClean();
  });

  it('a technician opens a request: its mails, why each landed here, attachments, dropped ones, raw mail', async () => {
    const printer = id('Printer on floor 3 is jammed');
    const detail = await requestDetail(env, printer);
    const p = await open();
    await signIn(p, url, TECH.email, TECH.password);
    await p.page.getByRole('link', { name: 'Printer on floor 3 is jammed' }).click();
    await p.page.waitForURL(`${url}/requests/${printer}`);
    const main = p.page.locator('main');
    expect(await p.page.locator('h1').textContent()).toBe(`#${printer} Printer on floor 3 is jammed`);
    const facts = await p.page.locator('.request-head dl.facts').textContent();
    for (const text of ['Ann Lee <ann@example.test>', 'helpdesk', 'help', 'open', 'nobody']) {
      expect(facts).toContain(text);
    }
    // the first mail and the reply, each with its decision trace
    const mails = p.page.locator('section.mail');
    expect(await mails.count()).toBe(2);
    expect(await mails.nth(0).locator('.trace').textContent()).toContain('created this request');
    const replyTrace = await mails.nth(1).locator('.trace').textContent();
    expect(replyTrace).toContain('added as a conversation');
    expect(replyTrace).toContain(`In-Reply-To <printer@example.test> matches a mail of request #${printer}`);
    // the dropped executable with its reason
    const dropped = await mails.nth(0).locator('.dropped').textContent();
    expect(dropped).toContain('setup.exe');
    expect(dropped).toContain('EXTENSION_RESTRICTED');
    // each body in a sandboxed frame without scripts or same-origin
    const frames = p.page.locator('iframe.mail-frame');
    expect(await frames.count()).toBe(2);
    for (const f of await frames.all()) {
      expect(await f.getAttribute('sandbox')).toBe('allow-popups allow-popups-to-escape-sandbox');
    }

    // the attachment, byte for byte
    const [download] = await Promise.all([
      p.page.waitForEvent('download'),
      main.getByRole('link', { name: 'report.pdf' }).click(),
    ]);
    expect(download.suggestedFilename()).toBe('report.pdf');
    expect(await readFile((await download.path()) as string)).toEqual(PDF);
    // the raw mail, as fetched (Dovecot serves the delivered CRLF mail byte for byte)
    const [raw] = await Promise.all([
      p.page.waitForEvent('download'),
      mails.nth(0).getByRole('link', { name: 'Download the raw mail (.eml)' }).click(),
    ]);
    expect(raw.suggestedFilename()).toBe(`mail-${detail.logId}.eml`);
    expect(await readFile((await raw.path()) as string)).toEqual(PRINTER);

    const cookie = await cookieOf(p);
    const att = detail.attachments.find((a) => a.filename === 'report.pdf');
    const res = await fetch(`${url}/requests/${printer}/attachments/${att?.id}`, { headers: { cookie } });
    expect(res.headers.get('content-disposition')).toBe(
      `attachment; filename="report.pdf"; filename*=UTF-8''report.pdf`,
    );
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('content-type')).toBe('application/pdf');
    await res.arrayBuffer();
    p.assertClean();
  });

  it('a technician changes status and assignee; both show in the history with who did it', async () => {
    const printer = id('Printer on floor 3 is jammed');
    const p = await open();
    await signIn(p, url, TECH.email, TECH.password);
    await p.page.goto(`${url}/requests/${printer}`);
    await p.page.getByLabel('Status', { exact: true }).selectOption('in-progress');
    await Promise.all([
      p.page.waitForURL(`${url}/requests/${printer}?changed=status`),
      p.page.getByRole('button', { name: 'Set status' }).click(),
    ]);
    expect(await p.page.getByRole('status').textContent()).toContain('The status is changed');
    // the suggestions are the people who can work on it: the admin and this portal's technician
    expect(
      await p.page
        .locator('#work-assignees option')
        .evaluateAll((o) => o.map((e) => e.getAttribute('value'))),
    ).toEqual([ADMIN.email, TECH.email]);
    await p.page.getByLabel('Assignee').fill('not an address');
    const bad = await Promise.all([
      p.page.waitForResponse((r) => r.url().endsWith(`/requests/${printer}/assignee`)),
      p.page.getByRole('button', { name: 'Assign' }).click(),
    ]).then(([r]) => r);
    expect(bad.status()).toBe(400);
    await p.page.waitForLoadState();
    expect(await p.page.locator('#work-assignee-error').textContent()).toContain('must be an email address');
    expect(await p.page.getByLabel('Assignee').inputValue()).toBe('not an address');
    await p.page.getByLabel('Assignee').fill(TECH.email);
    await Promise.all([
      p.page.waitForURL(`${url}/requests/${printer}?changed=assignee`),
      p.page.getByRole('button', { name: 'Assign' }).click(),
    ]);
    const rows = await p.page
      .locator('table.history tbody tr')
      .evaluateAll((trs) =>
        trs.map((tr) => [...tr.querySelectorAll('td')].slice(1).map((td) => td.textContent)),
      );
    expect(rows).toEqual([
      [`user:${TECH.email}`, 'status', 'open', 'in-progress'],
      [`user:${TECH.email}`, 'assignee', 'nobody', TECH.email],
    ]);
    const facts = await p.page.locator('.request-head dl.facts').textContent();
    expect(facts).toContain('in-progress');
    expect(facts).toContain(TECH.email);
    expect(await requestDetail(env, printer)).toMatchObject({ status: 'in-progress', assignee: TECH.email });
    p.assertClean();
  });

  it("nothing of another portal's request reaches a technician, by any route; admin pages are refused", async () => {
    const secret = id('Quote for 40 licences');
    const detail = await requestDetail(env, secret);
    const budget = detail.attachments.find((a) => a.filename === 'budget.pdf');
    const p = await open();
    await signIn(p, url, TECH.email, TECH.password);
    const cookie = await cookieOf(p);
    const csrf = await p.page.locator('form.who input[name="_csrf"]').getAttribute('value');
    for (const path of [
      `/requests/${secret}`,
      `/requests/${secret}/body`,
      `/requests/${secret}/body?images=1`,
      `/requests/${secret}/attachments/${budget?.id}`,
      `/requests/${secret}/inline/${budget?.id}`,
      `/requests/${secret}/mails/${detail.logId}/raw`,
      // another request's raw mail through a request of one's own portal
      `/requests/${id('VPN drops every hour')}/mails/${detail.logId}/raw`,
      `/requests/${id('VPN drops every hour')}/attachments/${budget?.id}`,
      `/requests/${id('VPN drops every hour')}/inline/${budget?.id}`,
      // and a conversation that is not the request's: the frame's own NOT_FOUND, through the console's error page
      `/requests/${id('VPN drops every hour')}/conversations/987654/body`,
    ]) {
      const res = await fetch(`${url}${path}`, { headers: { cookie }, redirect: 'manual' });
      expect(res.status, path).toBe(404);
      const text = await res.text();
      expect(text, path).not.toContain('confidential');
      expect(text, path).not.toContain('%PDF');
    }
    const page = await p.page.goto(`${url}/requests/${secret}`);
    expect(page?.status()).toBe(404);
    expect(await p.page.locator('main').textContent()).toContain(`no request #${secret}`);
    for (const field of ['status', 'assignee']) {
      const post = await fetch(`${url}/requests/${secret}/${field}`, {
        method: 'POST',
        headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          _csrf: csrf as string,
          [field]: field === 'status' ? 'closed' : TECH.email,
        }).toString(),
        redirect: 'manual',
      });
      expect(post.status, field).toBe(404);
    }
    expect(await requestDetail(env, secret)).toMatchObject({ status: 'open', assignee: null });
    const users = await p.page.goto(`${url}/users`);
    expect(users?.status()).toBe(403);
    expect(await p.page.locator('main').textContent()).toContain('UNAUTHORIZED');
    p.assertClean();
  });

  it('a status change without the CSRF token is refused (403) and changes nothing', async () => {
    const vpn = id('VPN drops every hour');
    const p = await open();
    await signIn(p, url, ADMIN.email, ADMIN.password);
    const cookie = await cookieOf(p);
    for (const body of ['status=closed', 'status=closed&_csrf=not-the-token']) {
      const res = await fetch(`${url}/requests/${vpn}/status`, {
        method: 'POST',
        headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
        body,
        redirect: 'manual',
      });
      expect(res.status, body).toBe(403);
      expect(await res.text()).toContain('UNAUTHORIZED');
    }
    expect(await requestDetail(env, vpn)).toMatchObject({ status: 'open' });
    const history = await cli(env, ['requests', 'history', String(vpn), '--json']);
    expect(JSON.parse(history.out)).toEqual([]);
    p.assertClean();
  });

  it('every page carries the console CSP, the body frame its own; axe finds nothing serious', async () => {
    const vpn = id('VPN drops every hour');
    const p = await open();
    await signIn(p, url, ADMIN.email, ADMIN.password);
    const cookie = await cookieOf(p);
    for (const path of ['/requests', `/requests/${vpn}`]) {
      const res = await fetch(`${url}${path}`, { headers: { cookie } });
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-security-policy'), path).toBe(CSP);
      await res.text();
    }
    const body = await fetch(`${url}/requests/${vpn}/body`, { headers: { cookie } });
    expect(body.headers.get('content-security-policy')).toContain("frame-ancestors 'self'");
    expect(body.headers.get('content-security-policy')).not.toContain('script-src');
    expect(body.headers.get('x-frame-options')).toBe('SAMEORIGIN');
    await body.text();
    // a 1366x768 laptop: nothing wider than the window, so no sideways scrolling
    await p.page.setViewportSize({ width: 1366, height: 768 });
    for (const path of ['/requests', `/requests/${vpn}`]) {
      await p.page.goto(`${url}${path}`);
      expect(await seriousA11yViolations(p.page), path).toEqual([]);
      expect(await p.page.locator('html').evaluate((html) => html.scrollWidth), path).toBeLessThanOrEqual(
        1366,
      );
      if (process.env.MAILINTAKE_SCREENSHOTS) {
        await p.page.screenshot({
          path: `${process.env.MAILINTAKE_SCREENSHOTS}/${engine}${path.replace(/\//g, '-')}.png`,
          fullPage: true,
        });
      }
    }
    p.assertClean();
  });
});
