/**
 * A real OAuth 2.0 authorization server on loopback for tests, built on oidc-provider (panva), the recipe
 * tested in shared/reference/dovecot-rig/oidc-server.mjs. Opaque access tokens; Dovecot checks them through
 * the RFC 7662 introspection endpoint with the built-in `dovecot` client (see `dovecot.introspectionUrl`).
 *
 * The browser part is a real interaction, driven in tests by `runConsent` (consent.ts):
 *   GET  /interaction/:uid           login form (user name + password), or the consent page once logged in
 *   POST /interaction/:uid/login     login=&password=  wrong: the login form again, HTTP 401, "Wrong user name
 *                                    or password." (the interaction stays open, the user may try again)
 *   POST /interaction/:uid/consent   decision=approve|deny  deny: the interaction ends with access_denied and
 *                                    the browser goes to the client's redirect_uri with error=access_denied
 * The consent page is always shown (also when no scope is missing), and lists the requested scopes.
 *
 * What oidc-provider 9 does, as observed in test/oauth-rig.test.ts:
 * - Refresh tokens rotate on every use (`rotateRefreshToken: true`). Presenting a refresh token a second time
 *   fails with invalid_grant ("refresh token already used") AND revokes the whole grant: its rotated successor
 *   and every access token of the grant stop working too.
 * - A refresh request may carry `scope`; it must be a subset of the refresh token's scope (else invalid_scope).
 *   Sending the original scope again works. Only the scopes this server knows (`scopes` option) are ever
 *   granted: unknown scopes are silently dropped from the authorization request, and then a refresh that asks
 *   for them fails with invalid_scope.
 * - oidc-provider drops `offline_access` from an authorization request unless it carries prompt=consent. Real
 *   providers (Microsoft) give a refresh token for offline_access alone, so a request with offline_access and
 *   no `prompt` gets prompt=consent added here (recorded unchanged in `authorizationRequests`). A refresh token
 *   is then issued when the client may use the refresh_token grant and offline_access was granted.
 * - Revoking a refresh token (RFC 7009, as its own client) destroys it, every access token and refresh token of
 *   the grant, and the grant: later refreshes fail with invalid_grant, earlier access tokens are inactive.
 *   Revoking an access token (as its own client, which may use refresh_token) also destroys the grant's other
 *   access tokens and its refresh tokens (the refresh then fails with invalid_grant); only the grant record
 *   stays (oidc-provider's default revokeGrantPolicy).
 * - Client-credentials tokens carry no `sub` (no account), so Dovecot cannot map them to a mailbox.
 *
 * oidc-provider 9 prints "oidc-provider WARNING: Unsupported runtime. Use Node.js v22.x LTS…" with console.warn
 * when it is imported on Node 20. It works on Node 20 (the rig and these tests run there); the line is left as
 * it is. The other start-up warnings (in-memory adapter, development keys) are avoided: this module brings its
 * own per-server store and signing key.
 */
import { generateKeyPair, randomBytes } from 'node:crypto';
import http from 'node:http';
import type net from 'node:net';
// @ts-expect-error oidc-provider 9 ships no type declarations; the few parts used are typed below
import OidcProvider, { interactionPolicy } from 'oidc-provider';

export interface OAuthTestUser {
  name: string;
  password: string;
}

export interface OAuthTestClient {
  clientId: string;
  clientSecret: string;
  /** Exact redirect URIs (oidc-provider compares them as strings). May be empty for client_credentials. */
  redirectUris: string[];
  /** Lifetime of access tokens (also client-credentials tokens) for this client. Default 3600. */
  accessTokenTtlSeconds?: number;
  /** Default ['authorization_code', 'refresh_token']. */
  grantTypes?: ('authorization_code' | 'refresh_token' | 'client_credentials')[];
  /** How the client authenticates at the token, introspection and revocation endpoints. */
  tokenEndpointAuthMethod?: 'client_secret_basic' | 'client_secret_post';
}

export interface StartOAuthServerOptions {
  /** Default alice/alice-pw, bob/bob-pw, carol/carol-pw. The account's `sub` is the user name. */
  users?: OAuthTestUser[];
  /** The clients tests use (more can be added later with `addClient`). Default none. */
  clients?: OAuthTestClient[];
  /** Scopes granted besides the defaults (DEFAULT_OAUTH_SCOPES); any other requested scope is dropped. */
  scopes?: string[];
}

export interface TokenRequestRecord {
  /** grant_type as sent, e.g. 'authorization_code', 'refresh_token', 'client_credentials'. */
  grantType: string | undefined;
  /** The `scope` parameter as sent, undefined when absent. */
  scope: string | undefined;
  /** From client_secret_basic or client_secret_post (as sent, also when authentication failed). */
  clientId: string | undefined;
  /** HTTP status of the answer. */
  status: number;
  /** The OAuth error code of a failed request (invalid_grant, invalid_scope, invalid_client…). */
  error: string | undefined;
}

export interface AuthorizationRequestRecord {
  clientId: string | undefined;
  redirectUri: string | undefined;
  scope: string | undefined;
  prompt: string | undefined;
  state: string | undefined;
  codeChallengeMethod: string | undefined;
}

export interface IntrospectionResult {
  active: boolean;
  sub?: string;
  client_id?: string;
  scope?: string;
  exp?: number;
  token_type?: string;
}

export interface OAuthTestServer {
  /** http://127.0.0.1:PORT (no trailing slash); discovery at /.well-known/openid-configuration. */
  issuer: string;
  authorizationUrl: string;
  tokenUrl: string;
  introspectionUrl: string;
  revocationUrl: string;
  users: OAuthTestUser[];
  /** The built-in introspection-only client, and the introspection URL with its credentials as userinfo. */
  dovecot: { clientId: string; clientSecret: string; introspectionUrl: string };
  /** Every token-endpoint request, in order (also failed ones). */
  tokenRequests: TokenRequestRecord[];
  /** Every GET authorization request, in order, as the client sent it. */
  authorizationRequests: AuthorizationRequestRecord[];
  /** RFC 7662 introspection, as the dovecot client. */
  introspect(token: string): Promise<IntrospectionResult>;
  /**
   * RFC 7009 revocation, authenticated as the client the token belongs to (found by introspection). A token
   * that is unknown or no longer active is left alone. Throws when the endpoint does not answer 200.
   */
  revoke(token: string): Promise<void>;
  /** Registers another client (e.g. once the client's callback port is known). */
  addClient(client: OAuthTestClient): Promise<void>;
  close(): Promise<void>;
}

export const DEFAULT_OAUTH_USERS: OAuthTestUser[] = [
  { name: 'alice', password: 'alice-pw' },
  { name: 'bob', password: 'bob-pw' },
  { name: 'carol', password: 'carol-pw' },
];
export const DEFAULT_OAUTH_SCOPES = [
  'openid',
  'offline_access',
  'email',
  'mail',
  'https://mail.example.test/imap',
  'https://mail.example.test/pop',
  'https://mail.example.test/smtp',
] as const;
const DOVECOT_CLIENT_ID = 'dovecot';

// --- the parts of oidc-provider used here --------------------------------------------------------------

interface InteractionDetails {
  uid: string;
  prompt: { name: string; details: { missingOIDCScope?: string[]; missingOIDCClaims?: string[] } };
  params: Record<string, string | undefined>;
  session?: { accountId: string };
  grantId?: string;
  lastSubmission?: { login?: { accountId: string } };
}
interface GrantInstance {
  addOIDCScope(scope: string): void;
  addOIDCClaims(claims: string[]): void;
  save(): Promise<string>;
}
interface KoaContext {
  path: string;
  method: string;
  query: Record<string, string | string[] | undefined>;
  status: number;
  body: unknown;
  get(header: string): string;
  oidc?: { body?: Record<string, unknown>; client?: { clientId: string } };
}
interface Provider {
  proxy: boolean;
  callback(): (req: http.IncomingMessage, res: http.ServerResponse) => void;
  use(fn: (ctx: KoaContext, next: () => Promise<void>) => Promise<void>): void;
  interactionDetails(req: http.IncomingMessage, res: http.ServerResponse): Promise<InteractionDetails>;
  interactionFinished(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    result: Record<string, unknown>,
    opts: { mergeWithLastSubmission: boolean },
  ): Promise<void>;
  Grant: {
    new (init: { accountId: string; clientId: string }): GrantInstance;
    find(id: string): Promise<GrantInstance | undefined>;
  };
  Client: { validate(metadata: Record<string, unknown>): Promise<void> };
}
interface CheckCtx {
  oidc: { result?: { consent?: unknown } };
}
interface PolicyApi {
  base(): { get(name: string): { checks: { add(check: unknown): void } } };
  Check: new (
    reason: string,
    description: string,
    error: string,
    check: (ctx: CheckCtx) => boolean,
  ) => unknown;
}
const ProviderClass = OidcProvider as new (issuer: string, config: Record<string, unknown>) => Provider;
const policyApi = interactionPolicy as PolicyApi;

// --- storage: one store per server (oidc-provider's default adapter is shared process-wide, LRU-bounded) ---

type Payload = Record<string, unknown> & {
  grantId?: string;
  uid?: string;
  userCode?: string;
  consumed?: number;
};

function memoryAdapter() {
  const entries = new Map<string, { payload: unknown; expiresAt: number }>();
  const grants = new Map<string, Set<string>>();
  const get = (key: string): unknown => {
    const e = entries.get(key);
    if (!e) return undefined;
    if (e.expiresAt <= Date.now()) {
      entries.delete(key);
      return undefined;
    }
    return e.payload;
  };
  const set = (key: string, payload: unknown, expiresIn?: number) =>
    entries.set(key, { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : Infinity });
  return (model: string) => {
    const key = (id: string) => `${model}:${id}`;
    const find = async (id: string | undefined) => (id ? (get(key(id)) as Payload | undefined) : undefined);
    return {
      async upsert(id: string, payload: Payload, expiresIn?: number) {
        set(key(id), payload, expiresIn);
        if (model === 'Session' && payload.uid) set(`sessionUid:${payload.uid}`, id, expiresIn);
        if (payload.userCode) set(`userCode:${payload.userCode}`, id, expiresIn);
        if (payload.grantId) {
          const members = grants.get(payload.grantId) ?? new Set<string>();
          members.add(key(id));
          grants.set(payload.grantId, members);
        }
      },
      find,
      findByUid: async (uid: string) => find(get(`sessionUid:${uid}`) as string | undefined),
      findByUserCode: async (code: string) => find(get(`userCode:${code}`) as string | undefined),
      async consume(id: string) {
        const p = get(key(id)) as Payload | undefined;
        if (p) p.consumed = Math.floor(Date.now() / 1000);
      },
      async destroy(id: string) {
        entries.delete(key(id));
      },
      async revokeByGrantId(grantId: string) {
        for (const k of grants.get(grantId) ?? []) entries.delete(k);
        grants.delete(grantId);
      },
    };
  };
}

/** One RS256 signing key per test process (for ID tokens; access tokens are opaque). */
let signingKey: Promise<Record<string, unknown>> | undefined;
function getSigningKey(): Promise<Record<string, unknown>> {
  signingKey ??= new Promise((resolve, reject) => {
    generateKeyPair('rsa', { modulusLength: 2048 }, (err, _pub, privateKey) => {
      if (err) reject(err);
      else resolve({ ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', alg: 'RS256', use: 'sig' });
    });
  });
  return signingKey;
}

// --- pages -------------------------------------------------------------------------------------------------

const esc = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const page = (title: string, body: string) =>
  `<!doctype html>\n<html><head><meta charset="utf-8"><title>${esc(title)}</title></head><body>\n${body}\n</body></html>\n`;

function loginPage(uid: string, clientId: string, error?: string, login = ''): string {
  return page(
    'Sign in',
    `<h1>Sign in to continue to ${esc(clientId)}</h1>
${error ? `<p class="error" role="alert">${esc(error)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}/login">
<label>User name <input name="login" autocomplete="username" value="${esc(login)}"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Sign in</button>
</form>`,
  );
}

function consentPage(uid: string, clientId: string, user: string, scopes: string[]): string {
  return page(
    'Allow access',
    `<h1>${esc(clientId)} asks for access</h1>
<p>Signed in as <strong>${esc(user)}</strong>. The application asks for:</p>
<ul class="scopes">
${scopes.map((s) => `<li>${esc(s)}</li>`).join('\n')}
</ul>
<form method="post" action="/interaction/${esc(uid)}/consent">
<button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>`,
  );
}

async function readForm(req: http.IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function basicAuth(id: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

function clientIdFromBasic(header: string): string | undefined {
  const m = /^Basic\s+(\S+)/i.exec(header);
  if (!m?.[1]) return undefined;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  try {
    return decodeURIComponent(i === -1 ? decoded : decoded.slice(0, i));
  } catch {
    return undefined;
  }
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

// --- the server --------------------------------------------------------------------------------------------

export async function startOAuthServer(opts: StartOAuthServerOptions = {}): Promise<OAuthTestServer> {
  const users = opts.users ?? DEFAULT_OAUTH_USERS;
  const passwords = new Map(users.map((u) => [u.name, u.password]));
  const clients = new Map<string, OAuthTestClient>();
  const dovecotSecret = randomBytes(16).toString('hex');
  const tokenRequests: TokenRequestRecord[] = [];
  const authorizationRequests: AuthorizationRequestRecord[] = [];
  const adapter = memoryAdapter();

  const toMetadata = (c: OAuthTestClient): Record<string, unknown> => {
    const grantTypes = c.grantTypes ?? ['authorization_code', 'refresh_token'];
    return {
      client_id: c.clientId,
      client_secret: c.clientSecret,
      redirect_uris: c.redirectUris,
      grant_types: grantTypes,
      response_types: grantTypes.includes('authorization_code') ? ['code'] : [],
      token_endpoint_auth_method: c.tokenEndpointAuthMethod ?? 'client_secret_basic',
    };
  };
  for (const c of opts.clients ?? []) clients.set(c.clientId, c);
  const ttlFor = (clientId: string | undefined) =>
    (clientId && clients.get(clientId)?.accessTokenTtlSeconds) || 3600;

  // the port is needed for the issuer before the provider exists: listen first, hand requests over later
  let handler: http.RequestListener = (_req, res) => {
    res.statusCode = 503;
    res.end();
  };
  const server = http.createServer((req, res) => handler(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  const issuer = `http://127.0.0.1:${port}`;

  // the consent prompt is always shown once per authorization, not only when a scope is not granted yet
  const policy = policyApi.base();
  policy
    .get('consent')
    .checks.add(
      new policyApi.Check(
        'always_consent',
        'this test server always asks for consent',
        'consent_required',
        (ctx) => !ctx.oidc.result?.consent,
      ),
    );

  const provider = new ProviderClass(issuer, {
    adapter,
    clients: [
      ...[...clients.values()].map(toMetadata),
      {
        client_id: DOVECOT_CLIENT_ID,
        client_secret: dovecotSecret,
        redirect_uris: [],
        grant_types: [],
        response_types: [],
      },
    ],
    jwks: { keys: [await getSigningKey()] },
    cookies: { keys: [randomBytes(16).toString('hex')] },
    findAccount: async (_ctx: unknown, id: string) =>
      passwords.has(id)
        ? {
            accountId: id,
            claims: async () => ({ sub: id, email: `${id}@example.test`, email_verified: true }),
          }
        : undefined,
    claims: { openid: ['sub'], email: ['email', 'email_verified'] },
    scopes: [...new Set([...DEFAULT_OAUTH_SCOPES, ...(opts.scopes ?? [])])],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: { enabled: false },
      introspection: {
        enabled: true,
        // Dovecot may look at any token; a client only at its own
        allowedPolicy: async (_ctx: unknown, client: { clientId: string }, token: { clientId?: string }) =>
          client.clientId === DOVECOT_CLIENT_ID || client.clientId === token.clientId,
      },
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx: unknown, client: { clientId: string }, token: { clientId?: string }) =>
          client.clientId === token.clientId,
      },
    },
    pkce: { required: () => true },
    rotateRefreshToken: true,
    issueRefreshToken: async (
      _ctx: unknown,
      client: { grantTypeAllowed(t: string): boolean },
      source: { scopes: Set<string> },
    ) => client.grantTypeAllowed('refresh_token') && source.scopes.has('offline_access'),
    ttl: {
      AccessToken: (_ctx: unknown, _token: unknown, client?: { clientId: string }) =>
        ttlFor(client?.clientId),
      ClientCredentials: (_ctx: unknown, _token: unknown, client?: { clientId: string }) =>
        ttlFor(client?.clientId),
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 600,
      Session: 14 * 86400,
      Grant: 14 * 86400,
      RefreshToken: 14 * 86400,
    },
    // the provider's own error page (unknown client, unregistered redirect_uri…): error and description
    renderError: async (ctx: { type: string; body: unknown }, out: Record<string, string>) => {
      ctx.type = 'html';
      ctx.body = page(
        'Error',
        `<h1>${esc(out.error ?? 'error')}</h1>\n<p class="error_description">${esc(out.error_description ?? '')}</p>`,
      );
    },
    interactions: {
      policy,
      url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}`,
    },
  });
  provider.proxy = false;

  provider.use(async (ctx, next) => {
    if (ctx.path === '/auth' && ctx.method === 'GET') {
      const q = ctx.query;
      const one = (k: string) => str(q[k]);
      authorizationRequests.push({
        clientId: one('client_id'),
        redirectUri: one('redirect_uri'),
        scope: one('scope'),
        prompt: one('prompt'),
        state: one('state'),
        codeChallengeMethod: one('code_challenge_method'),
      });
      // keep offline_access without prompt=consent (see the header comment)
      if (one('scope')?.split(' ').includes('offline_access') && q.prompt === undefined) {
        ctx.query = { ...q, prompt: 'consent' };
      }
    }
    await next();
    if (ctx.path === '/token' && ctx.method === 'POST') {
      const body = ctx.oidc?.body ?? {};
      const answer = ctx.body as { error?: unknown } | undefined;
      tokenRequests.push({
        grantType: str(body.grant_type),
        scope: str(body.scope),
        clientId: str(body.client_id) ?? clientIdFromBasic(ctx.get('authorization')),
        status: ctx.status,
        error: ctx.status >= 400 ? str(answer?.error) : undefined,
      });
    }
  });

  const oidcCallback = provider.callback();

  const sendHtml = (res: http.ServerResponse, status: number, html: string) => {
    res.statusCode = status;
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.setHeader('cache-control', 'no-store');
    res.end(html);
  };

  const interaction = async (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    uid: string,
    action: string | undefined,
  ) => {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) return sendHtml(res, 400, page('Error', '<p>Interaction mismatch.</p>'));
    const clientId = details.params.client_id ?? '';
    const prompt = details.prompt.name;

    if (req.method === 'GET' && action === undefined) {
      if (prompt === 'login') return sendHtml(res, 200, loginPage(uid, clientId));
      if (prompt === 'consent') {
        const scopes = (details.params.scope ?? '').split(' ').filter(Boolean);
        return sendHtml(res, 200, consentPage(uid, clientId, details.session?.accountId ?? '', scopes));
      }
      return sendHtml(res, 400, page('Error', `<p>Unknown prompt ${esc(prompt)}.</p>`));
    }

    if (req.method === 'POST' && action === 'login' && prompt === 'login') {
      const form = await readForm(req);
      const login = form.get('login') ?? '';
      const password = form.get('password') ?? '';
      if (!passwords.has(login) || passwords.get(login) !== password) {
        return sendHtml(res, 401, loginPage(uid, clientId, 'Wrong user name or password.', login));
      }
      return provider.interactionFinished(
        req,
        res,
        { login: { accountId: login } },
        { mergeWithLastSubmission: false },
      );
    }

    if (req.method === 'POST' && action === 'consent' && prompt === 'consent') {
      const form = await readForm(req);
      if (form.get('decision') !== 'approve') {
        return provider.interactionFinished(
          req,
          res,
          { error: 'access_denied', error_description: 'The user denied the request.' },
          { mergeWithLastSubmission: false },
        );
      }
      const accountId = details.session?.accountId;
      if (!accountId) return sendHtml(res, 400, page('Error', '<p>Not signed in.</p>'));
      const grant =
        (details.grantId ? await provider.Grant.find(details.grantId) : undefined) ??
        new provider.Grant({ accountId, clientId });
      const scope = details.params.scope;
      if (scope) grant.addOIDCScope(scope);
      if (details.prompt.details.missingOIDCScope)
        grant.addOIDCScope(details.prompt.details.missingOIDCScope.join(' '));
      if (details.prompt.details.missingOIDCClaims)
        grant.addOIDCClaims(details.prompt.details.missingOIDCClaims);
      const grantId = await grant.save();
      return provider.interactionFinished(
        req,
        res,
        { consent: { grantId } },
        { mergeWithLastSubmission: true },
      );
    }

    return sendHtml(res, 400, page('Error', '<p>This step does not fit the interaction.</p>'));
  };

  handler = (req, res) => {
    const m = /^\/interaction\/([^/?]+)(?:\/([a-z]+))?(?:\?|$)/.exec(req.url ?? '');
    if (!m?.[1]) {
      oidcCallback(req, res);
      return;
    }
    interaction(req, res, m[1], m[2]).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      // e.g. SessionNotFound when the interaction cookie is missing or the interaction expired
      const e = err as { statusCode?: number; error?: string; error_description?: string; message?: string };
      sendHtml(
        res,
        e.statusCode ?? 500,
        page(
          'Error',
          `<h1>${esc(e.error ?? 'server_error')}</h1><p>${esc(e.error_description ?? e.message ?? '')}</p>`,
        ),
      );
    });
  };

  const dovecotIntrospectionUrl = new URL(`${issuer}/token/introspection`);
  dovecotIntrospectionUrl.username = DOVECOT_CLIENT_ID;
  dovecotIntrospectionUrl.password = dovecotSecret;

  const introspect = async (token: string): Promise<IntrospectionResult> => {
    const res = await fetch(`${issuer}/token/introspection`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: basicAuth(DOVECOT_CLIENT_ID, dovecotSecret),
      },
      body: new URLSearchParams({ token }).toString(),
    });
    if (res.status !== 200) throw new Error(`introspection answered ${res.status}: ${await res.text()}`);
    return (await res.json()) as IntrospectionResult;
  };

  return {
    issuer,
    authorizationUrl: `${issuer}/auth`,
    tokenUrl: `${issuer}/token`,
    introspectionUrl: `${issuer}/token/introspection`,
    revocationUrl: `${issuer}/token/revocation`,
    users,
    dovecot: {
      clientId: DOVECOT_CLIENT_ID,
      clientSecret: dovecotSecret,
      introspectionUrl: dovecotIntrospectionUrl.toString(),
    },
    tokenRequests,
    authorizationRequests,
    introspect,
    async revoke(token) {
      const info = await introspect(token);
      const owner = info.active && info.client_id ? clients.get(info.client_id) : undefined;
      if (!owner) return;
      const body = new URLSearchParams({ token });
      const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
      if (owner.tokenEndpointAuthMethod === 'client_secret_post') {
        body.set('client_id', owner.clientId);
        body.set('client_secret', owner.clientSecret);
      } else {
        headers.authorization = basicAuth(owner.clientId, owner.clientSecret);
      }
      const res = await fetch(`${issuer}/token/revocation`, {
        method: 'POST',
        headers,
        body: body.toString(),
      });
      if (res.status !== 200) throw new Error(`revocation answered ${res.status}: ${await res.text()}`);
    },
    async addClient(client) {
      if (clients.has(client.clientId) || client.clientId === DOVECOT_CLIENT_ID) {
        throw new Error(`client ${client.clientId} exists already`);
      }
      const metadata = toMetadata(client);
      await provider.Client.validate(metadata);
      // clients that are not in the static list are looked up in the adapter's Client model
      await adapter('Client').upsert(client.clientId, metadata);
      clients.set(client.clientId, client);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
