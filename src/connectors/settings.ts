import { z } from 'zod';
import { MailintakeError } from '../kernel/errors.js';
import {
  ERROR_FOLDER_NAME_MAX_CHARS,
  MAILBOX_INTERVAL_DEFAULT_SECONDS,
  MAILBOX_INTERVAL_MAX_SECONDS,
  MAILBOX_INTERVAL_MIN_SECONDS,
  MAILBOX_NAME_MAX_CHARS,
  STOP_AFTER_ERRORS_MAX,
} from '../kernel/limits.js';
import { check, type FieldProblem, invalidSettings } from '../kernel/plain-issues.js';
import type { SecretBox } from '../kernel/secret-box.js';
import { type OAuthSettings, type OAuthUse, oauthInputSchema, resolveOAuth } from '../oauth/providers.js';

/**
 * A mailbox as an admin writes it (CLI file, API body). Field names follow the ServiceDesk Plus reference
 * where it has them (server, port, username, password, emailAddress, protocol).
 */
/** A server name or IP address as admins type it (mailboxes, the outgoing SMTP server). */
export const hostname = z
  .string()
  .trim()
  .min(1, 'the server name or IP address is required')
  .max(253)
  .regex(/^[A-Za-z0-9.\-:[\]]+$/, 'must be a host name or IP address, without scheme or path');

const emailList = z
  .string()
  .trim()
  .min(1, 'at least one address is required')
  .transform((s) =>
    s
      .split(',')
      .map((a) => a.trim().toLowerCase())
      .filter(Boolean),
  )
  .pipe(z.array(z.email('each address must be a valid email address')).min(1));

/**
 * What happens on the server once a mail's effect is committed. IMAP: mark-read (default), delete, move.
 * POP3: delete (default) or leave (the intake log remembers the UIDL); POP3 has no flags and no folders.
 */
export const afterFetchSchema = z.enum(['mark-read', 'delete', 'move', 'leave']);
export type AfterFetchName = z.infer<typeof afterFetchSchema>;

const POP_PROTOCOLS: ReadonlySet<string> = new Set(['pop', 'pops']);
export const isPop = (protocol: string): boolean => POP_PROTOCOLS.has(protocol);
export const isGraph = (protocol: string): boolean => protocol === 'graph';
export const isEws = (protocol: string): boolean => protocol === 'ews';

/**
 * Microsoft Graph endpoints (the reference's "Graph Endpoint"): the global service and the national clouds
 * Microsoft publishes (https://learn.microsoft.com/graph/deployments). Any other value must be an https URL:
 * the access token travels in every request, so a plain-http endpoint would hand it to anyone on the path.
 */
export const GRAPH_ENDPOINTS = [
  'https://graph.microsoft.com',
  'https://graph.microsoft.us',
  'https://dod-graph.microsoft.us',
  'https://microsoftgraph.chinacloudapi.cn',
] as const;
export const DEFAULT_GRAPH_ENDPOINT = GRAPH_ENDPOINTS[0];

const graphEndpoint = z
  .string()
  .trim()
  .refine(
    (v) => {
      try {
        const u = new URL(v);
        return u.protocol === 'https:' && !u.username && !u.password && !u.search && !u.hash;
      } catch {
        return false;
      }
    },
    `must be one of ${GRAPH_ENDPOINTS.join(', ')} or another https:// URL (no credentials, query or fragment)`,
  )
  .transform((v) => v.replace(/\/+$/, ''));

/**
 * EWS's "Connect URL" (the reference's field, e.g. https://mail.example.com/EWS/Exchange.asmx). https only:
 * the password (Basic) or the NTLM exchange travels in every request, and NTLM over plain HTTP can be relayed.
 * EWS is for on-premises Exchange: Exchange Online has been turning EWS off since October 2026 (use Graph).
 */
const connectUrl = z
  .string()
  .trim()
  .refine((v) => {
    try {
      const u = new URL(v);
      return u.protocol === 'https:' && !u.username && !u.password && !u.search && !u.hash;
    } catch {
      return false;
    }
  }, 'must be the https:// URL of the EWS endpoint, e.g. https://mail.example.com/EWS/Exchange.asmx (no credentials, query or fragment)');

/** The error folder's name when the admin gives none. */
export const DEFAULT_ERROR_FOLDER = 'Mailintake Errors';

/**
 * The key a server compares folder names by, so a setting naming the fetched folder in other words is caught.
 * IMAP: INBOX is case-insensitive (RFC 3501 5.1), also as the first level of a hierarchy (Dovecot and Cyrus
 * map `inbox/x` to `INBOX/x`); other names are case-sensitive, but a trailing hierarchy delimiter ("/" or ".")
 * names the same folder. Graph and EWS: well-known names ("inbox", "Inbox") and Exchange display names are
 * case-insensitive. POP3 has one folder only. Surrounding spaces are never part of a name an admin meant.
 */
export function folderKey(protocol: string, name: string): string {
  const n = name.trim();
  if (isGraph(protocol) || isEws(protocol)) return n.toLowerCase();
  if (isPop(protocol)) return 'INBOX';
  const bare = n.replace(/[/.]+$/, '');
  return /^inbox(?=$|[/.])/i.test(bare) ? `INBOX${bare.slice(5)}` : bare;
}

/**
 * Folder settings that would take mail in forever: mail acknowledged by a move into the fetched folder, or
 * moved there as an error mail, is listed again by the next round (IMAP gives it a new UID, so it is new
 * mail) — one run showed ~80 log rows a second, or a notification mail every 0.6 s. Used by the schema and by
 * every round (rows saved before this rule are refused there, not fetched).
 */
export function folderLoopIssues(m: {
  protocol: string;
  folder?: string | undefined;
  moveToFolder?: string | undefined;
  moveToErrorFolder?: boolean | undefined;
  errorFolder?: string | undefined;
}): { field: 'moveToFolder' | 'errorFolder'; message: string }[] {
  const issues: { field: 'moveToFolder' | 'errorFolder'; message: string }[] = [];
  // POP3 refuses both fields on its own (no folders; its error mails are kept by us): no loop is possible
  if (isPop(m.protocol)) return issues;
  const fetched = m.folder ?? 'INBOX';
  const same = (other: string) => folderKey(m.protocol, other) === folderKey(m.protocol, fetched);
  if (m.moveToFolder !== undefined && same(m.moveToFolder)) {
    issues.push({
      field: 'moveToFolder',
      message: `moveToFolder "${m.moveToFolder}" is the folder being fetched ("${fetched}"): every mail would be taken in again, forever; choose another folder`,
    });
  }
  // the error folder counts once it is used, or when named (it is used as soon as moveToErrorFolder is on)
  const errorFolder = m.errorFolder ?? (m.moveToErrorFolder ? DEFAULT_ERROR_FOLDER : undefined);
  if (errorFolder !== undefined && same(errorFolder)) {
    issues.push({
      field: 'errorFolder',
      message: `errorFolder "${errorFolder}"${m.errorFolder === undefined ? ' (the default)' : ''} is the folder being fetched ("${fetched}"): every failing mail would be taken in again and fail again, forever; choose another folder`,
    });
  }
  return issues;
}

export const mailboxInputSchema = z
  .object({
    name: z
      .string()
      .trim()
      .min(1)
      .max(MAILBOX_NAME_MAX_CHARS)
      .regex(
        /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
        'letters, digits, dot, hyphen and underscore; starts with a letter or digit',
      )
      // /mailboxes/new is the console's page for adding one: a mailbox of that name could not be opened
      .refine(
        (n) => n.toLowerCase() !== 'new',
        '"new" is reserved (the console\'s add-mailbox page); choose another',
      ),
    portal: z.string().trim().min(1).default('default'),
    protocol: z.enum(['imap', 'imaps', 'pop', 'pops', 'graph', 'ews']),
    /** IMAP/POP3 only; Graph derives it from graphEndpoint, EWS from connectUrl. */
    server: hostname.optional(),
    port: z.number().int().min(1).max(65535).optional(),
    username: z.string().min(1, 'the user name is required').optional(),
    password: z.string().min(1, 'the password is required').optional(),
    /** Graph only (the reference's "Graph Endpoint"); default https://graph.microsoft.com. */
    graphEndpoint: graphEndpoint.optional(),
    /**
     * Graph only: a bearer token for the mailbox, sealed at rest like a password. A stop-gap until the OAuth
     * issue lands (then the token is obtained and refreshed from a client id/secret and refresh token).
     */
    accessToken: z.string().min(1, 'the access token is required').optional(),
    /** EWS only (the reference's "Connect URL"), for on-premises Exchange. */
    connectUrl: connectUrl.optional(),
    /**
     * EWS only: how `username`/`password` log in. "ntlm" (default): what Exchange's EWS virtual directory
     * accepts out of the box (Windows authentication); the password never travels. "basic": only where an
     * admin switched Basic on for EWS.
     */
    ewsAuth: z.enum(['ntlm', 'basic']).optional(),
    /**
     * OAuth 2.0 instead of a password (the reference's "OAuth Authentication"): IMAP, POP3 (XOAUTH2/OAUTHBEARER),
     * EWS and Graph (bearer). Tokens come from the consent (`mailbox authorize`), sealed and refreshed by us.
     */
    oauth: oauthInputSchema.optional(),
    emailAddress: emailList,
    starttls: z.boolean().default(true),
    caFile: z.string().min(1).optional(),
    folder: z.string().min(1).default('INBOX'),
    /** Default by protocol: mark-read for IMAP, delete for POP3 (see parseMailboxInput). */
    afterFetch: afterFetchSchema.optional(),
    moveToFolder: z.string().min(1).optional(),
    /**
     * The reference's "Move messages to error folder": a mail that fails processing is moved to `errorFolder`
     * (created when missing) with an encrypted report kept by us. POP3 has no folders: the mail is kept by us
     * (raw, encrypted) and then deleted from the server. Off: the failing mail stays in the inbox.
     */
    moveToErrorFolder: z.boolean().default(false),
    /** The reference's "Name of the error folder" (IMAP, EWS, Graph). */
    errorFolder: z
      .string()
      .trim()
      .min(1, 'the error folder name is required')
      .max(ERROR_FOLDER_NAME_MAX_CHARS)
      .optional(),
    /** The reference's "Stop mail fetching after [N] mails" in the error folder; left out: never stop. */
    stopAfterErrors: z
      .number()
      .int()
      .min(1, 'at least 1 (leave it out to never stop)')
      .max(STOP_AFTER_ERRORS_MAX)
      .optional(),
    /** The reference's "Notify by email when a mail is moved from inbox to error folder". */
    notifyOnErrorFolder: z.boolean().default(true),
    intervalSeconds: z
      .number()
      .int()
      .min(MAILBOX_INTERVAL_MIN_SECONDS, `at least ${MAILBOX_INTERVAL_MIN_SECONDS} seconds`)
      .max(MAILBOX_INTERVAL_MAX_SECONDS)
      .default(MAILBOX_INTERVAL_DEFAULT_SECONDS),
    /**
     * Replies from a request carry Reply-To: <local>+<request>.<signature>@<domain> of the mailbox's first
     * address, so an answer threads even when its headers were stripped. Only for a server that delivers
     * plus-addresses to the mailbox (Dovecot, Postfix, Gmail, Microsoft 365 do). Absent: off.
     */
    replyAddress: z.boolean().optional(),
    /** IMAP IDLE push (a new mail is fetched within a second); false: only the schedule. */
    idle: z.boolean().default(true),
    enabled: z.boolean().default(true),
  })
  .strict()
  .superRefine((m, ctx) => {
    for (const i of folderLoopIssues(m))
      ctx.addIssue({ code: 'custom', path: [i.field], message: i.message });
    if ((isGraph(m.protocol) || isEws(m.protocol)) && m.afterFetch === 'leave') {
      ctx.addIssue({
        code: 'custom',
        path: ['afterFetch'],
        message: `"leave" is for POP3; with ${isGraph(m.protocol) ? 'Graph' : 'EWS'} use "mark-read" (the default), "delete" or "move"`,
      });
    }
    if (m.afterFetch === 'move' && !m.moveToFolder) {
      ctx.addIssue({ code: 'custom', path: ['moveToFolder'], message: 'required when afterFetch is "move"' });
    }
    if (m.errorFolder !== undefined && isPop(m.protocol)) {
      ctx.addIssue({
        code: 'custom',
        path: ['errorFolder'],
        message:
          'POP3 has no folders: its error mails are kept (encrypted) by Mailintake; leave "errorFolder" out',
      });
    }
    if (
      m.afterFetch === 'move' &&
      m.moveToFolder !== undefined &&
      m.moveToErrorFolder &&
      m.moveToFolder.toLowerCase() === (m.errorFolder ?? DEFAULT_ERROR_FOLDER).toLowerCase()
    ) {
      ctx.addIssue({
        code: 'custom',
        path: ['moveToFolder'],
        message: 'must differ from the error folder, or processed mails and error mails would mix',
      });
    }
    if (isPop(m.protocol)) {
      if (m.afterFetch === 'mark-read' || m.afterFetch === 'move') {
        ctx.addIssue({
          code: 'custom',
          path: ['afterFetch'],
          message: `"${m.afterFetch}" is not possible with POP3, which has no flags and no folders; use "delete" (the default) or "leave"`,
        });
      }
      if (m.folder !== 'INBOX') {
        ctx.addIssue({
          code: 'custom',
          path: ['folder'],
          message: 'POP3 has only the inbox; leave "folder" out',
        });
      }
      if (m.moveToFolder !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['moveToFolder'], message: 'POP3 has no folders' });
      }
    } else if (m.afterFetch === 'leave' && !isGraph(m.protocol) && !isEws(m.protocol)) {
      ctx.addIssue({
        code: 'custom',
        path: ['afterFetch'],
        message: '"leave" is for POP3; with IMAP use "mark-read" (the default), "delete" or "move"',
      });
    }
    if (m.protocol === 'pops' && m.starttls === true && m.port === 110) {
      ctx.addIssue({
        code: 'custom',
        path: ['port'],
        message: 'port 110 is plain POP3; use protocol "pop" (with starttls) or port 995',
      });
    }
    if (m.protocol === 'imaps' && m.starttls === true && m.port === 143) {
      ctx.addIssue({
        code: 'custom',
        path: ['port'],
        message: 'port 143 is plain IMAP; use protocol "imap" (with starttls) or port 993',
      });
    }
  })
  // Which fields a protocol requires: checked even when other fields are bad (`when`), so a missing server
  // is named together with a mistyped port, as it was when the fields were plainly required.
  .superRefine(
    (m, ctx) => {
      const given = (field: string) => (m as Record<string, unknown>)[field] !== undefined;
      const onlyFor = (protocol: 'graph' | 'ews', fields: string[]) => {
        for (const field of fields) {
          if (given(field)) {
            ctx.addIssue({ code: 'custom', path: [field], message: `only used with protocol "${protocol}"` });
          }
        }
      };
      const oauth = given('oauth');
      if (oauth && given('password')) {
        ctx.addIssue({
          code: 'custom',
          path: ['password'],
          message:
            'not used with OAuth ("oauth" is set); leave it out, or remove "oauth" to log in with a password',
        });
      }
      if (isEws(m.protocol)) {
        if (!given('connectUrl') && !(oauth && m.oauth?.provider === 'microsoft')) {
          ctx.addIssue({
            code: 'custom',
            path: ['connectUrl'],
            message:
              'required for EWS: the https:// URL of Exchange Web Services, e.g. https://mail.example.com/EWS/Exchange.asmx (on-premises Exchange; Exchange Online has been turning EWS off since October 2026, use protocol "graph" there)',
          });
        }
        for (const field of oauth ? [] : ['username', 'password']) {
          if (!given(field)) ctx.addIssue({ code: 'custom', path: [field], message: 'required' });
        }
        if (oauth && given('ewsAuth')) {
          ctx.addIssue({
            code: 'custom',
            path: ['ewsAuth'],
            message: 'not used with OAuth (EWS then sends a bearer token); leave it out',
          });
        }
        for (const field of ['server', 'port']) {
          if (given(field)) {
            ctx.addIssue({
              code: 'custom',
              path: [field],
              message: 'not used with EWS; the server and port are those of "connectUrl"',
            });
          }
        }
        onlyFor('graph', ['graphEndpoint', 'accessToken']);
        return;
      }
      onlyFor('ews', ['connectUrl', 'ewsAuth']);
      if (isGraph(m.protocol)) {
        if (!given('accessToken') && !oauth) {
          ctx.addIssue({
            code: 'custom',
            path: ['oauth'],
            message:
              'required for Graph: the app registration (provider "microsoft", clientId, clientSecret); or a bearer token you obtained yourself in "accessToken"',
          });
        }
        if (given('accessToken') && oauth) {
          ctx.addIssue({
            code: 'custom',
            path: ['accessToken'],
            message: 'not used with "oauth" (Mailintake obtains and refreshes the tokens); leave it out',
          });
        }
        for (const field of ['server', 'port', 'username', 'password']) {
          if (given(field)) {
            ctx.addIssue({
              code: 'custom',
              path: [field],
              message: `not used with Graph; set ${field === 'server' || field === 'port' ? '"graphEndpoint"' : '"oauth"'} instead`,
            });
          }
        }
      } else {
        for (const field of oauth ? ['server', 'username'] : ['server', 'username', 'password']) {
          if (!given(field)) {
            ctx.addIssue({
              code: 'custom',
              path: [field],
              message:
                field === 'username' && oauth
                  ? 'required: the account that signs in at the provider (usually the mailbox address)'
                  : 'required',
            });
          }
        }
        for (const field of ['graphEndpoint', 'accessToken']) {
          if (given(field)) {
            ctx.addIssue({ code: 'custom', path: [field], message: 'only used with protocol "graph"' });
          }
        }
      }
      if (m.oauth) {
        addOAuthIssues(ctx, m.oauth, m.protocol, {
          graphEndpoint: m.graphEndpoint ?? DEFAULT_GRAPH_ENDPOINT,
        });
      }
    },
    { when: (payload) => typeof payload.value === 'object' && payload.value !== null },
  );

export type MailboxInput = z.input<typeof mailboxInputSchema>;

/**
 * What resolveOAuth finds wrong with an `oauth` block (a flow the provider or protocol cannot do, a missing
 * secret), added to the schema's own issues so that every problem of the form is named in one answer. Shared
 * by the mailbox and the outgoing SMTP server's settings.
 */
export function addOAuthIssues(
  ctx: z.RefinementCtx,
  oauth: z.output<typeof oauthInputSchema>,
  use: OAuthUse,
  opts: { graphEndpoint?: string } = {},
): void {
  for (const i of resolveOAuth(oauth, use, opts).issues) {
    ctx.addIssue({ code: 'custom', path: i.field.split('.'), message: i.message });
  }
}
/**
 * Validated settings. `server`, `port`, `username` and `password` are always filled so every connector and
 * display can rely on them: for Graph `server`/`port` are the endpoint's host and port, `username` the mailbox
 * address and `password` empty (the secret is `accessToken`); for EWS `server`/`port` are the Connect URL's.
 */
export type MailboxSettings = Omit<
  z.output<typeof mailboxInputSchema>,
  'afterFetch' | 'server' | 'username' | 'password' | 'oauth'
> & {
  server: string;
  port: number;
  username: string;
  password: string;
  afterFetch: AfterFetchName;
  /**
   * How the connector logs in: `password` (username/password), `oauth2` (tokens from the consent or client
   * credentials, through an AccessTokenSource), `token` (Graph's static `accessToken`).
   */
  auth: MailboxAuth;
  /** With `auth: oauth2`: the preset applied, every URL and the scope filled; the secret is sealed at rest. */
  oauth?: MailboxOAuth;
};

export type MailboxAuth = 'password' | 'oauth2' | 'token';
export type MailboxOAuth = OAuthSettings & { clientSecret: string };

// ---- A stored mailbox: the one decoding of its row ----------------------------------------------------------

/** The `settings` column: the validated settings without their secrets (those are sealed in `secrets`). */
export type StoredSettings = Omit<MailboxSettings, 'password' | 'accessToken' | 'oauth'> & {
  oauth?: Omit<MailboxOAuth, 'clientSecret'>;
};

/**
 * Reads a stored JSON column with its schema, or throws the coded error naming the row: store/stored-json.ts's
 * parseStored. Callers pass it in because connectors/ may not import store/ (.dependency-cruiser.cjs).
 */
export type ParseStored = <S extends z.ZodType>(
  schema: S,
  value: string,
  where: { table: string; column: string; id?: number | string },
) => z.output<S>;

/**
 * What every reader of `settings` relies on. The rest was validated when it was saved (mailboxInputSchema)
 * and passes through as it is: rows saved by older versions lack newer fields, and a stricter check here would
 * turn such a mailbox into an error instead of the defaults its readers apply.
 */
const storedSettingsSchema = z.looseObject({
  name: z.string(),
  protocol: z.enum(['imap', 'imaps', 'pop', 'pops', 'graph', 'ews']),
  intervalSeconds: z.number(),
  auth: z.enum(['password', 'oauth2', 'token']).optional(),
  idle: z.boolean().optional(),
  oauth: z.looseObject({ clientId: z.string() }).optional(),
});

/** The `secrets` column, opened. A removed mailbox keeps `{ password: '' }`. */
const storedSecretsSchema = z.object({
  password: z.string(),
  accessToken: z.string().optional(),
  oauthClientSecret: z.string().optional(),
});

/**
 * A mailbox row's settings without secrets: the one decoding of the `settings` column (views, the scheduler, the
 * IDLE watchers, the outgoing server's warnings and storedMailboxSettingsWithSecrets all read it here). Rows
 * saved before OAuth existed have no `auth`: Graph used its token, everything else a password.
 */
export function storedMailboxSettings(
  row: { id: number; settings: string },
  parse: ParseStored,
): StoredSettings & { auth: MailboxAuth } {
  const parsed = parse(storedSettingsSchema, row.settings, {
    table: 'mailboxes',
    column: 'settings',
    id: row.id,
  });
  const stored = parsed as typeof parsed & StoredSettings; // the fields not in the schema: see its comment
  return { ...stored, auth: stored.auth ?? (stored.protocol === 'graph' ? 'token' : 'password') };
}

/** A mailbox row's full settings, secrets opened: what a connector gets. */
export function storedMailboxSettingsWithSecrets(
  box: SecretBox,
  row: { id: number; settings: string; secrets: string },
  parse: ParseStored,
): MailboxSettings {
  const secrets = parse(storedSecretsSchema, box.open(row.secrets), {
    table: 'mailboxes',
    column: 'secrets',
    id: row.id,
  });
  const { oauth, ...rest } = storedMailboxSettings(row, parse);
  return {
    ...rest,
    password: secrets.password,
    ...(secrets.accessToken !== undefined ? { accessToken: secrets.accessToken } : {}),
    ...(oauth ? { oauth: { ...oauth, clientSecret: secrets.oauthClientSecret ?? '' } } : {}),
  };
}

/** Microsoft 365's EWS endpoint, the Connect URL when provider "microsoft" is chosen without one. */
export const EXCHANGE_ONLINE_EWS_URL = 'https://outlook.office365.com/EWS/Exchange.asmx';

/** The resolved OAuth settings (the schema already reported every issue, so a preset always resolves). */
function oauthOf(m: z.output<typeof mailboxInputSchema>): MailboxOAuth | undefined {
  if (!m.oauth) return undefined;
  const { settings } = resolveOAuth(m.oauth, m.protocol, {
    graphEndpoint: m.graphEndpoint ?? DEFAULT_GRAPH_ENDPOINT,
  });
  if (!settings || m.oauth.clientSecret === undefined) {
    throw new MailintakeError('INTERNAL', 'OAuth settings passed validation but did not resolve');
  }
  return { ...settings, clientSecret: m.oauth.clientSecret };
}

export const DEFAULT_PORTS: Record<MailboxSettings['protocol'], number> = {
  imap: 143,
  imaps: 993,
  pop: 110,
  pops: 995,
  graph: 443,
  ews: 443,
};

/**
 * Validates a mailbox: the settings, or every problem found (each field named, in plain words). Never throws,
 * so that a caller can add its own checks (the portal exists, caFile can be read) and report all in one pass.
 */
export function checkMailboxInput(
  input: unknown,
): { settings: MailboxSettings; fields: [] } | { settings: null; fields: FieldProblem[] } {
  const result = check(mailboxInputSchema, input, '(file)');
  if (!result.ok) return { settings: null, fields: result.fields };
  return { settings: settingsOf(result.data), fields: [] };
}

/** Validates a mailbox; throws INVALID_SETTINGS naming every bad field. */
export function parseMailboxInput(input: unknown): MailboxSettings {
  const { settings, fields } = checkMailboxInput(input);
  if (!settings) throw invalidSettings('mailbox settings', fields);
  return settings;
}

function settingsOf(data: z.output<typeof mailboxInputSchema>): MailboxSettings {
  const { oauth: _oauthInput, ...m } = data;
  const oauth = oauthOf(data);
  const auth: MailboxAuth = oauth ? 'oauth2' : isGraph(m.protocol) ? 'token' : 'password';
  const withAuth = oauth ? { auth, oauth } : { auth };
  if (isEws(m.protocol)) {
    const url = new URL(m.connectUrl ?? EXCHANGE_ONLINE_EWS_URL);
    return {
      ...m,
      ...withAuth,
      connectUrl: url.href,
      ...(oauth ? {} : { ewsAuth: m.ewsAuth ?? 'ntlm' }),
      server: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port ? Number(url.port) : DEFAULT_PORTS.ews,
      // with OAuth the account that signs in; the mailbox address when not given
      username: m.username ?? m.emailAddress[0]!,
      password: m.password ?? '',
      // EWS names well-known folders by distinguished id ("inbox"); "INBOX" is the IMAP default
      folder: m.folder === 'INBOX' ? 'inbox' : m.folder,
      afterFetch: m.afterFetch ?? 'mark-read',
    };
  }
  if (isGraph(m.protocol)) {
    const endpoint = m.graphEndpoint ?? DEFAULT_GRAPH_ENDPOINT;
    const url = new URL(endpoint);
    return {
      ...m,
      ...withAuth,
      graphEndpoint: endpoint,
      server: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port ? Number(url.port) : DEFAULT_PORTS.graph,
      username: m.emailAddress[0]!,
      password: '',
      // Graph names folders by well-known name ("inbox", case-insensitive) or id; "INBOX" is the IMAP default
      folder: m.folder === 'INBOX' ? 'inbox' : m.folder,
      afterFetch: m.afterFetch ?? 'mark-read',
    };
  }
  return {
    ...m,
    ...withAuth,
    server: m.server!,
    username: m.username!,
    password: m.password ?? '',
    port: m.port ?? DEFAULT_PORTS[m.protocol],
    // POP3 has no "read" flag to set: taking a mail in means deleting it unless the admin chose to leave it
    afterFetch: m.afterFetch ?? (isPop(m.protocol) ? 'delete' : 'mark-read'),
  };
}
