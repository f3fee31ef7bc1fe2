import { randomBytes } from 'node:crypto';
import type { MachineKind } from '../mail/machine.js';
import { OWN_MESSAGE_ID_DOMAIN } from '../mail/machine.js';
import { fillTemplate, type PortalMailSettings } from '../mail/portal-mail.js';
import { isNoReplyAddress } from '../mail/requester.js';
import type { Address, ParsedMail } from '../mail/types.js';
import { valueKey } from '../store/keys.js';
import type { Tx } from '../store/tx.js';
import { oneLine } from './store-notifier.js';

/*
 * The acknowledgement a requester receives when a mail opens a request (the portal's mailSettings.acknowledgement,
 * off by default). Queued in the outbox in the SAME transaction as the request, so a crash never sends one for a
 * request that does not exist, nor loses one for a request that does; the outbox sends it afterwards with our
 * Message-ID domain and loop header (notify/smtp-transport.ts), which is how its echo is recognised.
 *
 * Never mailed back, whatever the portal says: machines (our own mail come back, bounces, auto-replies), list
 * mail, our own addresses, no-reply-style senders, and a sender who had perSenderPerHour acknowledgements in the
 * last hour. This is what keeps two auto-responders from talking to each other through us.
 */

export const ACKNOWLEDGEMENT_EVENT = 'acknowledgement';

/** Why no acknowledgement may go to this mail's requester; null: it may. Pure. */
export function acknowledgementRefusal(
  mail: ParsedMail,
  requester: Address | null,
  machine: MachineKind | null,
  own: ReadonlySet<string>,
  /** The weaker machine signals (mail/classify.ts autoSubmitted): RFC 3834 §2 asks not to answer those either. */
  flagged: string | null,
): string | null {
  if (machine !== null) return `the mail is a machine's (${machine})`;
  if (requester === null) return 'the request has no requester address';
  const h = mail.headers;
  if (h['list-id'] !== undefined) return `it is list mail (List-Id: ${h['list-id'].slice(0, 120)})`;
  if (h['list-unsubscribe'] !== undefined) return 'it is list mail (List-Unsubscribe)';
  const precedence = (h.precedence ?? '').trim().toLowerCase();
  if (['list', 'bulk', 'junk'].includes(precedence)) return `it is bulk mail (Precedence: ${precedence})`;
  if (flagged !== null) return `the mail is flagged as sent by a machine (${flagged})`;
  const address = requester.address.toLowerCase();
  if (own.has(address)) return `${address} is one of our own mailbox addresses`;
  if (isNoReplyAddress(address)) return `${address} is a no-reply-style address`;
  return null;
}

/** The acknowledgement's subject: the template filled, one line, and always carrying ##id## so answers thread. */
export function acknowledgementSubject(
  template: string,
  requestId: number,
  subject: string,
  requester: string,
) {
  const filled = oneLine(fillTemplate(template, values(requestId, subject, requester)));
  return filled.includes(`##${requestId}##`) ? filled : `${filled} ##${requestId}##`;
}

function values(requestId: number, subject: string, requester: string) {
  return { id: String(requestId), subject: oneLine(subject) || '(no subject)', requester };
}

/** Acknowledgements queued to this sender in this portal since `since` (for the hourly cap). */
export async function acknowledgementsSince(
  tx: Tx,
  portalId: number,
  senderKey: string,
  since: string,
): Promise<number> {
  const row = await tx
    .selectFrom('acknowledgements')
    .select((eb) => eb.fn.countAll<number | string>().as('n'))
    .where('portal_id', '=', portalId)
    .where('sender_key', '=', senderKey)
    .where('created_at', '>=', since)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/**
 * Queues the acknowledgement of a new request in the caller's transaction (the request's). The one place an
 * acknowledgement is written: when the outbox learns a request and a From address, they are set here.
 */
export async function enqueueAcknowledgement(
  tx: Tx,
  input: {
    portalId: number;
    requestId: number;
    requester: Address;
    subject: string;
    template: PortalMailSettings['acknowledgement'];
    now: string;
    /** The address of the mailbox the mail came through: the acknowledgement comes from it, as replies do. */
    from?: string | undefined;
    /** The Message-ID of the mail acknowledged: the acknowledgement answers it (In-Reply-To, References). */
    inReplyTo?: string | null | undefined;
  },
): Promise<void> {
  const { portalId, requestId, requester, template, now } = input;
  const name = requester.name || requester.address;
  // Our Message-ID, fixed now and kept with the request's ids: the customer's answer to the acknowledgement
  // threads by its headers, and a bounce of it is linked to the request (intake/commit-mail.ts linkBounce).
  const messageId = `mailintake-ack-${randomBytes(12).toString('hex')}@${OWN_MESSAGE_ID_DOMAIN}`;
  const inReplyTo = input.inReplyTo ? input.inReplyTo : null;
  await tx
    .insertInto('mail_outbox')
    .values({
      event: ACKNOWLEDGEMENT_EVENT,
      recipients: JSON.stringify([requester.address]),
      subject: acknowledgementSubject(template.subject, requestId, input.subject, name),
      body: fillTemplate(template.body, values(requestId, input.subject, name)).replace(/\r\n?/g, '\n'),
      created_at: now,
      attempts: 0,
      next_attempt_at: now,
      sent_at: null,
      last_error: null,
      request_id: requestId,
      from_address: input.from ?? null,
      message_id: messageId,
      message_key: valueKey(messageId),
      in_reply_to: inReplyTo,
      references_ids: inReplyTo ? JSON.stringify([inReplyTo]) : null,
    })
    .execute();
  await tx
    .insertInto('message_ids')
    .values({
      portal_id: portalId,
      message_key: valueKey(messageId),
      message_id: messageId,
      request_id: requestId,
    })
    .onConflict((oc) => oc.columns(['portal_id', 'message_key']).doNothing())
    .execute();
  await tx
    .insertInto('acknowledgements')
    .values({
      portal_id: portalId,
      sender_key: valueKey(requester.address.toLowerCase()),
      request_id: requestId,
      created_at: now,
    })
    .execute();
}
