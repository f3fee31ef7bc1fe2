import type { z } from 'zod';
import { MailintakeError } from '../errors.js';

/**
 * Validates settings an admin wrote (a CLI file, an API body) against a zod schema; INVALID_SETTINGS names
 * every bad field, said the way src/config/mailbox-settings.ts says it for mailboxes.
 */
export function validated<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const fields = result.error.issues.map((i) => ({
    field: i.path.length === 0 ? '(file)' : String(i.path[0]),
    message: message(i, input),
  }));
  throw new MailintakeError(
    'INVALID_SETTINGS',
    `Invalid ${what} (${fields.length} problem${fields.length === 1 ? '' : 's'}): ${fields.map((f) => f.field).join(', ')}`,
    { details: { fields } },
  );
}

function message(issue: z.core.$ZodIssue, input: unknown): string {
  if (issue.code === 'unrecognized_keys') return `unknown field(s): ${issue.keys.join(', ')}`;
  if (issue.code === 'invalid_type') {
    if (issue.path.length === 0) return `must be a JSON ${issue.expected}`;
    const given = (input as Record<string, unknown> | null)?.[String(issue.path[0])];
    if (given === undefined) return 'required';
    return `must be a ${issue.expected}, not ${given === null ? 'null' : Array.isArray(given) ? 'a list' : typeof given}`;
  }
  if ((issue.code === 'too_big' || issue.code === 'too_small') && issue.message.startsWith('Too')) {
    return issue.code === 'too_big'
      ? `must be at most ${issue.maximum}`
      : `must be at least ${issue.minimum}`;
  }
  return issue.message;
}
