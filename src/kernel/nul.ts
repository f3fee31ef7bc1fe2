import { MailintakeError } from './errors.js';

/**
 * NUL (U+0000) in what a person or a program sends us. PostgreSQL refuses it in every text column, so a value
 * holding one would fail where it is stored (an opaque STORE_FAILED, after the work was done) instead of where
 * it was typed. JSON can carry it (`"\u0000"`); a browser form cannot, unless crafted. The mail's own text is
 * cleaned where it is parsed (mail/parse.ts withoutNul); this is the same promise for input.
 */

/** The path of the first string (value or key) holding a NUL, e.g. `attachments.0.filename`; null if none. */
export function firstNulPath(value: unknown): string | null {
  // iterative: a deeply nested body must not overflow the stack
  const stack: { v: unknown; path: string }[] = [{ v: value, path: '' }];
  while (stack.length > 0) {
    const { v, path } = stack.pop()!;
    if (typeof v === 'string') {
      if (v.includes('\u0000')) return path || '(body)';
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ v: v[i], path: join(path, String(i)) });
    } else if (v !== null && typeof v === 'object') {
      const entries = Object.entries(v as Record<string, unknown>);
      for (let i = entries.length - 1; i >= 0; i--) {
        const [k, child] = entries[i]!;
        if (k.includes('\u0000')) return join(path, k.replaceAll('\u0000', '\\u0000'));
        stack.push({ v: child, path: join(path, k) });
      }
    }
  }
  return null;
}

/** INVALID_SETTINGS naming the field, when `value` holds a NUL anywhere; `what` names the input. */
export function refuseNul(value: unknown, what: string): void {
  const path = firstNulPath(value);
  if (path === null) return;
  throw new MailintakeError(
    'INVALID_SETTINGS',
    `Invalid ${what}: ${path} contains a NUL character (U+0000), which cannot be stored`,
    {
      details: {
        fields: [{ field: path, message: 'contains a NUL character (U+0000); remove it' }],
      },
    },
  );
}

/** A form value without NUL (a browser never sends one from typing; a crafted form is cleaned, not stored). */
export function withoutNulChars(value: string): string {
  return value.includes('\u0000') ? value.replaceAll('\u0000', '') : value;
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}
