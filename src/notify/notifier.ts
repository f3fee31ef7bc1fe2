import type { Tx } from '../store/tx.js';

/**
 * Events that notify someone. Email recipients come from the notification rules (per event, per portal or
 * for every portal); bell notifications go to admins.
 * - mail-error: a mail was moved to the error folder (the reference's "Send e-mail when an application error
 *   occurs"), and a mailbox stopped at its error-folder limit.
 * - connection-failure / connection-recovered: the consecutive-failure threshold was reached / a failing
 *   mailbox connected again.
 * - attachment-dropped / inline-image-dropped: the attachment checks dropped items of a mail.
 */
export const NOTIFICATION_EVENTS = [
  'mail-error',
  'connection-failure',
  'connection-recovered',
  'attachment-dropped',
  'inline-image-dropped',
] as const;
export type NotificationEvent = (typeof NOTIFICATION_EVENTS)[number];

export interface Notice {
  event: NotificationEvent;
  portalId: number | null;
  mailboxId: number | null;
  /** The bell title and the email subject. */
  title: string;
  /** Plain text: what happened and what to do. Never a secret, never mail content beyond sender/subject. */
  body: string;
  /**
   * The console page this notice speaks of (a path of notify/links.ts' consolePaths): the mail ends with the
   * public URL + this path.
   */
  link?: string;
  /** Also an admin bell notification (default false). */
  bell?: boolean;
  /** Email the event's recipients (default true). */
  email?: boolean;
}

/**
 * Records notices durably in the caller's transaction: the bell row and the outbox mail commit exactly when
 * the event they tell about commits. Sending happens afterwards, from the outbox (src/notify/outbox.ts):
 * a crash between commit and send delays the mail, never loses it.
 */
export interface Notifier {
  record(tx: Tx, notice: Notice): Promise<void>;
  /** Wakes the outbox sender; call after the transaction that recorded notices committed. */
  kick(): void;
}
