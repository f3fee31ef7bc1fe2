import { createRoute, z } from '@hono/zod-openapi';
import { withActor } from '../../kernel/actor.js';
import { isMailintakeError } from '../../kernel/errors.js';
import { type Api, bodyDoc, errors, nameParams, ok, parse, readJson } from '../shared/route-kit.js';
import { authorizedPage, failedPage } from './pages.js';
import type { OAuthService } from './service.js';
import {
  oauthAuthorizationSchema,
  oauthCompletedSchema,
  oauthProvidersSchema,
  oauthTokensSchema,
} from './views.js';

/** OAuth 2.0: consent and token state (never a token), for mailboxes and the outgoing SMTP server. */

const completeBody = z.strictObject({
  callbackUrl: z.string().min(1).max(8000, 'too long for a redirect URL'),
});
const URL_TO_OPEN = 'The URL to open (valid 10 minutes)';

export const authorizeMailbox = createRoute({
  method: 'post',
  path: '/api/v1/mailboxes/{name}/oauth/authorize',
  summary:
    "Start the OAuth consent: open `authorizationUrl`, sign in as the mailbox's user and approve; the provider returns the browser to `redirectUrl`",
  request: { params: nameParams },
  responses: { 200: ok(URL_TO_OPEN, oauthAuthorizationSchema), ...errors(400, 401, 404) },
});
export const mailboxTokens = createRoute({
  method: 'get',
  path: '/api/v1/mailboxes/{name}/oauth',
  summary: 'The OAuth token state (status, account, scope, expiry, last refresh, last error); never a token',
  request: { params: nameParams },
  responses: { 200: ok('Token state', oauthTokensSchema), ...errors(400, 401, 404) },
});
export const revokeMailboxTokens = createRoute({
  method: 'delete',
  path: '/api/v1/mailboxes/{name}/oauth',
  summary: "Discard the mailbox's tokens; it is not fetched until authorized again",
  request: { params: nameParams },
  responses: { 204: { description: 'Discarded' }, ...errors(400, 401, 404) },
});
export const authorizeSmtp = createRoute({
  method: 'post',
  path: '/api/v1/settings/smtp/oauth/authorize',
  summary: 'Start the OAuth consent of the outgoing SMTP server (SASL XOAUTH2); sign in as its username',
  responses: { 200: ok(URL_TO_OPEN, oauthAuthorizationSchema), ...errors(400, 401) },
});
export const smtpTokens = createRoute({
  method: 'get',
  path: '/api/v1/settings/smtp/oauth',
  summary: "The outgoing SMTP server's OAuth token state; never a token",
  responses: { 200: ok('Token state', oauthTokensSchema), ...errors(400, 401) },
});
export const authorizePortalSmtp = createRoute({
  method: 'post',
  path: '/api/v1/portals/{name}/smtp/oauth/authorize',
  summary: "Start the OAuth consent of the portal's own outgoing SMTP server; sign in as its username",
  request: { params: nameParams },
  responses: { 200: ok(URL_TO_OPEN, oauthAuthorizationSchema), ...errors(400, 401, 404) },
});
export const portalSmtpTokens = createRoute({
  method: 'get',
  path: '/api/v1/portals/{name}/smtp/oauth',
  summary: "The OAuth token state of the portal's own outgoing SMTP server; never a token",
  request: { params: nameParams },
  responses: { 200: ok('Token state', oauthTokensSchema), ...errors(400, 401, 404) },
});
export const completeConsent = createRoute({
  method: 'post',
  path: '/api/v1/oauth/complete',
  summary:
    'Complete a consent with the address the provider sent the browser to (when the browser could not reach /oauth/callback)',
  request: { body: bodyDoc(completeBody) },
  responses: { 200: ok('Authorized', oauthCompletedSchema), ...errors(400, 401, 502) },
});
export const providers = createRoute({
  method: 'get',
  path: '/api/v1/oauth/providers',
  summary: 'Provider presets (scope per protocol) and the redirect URL to register at the provider',
  responses: { 200: ok('Presets', oauthProvidersSchema), ...errors(401) },
});

const page = (description: string) => ({ description, content: { 'text/html': { schema: z.string() } } });
export const callbackPage = createRoute({
  method: 'get',
  path: '/oauth/callback',
  summary:
    'Where the provider redirects the browser after the consent (no API key: the one-use state authorizes it). Answers an HTML page saying what happened and what to fix.',
  security: [],
  parameters: [
    { name: 'state', in: 'query', schema: { type: 'string' } },
    { name: 'code', in: 'query', schema: { type: 'string' } },
    { name: 'error', in: 'query', schema: { type: 'string' } },
  ],
  responses: {
    200: page('Authorized'),
    400: page('Failed; the page says what to fix'),
    502: page('The provider could not be reached'),
  },
});

export function mountOAuthRoutes(app: Api, services: { oauth: OAuthService }): void {
  app.openapi(authorizeMailbox, async (c) =>
    c.json(await services.oauth.authorize(c.req.valid('param').name), 200),
  );
  app.openapi(mailboxTokens, async (c) =>
    c.json(await services.oauth.status(c.req.valid('param').name), 200),
  );
  app.openapi(revokeMailboxTokens, async (c) => {
    await services.oauth.revoke(c.req.valid('param').name);
    return c.body(null, 204);
  });
  app.openapi(authorizeSmtp, async (c) => c.json(await services.oauth.authorizeSmtp(), 200));
  app.openapi(smtpTokens, async (c) => c.json(await services.oauth.smtpStatus(), 200));
  app.openapi(authorizePortalSmtp, async (c) =>
    c.json(await services.oauth.authorizeSmtp(c.req.valid('param').name), 200),
  );
  app.openapi(portalSmtpTokens, async (c) =>
    c.json(await services.oauth.smtpStatus(c.req.valid('param').name), 200),
  );
  app.openapi(completeConsent, async (c) => {
    const { callbackUrl } = parse(completeBody, await readJson(c));
    return c.json(await services.oauth.complete(callbackUrl), 200);
  });
  app.openapi(providers, (c) => c.json(services.oauth.providers(), 200));
}

/**
 * The provider redirects the browser here. No API key: the one-use state in the URL is the authorization,
 * and the answer is a page for a person, saying what happened and what to fix.
 */
export function mountOAuthCallback(
  app: Api,
  services: { oauth: OAuthService },
  logError: (message: string, fields: Record<string, unknown>) => void,
): void {
  app.openapi(callbackPage, async (c) => {
    try {
      const done = await withActor('oauth-callback', () => services.oauth.complete(c.req.url));
      return c.html(authorizedPage(done), 200);
    } catch (err) {
      const coded = isMailintakeError(err) ? err : null;
      if (!coded) logError('oauth callback failed', { error: String(err) });
      const html = failedPage(
        coded?.code ?? 'INTERNAL',
        coded?.message ?? 'An unexpected error; the service log has the details.',
      );
      return coded && coded.code !== 'OAUTH_PROVIDER_UNAVAILABLE' ? c.html(html, 400) : c.html(html, 502);
    }
  });
}
