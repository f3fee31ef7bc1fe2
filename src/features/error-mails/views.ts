import { z } from '@hono/zod-openapi';
import { timestamp } from '../shared/page.js';

/** A mail in a mailbox's error folder (or moved back from it); its report is sealed, see errorReportSchema. */
export const errorMailViewSchema = z
  .object({
    id: z.number().int(),
    mailbox: z.string(),
    portal: z.string(),
    serverIdentity: z.string(),
    errorCode: z.string(),
    /** The error's message as the intake log has it; null once the mail was taken in again under its identity. */
    errorMessage: z.string().nullable(),
    /** 'server-folder': moved to `folder` on the server; 'kept-locally': POP3, kept (sealed) by Mailintake. */
    location: z
      .enum(['server-folder', 'kept-locally'])
      .openapi({ description: 'kept-locally: POP3, kept (sealed) by Mailintake' }),
    folder: z.string().nullable(),
    status: z.enum(['in-error-folder', 'moved-to-inbox']),
    /** POP3: the kept raw mail can be downloaded (decrypted) with `errors raw ID`. */
    rawAvailable: z.boolean().openapi({ description: 'POP3: GET /error-mails/{id}/raw' }),
    createdAt: timestamp(),
    movedBackAt: z.string().nullable(),
  })
  .openapi('ErrorMail');
export type ErrorMailView = z.infer<typeof errorMailViewSchema>;

/** What "move mails to inbox" did. */
export const moveToInboxResultSchema = z
  .object({
    mailbox: z.string(),
    /** Error mails moved back to the server's inbox (IMAP, Graph) or released for the next round (POP3). */
    moved: z.array(z.number().int()),
    /**
     * Error mails no longer in the error folder (moved or deleted by someone else, or moved back by an attempt
     * that was cut short): marked resolved too, so that the count can reach 0.
     */
    notFound: z.array(z.number().int()),
    /** Error mails left in the error folder now. */
    remaining: z.number().int(),
  })
  .openapi('MoveToInboxResult');
export type MoveToInboxResult = z.infer<typeof moveToInboxResultSchema>;

/** The sealed report of an error mail, as opened for the admin (its TS type is intake's ErrorReport). */
export const errorReportSchema = z
  .object({
    format: z.literal('mailintake-error-report/1'),
    mailbox: z.string(),
    protocol: z.string(),
    serverIdentity: z.string(),
    intakeLogId: z.number().int().nullable(),
    failedAt: z.string().nullable(),
    reportedAt: timestamp(),
    movedTo: z.union([
      z.object({ location: z.literal('server-folder'), folder: z.string() }),
      z.object({ location: z.literal('kept-locally') }),
    ]),
    mail: z.object({
      from: z.string().nullable(),
      to: z.string().nullable(),
      cc: z.string().nullable(),
      subject: z.string().nullable(),
      date: z.string().nullable(),
      messageId: z.string().nullable(),
      size: z.number().int().nullable(),
      rawSha256: z.string().nullable(),
      headerProblem: z.string().optional(),
    }),
    error: z.object({
      code: z.string(),
      message: z.string(),
      help: z.string().nullable(),
      causes: z.array(z.string()),
      details: z.record(z.string(), z.unknown()),
    }),
  })
  .openapi('ErrorReport');

export const errorMailReportSchema = z.object({ errorMail: errorMailViewSchema, report: errorReportSchema });
