import { mountErrorMailPages } from '../../features/error-mails/pages.js';
import { mountMailboxPages } from '../../features/mailboxes/pages.js';
import { mountNotificationPages } from '../../features/notifications/pages.js';
import { mountSmtpPages } from '../../features/notifications/smtp-pages.js';
import { mountPortalSettingsPages } from '../../features/portals/pages.js';
import { mountPortalSmtpPages } from '../../features/portals/smtp-page.js';
import { mountRequestsPages } from '../../features/requests/pages.js';
import type { Services } from '../../features/services.js';
import type { ConsoleApp, ConsoleKit } from '../../features/shared/console-kit.js';
import { mountSystemLogPages } from '../../features/system-log/pages.js';

/**
 * Every feature's console pages, mounted on the console's app. Each feature's pages.tsx exports one
 * mount function taking the console app, the kit and the service slices it uses, never the whole Services.
 */
export function mountFeaturePages(ui: ConsoleApp, kit: ConsoleKit, services: Services): void {
  mountMailboxPages(ui, kit, services);
  const { requests, log, users, portals, mailboxes } = services;
  mountRequestsPages(ui, kit, { requests, log, users, portals, mailboxes });
  mountErrorMailPages(ui, kit, services);
  mountNotificationPages(ui, kit, services);
  mountSystemLogPages(ui, kit, services);
  mountPortalSettingsPages(ui, kit, services);
  mountSmtpPages(ui, kit, services);
  mountPortalSmtpPages(ui, kit, services);
}
