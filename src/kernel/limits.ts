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

// ---- The environment (kernel/env.ts) ------------------------------------------------------------------------

/**
 * MAILINTAKE_MAX_MAIL_MB unset: the largest mail taken in, in MB. Above what common mail servers accept for one
 * message, so a real mail rarely meets it; a mail bomb or a damaged source does.
 */
export const DEFAULT_MAX_MAIL_MB = 100;
/** The largest MAILINTAKE_MAX_MAIL_MB accepted, in MB (1 TB): beyond it the value is a typo; -1 is unlimited. */
export const MAX_MAIL_MB_CEILING = 1_000_000;
/**
 * MAILINTAKE_LEASE_SECONDS unset: how long a fetch lease lasts without renewal, in seconds. A crashed worker's
 * mailbox is free again after this.
 */
export const DEFAULT_LEASE_SECONDS = 120;
/** The shortest lease accepted, in seconds: below it a slow database round trip could lose a live lease. */
export const MIN_LEASE_SECONDS = 5;
/** The longest lease accepted, in seconds: a crashed worker must not block its mailboxes for more than an hour. */
export const MAX_LEASE_SECONDS = 3600;

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
  maxMailBytes: DEFAULT_MAX_MAIL_MB * MiB,
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

/**
 * How much of a body the charset chain (mail/charset.ts) decodes with each candidate charset before it picks
 * one; the winner then decodes the whole body. A dozen candidates times a 4 MiB body would be seconds of CPU;
 * 64 KiB of text is plenty for the detector and for spotting mojibake.
 */
export const CHARSET_SAMPLE_BYTES = 64 * KiB;

/**
 * Largest winmail.dat (TNEF) unpacked into its attachments (mail/tnef.ts reads it whole). Larger ones stay as
 * they are, with a note in the trace; the mail is taken in either way.
 */
export const TNEF_MAX_BYTES = 32 * MiB;

/** Most files unpacked from one winmail.dat; the rest stay inside it (a hostile one can claim millions). */
export const TNEF_MAX_FILES = 200;

/** Most uuencoded blocks taken out of one text body as attachments; further ones stay in the text. */
export const UUENCODE_MAX_BLOCKS = 50;

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
/** Longest error kept with an outbox mail (its last_error column), in characters: the code and the server's words. */
export const OUTBOX_LAST_ERROR_MAX_CHARS = 2000;
/** Most outbox mails listed at once (the mails not sent yet); a healthy outbox holds a handful. */
export const OUTBOX_LIST_MAX = 1000;
/**
 * The outgoing SMTP server's timeouts (nodemailer's connection, greeting and socket timeouts), in milliseconds:
 * bounded waits, so a hung server does not hold a claimed outbox mail (or a `smtp test`) for long.
 */
export const SMTP_TIMEOUTS = { connectionMs: 15_000, greetingMs: 15_000, socketMs: 60_000 } as const;

// ---- The schedule (intake/scheduler.ts) ---------------------------------------------------------------------

/** How often the scheduler looks for due mailboxes, in milliseconds; mailbox intervals are whole seconds. */
export const SCHEDULER_TICK_MS = 1000;

// ---- Mailbox connections, all protocols (connectors/) -------------------------------------------------------

/**
 * Longest piece of a server's own words (an error answer, a fault text) quoted in an error message, in
 * characters: enough for any real explanation, not a whole HTML error page in the system log.
 */
export const SERVER_WORDS_MAX_CHARS = 500;

// ---- IMAP (connectors/imap/) --------------------------------------------------------------------------------

/**
 * Default IMAP timeouts, in milliseconds: the TCP/TLS connection, the server's greeting, and silence on an
 * established connection (5 min: a 50 MB FETCH over a slow line can be slow).
 */
export const IMAP_TIMEOUTS = { connectMs: 15_000, greetingMs: 15_000, socketMs: 5 * MINUTE_MS } as const;
/**
 * Longest UID set per command. Dovecot rejects command lines over 64 KB (imap_max_line_length) and other
 * servers have lower limits; a scattered set ("1,3,5,…") of 500 ranges stays far below that.
 */
export const IMAP_MAX_RANGES_PER_COMMAND = 500;
/**
 * IDLE is ended and started again after this, in milliseconds: servers may drop an IDLE quiet for 30 minutes
 * (RFC 2177 advises re-issuing it at least every 29), and some NAT boxes forget a quiet connection sooner.
 */
export const IDLE_RESTART_MS = 25 * MINUTE_MS;
/** An IDLE watcher's reconnect back-off, in milliseconds: the first pause, doubling up to the last. */
export const IDLE_WATCH_BACKOFF = { initialMs: 1_000, maxMs: 5 * MINUTE_MS } as const;
/** An IDLE session that lasted this long was healthy, in milliseconds: the next reconnect backs off from the start. */
export const IDLE_HEALTHY_SESSION_MS = 60_000;
/** An IDLE that ends sooner than this after it began is a quick end, in milliseconds (see IDLE_MAX_QUICK_ENDS). */
export const IDLE_QUICK_END_MS = 1_000;
/** IDLE ending this many times in a row within a second each is a broken server, not keepalives. */
export const IDLE_MAX_QUICK_ENDS = 10;

// ---- POP3 (connectors/pop3/) --------------------------------------------------------------------------------

/**
 * Default POP3 timeouts, in milliseconds: the TCP/TLS connection, the server's greeting, and silence while an
 * answer is awaited (5 min: a 50 MB RETR over a slow line can be slow).
 */
export const POP3_TIMEOUTS = { connectMs: 15_000, greetingMs: 15_000, commandMs: 5 * MINUTE_MS } as const;
/** Commands in flight at once when the server announces PIPELINING (RFC 2449 §6.6); more gains nothing. */
export const POP3_PIPELINE_WINDOW = 32;
/**
 * Longest status line read, in bytes. RFC 1939 §3 says 512 octets; servers add capability text, so allow more,
 * but a server sending megabytes without a CRLF must not grow our buffer without end.
 */
export const POP3_MAX_STATUS_LINE_BYTES = 8 * KiB;
/** Longest server line quoted in an error message, in characters (longer ones are cut with "…"). */
export const POP3_QUOTED_LINE_MAX_CHARS = 200;
/**
 * Bytes of a streamed mail buffered before the socket is paused: small, so memory stays bounded whatever the
 * mail's size, large enough that a fast server is not paused every packet.
 */
export const POP3_STREAM_BUFFER_BYTES = 256 * KiB;
/** Mails up to this size are read whole by sample() to name their attachments; larger ones by headers only. */
export const POP3_SAMPLE_FULL_MAX_BYTES = 10 * MiB;

// ---- Graph and EWS over HTTPS (connectors/https-api.ts) -----------------------------------------------------

/** Longest wait for one HTTPS request's answer, in milliseconds (a listing page or a mail's headers). */
export const HTTPS_REQUEST_TIMEOUT_MS = 60_000;
/** Attempts per HTTPS request, the first included, while the server throttles or is busy. */
export const HTTPS_MAX_ATTEMPTS = 5;
/** Longest total wait for one HTTPS request across its retries, in milliseconds; then the round gives up. */
export const HTTPS_MAX_TOTAL_WAIT_MS = 120_000;

// ---- Microsoft Graph (connectors/graph/) --------------------------------------------------------------------

/** Mails per listing page ($top). */
export const GRAPH_PAGE_SIZE = 50;
/** `$value` requests in flight in fetchMany: Exchange's MailboxConcurrency limit is 4 per app and mailbox. */
export const GRAPH_FETCH_CONCURRENCY = 4;
/** Pages per listing: 2,000 × 50 = 100,000 mails; a server that never stops paging must not loop forever. */
export const GRAPH_MAX_PAGES = 2_000;
/** Back-off when a 429/503 carries no Retry-After, in milliseconds: 1, 2, 4, 8 s… */
export const GRAPH_BACKOFF_BASE_MS = 1_000;

// ---- Exchange Web Services (connectors/ews/) ----------------------------------------------------------------

/** Items per FindItem page. */
export const EWS_PAGE_SIZE = 100;
/** Pages per listing: 1,000 × 100 = 100,000 mails; a server that never stops paging must not loop forever. */
export const EWS_MAX_PAGES = 1_000;
/** Mails per UpdateItem / DeleteItem / MoveItem. */
export const EWS_CHANGE_CHUNK = 100;
/** Mails per GetItem in fetchMany, and their total listed size in bytes: the answer is parsed whole. */
export const EWS_FETCH_CHUNK_COUNT = 50;
export const EWS_FETCH_CHUNK_BYTES = 8 * MiB;
/** Most bytes of an answer read into memory (fetchMany: the chunk's base64 plus the envelope). */
export const EWS_MAX_ANSWER_BYTES = 64 * MiB;
/** Most bytes of an error answer (not 200) read, to quote it: an HTML error page, not a mail. */
export const EWS_MAX_ERROR_ANSWER_BYTES = 256 * KiB;
/** Most bytes before the MimeContent of a streamed mail; an error answer is a few hundred. */
export const EWS_MAX_HEAD_BYTES = 1 * MiB;
/** Most bytes after the MimeContent of a streamed mail: only the closing tags of the envelope come there. */
export const EWS_MAX_TAIL_BYTES = 64 * KiB;
/** Longest piece of a busy front end's answer quoted with the retry, in characters. */
export const EWS_BUSY_WORDS_MAX_CHARS = 300;
/** Back-off when a busy answer names no wait, in milliseconds: 1, 2, 4, 8 s… */
export const EWS_BACKOFF_BASE_MS = 1_000;

// ---- Settings an admin types (connectors/settings.ts, notify/) -----------------------------------------------
// Lengths are in characters. Each bound is far above any real value: it only keeps a pasted file or a typo out
// of the database, the logs and every list that shows the value.

/** A mailbox's name: a short handle used in CLI commands, logs and notifications. */
export const MAILBOX_NAME_MAX_CHARS = 100;
/** The name of a mailbox's error folder. */
export const ERROR_FOLDER_NAME_MAX_CHARS = 200;
/** The reference's "Stop mail fetching after [N] mails" in the error folder: beyond this, leave it out instead. */
export const STOP_AFTER_ERRORS_MAX = 100_000;
/**
 * A mailbox's fetch interval, in seconds: at least 10 (a mail server is not polled in a tight loop; IDLE is the
 * way to be quick), at most a day, 60 when not set.
 */
export const MAILBOX_INTERVAL_MIN_SECONDS = 10;
export const MAILBOX_INTERVAL_MAX_SECONDS = 86_400;
export const MAILBOX_INTERVAL_DEFAULT_SECONDS = 60;
/** The outgoing SMTP server's username, password and From address. */
export const SMTP_USERNAME_MAX_CHARS = 500;
export const SMTP_PASSWORD_MAX_CHARS = 1000;
export const SMTP_FROM_MAX_CHARS = 400;
/** A portal name in a notification rule. */
export const RULE_PORTAL_NAME_MAX_CHARS = 100;
/**
 * Failed rounds in a row before a connection alert: beyond 10,000 (about a week at a 60 s interval) a
 * threshold is a typo.
 */
export const ALERT_THRESHOLD_MAX = 10_000;

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

// ---- People and the console (features/users/, http/console/) -----------------------------------------------

/** An email address as RFC 5321 allows it (a user's address is stored lowercased). */
export const USER_EMAIL_MAX_CHARS = 254;
/** Shortest password accepted: long passphrases beat composition rules. */
export const PASSWORD_MIN_CHARS = 12;
/** Longest password accepted: scrypt reads all of it, so an unbounded one is a cheap way to burn CPU. */
export const PASSWORD_MAX_CHARS = 1000;
/** Failed sign-ins per account, and per address, within SIGN_IN_WINDOW_MS before sign-in is refused. */
export const SIGN_IN_MAX_FAILURES = 5;
/** The window the failures are counted in. */
export const SIGN_IN_WINDOW_MS = 15 * MINUTE_MS;
/** How long sign-in stays refused once the failures reached the limit (the right password too). */
export const SIGN_IN_LOCK_MS = 15 * MINUTE_MS;
/** A session ends this long after sign-in, whatever happens. */
export const SESSION_MAX_AGE_MS = 12 * 60 * MINUTE_MS;
/** A session nobody used for this long ends. */
export const SESSION_IDLE_MS = 2 * 60 * MINUTE_MS;
/** A password-set link (user create --link) is valid this long, once. */
export const PASSWORD_LINK_TTL_MS = 24 * 60 * MINUTE_MS;
/** Largest form body a console page reads (sign-in, settings forms). */
export const CONSOLE_MAX_FORM_BYTES = 64 * 1024;

// ---- Requesters, acknowledgements and the per-sender limit (mail/portal-mail.ts) ------------------------------

/**
 * A portal's rateLimit unset: new requests one sender may open per window. Twenty an hour is far above what a
 * person writes to a help desk, and far below what a runaway auto-responder or a script sends.
 */
export const DEFAULT_SENDER_REQUESTS_MAX = 20;
/** A portal's rateLimit window unset, in minutes. */
export const DEFAULT_SENDER_WINDOW_MINUTES = 60;
/** The largest rate-limit count and window accepted (a higher value is a typo; 0 switches the limit off). */
export const SENDER_REQUESTS_MAX_CEILING = 100_000;
export const SENDER_WINDOW_MAX_MINUTES = 7 * 24 * 60;
/**
 * Acknowledgements one sender receives per hour at most (a portal's acknowledgement.perSenderPerHour unset):
 * a person opening five requests in an hour is told each time; a correspondent writing more is not mailed back
 * more, so that no two auto-responders can keep each other busy through us.
 */
export const DEFAULT_ACKS_PER_SENDER_PER_HOUR = 5;
export const ACKS_PER_SENDER_MAX_CEILING = 1000;
/** The longest acknowledgement subject and body template, in characters. */
export const ACK_SUBJECT_MAX_CHARS = 200;
export const ACK_BODY_MAX_CHARS = 10_000;
/** At most this many form/no-reply sender patterns per portal. */
export const FORM_SENDERS_MAX = 200;
/** Participants a request keeps at most from CC headers (a mail CC'd to a whole company lists hundreds). */
export const PARTICIPANTS_PER_MAIL_MAX = 50;
/** What of a forwarded message/rfc822 part is read back from the blob store for its header, in bytes. */
export const FORWARDED_HEAD_BYTES = 32 * KiB;

// ---- Replies and forwards from a request (features/requests/replies.ts) ------------------------------------

/** Message-IDs in a reply's References: the request's first mail and the newest ones (RFC 5322 §3.6.4 lets a thread grow without end). */
export const REPLY_REFERENCES_MAX = 20;
/** Longest reply text (and HTML), in characters. */
export const REPLY_BODY_MAX_CHARS = 1_000_000;
/** Addresses in To, Cc and Bcc of one reply together. */
export const REPLY_RECIPIENTS_MAX = 100;
/** Attachments of one reply, all together, in bytes (most SMTP servers refuse mails over 25 MB). */
export const REPLY_ATTACHMENTS_MAX_BYTES = 20 * 1024 * 1024;
/** Largest API reply body: the attachments travel as base64 in the JSON (4/3 of their size). */
export const REPLY_API_MAX_BODY_BYTES = 30 * 1024 * 1024;
/** Largest console reply form (the text and the attachments, multipart). */
export const REPLY_FORM_MAX_BYTES = 30 * 1024 * 1024;

// ---- The new part of a reply (mail/reply-split.ts) ----------------------------------------------------------

/**
 * Lines longer than this, in characters, are text: never tested as a quote header or a signature. RFC 5322
 * lines are at most 998 characters; quote headers are far shorter. Bounds the pattern work per line.
 */
export const REPLY_SPLIT_MAX_LINE_CHARS = 1000;
/** Lines an attribution ("On … wrote:") may wrap over; Gmail and Outlook wrap it over up to three. */
export const REPLY_SPLIT_HEADER_LOOKAHEAD = 3;
/**
 * Non-empty lines a signature may have below its start ("-- ", "Regards,"): a longer tail is the message
 * itself, not a signature (a "---" rule in the middle of a long text must not fold the rest).
 */
export const REPLY_SPLIT_SIGNATURE_LINES = 12;
