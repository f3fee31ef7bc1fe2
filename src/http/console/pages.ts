import { mountMailboxPages } from '../../features/mailboxes/pages.js';
import { mountRequestsPages } from '../../features/requests/pages.js';
import type { Services } from '../../features/services.js';
import type { ConsoleApp, ConsoleKit } from '../../features/shared/console-kit.js';

/**
 * Every feature's console pages, mounted on the console's app. Each feature's pages.tsx exports one
 * mount function taking the console app, the kit and the service slices it uses, never the whole Services.
 */
export function mountFeaturePages(ui: ConsoleApp, kit: ConsoleKit, services: Services): void {
  mountMailboxPages(ui, kit, services);
  const { requests, log, users, portals, mailboxes } = services;
  mountRequestsPages(ui, kit, { requests, log, users, portals, mailboxes });
}
