/**
 * Every failure Mailintake reports carries a stable code from this closed set. Admins see the code and the
 * message; the API answers `{ error: code, message, details }`; the intake log stores the code.
 * The documentation for each code (what a person should check) lives in ERROR_HELP, next to the code itself,
 * so a new code cannot be added without saying what it means.
 */
export const ERROR_HELP = {
  // Reaching the mailbox (a whole fetch round fails; nothing is lost, the round is retried on schedule)
  DNS_FAILED:
    'The server name could not be resolved. Check the "server" field for typos and the DNS of this host.',
  CONNECT_FAILED:
    'No connection could be made to the server and port. Check "server", "port" and "protocol", and that a firewall allows the connection.',
  TLS_FAILED:
    'The TLS handshake failed or the certificate was not trusted. Check that the protocol matches the port (imaps: 993, imap+starttls: 143, pops: 995, pop+starttls: 110), that the certificate names the server, or set "caFile" for a private CA.',
  AUTH_FAILED: 'The server refused the user name or password. Check "username" and "password".',
  FOLDER_NOT_FOUND: 'A folder named in the mailbox settings does not exist on the server.',
  TIMEOUT: 'The server stopped answering. It may be overloaded; the next round tries again.',
  PROTOCOL_ERROR: 'The server answered something Mailintake did not understand.',
  // OAuth 2.0 (a fetch round fails like a connection failure and counts towards the alert; other mailboxes go on)
  OAUTH_NOT_AUTHORIZED:
    'The mailbox uses OAuth but nobody has authorized it yet. Run "mailintake mailbox authorize NAME" (API: POST /api/v1/mailboxes/NAME/oauth/authorize), open the URL and sign in as the mailbox\'s user.',
  OAUTH_REAUTHORIZE_REQUIRED:
    'The provider no longer accepts the stored refresh token (invalid_grant: revoked, expired, password changed, or consent withdrawn). Authorize the mailbox again; until then it is not fetched.',
  OAUTH_CLIENT_REJECTED:
    'The provider refused the app registration (invalid_client): check "oauth.clientId" and "oauth.clientSecret" (client secrets expire: Microsoft Entra after at most 24 months).',
  OAUTH_PROVIDER_UNAVAILABLE:
    'The provider\'s token endpoint could not be reached or failed. The next round tries again; check "oauth.tokenUrl" if it persists.',
  OAUTH_CONSENT_FAILED:
    'The authorization did not complete: the consent was refused, the sign-in was with another account, the link expired or was used already, or the provider refused the request. The message says what to fix.',
  MAILBOX_BUSY:
    'Another fetch of this mailbox is running (in this or another process). The round was skipped.',
  FETCH_RUNNING:
    'The mailbox is being fetched right now. Pause fetching to save its settings (API: ?pauseFetching=true, CLI: --pause); fetching then stays off until you enable the mailbox again.',
  // One mail (the loop goes on with the next mail)
  PARSE_FAILED: 'The mail could not be parsed as MIME.',
  STORE_FAILED:
    'The mail, or the round, could not be stored: the database is unreachable, restarting, busy or full, or the disk failed. Retried next round; details.driverCode names the cause.',
  ACK_FAILED:
    'The mail was stored, but the server refused the after-fetch action (mark read, delete, move). It is not stored again.',
  MAIL_TOO_LARGE: 'The mail is larger than the configured maximum size.',
  MAIL_TOO_COMPLEX:
    'The mail is built to cost more than it can be worth: a header block, a number of MIME parts or a multipart nesting beyond the parse limits (details.limit names which, details.max its value). Like PARSE_FAILED it goes to the error folder (when set; else it stays on the server) and is not retried. The limits are DEFAULT_PARSE_LIMITS in src/kernel/limits.ts.',
  RATE_LIMITED:
    "The sender opened more new requests in this portal than its per-sender limit allows (the portal's mailSettings.rateLimit: maxRequests per windowMinutes; details.sender, details.count). The mail is not lost: it goes to the error folder (when set; else it stays on the server) with its raw copy kept. A runaway auto-responder or script is the usual cause; raise or switch off (0) the limit for a sender that is legitimate, then move the mails back to the inbox.",
  // Sending notification mail (the connection failures above apply to the SMTP server as well)
  SEND_FAILED:
    'The outgoing SMTP server refused the notification mail (sender or every recipient); its answer is in serverResponse. Check "from" and the notification rules.',
  // Settings and requests
  INVALID_SETTINGS: 'One or more settings are invalid; each bad field is named.',
  INVALID_JSON:
    'The request body (API) or the file (CLI) is not valid JSON; the message says where (line and column). Its text is never quoted back, as it may hold a password.',
  INVALID_ID:
    'An id in the request path is not a positive whole number; the message names the parameter (e.g. the request id of GET /api/v1/requests/{id}).',
  NOT_FOUND: 'No such item.',
  CONFLICT: 'The item already exists or was changed meanwhile.',
  UNAUTHORIZED: 'A valid API key is required (Authorization: Bearer …).',
  SIGN_IN_THROTTLED:
    'Too many failed sign-ins for this account or from this address. Wait until details.retryAfterSeconds have passed (the API answers 429 with Retry-After); the limits are SIGN_IN_* in src/kernel/limits.ts.',
  // Running the command line and the service
  STORE_NOT_FOUND:
    'There is no data directory where the command looked (MAILINTAKE_DATA_DIR, default ./data in the current directory). Run it where the data directory is, or set MAILINTAKE_DATA_DIR; only serve and commands that set something up (add, create, set) start a new store.',
  PORT_IN_USE:
    'Another program listens on the port serve was to use. Stop it, or choose another port with --port or MAILINTAKE_PORT.',
  INTERNAL: 'An unexpected error. The log has the details.',
} as const;

export type ErrorCode = keyof typeof ERROR_HELP;

/**
 * What a failure with this code means for a fetch round: the ONE retry rule. The round (intake/) acts on
 * `roundRuleOf(err)` and on nothing else; `retryable` below is derived from the same table.
 * - `stop-round`: the connection to the mailbox failed, not one mail. The round ends there; every mail not yet
 *   taken in stays on the server untouched and the next scheduled round tries again (and counts towards the
 *   connection alert).
 * - `retry-mail`: this mail failed for a cause outside the mail (the database or the disk, a bug). It stays on
 *   the server unacknowledged with an `error` row, and is tried again next round; the loop goes on.
 * - `error-folder`: the mail itself is the problem; trying again cannot help. The error route takes it (moved to
 *   the error folder with a report, or left on the server and skipped), and the loop goes on.
 * - `outside-round`: never the failure of one mail (settings, the API, the CLI, the after-fetch action, the
 *   lease). Should one ever be recorded for a mail, it is handled like `error-folder`: nothing says a retry helps.
 */
export type RoundRule = 'stop-round' | 'retry-mail' | 'error-folder' | 'outside-round';

export const ROUND_RULES: { readonly [C in ErrorCode]: RoundRule } = {
  DNS_FAILED: 'stop-round',
  CONNECT_FAILED: 'stop-round',
  TLS_FAILED: 'stop-round',
  AUTH_FAILED: 'stop-round',
  FOLDER_NOT_FOUND: 'stop-round',
  TIMEOUT: 'stop-round',
  PROTOCOL_ERROR: 'stop-round',
  OAUTH_NOT_AUTHORIZED: 'stop-round',
  OAUTH_REAUTHORIZE_REQUIRED: 'stop-round',
  OAUTH_CLIENT_REJECTED: 'stop-round',
  OAUTH_PROVIDER_UNAVAILABLE: 'stop-round',
  OAUTH_CONSENT_FAILED: 'outside-round',
  MAILBOX_BUSY: 'outside-round',
  FETCH_RUNNING: 'outside-round',
  PARSE_FAILED: 'error-folder',
  STORE_FAILED: 'retry-mail',
  // The mail was committed; the acknowledgement is repeated next round (it ends the round, see intake/acknowledge.ts)
  ACK_FAILED: 'outside-round',
  MAIL_TOO_LARGE: 'error-folder',
  MAIL_TOO_COMPLEX: 'error-folder',
  // The mail is fine; the sender is over the limit. Retrying every round would only count it again.
  RATE_LIMITED: 'error-folder',
  SEND_FAILED: 'outside-round',
  INVALID_SETTINGS: 'outside-round',
  INVALID_JSON: 'outside-round',
  INVALID_ID: 'outside-round',
  NOT_FOUND: 'outside-round',
  CONFLICT: 'outside-round',
  UNAUTHORIZED: 'outside-round',
  SIGN_IN_THROTTLED: 'outside-round',
  STORE_NOT_FOUND: 'outside-round',
  PORT_IN_USE: 'outside-round',
  // An unexpected error is not known to be the mail's fault: the mail gets another chance next round.
  INTERNAL: 'retry-mail',
};

/** The rule of a code as stored (the intake log's `error_code`); an unknown or missing code retries nothing. */
export function roundRuleOfCode(code: string | null): RoundRule {
  return code !== null && Object.hasOwn(ROUND_RULES, code) ? ROUND_RULES[code as ErrorCode] : 'error-folder';
}

/** What the round does with this failure. The only place the round decides between retrying and routing. */
export function roundRuleOf(err: MailintakeError): RoundRule {
  return ROUND_RULES[err.code];
}

/** Whether the next round takes this mail in again (`retry-mail`), rather than the error route. */
export function retriedNextRound(code: string | null): boolean {
  return roundRuleOfCode(code) === 'retry-mail';
}

/** Codes of failures that concern the connection to the mailbox as a whole, not one mail (`stop-round`). */
export const CONNECTION_CODES: ReadonlySet<ErrorCode> = new Set(
  (Object.keys(ROUND_RULES) as ErrorCode[]).filter((code) => ROUND_RULES[code] === 'stop-round'),
);

export interface ErrorDetails {
  /** For INVALID_SETTINGS: every bad field with the reason. */
  fields?: { field: string; message: string }[];
  /** The server's own words, when it said something (never credentials). */
  serverResponse?: string;
  [key: string]: unknown;
}

export class MailintakeError extends Error {
  override readonly name = 'MailintakeError';
  readonly code: ErrorCode;
  /**
   * Whether repeating the same operation later can succeed: by default derived from ROUND_RULES (`stop-round`
   * and `retry-mail` are). Kept per instance only where the raiser knows better about this one failure — a
   * connector whose server refused the password or the mechanism (it will refuse again until an admin acts), the
   * store for a corrupt SQLite file (waiting for it at start is pointless), the parser for a source that broke
   * mid-stream. The round does not read it per instance: it acts on `roundRuleOf`, and a round is retried on
   * schedule anyway; `openStoreWaiting` (store/db.ts) and API clients read it.
   */
  readonly retryable: boolean;
  readonly details: ErrorDetails;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { cause?: unknown; retryable?: boolean; details?: ErrorDetails } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.retryable = opts.retryable ?? retryableByRule(code);
    this.details = opts.details ?? {};
  }

  toJSON(): { error: ErrorCode; message: string; details: ErrorDetails } {
    return { error: this.code, message: this.message, details: this.details };
  }
}

export function isMailintakeError(err: unknown): err is MailintakeError {
  return err instanceof MailintakeError;
}

/** Wraps anything thrown into a coded error, keeping a coded one as it is. */
export function toMailintakeError(err: unknown, fallback: ErrorCode, message?: string): MailintakeError {
  if (isMailintakeError(err)) return err;
  const text = err instanceof Error ? err.message : String(err);
  return new MailintakeError(fallback, message ? `${message}: ${text}` : text, { cause: err });
}

function retryableByRule(code: ErrorCode): boolean {
  const rule = ROUND_RULES[code];
  return rule === 'stop-round' || rule === 'retry-mail';
}
