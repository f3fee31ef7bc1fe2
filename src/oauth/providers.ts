import { z } from 'zod';

/**
 * OAuth 2.0 settings of a mailbox (or of the outgoing SMTP server), as the reference names them: Client ID,
 * Client Secret, Authorization URL, Token URL, Scope; the Redirect URL is Mailintake's own (see redirectUrl).
 * A provider preset fills the URLs and the scope for the mailbox's protocol; the admin may still override each.
 */
export const OAUTH_PROVIDERS = ['microsoft', 'google', 'generic'] as const;
export type OAuthProvider = (typeof OAUTH_PROVIDERS)[number];

/** What the tokens are used for: a mailbox's protocol, or the outgoing SMTP server. */
export type OAuthUse = 'imap' | 'imaps' | 'pop' | 'pops' | 'graph' | 'ews' | 'smtp';

export type OAuthFlow = 'authorization-code' | 'client-credentials';
export type ClientAuthentication = 'client_secret_post' | 'client_secret_basic';

/** Loopback hosts may use plain http (a provider on this machine, tests); everything else must be https. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

const endpointUrl = (what: string) =>
  z
    .string()
    .trim()
    .refine((v) => {
      try {
        const u = new URL(v);
        if (u.username || u.password || u.hash) return false;
        return u.protocol === 'https:' || (u.protocol === 'http:' && isLoopbackHost(u.hostname));
      } catch {
        return false;
      }
    }, `must be the provider's https:// ${what} (http only for localhost), without credentials or fragment`);

/** Microsoft's tenant: a GUID, a verified domain, or organizations / common / consumers. */
const tenant = z
  .string()
  .trim()
  .regex(
    /^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[A-Za-z0-9][A-Za-z0-9.-]*)$/i,
    'must be the directory (tenant) ID, a verified domain such as contoso.onmicrosoft.com, or "organizations"',
  );

export const oauthInputSchema = z
  .object({
    /** Fills the URLs and scope below (Microsoft 365, Google) or leaves them to the admin (generic). */
    provider: z.enum(OAUTH_PROVIDERS).default('generic'),
    /**
     * `authorization-code` (default): an admin signs in as the mailbox's user and consents once; refreshed.
     * `client-credentials`: an application token without a user (Graph and EWS on Microsoft 365, or generic).
     */
    flow: z.enum(['authorization-code', 'client-credentials']).default('authorization-code'),
    /** Microsoft only: the directory (tenant); default "organizations" (any work or school account). */
    tenant: tenant.optional(),
    clientId: z.string().trim().min(1, 'the Client ID from the app registration is required').max(500),
    /** Sealed at rest like a password; an edit that leaves it out keeps the stored one. */
    clientSecret: z.string().min(1, 'must not be empty').max(2000).optional(),
    authorizationUrl: endpointUrl('authorization URL').optional(),
    tokenUrl: endpointUrl('token URL').optional(),
    /** Space-separated (commas are accepted, as the reference writes "Mail.ReadWrite,offline_access"). */
    scope: z
      .string()
      .trim()
      .min(1, 'must not be empty')
      .max(2000)
      .transform((s) =>
        s
          .split(/[\s,]+/)
          .filter(Boolean)
          .join(' '),
      )
      .optional(),
    /**
     * The provider's issuer identifier (RFC 9207: a callback that names another issuer is refused, against
     * mix-up attacks). Presets know it; generic: default the authorization URL's origin.
     */
    issuer: z.string().trim().url('must be a URL').optional(),
    /** How the client secret is sent to the token endpoint. Presets: post (what Microsoft and Google document); generic: basic (RFC 6749 §2.3.1). */
    clientAuthentication: z.enum(['client_secret_post', 'client_secret_basic']).optional(),
  })
  .strict();

/** The settings with the preset applied: every URL and the scope filled. The secret is kept apart. */
export interface OAuthSettings {
  provider: OAuthProvider;
  flow: OAuthFlow;
  tenant?: string;
  clientId: string;
  authorizationUrl: string;
  tokenUrl: string;
  scope: string;
  issuer: string;
  clientAuthentication: ClientAuthentication;
}

/** Scopes of Microsoft 365 per use (delegated), as Microsoft documents them for each protocol. */
const MICROSOFT_SCOPES: Record<OAuthUse, string> = {
  imap: 'https://outlook.office365.com/IMAP.AccessAsUser.All offline_access',
  imaps: 'https://outlook.office365.com/IMAP.AccessAsUser.All offline_access',
  pop: 'https://outlook.office365.com/POP.AccessAsUser.All offline_access',
  pops: 'https://outlook.office365.com/POP.AccessAsUser.All offline_access',
  ews: 'https://outlook.office365.com/EWS.AccessAsUser.All offline_access',
  graph: 'Mail.ReadWrite offline_access',
  smtp: 'https://outlook.office365.com/SMTP.Send offline_access',
};

/** App-only (client credentials): Microsoft grants what the app registration holds, asked for with `/.default`. */
const MICROSOFT_APP_SCOPES: Partial<Record<OAuthUse, string>> = {
  graph: 'https://graph.microsoft.com/.default',
  ews: 'https://outlook.office365.com/.default',
};

/** Google: full mail access is the one scope IMAP, POP3 and SMTP accept. */
const GOOGLE_SCOPE = 'https://mail.google.com/';

const USE_LABEL: Record<OAuthUse, string> = {
  imap: 'IMAP',
  imaps: 'IMAP',
  pop: 'POP3',
  pops: 'POP3',
  graph: 'Graph',
  ews: 'EWS',
  smtp: 'SMTP',
};

export interface OAuthIssue {
  field: string;
  message: string;
}

/**
 * Applies the provider preset for `use` and checks what the preset cannot fill. Issues name the field inside
 * `oauth` (e.g. `oauth.tokenUrl`), so the admin is told exactly what to type.
 */
export function resolveOAuth(
  input: z.output<typeof oauthInputSchema>,
  use: OAuthUse,
  opts: { graphEndpoint?: string } = {},
): { settings?: OAuthSettings; issues: OAuthIssue[] } {
  const issues: OAuthIssue[] = [];
  const app = input.flow === 'client-credentials';
  if (app && use !== 'graph' && use !== 'ews') {
    issues.push({
      field: 'oauth.flow',
      message: `"client-credentials" (an application token without a user) works with Graph and EWS only; ${USE_LABEL[use]} needs "authorization-code"`,
    });
  }
  if (input.provider === 'google' && (use === 'graph' || use === 'ews')) {
    issues.push({
      field: 'oauth.provider',
      message: `Google does not serve ${use === 'graph' ? 'Microsoft Graph' : 'EWS'}`,
    });
  }
  if (input.provider === 'google' && app) {
    issues.push({ field: 'oauth.flow', message: 'Google mailboxes need "authorization-code"' });
  }
  if (input.tenant !== undefined && input.provider !== 'microsoft') {
    issues.push({ field: 'oauth.tenant', message: 'only used with provider "microsoft"' });
  }
  if (input.clientSecret === undefined) {
    // Public clients (no secret) exist, but every provider here issues mailbox tokens to confidential clients
    issues.push({ field: 'oauth.clientSecret', message: 'required (the secret of the app registration)' });
  }
  let authorizationUrl = input.authorizationUrl;
  let tokenUrl = input.tokenUrl;
  let scope = input.scope;
  let issuer = input.issuer;
  let clientAuthentication = input.clientAuthentication;
  if (input.provider === 'microsoft') {
    const t = input.tenant ?? 'organizations';
    if (app && /^(organizations|common|consumers)$/i.test(t)) {
      issues.push({
        field: 'oauth.tenant',
        message: 'an application token needs your directory (tenant) ID or domain, not "organizations"',
      });
    }
    const base = `https://login.microsoftonline.com/${encodeURIComponent(t)}`;
    authorizationUrl ??= `${base}/oauth2/v2.0/authorize`;
    tokenUrl ??= `${base}/oauth2/v2.0/token`;
    issuer ??= `${base}/v2.0`;
    if (scope === undefined) {
      scope = app ? MICROSOFT_APP_SCOPES[use] : MICROSOFT_SCOPES[use];
      // national clouds: Graph's delegated scope belongs to the endpoint's resource
      if (
        use === 'graph' &&
        !app &&
        opts.graphEndpoint &&
        opts.graphEndpoint !== 'https://graph.microsoft.com'
      ) {
        scope = `${opts.graphEndpoint}/Mail.ReadWrite offline_access`;
      }
      if (use === 'graph' && app && opts.graphEndpoint) scope = `${opts.graphEndpoint}/.default`;
    }
    clientAuthentication ??= 'client_secret_post';
  } else if (input.provider === 'google') {
    authorizationUrl ??= 'https://accounts.google.com/o/oauth2/v2/auth';
    tokenUrl ??= 'https://oauth2.googleapis.com/token';
    issuer ??= 'https://accounts.google.com';
    scope ??= GOOGLE_SCOPE;
    clientAuthentication ??= 'client_secret_post';
  } else {
    if (authorizationUrl === undefined && !app) {
      issues.push({ field: 'oauth.authorizationUrl', message: 'required with provider "generic"' });
    }
    if (tokenUrl === undefined)
      issues.push({ field: 'oauth.tokenUrl', message: 'required with provider "generic"' });
    if (scope === undefined)
      issues.push({ field: 'oauth.scope', message: 'required with provider "generic"' });
    if (issuer === undefined) {
      const from = authorizationUrl ?? tokenUrl;
      if (from !== undefined) issuer = new URL(from).origin;
    }
    clientAuthentication ??= 'client_secret_basic';
  }
  if (issues.length > 0 || !tokenUrl || !scope || !issuer || !clientAuthentication) return { issues };
  return {
    issues,
    settings: {
      provider: input.provider,
      flow: input.flow,
      ...(input.provider === 'microsoft' ? { tenant: input.tenant ?? 'organizations' } : {}),
      clientId: input.clientId,
      authorizationUrl: authorizationUrl ?? '',
      tokenUrl,
      scope,
      issuer,
      clientAuthentication,
    },
  };
}

/** The presets as the API offers them to a form: what each provider fills for each use. */
export function providerPresets(): Record<
  OAuthProvider,
  Partial<Record<OAuthUse, { scope: string | null; appScope: string | null }>>
> {
  const uses: OAuthUse[] = ['imap', 'imaps', 'pop', 'pops', 'ews', 'graph', 'smtp'];
  const out = { microsoft: {}, google: {}, generic: {} } as Record<
    OAuthProvider,
    Partial<Record<OAuthUse, { scope: string | null; appScope: string | null }>>
  >;
  for (const use of uses) {
    out.microsoft[use] = { scope: MICROSOFT_SCOPES[use], appScope: MICROSOFT_APP_SCOPES[use] ?? null };
    if (use !== 'graph' && use !== 'ews') out.google[use] = { scope: GOOGLE_SCOPE, appScope: null };
    out.generic[use] = { scope: null, appScope: null };
  }
  return out;
}
