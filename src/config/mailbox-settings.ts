import { z } from 'zod';
import { MailintakeError } from '../errors.js';

/**
 * A mailbox as an admin writes it (CLI file, API body). Field names follow the ServiceDesk Plus reference
 * where it has them (server, port, username, password, emailAddress, protocol).
 */
const hostname = z
  .string()
  .trim()
  .min(1, 'the server name or IP address is required')
  .max(253)
  .regex(/^[A-Za-z0-9.\-:[\]]+$/, 'must be a host name or IP address, without scheme or path');

const emailList = z
  .string()
  .trim()
  .min(1, 'at least one address is required')
  .transform((s) =>
    s
      .split(',')
      .map((a) => a.trim().toLowerCase())
      .filter(Boolean),
  )
  .pipe(z.array(z.email('each address must be a valid email address')).min(1));

export const afterFetchSchema = z.enum(['mark-read', 'delete', 'move']);

export const mailboxInputSchema = z
  .object({
    name: z
      .string()
      .trim()
      .min(1)
      .max(100)
      .regex(
        /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
        'letters, digits, dot, hyphen and underscore; starts with a letter or digit',
      ),
    portal: z.string().trim().min(1).default('default'),
    protocol: z.enum(['imap', 'imaps']),
    server: hostname,
    port: z.number().int().min(1).max(65535).optional(),
    username: z.string().min(1, 'the user name is required'),
    password: z.string().min(1, 'the password is required'),
    emailAddress: emailList,
    starttls: z.boolean().default(true),
    caFile: z.string().min(1).optional(),
    folder: z.string().min(1).default('INBOX'),
    afterFetch: afterFetchSchema.default('mark-read'),
    moveToFolder: z.string().min(1).optional(),
    intervalSeconds: z.number().int().min(10, 'at least 10 seconds').max(86_400).default(60),
    enabled: z.boolean().default(true),
  })
  .strict()
  .superRefine((m, ctx) => {
    if (m.afterFetch === 'move' && !m.moveToFolder) {
      ctx.addIssue({ code: 'custom', path: ['moveToFolder'], message: 'required when afterFetch is "move"' });
    }
    if (m.protocol === 'imaps' && m.starttls === true && m.port === 143) {
      ctx.addIssue({
        code: 'custom',
        path: ['port'],
        message: 'port 143 is plain IMAP; use protocol "imap" (with starttls) or port 993',
      });
    }
  });

export type MailboxInput = z.input<typeof mailboxInputSchema>;
export type MailboxSettings = z.output<typeof mailboxInputSchema> & { port: number };

export const DEFAULT_PORTS: Record<MailboxSettings['protocol'], number> = { imap: 143, imaps: 993 };

/** Validates a mailbox; throws INVALID_SETTINGS naming every bad field. */
export function parseMailboxInput(input: unknown): MailboxSettings {
  const result = mailboxInputSchema.safeParse(input);
  if (!result.success) {
    const fields = result.error.issues.map((i) => ({
      field: i.path.join('.') || '(root)',
      message: i.code === 'unrecognized_keys' ? `unknown field(s): ${i.keys.join(', ')}` : i.message,
    }));
    throw new MailintakeError(
      'INVALID_SETTINGS',
      `Invalid mailbox settings: ${fields.map((f) => `${f.field}: ${f.message}`).join('; ')}`,
      { details: { fields } },
    );
  }
  const m = result.data;
  return { ...m, port: m.port ?? DEFAULT_PORTS[m.protocol] };
}
