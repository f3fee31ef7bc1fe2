import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSecretBox } from '../src/kernel/secret-box.js';
import { openStore, type Store } from '../src/store/db.js';
import { runConsent } from './support/consent.js';
import { ENGINES } from './support/engines.js';
import { type OAuthHarness, startOAuthHarness } from './support/oauth-harness.js';
import { type SmtpTestServer, startSmtpServer } from './support/smtp.js';

/**
 * A portal's own outgoing SMTP server with OAuth 2.0 (SASL XOAUTH2), next to the instance's, on both engines,
 * against the real authorization server (oidc-provider, test/support/oauth-server.ts) with a consent driven like
 * a browser that lands on Mailintake's own /oauth/callback, and two real SMTP servers that accept only a token
 * the authorization server issued for the very user who logs in. What must hold: the portal's consent keeps its
 * tokens under the portal's own owner (smtp:portal:<id>), never the instance's ('smtp'); its test mail logs in
 * as its username; and changing or removing the portal's OAuth settings discards its tokens alone.
 */
const USERS = ['alice', 'bob'];
const SECRET = 'portal-smtp-oauth-secret-3c81';
const SHORT_SECRET = 'portal-smtp-oauth-short-77d0';
const SCOPE = 'mail offline_access';

describe.each(ENGINES)('a portal’s own outgoing SMTP server with OAuth on %s', (engine) => {
  let h: OAuthHarness;
  let instanceSmtp: SmtpTestServer;
  let portalSmtp: SmtpTestServer;
  /** The test's own handle on the database, to see whose tokens are stored. */
  let store: Store;
  let portalOwner: string;

  /** An SMTP server that accepts only a live token issued for the user who logs in. */
  const xoauth2Server = () =>
    startSmtpServer({
      xoauth2: async (user, token) => {
        const t = await h.auth.introspect(token);
        return t.active && `${t.sub}@example.test` === user;
      },
    });

  beforeAll(async () => {
    h = await startOAuthHarness(engine, {
      users: USERS,
      secrets: { helpdesk: SECRET, short: SHORT_SECRET },
      scope: SCOPE,
    });
    instanceSmtp = await xoauth2Server();
    portalSmtp = await xoauth2Server();
    store = await openStore({ databaseUrl: h.config.databaseUrl, dataDir: h.config.dataDir });
    const added = await h.api('POST', '/api/v1/portals', { name: 'sales' });
    expect(added.status).toBe(201);
    portalOwner = `smtp:portal:${added.json.id}`;
  });
  afterAll(async () => {
    await store?.close();
    await instanceSmtp?.close();
    await portalSmtp?.close();
    await h?.close();
  });

  const settings = (server: SmtpTestServer, user: string, oauth: Record<string, unknown> = {}) => ({
    host: 'localhost',
    port: server.port,
    username: `${user}@example.test`,
    from: `Desk <${user}@example.test>`,
    caFile: server.caFile,
    oauth: {
      clientId: 'helpdesk',
      clientSecret: SECRET,
      authorizationUrl: h.auth.authorizationUrl,
      tokenUrl: h.auth.tokenUrl,
      scope: SCOPE,
      ...oauth,
    },
  });

  /** The owners Mailintake keeps tokens for, sorted. */
  const owners = async () =>
    (await store.db.selectFrom('oauth_tokens').select('owner').orderBy('owner').execute()).map(
      (r) => r.owner,
    );
  /** The stored row of an owner (the account it was consented by, and its sealed tokens). */
  const tokensOf = (owner: string) =>
    store.db.selectFrom('oauth_tokens').selectAll().where('owner', '=', owner).executeTakeFirst();

  /** Signs in at the provider as `user` for the consent `authorizationUrl` starts; Mailintake's page answers. */
  const consent = async (authorizationUrl: string, user: string) => {
    const page = await runConsent(authorizationUrl, {
      user,
      password: `${user}-pw`,
      decision: 'approve',
      followCallback: true,
    });
    if (page.providerError) throw new Error(page.providerError.body);
    h.transcript.push(page.body ?? '');
    return page;
  };

  it('the instance’s server is authorized first, under its own owner', async () => {
    expect((await h.api('PUT', '/api/v1/settings/smtp', settings(instanceSmtp, 'alice'))).status).toBe(200);
    const started = await h.cli(['smtp', 'authorize', '--json']);
    expect(started.code).toBe(0);
    const page = await consent(JSON.parse(started.stdout).authorizationUrl, 'alice');
    expect(page.status).toBe(200);
    expect(await owners()).toEqual(['smtp']);
  });

  it('the portal’s consent stores its tokens under the portal’s owner, and its test mail logs in with XOAUTH2 as its username', async () => {
    const saved = await h.api('PUT', '/api/v1/portals/sales/smtp', settings(portalSmtp, 'bob'));
    expect(saved.status).toBe(200);
    expect(saved.json).toMatchObject({
      inEffect: 'portal',
      own: {
        auth: 'oauth2',
        passwordSet: false,
        username: 'bob@example.test',
        oauth: { clientSecretSet: true },
      },
    });
    const shown = await h.cli(['portal', 'smtp', 'show', 'sales']);
    expect(shown.stdout).toContain(
      'login:    OAuth 2.0 XOAUTH2 (generic, client helpdesk, scope "mail offline_access"); authorize with: mailintake portal smtp authorize sales',
    );
    // not authorized yet: its token state and its test mail say so (the instance's tokens are not used)
    expect((await h.api('GET', '/api/v1/portals/sales/smtp/oauth')).json).toMatchObject({
      status: 'not-authorized',
    });
    const early = await h.api('POST', '/api/v1/portals/sales/smtp/test', { to: 'someone@example.test' });
    expect(early.json).toMatchObject({ error: 'OAUTH_NOT_AUTHORIZED' });
    expect(String(early.json.message)).toContain('mailintake portal smtp authorize sales');
    expect(instanceSmtp.logins.filter((l) => l.user === 'bob@example.test')).toEqual([]);

    const started = await h.api('POST', '/api/v1/portals/sales/smtp/oauth/authorize');
    expect(started.status).toBe(200);
    const page = await consent(String(started.json.authorizationUrl), 'bob');
    expect(page.status).toBe(200);
    expect(page.body).toContain(
      'The outgoing SMTP server of portal sales is authorized for <code>bob@example.test</code>',
    );
    expect(await owners()).toEqual(['smtp', portalOwner].sort());
    expect((await tokensOf(portalOwner))?.account).toBe('bob@example.test');
    expect((await tokensOf('smtp'))?.account).toBe('alice@example.test');

    const sent = await h.cli(['portal', 'smtp', 'test', 'sales', '--to', 'someone@example.test']);
    expect(sent.code).toBe(0);
    expect(sent.stdout).toContain("accepted by the portal's own server");
    const [mail] = await portalSmtp.waitFor(1);
    expect(mail).toMatchObject({ user: 'bob@example.test', secure: true, to: ['someone@example.test'] });
    expect(portalSmtp.logins).toContainEqual({ method: 'XOAUTH2', user: 'bob@example.test', accepted: true });
    expect(portalSmtp.logins.filter((l) => !l.accepted)).toEqual([]);
    const status = await h.cli(['portal', 'smtp', 'oauth', 'sales']);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/status:\s+authorized/);
    expect(status.stdout).toContain('bob@example.test');

    // the instance's server still logs in as its own account
    expect((await h.cli(['smtp', 'test', '--to', 'someone@example.test'])).code).toBe(0);
    const [instanceMail] = await instanceSmtp.waitFor(1);
    expect(instanceMail).toMatchObject({ user: 'alice@example.test' });
  });

  it('a consent for the portal’s server by another account is refused and stores nothing', async () => {
    const before = await tokensOf(portalOwner);
    const started = await h.api('POST', '/api/v1/portals/sales/smtp/oauth/authorize');
    const page = await consent(String(started.json.authorizationUrl), 'alice');
    expect(page.status).not.toBe(200);
    // bob's tokens stay, and nothing of alice's went under the portal's owner
    expect(await tokensOf(portalOwner)).toEqual(before);
    expect(await owners()).toEqual(['smtp', portalOwner].sort());
  });

  it('changing the portal’s OAuth settings discards only its tokens; the instance’s stay', async () => {
    const instanceBefore = await tokensOf('smtp');
    const changed = await h.api(
      'PUT',
      '/api/v1/portals/sales/smtp',
      settings(portalSmtp, 'bob', { scope: 'mail email offline_access' }),
    );
    expect(changed.status).toBe(200);
    expect(await owners()).toEqual(['smtp']);
    expect(await tokensOf('smtp')).toEqual(instanceBefore);
    expect((await h.api('GET', '/api/v1/portals/sales/smtp/oauth')).json).toMatchObject({
      status: 'not-authorized',
    });
    expect((await h.api('GET', '/api/v1/settings/smtp/oauth')).json).toMatchObject({ status: 'authorized' });
    const log = await h.rt.services.systemLog.list({ category: 'oauth' });
    expect(log.items[0]!.message).toBe(
      'the outgoing SMTP server of portal sales: OAuth settings changed; its tokens were discarded, authorize it again',
    );
  });

  it('removing the portal’s server discards only its tokens; the instance’s stay and still send', async () => {
    // authorized again, under the new scope, from the CLI: the browser cannot reach the service, so the admin
    // pastes the address it landed on
    const started = await h.cli(['portal', 'smtp', 'authorize', 'sales', '--json']);
    expect(started.code).toBe(0);
    const landed = await runConsent(JSON.parse(started.stdout).authorizationUrl, {
      user: 'bob',
      password: 'bob-pw',
      decision: 'approve',
    });
    if (landed.providerError) throw new Error(landed.providerError.body);
    const done = await h.cli(['oauth', 'complete', landed.callbackUrl]);
    expect(done.code).toBe(0);
    expect(done.stdout).toContain(
      'The outgoing SMTP server of portal sales authorized for bob@example.test.',
    );
    expect((await tokensOf(portalOwner))?.scope).toBe('mail email offline_access');
    expect(await owners()).toEqual(['smtp', portalOwner].sort());
    const instanceBefore = await tokensOf('smtp');

    const cleared = await h.api('DELETE', '/api/v1/portals/sales/smtp');
    expect(cleared.json).toMatchObject({ inEffect: 'instance', own: null });
    expect(await owners()).toEqual(['smtp']);
    expect(await tokensOf('smtp')).toEqual(instanceBefore);
    // its token state cannot be asked any more: it has no OAuth settings
    const gone = await h.api('GET', '/api/v1/portals/sales/smtp/oauth');
    expect(gone.status).toBe(400);
    expect(gone.json).toMatchObject({
      error: 'INVALID_SETTINGS',
      details: { fields: [{ field: 'oauth', message: 'not set' }] },
    });
    // the message names the portal's server, not the instance's (which does use OAuth)
    expect(gone.json.message).toBe(
      'the outgoing SMTP server of portal sales does not use OAuth; set "oauth" and "username" in its settings first',
    );
    const cli = await h.cli(['portal', 'smtp', 'authorize', 'sales']);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(
      /^error INVALID_SETTINGS: the outgoing SMTP server of portal sales does not use OAuth/,
    );

    const instanceMails = instanceSmtp.mails.length;
    const sent = await h.api('POST', '/api/v1/portals/sales/smtp/test', { to: 'someone@example.test' });
    expect(sent.json).toMatchObject({ ok: true, through: 'instance' });
    const mails = await instanceSmtp.waitFor(instanceMails + 1);
    expect(mails[instanceMails]).toMatchObject({ user: 'alice@example.test' });
  });

  it('never showed a secret or a token', async () => {
    const box = loadSecretBox({ secretKey: h.config.secretKey, dataDir: h.config.dataDir });
    const tokens = (await store.db.selectFrom('oauth_tokens').select('sealed').execute()).map(
      (r) => JSON.parse(box.open(r.sealed)) as { accessToken: string; refreshToken?: string },
    );
    await h.api('GET', '/api/v1/system-log?limit=1000');
    const secrets = [SECRET, ...tokens.flatMap((t) => [t.accessToken, t.refreshToken ?? ''])].filter(Boolean);
    expect(secrets.length).toBeGreaterThan(2);
    const all = h.transcript.join('\n');
    expect(all.length).toBeGreaterThan(5_000);
    for (const s of secrets)
      expect(all.includes(s), `a secret of ${s.length} characters was shown`).toBe(false);
  });
});
