import fs from 'node:fs';
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EwsDouble } from './doubles/ews-double.js';
import { GraphDouble } from './doubles/graph-double.js';
import { buildMail } from './kit/mails.js';
import { ENGINES } from './support/engines.js';
import { type OAuthHarness, startOAuthHarness, waitFor } from './support/oauth-harness.js';
import type { IntrospectionResult } from './support/oauth-server.js';

/**
 * OAuth 2.0 for Microsoft Graph and EWS end to end: a real authorization server (oidc-provider: login, consent,
 * PKCE, rotating refresh tokens, client credentials, introspection) and the Graph and EWS doubles, which accept
 * a bearer token only when the authorization server says it issued it (introspection: active, with the "mail"
 * scope). The consent is driven like a browser and lands on Mailintake's own /oauth/callback, served by the
 * real API on loopback (test/support/oauth-harness.ts); the runtime is the real one. Nothing is stubbed between
 * Mailintake and the servers.
 *
 * Accounts: the authorization server's user "alice" is the mailbox alice@example.test on both doubles. The Graph
 * double, like Graph, denies a delegated token another user's mailbox (403 ErrorAccessDenied).
 */
const USERS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi'];
const SECRET = 'graph-ews-secret-5d8e21';
const SHORT_SECRET = 'graph-ews-short-secret-a4c7f0';
const APP_SECRET = 'graph-ews-app-secret-e93b6d';
const SCOPE = 'mail offline_access';
/** An application: no user, no consent, no redirect URL. */
const APP_CLIENT = {
  clientId: 'helpdesk-app',
  clientSecret: APP_SECRET,
  redirectUris: [],
  grantTypes: ['client_credentials' as const],
};
const address = (user: string) => `${user}@example.test`;

describe.each(ENGINES)('OAuth 2.0 for Graph and EWS with a real authorization server on %s', (engine) => {
  /** Mailintake as the tests reach it (test/support/oauth-harness.ts). */
  let h: OAuthHarness;
  let graph: GraphDouble;
  let ews: EwsDouble;
  /** Every token a double was shown that the authorization server called active, with its answer. */
  const issued = new Map<string, IntrospectionResult>();

  /** The doubles' judge: a token the authorization server issued, active, with the mail scope. */
  const issuedByServer = async (token: string): Promise<{ subject: string | null } | null> => {
    const info = await h.auth.introspect(token);
    if (!info.active || !info.scope?.split(' ').includes('mail')) return null;
    if (!issued.has(token)) issued.set(token, info);
    // delegated: the user's mailbox; client credentials carry no sub: an application token
    return { subject: info.sub ? address(info.sub) : null };
  };

  const appOnly = () => ({
    provider: 'generic',
    flow: 'client-credentials',
    clientId: 'helpdesk-app',
    clientSecret: APP_SECRET,
    tokenUrl: h.auth.tokenUrl,
    scope: 'mail',
  });

  /** A mailbox of `user` on the Graph or the EWS double (added there first), at that double's endpoint. */
  const mailboxOn = (
    protocol: 'graph' | 'ews',
    name: string,
    user: string,
    oauth: Record<string, unknown> = h.helpdeskOAuth(),
  ) => {
    const double = protocol === 'graph' ? graph : ews;
    double.addMailbox(address(user));
    const endpoint = protocol === 'graph' ? { graphEndpoint: double.url } : { connectUrl: double.url };
    return { name, protocol, ...endpoint, emailAddress: address(user), caFile: double.caFile, oauth };
  };
  const graphMailbox = (name: string, user: string, oauth?: Record<string, unknown>) =>
    mailboxOn('graph', name, user, oauth);
  const ewsMailbox = (name: string, user: string, oauth?: Record<string, unknown>) =>
    mailboxOn('ews', name, user, oauth);

  /** A request straight to the Graph double, as any client could send it (not through Mailintake). */
  const graphGet = (path: string, token: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = https.request(`${graph.url}${path}`, {
        ca: fs.readFileSync(graph.caFile),
        headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
      });
      req.on('error', reject);
      req.on('response', (res) => {
        let body = '';
        res.on('data', (d: Buffer) => {
          body += d.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.end();
    });

  /** The Graph requests that named the user's mailbox in their path. */
  const graphRequestsOf = (user: string) =>
    graph.requests.filter((r) => r.path.toLowerCase().startsWith(`/v1.0/users/${address(user)}/`));
  const bearerOf = (header: string | string[] | undefined) => String(header ?? '').replace(/^Bearer /, '');

  beforeAll(async () => {
    h = await startOAuthHarness(engine, {
      users: USERS,
      secrets: { helpdesk: SECRET, short: SHORT_SECRET },
      clients: [APP_CLIENT],
      scope: SCOPE,
    });
    graph = await GraphDouble.start({ acceptBearer: issuedByServer });
    ews = await EwsDouble.start({ auth: { bearer: issuedByServer } });
  });
  afterAll(async () => {
    await graph?.stop();
    await ews?.stop();
    await h?.close();
  });

  it('Graph, delegated: consent through the redirect URL, then mail becomes requests with tokens the server issued; a made-up or another user’s token is refused', async () => {
    for (const [name, user] of [
      ['g-alice', 'alice'],
      ['g-bob', 'bob'],
    ] as const) {
      const added = await h.api('POST', '/api/v1/mailboxes', graphMailbox(name, user));
      expect(added.status).toBe(201);
      expect(added.json).toMatchObject({
        protocol: 'graph',
        auth: 'oauth2',
        oauth: {
          clientSecretSet: true,
          redirectUrl: `${h.base}/oauth/callback`,
          tokens: { status: 'not-authorized', flow: 'authorization-code' },
        },
      });
      const page = await h.consent(name, user);
      expect(page.status).toBe(200);
      expect(page.body).toContain('data-outcome="authorized"');
      expect(page.body).toContain(`for <code>${address(user)}</code>`);
    }
    await graph.deliver(address('alice'), [
      buildMail({ messageId: 'g-alice-1@oauth.test', subject: 'Printer on fire' }),
      buildMail({ messageId: 'g-alice-2@oauth.test', subject: 'Monitor flickers' }),
    ]);
    const [round] = await h.rt.services.fetch.once({ mailbox: 'g-alice' });
    expect(round).toMatchObject({ reached: true, fetched: 2, created: 2, error: null });
    expect(graph.messages(address('alice')).map((m) => m.isRead)).toEqual([true, true]);

    // every request for alice's mailbox carried alice's token, the one the server issued and Mailintake stored
    const { accessToken } = await h.storedTokens('g-alice');
    const seen = graphRequestsOf('alice');
    expect(seen.length).toBeGreaterThanOrEqual(4);
    for (const r of seen) {
      expect(r.headers.authorization).toBe(`Bearer ${accessToken}`);
      expect(r.subject).toBe(address('alice'));
    }
    expect(issued.get(accessToken)).toMatchObject({ active: true, sub: 'alice', client_id: 'helpdesk' });
    const state = await h.api('GET', '/api/v1/mailboxes/g-alice/oauth');
    expect(state.json).toMatchObject({
      status: 'authorized',
      flow: 'authorization-code',
      account: address('alice'),
      refreshTokenSet: true,
      lastError: null,
    });

    // straight at the double: a made-up token is refused, bob's is denied alice's mailbox and opens his own
    const inbox = (user: string) => `/v1.0/users/${address(user)}/mailFolders/inbox`;
    const garbage = await graphGet(inbox('alice'), 'made-up-token-0123456789abcdef');
    expect(garbage.status).toBe(401);
    expect(garbage.body).toContain('InvalidAuthenticationToken');
    const bobs = (await h.storedTokens('g-bob')).accessToken;
    // as Graph answers it: the token is valid, but bob has no access to alice's mailbox
    const denied = await graphGet(inbox('alice'), bobs);
    expect(denied.status).toBe(403);
    expect(denied.body).toContain('ErrorAccessDenied');
    expect((await graphGet(inbox('bob'), bobs)).status).toBe(200);
    expect((await graphGet(inbox('alice'), accessToken)).status).toBe(200);

    // dave signs in for carol's mailbox: the consent check opens carol's mailbox with dave's token, Graph refuses
    await h.api('POST', '/api/v1/mailboxes', graphMailbox('g-carol', 'carol'));
    const other = await h.consent('g-carol', 'dave');
    expect(other.status).toBe(400);
    expect(other.body).toContain('data-outcome="failed"');
    expect(other.body).toContain('OAUTH_CONSENT_FAILED');
    expect(other.body).toMatch(/sign in as &quot;carol@example\.test&quot;/);
    expect((await h.api('GET', '/api/v1/mailboxes/g-carol/oauth')).json).toMatchObject({
      status: 'not-authorized',
    });
    const refusedForCarol = graphRequestsOf('carol');
    expect(refusedForCarol.length).toBeGreaterThan(0);
    // dave's token was valid (the server issued it), but for dave: Graph denied carol's mailbox to it
    expect(refusedForCarol.every((r) => r.subject === address('dave'))).toBe(true);
    // carol herself: authorized
    expect((await h.consent('g-carol', 'carol')).body).toContain('data-outcome="authorized"');
    const [carols] = await h.rt.services.fetch.once({ mailbox: 'g-carol' });
    expect(carols).toMatchObject({ reached: true, error: null });
  });

  it('Graph, expiring token: once the server says it expired, the next fetch refreshes it and succeeds', async () => {
    await h.api(
      'POST',
      '/api/v1/mailboxes',
      graphMailbox(
        'g-short',
        'erin',
        h.helpdeskOAuth({ clientId: 'helpdesk-short', clientSecret: SHORT_SECRET }),
      ),
    );
    expect((await h.consent('g-short', 'erin')).body).toContain('data-outcome="authorized"');
    const refreshesBefore = h.auth.tokenRequests.filter(
      (r) => r.clientId === 'helpdesk-short' && r.grantType === 'refresh_token',
    ).length;
    const used = new Set<string>();
    for (let round = 1; round <= 2; round++) {
      const { accessToken } = await h.storedTokens('g-short');
      used.add(accessToken);
      // the provider itself says the token has expired (2 s lifetime): wait for that, not for a clock
      await waitFor(
        'the access token to expire at the provider',
        async () => !(await h.auth.introspect(accessToken)).active,
      );
      await graph.deliver(address('erin'), [
        buildMail({ messageId: `g-short-${round}@oauth.test`, subject: `Round ${round}` }),
      ]);
      const [s] = await h.rt.services.fetch.once({ mailbox: 'g-short' });
      expect(s, `round ${round}`).toMatchObject({ reached: true, fetched: 1, created: 1, error: null });
      const now = (await h.storedTokens('g-short')).accessToken;
      expect(now).not.toBe(accessToken);
      used.add(now);
    }
    const refreshes = h.auth.tokenRequests
      .filter((r) => r.clientId === 'helpdesk-short' && r.grantType === 'refresh_token')
      .slice(refreshesBefore);
    expect(refreshes).toHaveLength(2);
    for (const r of refreshes) expect(r).toMatchObject({ status: 200, error: undefined });
    expect((await h.rt.services.oauth.status('g-short')).refreshCount).toBe(2);
    // the double saw only tokens the server issued to this client for erin, never an expired one it had not seen alive
    const seen = graphRequestsOf('erin');
    expect(seen.length).toBeGreaterThanOrEqual(6);
    for (const r of seen) {
      const token = bearerOf(r.headers.authorization);
      expect(issued.get(token), 'a token the server never called active').toMatchObject({
        sub: 'erin',
        client_id: 'helpdesk-short',
      });
      expect(used.has(token)).toBe(true);
    }
  });

  it('Graph and EWS, client credentials: application tokens without consent; EWS impersonates the mailbox', async () => {
    const g = await h.api('POST', '/api/v1/mailboxes', graphMailbox('g-app', 'frank', appOnly()));
    expect(g.status).toBe(201);
    const e = await h.api('POST', '/api/v1/mailboxes', ewsMailbox('e-app', 'grace', appOnly()));
    expect(e.status).toBe(201);
    for (const name of ['g-app', 'e-app']) {
      expect((await h.api('GET', `/api/v1/mailboxes/${name}/oauth`)).json).toMatchObject({
        flow: 'client-credentials',
        status: 'not-authorized',
      });
      // there is no consent to give
      const start = await h.api('POST', `/api/v1/mailboxes/${name}/oauth/authorize`);
      expect(start.status).toBe(400);
      expect(start.json).toMatchObject({ error: 'INVALID_SETTINGS' });
    }
    await graph.deliver(address('frank'), [buildMail({ messageId: 'g-app-1@oauth.test', subject: 'App G' })]);
    await ews.deliver(address('grace'), [
      buildMail({ messageId: 'e-app-1@oauth.test', subject: 'App E 1' }),
      buildMail({ messageId: 'e-app-2@oauth.test', subject: 'App E 2' }),
    ]);
    const rounds = await h.rt.services.fetch.once({});
    expect(rounds.find((r) => r.mailbox === 'g-app')).toMatchObject({
      reached: true,
      fetched: 1,
      created: 1,
      error: null,
    });
    expect(rounds.find((r) => r.mailbox === 'e-app')).toMatchObject({
      reached: true,
      fetched: 2,
      created: 2,
      error: null,
    });
    expect(ews.messages(address('grace')).map((m) => m.isRead)).toEqual([true, true]);

    for (const name of ['g-app', 'e-app']) {
      expect((await h.api('GET', `/api/v1/mailboxes/${name}/oauth`)).json).toMatchObject({
        flow: 'client-credentials',
        status: 'authorized',
        refreshTokenSet: false,
        lastError: null,
      });
      expect((await h.api('GET', `/api/v1/mailboxes/${name}`)).json).toMatchObject({
        oauth: { tokens: { status: 'authorized', flow: 'client-credentials' } },
      });
      // an application token: the server knows the client, and no user
      const { accessToken, refreshToken } = await h.storedTokens(name);
      expect(refreshToken).toBeUndefined();
      const info = await h.auth.introspect(accessToken);
      expect(info).toMatchObject({ active: true, client_id: 'helpdesk-app' });
      expect(info.sub).toBeUndefined();
    }
    const appTokens = h.auth.tokenRequests.filter((r) => r.clientId === 'helpdesk-app');
    expect(appTokens.length).toBeGreaterThanOrEqual(2);
    for (const r of appTokens)
      expect(r).toMatchObject({ grantType: 'client_credentials', scope: 'mail', status: 200 });
    expect(h.auth.authorizationRequests.some((r) => r.clientId === 'helpdesk-app')).toBe(false);

    const graphSeen = graphRequestsOf('frank');
    expect(graphSeen.length).toBeGreaterThanOrEqual(4);
    const gToken = (await h.storedTokens('g-app')).accessToken;
    expect(graphSeen.every((r) => r.subject === null && bearerOf(r.headers.authorization) === gToken)).toBe(
      true,
    );

    // EWS: every request of grace's mailbox is the application token with ExchangeImpersonation naming it
    const eToken = (await h.storedTokens('e-app')).accessToken;
    const ewsSeen = ews.requests.filter((r) => r.account === address('grace'));
    expect(ewsSeen.length).toBeGreaterThanOrEqual(4);
    const impersonation = `<t:ExchangeImpersonation><t:ConnectingSID><t:SmtpAddress>${address('grace')}</t:SmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>`;
    for (const r of ewsSeen) {
      expect(r.subject).toBeNull();
      expect(r.headers.authorization).toBe(`Bearer ${eToken}`);
      expect(r.body).toContain(impersonation);
      expect(r.headers['x-anchormailbox']).toBe(address('grace'));
    }
    expect(ewsSeen.map((r) => r.operation)).toEqual(expect.arrayContaining(['FindItem', 'GetItem']));
  });

  it('client credentials refused by the provider: OAUTH_CLIENT_REJECTED naming the registration, healed by fixing it, no consent asked for', async () => {
    const bad = await h.api(
      'POST',
      '/api/v1/mailboxes',
      graphMailbox('g-app-bad', 'heidi', { ...appOnly(), clientSecret: 'not-the-app-secret' }),
    );
    expect(bad.status).toBe(201);
    const [first] = await h.rt.services.fetch.once({ mailbox: 'g-app-bad' });
    expect(first?.error?.code).toBe('OAUTH_CLIENT_REJECTED');
    expect(first?.error?.message).toContain('client ID "helpdesk-app"');
    // the admin fixes the secret: the next round gets a token, nobody authorizes anything
    const fixed = await h.api(
      'PUT',
      '/api/v1/mailboxes/g-app-bad',
      graphMailbox('g-app-bad', 'heidi', appOnly()),
    );
    expect(fixed.status).toBe(200);
    await graph.deliver(address('heidi'), [
      buildMail({ messageId: 'g-app-bad-1@oauth.test', subject: 'Fixed' }),
    ]);
    const [second] = await h.rt.services.fetch.once({ mailbox: 'g-app-bad' });
    expect(second).toMatchObject({ reached: true, created: 1, error: null });
  });

  it('EWS, delegated: consent through the redirect URL, then the bearer and X-AnchorMailbox on every request, no impersonation', async () => {
    const added = await h.api('POST', '/api/v1/mailboxes', ewsMailbox('e-heidi', 'heidi'));
    expect(added.status).toBe(201);
    expect(added.json).toMatchObject({ protocol: 'ews', auth: 'oauth2' });
    const page = await h.consent('e-heidi', 'heidi');
    expect(page.status).toBe(200);
    expect(page.body).toContain('data-outcome="authorized"');
    expect(page.body).toContain(`for <code>${address('heidi')}</code>`);
    await ews.deliver(address('heidi'), [
      buildMail({ messageId: 'e-heidi-1@oauth.test', subject: 'Keyboard missing keys' }),
    ]);
    const [round] = await h.rt.services.fetch.once({ mailbox: 'e-heidi' });
    expect(round).toMatchObject({ reached: true, fetched: 1, created: 1, error: null });
    expect(ews.messages(address('heidi')).map((m) => m.isRead)).toEqual([true]);

    const { accessToken } = await h.storedTokens('e-heidi');
    expect(issued.get(accessToken)).toMatchObject({ sub: 'heidi', client_id: 'helpdesk' });
    const seen = ews.requests.filter((r) => r.headers['x-anchormailbox'] === address('heidi'));
    expect(seen.length).toBeGreaterThanOrEqual(4);
    for (const r of seen) {
      expect(r.headers.authorization).toBe(`Bearer ${accessToken}`);
      expect(r.subject).toBe(address('heidi'));
      expect(r.account).toBe(address('heidi'));
      expect(r.body).not.toContain('ExchangeImpersonation');
    }
    expect(ews.ntlmLogins).toBe(0);
  });

  it('never shows a secret: client secrets and every access and refresh token stay out of logs, API answers and pages', async () => {
    const names = ['g-alice', 'g-bob', 'g-carol', 'g-short', 'g-app', 'e-app', 'e-heidi'];
    const stored = await Promise.all(names.map(h.storedTokens));
    const secrets = [
      SECRET,
      SHORT_SECRET,
      APP_SECRET,
      ...stored.flatMap((t) => [t.accessToken, t.refreshToken ?? '']),
      // and every token a double was shown (the expired ones too)
      ...issued.keys(),
    ].filter(Boolean);
    expect(new Set(secrets).size).toBeGreaterThan(15);
    await h.api('GET', '/api/v1/mailboxes');
    for (const name of names) {
      await h.api('GET', `/api/v1/mailboxes/${name}`);
      await h.api('GET', `/api/v1/mailboxes/${name}/oauth`);
    }
    await h.api('GET', '/api/v1/system-log?limit=1000');
    await h.api('GET', '/api/v1/oauth/providers');
    // an error answer that would quote the body
    await h.api('POST', '/api/v1/mailboxes', { ...graphMailbox('bad name!', 'alice'), accessToken: 'x' });
    const all = h.transcript.join('\n');
    expect(all.length).toBeGreaterThan(10_000);
    expect(all).toContain('oauth token obtained');
    for (const s of secrets)
      expect(all.includes(s), `a secret of ${s.length} characters was shown`).toBe(false);
  });
});
