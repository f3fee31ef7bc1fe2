import { z } from '@hono/zod-openapi';
import { timestamp } from '../shared/page.js';

/** What admins see of OAuth: the settings without the secret, the tokens' state without a token. */

export const oauthTokensSchema = z
  .object({
    status: z.enum(['not-authorized', 'authorized', 'reauthorize-required']),
    flow: z.string().openapi({ enum: ['authorization-code', 'client-credentials'] }),
    account: z.string().nullable(),
    grantedScope: z.string().nullable(),
    accessTokenExpiresAt: z.string().nullable(),
    refreshTokenSet: z.boolean(),
    obtainedAt: z.string().nullable(),
    lastRefreshAt: z.string().nullable(),
    refreshCount: z.number().int(),
    lastError: z.object({ code: z.string(), message: z.string() }).nullable(),
    pending: z.object({ startedAt: z.string(), expiresAt: z.string(), startedBy: z.string() }).nullable(),
  })
  .openapi('OAuthTokens');

export const oauthAuthorizationSchema = z
  .object({
    authorizationUrl: z.string(),
    redirectUrl: z.string().openapi({ description: 'Register exactly this at the provider' }),
    expiresAt: timestamp(),
  })
  .openapi('OAuthAuthorization');

export const oauthCompletedSchema = z
  .object({
    owner: z.string(),
    label: z.string(),
    account: z.string().nullable(),
    grantedScope: z.string(),
    accessTokenExpiresAt: z.string().nullable(),
    refreshTokenSet: z.boolean(),
    warnings: z.array(z.string()),
  })
  .openapi('OAuthCompleted');

export const oauthProvidersSchema = z.object({
  redirectUrl: z.string(),
  presets: z.record(z.string(), z.unknown()),
});

/** A mailbox's OAuth settings (the client secret only as `clientSecretSet`) and its tokens' state. */
export const mailboxOAuthSchema = z.object({
  provider: z.string().openapi({ enum: ['microsoft', 'google', 'generic'] }),
  flow: z.string(),
  tenant: z.string().nullable(),
  clientId: z.string(),
  clientSecretSet: z.boolean(),
  authorizationUrl: z.string().nullable(),
  tokenUrl: z.string(),
  scope: z.string(),
  issuer: z.string(),
  /** The redirect URL to register at the provider (MAILINTAKE_PUBLIC_URL + /oauth/callback). */
  redirectUrl: z.string(),
  /** The tokens' state (never a token): filled by the services, null where not looked up. */
  tokens: oauthTokensSchema.nullable(),
  /** Things to know (e.g. Graph: the outgoing server uses the same app and mailbox, see smtp-settings.ts). */
  warnings: z.array(z.string()),
});
export type MailboxOAuthView = z.infer<typeof mailboxOAuthSchema>;
