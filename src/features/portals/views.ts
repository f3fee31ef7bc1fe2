import { z } from '@hono/zod-openapi';
import { DEFAULT_ATTACHMENT_POLICY, FILE_NAME_RULE_SETS } from '../../mail/attachment-checks.js';
import { ACK_PLACEHOLDERS, DEFAULT_PORTAL_MAIL_SETTINGS } from '../../mail/portal-mail.js';

const mbLimit = (what: string) =>
  z.number().openapi({ description: `${what}; -1: unlimited (inline images: the size is not checked)` });

/** The effective attachment policy of a portal: the admin's fields over the defaults. */
export const attachmentPolicySchema = z
  .object({
    maxSizeMb: mbLimit('Largest attachment in MB (default 25)'),
    inlineImageMaxSizeMb: mbLimit('Largest inline image in MB (default 3)'),
    allowedExtensions: z
      .array(z.string())
      .openapi({ description: 'Allowed extensions; empty: all that are not denied' }),
    deniedExtensions: z.array(z.string()).openapi({ description: 'Denied extensions; deny wins over allow' }),
    skipAttachmentValidation: z.boolean().openapi({ description: 'Keep attachments without any check' }),
    skipInlineImageValidation: z.boolean().openapi({ description: 'Keep inline images without any check' }),
    notifyOnDrop: z
      .boolean()
      .openapi({ description: 'Email when an attachment is dropped (sent by the notification part)' }),
    notifyOnInlineImageDrop: z.boolean().openapi({ description: 'Email when an inline image is dropped' }),
    fileNames: z.enum(FILE_NAME_RULE_SETS).openapi({
      description:
        'File names refused (FILE_NAME_INVALID). "safe" (default): only unsafe or unsaveable names (control, ' +
        'bidirectional and invisible characters, path separators and "..", characters Windows forbids, Windows ' +
        'device names, a leading dot, a trailing dot or space, over 255 UTF-8 bytes). "strict": also any ' +
        'character other than letters, digits, marks, ".", "-", "_" and space.',
    }),
  })
  .openapi('AttachmentPolicy', {
    description:
      'Attachment and inline-image checks of a portal. A missing (or, in PATCH, `null`) field means its default: ' +
      JSON.stringify(DEFAULT_ATTACHMENT_POLICY),
  });

const placeholders = ACK_PLACEHOLDERS.map((p) => `{{${p}}}`).join(', ');

/** The effective mail settings of a portal: the admin's fields over the defaults (mail/portal-mail.ts). */
export const mailSettingsSchema = z
  .object({
    formSenders: z.array(z.string()).openapi({
      description:
        'Senders whose mails take the requester from Reply-To (web forms, no-reply relays): an address, or *@domain',
    }),
    ccParticipants: z
      .boolean()
      .openapi({ description: "CC'd people become participants of the request (default true)" }),
    acknowledgement: z
      .object({
        enabled: z
          .boolean()
          .openapi({ description: 'Mail the requester when a request is created (default false)' }),
        subject: z.string().openapi({
          description: `Subject template; placeholders ${placeholders}. ##<id>## is added when the template leaves it out, so answers thread.`,
        }),
        body: z.string().openapi({ description: `Body template (plain text); placeholders ${placeholders}` }),
        perSenderPerHour: z
          .number()
          .int()
          .openapi({ description: 'Acknowledgements one sender receives per hour at most (default 5)' }),
      })
      .openapi({
        description:
          'Never sent to machines (auto-replies, bounces, our own mail), list mail, our own addresses or no-reply-style senders',
      }),
    rateLimit: z
      .object({
        maxRequests: z.number().int().openapi({
          description:
            'New requests one sender may open per window (default 20); 0: no limit. The excess goes to the error route with RATE_LIMITED.',
        }),
        windowMinutes: z.number().int().openapi({ description: 'The window in minutes (default 60)' }),
      })
      .openapi({ description: 'Conversations are never limited, nor our own addresses' }),
  })
  .openapi('PortalMailSettings', {
    description: `Requesters, participants, acknowledgements and the per-sender limit. A missing (or, in PATCH, \`null\`) field means its default: ${JSON.stringify(DEFAULT_PORTAL_MAIL_SETTINGS)}`,
  });

export const portalViewSchema = z
  .object({
    id: z.number().int(),
    name: z.string(),
    headerThreading: z.boolean(),
    /** The effective attachment policy: the admin's fields over the defaults. */
    attachmentPolicy: attachmentPolicySchema,
    /** The effective mail settings: the admin's fields over the defaults. */
    mailSettings: mailSettingsSchema,
  })
  .openapi('Portal');
export type PortalView = z.infer<typeof portalViewSchema>;
