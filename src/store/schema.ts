import type { ColumnType, Generated } from 'kysely';

/**
 * The tables, typed once for both engines (SQLite and PostgreSQL). Portable choices, on purpose:
 * timestamps are ISO-8601 text (UTC), booleans are 0/1 integers, JSON is text. Each engine then runs the very
 * same queries, and every storage test runs on both.
 */
export interface Database {
  portals: PortalTable;
  mailboxes: MailboxTable;
  requests: RequestTable;
  request_history: RequestHistoryTable;
  conversations: ConversationTable;
  attachments: AttachmentTable;
  message_ids: MessageIdTable;
  intake_log: IntakeLogTable;
  api_keys: ApiKeyTable;
  dropped_attachments: DroppedAttachmentTable;
  system_log: SystemLogTable;
  instance_settings: InstanceSettingTable;
  notification_rules: NotificationRuleTable;
  notifications: NotificationTable;
  mail_outbox: MailOutboxTable;
  request_participants: RequestParticipantTable;
  acknowledgements: AcknowledgementTable;
  error_mails: ErrorMailTable;
  oauth_tokens: OAuthTokenTable;
  oauth_pending: OAuthPendingTable;
}

type Id = Generated<number>;
type Flag = ColumnType<number, number | undefined, number>;

export interface PortalTable {
  id: Id;
  name: string;
  /** 1: In-Reply-To/References thread mails; 0: only `##id##` in the subject does (the reference's switch). */
  header_threading: Flag;
  created_at: string;
  /** The admin's attachment policy (JSON, only the fields set; '{}' = defaults). See resolveAttachmentPolicy. */
  attachment_policy: ColumnType<string, string | undefined, string>;
  /** The admin's mail settings (JSON, only the fields set; '{}' = defaults). See mail/portal-mail.ts. Migration 0015. */
  mail_settings: ColumnType<string, string | undefined, string>;
}

export interface MailboxTable {
  id: Id;
  name: string;
  portal_id: number;
  protocol: string;
  enabled: Flag;
  /** Validated settings without secrets (JSON). */
  settings: string;
  /** Secrets (password…) as one AES-256-GCM sealed JSON object; never returned by the API. */
  secrets: string;
  created_at: string;
  updated_at: string;
  /** Fetch lease: one fetch per mailbox at a time, across processes. */
  lease_owner: string | null;
  lease_until: string | null;
  last_fetch_at: string | null;
  last_error_code: string | null;
  last_error_message: string | null;
  consecutive_failures: Flag;
  /** The first failed round of the current run of failures (0012); null while rounds connect. */
  failing_since: string | null;
  /** Why `enabled` is 0: 'admin' | 'settings-changed' | 'error-folder-limit'; null while enabled. */
  disabled_reason: ColumnType<string | null, string | null | undefined, string | null>;
  /** 1 after a connection-failure alert until the mailbox connects again (then the "recovered" notice). */
  failure_alerted: Flag;
  /**
   * Set when the mailbox was removed: the row stays (renamed "<name> (removed #<id>)", disabled, secrets wiped)
   * so that the requests and history pointing at it are kept. Every listing leaves such rows out.
   */
  removed_at: ColumnType<string | null, string | null | undefined, string | null>;
  /** Consecutive rounds with a STORE_FAILED mail (notify/connection-alerts.ts), reset at the alert. */
  store_failures: Flag;
  /** 1 after a store-failure alert until a round stores everything again. */
  store_alerted: Flag;
}

export interface RequestTable {
  id: Id;
  portal_id: number;
  mailbox_id: number | null;
  subject: string;
  requester_address: string | null;
  requester_name: string | null;
  to_addresses: string; // JSON Address[]
  cc_addresses: string; // JSON Address[]
  message_id: string | null;
  text_body: string | null;
  html_body: string | null;
  mail_date: string | null;
  status: string;
  created_at: string;
  updated_at: string;
  /** Who works on it (an email, free text for now); null: nobody. Migration 0009. */
  assignee: ColumnType<string | null, string | null | undefined, string | null>;
  /** The requester's address as the filter compares it (store/search-text.ts requesterNorm). Migration 0011. */
  requester_norm: ColumnType<string | null, string | null | undefined, string | null>;
  /** An HTML-only body's text, for the search alone (store/search-text.ts htmlSearchText). Migration 0011. */
  html_text: ColumnType<string | null, string | null | undefined, string | null>;
  /** The requester's address, lower-cased and hashed (store/keys.ts), for the per-sender limit. Migration 0015. */
  requester_key: ColumnType<string | null, string | null | undefined, string | null>;
}

/** Every change of a request's status or assignee: who, when, from what to what (migration 0009). */
export interface RequestHistoryTable {
  id: Id;
  request_id: number;
  at: string;
  actor: string;
  field: string;
  old: string | null;
  new: string | null;
}

export interface ConversationTable {
  id: Id;
  request_id: number;
  mailbox_id: number | null;
  from_address: string | null;
  from_name: string | null;
  to_addresses: string;
  cc_addresses: string;
  subject: string;
  message_id: string | null;
  text_body: string | null;
  html_body: string | null;
  mail_date: string | null;
  created_at: string;
  /** An HTML-only body's text, for the search alone (store/search-text.ts htmlSearchText). Migration 0011. */
  html_text: ColumnType<string | null, string | null | undefined, string | null>;
  /** 1: an auto-reply (mail/machine.ts) that threaded to the request. Migration 0013. */
  automatic: Flag;
  /** 'in': a mail taken in; 'out': a reply or forward the help desk sent (its mail_outbox row). Migration 0014. */
  direction: ColumnType<string, string | undefined, string>;
  /** Who wrote an outgoing one (`user:<email>`, `api-key:<name>`, `cli:<user>`); null for mail taken in. */
  actor: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface AttachmentTable {
  id: Id;
  request_id: number;
  conversation_id: number | null;
  filename: string;
  content_type: string;
  size: number;
  sha256: string;
  content_id: string | null;
  disposition: string;
  created_at: string;
}

/** Every Message-ID that belongs to a request (its first mail and its conversations), per portal. */
export interface MessageIdTable {
  portal_id: number;
  /** valueKey(message_id): the key, since a sender's Message-ID may be longer than an index entry can be. */
  message_key: string;
  /** As sent (unindexed); compared after the lookup by key. */
  message_id: string;
  request_id: number;
}

export interface IntakeLogTable {
  id: Id;
  mailbox_id: number;
  /** The connector's stable identity (IMAP: folder;UIDVALIDITY;UID). Unique per mailbox. */
  server_identity: string;
  message_id: string | null;
  /** valueKey(message_id), indexed with the fingerprint; null when the mail has no Message-ID. */
  message_key: ColumnType<string | null, string | null | undefined, string | null>;
  content_hash: string | null;
  /** sha256 of what makes two deliveries the same mail (see mailFingerprint): tells copies from reused ids. */
  fingerprint: string | null;
  /**
   * The raw source as fetched is kept: what a parser could not make sense of (a broken MIME boundary loses
   * the body in any parser) is never lost, whatever the after-fetch action did. Batched (small) mails are in a
   * raw pack (raw_pack, raw_offset, raw_length); large ones in the blob store under raw_sha256.
   */
  raw_sha256: string | null;
  raw_pack: string | null;
  raw_offset: number | null;
  raw_length: number | null;
  /** created | appended | ignored | error */
  outcome: string;
  request_id: number | null;
  conversation_id: number | null;
  error_code: string | null;
  /** Human-readable reasons for the outcome, JSON string[]. */
  reasons: string;
  subject: string | null;
  from_address: string | null;
  size: number | null;
  attempts: Flag;
  /** 1 once the server was told (flag/delete/move) after the effect was committed. */
  acknowledged: Flag;
  created_at: string;
  updated_at: string;
}

export interface ApiKeyTable {
  id: Id;
  name: string;
  /** First characters of the key, shown in listings so a person can tell keys apart. */
  prefix: string;
  /** sha256 of the whole key; the key itself is shown once, at creation, and never stored. */
  key_hash: string;
  created_at: string;
  last_used_at: string | null;
}

/**
 * Attachments and inline images the checks dropped (mail/attachment-checks.ts). The body stays in the
 * blob store under `sha256`: an admin can still recover it. Written in the mail's own transaction.
 */
export interface DroppedAttachmentTable {
  id: Id;
  request_id: number;
  conversation_id: number | null;
  mailbox_id: number;
  server_identity: string;
  filename: string;
  content_type: string;
  size: number;
  sha256: string;
  content_id: string | null;
  disposition: string;
  /** A DropCode: FILE_NAME_INVALID, CONTENT_TYPE_MISMATCH, EXTENSION_RESTRICTED, EMPTY_FILE, TOO_LARGE, INLINE_TOO_LARGE. */
  code: string;
  /** The reference's text for the code. */
  message: string;
  /** What exactly was wrong with this item. */
  detail: string;
  created_at: string;
}

/** Append-only record of what Mailintake did and why (store/system-log.ts is its only writer). */
export interface SystemLogTable {
  id: Id;
  created_at: string;
  /** Who: `api-key:<name>`, `cli:<os user>` or `system` (kernel/actor.ts). */
  actor: ColumnType<string, string | undefined, string>;
  /** info | warn | error */
  level: string;
  /** What area the entry belongs to, e.g. 'attachment-dropped'. */
  category: string;
  message: string;
  /** JSON object with the entry's facts. */
  details: string;
}

/** Instance-wide settings, one JSON value per key (e.g. 'connection-alerts', 'smtp'). */
export interface InstanceSettingTable {
  key: string;
  value: string;
  updated_at: string;
}

/** Who gets an email for which event (the reference's Notification Rules). `portal_id` null: every portal. */
export interface NotificationRuleTable {
  id: Id;
  portal_id: number | null;
  /** 'mail-error' | 'connection-failure' | 'connection-recovered' | 'attachment-dropped' | 'inline-image-dropped' */
  event: string;
  /** JSON array of email addresses (the technicians). */
  recipients: string;
  enabled: Flag;
  created_at: string;
  updated_at: string;
}

/** Bell notifications for admins. */
export interface NotificationTable {
  id: Id;
  portal_id: number | null;
  mailbox_id: number | null;
  event: string;
  title: string;
  body: string;
  created_at: string;
  read_at: string | null;
}

/** Notification mail to send: written with the event it tells about, sent after (never lost, maybe late). */
export interface MailOutboxTable {
  id: Id;
  event: string;
  /** JSON array of addresses. */
  recipients: string;
  subject: string;
  body: string;
  created_at: string;
  attempts: Flag;
  next_attempt_at: string;
  sent_at: string | null;
  last_error: string | null;
  /** Set when sending was given up (permanent refusal or too many attempts); an operator may retry it. */
  failed_at: ColumnType<string | null, string | null | undefined, string | null>;
  // ---- a reply or forward from a request (migration 0014); all null on a notification ----
  request_id: Opt<number>;
  conversation_id: Opt<number>;
  /** The mailbox's address it is sent from (null: the SMTP settings' From). */
  from_address: Opt<string>;
  from_name: Opt<string>;
  /** JSON arrays of addresses. */
  cc: Opt<string>;
  bcc: Opt<string>;
  reply_to: Opt<string>;
  /** Our Message-ID (without angle brackets), fixed before sending so that a resend and a bounce find it. */
  message_id: Opt<string>;
  /** valueKey(message_id), indexed. */
  message_key: Opt<string>;
  in_reply_to: Opt<string>;
  /** JSON array of Message-IDs, oldest first. */
  references_ids: Opt<string>;
  html_body: Opt<string>;
  /** JSON array of { sha256, filename, contentType, size } (blob-store keys). */
  attachments: Opt<string>;
  /** The SMTP reply code of a refusal, or the DSN Status of a bounce (e.g. 5.1.1). */
  failure_status: Opt<string>;
  /** The server's refusal or the bounce's Diagnostic-Code. */
  failure_reason: Opt<string>;
  /** A bounce came back for it after it was sent: its delivery failed. */
  bounced_at: Opt<string>;
}

type Opt<T> = ColumnType<T | null, T | null | undefined, T | null>;

/** A mail moved to the error folder (or, POP3, kept by us), with its sealed report. */
export interface ErrorMailTable {
  id: Id;
  mailbox_id: number;
  server_identity: string;
  error_code: string;
  /** 'server-folder' | 'kept-locally' (POP3 has no folders). */
  location: string;
  folder: string | null;
  /** Blob key of the sealed report (mail details + the exception). */
  report_blob: string;
  /** POP3: blob key of the sealed raw mail. */
  raw_blob: string | null;
  /** 'in-error-folder' | 'moved-to-inbox' */
  status: string;
  created_at: string;
  moved_back_at: string | null;
}

/** OAuth 2.0 tokens of a mailbox ('mailbox:<id>') or of the outgoing SMTP server ('smtp'); see features/oauth/tokens.ts. */
export interface OAuthTokenTable {
  owner: string;
  /** JSON of what the tokens were issued for (client, token URL, scope, account): a change invalidates them. */
  binding: string;
  flow: string;
  /** Sealed JSON { accessToken, refreshToken? }. */
  sealed: string;
  access_expires_at: string | null;
  /** The scope the provider granted (or, when it did not say, the one asked for). */
  scope: string | null;
  /** The account the consent was given by (checked against the mailbox's username); null for app tokens. */
  account: string | null;
  status: 'authorized' | 'reauthorize-required';
  obtained_at: string;
  last_refresh_at: string | null;
  refresh_count: ColumnType<number, number | undefined, number>;
  last_error_code: string | null;
  last_error_message: string | null;
  refresh_lock_owner: string | null;
  refresh_lock_until: string | null;
  updated_at: string;
}

/** An authorization started and not yet completed; the state is its key. */
export interface OAuthPendingTable {
  state: string;
  owner: string;
  binding: string;
  /** Sealed JSON { codeVerifier }. */
  sealed: string;
  redirect_url: string;
  started_by: string;
  created_at: string;
  expires_at: string;
}

/** Who else takes part in a request: CC'd people (migration 0015). Unique per (request, hashed address). */
export interface RequestParticipantTable {
  id: Id;
  request_id: number;
  /** valueKey of the lower-cased address. */
  address_key: string;
  address: string;
  name: string | null;
  added_at: string;
  /** 'cc': from a mail's CC. */
  source: string;
  /** The conversation whose CC added the person; null: the request's first mail. */
  conversation_id: number | null;
}

/** An acknowledgement mail queued to a requester (migration 0015); counted per sender for the hourly cap. */
export interface AcknowledgementTable {
  id: Id;
  portal_id: number;
  /** valueKey of the lower-cased requester address. */
  sender_key: string;
  request_id: number;
  created_at: string;
}
