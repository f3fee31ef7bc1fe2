import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runConsent } from './support/consent.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { type OAuthTestClient, type OAuthTestServer, startOAuthServer } from './support/oauth-server.js';

/**
 * The OAuth test rig itself (not Mailintake): the authorization server with its login and consent pages, the
 * scripted browser, and Dovecot checking access tokens by introspection. The code exchange and refreshes are
 * written out with plain fetch, as a client would send them.
 */

// never contacted: the scripted browser stops at the redirect to it
const REDIRECT = 'http://127.0.0.1:9/callback';
const SCOPE = 'https://mail.example.test/imap offline_access';

const helpdesk: OAuthTestClient = {
  clientId: 'helpdesk',
  clientSecret: 'helpdesk-secret',
  redirectUris: [REDIRECT],
};
const postClient: OAuthTestClient = {
  clientId: 'helpdesk-post',
  clientSecret: 'helpdesk-post-secret',
  redirectUris: [REDIRECT],
  tokenEndpointAuthMethod: 'client_secret_post',
};
const shortLived: OAuthTestClient = {
  clientId: 'helpdesk-short',
  clientSecret: 'helpdesk-short-secret',
  redirectUris: [REDIRECT],
  accessTokenTtlSeconds: 2,
};
const robot: OAuthTestClient = {
  clientId: 'robot',
  clientSecret: 'robot-secret',
  redirectUris: [],
  grantTypes: ['client_credentials'],
};

interface TokenAnswer {
  status: number;
  json: {
    access_token?: string;
    refresh_token?: string;
    scope?: string;
    expires_in?: number;
    error?: string;
    error_description?: string;
  };
}

describe('OAuth test rig: oidc-provider with login and consent, Dovecot introspection', () => {
  let oauth: OAuthTestServer;
  let dovecot: DovecotServer;
  let ca: Buffer;

  beforeAll(async () => {
    oauth = await startOAuthServer({ clients: [helpdesk, postClient, shortLived, robot] });
    dovecot = await startDovecot({
      users: [
        { name: 'alice', password: 'alice-pw' },
        { name: 'bob', password: 'bob-pw' },
      ],
      oauth: { introspectionUrl: oauth.dovecot.introspectionUrl, mechanisms: ['xoauth2', 'oauthbearer'] },
    });
    ca = await readFile(dovecot.caFile);
  });
  afterAll(async () => {
    await dovecot?.stop();
    await oauth?.close();
  });

  async function tokenRequest(client: OAuthTestClient, params: Record<string, string>): Promise<TokenAnswer> {
    const body = new URLSearchParams(params);
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
    if (client.tokenEndpointAuthMethod === 'client_secret_post') {
      body.set('client_id', client.clientId);
      body.set('client_secret', client.clientSecret);
    } else {
      const basic = `${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret)}`;
      headers.authorization = `Basic ${Buffer.from(basic).toString('base64')}`;
    }
    const res = await fetch(oauth.tokenUrl, { method: 'POST', headers, body: body.toString() });
    return { status: res.status, json: (await res.json()) as TokenAnswer['json'] };
  }

  /** Authorization code + PKCE S256: the scripted browser consents, the code is exchanged. */
  async function authorize(client: OAuthTestClient, user: string, password: string, scope = SCOPE) {
    const verifier = randomBytes(32).toString('base64url');
    const state = randomBytes(8).toString('hex');
    const url = new URL(oauth.authorizationUrl);
    url.search = new URLSearchParams({
      client_id: client.clientId,
      redirect_uri: REDIRECT,
      response_type: 'code',
      scope,
      state,
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
    }).toString();
    const consent = await runConsent(url.toString(), { user, password, decision: 'approve' });
    if (consent.providerError) throw new Error(`consent failed: ${consent.providerError.body}`);
    const callback = new URL(consent.callbackUrl);
    expect(callback.origin + callback.pathname).toBe(REDIRECT);
    expect(callback.searchParams.get('state')).toBe(state);
    const code = callback.searchParams.get('code');
    expect(code).toBeTruthy();
    const answer = await tokenRequest(client, {
      grant_type: 'authorization_code',
      code: code!,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
    });
    expect(answer.status, JSON.stringify(answer.json)).toBe(200);
    return answer.json as Required<Pick<TokenAnswer['json'], 'access_token' | 'scope' | 'expires_in'>> &
      TokenAnswer['json'];
  }

  async function imapLogin(user: string, accessToken: string) {
    const client = new ImapFlow({
      host: dovecot.host,
      port: dovecot.ports.imaps,
      secure: true,
      tls: { ca, servername: 'localhost' },
      auth: { user, accessToken },
      logger: false,
      disableAutoIdle: true,
      connectionTimeout: 10_000,
    });
    client.on('error', () => {
      // surfaced by connect() instead
    });
    try {
      await client.connect();
      const status = await client.status('INBOX', { messages: true });
      await client.logout();
      return { ok: true as const, messages: status ? status.messages : undefined };
    } catch (err) {
      client.close();
      const e = err as { authenticationFailed?: boolean; responseText?: string; message?: string };
      return { ok: false as const, authenticationFailed: e.authenticationFailed === true, error: e.message };
    }
  }

  /** SASL XOAUTH2 by hand over POP3S (imapflow picks OAUTHBEARER when both are offered). */
  function pop3Xoauth2(user: string, token: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({
        host: dovecot.host,
        port: dovecot.ports.pop3s,
        ca,
        servername: 'localhost',
      });
      let buffered = '';
      let step = 0;
      socket.on('error', reject);
      socket.on('data', (chunk: Buffer) => {
        buffered += chunk.toString('latin1');
        if (!buffered.endsWith('\r\n')) return;
        const line = buffered.trim();
        buffered = '';
        if (step === 0) {
          step = 1;
          const sasl = Buffer.from(`user=${user}\x01auth=Bearer ${token}\x01\x01`).toString('base64');
          socket.write(`AUTH XOAUTH2 ${sasl}\r\n`);
        } else if (line.startsWith('+ ')) {
          socket.write('\r\n'); // XOAUTH2 error challenge: an empty answer ends the exchange
        } else {
          socket.end('QUIT\r\n');
          resolve(line);
        }
      });
    });
  }

  /** Polls introspection until the token is inactive (bounded): waits on the server's answer, not a clock. */
  async function untilInactive(token: string, withinMs: number) {
    const deadline = Date.now() + withinMs;
    for (;;) {
      const info = await oauth.introspect(token);
      if (!info.active) return info;
      if (Date.now() > deadline) throw new Error(`token still active after ${withinMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  async function loggedMethods(): Promise<string[]> {
    const log = await readFile(path.join(dovecot.dir, 'dovecot.log'), 'utf8');
    return [...log.matchAll(/Login: user=<[^>]*>, method=([A-Z0-9-]+)/g)].map((m) => m[1]!);
  }

  it('alice consents with PKCE; her token logs in over IMAPS (OAUTHBEARER) and POP3S (XOAUTH2)', async () => {
    const tokens = await authorize(helpdesk, 'alice', 'alice-pw');
    expect(tokens.refresh_token).toBeTruthy();
    expect(tokens.scope.split(' ').sort()).toEqual(SCOPE.split(' ').sort());
    expect(await oauth.introspect(tokens.access_token)).toMatchObject({
      active: true,
      sub: 'alice',
      client_id: 'helpdesk',
    });

    expect(await imapLogin('alice', tokens.access_token)).toMatchObject({ ok: true, messages: 0 });
    expect(await loggedMethods()).toContain('OAUTHBEARER');
    expect(await pop3Xoauth2('alice', tokens.access_token)).toMatch(/^\+OK/);
    expect(await loggedMethods()).toContain('XOAUTH2');

    // no offline_access asked: no refresh token
    const plain = await authorize(helpdesk, 'alice', 'alice-pw', 'mail');
    expect(plain.refresh_token).toBeUndefined();
    expect(await imapLogin('alice', plain.access_token)).toMatchObject({ ok: true });

    // the client sent no prompt: the server keeps offline_access anyway (see oauth-server.ts)
    expect(oauth.authorizationRequests.at(-2)).toMatchObject({ scope: SCOPE, prompt: undefined });
    expect(oauth.authorizationRequests.at(-1)).toMatchObject({
      clientId: 'helpdesk',
      scope: 'mail',
      codeChallengeMethod: 'S256',
    });
  });

  it("bob's token does not open alice's mailbox, and a made-up token opens nothing", async () => {
    const bobs = await authorize(helpdesk, 'bob', 'bob-pw');
    expect(await imapLogin('bob', bobs.access_token)).toMatchObject({ ok: true });
    expect(await imapLogin('alice', bobs.access_token)).toMatchObject({
      ok: false,
      authenticationFailed: true,
    });
    expect(await imapLogin('alice', `made-up-${Date.now()}`)).toMatchObject({
      ok: false,
      authenticationFailed: true,
    });
    expect(await pop3Xoauth2('alice', bobs.access_token)).toMatch(/^-ERR/);
  });

  it('a deny sends the browser to the redirect URL with error=access_denied; a wrong password shows the form again', async () => {
    const url = new URL(oauth.authorizationUrl);
    url.search = new URLSearchParams({
      client_id: 'helpdesk',
      redirect_uri: REDIRECT,
      response_type: 'code',
      scope: SCOPE,
      state: 'deny-state',
      code_challenge: createHash('sha256').update('v'.repeat(43)).digest('base64url'),
      code_challenge_method: 'S256',
    }).toString();

    const denied = await runConsent(url.toString(), {
      user: 'alice',
      password: 'alice-pw',
      decision: 'deny',
    });
    expect(denied.callbackUrl).toBeDefined();
    const callback = new URL(denied.callbackUrl!);
    expect(callback.origin + callback.pathname).toBe(REDIRECT);
    expect(callback.searchParams.get('error')).toBe('access_denied');
    expect(callback.searchParams.get('error_description')).toBeTruthy();
    expect(callback.searchParams.get('state')).toBe('deny-state');
    expect(callback.searchParams.get('code')).toBeNull();

    const wrong = await runConsent(url.toString(), { user: 'alice', password: 'nope', decision: 'approve' });
    expect(wrong.providerError?.status).toBe(401);
    expect(wrong.providerError?.body).toContain('Wrong user name or password');

    // an unregistered redirect_uri: the server shows an error page and never redirects
    url.searchParams.set('redirect_uri', 'http://127.0.0.1:9/elsewhere');
    const unregistered = await runConsent(url.toString(), {
      user: 'alice',
      password: 'alice-pw',
      decision: 'approve',
    });
    expect(unregistered.providerError?.status).toBe(400);
    expect(unregistered.providerError?.body).toContain('redirect_uri');
  });

  it('a refresh with the scope parameter works and rotates: the old refresh token is then refused', async () => {
    const first = await authorize(postClient, 'alice', 'alice-pw');
    const r1 = first.refresh_token!;
    const refreshed = await tokenRequest(postClient, {
      grant_type: 'refresh_token',
      refresh_token: r1,
      scope: SCOPE,
    });
    expect(refreshed.status, JSON.stringify(refreshed.json)).toBe(200);
    const r2 = refreshed.json.refresh_token!;
    expect(r2).toBeTruthy();
    expect(r2).not.toBe(r1);
    expect(refreshed.json.scope?.split(' ').sort()).toEqual(SCOPE.split(' ').sort());
    expect(await imapLogin('alice', refreshed.json.access_token!)).toMatchObject({ ok: true });
    expect(oauth.tokenRequests.at(-1)).toEqual({
      grantType: 'refresh_token',
      scope: SCOPE,
      clientId: 'helpdesk-post',
      status: 200,
      error: undefined,
    });

    // the rotated token keeps working while the old one is not reused
    const again = await tokenRequest(postClient, {
      grant_type: 'refresh_token',
      refresh_token: r2,
      scope: SCOPE,
    });
    expect(again.status).toBe(200);
    const r3 = again.json.refresh_token!;

    // a scope beyond the grant is refused
    const wider = await tokenRequest(postClient, {
      grant_type: 'refresh_token',
      refresh_token: r3,
      scope: `${SCOPE} email`,
    });
    expect(wider).toMatchObject({ status: 400, json: { error: 'invalid_scope' } });

    const reused = await tokenRequest(postClient, { grant_type: 'refresh_token', refresh_token: r1 });
    expect(reused).toMatchObject({ status: 400, json: { error: 'invalid_grant' } });
    expect(oauth.tokenRequests.at(-1)).toMatchObject({
      grantType: 'refresh_token',
      status: 400,
      error: 'invalid_grant',
    });
    // oidc-provider treats a reused refresh token as stolen: the whole grant is revoked, the newest one too
    const newest = await tokenRequest(postClient, { grant_type: 'refresh_token', refresh_token: r3 });
    expect(newest).toMatchObject({ status: 400, json: { error: 'invalid_grant' } });
    expect((await oauth.introspect(again.json.access_token!)).active).toBe(false);
  });

  it("a revoked refresh token cannot refresh, and the grant's access tokens stop working", async () => {
    const tokens = await authorize(helpdesk, 'alice', 'alice-pw');
    expect((await oauth.introspect(tokens.refresh_token!)).active).toBe(true);
    await oauth.revoke(tokens.refresh_token!);
    expect((await oauth.introspect(tokens.refresh_token!)).active).toBe(false);
    const refused = await tokenRequest(helpdesk, {
      grant_type: 'refresh_token',
      refresh_token: tokens.refresh_token!,
    });
    expect(refused).toMatchObject({ status: 400, json: { error: 'invalid_grant' } });
    expect((await oauth.introspect(tokens.access_token)).active).toBe(false);
    expect(await imapLogin('alice', tokens.access_token)).toMatchObject({
      ok: false,
      authenticationFailed: true,
    });
  });

  it("a revoked access token is refused, and its grant's refresh token is revoked with it", async () => {
    const tokens = await authorize(helpdesk, 'alice', 'alice-pw');
    await oauth.revoke(tokens.access_token);
    expect((await oauth.introspect(tokens.access_token)).active).toBe(false);
    expect(await imapLogin('alice', tokens.access_token)).toMatchObject({
      ok: false,
      authenticationFailed: true,
    });
    const refused = await tokenRequest(helpdesk, {
      grant_type: 'refresh_token',
      refresh_token: tokens.refresh_token!,
    });
    expect(refused).toMatchObject({ status: 400, json: { error: 'invalid_grant' } });
  });

  it("a short-lived client's token works, then becomes inactive and is refused by Dovecot", async () => {
    const tokens = await authorize(shortLived, 'alice', 'alice-pw');
    expect(tokens.expires_in).toBeLessThanOrEqual(2);
    expect(await imapLogin('alice', tokens.access_token)).toMatchObject({ ok: true });
    await untilInactive(tokens.access_token, 10_000);
    expect(await imapLogin('alice', tokens.access_token)).toMatchObject({
      ok: false,
      authenticationFailed: true,
    });
  });

  it('a client-credentials token has no sub and cannot log in to a mailbox', async () => {
    const answer = await tokenRequest(robot, { grant_type: 'client_credentials', scope: 'mail' });
    expect(answer.status, JSON.stringify(answer.json)).toBe(200);
    expect(answer.json.refresh_token).toBeUndefined();
    const info = await oauth.introspect(answer.json.access_token!);
    expect(info).toMatchObject({ active: true, client_id: 'robot' });
    expect(info.sub).toBeUndefined();
    expect(await imapLogin('alice', answer.json.access_token!)).toMatchObject({
      ok: false,
      authenticationFailed: true,
    });
    expect(oauth.tokenRequests.at(-1)).toMatchObject({
      grantType: 'client_credentials',
      scope: 'mail',
      clientId: 'robot',
    });
  });

  it('a client added later can run the whole flow', async () => {
    const late: OAuthTestClient = { clientId: 'late', clientSecret: 'late-secret', redirectUris: [REDIRECT] };
    await oauth.addClient(late);
    const tokens = await authorize(late, 'bob', 'bob-pw');
    expect(await imapLogin('bob', tokens.access_token)).toMatchObject({ ok: true });
  });
});
