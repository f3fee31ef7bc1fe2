import fs from 'node:fs';
import type { SampleMail } from '../../connectors/connector.js';
import type { SamplingConnector } from '../../connectors/factory.js';
import { checkMailboxInput, DEFAULT_ERROR_FOLDER, type MailboxSettings } from '../../connectors/settings.js';
import { MailintakeError } from '../../kernel/errors.js';
import { type FieldProblem, invalidSettings } from '../../kernel/plain-issues.js';
import type { SecretBox } from '../../kernel/secret-box.js';
import type { SmtpSettings } from '../../notify/smtp-settings.js';
import { nowIso, type Store } from '../../store/db.js';
import { systemLog } from '../../store/system-log.js';
import { withTransaction } from '../../store/tx.js';
import { mailboxOAuthOwner, mailboxOwnerId, OAuthTokens } from '../oauth/tokens.js';
import { type MailboxRepo, type MailboxRow, mailboxColumns, settingsOf, storedSettings } from './repo.js';
import { testConnection } from './test-connection.js';
import type { MailboxStatus, MailboxView } from './views.js';

export interface MailboxesService {
  list(): Promise<MailboxView[]>;
  get(name: string): Promise<MailboxView>;
  /** Validates (INVALID_SETTINGS naming every bad field), seals the password, stores. CONFLICT on a taken name. */
  add(input: unknown): Promise<MailboxView>;
  /**
   * Replaces settings; a missing `password` keeps the stored one, a missing `enabled` keeps the state.
   * While the mailbox is being fetched: FETCH_RUNNING unless `pauseFetching`, which disables it with the
   * save (the running round stops at its next batch) until an admin enables it again.
   */
  update(name: string, input: unknown, opts?: { pauseFetching?: boolean }): Promise<MailboxView>;
  setEnabled(name: string, enabled: boolean): Promise<MailboxView>;
  /** Keeps the mailbox's history under a new name, which it returns. */
  remove(name: string): Promise<string>;
  /** Requests and conversations each mailbox brought in, by mailbox name (read-only; the console's list). */
  activity(): Promise<Record<string, { requests: number; conversations: number }>>;
  /** The reference's "fetch a sample mail": connect, log in, describe the oldest mail, change nothing. */
  test(name: string): Promise<{ ok: true; sample: SampleMail | null; durationMs: number }>;
}

export interface MailboxesDeps {
  store: Store;
  box: SecretBox;
  repo: MailboxRepo;
  /** The OAuth redirect URL shown with each OAuth mailbox (to register at the provider). */
  redirectUrl: string;
  tokens: OAuthTokens;
  /** The outgoing server's OAuth settings: an OAuth mailbox's view warns when both share one app and mailbox. */
  smtp: Pick<SmtpSettings, 'oauth'>;
  /** The mailbox's connector (OAuth mailboxes get their token source there). */
  connect(settings: MailboxSettings, mailbox: { id: number; name: string }): SamplingConnector;
}

/** Mailbox rows ⇄ settings: the password lives sealed in `secrets`, everything else in `settings`. */
export function createMailboxesService(deps: MailboxesDeps): MailboxesService {
  const { box, repo } = deps;
  const shown = (row: MailboxRow) => withTokenState(deps, mailboxView(row, deps.redirectUrl), row);
  return {
    list: async () => Promise.all((await repo.rows()).map(shown)),
    get: async (name) => shown(await repo.row(name)),
    add: async (input) => shown(await insert(deps, input)),
    update: async (name, input, o) => shown(await replace(deps, name, input, o)),
    setEnabled: async (name, enabled) => mailboxView(await setEnabled(deps, name, enabled), deps.redirectUrl),
    remove: (name) => remove(deps, name),
    activity: async () => {
      const [rows, counts] = await Promise.all([repo.rows(), repo.activity()]);
      return Object.fromEntries(
        rows.map((r) => [r.name, counts.get(r.id) ?? { requests: 0, conversations: 0 }]),
      );
    },
    test: async (name) => {
      const row = await repo.row(name);
      const settings = settingsOf(box, row);
      return testConnection(settings, () => deps.connect(settings, row));
    },
  };
}

/** An OAuth mailbox's view with its token state and the warnings about its app registration. */
async function withTokenState(deps: MailboxesDeps, view: MailboxView, row: MailboxRow): Promise<MailboxView> {
  const { box } = deps;
  if (!view.oauth) return view;
  const s = settingsOf(box, row);
  const who = mailboxOAuthOwner(row.id, s);
  if (!who) return view;
  const warnings: string[] = [];
  const out = await deps.smtp.oauth();
  if (
    s.protocol === 'graph' &&
    out &&
    out.oauth.clientId === who.oauth.clientId &&
    s.emailAddress.some((a) => a.toLowerCase() === out.username.toLowerCase())
  ) {
    warnings.push(
      `The outgoing SMTP server uses the same app (client ID ${who.oauth.clientId}) and mailbox (${out.username}): Microsoft throttles per app and mailbox, so fetching and sending share one limit. Register a second app for outgoing mail.`,
    );
  }
  return { ...view, oauth: { ...view.oauth, tokens: await deps.tokens.view(who), warnings } };
}

/**
 * Validates everything a person can get wrong, naming each field, before anything is stored, in one pass:
 * the portal and caFile are checked even when other fields are bad, so a file is fixed in one round
 * (they used to show up only once everything else was right).
 */
async function validate(
  deps: MailboxesDeps,
  input: unknown,
): Promise<{ settings: MailboxSettings; portalId: number }> {
  const { repo } = deps;
  const { settings, fields } = checkMailboxInput(input);
  const problems: FieldProblem[] = [...fields];
  const raw = (typeof input === 'object' && input !== null ? input : {}) as Record<string, unknown>;
  const named = (field: string) => problems.some((f) => f.field === field);
  // what the admin wrote, when the schema could not give it (another field was bad)
  const portalName =
    settings?.portal ??
    (raw.portal === undefined ? 'default' : typeof raw.portal === 'string' ? raw.portal.trim() : '');
  let portalId: number | undefined;
  if (portalName && !named('portal')) {
    portalId = await repo.portalId(portalName);
    if (portalId === undefined)
      problems.push({
        field: 'portal',
        message: `no portal named "${portalName}" (see: mailintake portal list)`,
      });
  }
  const caFile = settings ? settings.caFile : typeof raw.caFile === 'string' ? raw.caFile : undefined;
  if (caFile && !named('caFile')) {
    try {
      fs.accessSync(caFile, fs.constants.R_OK);
    } catch (err) {
      const why =
        (err as NodeJS.ErrnoException).code === 'ENOENT'
          ? 'there is no such file'
          : 'it cannot be read by Mailintake';
      problems.push({ field: 'caFile', message: `${why}: ${caFile}` });
    }
  }
  if (!settings || problems.length > 0 || portalId === undefined) {
    throw invalidSettings('mailbox settings', problems);
  }
  return { settings, portalId };
}

async function assertNameFree(deps: MailboxesDeps, name: string): Promise<void> {
  const { repo } = deps;
  if (await repo.nameTaken(name))
    throw new MailintakeError('CONFLICT', `a mailbox named "${name}" exists already`);
}

async function insert(deps: MailboxesDeps, input: unknown): Promise<MailboxRow> {
  const { store, box, repo } = deps;
  const { settings, portalId } = await validate(deps, input);
  await assertNameFree(deps, settings.name);
  await withTransaction(store, async (tx) => {
    await repo.insert(
      tx,
      mailboxColumns(box, settings, portalId),
      settings.enabled ? null : 'admin',
      nowIso(),
    );
    await systemLog(tx, {
      level: 'info',
      category: 'settings-changed',
      message: `mailbox ${settings.name} added`,
      details: { mailbox: settings.name, change: 'added', protocol: settings.protocol },
    });
  });
  return repo.row(settings.name);
}

/**
 * Replaces a mailbox's settings. While a fetch of it is running (its lease is held, here or in another
 * process) the save needs `pauseFetching`, as the reference asks: without it FETCH_RUNNING (409); with it
 * the mailbox is disabled in the same transaction as the save (the running round stops at its next batch,
 * see fetch-mailbox.ts) and stays disabled until an admin enables it. `enabled` left out keeps the state.
 */
async function replace(
  deps: MailboxesDeps,
  name: string,
  input: unknown,
  opts: { pauseFetching?: boolean } = {},
): Promise<MailboxRow> {
  const { store, box, repo } = deps;
  const current = await repo.row(name);
  const fetching = current.lease_owner !== null && (current.lease_until ?? '') > nowIso();
  if (fetching && !opts.pauseFetching) {
    throw new MailintakeError(
      'FETCH_RUNNING',
      `mailbox "${name}" is being fetched right now; pause fetching to save (it then stays paused until you enable it)`,
    );
  }
  const enabledGiven =
    typeof input === 'object' && input !== null && (input as Record<string, unknown>).enabled !== undefined;
  const before = settingsOf(box, current);
  const { settings, portalId } = await validate(deps, keepingSecrets(input, before, current.protocol, name));
  if (settings.name !== name) await assertNameFree(deps, settings.name);
  let enabled = enabledGiven ? settings.enabled : current.enabled === 1;
  let reason = enabledGiven ? (settings.enabled ? null : 'admin') : current.disabled_reason;
  if (fetching) {
    enabled = false;
    reason = 'settings-changed';
  }
  const changes = settingChanges(current, before, settings, portalId);
  // Tokens belong to the client, token URL, scope and account they were issued for: another one needs a new
  // consent (kept when only other settings change).
  const tokensStale = oauthBinding(before) !== oauthBinding(settings);
  await withTransaction(store, async (tx) => {
    if (tokensStale && (await OAuthTokens.forget(tx, mailboxOwnerId(current.id)))) {
      await systemLog(tx, {
        level: 'warn',
        category: 'oauth',
        message: `mailbox ${name}: OAuth settings changed; its tokens were discarded, authorize it again`,
        details: { mailbox: name },
      });
    }
    await repo.update(
      tx,
      current.id,
      mailboxColumns(box, settings, portalId),
      enabled,
      enabled ? null : reason,
    );
    await systemLog(tx, {
      level: 'info',
      category: 'settings-changed',
      message: fetching
        ? `mailbox ${name} saved with fetching paused; it stays paused until enabled`
        : `mailbox ${name} updated`,
      details: {
        mailbox: name,
        change: 'updated',
        ...(settings.name !== name ? { renamedTo: settings.name } : {}),
        fields: changes,
        ...(fetching ? { paused: true } : {}),
      },
    });
  });
  return repo.row(settings.name);
}

/** Enabling resumes a mailbox whatever stopped it (admin, paused settings, the error-folder limit). */
async function setEnabled(deps: MailboxesDeps, name: string, enabled: boolean): Promise<MailboxRow> {
  const { store, repo } = deps;
  const row = await repo.row(name);
  await withTransaction(store, async (tx) => {
    await repo.setEnabled(tx, row.id, enabled);
    await systemLog(tx, {
      level: 'info',
      category: 'settings-changed',
      message: `mailbox ${name} ${enabled ? 'enabled' : 'disabled'}`,
      details: {
        mailbox: name,
        change: enabled ? 'enabled' : 'disabled',
        // resuming a mailbox the error folder stopped or a settings change paused says what it resumed from
        ...(enabled && row.disabled_reason ? { resumedFrom: row.disabled_reason } : {}),
      },
    });
  });
  return repo.row(name);
}

/**
 * Removes a mailbox. Its row stays as a tombstone, renamed "<name> (removed #<id>)" (a space and brackets
 * no mailbox name can have, so the name is free again and never collides), disabled, with its secrets and
 * OAuth tokens wiped. Why not DELETE: requests, conversations, the intake log (the proof of what was taken
 * in, and the raw mails), dropped attachments, error mails and notifications all point at the mailbox; they
 * are the help desk's history and must outlive it. Deleting would either break those references (the
 * foreign key failure a removal used to end in) or lose them. Keeping the id also means a mailbox added
 * later never inherits this one's intake log (which would skip its mails as "already taken in").
 * Refused with FETCH_RUNNING while a round holds the lease: the round would go on with the wiped secrets.
 * Returns the name its history is kept under.
 */
async function remove(deps: MailboxesDeps, name: string): Promise<string> {
  const { store, box, repo } = deps;
  const row = await repo.row(name);
  const keptAs = `${name} (removed #${row.id})`;
  await withTransaction(store, async (tx) => {
    if (!(await repo.tombstone(tx, row.id, keptAs, box.seal(JSON.stringify({ password: '' }))))) {
      // removed meanwhile by another admin: the outcome they wanted, said as it is
      if (await repo.removedAt(tx, row.id))
        throw new MailintakeError('NOT_FOUND', `no mailbox named "${name}" (it was just removed)`);
      throw new MailintakeError(
        'FETCH_RUNNING',
        `mailbox "${name}" is being fetched right now; disable it, and remove it once the round has ended`,
      );
    }
    await OAuthTokens.forget(tx, mailboxOwnerId(row.id));
    await systemLog(tx, {
      level: 'info',
      category: 'settings-changed',
      message: `mailbox ${name} removed; its requests and history are kept under "${keptAs}"`,
      details: { mailbox: name, change: 'removed', keptAs },
    });
  });
  return keptAs;
}

/**
 * The password is never shown, so an edit form cannot send it back: a missing password keeps the stored one.
 * Likewise a Graph mailbox's access token and the OAuth client secret. An edit that names neither a password
 * nor `oauth` keeps the way the mailbox logs in.
 */
function keepingSecrets(input: unknown, stored: MailboxSettings, protocol: string, name: string): unknown {
  if (typeof input !== 'object' || input === null) return input;
  const body: Record<string, unknown> = { ...input };
  const graph = (body.protocol ?? protocol) === 'graph';
  if (
    body.oauth === undefined &&
    body.password === undefined &&
    body.accessToken === undefined &&
    stored.oauth
  ) {
    const { clientSecret: _secret, ...kept } = stored.oauth;
    body.oauth = kept;
  }
  const oauthBody = body.oauth as Record<string, unknown> | undefined;
  if (
    oauthBody &&
    typeof oauthBody === 'object' &&
    oauthBody.clientSecret === undefined &&
    stored.oauth &&
    (oauthBody.clientId === undefined || oauthBody.clientId === stored.oauth.clientId)
  ) {
    body.oauth = { ...oauthBody, clientSecret: stored.oauth.clientSecret };
  }
  if (
    graph &&
    body.oauth === undefined &&
    body.accessToken === undefined &&
    stored.accessToken !== undefined
  ) {
    body.accessToken = stored.accessToken;
  }
  if (!graph && body.oauth === undefined && body.password === undefined && stored.password) {
    body.password = stored.password;
  }
  if (body.name === undefined) body.name = name;
  return body;
}

export function mailboxView(row: MailboxRow, redirectUrl: string, fetching = false): MailboxView {
  const s = storedSettings(row);
  return {
    id: row.id,
    name: row.name,
    portal: row.portal_name,
    protocol: row.protocol,
    // Graph and EWS have no host to show: the endpoint URL (Graph Endpoint, Connect URL) is their "server"
    server:
      s.protocol === 'graph' && s.graphEndpoint
        ? s.graphEndpoint
        : s.protocol === 'ews' && s.connectUrl
          ? s.connectUrl
          : s.server,
    port: s.port,
    username: s.username,
    auth: s.auth,
    // the password, or Graph's static token: a secret the admin set (OAuth's are in `oauth`)
    passwordSet: s.auth !== 'oauth2',
    oauth: s.oauth
      ? {
          provider: s.oauth.provider,
          flow: s.oauth.flow,
          tenant: s.oauth.tenant ?? null,
          clientId: s.oauth.clientId,
          // the secret is required by validation, so a stored OAuth mailbox always has one
          clientSecretSet: true,
          authorizationUrl: s.oauth.authorizationUrl || null,
          tokenUrl: s.oauth.tokenUrl,
          scope: s.oauth.scope,
          issuer: s.oauth.issuer,
          redirectUrl,
          tokens: null,
          warnings: [],
        }
      : null,
    emailAddress: s.emailAddress,
    ewsAuth: s.protocol === 'ews' && s.auth === 'password' ? (s.ewsAuth ?? 'ntlm') : null,
    starttls: s.starttls,
    caFile: s.caFile ?? null,
    folder: s.folder,
    afterFetch: s.afterFetch,
    moveToFolder: s.moveToFolder ?? null,
    intervalSeconds: s.intervalSeconds,
    // mailboxes stored before the setting existed have none: push is the default
    idle: s.idle ?? true,
    replyAddress: s.replyAddress === true,
    enabled: row.enabled === 1,
    status: mailboxStatus(row),
    moveToErrorFolder: s.moveToErrorFolder ?? false,
    // POP3 has no folders: its error mails are kept by Mailintake
    errorFolder:
      s.protocol === 'pop' || s.protocol === 'pops' ? null : (s.errorFolder ?? DEFAULT_ERROR_FOLDER),
    stopAfterErrors: s.stopAfterErrors ?? null,
    notifyOnErrorFolder: s.notifyOnErrorFolder ?? true,
    errorMails: Number(row.error_mails_open ?? 0),
    state: {
      lastFetchAt: row.last_fetch_at,
      lastErrorCode: row.last_error_code,
      lastErrorMessage: row.last_error_message,
      consecutiveFailures: row.consecutive_failures,
      failingSince: row.failing_since,
      fetching: fetching || (row.lease_until !== null && row.lease_until > nowIso()),
    },
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** Fields a secret lives in: the log says that they changed, never what to. */
const SECRET_FIELDS = new Set(['password', 'accessToken', 'oauth.clientSecret']);

/** What a mailbox's tokens were issued for (null without OAuth); see OAuthTokens.binding. */
function oauthBinding(s: MailboxSettings): string | null {
  const who = mailboxOAuthOwner(0, s);
  return who ? OAuthTokens.binding(who) : null;
}

/**
 * What an update changed, field by field, for the system log ("who changed what"): old and new values of
 * plain settings, only `changed` for secrets. `enabled` is the mailbox's state, logged by its own entries.
 */
function settingChanges(
  row: MailboxRow,
  before: MailboxSettings,
  after: MailboxSettings,
  portalId: number,
): { field: string; from?: unknown; to?: unknown; changed?: true }[] {
  const out: { field: string; from?: unknown; to?: unknown; changed?: true }[] = [];
  // the OAuth client secret is a secret field of its own; the rest of `oauth` is logged like other settings
  const loggable = (x: MailboxSettings): Record<string, unknown> => {
    const { oauth, ...rest } = x;
    if (!oauth) return rest;
    const { clientSecret, ...plain } = oauth;
    return { ...rest, oauth: plain, 'oauth.clientSecret': clientSecret };
  };
  const a = loggable(before);
  const b = loggable(after);
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  for (const key of keys) {
    if (key === 'enabled' || key === 'portal') continue;
    if (JSON.stringify(a[key]) === JSON.stringify(b[key])) continue;
    out.push(
      SECRET_FIELDS.has(key) ? { field: key, changed: true } : { field: key, from: a[key], to: b[key] },
    );
  }
  if (row.portal_id !== portalId) out.push({ field: 'portal', from: row.portal_name, to: after.portal });
  return out;
}

/** The state an admin sees, from `enabled` and why it is off. */
function mailboxStatus(row: { enabled: number; disabled_reason: string | null }): MailboxStatus {
  if (row.enabled === 1) return 'enabled';
  if (row.disabled_reason === 'error-folder-limit') return 'stopped-by-errors';
  if (row.disabled_reason === 'settings-changed') return 'paused';
  return 'disabled';
}
