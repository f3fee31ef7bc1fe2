import type { z } from 'zod';
import { check, invalidSettings } from '../kernel/plain-issues.js';

/**
 * Validates settings an admin wrote (a CLI file, an API body) against a zod schema; INVALID_SETTINGS names
 * every bad field, in the same plain words as mailboxes (kernel/plain-issues.ts).
 */
export function validated<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const result = check(schema, input, '(file)');
  if (result.ok) return result.data;
  throw invalidSettings(what, result.fields);
}
