import { z } from '@hono/zod-openapi';
import type { IntakeLogEntry, Outcome } from '../../intake/outcome.js';
import { DROP_MESSAGES, type DropCode } from '../../mail/attachment-checks.js';
import { timestamp } from '../shared/page.js';
import { REQUEST_STATUSES } from './statuses.js';

/** What the API and the CLI show of requests, their mails and attachments, and the intake log. */

export const addressSchema = z.object({ address: z.string(), name: z.string() }).openapi('Address');

export const attachmentViewSchema = z
  .object({
    id: z.number().int(),
    filename: z.string(),
    contentType: z.string(),
    size: z.number().int(),
    sha256: z.string(),
    contentId: z.string().nullable(),
    disposition: z.enum(['attachment', 'inline']),
    conversationId: z.number().int().nullable(),
  })
  .openapi('Attachment');
export type AttachmentView = z.infer<typeof attachmentViewSchema>;

const dropCodes = Object.keys(DROP_MESSAGES) as [DropCode, ...DropCode[]];

/** An attachment or inline image the checks dropped; its body is still in the blob store (`sha256`). */
export const droppedAttachmentViewSchema = attachmentViewSchema
  .extend({
    code: z.enum(dropCodes),
    /** The reference's text for the code. */
    message: z.string().openapi({ description: 'The reference’s text for the code' }),
    detail: z.string().openapi({ description: 'What exactly was wrong with this item' }),
    createdAt: timestamp(),
  })
  .openapi('DroppedAttachment', {
    description:
      'An attachment or inline image the checks dropped. The mail itself was taken in; the body is kept in the ' +
      'blob store under `sha256`, so an admin can recover it.',
  });
export type DroppedAttachmentView = z.infer<typeof droppedAttachmentViewSchema>;

const requestSummaryFields = {
  id: z.number().int(),
  portal: z.string(),
  subject: z.string(),
  requester: addressSchema.nullable(),
  status: z.enum(REQUEST_STATUSES),
  /** Who works on it (an email); null: nobody. */
  assignee: z.string().nullable(),
  conversationCount: z.number().int(),
  createdAt: timestamp(),
  updatedAt: timestamp(),
};
export const requestSummarySchema = z.object(requestSummaryFields).openapi('RequestSummary');
export type RequestSummary = z.infer<typeof requestSummarySchema>;

/** A request as the list shows it: the summary and the mailbox its first mail came through. */
export const requestListItemSchema = requestSummarySchema
  .extend({
    mailbox: z.string().nullable().openapi({ description: 'The mailbox of its first mail; null if none' }),
  })
  .openapi('RequestListItem');
export type RequestListItem = z.infer<typeof requestListItemSchema>;

/** One change of a request's status or assignee. */
export const requestHistoryEntrySchema = z
  .object({
    id: z.number().int(),
    requestId: z.number().int(),
    at: timestamp(),
    actor: z.string().openapi({ description: 'Who: api-key:<name>, cli:<os user> or system' }),
    field: z.enum(['status', 'assignee']),
    old: z.string().nullable(),
    new: z.string().nullable(),
  })
  .openapi('RequestHistoryEntry');
export type RequestHistoryEntry = z.infer<typeof requestHistoryEntrySchema>;

/** The parts of a request's first mail and of a conversation that are the same. */
const mailBodyFields = {
  to: z.array(addressSchema),
  cc: z.array(addressSchema),
  messageId: z.string().nullable(),
  text: z.string().nullable(),
  html: z.string().nullable().openapi({ description: 'As received: untrusted, sanitise before display.' }),
  /** What the sender wrote, without quoted text and signature (mail/reply-split.ts); for display only. */
  newPart: z
    .string()
    .nullable()
    .openapi({
      description:
        'What the sender wrote, without the text they quoted and their signature: for display only, `text` and ' +
        '`html` keep the full body. From the text body, or the HTML body’s text when there is none; null without a body.',
    }),
  date: z.string().nullable(),
  mailbox: z.string().nullable(),
  /** The intake-log entry of this mail (`mailintake raw LOGID`, GET /api/v1/log/{id}/raw); null if none. */
  logId: z.number().int().nullable().openapi({
    description: 'The intake-log entry of this mail: its raw source is GET /api/v1/log/{logId}/raw',
  }),
  attachments: z.array(attachmentViewSchema),
  /** Items the attachment checks dropped, with code and reason. */
  droppedAttachments: z.array(droppedAttachmentViewSchema),
};

/** How an outgoing reply or forward fared: the outbox's state, and a bounce that came back for it. */
export const deliveryViewSchema = z
  .object({
    outboxId: z.number().int(),
    state: z.enum(['pending', 'retrying', 'sent', 'failed']).openapi({
      description:
        'pending: queued, not tried yet; retrying: a try failed, tried again later; sent: the SMTP server took it; ' +
        'failed: given up, or a bounce came back for it',
    }),
    attempts: z.number().int(),
    sentAt: z.string().nullable(),
    failedAt: z.string().nullable(),
    /** The SMTP reply code of a refusal, or the DSN Status of a bounce (5.1.1). */
    status: z
      .string()
      .nullable()
      .openapi({ description: 'SMTP reply code of a refusal, or the DSN Status of a bounce' }),
    reason: z.string().nullable().openapi({ description: 'The refusal, or the bounce’s Diagnostic-Code' }),
    bounced: z.boolean().openapi({ description: 'A bounce came back for it after it was sent' }),
    bcc: z.array(z.string()),
  })
  .openapi('Delivery');
export type DeliveryView = z.infer<typeof deliveryViewSchema>;

export const conversationViewSchema = z
  .object({
    id: z.number().int(),
    from: addressSchema.nullable(),
    subject: z.string(),
    createdAt: timestamp(),
    automatic: z
      .boolean()
      .openapi({ description: 'An auto-reply (out-of-office, vacation) that threaded to this request.' }),
    direction: z
      .enum(['in', 'out'])
      .openapi({ description: 'in: a mail taken in; out: a reply or forward the help desk sent' }),
    actor: z.string().nullable().openapi({ description: 'Who sent an outgoing one; null for mail taken in' }),
    delivery: deliveryViewSchema
      .nullable()
      .openapi({ description: 'An outgoing one’s delivery; null for mail taken in' }),
    ...mailBodyFields,
  })
  .openapi('Conversation');
export type ConversationView = z.infer<typeof conversationViewSchema>;

/** What a reply or forward answers: its conversation, and the typed addresses left out as the help desk's own. */
export const sentReplyViewSchema = conversationViewSchema
  .extend({
    leftOut: z.array(z.string()).openapi({
      description:
        'Addresses typed in To, Cc or Bcc that were left out: the help desk’s own addresses and aliases',
    }),
  })
  .openapi('SentReply');
export type SentReplyView = z.infer<typeof sentReplyViewSchema>;

/** Someone else taking part in a request: a person CC'd on its first mail or on a conversation. */
export const participantViewSchema = z
  .object({
    address: z.string(),
    name: z.string().nullable(),
    source: z.string().openapi({ description: "cc: CC'd on a mail of the request" }),
    conversationId: z
      .number()
      .int()
      .nullable()
      .openapi({ description: 'The conversation whose CC added them; null: the first mail' }),
    addedAt: timestamp(),
  })
  .openapi('Participant');
export type ParticipantView = z.infer<typeof participantViewSchema>;

export const requestDetailSchema = z
  .object({
    ...requestSummaryFields,
    ...mailBodyFields,
    participants: z.array(participantViewSchema).openapi({
      description:
        "CC'd people (the portal's ccParticipants switch), without our own addresses or the requester",
    }),
    acknowledgement: deliveryViewSchema.nullable().openapi({
      description:
        'The acknowledgement mailed to the requester (the portal’s setting) and its delivery; null: none',
    }),
    conversations: z.array(conversationViewSchema),
  })
  .openapi('RequestDetail');
export type RequestDetail = z.infer<typeof requestDetailSchema>;

export const outcomeSchema = z.enum(['created', 'appended', 'ignored', 'error']) satisfies z.ZodType<Outcome>;
/** The intake log's types are intake's (intake/outcome.ts); the schemas here describe them for the API. */
export type { IntakeLogEntry, Outcome } from '../../intake/outcome.js';

export const intakeLogEntrySchema = z
  .object({
    id: z.number().int(),
    mailbox: z.string(),
    serverIdentity: z.string(),
    messageId: z.string().nullable(),
    contentHash: z.string().nullable(),
    /** The raw source as fetched is kept and can be downloaded (`log raw ID`, GET /api/v1/log/{id}/raw). */
    rawAvailable: z.boolean(),
    outcome: outcomeSchema,
    requestId: z.number().int().nullable(),
    conversationId: z.number().int().nullable(),
    errorCode: z.string().nullable(),
    reasons: z.array(z.string()),
    subject: z.string().nullable(),
    from: z.string().nullable(),
    size: z.number().int().nullable(),
    attempts: z.number().int(),
    acknowledged: z.boolean(),
    createdAt: timestamp(),
    updatedAt: timestamp(),
  })
  .openapi('IntakeLogEntry') satisfies z.ZodType<IntakeLogEntry>;

export { REQUEST_STATUSES, type RequestStatus } from './statuses.js';
