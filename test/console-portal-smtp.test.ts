import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type StrictPage,
  seriousA11yViolations,
  startBrowser,
  strictPage,
  type TestBrowser,
} from './support/browser.js';
import { cli, freePort, serve, signIn } from './support/console.js';
import { ENGINES, freshConfig } from './support/engines.js';
import { type SmtpTestServer, startSmtpServer } from './support/smtp.js';

/**
 * A portal's own outgoing SMTP server in the console, on both engines: a real `mailintake serve`, Debian's
 * Chromium and two real SMTP servers on loopback, the instance's (plain, no login) and the portal's (STARTTLS,
 * AUTH PLAIN, a private CA). The page says the instance's server is in effect at first; a bad port and a bad
 * from are named beside their fields with everything typed kept; saved, the portal's own server is in effect,
 * its password never in the page, and a test mail arrives at the portal's server, not the instance's; a wrong
 * password makes the test say AUTH_FAILED and what to check; "Use the instance's server" goes back, and a test
 * mail then arrives at the instance's server. A technician is refused the page and its forms. The portal's name
 * has dots, a hyphen and an underscore (every character a portal name may have besides letters and digits).
 */
const ADMIN = { email: 'smtp-admin@example.org', password: 'a long admin passphrase' };
const TECH = { email: 'smtp-tech@example.org', password: 'technician passphrase 1' };
const PORTAL = 'sales-desk.eu_2';
const PORTAL_SMTP_USER = { username: 'sales', password: 'portal-smtp-secret-0123' };
const WRONG_PASSWORD = 'not-the-portal-password-987';

let browser: TestBrowser;
beforeAll(async () => {
  browser = await startBrowser();
}, 60_000);
afterAll(async () => browser?.close());

describe.each(ENGINES)("a portal's own outgoing server in the console (%s)", (engine) => {
  let fresh: Awaited<ReturnType<typeof freshConfig>>;
  let instanceSmtp: SmtpTestServer;
  let portalSmtp: SmtpTestServer;
  let server: Awaited<ReturnType<typeof serve>>;
  let env: NodeJS.ProcessEnv;
  let url: string;
  let admin: StrictPage;
  const pages: StrictPage[] = [];
  const smtpPath = `/settings/portals/${PORTAL}/smtp`;

  const open = async () => {
    const p = await strictPage(browser, url);
    pages.push(p);
    return p;
  };
  const run = async (args: string[], stdin = '') => {
    const r = await cli(env, args, stdin);
    expect(r.code, `${args.join(' ')}: ${r.err}`).toBe(0);
    return r.out;
  };
  const portalSmtpView = async () =>
    JSON.parse(await run(['portal', 'smtp', 'show', PORTAL, '--json'])) as {
      inEffect: string;
      own: { host: string; port: number } | null;
    };
  const inEffect = async (p: StrictPage) => (await p.page.locator('#smtp-in-effect').textContent()) ?? '';
  const save = async (p: StrictPage, status = 303) => {
    const [answer] = await Promise.all([
      p.page.waitForResponse((r) => r.url() === `${url}${smtpPath}` && r.request().method() === 'POST'),
      p.page.getByRole('button', { name: 'Save SMTP settings' }).click(),
    ]);
    expect(answer.status()).toBe(status);
    await p.page.waitForLoadState();
  };
  const sendTest = async (p: StrictPage, to: string) => {
    await p.page.getByLabel('Send a test mail to').fill(to);
    const [answer] = await Promise.all([
      p.page.waitForResponse((r) => r.url() === `${url}${smtpPath}/test`),
      p.page.getByRole('button', { name: 'Send test mail' }).click(),
    ]);
    expect(answer.status()).toBe(200);
    await p.page.waitForLoadState();
    return (await p.page.locator('#test-result').textContent()) ?? '';
  };
  const cookieOf = async (p: StrictPage) => {
    const c = (await p.context.cookies()).find((x) => x.name === 'mi_session');
    return `mi_session=${c?.value}`;
  };
  /** A form POST from outside the page (a forged or replayed request): the session cookie, fields as given. */
  const post = (cookie: string, pathname: string, fields: Record<string, string>) =>
    fetch(`${url}${pathname}`, {
      method: 'POST',
      headers: { cookie, origin: url, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
      redirect: 'manual',
    });

  beforeAll(async () => {
    instanceSmtp = await startSmtpServer({ tls: 'none' });
    portalSmtp = await startSmtpServer({ tls: 'starttls', auth: PORTAL_SMTP_USER });
    fresh = await freshConfig(engine);
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    env = { ...process.env, ...fresh.env, MAILINTAKE_PORT: String(port), MAILINTAKE_PUBLIC_URL: url };
    await run(['portal', 'add', PORTAL]);
    await run(['user', 'create', '--email', ADMIN.email, '--role', 'admin'], `${ADMIN.password}\n`);
    await run(
      ['user', 'create', '--email', TECH.email, '--role', 'technician', '--portal', PORTAL],
      `${TECH.password}\n`,
    );
    await run(
      ['smtp', 'set', '--file', '-'],
      JSON.stringify({
        host: instanceSmtp.host,
        port: instanceSmtp.port,
        starttls: false,
        from: 'Alerts <alerts@example.test>',
      }),
    );
    server = await serve(env);
    expect(server.url).toBe(url);
    admin = await open();
    await signIn(admin, url, ADMIN.email, ADMIN.password);
    expect(new URL(admin.page.url()).pathname).toBe('/requests');
  }, 180_000);
  afterAll(async () => {
    for (const p of pages) await p.context.close();
    await server?.stop();
    await portalSmtp?.close();
    await instanceSmtp?.close();
    await fresh?.cleanup();
  });

  it("is linked from /settings and from the portal's page, and says at first that the instance's server sends the portal's mail", async () => {
    const p = admin;
    await p.page.goto(`${url}/settings`);
    await Promise.all([
      p.page.waitForURL(`${url}${smtpPath}`),
      p.page.getByRole('link', { name: `Outgoing SMTP server of portal ${PORTAL}` }).click(),
    ]);
    expect(await p.page.locator('h1').textContent()).toBe(`Outgoing SMTP server of portal ${PORTAL}`);

    await p.page.goto(`${url}/settings/portals/${PORTAL}`);
    const section = (await p.page.locator('main').textContent()) ?? '';
    expect(section).toContain(
      `Portal ${PORTAL} has no server of its own: its replies, forwards and acknowledgements go out through the instance's server.`,
    );
    await Promise.all([
      p.page.waitForURL(`${url}${smtpPath}`),
      p.page.getByRole('link', { name: `Outgoing SMTP server of portal ${PORTAL}` }).click(),
    ]);

    expect(await inEffect(p)).toContain("go out through the instance's server");
    expect(await p.page.locator('#smtp-in-effect a').getAttribute('href')).toBe('/settings/smtp');
    // nothing of its own to remove yet
    expect(await p.page.getByRole('button', { name: "Use the instance's server" }).count()).toBe(0);
    expect(await p.page.getByLabel('Server name or IP address').inputValue()).toBe('');
    expect(await seriousA11yViolations(p.page)).toEqual([]);

    // a portal that does not exist is the console's not-found page, with its code
    const missing = await p.page.goto(`${url}/settings/portals/no-such.portal/smtp`);
    expect(missing?.status()).toBe(404);
    expect(await p.page.locator('main').textContent()).toContain('NOT_FOUND');
    p.assertClean();
  });

  it("names a bad port and a bad from beside their fields with everything typed kept; saved, the portal's own server is in effect, its password never in the page, and a test mail arrives at the portal's server", async () => {
    const p = admin;
    await p.page.goto(`${url}${smtpPath}`);
    await p.page.getByLabel('Server name or IP address').fill(portalSmtp.host);
    await p.page.getByLabel('Port', { exact: true }).fill('abc');
    await p.page.getByLabel('User name').fill(PORTAL_SMTP_USER.username);
    await p.page.getByLabel('Password').fill(PORTAL_SMTP_USER.password);
    await p.page.getByLabel('From', { exact: true }).fill('sales desk at example.test');
    await p.page.getByLabel('CA file (PEM) of a private CA').fill(portalSmtp.caFile);
    await save(p, 400);

    const portField = p.page.getByLabel('Port', { exact: true });
    const fromField = p.page.getByLabel('From', { exact: true });
    expect(await p.page.locator('#f-port-error').textContent()).toBe('must be a number');
    expect(await portField.getAttribute('aria-invalid')).toBe('true');
    expect(await p.page.locator('#f-from-error').textContent()).toContain(
      'must be an address such as helpdesk@example.com',
    );
    expect(await fromField.getAttribute('aria-invalid')).toBe('true');
    // only those two are marked
    expect(await p.page.locator('.field-error').count()).toBe(2);
    // everything typed comes back, the password the admin typed included
    expect(await p.page.getByLabel('Server name or IP address').inputValue()).toBe(portalSmtp.host);
    expect(await portField.inputValue()).toBe('abc');
    expect(await p.page.getByLabel('User name').inputValue()).toBe(PORTAL_SMTP_USER.username);
    expect(await p.page.getByLabel('Password').inputValue()).toBe(PORTAL_SMTP_USER.password);
    expect(await fromField.inputValue()).toBe('sales desk at example.test');
    expect(await p.page.getByLabel('CA file (PEM) of a private CA').inputValue()).toBe(portalSmtp.caFile);
    expect(await p.page.getByLabel('Require STARTTLS (off only for a server without TLS)').isChecked()).toBe(
      true,
    );
    // nothing was saved
    expect((await portalSmtpView()).inEffect).toBe('instance');

    await portField.fill(String(portalSmtp.port));
    await fromField.fill('Sales Desk <sales@example.test>');
    await save(p);
    expect(p.page.url()).toBe(`${url}${smtpPath}?saved=1`);
    expect(await p.page.getByRole('status').first().textContent()).toBe(
      "The portal's outgoing server is saved.",
    );
    expect(await inEffect(p)).toContain(
      `go out through the portal's own server (${portalSmtp.host}:${portalSmtp.port})`,
    );
    expect(await p.page.getByRole('button', { name: "Use the instance's server" }).count()).toBe(1);
    expect(await p.page.getByLabel('Password').inputValue()).toBe('');
    expect(await p.page.content()).not.toContain(PORTAL_SMTP_USER.password);
    expect(await portalSmtpView()).toMatchObject({
      inEffect: 'portal',
      own: { host: portalSmtp.host, port: portalSmtp.port },
    });

    const result = await sendTest(p, 'buyer@example.test');
    expect(result).toContain('The test mail to buyer@example.test was accepted by the server');
    expect(result).toContain(
      `It went through the portal's own server (${portalSmtp.host}:${portalSmtp.port}).`,
    );
    const [mail] = await portalSmtp.waitFor(1);
    expect(mail?.to).toEqual(['buyer@example.test']);
    expect(mail?.from).toBe('sales@example.test');
    expect(mail?.user).toBe(PORTAL_SMTP_USER.username);
    expect(mail?.secure).toBe(true);
    expect(mail?.parsed.subject).toBe('Mailintake test mail');
    expect(mail?.parsed.text).toContain(`portal ${PORTAL} go out the same way (its own server)`);
    // sent while the request was answered: had it gone to the instance's server, it would be there by now
    expect(instanceSmtp.mails).toHaveLength(0);
    expect(await p.page.content()).not.toContain(PORTAL_SMTP_USER.password);
    expect(await seriousA11yViolations(p.page)).toEqual([]);
    p.assertClean();
  });

  it('a wrong password makes the test mail say AUTH_FAILED and what to check', async () => {
    const p = admin;
    await p.page.goto(`${url}${smtpPath}`);
    await p.page.getByLabel('Password').fill(WRONG_PASSWORD);
    await save(p);
    expect(await p.page.content()).not.toContain(WRONG_PASSWORD);
    const refusedBefore = portalSmtp.refusedLogins;

    const result = await sendTest(p, 'buyer@example.test');
    expect(result).toContain('The test mail could not be sent: AUTH_FAILED');
    expect(result).toContain(
      'What to check: The SMTP server refused the login. Check "username" and "password"',
    );
    expect(result).toContain(
      `It was tried through the portal's own server (${portalSmtp.host}:${portalSmtp.port}).`,
    );
    expect(await p.page.locator('#test-result').getAttribute('role')).toBe('alert');
    expect(portalSmtp.refusedLogins).toBe(refusedBefore + 1);
    expect(portalSmtp.mails).toHaveLength(1);
    expect(instanceSmtp.mails).toHaveLength(0);
    expect(await p.page.content()).not.toContain(WRONG_PASSWORD);
    p.assertClean();
  });

  it('"Use the instance\'s server" goes back to it, and a test mail then arrives at the instance\'s server', async () => {
    const p = admin;
    await p.page.goto(`${url}${smtpPath}`);
    await Promise.all([
      p.page.waitForURL(`${url}${smtpPath}?cleared=1`),
      p.page.getByRole('button', { name: "Use the instance's server" }).click(),
    ]);
    expect(await p.page.getByRole('status').first().textContent()).toContain(
      "its mail goes through the instance's server",
    );
    expect(await inEffect(p)).toContain("go out through the instance's server");
    expect(await p.page.getByRole('button', { name: "Use the instance's server" }).count()).toBe(0);
    expect(await p.page.getByLabel('Server name or IP address').inputValue()).toBe('');
    expect(await portalSmtpView()).toEqual(expect.objectContaining({ inEffect: 'instance', own: null }));

    const result = await sendTest(p, 'buyer@example.test');
    expect(result).toContain('The test mail to buyer@example.test was accepted by the server');
    expect(result).toContain("It went through the instance's server.");
    const [mail] = await instanceSmtp.waitFor(1);
    expect(mail?.to).toEqual(['buyer@example.test']);
    expect(mail?.from).toBe('alerts@example.test');
    expect(mail?.parsed.text).toContain(`Portal ${PORTAL} has no server of its own`);
    expect(portalSmtp.mails).toHaveLength(1);

    // and the portal's settings page says the same
    await p.page.goto(`${url}/settings/portals/${PORTAL}`);
    expect(await p.page.locator('#smtp-in-effect').textContent()).toContain(
      "go out through the instance's server",
    );
    p.assertClean();
  });

  it("a technician is refused the page and its forms, and a form without the session's token changes nothing", async () => {
    // the portal has its own server again, so a refused "use the instance's server" would show
    await run(
      ['portal', 'smtp', 'set', PORTAL, '--file', '-'],
      JSON.stringify({
        host: portalSmtp.host,
        port: portalSmtp.port,
        username: PORTAL_SMTP_USER.username,
        password: PORTAL_SMTP_USER.password,
        from: 'sales@example.test',
        caFile: portalSmtp.caFile,
      }),
    );
    const t = await open();
    await signIn(t, url, TECH.email, TECH.password);
    const r = await t.page.goto(`${url}${smtpPath}`);
    expect(r?.status()).toBe(403);
    expect((await t.page.locator('main').textContent()) ?? '').not.toContain(portalSmtp.caFile);
    await t.page.goto(`${url}/requests`);
    const cookie = await cookieOf(t);
    const csrf = (await t.page.locator('input[name="_csrf"]').first().getAttribute('value')) ?? '';
    expect(csrf).not.toBe('');
    const mailsBefore = portalSmtp.mails.length + instanceSmtp.mails.length;
    for (const [pathname, fields] of [
      [smtpPath, { host: 'evil.example', from: 'x@example.test' }],
      [`${smtpPath}/clear`, {}],
      [`${smtpPath}/test`, { to: 'x@example.test' }],
    ] as const) {
      const res = await post(cookie, pathname, { ...fields, _csrf: csrf });
      expect(res.status, pathname).toBe(403);
    }
    // the admin's own session without the token: refused too
    const adminCookie = await cookieOf(admin);
    for (const pathname of [smtpPath, `${smtpPath}/clear`]) {
      const res = await post(adminCookie, pathname, { host: 'evil.example', from: 'x@example.test' });
      expect(res.status, pathname).toBe(403);
      expect(await res.text()).toContain('UNAUTHORIZED');
    }
    expect(await portalSmtpView()).toMatchObject({
      inEffect: 'portal',
      own: { host: portalSmtp.host, port: portalSmtp.port },
    });
    expect(portalSmtp.mails.length + instanceSmtp.mails.length).toBe(mailsBefore);
    t.assertClean();
  });
});
