import * as oidc from 'openid-client';
import { type ErrorCode, MailintakeError } from '../kernel/errors.js';
import { TOKEN_ENDPOINT_TIMEOUT_SECONDS } from '../kernel/limits.js';
import { isLoopbackHost, type OAuthSettings } from './providers.js';

/**
 * The OAuth 2.0 protocol through openid-client (panva; PKCE, state, RFC 9207 issuer check, token endpoint
 * errors): authorization URL, code exchange, refresh, client credentials. Everything provider-specific is in
 * providers.ts; storage and refresh coordination in tokens.ts. Nothing here logs or keeps a token.
 */
export type OAuthClientSettings = OAuthSettings & { clientSecret: string };

export interface TokenSet {
  accessToken: string;
  refreshToken?: string;
  /** Absolute expiry (ms since epoch), when the provider said (`expires_in`). */
  expiresAt?: number;
  /** The scope granted, when the provider said; else the one asked for. */
  scope: string;
}

export function configuration(s: OAuthClientSettings): oidc.Configuration {
  const server: oidc.ServerMetadata = {
    issuer: s.issuer,
    token_endpoint: s.tokenUrl,
    ...(s.authorizationUrl ? { authorization_endpoint: s.authorizationUrl } : {}),
  };
  const auth =
    s.clientAuthentication === 'client_secret_basic'
      ? oidc.ClientSecretBasic(s.clientSecret)
      : oidc.ClientSecretPost(s.clientSecret);
  const config = new oidc.Configuration(server, s.clientId, undefined, auth);
  config.timeout = TOKEN_ENDPOINT_TIMEOUT_SECONDS;
  // http is accepted for loopback only (the settings refuse it elsewhere): a provider on this machine, tests
  const urls = [s.tokenUrl, s.authorizationUrl].filter(Boolean).map((u) => new URL(u));
  if (urls.some((u) => u.protocol === 'http:' && isLoopbackHost(u.hostname)))
    oidc.allowInsecureRequests(config);
  return config;
}

/** Extra authorization parameters a provider needs to hand out a refresh token and to sign in the right user. */
function providerParams(s: OAuthClientSettings): Record<string, string> {
  if (s.provider === 'google') {
    // Google issues a refresh token only with access_type=offline, and again only when consent is shown
    return { access_type: 'offline', prompt: 'consent' };
  }
  if (s.provider === 'generic') return { prompt: 'consent' };
  return {};
}

export interface AuthorizationRequest {
  url: string;
  state: string;
  codeVerifier: string;
}

export async function authorizationRequest(
  s: OAuthClientSettings,
  redirectUrl: string,
  loginHint: string | undefined,
): Promise<AuthorizationRequest> {
  const codeVerifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const url = oidc.buildAuthorizationUrl(configuration(s), {
    redirect_uri: redirectUrl,
    response_type: 'code',
    scope: s.scope,
    state,
    code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    ...(loginHint ? { login_hint: loginHint } : {}),
    ...providerParams(s),
  });
  return { url: url.href, state, codeVerifier };
}

/** The code exchange for the callback URL the browser landed on. Errors: see oauthError. */
export async function exchangeCode(
  s: OAuthClientSettings,
  callbackUrl: URL,
  expected: { state: string; codeVerifier: string; redirectUrl: string },
): Promise<TokenSet> {
  // openid-client derives redirect_uri from the URL it is given: give it the registered one, with the
  // callback's parameters (the request may have reached us under another host name, e.g. behind a proxy)
  const current = new URL(expected.redirectUrl);
  current.search = callbackUrl.search;
  const res = await oidc.authorizationCodeGrant(configuration(s), current, {
    expectedState: expected.state,
    pkceCodeVerifier: expected.codeVerifier,
  });
  return tokenSet(res, s.scope);
}

export async function refresh(s: OAuthClientSettings, refreshToken: string): Promise<TokenSet> {
  // The scope is sent on refresh: without it Microsoft returns a token for whatever resource it picks first
  // (Znuny's mailboxes broke that way).
  const res = await oidc.refreshTokenGrant(configuration(s), refreshToken, { scope: s.scope });
  return tokenSet(res, s.scope);
}

export async function clientCredentials(s: OAuthClientSettings): Promise<TokenSet> {
  const res = await oidc.clientCredentialsGrant(configuration(s), { scope: s.scope });
  return tokenSet(res, s.scope);
}

function tokenSet(res: oidc.TokenEndpointResponse, askedScope: string): TokenSet {
  const expiresIn = typeof res.expires_in === 'number' ? res.expires_in : undefined;
  return {
    accessToken: res.access_token,
    ...(res.refresh_token ? { refreshToken: res.refresh_token } : {}),
    ...(expiresIn !== undefined ? { expiresAt: Date.now() + expiresIn * 1000 } : {}),
    scope: typeof res.scope === 'string' && res.scope ? res.scope : askedScope,
  };
}

/** The OAuth error code and description a provider answered, when it answered one. */
export function providerError(err: unknown): { error: string; description?: string; status?: number } | null {
  // A token endpoint that refuses the client's credentials may answer 401 with the error in WWW-Authenticate
  // (RFC 6749 §5.2 allows it; oidc-provider does): openid-client reports the challenge, not the body.
  if (err instanceof oidc.WWWAuthenticateChallengeError) {
    const params = err.cause.find((c) => c.parameters.error)?.parameters;
    if (params?.error) {
      return {
        error: params.error,
        ...(params.error_description ? { description: params.error_description } : {}),
        status: err.status,
      };
    }
    return { error: err.status === 401 ? 'invalid_client' : 'server_error', status: err.status };
  }
  if (err instanceof oidc.AuthorizationResponseError || err instanceof oidc.ResponseBodyError) {
    return {
      error: err.error,
      ...(err.error_description ? { description: err.error_description } : {}),
      ...(err instanceof oidc.ResponseBodyError ? { status: err.status } : {}),
    };
  }
  return null;
}

/**
 * A failure at the token endpoint as a coded error for a refresh or client-credentials grant (the fetch path):
 * invalid_grant ends the tokens (re-authorize), invalid_client is the app registration, anything else
 * (network, 5xx, timeouts) is the provider being unavailable and is retried next round.
 */
export function grantError(err: unknown, s: OAuthClientSettings, what: string): MailintakeError {
  const p = providerError(err);
  const said = p ? ` The provider said: ${p.error}${p.description ? ` (${clip(p.description)})` : ''}.` : '';
  const make = (code: ErrorCode, message: string) =>
    new MailintakeError(code, message, {
      cause: err,
      details: { tokenUrl: s.tokenUrl, ...(p ? { providerError: p.error } : {}) },
    });
  if (p?.error === 'invalid_grant') {
    return make(
      'OAUTH_REAUTHORIZE_REQUIRED',
      `${what}: the provider no longer accepts the refresh token (revoked, expired, the user's password changed, or consent was withdrawn).${said} Authorize again.`,
    );
  }
  if (p?.error === 'invalid_client' || p?.error === 'unauthorized_client') {
    return make(
      'OAUTH_CLIENT_REJECTED',
      `${what}: the provider refused the app registration (client ID "${s.clientId}").${said} Check "oauth.clientId" and "oauth.clientSecret" (secrets expire).`,
    );
  }
  if (p?.error === 'invalid_scope') {
    return make(
      'OAUTH_REAUTHORIZE_REQUIRED',
      `${what}: the provider refused the scope "${s.scope}".${said} Check "oauth.scope" and the app's permissions, then authorize again.`,
    );
  }
  if (p) {
    return make('OAUTH_PROVIDER_UNAVAILABLE', `${what}: the token endpoint refused the request.${said}`);
  }
  return make(
    'OAUTH_PROVIDER_UNAVAILABLE',
    `${what}: the token endpoint ${s.tokenUrl} could not be reached or did not answer (${describe(err)}). The next round tries again.`,
  );
}

/** What went wrong below the OAuth layer (DNS, refused, TLS, timeout), in a few words, never a token. */
export function describe(err: unknown): string {
  const chain: string[] = [];
  let e: unknown = err;
  for (let i = 0; i < 4 && e; i++) {
    const x = e as { code?: string; message?: string; cause?: unknown };
    if (x.code && !chain.includes(x.code)) chain.push(x.code);
    else if (x.message && chain.length === 0) chain.push(x.message);
    e = x.cause;
  }
  return clip(chain.join(': ') || String(err));
}

function clip(s: string): string {
  return s.length > 300 ? `${s.slice(0, 300)}…` : s;
}
