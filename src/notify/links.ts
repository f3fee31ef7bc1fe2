import type { NotificationEvent } from './notifier.js';

/**
 * The console's stable addresses a notice speaks of. Notification mails carry MAILINTAKE_PUBLIC_URL + one of
 * these, and the bell list links to them, so the same thing is one click away from either. The console's
 * sign-in keeps the path (`/login?next=`), so a link opened in a fresh browser lands on the page after sign-in.
 */
export const consolePaths = {
  mailbox: (name: string) => `/mailboxes/${encodeURIComponent(name)}`,
  errorFolder: (mailbox: string) => `/error-mails?mailbox=${encodeURIComponent(mailbox)}`,
  request: (id: number) => `/requests/${id}`,
};

/**
 * The page a stored bell notification speaks of, from its event and mailbox (the bell row keeps no link of its
 * own): a mailbox's connection → its page; a mail error → the mailbox's error folder.
 */
export function bellPath(event: NotificationEvent, mailbox: string | null): string | null {
  if (mailbox === null) return null;
  if (event === 'connection-failure' || event === 'connection-recovered')
    return consolePaths.mailbox(mailbox);
  if (event === 'mail-error') return consolePaths.errorFolder(mailbox);
  return consolePaths.mailbox(mailbox);
}
