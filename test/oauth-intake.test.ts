import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { type ServerType, serve } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApi } from '../src/api/app.js';
import { createLogger } from '../src/logger.js';
import type { Runtime } from '../src/runtime.js';
import { openRuntime } from '../src/runtime.js';
import { loadSecretBox } from '../src/security/secret-box.js';
import { openStore, type Store } from '../src/store/db.js';
import { cliRunner } from './support/cli.js';
import { runConsent } from './support/consent.js';
import { deliverMaildir, listInbox } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';
import { buildMail } from './support/mails.js';
import { type OAuthTestServer, startOAuthServer } from './support/oauth-server.js';
import { startSmtpServer } from './support/smtp.js';

/**
 * OAuth 2.0 end to end, against real servers: oidc-provider (a real login and consent page, PKCE, rotating
 * refresh tokens, introspection, revocation) and Dovecot validating every token at its introspection endpoint.
 * The consent is driven like a browser (test/support/consent.ts) and lands on Mailintake's own /oauth/callback
 * served by the real API on loopback. Nothing is stubbed between Mailintake and the two servers.
 */
const USERS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan'];
const SECRET = 'helpdesk-secret-7f3a9c';
const SHORT_SECRET = 'short-secret-91b2e4';
const SCOPE = 'mail offline_access';

/** Polls an asynchronous condition the servers answer (never a bare sleep), bounded. */
async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

describe.each(ENGINES)('OAuth 2.0 with a real authorization server and Dovecot on %s', (engine) => {
  let auth: OAuthTestServer;
  let dovecot: DovecotServer; // offers OAUTHBEARER and XOAUTH2
  let dovecotX: DovecotServer; // offers XOAUTH2 only
  let rt: Runtime;
  let http: ServerType;
  let base: string;
  let store: Store;
  let openSealed: (sealed: string) => string;
  let cleanup: () => Promise<void>;
  let env: Record<string, string>;
  let config: Awaited<ReturnType<typeof freshConfig>>['config'];
  /** Everything Mailintake said: log lines, API answers and pages, CLI output. Checked for secrets at the end. */
  const transcript: string[] = [];
  const cli = cliRunner(() => env, transcript);

  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    transcript.push(text);
    return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  };
  let apiKey: string;

  const mailbox = (
    name: string,
    user: string,
    protocol: 'imaps' | 'imap' | 'pops' | 'pop',
    server: DovecotServer,
    oauth: Record<string, unknown> = {},
  ) => ({
    name,
    protocol,
    server: 'localhost',
    port: {
      imaps: server.ports.imaps,
      imap: server.ports.imap,
      pops: server.ports.pop3s,
      pop: server.ports.pop3,
    }[protocol],
    username: user,
    emailAddress: `${user}@example.test`,
    caFile: server.caFile,
    idle: false,
    oauth: {
      provider: 'generic',
      clientId: 'helpdesk',
      clientSecret: SECRET,
      authorizationUrl: auth.authorizationUrl,
      tokenUrl: auth.tokenUrl,
      scope: SCOPE,
      ...oauth,
    },
  });

  /** Starts the consent through the API and signs in at the provider as `user`; the browser lands on our page. */
  const consent = async (name: string, user: string, decision: 'approve' | 'deny' = 'approve') => {
    const started = await api('POST', `/api/v1/mailboxes/${name}/oauth/authorize`);
    expect(started.status).toBe(200);
    const result = await runConsent(String(started.json.authorizationUrl), {
      user,
      password: `${user}-pw`,
      decision,
      followCallback: true,
    });
    if (result.providerError) throw new Error(`provider error page: ${result.providerError.body}`);
    transcript.push(result.body ?? '');
    return { status: result.status, body: result.body ?? '', callbackUrl: result.callbackUrl };
  };

  /** The tokens Mailintake stored for a mailbox, opened with its key (the test's view into the sealed row). */
  const storedTokens = async (name: string) => {
    const { id } = (await rt.services.mailboxes.get(name)) as { id: number };
    const row = await store.db
      .selectFrom('oauth_tokens')
      .selectAll()
      .where('owner', '=', `mailbox:${id}`)
      .executeTakeFirstOrThrow();
    return JSON.parse(openSealed(row.sealed)) as { accessToken: string; refreshToken?: string };
  };

  beforeAll(async () => {
    const users = USERS.map((name) => ({ name, password: `${name}-pw` }));
    auth = await startOAuthServer({ users });
    dovecot = await startDovecot({ users, oauth: { introspectionUrl: auth.dovecot.introspectionUrl } });
    dovecotX = await startDovecot({
      users,
      oauth: { introspectionUrl: auth.dovecot.introspectionUrl, mechanisms: ['xoauth2'] },
    });
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const fresh = await freshConfig(engine, { MAILINTAKE_PUBLIC_URL: base });
    cleanup = fresh.cleanup;
    env = fresh.env;
    config = fresh.config;
    const redirect = `${base}/oauth/callback`;
    await auth.addClient({ clientId: 'helpdesk', clientSecret: SECRET, redirectUris: [redirect] });
    // tokens of this client live 2 s: every round after that needs a refresh
    await auth.addClient({
      clientId: 'helpdesk-short',
      clientSecret: SHORT_SECRET,
      redirectUris: [redirect],
      accessTokenTtlSeconds: 2,
    });
    // registered with another redirect URL than Mailintake's
    await auth.addClient({
      clientId: 'elsewhere',
      clientSecret: SECRET,
      redirectUris: ['https://helpdesk.example.test/oauth/callback'],
    });
    rt = await openRuntime(fresh.config, {
      logger: createLogger('debug', (line) => {
        transcript.push(line);
      }),
    });
    const app = createApi(rt.services, {
      logger: { error: (m, f) => transcript.push(m, JSON.stringify(f)) },
    });
    http = serve({ fetch: app.fetch, port, hostname: '127.0.0.1' });
    apiKey = (await rt.services.apiKeys.create('oauth-test')).key;
    store = await openStore({ databaseUrl: fresh.config.databaseUrl, dataDir: fresh.config.dataDir });
    const box = loadSecretBox({ secretKey: fresh.config.secretKey, dataDir: fresh.config.dataDir });
    openSealed = (s) => box.open(s);
  });
  afterAll(async () => {
    await new Promise((r) => http?.close(r));
    await rt?.close();
    await store?.close();
    await dovecot?.stop();
    await dovecotX?.stop();
    await auth?.close();
    await cleanup?.();
  });

  it('consent through the redirect URL, then IMAPS, IMAP+STARTTLS, POP3S and POP3+STLS fetch with OAUTHBEARER and XOAUTH2', async () => {
    const boxes = [
      mailbox('o-imaps', 'alice', 'imaps', dovecot),
      mailbox('o-imap', 'bob', 'imap', dovecot),
      mailbox('o-pops', 'carol', 'pops', dovecot),
      mailbox('o-pop', 'dave', 'pop', dovecot),
      mailbox('x-imaps', 'erin', 'imaps', dovecotX),
      mailbox('x-pop', 'frank', 'pop', dovecotX),
    ];
    for (const b of boxes) {
      const added = await api('POST', '/api/v1/mailboxes', b);
      expect(added.status).toBe(201);
      expect(added.json).toMatchObject({
        auth: 'oauth2',
        passwordSet: false,
        oauth: {
          clientSecretSet: true,
          redirectUrl: `${base}/oauth/callback`,
          tokens: { status: 'not-authorized' },
        },
      });
    }
    // not authorized yet: a coded failure of that mailbox, nothing else
    const [before] = await rt.services.fetch.once({ mailbox: 'o-imaps' });
    expect(before?.error?.code).toBe('OAUTH_NOT_AUTHORIZED');

    for (const b of boxes) {
      const page = await consent(b.name, b.username);
      expect(page.status).toBe(200);
      expect(page.body).toContain('data-outcome="authorized"');
      expect(page.body).toContain(`for <code>${b.username}</code>`);
      const server = b.name.startsWith('x-') ? dovecotX : dovecot;
      await deliverMaildir(server, b.username, [
        buildMail({ messageId: `${b.name}-1@oauth.test`, subject: `Printer on fire (${b.name})` }),
      ]);
    }
    // the authorization request carried PKCE S256 and the state, as the provider saw it
    for (const r of auth.authorizationRequests.filter((x) => x.clientId === 'helpdesk')) {
      expect(r).toMatchObject({
        codeChallengeMethod: 'S256',
        scope: SCOPE,
        redirectUri: `${base}/oauth/callback`,
      });
      expect(r.state).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    }
    const rounds = await rt.services.fetch.once({});
    for (const b of boxes) {
      const s = rounds.find((r) => r.mailbox === b.name);
      expect(s, b.name).toMatchObject({ reached: true, fetched: 1, created: 1, error: null });
    }
    // IMAP marks read, POP3 deletes: the mail was taken in once, through the OAuth login
    expect(await listInbox(dovecot, 'carol')).toEqual([]);
    // which SASL mechanism each login used, as Dovecot logged it
    const logOf = async (d: DovecotServer) => readFile(`${d.dir}/dovecot.log`, 'utf8');
    expect(await logOf(dovecot)).toMatch(/Login: user=<alice>, method=OAUTHBEARER/);
    expect(await logOf(dovecot)).toMatch(/Login: user=<carol>, method=OAUTHBEARER/);
    expect(await logOf(dovecotX)).toMatch(/Login: user=<erin>, method=XOAUTH2/);
    expect(await logOf(dovecotX)).toMatch(/Login: user=<frank>, method=XOAUTH2/);

    const state = await api('GET', '/api/v1/mailboxes/o-imaps/oauth');
    expect(state.json).toMatchObject({
      status: 'authorized',
      account: 'alice',
      refreshTokenSet: true,
      lastError: null,
      pending: null,
    });
    const shown = await cli(['mailbox', 'oauth', 'o-pop']);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/status:\s+authorized/);
    expect(shown.stdout).toMatch(/refresh token:\s+stored \(never shown\)/);
  });

  it('refreshes an expired access token with the scope, saves each rotated refresh token at once, and goes on fetching', async () => {
    await api(
      'POST',
      '/api/v1/mailboxes',
      mailbox('short', 'grace', 'imaps', dovecot, { clientId: 'helpdesk-short', clientSecret: SHORT_SECRET }),
    );
    expect((await consent('short', 'grace')).status).toBe(200);
    for (let round = 1; round <= 3; round++) {
      const { accessToken } = await storedTokens('short');
      // the provider itself says the token has expired (2 s lifetime): wait for that, not for a clock
      await waitFor(
        'the access token to expire at the provider',
        async () => !(await auth.introspect(accessToken)).active,
      );
      await deliverMaildir(dovecot, 'grace', [
        buildMail({ messageId: `short-${round}@oauth.test`, subject: `Round ${round}` }),
      ]);
      const [s] = await rt.services.fetch.once({ mailbox: 'short' });
      expect(s, `round ${round}`).toMatchObject({ reached: true, created: 1, error: null });
      expect((await storedTokens('short')).accessToken).not.toBe(accessToken);
    }
    const refreshes = auth.tokenRequests.filter(
      (r) => r.clientId === 'helpdesk-short' && r.grantType === 'refresh_token',
    );
    // oidc-provider rotates refresh tokens and revokes the grant when one is used twice: three successful
    // refreshes in a row prove each rotated token was saved before the next one was needed
    expect(refreshes).toHaveLength(3);
    for (const r of refreshes) expect(r).toMatchObject({ status: 200, scope: SCOPE, error: undefined });
    expect((await rt.services.oauth.status('short')).refreshCount).toBe(3);
  });

  it('a revoked refresh token stops that mailbox alone with OAUTH_REAUTHORIZE_REQUIRED, counted as a connection failure, until authorized again', async () => {
    for (const [name, user] of [
      ['rev-a', 'heidi'],
      ['rev-b', 'ivan'],
    ] as const) {
      await api(
        'POST',
        '/api/v1/mailboxes',
        mailbox(name, user, 'imaps', dovecot, { clientId: 'helpdesk-short', clientSecret: SHORT_SECRET }),
      );
      expect((await consent(name, user)).status).toBe(200);
    }
    const a = await storedTokens('rev-a');
    // the user (or an admin at the provider) revokes Mailintake's access
    await auth.revoke(a.refreshToken!);
    await waitFor(
      'the access token to be inactive',
      async () => !(await auth.introspect(a.accessToken)).active,
    );
    const b = await storedTokens('rev-b');
    await waitFor("rev-b's token to expire", async () => !(await auth.introspect(b.accessToken)).active);
    await deliverMaildir(dovecot, 'ivan', [
      buildMail({ messageId: 'rev-b-1@oauth.test', subject: 'Still here' }),
    ]);

    const rounds = await rt.services.fetch.once({});
    const ra = rounds.find((r) => r.mailbox === 'rev-a');
    const rb = rounds.find((r) => r.mailbox === 'rev-b');
    expect(ra?.error?.code).toBe('OAUTH_REAUTHORIZE_REQUIRED');
    expect(rb).toMatchObject({ reached: true, created: 1, error: null });
    const viewA = await api('GET', '/api/v1/mailboxes/rev-a');
    expect(viewA.json).toMatchObject({
      state: { lastErrorCode: 'OAUTH_REAUTHORIZE_REQUIRED', consecutiveFailures: 1 },
      oauth: {
        tokens: { status: 'reauthorize-required', lastError: { code: 'OAUTH_REAUTHORIZE_REQUIRED' } },
      },
    });
    // the next round fails at once, without asking the provider again
    const asked = auth.tokenRequests.length;
    const [again] = await rt.services.fetch.once({ mailbox: 'rev-a' });
    expect(again?.error?.code).toBe('OAUTH_REAUTHORIZE_REQUIRED');
    expect(auth.tokenRequests.length).toBe(asked);
    expect((await rt.services.mailboxes.get('rev-a')).state.consecutiveFailures).toBe(2);

    // authorizing again heals it
    expect((await consent('rev-a', 'heidi')).status).toBe(200);
    await deliverMaildir(dovecot, 'heidi', [buildMail({ messageId: 'rev-a-1@oauth.test', subject: 'Back' })]);
    const [healed] = await rt.services.fetch.once({ mailbox: 'rev-a' });
    expect(healed).toMatchObject({ reached: true, created: 1, error: null });
    expect((await rt.services.mailboxes.get('rev-a')).state.consecutiveFailures).toBe(0);
  });

  it('two processes that need a fresh token at once refresh it once (a second use of a rotated refresh token would end the grant)', async () => {
    const second = await openRuntime(config);
    try {
      await api(
        'POST',
        '/api/v1/mailboxes',
        mailbox('twice', 'carol', 'imaps', dovecot, {
          clientId: 'helpdesk-short',
          clientSecret: SHORT_SECRET,
        }),
      );
      expect((await consent('twice', 'carol')).status).toBe(200);
      const { accessToken } = await storedTokens('twice');
      await waitFor('the access token to expire', async () => !(await auth.introspect(accessToken)).active);
      const asked = auth.tokenRequests.filter((r) => r.grantType === 'refresh_token').length;
      // "fetch a sample mail" in both processes at the same moment: each logs in with a token
      const [one, two] = await Promise.all([
        rt.services.mailboxes.test('twice'),
        second.services.mailboxes.test('twice'),
      ]);
      expect(one.ok && two.ok).toBe(true);
      expect(auth.tokenRequests.filter((r) => r.grantType === 'refresh_token').length).toBe(asked + 1);
      expect((await rt.services.oauth.status('twice')).status).toBe('authorized');
    } finally {
      await second.close();
    }
  });

  it('refuses the consent of another account, a refused consent, a wrong client secret and an unregistered redirect URL, each saying what to fix', async () => {
    await api('POST', '/api/v1/mailboxes', mailbox('who', 'alice', 'imaps', dovecotX));
    // bob signs in for alice's mailbox: Dovecot refuses bob's token for alice, nothing is stored
    const other = await consent('who', 'bob');
    expect(other.status).toBe(400);
    expect(other.body).toContain('OAUTH_CONSENT_FAILED');
    expect(other.body).toMatch(/sign in as &quot;alice&quot;/);
    expect((await rt.services.oauth.status('who')).status).toBe('not-authorized');

    const denied = await consent('who', 'alice', 'deny');
    expect(denied.status).toBe(400);
    expect(denied.body).toMatch(/consent was refused at the provider \(access_denied/);

    // the same callback again: one use only
    const replay = await fetch(other.callbackUrl!);
    const replayBody = await replay.text();
    transcript.push(replayBody);
    expect(replay.status).toBe(400);
    expect(replayBody).toMatch(/used already/);

    await api('PUT', '/api/v1/mailboxes/who', {
      ...mailbox('who', 'alice', 'imaps', dovecotX),
      oauth: { ...mailbox('who', 'alice', 'imaps', dovecotX).oauth, clientSecret: 'not-the-secret' },
    });
    const wrongSecret = await consent('who', 'alice');
    expect(wrongSecret.status).toBe(400);
    expect(wrongSecret.body).toMatch(/refused the app&#39;s credentials \(invalid_client/);
    expect(wrongSecret.body).toContain('oauth.clientSecret');

    await api('PUT', '/api/v1/mailboxes/who', {
      ...mailbox('who', 'alice', 'imaps', dovecotX),
      oauth: { ...mailbox('who', 'alice', 'imaps', dovecotX).oauth, clientId: 'elsewhere' },
    });
    const start = await api('POST', '/api/v1/mailboxes/who/oauth/authorize');
    expect(start.status).toBe(400);
    expect(start.json).toMatchObject({ error: 'OAUTH_CONSENT_FAILED' });
    expect(String(start.json.message)).toContain(`Register exactly ${base}/oauth/callback`);

    // and with the right settings, alice's own consent works
    await api('PUT', '/api/v1/mailboxes/who', mailbox('who', 'alice', 'imaps', dovecotX));
    expect((await consent('who', 'alice')).status).toBe(200);
    expect((await rt.services.oauth.status('who')).account).toBe('alice');
  });

  it('a consent completed by pasting the address works from the CLI, and changed OAuth settings discard the tokens', async () => {
    await api('POST', '/api/v1/mailboxes', mailbox('pasted', 'carol', 'imaps', dovecotX));
    const started = await cli(['mailbox', 'authorize', 'pasted', '--json']);
    expect(started.code).toBe(0);
    const { authorizationUrl } = JSON.parse(started.stdout) as { authorizationUrl: string };
    // the browser cannot reach the service: the admin copies the address it landed on
    const landed = await runConsent(authorizationUrl, {
      user: 'carol',
      password: 'carol-pw',
      decision: 'approve',
    });
    const done = await cli(['oauth', 'complete', landed.callbackUrl!]);
    expect(done.stdout).toContain('Mailbox "pasted" authorized for carol.');
    expect(done.code).toBe(0);
    expect((await rt.services.oauth.status('pasted')).status).toBe('authorized');

    // another scope: the tokens were issued for the old one and are discarded
    await api('PUT', '/api/v1/mailboxes/pasted', {
      ...mailbox('pasted', 'carol', 'imaps', dovecotX),
      oauth: { ...mailbox('pasted', 'carol', 'imaps', dovecotX).oauth, scope: 'mail email offline_access' },
    });
    expect((await rt.services.oauth.status('pasted')).status).toBe('not-authorized');
    // an edit that leaves the secret out keeps it (an edit form never sees it)
    const { clientSecret: _s, ...noSecret } = mailbox('pasted', 'carol', 'imaps', dovecotX).oauth;
    const kept = await api('PUT', '/api/v1/mailboxes/pasted', {
      ...mailbox('pasted', 'carol', 'imaps', dovecotX),
      oauth: noSecret,
    });
    expect(kept.status).toBe(200);
    expect((await consent('pasted', 'carol')).status).toBe(200);
  });

  it('outgoing SMTP logs in with XOAUTH2 after its own consent, and sharing app and mailbox with incoming Graph is warned about', async () => {
    const smtpServer = await startSmtpServer({
      // the SMTP server accepts only a token the authorization server issued for that very user
      xoauth2: async (user, token) => {
        const t = await auth.introspect(token);
        return t.active && `${t.sub}@example.test` === user;
      },
    });
    try {
      const smtpSettings = {
        host: 'localhost',
        port: smtpServer.port,
        username: 'alice@example.test',
        from: 'Help Desk <alice@example.test>',
        caFile: smtpServer.caFile,
        oauth: {
          clientId: 'helpdesk',
          clientSecret: SECRET,
          authorizationUrl: auth.authorizationUrl,
          tokenUrl: auth.tokenUrl,
          scope: SCOPE,
        },
      };
      const saved = await api('PUT', '/api/v1/settings/smtp', smtpSettings);
      expect(saved.status).toBe(200);
      expect(saved.json).toMatchObject({
        auth: 'oauth2',
        passwordSet: false,
        oauth: { clientSecretSet: true },
      });
      // not authorized yet: the test mail says so, with the code
      const early = await api('POST', '/api/v1/settings/smtp/test', { to: 'someone@example.test' });
      expect(early.json).toMatchObject({ error: 'OAUTH_NOT_AUTHORIZED' });

      const started = await cli(['smtp', 'authorize', '--json']);
      expect(started.code).toBe(0);
      const page = await runConsent(JSON.parse(started.stdout).authorizationUrl, {
        user: 'alice',
        password: 'alice-pw',
        decision: 'approve',
        followCallback: true,
      });
      if (page.providerError) throw new Error(page.providerError.body);
      transcript.push(page.body ?? '');
      expect(page.status).toBe(200);
      expect(page.body).toContain(
        'The outgoing SMTP server is authorized for <code>alice@example.test</code>',
      );
      const sent = await cli(['smtp', 'test', '--to', 'someone@example.test']);
      expect(sent.code).toBe(0);
      const [mail] = await smtpServer.waitFor(1);
      expect(mail).toMatchObject({ user: 'alice@example.test', secure: true, to: ['someone@example.test'] });
      expect(smtpServer.logins.filter((l) => l.method === 'XOAUTH2' && l.accepted).length).toBeGreaterThan(0);
      expect((await cli(['smtp', 'oauth'])).stdout).toMatch(/status:\s+authorized/);

      // an incoming Graph mailbox of the same app and the same mailbox: both sides say so
      const graph = await api('POST', '/api/v1/mailboxes', {
        name: 'graph-same',
        protocol: 'graph',
        emailAddress: 'alice@example.test',
        oauth: smtpSettings.oauth,
      });
      expect(graph.status, JSON.stringify(graph.json)).toBe(201);
      expect((graph.json.oauth as { warnings: string[] }).warnings[0]).toMatch(
        /same app \(client ID helpdesk\)/,
      );
      const smtpView = await api('GET', '/api/v1/settings/smtp');
      expect((smtpView.json.warnings as string[])[0]).toMatch(
        /Incoming Graph mailbox "graph-same" uses the same app/,
      );
      expect((await cli(['smtp', 'show'])).stdout).toContain('warning: Incoming Graph mailbox "graph-same"');
    } finally {
      await smtpServer.close();
    }
  });

  it('never shows a secret: not in logs, API answers, pages, CLI output, the system log or error messages', async () => {
    const tokens = await Promise.all(['o-imaps', 'o-pop', 'short', 'rev-a', 'pasted'].map(storedTokens));
    const secrets = [
      SECRET,
      SHORT_SECRET,
      ...tokens.flatMap((t) => [t.accessToken, t.refreshToken ?? '']),
    ].filter(Boolean);
    expect(secrets.length).toBeGreaterThan(8);
    const shown = await cli(['mailbox', 'show', 'o-imaps']);
    expect(shown.stdout).toContain('OAuth 2.0 (generic, authorization-code, client helpdesk');
    await cli(['mailbox', 'list', '--json']);
    await api('GET', '/api/v1/mailboxes');
    await api('GET', '/api/v1/system-log?limit=1000');
    // the secret is also cut out of an error answer that would quote the body
    await api('POST', '/api/v1/mailboxes', { ...mailbox('bad name!', 'x', 'imaps', dovecot) });
    const all = transcript.join('\n');
    expect(all.length).toBeGreaterThan(10_000);
    for (const s of secrets)
      expect(all.includes(s), `a secret of ${s.length} characters was shown`).toBe(false);
    // what the log does say about tokens
    expect(all).toContain('oauth token obtained');
  });
});
