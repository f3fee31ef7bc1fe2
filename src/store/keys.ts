import { createHash } from 'node:crypto';

/**
 * The index key of a value a sender controls (Message-ID, References, addresses, subject, file names): the
 * sha256 hex of its UTF-8 bytes. Such values never go into a unique or btree index as they stand, because
 * PostgreSQL refuses an index entry over ~2.7 KB ("index row size exceeds btree maximum"): one mail with a
 * 3 KB Message-ID would then fail every commit, and the error row too. The full value stays in its own column
 * (not indexed) for display and for the comparison after a lookup by key.
 *
 * The same function backfills existing rows in migration 0005 (PostgreSQL computes the same digest with
 * `encode(sha256(convert_to(v, 'UTF8')), 'hex')`).
 */
export function valueKey(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}

/**
 * A mail value as a database text column accepts it. PostgreSQL refuses NUL in text ("invalid byte sequence for
 * encoding UTF8: 0x00") and a sender can put one in any header or body (a raw NUL, or an encoded word or
 * RFC 2231 parameter that decodes to one). Each NUL becomes U+FFFD, the usual mark of a character that could
 * not be kept, so that the value still shows where something was. SQLite keeps NUL, but both engines must
 * store the same thing.
 */
export function storableText<T extends string | null | undefined>(value: T): T {
  return (typeof value === 'string' && value.includes('\0') ? value.replaceAll('\0', '\uFFFD') : value) as T;
}
