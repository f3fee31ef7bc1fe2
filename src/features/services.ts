import type { ApiKeysService } from './api-keys/service.js';
import type { ErrorFolderServices } from './error-mails/service.js';
import type { FetchService } from './fetch/service.js';
import type { MailboxesService } from './mailboxes/service.js';
import type { NotificationServices } from './notifications/service.js';
import type { OAuthService } from './oauth/service.js';
import type { PortalsService } from './portals/service.js';
import type { IntakeLogService, RequestsService } from './requests/service.js';
import type { SystemLogService } from './system-log/service.js';
import type { UsersService } from './users/service.js';

/**
 * The operations the CLI and the REST API both offer (and the web page later). Routes and commands are thin:
 * they parse input, call one of these, and present the result. Errors are MailintakeError with a code.
 * The notification operations (bell, rules, SMTP, alerts, outbox) are declared in notifications/service.ts.
 * The error folder's (error mails, reports, move to inbox, key rotation) in error-mails/service.ts.
 *
 * Each feature declares its own slice in its service.ts; this aggregate only puts them together. It is
 * imported from above the features (src/http, src/cli, src/app) and never from a feature folder: a feature's
 * routes and commands take just the slices they use, so the features never depend on each other through here.
 */
export interface Services extends NotificationServices, ErrorFolderServices {
  portals: PortalsService;
  mailboxes: MailboxesService;
  oauth: OAuthService;
  requests: RequestsService;
  log: IntakeLogService;
  systemLog: SystemLogService;
  fetch: FetchService;
  apiKeys: ApiKeysService;
  users: UsersService;
}
