import { z } from '@hono/zod-openapi';
import { DEFAULT_ATTACHMENT_POLICY, FILE_NAME_RULE_SETS } from '../../mail/attachment-checks.js';

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

export const portalViewSchema = z
  .object({
    id: z.number().int(),
    name: z.string(),
    headerThreading: z.boolean(),
    /** The effective attachment policy: the admin's fields over the defaults. */
    attachmentPolicy: attachmentPolicySchema,
  })
  .openapi('Portal');
export type PortalView = z.infer<typeof portalViewSchema>;
