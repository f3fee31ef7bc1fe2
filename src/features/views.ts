import type { AfterFetch } from '../connectors/connector.js';
import type { AttachmentPolicy, DropCode } from '../mail/attachment-checks.js';
import type { Address } from '../mail/types.js';
import type { OAuthTokenView } from './oauth/tokens.js';

/** What the API and the CLI show of things (presenters): plain JSON, never a secret. */

export interface MailboxView {
  id: number;
  name: string;
  portal: string;
  protocol: string;
  server: string;
  port: number;
  username: string;
  /** How the mailbox logs in: 'password', 'oauth2' (tokens from the consent, refreshed), 'token' (Graph's static token). */
  auth: 'password' | 'oauth2' | 'token';
  /** Whether a password is stored (sealed, never shown); false with OAuth. */
  passwordSet: boolean;
  /** The OAuth settings (the client secret only as `clientSecretSet`) and the tokens' state; null without OAuth. */
  oauth: MailboxOAuthView | null;
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
  /**
   * Why fetching is on or off: 'enabled'; 'paused' (settings saved during a fetch: enable to resume);
   * 'stopped-by-errors' (the error folder reached "stop mail fetching after N mails": enable to resume, after
   * moving the mails to the inbox); 'disabled' (by an admin).
   */
  status: MailboxStatus;
  /** The reference's "Move messages to error folder" and its settings. */
  moveToErrorFolder: boolean;
  /** The error folder's name (IMAP, Graph); null for POP3, whose error mails Mailintake keeps (encrypted). */
  errorFolder: string | null;
  /** "Stop mail fetching after N mails" in the error folder; null: never stop. */
  stopAfterErrors: number | null;
  notifyOnErrorFolder: boolean;
  /** "Total number of mails in error folder": error mails not moved back to the inbox yet. */
  errorMails: number;
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

export interface MailboxOAuthView {
  provider: string;
  flow: string;
  tenant: string | null;
  clientId: string;
  clientSecretSet: boolean;
  authorizationUrl: string | null;
  tokenUrl: string;
  scope: string;
  issuer: string;
  /** The redirect URL to register at the provider (MAILINTAKE_PUBLIC_URL + /oauth/callback). */
  redirectUrl: string;
  /** The tokens' state (never a token): filled by the services, null where not looked up. */
  tokens: OAuthTokenView | null;
  /** Things to know (e.g. Graph: the outgoing server uses the same app and mailbox, see smtp-settings.ts). */
  warnings: string[];
}

export type MailboxStatus = 'enabled' | 'paused' | 'stopped-by-errors' | 'disabled';

/** A mail in a mailbox's error folder (or moved back from it); its report is sealed, see ErrorReportView. */
export interface ErrorMailView {
  id: number;
  mailbox: string;
  serverIdentity: string;
  errorCode: string;
  /** 'server-folder': moved to `folder` on the server; 'kept-locally': POP3, kept (sealed) by Mailintake. */
  location: 'server-folder' | 'kept-locally';
  folder: string | null;
  status: 'in-error-folder' | 'moved-to-inbox';
  /** POP3: the kept raw mail can be downloaded (decrypted) with `errors raw ID`. */
  rawAvailable: boolean;
  createdAt: string;
  movedBackAt: string | null;
}

/** What "move mails to inbox" did. */
export interface MoveToInboxResult {
  mailbox: string;
  /** Error mails moved back to the server's inbox (IMAP, Graph) or released for the next round (POP3). */
  moved: number[];
  /**
   * Error mails no longer in the error folder (moved or deleted by someone else, or moved back by an attempt
   * that was cut short): marked resolved too, so that the count can reach 0.
   */
  notFound: number[];
  /** Error mails left in the error folder now. */
  remaining: number;
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
  /** Who: `api-key:<name>`, `cli:<os user>` or `system`. */
  actor: string;
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
  /** The intake-log entry of this mail (`mailintake raw LOGID`, GET /api/v1/log/{id}/raw); null if none. */
  logId: number | null;
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
  /** The intake-log entry of the request's first mail: its raw source is `mailintake raw LOGID`. */
  logId: number | null;
  attachments: AttachmentView[];
  /** Items of the request's first mail that the attachment checks dropped, with code and reason. */
  droppedAttachments: DroppedAttachmentView[];
  conversations: ConversationView[];
}

// The intake's outcome types: defined where the round produces them (intake/outcome.ts).
export type { FetchSummary, IntakeLogEntry, Outcome } from '../intake/outcome.js';

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
