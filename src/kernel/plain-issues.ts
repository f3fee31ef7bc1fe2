import type { z } from 'zod';
import { MailintakeError } from './errors.js';

/**
 * The one place where a validator's findings become INVALID_SETTINGS (mailbox files, notification settings,
 * API paths, queries and bodies; there used to be three copies, each saying things a little differently).
 * Every message is said the way a help desk admin reads it: "must be a number, not text", never the
 * validator's "Invalid input: expected number, received string". Our own messages (`custom` issues, and
 * messages written beside a rule) are kept as they are.
 */

export interface FieldProblem {
  field: string;
  message: string;
}

/**
 * `emailAddress.1` → `emailAddress` (the admin typed one comma-separated field, not a list); `oauth.clientId`
 * stays (a group of its own); the whole document is `root`.
 */
export function fieldName(path: readonly PropertyKey[], root: string): string {
  const named: string[] = [];
  for (const key of path) {
    if (typeof key !== 'string') break;
    named.push(key);
  }
  return named.length > 0 ? named.join('.') : path.length === 0 ? root : String(path[0]);
}

/** What a value is, in words. */
function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return 'text';
  if (typeof value === 'number') return Number.isInteger(value) ? 'a whole number' : 'a number';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'object') return 'an object';
  return typeof value;
}

const EXPECTED: Record<string, string> = {
  string: 'text (in quotes)',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  object: 'an object { … }',
  array: 'a list [ … ]',
  record: 'an object { … }',
};

/** Zod's own wording starts like this; a message written beside a rule does not. */
const VALIDATOR_TEXT = /^(Invalid|Too (small|big)|Expected|Unrecognized|Required$)/;

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = input;
  for (const key of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[String(key)];
  }
  return v;
}

/** One issue, said plainly. `input` is what the admin wrote (to say what they gave). */
export function plainMessage(issue: z.core.$ZodIssue, input: unknown): string {
  const own = !VALIDATOR_TEXT.test(issue.message) ? issue.message : null;
  // the value that failed (parsed with reportInput: the piece of a split list, too), else what the path finds
  const given =
    'input' in issue && issue.code !== 'unrecognized_keys' ? issue.input : valueAt(input, issue.path);
  switch (issue.code) {
    case 'unrecognized_keys':
      return `unknown field${issue.keys.length === 1 ? '' : 's'}: ${issue.keys.join(', ')} (check the spelling; field names are case-sensitive)`;
    case 'invalid_type': {
      if (own) return own;
      if (given === undefined) return 'required';
      const want = EXPECTED[issue.expected] ?? issue.expected;
      if (issue.expected === 'int' && typeof given === 'number') return 'must be a whole number';
      return `must be ${want}, not ${kindOf(given)}`;
    }
    case 'invalid_value':
      if (own) return own;
      if (issue.values.length === 1) return `must be ${JSON.stringify(issue.values[0])}`;
      return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'too_small': {
      if (own) return own;
      const n = Number(issue.minimum);
      if (issue.origin === 'string') {
        return n <= 1 ? 'must not be empty' : `must be at least ${n} characters long`;
      }
      if (issue.origin === 'array' || issue.origin === 'set')
        return `needs at least ${n} item${n === 1 ? '' : 's'}`;
      return `must be ${issue.inclusive === false ? 'more than' : 'at least'} ${n}`;
    }
    case 'too_big': {
      if (own) return own;
      const n = Number(issue.maximum);
      if (issue.origin === 'string') return `must be at most ${n} characters long`;
      if (issue.origin === 'array' || issue.origin === 'set')
        return `takes at most ${n} item${n === 1 ? '' : 's'}`;
      return `must be ${issue.inclusive === false ? 'less than' : 'at most'} ${n}`;
    }
    case 'invalid_format': {
      if (issue.format === 'email' && typeof given === 'string') {
        return `"${given}" is not a valid email address`;
      }
      if (own) return own;
      if (issue.format === 'email') return 'must be a valid email address';
      if (issue.format === 'url') return 'must be a URL';
      return 'contains characters that are not allowed here';
    }
    case 'not_multiple_of':
      return own ?? `must be a multiple of ${String(issue.divisor)}`;
    case 'invalid_union':
    case 'invalid_key':
    case 'invalid_element':
      return own ?? `is not a valid value${given === undefined ? '' : ` (${kindOf(given)} given)`}`;
    default:
      return own ?? 'is not a valid value';
  }
}

/** Every issue as a named field with a plain message (one line per field and message, in the schema's order). */
export function plainFields(
  issues: readonly z.core.$ZodIssue[],
  input: unknown,
  root: string,
): FieldProblem[] {
  const out: FieldProblem[] = [];
  const seen = new Set<string>();
  for (const i of issues) {
    const p = { field: fieldName(i.path, root), message: plainMessage(i, input) };
    const key = `${p.field}\u0000${p.message}`;
    // one bad address in a list of three is one problem, not one per element
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(p);
  }
  return out;
}

/** Validates `input`; the issues said plainly, or the parsed value. */
export function check<S extends z.ZodType>(
  schema: S,
  input: unknown,
  root: string,
): { ok: true; data: z.output<S> } | { ok: false; fields: FieldProblem[] } {
  const result = schema.safeParse(input, { reportInput: true });
  if (result.success) return { ok: true, data: result.data };
  return { ok: false, fields: plainFields(result.error.issues, input, root) };
}

/** INVALID_SETTINGS naming every bad field of `what` ("mailbox settings", "request"). */
export function invalidSettings(what: string, fields: FieldProblem[]): MailintakeError {
  return new MailintakeError(
    'INVALID_SETTINGS',
    `Invalid ${what} (${fields.length} problem${fields.length === 1 ? '' : 's'}): ${[...new Set(fields.map((f) => f.field))].join(', ')}`,
    { details: { fields } },
  );
}
