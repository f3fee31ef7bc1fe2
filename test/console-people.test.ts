import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CSP } from '../src/http/console/shell.js';
import { SIGN_IN_MAX_FAILURES } from '../src/kernel/limits.js';
import {
  type StrictPage,
  seriousA11yViolations,
  startBrowser,
  strictPage,
  type TestBrowser,
} from './support/browser.js';
import { cli, freePort, serve, signIn } from './support/console.js';
import { ENGINES, freshConfig } from './support/engines.js';

/**
 * People and the console shell, end to end: users made with the CLI (password on stdin, or a one-time link),
 * signing in and out through the forms of a real `mailintake serve` in Debian's Chromium, on both engines.
 * The session, the CSRF checks, the throttle, the security headers and axe-core's verdict.
 */
const ADMIN = { email: 'Admin@Example.org', password: 'a long admin passphrase' };
const TECH_PASSWORD = 'technician passphrase 1';

let browser: TestBrowser;
beforeAll(async () => {
  browser = await startBrowser();
}, 60_000);
afterAll(async () => browser?.close());

async function sessionCookie(p: StrictPage): Promise<string> {
  const cookie = (await p.context.cookies()).find((c) => c.name === 'mi_session');
  expect(cookie?.httpOnly).toBe(true);
  expect(cookie?.sameSite).toBe('Lax');
  return `mi_session=${cookie?.value}`;
}

describe.each(ENGINES)('people and the console shell (%s)', (engine) => {
  let fresh: Awaited<ReturnType<typeof freshConfig>>;
  let server: Awaited<ReturnType<typeof serve>>;
  let env: NodeJS.ProcessEnv;
  let url: string;
  const pages: StrictPage[] = [];
  const open = async () => {
    const p = await strictPage(browser, url);
    pages.push(p);
    // every page of ours carries the policy
    p.page.on('response', (r) => {
      if (r.url().startsWith(url) && r.request().resourceType() === 'document' && r.status() < 300) {
        expect.soft(r.headers()['content-security-policy'], r.url()).toBe(CSP);
      }
    });
    return p;
  };

  beforeAll(async () => {
    const port = await freePort();
    fresh = await freshConfig(engine);
    url = `http://127.0.0.1:${port}`;
    env = { ...process.env, ...fresh.env, MAILINTAKE_PORT: String(port), MAILINTAKE_PUBLIC_URL: url };
    const created = await cli(
      env,
      ['user', 'create', '--email', ADMIN.email, '--role', 'admin'],
      `${ADMIN.password}\n`,
    );
    expect(created, created.err).toMatchObject({ code: 0 });
    server = await serve(env);
    expect(server.url).toBe(url);
    // with an admin made, serve's last line says where to sign in (without one, how to make it: test/cli.test.ts)
    expect(server.nextStep).toBe(`Open ${url}/ in a browser and sign in.`);
  }, 120_000);
  afterAll(async () => {
    for (const p of pages) await p.context.close();
    await server?.stop();
    await fresh?.cleanup();
  });

  it('an admin made with the CLI signs in, sees the users, signs out; the old session cookie is dead', async () => {
    const p = await open();
    const start = await p.page.goto(`${url}/users`);
    expect(new URL(p.page.url()).pathname + new URL(p.page.url()).search).toBe('/login?next=%2Fusers');
    expect(start?.headers()['content-security-policy']).toBe(CSP);
    await p.page.getByLabel('Email').fill(ADMIN.email);
    await p.page.getByLabel('Password').fill(ADMIN.password);
    await Promise.all([
      p.page.waitForURL(`${url}/users`),
      p.page.getByRole('button', { name: 'Sign in' }).click(),
    ]);
    expect(await p.page.locator('table').textContent()).toContain('admin@example.org');
    expect(await p.page.locator('header').textContent()).toContain('admin@example.org');
    const cookie = await sessionCookie(p);
    const before = await fetch(`${url}/users`, { headers: { cookie }, redirect: 'manual' });
    expect(before.status).toBe(200);

    await Promise.all([
      p.page.waitForURL(`${url}/login`),
      p.page.getByRole('button', { name: 'Sign out' }).click(),
    ]);
    const after = await fetch(`${url}/users`, { headers: { cookie }, redirect: 'manual' });
    expect(after.status).toBe(303);
    expect(after.headers.get('location')).toBe('/login?next=%2Fusers');
    p.assertClean();
  });

  it('a technician made with --link sets a password through the link, signs in, and is refused /users', async () => {
    const made = await cli(env, [
      'user',
      'create',
      '--email',
      'tech@example.org',
      '--role',
      'technician',
      '--portal',
      'default',
      '--link',
    ]);
    expect(made.code, made.err).toBe(0);
    const link = /(http:\/\/\S+\/set-password\?token=[\w-]+)/.exec(made.out)?.[1];
    expect(link?.startsWith(`${url}/set-password?token=`)).toBe(true);

    const p = await open();
    await p.page.goto(link as string);
    expect(await p.page.locator('main').textContent()).toContain('tech@example.org');
    await p.page.getByLabel('New password').fill(TECH_PASSWORD);
    await p.page.getByLabel('The same password again').fill(TECH_PASSWORD);
    await Promise.all([
      p.page.waitForURL(/\/login\?done=password$/),
      p.page.getByRole('button', { name: 'Set password' }).click(),
    ]);
    expect(await p.page.getByRole('status').textContent()).toContain('Your password is set');

    // the link works once
    const again = await fetch(link as string);
    expect(again.status).toBe(404);

    await signIn(p, url, 'tech@example.org', TECH_PASSWORD);
    expect(new URL(p.page.url()).pathname).toBe('/requests');
    expect(await p.page.locator('main').textContent()).toContain('in portal default');
    expect(await p.page.getByRole('link', { name: 'Users' }).count()).toBe(0);
    const refused = await p.page.goto(`${url}/users`);
    expect(refused?.status()).toBe(403);
    expect(refused?.headers()['content-security-policy']).toBe(CSP);
    expect(await p.page.locator('main').textContent()).toContain('UNAUTHORIZED');
    p.assertClean();
  });

  it('a change without the CSRF token is refused (403), and the session stays', async () => {
    const p = await open();
    await signIn(p, url, ADMIN.email, ADMIN.password);
    const cookie = await sessionCookie(p);
    const noToken = await fetch(`${url}/logout`, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: '',
      redirect: 'manual',
    });
    expect(noToken.status).toBe(403);
    expect(noToken.headers.get('content-security-policy')).toBe(CSP);
    expect(await noToken.text()).toContain('UNAUTHORIZED');
    const wrongToken = await fetch(`${url}/logout`, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: '_csrf=not-the-token',
      redirect: 'manual',
    });
    expect(wrongToken.status).toBe(403);
    expect((await fetch(`${url}/users`, { headers: { cookie }, redirect: 'manual' })).status).toBe(200);
    // before a session: the sign-in form's double-submit token is required too
    const login = await fetch(`${url}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ email: ADMIN.email, password: ADMIN.password }).toString(),
      redirect: 'manual',
    });
    expect(login.status).toBe(403);
    expect(login.headers.get('set-cookie') ?? '').not.toContain('mi_session');
    p.assertClean();
  });

  it('every page carries the CSP; axe finds no serious or critical violation on /login, /users, /requests', async () => {
    for (const pathname of [
      '/login',
      '/set-password?token=nope',
      '/',
      '/users',
      '/requests',
      '/assets/console.css',
    ]) {
      const r = await fetch(`${url}${pathname}`, { redirect: 'manual' });
      expect(r.headers.get('content-security-policy'), pathname).toBe(CSP);
      expect(r.headers.get('x-content-type-options'), pathname).toBe('nosniff');
      expect(r.headers.get('referrer-policy'), pathname).toBe('same-origin');
    }
    expect((await fetch(`${url}/assets/console.css`)).headers.get('content-type')).toBe(
      'text/css; charset=utf-8',
    );
    const p = await open();
    await p.page.goto(`${url}/login`);
    expect(await seriousA11yViolations(p.page)).toEqual([]);
    await signIn(p, url, ADMIN.email, ADMIN.password);
    for (const pathname of ['/users', '/requests']) {
      await p.page.goto(`${url}${pathname}`);
      expect(await seriousA11yViolations(p.page), pathname).toEqual([]);
    }
    p.assertClean();
  });

  it('works from the keyboard alone: sign in, skip to the content, go through the navigation, sign out', async () => {
    const p = await open();
    const k = p.page.keyboard;
    // evaluated in the page (this project's TypeScript has no DOM types)
    const focused = () => p.page.evaluate<string>(`document.activeElement?.textContent?.trim() ?? ''`);
    const focusedName = () => p.page.evaluate<string>(`document.activeElement?.getAttribute('name') ?? ''`);
    const focusOutline = () =>
      p.page.evaluate<string>(`getComputedStyle(document.activeElement).outlineStyle`);
    await p.page.goto(`${url}/login`);
    // the first Tab reaches the skip link, the next ones the form, in order
    await k.press('Tab');
    expect(await focused()).toBe('Skip to content');
    await k.press('Tab');
    expect(await focusedName()).toBe('email');
    await k.type(ADMIN.email);
    await k.press('Tab');
    await k.type(ADMIN.password);
    await Promise.all([p.page.waitForURL(`${url}/requests`), k.press('Enter')]);
    // Tab from the top: the skip link first, then the navigation; Enter follows the link that has focus
    await k.press('Tab');
    expect(await focused()).toBe('Skip to content');
    const seen: string[] = [];
    for (let i = 0; i < 12 && !seen.includes('Users'); i++) {
      await k.press('Tab');
      seen.push(await focused());
    }
    expect(seen).toEqual(expect.arrayContaining(['Requests', 'Mailboxes', 'Error folder', 'Users']));
    // focus is visible: the focused link draws an outline
    expect(['solid', 'auto']).toContain(await focusOutline());
    await Promise.all([p.page.waitForURL(`${url}/users`), k.press('Enter')]);
    // to the sign-out button and press it
    for (let i = 0; i < 20; i++) {
      if ((await focused()) === 'Sign out') break;
      await k.press('Tab');
    }
    await Promise.all([p.page.waitForURL(`${url}/login`), k.press('Enter')]);
    p.assertClean();
  });

  it('the page harness itself catches a dialog and a request to another host', async () => {
    const p = await open();
    await p.page.goto(`${url}/login`);
    // from the test driver, outside the page's CSP: what a script slipped into a page would do
    await p.page.evaluate(() => (globalThis as unknown as { alert(message: string): void }).alert('x'));
    // (a fetch from the page would not even leave: the CSP has no connect-src; a navigation does try)
    await expect(p.page.goto('http://remote.example.invalid/beacon')).rejects.toThrow();
    expect(p.problems().join('\n')).toMatch(
      /dialog \(alert\): x[\s\S]*remote\.example\.invalid|remote\.example\.invalid[\s\S]*dialog/,
    );
    expect(() => p.assertClean()).toThrow('the page misbehaved');
  });

  // last: it locks sign-in from this address for SIGN_IN_LOCK_MS
  it('a wrong password is told clearly; after the limit even the right one is refused (throttled)', async () => {
    const p = await open();
    const first = await signIn(p, url, ADMIN.email, 'not the password at all');
    expect(first?.status()).toBe(401);
    expect(await p.page.getByRole('alert').textContent()).toBe('Wrong email or password.');
    expect(await p.page.getByLabel('Email').inputValue()).toBe(ADMIN.email);
    for (let i = 1; i < SIGN_IN_MAX_FAILURES; i++) await signIn(p, url, ADMIN.email, `wrong ${i}`);
    const throttled = await signIn(p, url, ADMIN.email, ADMIN.password);
    expect(throttled?.status()).toBe(429);
    expect(Number(throttled?.headers()['retry-after'])).toBeGreaterThan(0);
    expect(await p.page.getByRole('alert').textContent()).toMatch(
      /^Too many failed sign-ins\. Try again in \d+ minute/,
    );
    expect((await p.context.cookies()).some((c) => c.name === 'mi_session')).toBe(false);
    p.assertClean();
  });
});
