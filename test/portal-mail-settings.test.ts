import { writeFile } from 'node:fs/promises';
import path from 'node:path';
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

/**
 * A portal's mail settings (form senders, CC participants, acknowledgement, per-sender limit) through the three
 * doors, on both engines: the console form marks each bad field beside it and keeps the input, the API answers
 * INVALID_SETTINGS naming each field, the CLI says the same; what is saved reads back the same everywhere.
 */
const ADMIN = { email: 'mail-admin@example.org', password: 'a long admin passphrase' };

let browser: TestBrowser;
beforeAll(async () => {
  browser = await startBrowser();
}, 60_000);
afterAll(async () => browser?.close());

describe.each(ENGINES)('portal mail settings (%s)', (engine) => {
  let fresh: Awaited<ReturnType<typeof freshConfig>>;
  let server: Awaited<ReturnType<typeof serve>>;
  let env: NodeJS.ProcessEnv;
  let url: string;
  let apiKey: string;
  let admin: StrictPage;

  const run = (args: string[], stdin = '') => cli(env, args, stdin);
  const show = async () =>
    JSON.parse((await run(['portal', 'show', 'default', '--json'])).out) as {
      mailSettings: {
        formSenders: string[];
        ccParticipants: boolean;
        acknowledgement: { enabled: boolean; subject: string; body: string; perSenderPerHour: number };
        rateLimit: { maxRequests: number; windowMinutes: number };
      };
    };

  beforeAll(async () => {
    fresh = await freshConfig(engine);
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    env = { ...process.env, ...fresh.env, MAILINTAKE_PORT: String(port), MAILINTAKE_PUBLIC_URL: url };
    expect(
      (await run(['user', 'create', '--email', ADMIN.email, '--role', 'admin'], `${ADMIN.password}\n`)).code,
    ).toBe(0);
    const key = await run(['apikey', 'create', 'settings-test', '--json']);
    expect(key.code, key.err).toBe(0);
    apiKey = (JSON.parse(key.out) as { key: string }).key;
    server = await serve(env);
    admin = await strictPage(browser, url);
    await signIn(admin, url, ADMIN.email, ADMIN.password);
  }, 180_000);
  afterAll(async () => {
    await admin?.context.close();
    await server?.stop();
    await fresh?.cleanup();
  });

  it('the console form: bad values are marked beside their fields with the input kept; a good save reads back in the CLI', async () => {
    const p = admin;
    await p.page.goto(`${url}/settings/portals/default`);
    await p.page.getByLabel('Form and no-reply senders').fill('no-reply@forms.example, not an address');
    await p.page.getByLabel('Mail the requester when a mail opens a request').check();
    await p.page.getByLabel('Subject', { exact: true }).fill('Thanks {{name}}');
    await p.page.getByLabel('New requests one sender may open').fill('-3');
    const [bad] = await Promise.all([
      p.page.waitForResponse(
        (r) => r.url() === `${url}/settings/portals/default/mail` && r.request().method() === 'POST',
      ),
      p.page.getByRole('button', { name: 'Save mail settings' }).click(),
    ]);
    expect(bad.status()).toBe(400);
    const errorOf = (id: string) => p.page.locator(`[id="f-${id}-error"]`).textContent();
    expect(await errorOf('acknowledgement.subject')).toBe(
      'unknown placeholder {{name}}; use {{id}}, {{subject}}, {{requester}}',
    );
    expect(await errorOf('formSenders')).toContain('*@domain');
    expect(await errorOf('rateLimit.maxRequests')).toContain('at least 0');
    expect(await p.page.getByLabel('Subject', { exact: true }).getAttribute('aria-invalid')).toBe('true');
    expect(await p.page.getByLabel('Subject', { exact: true }).inputValue()).toBe('Thanks {{name}}');
    expect(await p.page.getByLabel('Mail the requester when a mail opens a request').isChecked()).toBe(true);
    expect(await seriousA11yViolations(p.page)).toEqual([]);
    // nothing saved
    expect((await show()).mailSettings.acknowledgement.enabled).toBe(false);

    await p.page.getByLabel('Form and no-reply senders').fill('no-reply@forms.example, *@typeform.example');
    await p.page.getByLabel('Subject', { exact: true }).fill('Thanks, {{requester}}: {{subject}}');
    await p.page.getByLabel('New requests one sender may open').fill('7');
    await p.page
      .getByLabel('People in CC become participants of the request (our own addresses and aliases never do)')
      .uncheck();
    await Promise.all([
      p.page.waitForURL(`${url}/settings/portals/default?saved=mail+settings`),
      p.page.getByRole('button', { name: 'Save mail settings' }).click(),
    ]);
    const saved = (await show()).mailSettings;
    expect(saved).toMatchObject({
      formSenders: ['no-reply@forms.example', '*@typeform.example'],
      ccParticipants: false,
      acknowledgement: { enabled: true, subject: 'Thanks, {{requester}}: {{subject}}', perSenderPerHour: 5 },
      rateLimit: { maxRequests: 7, windowMinutes: 60 },
    });
    // the body left as shown keeps following the default: saving the form again changes nothing
    const before = JSON.stringify(saved);
    await Promise.all([
      p.page.waitForURL(`${url}/settings/portals/default?saved=mail+settings`),
      p.page.getByRole('button', { name: 'Save mail settings' }).click(),
    ]);
    expect(JSON.stringify((await show()).mailSettings)).toBe(before);
    p.assertClean();
  });

  it('the API and the CLI name each bad field; null restores a default', async () => {
    const patch = (body: unknown) =>
      fetch(`${url}/api/v1/portals/default`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const bad = await patch({
      mailSettings: {
        acknowledgement: { body: 'Hello {{who}}', perSenderPerHour: 'many' },
        rateLimit: { windowMinutes: 0 },
      },
    });
    expect(bad.status).toBe(400);
    const answer = (await bad.json()) as {
      error: string;
      details: { fields: { field: string; message: string }[] };
    };
    expect(answer.error).toBe('INVALID_SETTINGS');
    expect(answer.details.fields.map((f) => f.field).sort()).toEqual([
      'acknowledgement.body',
      'acknowledgement.perSenderPerHour',
      'rateLimit.windowMinutes',
    ]);
    expect(answer.details.fields.find((f) => f.field === 'acknowledgement.body')!.message).toBe(
      'unknown placeholder {{who}}; use {{id}}, {{subject}}, {{requester}}',
    );

    const good = await patch({ mailSettings: { rateLimit: null, acknowledgement: { subject: null } } });
    expect(good.status).toBe(200);
    const view = (await good.json()) as Awaited<ReturnType<typeof show>>;
    expect(view.mailSettings.rateLimit).toEqual({ maxRequests: 20, windowMinutes: 60 });
    expect(view.mailSettings.acknowledgement).toMatchObject({
      enabled: true,
      subject: 'We received your request ##{{id}}##: {{subject}}',
    });

    const file = path.join(fresh.config.dataDir, 'mail.json');
    await writeFile(file, JSON.stringify({ ccParticipants: 'sometimes', formSenders: ['@nowhere'] }));
    const cliBad = await run(['portal', 'set', 'default', '--mail-settings', file]);
    expect(cliBad.code).not.toBe(0);
    expect(cliBad.err).toContain('INVALID_SETTINGS');
    expect(cliBad.err).toContain('ccParticipants');
    expect(cliBad.err).toContain('formSenders');
    await writeFile(file, JSON.stringify({ ccParticipants: null, acknowledgement: { enabled: false } }));
    const cliGood = await run(['portal', 'set', 'default', '--mail-settings', file]);
    expect(cliGood.code, cliGood.err).toBe(0);
    expect(cliGood.out).toContain('CC participants');
    expect((await show()).mailSettings).toMatchObject({
      ccParticipants: true,
      acknowledgement: { enabled: false },
    });
  });
});
