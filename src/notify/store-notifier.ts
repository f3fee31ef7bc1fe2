import { NOTICE_MAX_BODY as MAX_BODY, NOTICE_MAX_TITLE as MAX_TITLE } from '../kernel/limits.js';
import { nowIso } from '../store/db.js';
import type { Tx } from '../store/tx.js';
import type { Notice, Notifier } from './notifier.js';
import { recipientsFor } from './rules.js';

/**
 * The Notifier: a bell row for admins (when asked) and an outbox mail to the event's recipients from the
 * notification rules, both in the caller's transaction. No recipients: no mail, the bell still. Sending is
 * the outbox sender's job (notify/outbox.ts), woken by `kick()` after the commit.
 */
export class StoreNotifier implements Notifier {
  /**
   * `publicUrl`: MAILINTAKE_PUBLIC_URL (or the address `serve` recorded), the base of the link each mail ends
   * with; without it mails carry no link.
   */
  constructor(
    private readonly wake: () => void = () => undefined,
    private readonly publicUrl?: string,
  ) {}

  async record(tx: Tx, notice: Notice): Promise<void> {
    const now = nowIso();
    const title = oneLine(notice.title).slice(0, MAX_TITLE);
    const body = textBody(notice.body).slice(0, MAX_BODY);
    if (notice.bell) {
      await tx
        .insertInto('notifications')
        .values({
          portal_id: notice.portalId,
          mailbox_id: notice.mailboxId,
          event: notice.event,
          title,
          body,
          created_at: now,
          read_at: null,
        })
        .execute();
    }
    if (notice.email === false) return;
    const recipients = await recipientsFor(tx, notice.event, notice.portalId);
    if (recipients.length === 0) return;
    const link =
      notice.link && this.publicUrl
        ? `\n\nOpen it in Mailintake (sign in first if asked): ${this.publicUrl}${notice.link}`
        : '';
    await tx
      .insertInto('mail_outbox')
      .values({
        event: notice.event,
        recipients: JSON.stringify(recipients),
        subject: title,
        body: body + link,
        created_at: now,
        attempts: 0,
        next_attempt_at: now,
        sent_at: null,
        last_error: null,
      })
      .execute();
  }

  kick(): void {
    this.wake();
  }
}

/**
 * A title becomes a mail's Subject header and a terminal line: CR/LF would let text from a mail (its subject,
 * a file name) start headers of its own, and controls or bidi overrides make it read differently than it is.
 */
export function oneLine(text: string): string {
  return Array.from(text, (ch) => (isUnsafe(ch, false) ? ' ' : ch))
    .join('')
    .replace(/\s+/g, ' ')
    .trim();
}

/** A body keeps its lines and tabs; other controls and bidi overrides become '?'. */
function textBody(text: string): string {
  return Array.from(text.replace(/\r\n?/g, '\n'), (ch) => (isUnsafe(ch, true) ? '?' : ch)).join('');
}

function isUnsafe(ch: string, keepLines: boolean): boolean {
  if (keepLines && (ch === '\n' || ch === '\t')) return false;
  const cp = ch.codePointAt(0) ?? 0;
  return (
    cp < 0x20 ||
    (cp >= 0x7f && cp <= 0x9f) ||
    (cp >= 0x202a && cp <= 0x202e) ||
    (cp >= 0x2066 && cp <= 0x2069) ||
    cp === 0x2028 ||
    cp === 0x2029
  );
}
