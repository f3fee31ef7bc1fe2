import { z } from '@hono/zod-openapi';
import { afterFetchSchema } from '../../connectors/settings.js';
import type { FetchSummary } from '../../intake/outcome.js';
import { mailboxOAuthSchema } from '../oauth/views.js';
import { timestamp } from '../shared/page.js';

export type { MailboxOAuthView } from '../oauth/views.js';

/**
 * Why fetching is on or off: 'enabled'; 'paused' (settings saved during a fetch: enable to resume);
 * 'stopped-by-errors' (the error folder reached "stop mail fetching after N mails": enable to resume, after
 * moving the mails to the inbox); 'disabled' (by an admin).
 */
export const mailboxStatusSchema = z.enum(['enabled', 'paused', 'stopped-by-errors', 'disabled']).openapi({
  description:
    'paused: saved during a fetch; stopped-by-errors: the error folder reached stopAfterErrors; ' +
    'disabled: by an admin. Enabling resumes from each.',
});
export type MailboxStatus = z.infer<typeof mailboxStatusSchema>;

/** What the API and the CLI show of a mailbox: plain JSON, never a secret. */
export const mailboxViewSchema = z
  .object({
    id: z.number().int(),
    name: z.string(),
    portal: z.string(),
    protocol: z.string().openapi({ enum: ['imap', 'imaps', 'pop', 'pops', 'graph', 'ews'] }),
    server: z
      .string()
      .openapi({ description: 'Host name; for Graph the endpoint URL, for EWS the Connect URL' }),
    port: z.number().int(),
    username: z.string(),
    auth: z.enum(['password', 'oauth2', 'token']).openapi({
      description:
        'password; oauth2 (tokens from the consent, refreshed); token (Graph: a static accessToken)',
    }),
    passwordSet: z
      .boolean()
      .openapi({ description: 'A password is stored (auth "password"); it is never returned.' }),
    oauth: mailboxOAuthSchema.nullable().openapi({
      description: 'The OAuth settings (the client secret only as clientSecretSet) and the token state',
    }),
    emailAddress: z.array(z.string()),
    ewsAuth: z
      .enum(['ntlm', 'basic'])
      .nullable()
      .openapi({ description: 'EWS with a password: how it logs in (null for everything else)' }),
    starttls: z.boolean(),
    caFile: z.string().nullable(),
    folder: z.string(),
    afterFetch: z.enum(afterFetchSchema.options).openapi({
      description: 'IMAP, Graph and EWS: mark-read (default), delete, move. POP3: delete (default) or leave.',
    }),
    moveToFolder: z.string().nullable(),
    intervalSeconds: z.number().int(),
    idle: z.boolean().openapi({ description: 'IMAP IDLE push: new mail is taken in at once' }),
    replyAddress: z.boolean().openapi({
      description:
        'Replies carry a per-request Reply-To (local+<id>.<signature>@domain); needs plus-address delivery',
    }),
    enabled: z.boolean(),
    status: mailboxStatusSchema,
    moveToErrorFolder: z.boolean(),
    errorFolder: z
      .string()
      .nullable()
      .openapi({ description: 'null for POP3, whose error mails Mailintake keeps (sealed)' }),
    stopAfterErrors: z.number().int().nullable(),
    notifyOnErrorFolder: z.boolean(),
    errorMails: z
      .number()
      .int()
      .openapi({ description: '"Total number of mails in error folder": not yet moved back to the inbox' }),
    state: z.object({
      lastFetchAt: z.string().nullable(),
      lastErrorCode: z.string().nullable(),
      lastErrorMessage: z.string().nullable(),
      consecutiveFailures: z.number().int(),
      failingSince: z
        .string()
        .nullable()
        .openapi({ description: 'when the current run of failed rounds began (null while rounds connect)' }),
      fetching: z.boolean(),
    }),
    createdAt: timestamp(),
    updatedAt: timestamp(),
  })
  .openapi('Mailbox');
export type MailboxView = z.infer<typeof mailboxViewSchema>;

/** What `mailbox test` (the reference's "fetch a sample mail") answers. */
export const mailboxTestSchema = z
  .object({
    ok: z.literal(true),
    durationMs: z.number().int(),
    sample: z
      .object({
        from: z.string().nullable(),
        subject: z.string().nullable(),
        date: z.string().nullable(),
        size: z.number().int(),
        attachments: z.array(z.string()),
      })
      .nullable(),
  })
  .openapi('MailboxTest');

/** One mailbox's result of one fetch round (`fetch --once` prints these). */
export const fetchSummarySchema = z
  .object({
    mailbox: z.string(),
    /** false: the mailbox could not be reached (or was busy); `error` says why. */
    reached: z.boolean(),
    fetched: z.number().int(),
    created: z.number().int(),
    appended: z.number().int(),
    ignored: z.number().int(),
    errored: z.number().int(),
    /** Mails seen again after a crash or a failed acknowledgement: acknowledged now, no new effect. */
    reacknowledged: z.number().int(),
    /** Mails that failed before with an error a retry cannot fix, left in the inbox (no error folder set). */
    skippedErrors: z.number().int(),
    /** Mails moved to the error folder this round (POP3: kept by Mailintake and deleted from the server). */
    movedToErrorFolder: z.number().int(),
    error: z.object({ code: z.string(), message: z.string() }).nullable(),
    /**
     * The round ended early because the mailbox was disabled meanwhile: the reason ('settings-changed',
     * 'error-folder-limit', 'admin'). Mails not reached stay on the server for a later round.
     */
    stopped: z.string().nullable().openapi({
      description:
        'the round ended early because the mailbox was disabled meanwhile: settings-changed, error-folder-limit, admin',
    }),
    durationMs: z.number().int(),
  })
  .openapi('FetchSummary') satisfies z.ZodType<FetchSummary>;
/** The round's summary is intake's type (intake/outcome.ts); the schema above describes it for the API. */
export type { FetchSummary } from '../../intake/outcome.js';
