import type { AfterFetch } from '../connectors/connector.js';
import type { AttachmentPolicy, DropCode } from '../pipeline/attachment-checks.js';
import type { Address } from '../pipeline/types.js';

/** What the API and the CLI show of things (presenters): plain JSON, never a secret. */

export interface MailboxView {
  id: number;
  name: string;
  portal: string;
  protocol: string;
  server: string;
  port: number;
  username: string;
  /** Always true: the password is stored (sealed) but never shown. */
  passwordSet: boolean;
  emailAddress: string[];
  starttls: boolean;
  caFile: string | null;
  folder: string;
  afterFetch: AfterFetch['action'];
  moveToFolder: string | null;
  intervalSeconds: number;
  /** IMAP IDLE push on (new mail fetched at once); the schedule is the fallback either way. */
  idle: boolean;
  enabled: boolean;
  state: {
    lastFetchAt: string | null;
    lastErrorCode: string | null;
    lastErrorMessage: string | null;
    consecutiveFailures: number;
    fetching: boolean;
  };
  createdAt: string;
  updatedAt: string;
}

export interface PortalView {
  id: number;
  name: string;
  headerThreading: boolean;
  /** The effective attachment policy: the admin's fields over the defaults. */
  attachmentPolicy: AttachmentPolicy;
}

/** An attachment or inline image the checks dropped; its body is still in the blob store (`sha256`). */
export interface DroppedAttachmentView extends AttachmentView {
  code: DropCode;
  /** The reference's text for the code. */
  message: string;
  detail: string;
  createdAt: string;
}

export interface SystemLogEntry {
  id: number;
  createdAt: string;
  level: string;
  category: string;
  message: string;
  details: Record<string, unknown>;
}

export interface AttachmentView {
  id: number;
  filename: string;
  contentType: string;
  size: number;
  sha256: string;
  contentId: string | null;
  disposition: 'attachment' | 'inline';
  conversationId: number | null;
}

export interface RequestSummary {
  id: number;
  portal: string;
  subject: string;
  requester: Address | null;
  status: string;
  conversationCount: number;
  createdAt: string;
  updatedAt: string;
}

export interface ConversationView {
  id: number;
  from: Address | null;
  to: Address[];
  cc: Address[];
  subject: string;
  messageId: string | null;
  text: string | null;
  html: string | null;
  date: string | null;
  mailbox: string | null;
  createdAt: string;
  attachments: AttachmentView[];
  droppedAttachments: DroppedAttachmentView[];
}

export interface RequestDetail extends RequestSummary {
  to: Address[];
  cc: Address[];
  messageId: string | null;
  text: string | null;
  html: string | null;
  date: string | null;
  mailbox: string | null;
  attachments: AttachmentView[];
  /** Items of the request's first mail that the attachment checks dropped, with code and reason. */
  droppedAttachments: DroppedAttachmentView[];
  conversations: ConversationView[];
}

export type Outcome = 'created' | 'appended' | 'ignored' | 'error';

export interface IntakeLogEntry {
  id: number;
  mailbox: string;
  serverIdentity: string;
  messageId: string | null;
  contentHash: string | null;
  /** The raw source as fetched is kept and can be downloaded (`log raw ID`, GET /api/v1/log/{id}/raw). */
  rawAvailable: boolean;
  outcome: Outcome;
  requestId: number | null;
  conversationId: number | null;
  errorCode: string | null;
  reasons: string[];
  subject: string | null;
  from: string | null;
  size: number | null;
  attempts: number;
  acknowledged: boolean;
  createdAt: string;
  updatedAt: string;
}

/** One mailbox's result of one fetch round (`fetch --once` prints these). */
export interface FetchSummary {
  mailbox: string;
  /** false: the mailbox could not be reached (or was busy); `error` says why. */
  reached: boolean;
  fetched: number;
  created: number;
  appended: number;
  ignored: number;
  errored: number;
  /** Mails seen again after a crash or a failed acknowledgement: acknowledged now, no new effect. */
  reacknowledged: number;
  /** Mails that failed before with an error a retry cannot fix: left on the server (error-folder seam). */
  skippedErrors: number;
  error: { code: string; message: string } | null;
  durationMs: number;
}

export interface ApiKeyView {
  id: number;
  name: string;
  prefix: string;
  createdAt: string;
  lastUsedAt: string | null;
}

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}
