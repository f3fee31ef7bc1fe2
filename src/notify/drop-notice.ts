import {
  type AttachmentPolicy,
  type DroppedPart,
  dropReason,
  isInlineImage,
} from '../mail/attachment-checks.js';
import { consolePaths } from './links.js';
import type { Notice } from './notifier.js';

/** The mail whose items the attachment checks dropped, as the commit knows it. */
export interface DroppedItemsOfMail {
  mailbox: { id: number; name: string; portalId: number };
  requestId: number;
  conversationId: number | null;
  subject: string;
  from: string | null;
  dropped: DroppedPart[];
  policy: AttachmentPolicy;
}

/**
 * The reference's "Email notification for dropped attachment/inline image", switchable per portal:
 * `notifyOnDrop` for attachments, `notifyOnInlineImageDrop` for inline images (the reference's separate
 * switch). One notice per kind that has drops and is switched on; recipients come from the rules for
 * 'attachment-dropped' / 'inline-image-dropped'. Email only: the system log already has an entry per item.
 */
export function dropNotices(m: DroppedItemsOfMail): Notice[] {
  const images = m.dropped.filter((d) => isInlineImage(d.part));
  const attachments = m.dropped.filter((d) => !isInlineImage(d.part));
  const out: Notice[] = [];
  if (attachments.length > 0 && m.policy.notifyOnDrop) out.push(notice(m, 'attachment-dropped', attachments));
  if (images.length > 0 && m.policy.notifyOnInlineImageDrop) {
    out.push(notice(m, 'inline-image-dropped', images));
  }
  return out;
}

function notice(
  m: DroppedItemsOfMail,
  event: 'attachment-dropped' | 'inline-image-dropped',
  items: DroppedPart[],
): Notice {
  const what = event === 'attachment-dropped' ? 'attachment' : 'inline image';
  const where =
    m.conversationId === null
      ? `request #${m.requestId}`
      : `request #${m.requestId} (conversation ${m.conversationId})`;
  return {
    event,
    portalId: m.mailbox.portalId,
    mailboxId: m.mailbox.id,
    bell: false,
    link: consolePaths.request(m.requestId),
    title: `${items.length === 1 ? `An ${what} was` : `${items.length} ${what}s were`} dropped from ${where}: ${m.subject}`,
    body: [
      `The attachment checks dropped ${items.length === 1 ? `one ${what}` : `${items.length} ${what}s`} of a mail that came in through the mailbox "${m.mailbox.name}".`,
      `The mail itself was taken in as ${where}.`,
      '',
      `From: ${m.from ?? '(unknown)'}`,
      `Subject: ${m.subject}`,
      '',
      ...items.map(
        (d) => `- ${dropReason(d)} (${d.code}: ${d.detail}; ${d.part.size} bytes, sha256 ${d.part.sha256})`,
      ),
      '',
      'Each dropped item is kept in the blob store under its sha256, so it can be recovered; the system log has an',
      'entry for each (mailintake system-log --category attachment-dropped). To stop these emails, switch',
      `"${event === 'attachment-dropped' ? 'notifyOnDrop' : 'notifyOnInlineImageDrop'}" off in the portal's attachment policy.`,
    ].join('\n'),
  };
}
