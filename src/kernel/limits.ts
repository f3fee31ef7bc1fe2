/**
 * Every limit of Mailintake in one place: sizes, counts, timeouts, periods and back-offs, each with what it
 * bounds, why it has this value, and its unit (in the name: _MS milliseconds, _SECONDS, _BYTES, _MB; else a
 * count). Settable limits are validated where they are read (resolveParseLimits, resolveAttachmentPolicy,
 * kernel/env.ts): `0`, `NaN` or a negative value never silently become "unlimited", only the documented `-1`.
 *
 * This module imports nothing, so that the CLI's cheap invocations (`--help`) can read a limit without loading
 * the database drivers.
 */

const KiB = 1024;
const MiB = 1024 * KiB;
const MINUTE_MS = 60_000;

// ---- Lists (API and CLI) ------------------------------------------------------------------------------------

/** The largest page of any list (requests, intake log, system log, error mails, notifications). */
export const MAX_PAGE = 1000;

// ---- Parsing one mail (mail/parse.ts) -----------------------------------------------------------------------

/**
 * The parser's defaults; MAILINTAKE_MAX_MAIL_MB sets maxMailBytes, the others are constants. Each may be -1
 * (unlimited) where a caller sets it. Bytes, except maxParts (MIME nodes) and maxDepth (nesting levels).
 */
export const DEFAULT_PARSE_LIMITS = Object.freeze({
  /** Largest mail taken in; larger fails with MAIL_TOO_LARGE (error folder). */
  maxMailBytes: 100 * MiB,
  // Memory, not readability, sets this: a kept body costs about ten times its size in RSS on its way through
  // mailparser, the store and the trace (measured in `npm run bench` (e)/(f)), and three mailboxes may be taking
  // in such a mail at once. 4 MiB of text is some 2,000 printed pages; the raw copy keeps the rest.
  maxTextBytes: 4 * MiB,
  // mailsplit's own defaults (1 MiB, 1000 nodes), now named and settable: real mails with the longest
  // headers (long Received chains, big DKIM/ARC sets, 1,000 recipients) stay well under 1 MiB.
  maxHeaderBytes: 1 * MiB,
  maxParts: 1000,
  maxDepth: 100,
});

/** How far back a body cut looks for a line end, in bytes (RFC 5322 lines are at most 998 characters). */
export const BODY_CUT_BACK_OFF_BYTES = 1000;

/**
 * Most bytes the streaming quoted-printable decoder holds back while it waits for a line end; a longer line is
 * cut where no escape can be split. Bounds memory against a mail that is one endless line.
 */
export const QP_MAX_CARRY_BYTES = 64 * KiB;

// ---- Attachment checks (mail/attachment-checks.ts) ----------------------------------------------------------

/** A size limit in a portal's attachment policy beyond this (1 TB, in MB) is a typo, not a policy. */
export const ATTACHMENT_POLICY_MAX_LIMIT_MB = 1024 * 1024;

/** NAME_MAX of common file systems (ext4, NTFS in UTF-16 units, APFS): a longer name cannot be saved as is. */
export const FILE_NAME_MAX_BYTES = 255;

// ---- One fetch round (intake/) ------------------------------------------------------------------------------

/**
 * Small mails are fetched several at a time (one round trip) and committed in one transaction; a mail larger
 * than this streams on its own, so a batch's memory stays bounded.
 */
export const BATCH_MAIL_MAX_BYTES = 1 * MiB;
/** Total listed size of one batch of small mails (a batch is held in memory, and the next one is prefetched). */
export const BATCH_MAX_BYTES = 16 * MiB;
/** Mails per batch: one transaction and one acknowledgement each; more gains little and holds the lock longer. */
export const BATCH_MAX_COUNT = 100;
/** Mails of one batch parsed at the same time (their sources are in memory already; parsing is CPU). */
export const PREPARE_CONCURRENCY = 4;
/** Values per `IN (…)` list of one SQL statement: well under SQLite's and PostgreSQL's parameter limits. */
export const SQL_IN_LIST_MAX = 500;
/**
 * Rows per multi-row INSERT of a batch's commit: the bound parameters stay well under SQLite's 32,766 and
 * PostgreSQL's 65,535 (a request, conversation or intake-log row has 13 to 20 columns: 100 rows; an attachment
 * or dropped-item row about 9 to 14: 200; a Message-ID row 4: 500).
 */
export const INSERT_ROWS = Object.freeze({ wide: 100, parts: 200, messageIds: 500 });
/** Where the error folder's report looks for a raw mail's headers, in bytes; its start is enough. */
export const ERROR_REPORT_HEADER_SCAN_BYTES = 256 * KiB;

// ---- The database (store/db.ts) ----------------------------------------------------------------------------

/** SQLite: how long a writer waits for another's lock (`serve` and a CLI `fetch --once` may share the file). */
export const SQLITE_BUSY_TIMEOUT_MS = 10_000;
/**
 * PostgreSQL: how long opening a connection may take. A database that accepts TCP but never answers (a half-dead
 * host, a full backlog) then fails the query as STORE_FAILED instead of hanging the round and the lease forever.
 */
export const PG_CONNECT_TIMEOUT_MS = 15_000;
/** Waiting for the database at start (`serve`): the first pause; it doubles up to STORE_WAIT_MAX_MS. */
export const STORE_WAIT_FIRST_MS = 1_000;
export const STORE_WAIT_MAX_MS = 30_000;

// ---- Blobs (store/blobs/) -----------------------------------------------------------------------------------

/** First bytes of each new blob kept in memory by a batch writer, so the attachment checks sniff without a read. */
export const BLOB_HEAD_BYTES = 16 * KiB;
/** How often `serve` sweeps unreferenced blobs (and once at its start). */
export const SWEEP_INTERVAL_MS = 30 * MINUTE_MS;
/** The shortest grace period: a file younger than this is never swept, whatever the lease time. */
export const SWEEP_MIN_GRACE_MS = 60 * MINUTE_MS;
/** Lease periods a file must be older than to be swept (a round writes blobs before its commit). */
export const SWEEP_GRACE_LEASES = 30;
/** A blob set aside longer than this belongs to a sweep that was cut off (a decision takes milliseconds). */
export const SWEEP_SET_ASIDE_STALE_MS = 10 * MINUTE_MS;

// ---- Notifications (notify/) --------------------------------------------------------------------------------

/** Sending attempts of one notification mail before it is given up as failed (about a day with the back-off). */
export const OUTBOX_MAX_ATTEMPTS = 12;
/** Pause before the first retry of a notification mail; it doubles with each attempt up to OUTBOX_RETRY_MAX_MS. */
export const OUTBOX_RETRY_FIRST_MS = MINUTE_MS;
export const OUTBOX_RETRY_MAX_MS = 60 * MINUTE_MS;
/** How often the sender looks for due mails without being woken (a retry falling due, another process's rows). */
export const OUTBOX_POLL_MS = 30_000;
/** How long a claimed mail is a sender's; a sender that died meanwhile loses it to the next after this. */
export const OUTBOX_CLAIM_MS = 10 * MINUTE_MS;
/** Outbox mails claimed per pass of the sender. */
export const OUTBOX_BATCH = 100;
/** Longest bell title / mail subject kept, in characters; a subject quoted from a mail can be anything. */
export const NOTICE_MAX_TITLE = 200;
/** Longest bell / mail body kept, in characters. */
export const NOTICE_MAX_BODY = 20_000;
/** Recipients of one notification rule. */
export const RULE_MAX_RECIPIENTS = 100;

// ---- OAuth (oauth/, features/oauth/) ------------------------------------------------------------------------

/** How long the token endpoint may take before the attempt counts as OAUTH_PROVIDER_UNAVAILABLE. */
export const TOKEN_ENDPOINT_TIMEOUT_SECONDS = 20;
/** A token is refreshed when it has less than this left, so a login or request never carries a dying one. */
export const REFRESH_MARGIN_MS = 60_000;
/** An authorization link is valid this long (the admin signs in and consents meanwhile). */
export const PENDING_TTL_MS = 10 * MINUTE_MS;
/** How long one process may hold the refresh lease (a crashed holder's lease expires after this). */
export const REFRESH_LEASE_MS = 45_000;
/** How often a process that waits for another one's refresh looks again. */
export const REFRESH_WAIT_POLL_MS = 200;

// ---- The API (http/) ----------------------------------------------------------------------------------------

/** Largest request body the API reads; settings and rules are small JSON documents. */
export const API_MAX_BODY_BYTES = 1 * MiB;
