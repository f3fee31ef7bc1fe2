import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import { buildMail } from './kit/mails.js';
import { runConsent } from './support/consent.js';
import { deliverMaildir, listInbox } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES } from './support/engines.js';
import { type OAuthHarness, startOAuthHarness, waitFor } from './support/oauth-harness.js';
import { startSmtpServer } from './support/smtp.js';

/**
 * OAuth 2.0 end to end, against real servers: oidc-provider (a real login and consent page, PKCE, rotating
 * refresh tokens, introspection, revocation) and Dovecot validating every token at its introspection endpoint.
 * The consent is driven like a browser (test/support/consent.ts) and lands on Mailintake's own /oauth/callback
 * served by the real API on loopback (test/support/oauth-harness.ts). Nothing is stubbed between Mailintake and
 * the two servers.
 */
const USERS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan'];
const SECRET = 'helpdesk-secret-7f3a9c';
const SHORT_SECRET = 'short-secret-91b2e4';
const SCOPE = 'mail offline_access';
/** Registered with another redirect URL than Mailintake's. */
const ELSEWHERE = {
  clientId: 'elsewhere',
  clientSecret: SECRET,
  redirectUris: ['https://helpdesk.example.test/oauth/callback'],
};

describe.each(ENGINES)('OAuth 2.0 with a real authorization server and Dovecot on %s', (engine) => {
  /** Mailintake as the tests reach it (test/support/oauth-harness.ts). */
  let h: OAuthHarness;
  let dovecot: DovecotServer; // offers OAUTHBEARER and XOAUTH2
  let dovecotX: DovecotServer; // offers XOAUTH2 only

  beforeAll(async () => {
    h = await startOAuthHarness(engine, {
      users: USERS,
      secrets: { helpdesk: SECRET, short: SHORT_SECRET },
      clients: [ELSEWHERE],
      scope: SCOPE,
    });
    dovecot = await startDovecot({
      users: h.auth.users,
      oauth: { introspectionUrl: h.auth.dovecot.introspectionUrl },
    });
    dovecotX = await startDovecot({
      users: h.auth.users,
      oauth: { introspectionUrl: h.auth.dovecot.introspectionUrl, mechanisms: ['xoauth2'] },
    });
  });
  afterAll(async () => {
    await dovecot?.stop();
    await dovecotX?.stop();
    await h?.close();
  });

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
    oauth: h.helpdeskOAuth(oauth),
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
      const added = await h.api('POST', '/api/v1/mailboxes', b);
      expect(added.status).toBe(201);
      expect(added.json).toMatchObject({
        auth: 'oauth2',
        passwordSet: false,
        oauth: {
          clientSecretSet: true,
          redirectUrl: `${h.base}/oauth/callback`,
          tokens: { status: 'not-authorized' },
        },
      });
    }
    // not authorized yet: a coded failure of that mailbox, nothing else
    const [before] = await h.rt.services.fetch.once({ mailbox: 'o-imaps' });
    expect(before?.error?.code).toBe('OAUTH_NOT_AUTHORIZED');
    // "fetch a sample mail" names the step and the command that fixes it
    const tested = await h.cli(['mailbox', 'test', 'o-imaps']);
    expect(tested.code).toBe(1);
    expect(tested.stderr).toContain('failed step: the OAuth consent for this mailbox');
    expect(tested.stderr).toContain('check: Authorize the mailbox: mailintake mailbox authorize o-imaps');

    for (const b of boxes) {
      const page = await h.consent(b.name, b.username);
      expect(page.status).toBe(200);
      expect(page.body).toContain('data-outcome="authorized"');
      expect(page.body).toContain(`for <code>${b.username}</code>`);
      const server = b.name.startsWith('x-') ? dovecotX : dovecot;
      await deliverMaildir(server, b.username, [
        buildMail({ messageId: `${b.name}-1@oauth.test`, subject: `Printer on fire (${b.name})` }),
      ]);
    }
    // the authorization request carried PKCE S256 and the state, as the provider saw it
    for (const r of h.auth.authorizationRequests.filter((x) => x.clientId === 'helpdesk')) {
      expect(r).toMatchObject({
        codeChallengeMethod: 'S256',
        scope: SCOPE,
        redirectUri: `${h.base}/oauth/callback`,
      });
      expect(r.state).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    }
    const rounds = await h.rt.services.fetch.once({});
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

    const state = await h.api('GET', '/api/v1/mailboxes/o-imaps/oauth');
    expect(state.json).toMatchObject({
      status: 'authorized',
      account: 'alice',
      refreshTokenSet: true,
      lastError: null,
      pending: null,
    });
    const shown = await h.cli(['mailbox', 'oauth', 'o-pop']);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/status:\s+authorized/);
    expect(shown.stdout).toMatch(/refresh token:\s+stored \(never shown\)/);
  });

  it('refreshes an expired access token with the scope, saves each rotated refresh token at once, and goes on fetching', async () => {
    await h.api(
      'POST',
      '/api/v1/mailboxes',
      mailbox('short', 'grace', 'imaps', dovecot, { clientId: 'helpdesk-short', clientSecret: SHORT_SECRET }),
    );
    expect((await h.consent('short', 'grace')).status).toBe(200);
    for (let round = 1; round <= 3; round++) {
      const { accessToken } = await h.storedTokens('short');
      // the provider itself says the token has expired (2 s lifetime): wait for that, not for a clock
      await waitFor(
        'the access token to expire at the provider',
        async () => !(await h.auth.introspect(accessToken)).active,
      );
      await deliverMaildir(dovecot, 'grace', [
        buildMail({ messageId: `short-${round}@oauth.test`, subject: `Round ${round}` }),
      ]);
      const [s] = await h.rt.services.fetch.once({ mailbox: 'short' });
      expect(s, `round ${round}`).toMatchObject({ reached: true, created: 1, error: null });
      expect((await h.storedTokens('short')).accessToken).not.toBe(accessToken);
    }
    const refreshes = h.auth.tokenRequests.filter(
      (r) => r.clientId === 'helpdesk-short' && r.grantType === 'refresh_token',
    );
    // oidc-provider rotates refresh tokens and revokes the grant when one is used twice: three successful
    // refreshes in a row prove each rotated token was saved before the next one was needed
    expect(refreshes).toHaveLength(3);
    for (const r of refreshes) expect(r).toMatchObject({ status: 200, scope: SCOPE, error: undefined });
    expect((await h.rt.services.oauth.status('short')).refreshCount).toBe(3);
  });

  it('a revoked refresh token stops that mailbox alone with OAUTH_REAUTHORIZE_REQUIRED, counted as a connection failure, until authorized again', async () => {
    for (const [name, user] of [
      ['rev-a', 'heidi'],
      ['rev-b', 'ivan'],
    ] as const) {
      await h.api(
        'POST',
        '/api/v1/mailboxes',
        mailbox(name, user, 'imaps', dovecot, { clientId: 'helpdesk-short', clientSecret: SHORT_SECRET }),
      );
      expect((await h.consent(name, user)).status).toBe(200);
    }
    const a = await h.storedTokens('rev-a');
    // the user (or an admin at the provider) revokes Mailintake's access
    await h.auth.revoke(a.refreshToken!);
    await waitFor(
      'the access token to be inactive',
      async () => !(await h.auth.introspect(a.accessToken)).active,
    );
    const b = await h.storedTokens('rev-b');
    await waitFor("rev-b's token to expire", async () => !(await h.auth.introspect(b.accessToken)).active);
    await deliverMaildir(dovecot, 'ivan', [
      buildMail({ messageId: 'rev-b-1@oauth.test', subject: 'Still here' }),
    ]);

    const rounds = await h.rt.services.fetch.once({});
    const ra = rounds.find((r) => r.mailbox === 'rev-a');
    const rb = rounds.find((r) => r.mailbox === 'rev-b');
    expect(ra?.error?.code).toBe('OAUTH_REAUTHORIZE_REQUIRED');
    expect(rb).toMatchObject({ reached: true, created: 1, error: null });
    const viewA = await h.api('GET', '/api/v1/mailboxes/rev-a');
    expect(viewA.json).toMatchObject({
      state: { lastErrorCode: 'OAUTH_REAUTHORIZE_REQUIRED', consecutiveFailures: 1 },
      oauth: {
        tokens: { status: 'reauthorize-required', lastError: { code: 'OAUTH_REAUTHORIZE_REQUIRED' } },
      },
    });
    // the next round fails at once, without asking the provider again
    const asked = h.auth.tokenRequests.length;
    const [again] = await h.rt.services.fetch.once({ mailbox: 'rev-a' });
    expect(again?.error?.code).toBe('OAUTH_REAUTHORIZE_REQUIRED');
    expect(h.auth.tokenRequests.length).toBe(asked);
    expect((await h.rt.services.mailboxes.get('rev-a')).state.consecutiveFailures).toBe(2);

    // authorizing again heals it
    expect((await h.consent('rev-a', 'heidi')).status).toBe(200);
    await deliverMaildir(dovecot, 'heidi', [buildMail({ messageId: 'rev-a-1@oauth.test', subject: 'Back' })]);
    const [healed] = await h.rt.services.fetch.once({ mailbox: 'rev-a' });
    expect(healed).toMatchObject({ reached: true, created: 1, error: null });
    expect((await h.rt.services.mailboxes.get('rev-a')).state.consecutiveFailures).toBe(0);
  });

  it('two processes that need a fresh token at once refresh it once (a second use of a rotated refresh token would end the grant)', async () => {
    const second = await openRuntime(h.config);
    try {
      await h.api(
        'POST',
        '/api/v1/mailboxes',
        mailbox('twice', 'carol', 'imaps', dovecot, {
          clientId: 'helpdesk-short',
          clientSecret: SHORT_SECRET,
        }),
      );
      expect((await h.consent('twice', 'carol')).status).toBe(200);
      const { accessToken } = await h.storedTokens('twice');
      await waitFor('the access token to expire', async () => !(await h.auth.introspect(accessToken)).active);
      const asked = h.auth.tokenRequests.filter((r) => r.grantType === 'refresh_token').length;
      // "fetch a sample mail" in both processes at the same moment: each logs in with a token
      const [one, two] = await Promise.all([
        h.rt.services.mailboxes.test('twice'),
        second.services.mailboxes.test('twice'),
      ]);
      expect(one.ok && two.ok).toBe(true);
      expect(h.auth.tokenRequests.filter((r) => r.grantType === 'refresh_token').length).toBe(asked + 1);
      expect((await h.rt.services.oauth.status('twice')).status).toBe('authorized');
    } finally {
      await second.close();
    }
  });

  it('refuses the consent of another account, a refused consent, a wrong client secret and an unregistered redirect URL, each saying what to fix', async () => {
    await h.api('POST', '/api/v1/mailboxes', mailbox('who', 'alice', 'imaps', dovecotX));
    // bob signs in for alice's mailbox: Dovecot refuses bob's token for alice, nothing is stored
    const other = await h.consent('who', 'bob');
    expect(other.status).toBe(400);
    expect(other.body).toContain('OAUTH_CONSENT_FAILED');
    expect(other.body).toMatch(/sign in as &quot;alice&quot;/);
    expect((await h.rt.services.oauth.status('who')).status).toBe('not-authorized');

    const denied = await h.consent('who', 'alice', 'deny');
    expect(denied.status).toBe(400);
    expect(denied.body).toMatch(/consent was refused at the provider \(access_denied/);

    // the same callback again: one use only
    const replay = await fetch(other.callbackUrl!);
    const replayBody = await replay.text();
    h.transcript.push(replayBody);
    expect(replay.status).toBe(400);
    expect(replayBody).toMatch(/used already/);

    await h.api('PUT', '/api/v1/mailboxes/who', {
      ...mailbox('who', 'alice', 'imaps', dovecotX),
      oauth: { ...mailbox('who', 'alice', 'imaps', dovecotX).oauth, clientSecret: 'not-the-secret' },
    });
    const wrongSecret = await h.consent('who', 'alice');
    expect(wrongSecret.status).toBe(400);
    expect(wrongSecret.body).toMatch(/refused the app&#39;s credentials \(invalid_client/);
    expect(wrongSecret.body).toContain('oauth.clientSecret');

    await h.api('PUT', '/api/v1/mailboxes/who', {
      ...mailbox('who', 'alice', 'imaps', dovecotX),
      oauth: { ...mailbox('who', 'alice', 'imaps', dovecotX).oauth, clientId: 'elsewhere' },
    });
    const start = await h.api('POST', '/api/v1/mailboxes/who/oauth/authorize');
    expect(start.status).toBe(400);
    expect(start.json).toMatchObject({ error: 'OAUTH_CONSENT_FAILED' });
    expect(String(start.json.message)).toContain(`Register exactly ${h.base}/oauth/callback`);

    // and with the right settings, alice's own consent works
    await h.api('PUT', '/api/v1/mailboxes/who', mailbox('who', 'alice', 'imaps', dovecotX));
    expect((await h.consent('who', 'alice')).status).toBe(200);
    expect((await h.rt.services.oauth.status('who')).account).toBe('alice');
  });

  it('a consent completed by pasting the address works from the CLI, and changed OAuth settings discard the tokens', async () => {
    await h.api('POST', '/api/v1/mailboxes', mailbox('pasted', 'carol', 'imaps', dovecotX));
    const started = await h.cli(['mailbox', 'authorize', 'pasted', '--json']);
    expect(started.code).toBe(0);
    const { authorizationUrl } = JSON.parse(started.stdout) as { authorizationUrl: string };
    // the browser cannot reach the service: the admin copies the address it landed on
    const landed = await runConsent(authorizationUrl, {
      user: 'carol',
      password: 'carol-pw',
      decision: 'approve',
    });
    const done = await h.cli(['oauth', 'complete', landed.callbackUrl!]);
    expect(done.stdout).toContain('Mailbox "pasted" authorized for carol.');
    expect(done.code).toBe(0);
    expect((await h.rt.services.oauth.status('pasted')).status).toBe('authorized');

    // another scope: the tokens were issued for the old one and are discarded
    await h.api('PUT', '/api/v1/mailboxes/pasted', {
      ...mailbox('pasted', 'carol', 'imaps', dovecotX),
      oauth: { ...mailbox('pasted', 'carol', 'imaps', dovecotX).oauth, scope: 'mail email offline_access' },
    });
    expect((await h.rt.services.oauth.status('pasted')).status).toBe('not-authorized');
    // an edit that leaves the secret out keeps it (an edit form never sees it)
    const { clientSecret: _s, ...noSecret } = mailbox('pasted', 'carol', 'imaps', dovecotX).oauth;
    const kept = await h.api('PUT', '/api/v1/mailboxes/pasted', {
      ...mailbox('pasted', 'carol', 'imaps', dovecotX),
      oauth: noSecret,
    });
    expect(kept.status).toBe(200);
    expect((await h.consent('pasted', 'carol')).status).toBe(200);
  });

  it('outgoing SMTP logs in with XOAUTH2 after its own consent, and sharing app and mailbox with incoming Graph is warned about', async () => {
    const smtpServer = await startSmtpServer({
      // the SMTP server accepts only a token the authorization server issued for that very user
      xoauth2: async (user, token) => {
        const t = await h.auth.introspect(token);
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
          authorizationUrl: h.auth.authorizationUrl,
          tokenUrl: h.auth.tokenUrl,
          scope: SCOPE,
        },
      };
      const saved = await h.api('PUT', '/api/v1/settings/smtp', smtpSettings);
      expect(saved.status).toBe(200);
      expect(saved.json).toMatchObject({
        auth: 'oauth2',
        passwordSet: false,
        oauth: { clientSecretSet: true },
      });
      // not authorized yet: the test mail says so, with the code
      const early = await h.api('POST', '/api/v1/settings/smtp/test', { to: 'someone@example.test' });
      expect(early.json).toMatchObject({ error: 'OAUTH_NOT_AUTHORIZED' });

      const started = await h.cli(['smtp', 'authorize', '--json']);
      expect(started.code).toBe(0);
      const page = await runConsent(JSON.parse(started.stdout).authorizationUrl, {
        user: 'alice',
        password: 'alice-pw',
        decision: 'approve',
        followCallback: true,
      });
      if (page.providerError) throw new Error(page.providerError.body);
      h.transcript.push(page.body ?? '');
      expect(page.status).toBe(200);
      expect(page.body).toContain(
        'The outgoing SMTP server is authorized for <code>alice@example.test</code>',
      );
      const sent = await h.cli(['smtp', 'test', '--to', 'someone@example.test']);
      expect(sent.code).toBe(0);
      const [mail] = await smtpServer.waitFor(1);
      expect(mail).toMatchObject({ user: 'alice@example.test', secure: true, to: ['someone@example.test'] });
      expect(smtpServer.logins.filter((l) => l.method === 'XOAUTH2' && l.accepted).length).toBeGreaterThan(0);
      expect((await h.cli(['smtp', 'oauth'])).stdout).toMatch(/status:\s+authorized/);

      // an incoming Graph mailbox of the same app and the same mailbox: both sides say so
      const graph = await h.api('POST', '/api/v1/mailboxes', {
        name: 'graph-same',
        protocol: 'graph',
        emailAddress: 'alice@example.test',
        oauth: smtpSettings.oauth,
      });
      expect(graph.status, JSON.stringify(graph.json)).toBe(201);
      expect((graph.json.oauth as { warnings: string[] }).warnings[0]).toMatch(
        /same app \(client ID helpdesk\)/,
      );
      const smtpView = await h.api('GET', '/api/v1/settings/smtp');
      expect((smtpView.json.warnings as string[])[0]).toMatch(
        /Incoming Graph mailbox "graph-same" uses the same app/,
      );
      expect((await h.cli(['smtp', 'show'])).stdout).toContain(
        'warning: Incoming Graph mailbox "graph-same"',
      );
    } finally {
      await smtpServer.close();
    }
  });

  it('never shows a secret: not in logs, API answers, pages, CLI output, the system log or error messages', async () => {
    const tokens = await Promise.all(['o-imaps', 'o-pop', 'short', 'rev-a', 'pasted'].map(h.storedTokens));
    const secrets = [
      SECRET,
      SHORT_SECRET,
      ...tokens.flatMap((t) => [t.accessToken, t.refreshToken ?? '']),
    ].filter(Boolean);
    expect(secrets.length).toBeGreaterThan(8);
    const shown = await h.cli(['mailbox', 'show', 'o-imaps']);
    expect(shown.stdout).toContain('OAuth 2.0 (generic, authorization-code, client helpdesk');
    await h.cli(['mailbox', 'list', '--json']);
    await h.api('GET', '/api/v1/mailboxes');
    await h.api('GET', '/api/v1/system-log?limit=1000');
    // the secret is also cut out of an error answer that would quote the body
    await h.api('POST', '/api/v1/mailboxes', { ...mailbox('bad name!', 'x', 'imaps', dovecot) });
    const all = h.transcript.join('\n');
    expect(all.length).toBeGreaterThan(10_000);
    for (const s of secrets)
      expect(all.includes(s), `a secret of ${s.length} characters was shown`).toBe(false);
    // what the log does say about tokens
    expect(all).toContain('oauth token obtained');
  });
});
