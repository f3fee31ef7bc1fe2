import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../src/store/db.js';
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
import { type OAuthTestServer, startOAuthServer } from './support/oauth-server.js';

/**
 * The mailbox pages end to end: a real `mailintake serve`, a real Dovecot (passwords, and OAuth tokens checked at
 * the authorization server), a real oidc-provider for the consent, Debian's Chromium, on both engines. An admin
 * adds an IMAPS mailbox through the form, sees the failed login explained step by step, fixes it, fetches a
 * sample, starts fetching and sees the request arrive; authorizes an OAuth mailbox in the consent window; pauses,
 * resumes, saves under a running fetch, removes. A technician is refused every page and form of it.
 */
const ADMIN = { email: 'admin@example.org', password: 'a long admin passphrase' };
const TECH = { email: 'tech@example.org', password: 'technician passphrase 1' };
const CLIENT_SECRET = 'console-helpdesk-secret-4b1d';
const LONG = 180_000;

let browser: TestBrowser;
beforeAll(async () => {
  browser = await startBrowser();
}, 60_000);
afterAll(async () => browser?.close());

describe.each(ENGINES)('the mailbox pages (%s)', (engine) => {
  let fresh: Awaited<ReturnType<typeof freshConfig>>;
  let server: Awaited<ReturnType<typeof serve>>;
  let dovecot: DovecotServer;
  let auth: OAuthTestServer;
  let store: Store;
  let env: NodeJS.ProcessEnv;
  let url: string;
  const pages: StrictPage[] = [];
  const open = async () => {
    const p = await strictPage(browser, url);
    pages.push(p);
    return p;
  };
  const admin = async () => {
    const p = await open();
    await signIn(p, url, ADMIN.email, ADMIN.password);
    return p;
  };
  /** Clicks a submit button and waits for the page it leads to. */
  const submit = async (p: StrictPage, name: string, to: RegExp | string) => {
    await Promise.all([p.page.waitForURL(to), p.page.getByRole('button', { name, exact: true }).click()]);
  };

  beforeAll(async () => {
    auth = await startOAuthServer({ users: [{ name: 'oauthuser', password: 'oauthuser-pw' }] });
    dovecot = await startDovecot({
      users: ['support', 'oauthuser', 'busy'].map((name) => ({ name, password: `${name}-pw` })),
      oauth: { introspectionUrl: auth.dovecot.introspectionUrl },
    });
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    await auth.addClient({
      clientId: 'helpdesk',
      clientSecret: CLIENT_SECRET,
      redirectUris: [`${url}/oauth/callback`],
    });
    fresh = await freshConfig(engine);
    env = { ...process.env, ...fresh.env, MAILINTAKE_PORT: String(port), MAILINTAKE_PUBLIC_URL: url };
    const made = await cli(
      env,
      ['user', 'create', '--email', ADMIN.email, '--role', 'admin'],
      `${ADMIN.password}\n`,
    );
    expect(made, made.err).toMatchObject({ code: 0 });
    const tech = await cli(
      env,
      ['user', 'create', '--email', TECH.email, '--role', 'technician', '--portal', 'default'],
      `${TECH.password}\n`,
    );
    expect(tech, tech.err).toMatchObject({ code: 0 });
    server = await serve(env);
    store = await openStore({ databaseUrl: fresh.config.databaseUrl, dataDir: fresh.config.dataDir });
  }, LONG);
  afterAll(async () => {
    for (const p of pages) await p.context.close();
    await server?.stop();
    await store?.close();
    await dovecot?.stop();
    await auth?.close();
    await fresh?.cleanup();
  });

  it(
    'adds an IMAPS mailbox with a wrong password, sees the login step explained, fixes it, fetches a sample, starts fetching, and the mail becomes a request',
    async () => {
      const p = await admin();
      await p.page.goto(`${url}/mailboxes/new`);
      await p.page.getByLabel('Name', { exact: true }).fill('support');
      await p.page.getByLabel('Protocol').selectOption('imaps');
      await p.page.getByLabel('Server Name / IP Address').fill('localhost');
      await p.page.getByLabel('Port', { exact: true }).fill(String(dovecot.ports.imaps));
      await p.page.getByLabel('CA file (optional)').fill(dovecot.caFile);
      await p.page.getByLabel('Email Address').fill('support@example.test');
      await p.page.getByLabel('Username').fill('support');
      await p.page.getByLabel('Password', { exact: true }).fill('not-the-password');
      await p.page.getByLabel('Fetch every (seconds)').fill('10');
      await submit(p, 'Save', `${url}/mailboxes/support?done=added`);
      expect(await p.page.getByRole('status').first().textContent()).toContain('Mailbox added.');
      expect(await p.page.locator('#mailbox-state').textContent()).toBe('Paused');

      await submit(p, 'Fetch a sample mail from support', `${url}/mailboxes/support/test`);
      const failed = p.page.locator('section.sample');
      expect(await failed.locator('h2').textContent()).toContain('logging in');
      expect(await failed.locator('code').first().textContent()).toBe('AUTH_FAILED');
      expect(await failed.locator('li[data-step="connect"]').getAttribute('class')).toBe('passed');
      expect(await failed.locator('li[data-step="tls"]').getAttribute('class')).toBe('passed');
      expect(await failed.locator('li[data-step="login"]').getAttribute('class')).toBe('failed');
      expect(await failed.locator('li[data-step="folder"]').getAttribute('class')).toBe('not-reached');
      expect(await failed.textContent()).toContain(
        'Are "username" and the password the ones the server expects',
      );

      // the form below still holds every setting; only the password is typed again
      expect(await p.page.getByLabel('Server Name / IP Address').inputValue()).toBe('localhost');
      expect(await p.page.getByLabel('Port', { exact: true }).inputValue()).toBe(String(dovecot.ports.imaps));
      expect(await p.page.getByLabel('Username').inputValue()).toBe('support');
      expect(await p.page.getByLabel('Fetch every (seconds)').inputValue()).toBe('10');
      expect(await p.page.getByLabel('Password', { exact: true }).inputValue()).toBe('');
      expect(await p.page.content()).not.toContain('not-the-password');
      await p.page.getByLabel('Password', { exact: true }).fill('support-pw');
      await submit(p, 'Save', `${url}/mailboxes/support?done=saved`);

      await deliverMaildir(dovecot, 'support', [
        buildMail({
          subject: 'Oldest: printer on fire',
          from: 'Ada <ada@example.test>',
          messageId: 'c1@console.test',
        }),
      ]);
      await submit(p, 'Fetch a sample mail from support', `${url}/mailboxes/support/test`);
      const sample = p.page.locator('section.sample');
      expect(await sample.locator('h2').textContent()).toContain('connected');
      const shown = await sample.locator('dl').textContent();
      expect(shown).toContain('Oldest: printer on fire');
      expect(shown).toContain('ada@example.test');

      await submit(p, 'Resume support', `${url}/mailboxes/support?done=resumed`);
      expect(await p.page.locator('#mailbox-state').textContent()).not.toBe('Paused');
      await deliverMaildir(dovecot, 'support', [
        buildMail({ subject: 'Second: scanner jammed', messageId: 'c2@console.test' }),
      ]);
      await expect
        .poll(
          async () => {
            await p.page.goto(`${url}/requests`);
            const text = (await p.page.locator('main').textContent()) ?? '';
            return text.includes('Oldest: printer on fire') && text.includes('Second: scanner jammed');
          },
          { timeout: 120_000, interval: 1000 },
        )
        .toBe(true);
      await p.page.goto(`${url}/mailboxes`);
      const row = p.page.locator('tr[data-mailbox="support"]');
      expect(await row.locator('td').nth(4).textContent()).toBe('2');
      p.assertClean();
    },
    LONG,
  );

  it(
    'invalid input is marked beside each bad field, with everything else typed kept',
    async () => {
      const p = await admin();
      await p.page.goto(`${url}/mailboxes/new`);
      await p.page.getByLabel('Name', { exact: true }).fill('badbox');
      await p.page.getByLabel('Port', { exact: true }).fill('99999');
      await p.page.getByLabel('Email Address').fill('help@example.test, desk@example.test');
      await p.page.getByLabel('Username').fill('helpdesk-user');
      await p.page.getByLabel('Password', { exact: true }).fill('whatever-pw');
      await p.page.getByLabel('Name of the error folder').fill('Broken mails');
      const [answer] = await Promise.all([
        p.page.waitForResponse((r) => r.url() === `${url}/mailboxes/new` && r.request().method() === 'POST'),
        p.page.getByRole('button', { name: 'Save', exact: true }).click(),
      ]);
      expect(answer.status()).toBe(400);
      await p.page.waitForLoadState();
      expect(await p.page.getByRole('alert').first().textContent()).toContain('Invalid mailbox settings');
      expect(await p.page.locator('#f-server-error').textContent()).toContain(
        'server name or IP address is required',
      );
      expect(await p.page.getByLabel('Server Name / IP Address').getAttribute('aria-invalid')).toBe('true');
      expect(await p.page.locator('#f-port-error').textContent()).toContain('65535');
      expect(await p.page.getByLabel('Port', { exact: true }).getAttribute('aria-invalid')).toBe('true');
      // the good fields carry no error and keep what was typed
      expect(await p.page.locator('.field-error').count()).toBe(2);
      expect(await p.page.getByLabel('Name', { exact: true }).inputValue()).toBe('badbox');
      expect(await p.page.getByLabel('Port', { exact: true }).inputValue()).toBe('99999');
      expect(await p.page.getByLabel('Email Address').inputValue()).toBe(
        'help@example.test, desk@example.test',
      );
      expect(await p.page.getByLabel('Username').inputValue()).toBe('helpdesk-user');
      // the password typed is the admin's own, in the answer to their POST: kept too
      expect(await p.page.getByLabel('Password', { exact: true }).inputValue()).toBe('whatever-pw');
      expect(await p.page.getByLabel('Name of the error folder').inputValue()).toBe('Broken mails');
      // nothing was stored
      const list = await cli(env, ['mailbox', 'list']);
      expect(list.out).not.toContain('badbox');
      p.assertClean();
    },
    LONG,
  );

  it(
    'an OAuth mailbox is authorized through the consent window and the page shows the token as valid; a blocked window is said',
    async () => {
      const p = await admin();
      // the consent window talks to the authorization server on its own port: allowed for this page only
      await p.context.route(`${auth.issuer}/**`, (route) => route.continue());
      await p.page.goto(`${url}/mailboxes/new`);
      await p.page.getByLabel('Name', { exact: true }).fill('oauthbox');
      await p.page.getByLabel('Authentication', { exact: true }).selectOption('oauth');
      // the script shows the OAuth fields and hides the password without a reload
      await expect.poll(() => p.page.getByLabel('Client ID').isVisible()).toBe(true);
      expect(await p.page.getByLabel('Password', { exact: true }).isVisible()).toBe(false);
      expect(await p.page.getByLabel('Redirect URL').inputValue()).toBe(`${url}/oauth/callback`);
      await p.page.getByLabel('Server Name / IP Address').fill('localhost');
      await p.page.getByLabel('Port', { exact: true }).fill(String(dovecot.ports.imaps));
      await p.page.getByLabel('CA file (optional)').fill(dovecot.caFile);
      await p.page.getByLabel('Email Address').fill('oauthuser@example.test');
      await p.page.getByLabel('Username').fill('oauthuser');
      await p.page.getByLabel('Client ID').fill('helpdesk');
      await p.page.getByLabel('Client Secret').fill(CLIENT_SECRET);
      await p.page.getByLabel('Authorization URL').fill(auth.authorizationUrl);
      await p.page.getByLabel('Token URL').fill(auth.tokenUrl);
      await p.page.getByLabel('Scope').fill('mail offline_access');
      await submit(p, 'Save', `${url}/mailboxes/oauthbox?done=added`);
      expect(await p.page.locator('#token-state').textContent()).toBe('Not authorized yet');
      expect(await p.page.content()).not.toContain(CLIENT_SECRET);

      const [popup] = await Promise.all([
        p.page.waitForEvent('popup'),
        p.page.getByRole('button', { name: 'Authorize', exact: true }).click(),
      ]);
      await popup.waitForURL(/\/interaction\//);
      await popup.locator('input[name="login"]').fill('oauthuser');
      await popup.locator('input[name="password"]').fill('oauthuser-pw');
      await Promise.all([
        popup.waitForURL(/\/interaction\//),
        popup.getByRole('button', { name: 'Sign in' }).click(),
      ]);
      await Promise.all([
        popup.waitForURL(new RegExp(`^${url}/oauth/callback`)),
        popup.getByRole('button', { name: 'Approve' }).click(),
      ]);
      expect(await popup.locator('h1').textContent()).toBe('Authorized');
      // the mailbox page learns it from the token state
      await expect
        .poll(() => p.page.locator('#token-state').getAttribute('data-status'), { timeout: 30_000 })
        .toBe('authorized');
      expect(await p.page.locator('#token-state').textContent()).toContain('Valid for oauthuser');
      expect(await p.page.locator('#authorize-message').textContent()).toContain('Authorized');
      await popup.close();
      // and so does a fresh page, from the service
      await p.page.goto(`${url}/mailboxes/oauthbox`);
      expect(await p.page.locator('#token-state').textContent()).toContain('Valid for oauthuser');
      p.assertClean();

      // a browser that blocks the window: the page says so and offers a plain link to the consent
      const b = await admin();
      await b.page.addInitScript({ content: 'window.open = () => null;' });
      await b.page.goto(`${url}/mailboxes/oauthbox`);
      await b.page.getByRole('button', { name: 'Authorize', exact: true }).click();
      await expect
        .poll(() => b.page.locator('#authorize-message').textContent())
        .toContain('blocked the consent window');
      const fallback = await b.page.locator('#consent-fallback').getAttribute('href');
      expect(fallback?.startsWith(auth.authorizationUrl)).toBe(true);
      b.assertClean();
    },
    LONG,
  );

  it(
    'without script: Show fields re-renders the form for another connection type, and Authorize goes through a link to the consent and back to the mailbox',
    async () => {
      const context = await browser.browser.newContext({ javaScriptEnabled: false });
      const elsewhere: string[] = [];
      await context.route('**/*', (route) => {
        const target = new URL(route.request().url());
        if (target.origin !== url && target.origin !== auth.issuer) {
          elsewhere.push(target.href);
          return route.abort();
        }
        return route.continue();
      });
      const page = await context.newPage();
      try {
        await signIn({ page } as StrictPage, url, ADMIN.email, ADMIN.password);
        await page.goto(`${url}/mailboxes/new`);
        await page.getByLabel('Name', { exact: true }).fill('graphbox');
        await page.getByLabel('Email Address').fill('graph@example.test');
        await page.getByLabel('Protocol').selectOption('graph');
        expect(await page.getByLabel('Graph Endpoint').isVisible()).toBe(false);
        await Promise.all([
          page.waitForResponse((r) => r.url() === `${url}/mailboxes/new` && r.status() === 200),
          page.getByRole('button', { name: 'Show fields' }).click(),
        ]);
        await page.waitForLoadState();
        expect(await page.getByLabel('Graph Endpoint').isVisible()).toBe(true);
        expect(await page.getByLabel('Graph Endpoint').inputValue()).toBe('https://graph.microsoft.com');
        expect(await page.getByLabel('Server Name / IP Address').isVisible()).toBe(false);
        expect(await page.getByLabel('Client ID').isVisible()).toBe(true);
        expect(await page.getByLabel('Name', { exact: true }).inputValue()).toBe('graphbox');
        expect(await page.getByLabel('Email Address').inputValue()).toBe('graph@example.test');
        expect(await cli(env, ['mailbox', 'list']).then((r) => r.out)).not.toContain('graphbox');

        await page.goto(`${url}/mailboxes/oauthbox`);
        await Promise.all([
          page.waitForURL(`${url}/mailboxes/oauthbox/authorize`),
          page.getByRole('button', { name: 'Authorize', exact: true }).click(),
        ]);
        await Promise.all([
          page.waitForURL(/\/interaction\//),
          page.getByRole('link', { name: "Continue to the provider's sign-in" }).click(),
        ]);
        await page.locator('input[name="login"]').fill('oauthuser');
        await page.locator('input[name="password"]').fill('oauthuser-pw');
        await Promise.all([
          page.waitForURL(/\/interaction\//),
          page.getByRole('button', { name: 'Sign in' }).click(),
        ]);
        await Promise.all([
          page.waitForURL(new RegExp(`^${url}/oauth/callback`)),
          page.getByRole('button', { name: 'Approve' }).click(),
        ]);
        expect(await page.locator('h1').textContent()).toBe('Authorized');
        await Promise.all([
          page.waitForURL(`${url}/mailboxes/oauthbox`),
          page.getByRole('link', { name: 'Back to the mailbox' }).click(),
        ]);
        expect(await page.locator('#token-state').textContent()).toContain('Valid for oauthuser');
        expect(elsewhere).toEqual([]);
      } finally {
        await context.close();
      }
    },
    LONG,
  );

  it(
    'pause and resume from the list; a save under a running fetch asks to pause first and keeps what was typed',
    async () => {
      const file = path.join(fresh.config.dataDir, 'busy.json');
      writeFileSync(
        file,
        JSON.stringify({
          name: 'busy',
          protocol: 'imaps',
          server: 'localhost',
          port: dovecot.ports.imaps,
          username: 'busy',
          password: 'busy-pw',
          emailAddress: 'busy@example.test',
          caFile: dovecot.caFile,
          enabled: false,
        }),
      );
      const added = await cli(env, ['mailbox', 'add', '--file', file]);
      expect(added.code, added.err).toBe(0);

      const p = await admin();
      await p.page.goto(`${url}/mailboxes`);
      const row = p.page.locator('tr[data-mailbox="busy"]');
      expect(await row.locator('td.state').textContent()).toBe('Paused');
      await submit(p, 'Resume busy', `${url}/mailboxes?done=resumed`);
      expect(await row.locator('td.state').textContent()).toMatch(/^Fetching/);
      await submit(p, 'Pause busy', `${url}/mailboxes?done=paused`);
      // a round the resume started may still be running: it ends at its next batch, and the state says so
      await expect
        .poll(
          async () => {
            await p.page.goto(`${url}/mailboxes`);
            return row.locator('td.state').textContent();
          },
          { timeout: 60_000, interval: 500 },
        )
        .toBe('Paused');
      const stored = await store.db
        .selectFrom('mailboxes')
        .select('enabled')
        .where('name', '=', 'busy')
        .executeTakeFirst();
      expect(stored?.enabled).toBe(0);

      // a round of another worker holds the mailbox's lease (as fetch-mailbox.ts takes it)
      const until = new Date(Date.now() + 10 * 60_000).toISOString();
      await store.db
        .updateTable('mailboxes')
        .set({ lease_owner: 'another-worker', lease_until: until, enabled: 1, disabled_reason: null })
        .where('name', '=', 'busy')
        .execute();
      await p.page.goto(`${url}/mailboxes/busy`);
      expect(await p.page.locator('#mailbox-state').textContent()).toBe('Fetching now');
      await p.page.getByLabel('Fetch every (seconds)').fill('30');
      await p.page.getByLabel('Email Address').fill('busy@example.test, alias@example.test');
      // a new password typed now must be the one "Pause fetching and save" stores, not the old one kept
      await p.page.getByLabel('Password', { exact: true }).fill('busy-new-pw');
      const [answer] = await Promise.all([
        p.page.waitForResponse((r) => r.url() === `${url}/mailboxes/busy` && r.request().method() === 'POST'),
        p.page.getByRole('button', { name: 'Save', exact: true }).click(),
      ]);
      expect(answer.status()).toBe(409);
      await p.page.waitForLoadState();
      expect(await p.page.locator('.confirm').textContent()).toContain('being fetched right now');
      expect(await p.page.getByLabel('Fetch every (seconds)').inputValue()).toBe('30');
      expect(await p.page.getByLabel('Email Address').inputValue()).toBe(
        'busy@example.test, alias@example.test',
      );
      // not saved yet
      const before = await store.db
        .selectFrom('mailboxes')
        .select('settings')
        .where('name', '=', 'busy')
        .executeTakeFirst();
      expect(before?.settings).not.toContain('alias@example.test');
      await submit(p, 'Pause fetching and save', `${url}/mailboxes/busy?done=saved-paused`);
      expect(await p.page.getByRole('status').first().textContent()).toContain(
        'fetching is paused until you resume it',
      );
      expect(await p.page.getByLabel('Email Address').inputValue()).toBe(
        'busy@example.test, alias@example.test',
      );
      expect(await p.page.getByLabel('Fetch every (seconds)').inputValue()).toBe('30');
      await store.db
        .updateTable('mailboxes')
        .set({ lease_owner: null, lease_until: null })
        .where('name', '=', 'busy')
        .execute();
      await p.page.goto(`${url}/mailboxes/busy`);
      expect(await p.page.locator('#mailbox-state').textContent()).toContain('Paused (saved during a fetch)');
      // the stored password is the new one: Dovecot refuses it (it knows busy-pw)
      const tested = await cli(env, ['mailbox', 'test', 'busy']);
      expect(tested.code).not.toBe(0);
      expect(tested.out + tested.err).toContain('AUTH_FAILED');

      // removal asks first, then keeps the history under another name
      await Promise.all([
        p.page.waitForURL(`${url}/mailboxes/busy/remove`),
        p.page.getByRole('link', { name: 'Remove this mailbox…' }).click(),
      ]);
      await submit(p, 'Remove busy', `${url}/mailboxes?done=removed`);
      expect(await p.page.locator('tr[data-mailbox="busy"]').count()).toBe(0);
      p.assertClean();
    },
    LONG,
  );

  it(
    'axe finds no serious or critical violation on the list, the new form and an edit page',
    async () => {
      const p = await admin();
      for (const pathname of ['/mailboxes', '/mailboxes/new', '/mailboxes/support', '/mailboxes/oauthbox']) {
        await p.page.goto(`${url}${pathname}`);
        expect(await seriousA11yViolations(p.page), pathname).toEqual([]);
      }
      p.assertClean();
    },
    LONG,
  );

  it(
    'a technician is refused the pages and every form of them (403)',
    async () => {
      const p = await open();
      await signIn(p, url, TECH.email, TECH.password);
      const page = await p.page.goto(`${url}/mailboxes`);
      expect(page?.status()).toBe(403);
      const cookie = (await p.context.cookies()).find((c) => c.name === 'mi_session');
      await p.page.goto(`${url}/requests`);
      const csrf = await p.page.locator('input[name="_csrf"]').first().getAttribute('value');
      const headers = {
        cookie: `mi_session=${cookie?.value}`,
        'content-type': 'application/x-www-form-urlencoded',
      };
      for (const pathname of [
        '/mailboxes',
        '/mailboxes/new',
        '/mailboxes/support',
        '/mailboxes/support/remove',
        '/mailboxes/oauthbox/token-state',
      ]) {
        const r = await fetch(`${url}${pathname}`, { headers, redirect: 'manual' });
        expect(r.status, pathname).toBe(403);
      }
      const body = new URLSearchParams({
        _csrf: csrf ?? '',
        name: 'support',
        enabled: '0',
        format: 'json',
      }).toString();
      for (const pathname of [
        '/mailboxes/new',
        '/mailboxes/support',
        '/mailboxes/support/enabled',
        '/mailboxes/support/test',
        '/mailboxes/oauthbox/authorize',
        '/mailboxes/support/remove',
      ]) {
        const r = await fetch(`${url}${pathname}`, { method: 'POST', headers, body, redirect: 'manual' });
        expect(r.status, pathname).toBe(403);
      }
      // nothing changed
      const show = await cli(env, ['mailbox', 'list']);
      expect(show.out).toContain('support');
      p.assertClean();
    },
    LONG,
  );
});
