import { z } from 'zod';
import { MailintakeError } from '../kernel/errors.js';

/** Which stored value is read: the table, the column and, when known, the row's id. */
export interface StoredPlace {
  table: string;
  column: string;
  id?: number | string;
}

/**
 * Reads a JSON column with its schema. The value was valid when it was written, so a failure here means the row
 * was edited by hand, written by a newer version, or damaged: it becomes a coded error naming the row and the
 * column (one broken row is reported, not a TypeError three calls later in whatever used the value).
 */
export function parseStored<S extends z.ZodType>(schema: S, value: string, where: StoredPlace): z.output<S> {
  const row = `${where.table}.${where.column}${where.id === undefined ? '' : ` of row ${where.id}`}`;
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch (err) {
    throw new MailintakeError('INTERNAL', `the stored ${row} is not valid JSON`, {
      cause: err,
      details: { ...where },
    });
  }
  const result = schema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    const at = issue && issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
    throw new MailintakeError('INTERNAL', `the stored ${row} does not have the expected shape${at}`, {
      cause: result.error,
      details: { ...where },
    });
  }
  return result.data;
}

const stringList = z.array(z.string());

/** A stored list of strings (recipients, an intake log entry's reasons). */
export function storedStrings(value: string, where: StoredPlace): string[] {
  return parseStored(stringList, value, where);
}
