import type { Readable } from 'node:stream';
import type { SampleMail } from '../connectors/connector.js';
/**
 * The operations the CLI and the REST API both offer (and the web page later). Routes and commands are thin:
 * they parse input, call one of these, and present the result. Errors are MailintakeError with a code.
 * The notification operations (bell, rules, SMTP, alerts, outbox) are declared in services/notifications.ts.
 * The error folder's (error mails, reports, move to inbox, key rotation) in services/error-mails.ts.
 */
import type { providerPresets } from '../oauth/providers.js';
import type { ApiKeyView } from './api-keys/views.js';
import type { ErrorFolderServices } from './error-mails/service.js';
import type { FetchSummary, MailboxView } from './mailboxes/views.js';
import type { NotificationServices } from './notifications/service.js';
import type { CompletedAuthorization, OAuthTokenView, StartedAuthorization } from './oauth/tokens.js';
import type { Page } from './page.js';
import type { PortalView } from './portals/views.js';
import type { AttachmentView, IntakeLogEntry, RequestDetail, RequestSummary } from './requests/views.js';
import type { SystemLogEntry } from './system-log/views.js';

export interface Services extends NotificationServices, ErrorFolderServices {
  portals: {
    list(): Promise<PortalView[]>;
    /** Creates a portal (name: letters, digits, dot, hyphen, underscore). */
    add(name: string): Promise<PortalView>;
    /** The reference's switch: headerThreading false → only `##id##` in the subject threads mails. */
    /**
     * `attachmentPolicy`: fields to change (pipeline/attachment-checks.ts); `null` for a field restores its
     * default. INVALID_SETTINGS names every bad field; nothing is saved then.
     */
    update(
      name: string,
      patch: { headerThreading?: boolean; attachmentPolicy?: Record<string, unknown> },
    ): Promise<PortalView>;
  };
  mailboxes: {
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
    /** The reference's "fetch a sample mail": connect, log in, describe the oldest mail, change nothing. */
    test(name: string): Promise<{ ok: true; sample: SampleMail | null; durationMs: number }>;
  };
  /** OAuth 2.0 consent and token state (never a token). */
  oauth: {
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
    /** The outgoing SMTP server's consent (SASL XOAUTH2), like a mailbox's. */
    authorizeSmtp(): Promise<StartedAuthorization>;
    smtpStatus(): Promise<OAuthTokenView>;
  };
  requests: {
    /** Newest first. `before`: only ids below it (page on from the last id seen; new requests do not shift it). */
    list(q: {
      portal?: string;
      limit?: number;
      offset?: number;
      before?: number;
    }): Promise<Page<RequestSummary>>;
    show(id: number): Promise<RequestDetail>;
    attachment(id: number): Promise<{ meta: AttachmentView; open(): Readable }>;
  };
  log: {
    list(q: {
      mailbox?: string;
      outcome?: string;
      limit?: number;
      offset?: number;
      before?: number;
    }): Promise<Page<IntakeLogEntry>>;
    /** The raw mail of a log entry, as it was fetched (message/rfc822). */
    raw(id: number): Promise<{ meta: AttachmentView; open(): Readable }>;
  };
  systemLog: {
    /** Newest first. */
    list(q: {
      category?: string;
      limit?: number;
      offset?: number;
      before?: number;
    }): Promise<Page<SystemLogEntry>>;
  };
  fetch: {
    /** One round over the enabled mailboxes (or the one named, enabled or not). */
    once(q: { mailbox?: string }): Promise<FetchSummary[]>;
  };
  apiKeys: {
    /** Returns the key once; only its hash is stored. */
    create(name: string): Promise<{ key: string; view: ApiKeyView }>;
    list(): Promise<ApiKeyView[]>;
    revoke(id: number): Promise<void>;
    /** The key's name when the presented key is valid (constant-time compare of hashes), else null; records last use. */
    verify(presented: string): Promise<string | null>;
  };
}
