import fs from 'node:fs';
import { z } from 'zod';
import { addOAuthIssues, hostname, storedMailboxSettings } from '../connectors/settings.js';
import { type MailintakeError, toMailintakeError } from '../kernel/errors.js';
import { SMTP_FROM_MAX_CHARS, SMTP_PASSWORD_MAX_CHARS, SMTP_USERNAME_MAX_CHARS } from '../kernel/limits.js';
import { type FieldProblem, invalidSettings } from '../kernel/plain-issues.js';
import type { SecretBox } from '../kernel/secret-box.js';
import { type OAuthSettings, oauthInputSchema, resolveOAuth } from '../oauth/providers.js';
import type { AccessTokenSource } from '../oauth/token-source.js';
import type { Store } from '../store/db.js';
import { deleteSetting, readSetting, writeSetting } from '../store/instance-settings.js';
import { parseStored } from '../store/stored-json.js';
import { systemLog } from '../store/system-log.js';
import { type Tx, withTransaction } from '../store/tx.js';
import { validated } from './validate.js';

/**
 * An outgoing SMTP server (the reference's outgoing mail server). There is one for the instance (notification
 * mail, and the replies of every portal without its own) and, optionally, one per portal: a portal's replies,
 * forwards and acknowledgements go out through its own server when it has one (`SmtpServers`). Each is an
 * instance setting of its own (`smtp`, `smtp.portal.<id>`), so `secret-key reseal` finds its sealed fields
 * like any other. TLS follows the mailboxes' rules: certificates are always verified (a private CA may be
 * added with `caFile`), `secure` is TLS from the first byte (port 465, RFC 8314), otherwise STARTTLS is
 * required unless the admin turns `starttls` off for a server without TLS. The password is sealed at rest and
 * never shown.
 */

const FROM_HELP = 'must be an address such as helpdesk@example.com or "Help Desk <helpdesk@example.com>"';

/** `addr@example.com` or `Display Name <addr@example.com>`; null when it is neither. */
export function parseFromAddress(value: string): { name: string; address: string } | null {
  const text = value.trim();
  // no CR/LF or other controls: this goes into a header
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(text)) return null;
  const angled = /^(?:"([^"]*)"|([^"<>]*?))\s*<([^<>\s]+)>$/.exec(text);
  const name = angled ? (angled[1] ?? angled[2] ?? '').trim() : '';
  const address = angled ? angled[3]! : text;
  if (!z.email().safeParse(address).success) return null;
  return { name, address: address.toLowerCase() };
}

export const smtpInputSchema = z
  .strictObject({
    host: hostname,
    /** Default 465 with `secure`, else 587 (submission). */
    port: z.number('must be a number').int().min(1).max(65535).optional(),
    /** TLS from the first byte (implicit TLS, usually port 465). */
    secure: z.boolean('must be true or false').default(false),
    /** Without `secure`: require STARTTLS (default). false only for a server without TLS. */
    starttls: z.boolean('must be true or false').default(true),
    username: z
      .string()
      .min(1, 'must not be empty (leave it out for a server without login)')
      .max(SMTP_USERNAME_MAX_CHARS)
      .optional(),
    /** Kept when left out on an update with the same username. */
    password: z.string().min(1, 'must not be empty').max(SMTP_PASSWORD_MAX_CHARS).optional(),
    from: z
      .string()
      .max(SMTP_FROM_MAX_CHARS)
      .refine((v) => parseFromAddress(v) !== null, FROM_HELP),
    caFile: z.string().min(1).optional(),
    /**
     * OAuth 2.0 (SASL XOAUTH2) instead of the password: Microsoft 365 and Google are retiring basic SMTP
     * authentication too. `username` is the account that consents; `mailintake smtp authorize` starts it.
     */
    oauth: oauthInputSchema.optional(),
  })
  // checked even when other fields are bad (`when`), so every problem is named at once
  .superRefine(
    (s, ctx) => {
      if (s.oauth) {
        if (s.username === undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['username'],
            message:
              'required with OAuth: the account that signs in at the provider (usually the from address)',
          });
        }
        if (s.password !== undefined) {
          ctx.addIssue({ code: 'custom', path: ['password'], message: 'not used with OAuth; leave it out' });
        }
        addOAuthIssues(ctx, s.oauth, 'smtp');
      }
      if (s.password !== undefined && s.username === undefined) {
        ctx.addIssue({ code: 'custom', path: ['password'], message: 'only used together with "username"' });
      }
      if (s.secure && s.port === 587) {
        ctx.addIssue({
          code: 'custom',
          path: ['port'],
          message: 'port 587 speaks plain SMTP with STARTTLS; leave "secure" off, or use port 465',
        });
      }
    },
    { when: (payload) => typeof payload.value === 'object' && payload.value !== null },
  );

/** What is stored (instance setting 'smtp' or 'smtp.portal.<id>'): the password sealed, never in clear. */
interface StoredSmtp {
  host: string;
  port: number;
  secure: boolean;
  starttls: boolean;
  username: string | null;
  passwordSealed: string | null;
  from: string;
  caFile: string | null;
  /** OAuth settings with the preset applied (no secret); null or absent: password or no login. */
  oauth?: OAuthSettings | null;
  /** The OAuth client secret, sealed (named …Sealed, so `secret-key reseal` reseals it). */
  oauthClientSecretSealed?: string | null;
}

/** What the API and CLI show: everything but the password. */
export interface SmtpSettingsView {
  host: string;
  port: number;
  secure: boolean;
  starttls: boolean;
  username: string | null;
  passwordSet: boolean;
  from: string;
  caFile: string | null;
  /** How it logs in: 'password', 'oauth2' (XOAUTH2 with tokens from `smtp authorize`) or 'none'. */
  auth: 'password' | 'oauth2' | 'none';
  /** The OAuth settings (never the secret); null without OAuth. */
  oauth: (Omit<OAuthSettings, 'tenant'> & { tenant: string | null; clientSecretSet: boolean }) | null;
  /** Things to know, e.g. the same app and mailbox serving incoming Graph mail (Microsoft's throttling). */
  warnings: string[];
}

/** Settings ready to connect with (the password opened); only ever held in memory. */
export interface SmtpConfig {
  host: string;
  port: number;
  secure: boolean;
  starttls: boolean;
  username: string | null;
  password: string | null;
  from: { name: string; address: string };
  caFile: string | null;
  /** With OAuth: where the transport gets its access tokens. */
  tokens?: AccessTokenSource;
  /** Which server this is ('instance', or 'portal:<id>'): the outbox opens one connection per server. */
  server?: string;
}

/** Which outgoing server a SmtpSettings edits: the instance's, or one portal's own. */
export interface SmtpScope {
  /** The instance setting it is stored under. */
  key: string;
  /** Whose OAuth tokens: 'smtp', or 'smtp:portal:<id>' (stable across a portal's renames). */
  owner: string;
  /** In messages: "the outgoing SMTP server", "the outgoing SMTP server of portal sales". */
  label: string;
  /** The command that sets it, and the one that starts its OAuth consent (named in messages). */
  setCommand: string;
  authorizeCommand: string;
  /** The portal whose own server it is; null for the instance's. */
  portalId: number | null;
}

export const INSTANCE_SMTP: SmtpScope = Object.freeze({
  key: 'smtp',
  owner: 'smtp',
  label: 'the outgoing SMTP server',
  setCommand: 'mailintake smtp set --file smtp.json',
  authorizeCommand: 'mailintake smtp authorize',
  portalId: null,
});

const PORTAL_KEY_PREFIX = 'smtp.portal.';
const PORTAL_OWNER_PREFIX = 'smtp:portal:';

export function portalSmtpScope(portal: { id: number; name: string }): SmtpScope {
  return {
    key: `${PORTAL_KEY_PREFIX}${portal.id}`,
    owner: `${PORTAL_OWNER_PREFIX}${portal.id}`,
    label: `the outgoing SMTP server of portal ${portal.name}`,
    setCommand: `mailintake portal smtp set ${portal.name} --file smtp.json`,
    authorizeCommand: `mailintake portal smtp authorize ${portal.name}`,
    portalId: portal.id,
  };
}

/** The token state the outgoing server's OAuth settings hand to OAuthTokens (see runtime). */
export interface SmtpOAuth {
  oauth: OAuthSettings & { clientSecret: string };
  username: string;
  /** Whose server: its token owner, label and consent command. */
  scope: SmtpScope;
}

export class SmtpSettings {
  constructor(
    private readonly store: Store,
    private readonly box: SecretBox,
    /** Access tokens for the outgoing server's OAuth settings (the runtime passes OAuthTokens.source). */
    private readonly tokensFor?: (o: SmtpOAuth) => AccessTokenSource,
    /** Called in the save transaction when the OAuth settings changed: the old tokens are discarded. */
    private readonly onOAuthChanged?: (tx: Tx, scope: SmtpScope) => Promise<void>,
    readonly scope: SmtpScope = INSTANCE_SMTP,
  ) {}

  async get(): Promise<SmtpSettingsView | null> {
    const stored = await storedSmtp(this.store.db, this.scope.key);
    return stored ? viewOf(stored, await graphWarnings(this.store.db, stored)) : null;
  }

  /** The OAuth settings with the secret opened, for the token source and the consent; null without OAuth. */
  async oauth(): Promise<SmtpOAuth | null> {
    const stored = await storedSmtp(this.store.db, this.scope.key);
    return stored ? this.oauthOf(stored) : null;
  }

  private oauthOf(stored: StoredSmtp): SmtpOAuth | null {
    if (!stored.oauth || !stored.username) return null;
    return {
      oauth: {
        ...stored.oauth,
        clientSecret: stored.oauthClientSecretSealed ? this.box.open(stored.oauthClientSecretSealed) : '',
      },
      username: stored.username,
      scope: this.scope,
    };
  }

  /**
   * Replaces the settings. A missing password keeps the stored one when the username stays the same (an edit
   * form cannot send back a password it was never shown). INVALID_SETTINGS names every bad field.
   */
  async set(input: unknown): Promise<SmtpSettingsView> {
    // An edit form never sees the OAuth client secret: left out with the same client ID, the stored one stays.
    // unreadable stored settings (hand-edited) are replaced, not a reason to refuse the fix
    const prior = await storedSmtp(this.store.db, this.scope.key).catch(() => undefined);
    const given = input as { oauth?: Record<string, unknown> } | null;
    if (
      given &&
      typeof given === 'object' &&
      given.oauth &&
      typeof given.oauth === 'object' &&
      given.oauth.clientSecret === undefined &&
      prior?.oauthClientSecretSealed &&
      prior.oauth?.clientId === given.oauth.clientId
    ) {
      input = {
        ...given,
        oauth: { ...given.oauth, clientSecret: this.box.open(prior.oauthClientSecretSealed) },
      };
    }
    const s = validated(smtpInputSchema, input, 'SMTP settings');
    const fields: FieldProblem[] = [];
    if (s.caFile) {
      try {
        fs.accessSync(s.caFile, fs.constants.R_OK);
      } catch {
        fields.push({ field: 'caFile', message: `cannot read ${s.caFile}` });
      }
    }
    return withTransaction(this.store, async (tx) => {
      const before = await storedSmtp(tx, this.scope.key).catch(() => undefined);
      let passwordSealed: string | null = null;
      let oauth: OAuthSettings | null = null;
      let oauthClientSecretSealed: string | null = null;
      if (s.oauth) {
        oauth = resolveOAuth(s.oauth, 'smtp').settings ?? null;
        // required by the schema (kept from the stored settings above when left out)
        oauthClientSecretSealed = this.box.seal(s.oauth.clientSecret ?? '');
      } else if (s.username !== undefined) {
        if (s.password !== undefined) passwordSealed = this.box.seal(s.password);
        else if (before?.passwordSealed && before.username === s.username)
          passwordSealed = before.passwordSealed;
        else fields.push({ field: 'password', message: 'required with "username"' });
      }
      if (fields.length > 0) {
        throw invalidSettings('SMTP settings', fields);
      }
      const from = parseFromAddress(s.from)!;
      const stored: StoredSmtp = {
        host: s.host,
        port: s.port ?? (s.secure ? 465 : 587),
        secure: s.secure,
        starttls: s.starttls,
        username: s.username ?? null,
        passwordSealed,
        from: from.name ? `${from.name} <${from.address}>` : from.address,
        caFile: s.caFile ?? null,
        oauth,
        oauthClientSecretSealed,
      };
      await writeSetting(tx, this.scope.key, stored);
      if (oauthIdentity(before) !== oauthIdentity(stored)) await this.onOAuthChanged?.(tx, this.scope);
      const view = viewOf(stored, await graphWarnings(tx, stored));
      await systemLog(tx, {
        level: 'info',
        category: 'notification-settings',
        message: `${this.scope.label} set to ${view.host}:${view.port} (${tlsMode(view)})`,
        details: {
          smtp: view,
          previous: before ? viewOf(before) : null,
          ...(this.scope.portalId !== null ? { portalId: this.scope.portalId } : {}),
        },
      });
      return view;
    });
  }

  /**
   * Removes the settings (a portal's own server: its mail goes through the instance's again); its OAuth tokens
   * are discarded with them. false when there was nothing to remove.
   */
  async clear(): Promise<boolean> {
    return withTransaction(this.store, async (tx) => {
      if ((await readSetting(tx, this.scope.key)) === undefined) return false;
      // settings that cannot be read any more (hand-edited) can still be removed: that is the way out
      const before = await storedSmtp(tx, this.scope.key).catch(() => undefined);
      await deleteSetting(tx, this.scope.key);
      await this.onOAuthChanged?.(tx, this.scope);
      await systemLog(tx, {
        level: 'info',
        category: 'notification-settings',
        message: `${this.scope.label} removed (was ${before ? `${before.host}:${before.port}` : 'unreadable'})`,
        details: {
          previous: before ? viewOf(before) : null,
          ...(this.scope.portalId !== null ? { portalId: this.scope.portalId } : {}),
        },
      });
      return true;
    });
  }

  /** The settings to connect with, password opened; undefined when no SMTP server is configured. */
  async config(): Promise<SmtpConfig | undefined> {
    const stored = await storedSmtp(this.store.db, this.scope.key);
    return stored ? this.configOf(stored) : undefined;
  }

  /** `stored` ready to connect with (SmtpServers reads every portal's at once and opens them here). */
  configOf(stored: StoredSmtp): SmtpConfig {
    const oauth = this.tokensFor ? this.oauthOf(stored) : null;
    return {
      server: this.scope.portalId === null ? 'instance' : `portal:${this.scope.portalId}`,
      host: stored.host,
      port: stored.port,
      secure: stored.secure,
      starttls: stored.starttls,
      username: stored.username,
      password: stored.passwordSealed ? this.box.open(stored.passwordSealed) : null,
      from: parseFromAddress(stored.from)!,
      caFile: stored.caFile,
      ...(oauth && this.tokensFor ? { tokens: this.tokensFor(oauth) } : {}),
    };
  }
}

/**
 * Every outgoing server: the instance's (`instance`) and each portal's own (`portal()`). The outbox sends a
 * portal's replies and acknowledgements through `portalConfigs()`'s server of that portal when there is one,
 * else through the instance's; notification mail always goes through the instance's.
 */
export class SmtpServers {
  readonly instance: SmtpSettings;

  constructor(
    private readonly store: Store,
    private readonly box: SecretBox,
    private readonly tokensFor?: (o: SmtpOAuth) => AccessTokenSource,
    private readonly onOAuthChanged?: (tx: Tx, scope: SmtpScope) => Promise<void>,
  ) {
    this.instance = new SmtpSettings(store, box, tokensFor, onOAuthChanged);
  }

  /** The settings of a portal's own server (which may not be set: `get()` is null then). */
  portal(portal: { id: number; name: string }): SmtpSettings {
    return new SmtpSettings(
      this.store,
      this.box,
      this.tokensFor,
      this.onOAuthChanged,
      portalSmtpScope(portal),
    );
  }

  /** The server whose OAuth tokens are kept under `owner` ('smtp', 'smtp:portal:<id>'); undefined if none. */
  async byOwner(owner: string): Promise<SmtpSettings | undefined> {
    if (owner === INSTANCE_SMTP.owner) return this.instance;
    if (!owner.startsWith(PORTAL_OWNER_PREFIX)) return undefined;
    const id = Number(owner.slice(PORTAL_OWNER_PREFIX.length));
    const row = Number.isSafeInteger(id)
      ? await this.store.db
          .selectFrom('portals')
          .select(['id', 'name'])
          .where('id', '=', id)
          .executeTakeFirst()
      : undefined;
    return row ? this.portal(row) : undefined;
  }

  /**
   * Each portal's own server, ready to connect with, by portal id (portals without one are not in it). A portal
   * whose settings cannot be read (a hand-edited row, a password sealed with a key no longer configured) is in it
   * with the coded error instead: its mail waits and says why, and never goes out through another server, nor
   * stops the other portals' mail.
   */
  async portalConfigs(): Promise<Map<number, SmtpConfig | MailintakeError>> {
    const settings = await this.store.db
      .selectFrom('instance_settings')
      .select(['key', 'value'])
      .where('key', 'like', `${PORTAL_KEY_PREFIX}%`)
      .execute();
    const portals = new Map(
      (await this.store.db.selectFrom('portals').select(['id', 'name']).execute()).map((p) => [p.id, p]),
    );
    const out = new Map<number, SmtpConfig | MailintakeError>();
    for (const r of settings) {
      const portal = portals.get(Number(r.key.slice(PORTAL_KEY_PREFIX.length)));
      if (!portal) continue;
      try {
        const stored = parseStored(storedSmtpSchema, r.value, {
          table: 'instance_settings',
          column: 'value',
          id: r.key,
        });
        out.set(portal.id, this.portal(portal).configOf(stored));
      } catch (err) {
        out.set(portal.id, toMailintakeError(err, 'INTERNAL'));
      }
    }
    return out;
  }
}

/** What the outgoing server's tokens were issued for; a change discards them. */
function oauthIdentity(s: StoredSmtp | undefined): string | null {
  if (!s?.oauth) return null;
  const o = s.oauth;
  return JSON.stringify([o.clientId, o.tokenUrl, o.scope, o.flow, (s.username ?? '').toLowerCase()]);
}

/**
 * The reference: "If the same mailbox is configured in both incoming and outgoing mail server settings, ensure
 * the client ID is different to avoid issues due to mail throttling limitations." Microsoft counts requests per
 * app and mailbox, so an incoming Graph mailbox and the outgoing server sharing both share one budget.
 */
async function graphWarnings(tx: Tx, s: StoredSmtp): Promise<string[]> {
  if (!s.oauth || !s.username) return [];
  const rows = await tx
    .selectFrom('mailboxes')
    .select(['id', 'name', 'settings'])
    .where('protocol', '=', 'graph')
    .where('removed_at', 'is', null)
    .execute();
  const user = s.username.toLowerCase();
  const out: string[] = [];
  for (const r of rows) {
    const m = storedMailboxSettings(r, parseStored);
    if (
      m.oauth?.clientId === s.oauth.clientId &&
      (m.emailAddress ?? []).some((a) => a.toLowerCase() === user)
    ) {
      out.push(
        `Incoming Graph mailbox "${r.name}" uses the same app (client ID ${s.oauth.clientId}) and mailbox (${s.username}) as the outgoing server: Microsoft throttles per app and mailbox, so fetching and sending share one limit. Register a second app for outgoing mail.`,
      );
    }
  }
  return out;
}

/** The stored form, checked when read (a hand-edited or half-migrated row is named, never used blindly). */
const storedSmtpSchema: z.ZodType<StoredSmtp> = z.object({
  host: z.string(),
  port: z.number(),
  secure: z.boolean(),
  starttls: z.boolean(),
  username: z.string().nullable(),
  passwordSealed: z.string().nullable(),
  from: z.string(),
  caFile: z.string().nullable(),
  oauth: z.custom<OAuthSettings>((v) => typeof v === 'object').nullish(),
  oauthClientSecretSealed: z.string().nullish(),
});

async function storedSmtp(tx: Tx, key: string): Promise<StoredSmtp | undefined> {
  const value = await readSetting(tx, key);
  if (value === undefined) return undefined;
  return parseStored(storedSmtpSchema, JSON.stringify(value), {
    table: 'instance_settings',
    column: 'value',
    id: key,
  });
}

function viewOf(s: StoredSmtp, warnings: string[] = []): SmtpSettingsView {
  return {
    host: s.host,
    port: s.port,
    secure: s.secure,
    starttls: s.starttls,
    username: s.username,
    passwordSet: s.passwordSealed !== null,
    from: s.from,
    caFile: s.caFile,
    auth: s.oauth ? 'oauth2' : s.username ? 'password' : 'none',
    oauth: s.oauth
      ? { ...s.oauth, tenant: s.oauth.tenant ?? null, clientSecretSet: !!s.oauthClientSecretSealed }
      : null,
    warnings,
  };
}

/** "implicit TLS" / "STARTTLS" / "no TLS": how the connection is protected, in words. */
export function tlsMode(s: { secure: boolean; starttls: boolean }): string {
  if (s.secure) return 'implicit TLS';
  return s.starttls ? 'STARTTLS' : 'no TLS';
}
