import type { Connector } from '../../connectors/connector.js';
import type { MailboxSettings } from '../../connectors/settings.js';
import { MailintakeError } from '../../kernel/errors.js';
import type { SmtpOAuth, SmtpScope, SmtpServers, SmtpSettings } from '../../notify/smtp-settings.js';
import { openSmtpTransport } from '../../notify/smtp-transport.js';
import { providerPresets } from '../../oauth/providers.js';
import type { AccessTokenSource } from '../../oauth/token-source.js';
import type { Store } from '../../store/db.js';
import { systemLog } from '../../store/system-log.js';
import { type Tx, withTransaction } from '../../store/tx.js';
import type { CompletedAuthorization, OAuthTokenView, StartedAuthorization } from './tokens.js';
import { mailboxOAuthOwner, type OAuthOwner, OAuthTokens } from './tokens.js';

/** OAuth 2.0 consent and token state (never a token). */
export interface OAuthService {
  /** Starts a consent for a mailbox: the URL to open; OAUTH_CONSENT_FAILED when the provider refuses it at once. */
  authorize(mailbox: string): Promise<StartedAuthorization>;
  /**
   * Completes a consent with the URL the provider redirected the browser to (the callback page calls this;
   * the CLI takes a pasted address). OAUTH_CONSENT_FAILED says what to fix.
   */
  complete(callbackUrl: string): Promise<CompletedAuthorization>;
  /** The mailbox's token state: status, account, scope, expiry, last refresh, last error. */
  status(mailbox: string): Promise<OAuthTokenView>;
  /** Forgets the mailbox's tokens (it is not fetched until authorized again). */
  revoke(mailbox: string): Promise<void>;
  /** Provider presets: the scope each fills per protocol, and the redirect URL to register. */
  providers(): { redirectUrl: string; presets: ReturnType<typeof providerPresets> };
  /**
   * An outgoing SMTP server's consent (SASL XOAUTH2), like a mailbox's: the instance's, or with `portal` that
   * portal's own server.
   */
  authorizeSmtp(portal?: string): Promise<StartedAuthorization>;
  smtpStatus(portal?: string): Promise<OAuthTokenView>;
}

/**
 * The OAuth identity of an outgoing SMTP server: its tokens are kept under 'smtp' (the instance's) or
 * 'smtp:portal:<id>' (a portal's own); a mailbox's under `mailbox:<id>`.
 */
export function smtpOAuthOwner(o: SmtpOAuth): OAuthOwner {
  return {
    owner: o.scope.owner,
    label: o.scope.label,
    oauth: o.oauth,
    username: o.username,
    authorizeCommand: o.scope.authorizeCommand,
  };
}

/** The token source SmtpSettings logs in with. */
export function smtpTokenSource(tokens: OAuthTokens): (o: SmtpOAuth) => AccessTokenSource {
  return (o) => tokens.source(smtpOAuthOwner(o));
}

/** Told by SmtpSettings when its OAuth settings changed or went: the tokens were issued for the old ones. */
export async function forgetSmtpTokens(tx: Tx, scope: SmtpScope): Promise<void> {
  if (await OAuthTokens.forget(tx, scope.owner)) {
    await systemLog(tx, {
      level: 'warn',
      category: 'oauth',
      message: `${scope.label}: OAuth settings changed; its tokens were discarded, authorize it again`,
      details: { owner: scope.owner },
    });
  }
}

/**
 * The mailboxes as a consent needs them: id and settings with the secrets opened (the client secret is
 * sealed). The mailboxes feature provides it (mailboxes/repo.ts openedMailboxes) and compose.ts wires it in:
 * the mailboxes feature uses this one's tokens, so this one does not import it back.
 */
export interface OAuthMailboxes {
  /** NOT_FOUND when no mailbox has that name. */
  named(name: string): Promise<{ id: number; settings: MailboxSettings }>;
  /** undefined when the mailbox was removed. */
  byId(id: number): Promise<{ id: number; settings: MailboxSettings } | undefined>;
}

export interface OAuthDeps {
  store: Store;
  tokens: OAuthTokens;
  mailboxes: OAuthMailboxes;
  /** The outgoing servers: the instance's, each portal's own, and whose tokens an owner names. */
  smtp: Pick<SmtpServers, 'instance' | 'byOwner'>;
  /** A portal's own outgoing server by the portal's name (NOT_FOUND for an unknown portal). */
  portalSmtp(portal: string): Promise<Pick<SmtpSettings, 'oauth' | 'config' | 'scope'>>;
  /** Mailintake's redirect URL (public base URL + /oauth/callback). */
  redirectUrl: string;
  /** A connector logging in with the given tokens (how a completed consent is checked). */
  connectWith(settings: MailboxSettings, tokens: AccessTokenSource): Connector;
}

/** OAuth 2.0 consent and token state of mailboxes and of the outgoing SMTP server. */
export function createOAuthService(deps: OAuthDeps): OAuthService {
  const { tokens } = deps;
  const oauthMailbox = async (name: string): Promise<OAuthOwner> => {
    const mailbox = await deps.mailboxes.named(name);
    const who = mailboxOAuthOwner(mailbox.id, mailbox.settings);
    if (!who) {
      throw new MailintakeError(
        'INVALID_SETTINGS',
        `mailbox "${name}" does not use OAuth; set "oauth" in its settings first (provider, clientId, clientSecret)`,
        { details: { fields: [{ field: 'oauth', message: 'not set' }] } },
      );
    }
    return who;
  };
  // the message names the server asked about: a portal's, or the instance's (which may well use OAuth)
  const smtpOAuth = async (server: Pick<SmtpSettings, 'oauth' | 'scope'>): Promise<OAuthOwner> => {
    const o = await server.oauth();
    if (!o) {
      throw new MailintakeError(
        'INVALID_SETTINGS',
        `${server.scope.label} does not use OAuth; set "oauth" and "username" in its settings first`,
        { details: { fields: [{ field: 'oauth', message: 'not set' }] } },
      );
    }
    return smtpOAuthOwner(o);
  };
  const smtpServer = async (portal: string | undefined) =>
    portal === undefined ? deps.smtp.instance : deps.portalSmtp(portal);
  /** Whose consent comes back, and how its new tokens are checked before they are kept. */
  const resolveOwner = async (owner: string) => {
    const server = owner.startsWith('mailbox:') ? undefined : await deps.smtp.byOwner(owner);
    if (server) {
      const who = await smtpOAuth(server);
      const config = await server.config();
      return {
        who,
        // log in to the SMTP server with the new token (nothing is sent)
        verify: async (t: AccessTokenSource) => {
          if (!config) throw new MailintakeError('NOT_FOUND', `${server.scope.label} is not configured`);
          const transport = await openSmtpTransport(config, { tokens: t });
          try {
            await transport.verify();
          } finally {
            transport.close();
          }
        },
      };
    }
    const mailbox = await deps.mailboxes.byId(Number(owner.replace(/^mailbox:/, '')));
    const settings = mailbox?.settings;
    const who = mailbox && settings ? mailboxOAuthOwner(mailbox.id, settings) : null;
    if (!settings || !who) {
      throw new MailintakeError(
        'OAUTH_CONSENT_FAILED',
        'The mailbox this authorization was started for was removed, or no longer uses OAuth.',
      );
    }
    return {
      who,
      // the mail server judges whose token it is: log in as the mailbox's user with it
      verify: async (t: AccessTokenSource) => {
        const connector = deps.connectWith(settings, t);
        try {
          await connector.open();
        } finally {
          await connector.close();
        }
      },
    };
  };
  return {
    authorize: async (name) => tokens.start(await oauthMailbox(name)),
    complete: (callbackUrl) => tokens.complete(callbackUrl, resolveOwner),
    status: async (name) => tokens.view(await oauthMailbox(name)),
    revoke: async (name) => {
      const who = await oauthMailbox(name);
      await withTransaction(deps.store, async (tx) => {
        await OAuthTokens.forget(tx, who.owner);
        await systemLog(tx, {
          level: 'info',
          category: 'oauth',
          message: `tokens of ${who.label} discarded; it is not fetched until authorized again`,
          details: { owner: who.owner },
        });
      });
    },
    providers: () => ({ redirectUrl: deps.redirectUrl, presets: providerPresets() }),
    authorizeSmtp: async (portal) => tokens.start(await smtpOAuth(await smtpServer(portal))),
    smtpStatus: async (portal) => tokens.view(await smtpOAuth(await smtpServer(portal))),
  };
}
