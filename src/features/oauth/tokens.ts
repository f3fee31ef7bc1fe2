import crypto from 'node:crypto';
import os from 'node:os';
import type { Selectable } from 'kysely';
import { z } from 'zod';
import type { MailboxSettings } from '../../connectors/settings.js';
import { currentActor } from '../../kernel/actor.js';
import { MailintakeError, toMailintakeError } from '../../kernel/errors.js';
import {
  PENDING_TTL_MS,
  REFRESH_LEASE_MS,
  REFRESH_MARGIN_MS,
  REFRESH_WAIT_POLL_MS,
} from '../../kernel/limits.js';
import type { Logger } from '../../kernel/logger.js';
import type { SecretBox } from '../../kernel/secret-box.js';
import {
  authorizationRequest,
  clientCredentials,
  describe,
  exchangeCode,
  grantError,
  type OAuthClientSettings,
  providerError,
  refresh,
  type TokenSet,
} from '../../oauth/client.js';
import type { AccessTokenSource } from '../../oauth/token-source.js';
import { nowIso, type Store } from '../../store/db.js';
import type { OAuthTokenTable } from '../../store/schema.js';
import { parseStored } from '../../store/stored-json.js';
import { systemLog } from '../../store/system-log.js';
import { type Tx, withTransaction } from '../../store/tx.js';

/** The PKCE verifier of a started consent, sealed until the provider redirects back. */
const sealedPendingSchema = z.object({ codeVerifier: z.string() });
/** An owner's tokens, sealed. */
const sealedTokensSchema = z.object({ accessToken: z.string(), refreshToken: z.string().optional() });

export { PENDING_TTL_MS, REFRESH_MARGIN_MS };

/** Whose tokens: a mailbox ('mailbox:<id>', stable across renames) or the outgoing SMTP server ('smtp'). */
export interface OAuthOwner {
  owner: string;
  /** For messages: 'mailbox "support"', 'the outgoing SMTP server'. */
  label: string;
  oauth: OAuthClientSettings;
  /** The account that must sign in (login_hint, and the login the consent is checked with). */
  username: string;
  /** The CLI command that starts its consent, for messages (e.g. `mailintake mailbox authorize support`). */
  authorizeCommand: string;
}

/** Whose OAuth tokens a mailbox uses: kept by id, so a rename keeps them. */
export function mailboxOwnerId(id: number): string {
  return `mailbox:${id}`;
}

/** The OAuth identity of a mailbox (null when it logs in with a password or a static token). */
export function mailboxOAuthOwner(
  id: number,
  settings: Pick<MailboxSettings, 'auth' | 'oauth' | 'name' | 'username'>,
): OAuthOwner | null {
  return settings.auth === 'oauth2' && settings.oauth
    ? {
        owner: mailboxOwnerId(id),
        label: `mailbox "${settings.name}"`,
        oauth: settings.oauth,
        username: settings.username,
        authorizeCommand: `mailintake mailbox authorize ${settings.name}`,
      }
    : null;
}

export type OAuthState = 'not-authorized' | 'authorized' | 'reauthorize-required';

/** What admins see of the tokens: never a token. */
export interface OAuthTokenView {
  status: OAuthState;
  flow: string;
  account: string | null;
  grantedScope: string | null;
  accessTokenExpiresAt: string | null;
  refreshTokenSet: boolean;
  obtainedAt: string | null;
  lastRefreshAt: string | null;
  refreshCount: number;
  lastError: { code: string; message: string } | null;
  /** An authorization started and not completed yet. */
  pending: { startedAt: string; expiresAt: string; startedBy: string } | null;
}

export interface StartedAuthorization {
  authorizationUrl: string;
  redirectUrl: string;
  expiresAt: string;
}

export interface CompletedAuthorization {
  owner: string;
  label: string;
  account: string | null;
  grantedScope: string;
  accessTokenExpiresAt: string | null;
  refreshTokenSet: boolean;
  /** Things the admin should know although the tokens were stored (no refresh token, connection check failed). */
  warnings: string[];
}

/**
 * How the callback finds who the authorization was for, and how it checks the new tokens: `verify` logs in to
 * the mail server with them as `username` (IMAP/POP3 XOAUTH2, Graph/EWS with the bearer, SMTP). The server
 * is the judge of whose token it is, which works with every provider; a refusal means the consent was given
 * by another account than the mailbox's user (or without the mail permission), and nothing is stored.
 */
export type OwnerResolver = (
  owner: string,
) => Promise<{ who: OAuthOwner; verify: (tokens: AccessTokenSource) => Promise<void> }>;

interface Sealed {
  accessToken: string;
  refreshToken?: string;
}

/**
 * OAuth 2.0 tokens at rest and in use. Tokens are sealed with the secret box. Refreshing is coordinated through
 * the database both processes share: a refresh lease on the token row (claim by UPDATE), because providers
 * that rotate refresh tokens (Microsoft may, oidc-provider does) accept each one once: a second concurrent
 * refresh would get invalid_grant and end the mailbox's authorization. The rotated refresh token is saved in the
 * same statement that saves the access token, before it is handed out.
 */
export class OAuthTokens {
  private readonly lockOwner = `${os.hostname()}:${process.pid}:${crypto.randomBytes(4).toString('hex')}`;
  /** Refreshes running in this process, per owner: callers at the same time share one. */
  private readonly inFlight = new Map<string, Promise<string>>();

  constructor(
    private readonly o: {
      store: Store;
      box: SecretBox;
      logger: Logger;
      /** Mailintake's redirect URL (public base URL + /oauth/callback), registered at the provider. */
      redirectUrl: string;
      /** Whether `start` probes the authorization URL for an error page (default true). */
      preflight?: boolean;
    },
  ) {}

  /** What the tokens are for; stored with them and with a pending authorization. */
  static binding(who: OAuthOwner): string {
    const s = who.oauth;
    return JSON.stringify({
      clientId: s.clientId,
      tokenUrl: s.tokenUrl,
      scope: s.scope,
      flow: s.flow,
      account: who.username.toLowerCase(),
    });
  }

  // ---- consent -------------------------------------------------------------------------------------------

  /** Starts an authorization-code consent: the URL to open. The PKCE verifier stays here, sealed. */
  async start(who: OAuthOwner): Promise<StartedAuthorization> {
    if (who.oauth.flow !== 'authorization-code') {
      throw new MailintakeError(
        'INVALID_SETTINGS',
        `${who.label} uses "client-credentials": there is no consent to give; Mailintake obtains application tokens by itself`,
        { details: { fields: [{ field: 'oauth.flow', message: 'no consent with client-credentials' }] } },
      );
    }
    const req = await authorizationRequest(who.oauth, this.o.redirectUrl, who.username);
    if (this.o.preflight !== false) await this.preflight(who, req.url);
    const now = Date.now();
    const expiresAt = new Date(now + PENDING_TTL_MS).toISOString();
    await withTransaction(this.o.store, async (tx) => {
      // expired links of anyone are swept here; an owner keeps at most its newest few
      await tx.deleteFrom('oauth_pending').where('expires_at', '<', new Date(now).toISOString()).execute();
      await tx
        .insertInto('oauth_pending')
        .values({
          state: req.state,
          owner: who.owner,
          binding: OAuthTokens.binding(who),
          sealed: this.o.box.seal(JSON.stringify({ codeVerifier: req.codeVerifier })),
          redirect_url: this.o.redirectUrl,
          started_by: currentActor(),
          created_at: new Date(now).toISOString(),
          expires_at: expiresAt,
        })
        .execute();
      await systemLog(tx, {
        level: 'info',
        category: 'oauth',
        message: `authorization of ${who.label} started`,
        details: { owner: who.owner, clientId: who.oauth.clientId, redirectUrl: this.o.redirectUrl },
      });
    });
    return { authorizationUrl: req.url, redirectUrl: this.o.redirectUrl, expiresAt };
  }

  /**
   * A provider that cannot redirect back (an unregistered redirect URL, an unknown client ID) shows its own
   * error page instead of the sign-in: we ask for the URL once ourselves and say what to fix before the admin
   * is sent there. A provider we cannot reach from here is not an error (the admin's browser may reach it).
   */
  private async preflight(who: OAuthOwner, url: string): Promise<void> {
    let res: Response;
    try {
      res = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(10_000) });
    } catch (err) {
      this.o.logger.info('authorization URL not reachable from this host; not checked', {
        owner: who.owner,
        error: describe(err),
      });
      return;
    }
    if (res.status < 400) {
      await res.body?.cancel();
      return;
    }
    const text = (await res.text().catch(() => ''))
      .replace(/<(script|style)[\s\S]*?<\/\1>/gi, ' ')
      .replace(/<[^>]+>/g, ' ')
      .replace(/\s+/g, ' ')
      .trim()
      .slice(0, 400);
    const redirectProblem = /redirect/i.test(text);
    throw new MailintakeError(
      'OAUTH_CONSENT_FAILED',
      redirectProblem
        ? `The provider refused the authorization request for ${who.label} because of the redirect URL. Register exactly ${this.o.redirectUrl} as a redirect URL of the app (client ID "${who.oauth.clientId}"), or set MAILINTAKE_PUBLIC_URL to the address the app is registered with. The provider said (HTTP ${res.status}): ${text}`
        : `The provider refused the authorization request for ${who.label} (HTTP ${res.status}). Check "oauth.clientId", "oauth.authorizationUrl" and "oauth.scope", and that ${this.o.redirectUrl} is registered as a redirect URL. The provider said: ${text}`,
      { details: { redirectUrl: this.o.redirectUrl, providerStatus: res.status } },
    );
  }

  /**
   * The callback: the URL the provider redirected the browser to (`?code&state` or `?error&state`). The state
   * is used once; the code is exchanged with the PKCE verifier; the tokens are checked by logging in as the
   * mailbox's user (see OwnerResolver) and only then stored. Every failure is OAUTH_CONSENT_FAILED with what to
   * fix, or OAUTH_PROVIDER_UNAVAILABLE.
   */
  async complete(callbackUrl: string, resolve: OwnerResolver): Promise<CompletedAuthorization> {
    let url: URL;
    try {
      url = new URL(callbackUrl, this.o.redirectUrl);
    } catch {
      throw consentFailed('That is not a URL. Paste the whole address the browser showed after the consent.');
    }
    const state = url.searchParams.get('state');
    if (!state) {
      throw consentFailed(
        url.searchParams.get('error')
          ? `The provider returned "${url.searchParams.get('error')}"${url.searchParams.get('error_description') ? ` (${url.searchParams.get('error_description')})` : ''} without the state of an authorization Mailintake started. Start the authorization from Mailintake again.`
          : 'The address has no "state": it is not the redirect of an authorization Mailintake started. Start the authorization from Mailintake and paste the address the browser lands on afterwards.',
      );
    }
    // One use: taken out of the table before anything else happens; a replayed callback finds nothing.
    const pending = await withTransaction(this.o.store, (tx) =>
      tx.deleteFrom('oauth_pending').where('state', '=', state).returningAll().executeTakeFirst(),
    );
    if (!pending) {
      throw consentFailed(
        'This authorization link was used already, or it is unknown here (started on another Mailintake, or the database was reset). Start the authorization again.',
      );
    }
    if (pending.expires_at < nowIso()) {
      throw consentFailed(
        `This authorization was started at ${pending.created_at} and expired after ${PENDING_TTL_MS / 60_000} minutes. Start it again and complete the sign-in within that time.`,
      );
    }
    const { who, verify } = await resolve(pending.owner);
    if (OAuthTokens.binding(who) !== pending.binding) {
      throw consentFailed(
        `The OAuth settings of ${who.label} changed after this authorization was started. Start it again.`,
      );
    }
    const error = url.searchParams.get('error');
    if (error) {
      const description = url.searchParams.get('error_description');
      const said = `${error}${description ? `: ${description}` : ''}`;
      throw consentFailed(
        error === 'access_denied'
          ? `The consent was refused at the provider (${said}). Start again, sign in as "${who.username}" and approve the permissions Mailintake asks for; if your organization requires it, ask an administrator to grant consent for the app.`
          : `The provider ended the authorization with an error (${said}). Check the app registration (client ID "${who.oauth.clientId}", its redirect URL ${pending.redirect_url} and its permissions for scope "${who.oauth.scope}").`,
        { providerError: error },
      );
    }
    const { codeVerifier } = parseStored(sealedPendingSchema, this.o.box.open(pending.sealed), {
      table: 'oauth_pending',
      column: 'sealed',
      id: pending.owner,
    });
    let tokens: TokenSet;
    try {
      tokens = await exchangeCode(who.oauth, url, { state, codeVerifier, redirectUrl: pending.redirect_url });
    } catch (err) {
      throw exchangeError(err, who, pending.redirect_url);
    }
    const warnings: string[] = [];
    if (!tokens.refreshToken) {
      warnings.push(
        `The provider issued no refresh token, so ${who.label} stops when the access token expires${tokens.expiresAt ? ` (${new Date(tokens.expiresAt).toISOString()})` : ''}. Add "offline_access" to "oauth.scope" (Microsoft, most OpenID providers) and authorize again.`,
      );
    }
    let account: string | null = who.username;
    try {
      await verify(memorySource(tokens.accessToken));
    } catch (err) {
      const coded = toMailintakeError(err, 'INTERNAL');
      if (coded.code === 'AUTH_FAILED') {
        throw consentFailed(
          `The provider issued tokens, but the mail server refused them for "${who.username}": the consent was given by another account, or without the mail permission. Sign out at the provider, start again and sign in as "${who.username}" (the reference insists: the account that consents must be the mailbox's user). Nothing was stored.`,
          { serverResponse: coded.details.serverResponse ?? coded.message },
        );
      }
      account = null;
      warnings.push(
        `The tokens were stored, but logging in with them could not be checked: ${coded.code}: ${coded.message}`,
      );
    }
    const row = newTokenRow({
      binding: pending.binding,
      flow: who.oauth.flow,
      sealed: this.sealTokens(tokens),
      access_expires_at: tokens.expiresAt ? new Date(tokens.expiresAt).toISOString() : null,
      scope: tokens.scope,
      account,
    });
    await withTransaction(this.o.store, async (tx) => {
      await tx
        .insertInto('oauth_tokens')
        .values({ owner: who.owner, ...row })
        .onConflict((oc) => oc.column('owner').doUpdateSet(row))
        .execute();
      await systemLog(tx, {
        level: 'info',
        category: 'oauth',
        message: `${who.label} authorized${account ? ` by ${account}` : ''}`,
        details: {
          owner: who.owner,
          account,
          scope: tokens.scope,
          refreshTokenSet: tokens.refreshToken !== undefined,
          ...(warnings.length ? { warnings } : {}),
        },
      });
    });
    return {
      owner: who.owner,
      label: who.label,
      account,
      grantedScope: tokens.scope,
      accessTokenExpiresAt: row.access_expires_at,
      refreshTokenSet: tokens.refreshToken !== undefined,
      warnings,
    };
  }

  // ---- use -------------------------------------------------------------------------------------------------

  /** The access tokens of `who`, for connectors. */
  source(who: OAuthOwner): AccessTokenSource {
    const kind = who.oauth.flow === 'client-credentials' ? 'app' : 'delegated';
    return {
      kind,
      get: async () => {
        const row = await this.usableRow(who);
        if (row) {
          const t = this.openTokens(row);
          if (fresh(row)) return t.accessToken;
          return this.refreshShared(who, t.accessToken);
        }
        // no row: an app token is simply obtained; a delegated one needs the consent first
        return this.refreshShared(who, null);
      },
      renew: async (rejected) => {
        const row = await this.usableRow(who);
        if (row) {
          const t = this.openTokens(row);
          if (t.accessToken !== rejected && fresh(row)) return t.accessToken;
        }
        return this.refreshShared(who, rejected);
      },
    };
  }

  /** The stored row when it can serve tokens; throws the reason when it cannot (no network call then). */
  private async usableRow(who: OAuthOwner): Promise<OAuthRow | undefined> {
    const row = await this.row(who.owner);
    if (!row || row.binding !== OAuthTokens.binding(who)) {
      if (who.oauth.flow === 'client-credentials') return undefined;
      throw new MailintakeError(
        'OAUTH_NOT_AUTHORIZED',
        row
          ? `The OAuth settings of ${who.label} changed since it was authorized; authorize it again.`
          : `${capitalize(who.label)} uses OAuth and has not been authorized yet. Authorize it (CLI: ${who.authorizeCommand}) and sign in as "${who.username}".`,
      );
    }
    if (row.status === 'reauthorize-required') {
      throw new MailintakeError(
        'OAUTH_REAUTHORIZE_REQUIRED',
        `${capitalize(who.label)} must be authorized again (CLI: ${who.authorizeCommand}): ${row.last_error_message ?? 'the provider refused the refresh token'}`,
        { details: { since: row.updated_at } },
      );
    }
    return row;
  }

  private refreshShared(who: OAuthOwner, rejected: string | null): Promise<string> {
    const running = this.inFlight.get(who.owner);
    if (running) return running;
    const p = this.refreshOnce(who, rejected).finally(() => this.inFlight.delete(who.owner));
    this.inFlight.set(who.owner, p);
    return p;
  }

  /**
   * Takes the refresh lease, or waits for the process holding it and uses its result. With the lease: reads the
   * row again (another process may have refreshed just before), asks the token endpoint, and saves the answer
   * (the rotated refresh token with it) before returning the access token.
   */
  private async refreshOnce(who: OAuthOwner, rejected: string | null): Promise<string> {
    const deadline = Date.now() + REFRESH_LEASE_MS + 5_000;
    for (;;) {
      const claimed = await this.claim(who);
      if (claimed) {
        try {
          const row = await this.row(who.owner);
          if (row && row.binding === OAuthTokens.binding(who) && row.status === 'authorized') {
            const t = this.openTokens(row);
            if (t.accessToken !== rejected && fresh(row)) return t.accessToken;
          }
          return await this.obtain(who, row);
        } finally {
          await this.release(who.owner);
        }
      }
      // another process refreshes: use its token once it is there
      await new Promise((r) => setTimeout(r, REFRESH_WAIT_POLL_MS));
      const row = await this.usableRow(who);
      if (row) {
        const t = this.openTokens(row);
        if (t.accessToken !== rejected && fresh(row)) return t.accessToken;
      }
      if (Date.now() > deadline) {
        throw new MailintakeError(
          'OAUTH_PROVIDER_UNAVAILABLE',
          `Another Mailintake process has been refreshing the tokens of ${who.label} for too long; the next round tries again.`,
        );
      }
    }
  }

  /** The grant that gives a new access token: refresh token, or client credentials. Saves the result. */
  private async obtain(who: OAuthOwner, row: OAuthRow | undefined): Promise<string> {
    const app = who.oauth.flow === 'client-credentials';
    const current = row && row.binding === OAuthTokens.binding(who) ? this.openTokens(row) : undefined;
    if (!app && !current?.refreshToken) {
      throw new MailintakeError(
        'OAUTH_REAUTHORIZE_REQUIRED',
        `The access token of ${who.label} expired and the provider issued no refresh token; authorize again (add "offline_access" to the scope so one is issued).`,
      );
    }
    let tokens: TokenSet;
    try {
      tokens = app ? await clientCredentials(who.oauth) : await refresh(who.oauth, current!.refreshToken!);
    } catch (err) {
      let coded = grantError(
        err,
        who.oauth,
        app ? `Getting an application token for ${who.label}` : `Refreshing the tokens of ${who.label}`,
      );
      if (app && coded.code === 'OAUTH_REAUTHORIZE_REQUIRED') {
        // there is no consent to give again: the app registration (its permissions, scope, tenant) is what to fix,
        // and each round asks again, so a fixed registration heals the mailbox without anyone authorizing it
        coded = new MailintakeError(
          'OAUTH_CLIENT_REJECTED',
          `Getting an application token for ${who.label}: the provider refused it (${String(coded.details.providerError)}). Check the app registration's application permissions (with admin consent), "oauth.scope" and "oauth.tenant".`,
          { cause: err, details: coded.details },
        );
      }
      await this.recordFailure(who, coded, row !== undefined);
      throw coded;
    }
    const now = nowIso();
    const sealed = this.sealTokens({
      accessToken: tokens.accessToken,
      // rotated: the new one replaces the old at once; not rotated: the old one stays valid
      ...(tokens.refreshToken || current?.refreshToken
        ? { refreshToken: tokens.refreshToken ?? current?.refreshToken }
        : {}),
      scope: tokens.scope,
    });
    const expires = tokens.expiresAt ? new Date(tokens.expiresAt).toISOString() : null;
    await withTransaction(this.o.store, async (tx) => {
      if (row && row.binding === OAuthTokens.binding(who)) {
        await tx
          .updateTable('oauth_tokens')
          .set((eb) => ({
            sealed,
            access_expires_at: expires,
            scope: tokens.scope,
            last_refresh_at: now,
            refresh_count: eb('refresh_count', '+', 1),
            last_error_code: null,
            last_error_message: null,
            updated_at: now,
          }))
          .where('owner', '=', who.owner)
          .execute();
      } else {
        const values = newTokenRow({
          binding: OAuthTokens.binding(who),
          flow: who.oauth.flow,
          sealed,
          access_expires_at: expires,
          scope: tokens.scope,
          account: null,
          refresh_lock_owner: this.lockOwner,
          refresh_lock_until: row?.refresh_lock_until ?? null,
        });
        await tx
          .insertInto('oauth_tokens')
          .values({ owner: who.owner, ...values })
          .onConflict((oc) => oc.column('owner').doUpdateSet(values))
          .execute();
      }
      if (row?.last_error_code) {
        await systemLog(tx, {
          level: 'info',
          category: 'oauth',
          message: `tokens of ${who.label} refreshed again after ${row.last_error_code}`,
          details: { owner: who.owner },
        });
      }
    });
    this.o.logger.debug('oauth token obtained', {
      owner: who.owner,
      grant: app ? 'client_credentials' : 'refresh_token',
      expiresAt: expires,
      rotated: tokens.refreshToken !== undefined && tokens.refreshToken !== current?.refreshToken,
    });
    return tokens.accessToken;
  }

  private async recordFailure(who: OAuthOwner, err: MailintakeError, rowExists: boolean): Promise<void> {
    if (!rowExists) return;
    const ends = err.code === 'OAUTH_REAUTHORIZE_REQUIRED';
    await withTransaction(this.o.store, async (tx) => {
      await tx
        .updateTable('oauth_tokens')
        .set({
          ...(ends ? { status: 'reauthorize-required' as const } : {}),
          last_error_code: err.code,
          last_error_message: err.message,
          updated_at: nowIso(),
        })
        .where('owner', '=', who.owner)
        .execute();
      if (ends || err.code === 'OAUTH_CLIENT_REJECTED') {
        await systemLog(tx, {
          level: 'error',
          category: 'oauth',
          message: err.message,
          details: { owner: who.owner, code: err.code },
        });
      }
    });
  }

  private async claim(who: OAuthOwner): Promise<boolean> {
    const now = new Date();
    const until = new Date(now.getTime() + REFRESH_LEASE_MS).toISOString();
    const res = await this.o.store.db
      .updateTable('oauth_tokens')
      .set({ refresh_lock_owner: this.lockOwner, refresh_lock_until: until })
      .where('owner', '=', who.owner)
      .where((eb) =>
        eb.or([eb('refresh_lock_until', 'is', null), eb('refresh_lock_until', '<', now.toISOString())]),
      )
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) === 1) return true;
    // No row yet (client credentials, first token): whoever inserts the row holding the lease wins.
    if (who.oauth.flow !== 'client-credentials') return false;
    const exists = await this.row(who.owner);
    if (exists) return false;
    const stamp = nowIso();
    try {
      await this.o.store.db
        .insertInto('oauth_tokens')
        .values({
          owner: who.owner,
          binding: OAuthTokens.binding(who),
          flow: who.oauth.flow,
          sealed: this.sealTokens({ accessToken: '' }),
          access_expires_at: new Date(0).toISOString(),
          scope: null,
          account: null,
          status: 'authorized',
          obtained_at: stamp,
          last_refresh_at: null,
          refresh_count: 0,
          last_error_code: null,
          last_error_message: null,
          refresh_lock_owner: this.lockOwner,
          refresh_lock_until: until,
          updated_at: stamp,
        })
        .execute();
      return true;
    } catch {
      return false; // another process inserted it first
    }
  }

  private async release(owner: string): Promise<void> {
    await this.o.store.db
      .updateTable('oauth_tokens')
      .set({ refresh_lock_owner: null, refresh_lock_until: null })
      .where('owner', '=', owner)
      .where('refresh_lock_owner', '=', this.lockOwner)
      .execute();
  }

  // ---- state -----------------------------------------------------------------------------------------------

  async view(who: OAuthOwner): Promise<OAuthTokenView> {
    const row = await this.row(who.owner);
    const pending = await this.o.store.db
      .selectFrom('oauth_pending')
      .selectAll()
      .where('owner', '=', who.owner)
      .where('expires_at', '>', nowIso())
      .orderBy('created_at', 'desc')
      .executeTakeFirst();
    const bound = row && row.binding === OAuthTokens.binding(who) ? row : undefined;
    const t = bound ? this.openTokens(bound) : undefined;
    return {
      status: !bound || !t?.accessToken ? 'not-authorized' : bound.status,
      flow: who.oauth.flow,
      account: bound?.account ?? null,
      grantedScope: bound?.scope ?? null,
      accessTokenExpiresAt: bound?.access_expires_at ?? null,
      refreshTokenSet: t?.refreshToken !== undefined,
      obtainedAt: bound?.obtained_at ?? null,
      lastRefreshAt: bound?.last_refresh_at ?? null,
      refreshCount: Number(bound?.refresh_count ?? 0),
      lastError:
        bound?.last_error_code && bound.last_error_message
          ? { code: bound.last_error_code, message: bound.last_error_message }
          : null,
      pending: pending
        ? { startedAt: pending.created_at, expiresAt: pending.expires_at, startedBy: pending.started_by }
        : null,
    };
  }

  /** Forgets the tokens and open authorizations of an owner (settings changed, mailbox removed, sign-out). */
  static async forget(tx: Tx, owner: string): Promise<boolean> {
    const res = await tx.deleteFrom('oauth_tokens').where('owner', '=', owner).executeTakeFirst();
    await tx.deleteFrom('oauth_pending').where('owner', '=', owner).execute();
    return Number(res.numDeletedRows) > 0;
  }

  private row(owner: string): Promise<OAuthRow | undefined> {
    return this.o.store.db
      .selectFrom('oauth_tokens')
      .selectAll()
      .where('owner', '=', owner)
      .executeTakeFirst();
  }

  private sealTokens(t: { accessToken: string; refreshToken?: string | undefined; scope?: string }): string {
    const plain: Sealed = {
      accessToken: t.accessToken,
      ...(t.refreshToken ? { refreshToken: t.refreshToken } : {}),
    };
    return this.o.box.seal(JSON.stringify(plain));
  }

  private openTokens(row: OAuthRow): Sealed {
    return parseStored(sealedTokensSchema, this.o.box.open(row.sealed), {
      table: 'oauth_tokens',
      column: 'sealed',
      id: row.owner,
    });
  }
}

type OAuthRow = Selectable<OAuthTokenTable>;

/** A token row as first stored (consent, first application token): authorized, never refreshed, no error. */
function newTokenRow(
  r: Pick<OAuthRow, 'binding' | 'flow' | 'sealed' | 'access_expires_at' | 'scope' | 'account'> &
    Partial<Pick<OAuthRow, 'refresh_lock_owner' | 'refresh_lock_until'>>,
): Omit<OAuthRow, 'owner'> {
  const now = nowIso();
  return {
    refresh_lock_owner: null,
    refresh_lock_until: null,
    ...r,
    status: 'authorized',
    obtained_at: now,
    last_refresh_at: null,
    refresh_count: 0,
    last_error_code: null,
    last_error_message: null,
    updated_at: now,
  };
}

/**
 * Valid for at least the margin (or without a known expiry). The margin is a minute, or a quarter of the token's
 * lifetime when that is shorter: a token that lives less than a minute would otherwise never count as fresh,
 * and every caller, including one that just waited for another process's refresh, would refresh again.
 */
function fresh(row: OAuthRow): boolean {
  if (!row.access_expires_at) return true;
  const expires = new Date(row.access_expires_at).getTime();
  const issued = new Date(row.last_refresh_at ?? row.obtained_at).getTime();
  const margin = Math.min(REFRESH_MARGIN_MS, Math.max(0, (expires - issued) / 4));
  return expires - Date.now() > margin;
}

/** The fresh token of a consent, for the login check before anything is stored. */
function memorySource(token: string): AccessTokenSource {
  return {
    kind: 'delegated',
    get: async () => token,
    renew: async () => {
      throw new MailintakeError('AUTH_FAILED', 'the mail server refused the new access token');
    },
  };
}

function consentFailed(message: string, details: Record<string, unknown> = {}): MailintakeError {
  return new MailintakeError('OAUTH_CONSENT_FAILED', message, { details });
}

/** The code exchange's failures, each with what to fix. */
function exchangeError(err: unknown, who: OAuthOwner, redirectUrl: string): MailintakeError {
  const p = providerError(err);
  if (!p) {
    const msg = err instanceof Error ? err.message : String(err);
    if (/state|iss/i.test(msg) && !(err as { cause?: unknown }).cause) {
      return consentFailed(
        `The provider's answer did not match the authorization Mailintake started (${msg}). Check "oauth.issuer" and start again.`,
      );
    }
    return new MailintakeError(
      'OAUTH_PROVIDER_UNAVAILABLE',
      `The token endpoint ${who.oauth.tokenUrl} could not be reached to finish the authorization (${describe(err)}). Check "oauth.tokenUrl" and start again.`,
      { cause: err },
    );
  }
  const said = `${p.error}${p.description ? `: ${p.description}` : ''}`;
  if (p.error === 'invalid_client' || p.error === 'unauthorized_client') {
    return consentFailed(
      `The provider refused the app's credentials (${said}). Check "oauth.clientSecret" (copy the secret's value, not its ID; secrets expire) and "oauth.clientId" "${who.oauth.clientId}", save, and start again.`,
      { providerError: p.error },
    );
  }
  if (p.error === 'invalid_grant' && /redirect/i.test(p.description ?? '')) {
    return consentFailed(
      `The provider refused the redirect URL (${said}). Register exactly ${redirectUrl} for the app and start again.`,
      { providerError: p.error },
    );
  }
  if (p.error === 'invalid_grant') {
    return consentFailed(
      `The provider refused the authorization code (${said}). It is valid once and for minutes only; start again and finish without waiting.`,
      { providerError: p.error },
    );
  }
  return consentFailed(
    `The token endpoint refused the authorization (${said}). Check the app registration and start again.`,
    {
      providerError: p.error,
    },
  );
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
