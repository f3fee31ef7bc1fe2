import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { MailintakeError } from '../kernel/errors.js';
import { parseStored, storedStrings } from './stored-json.js';

describe('parseStored: a stored JSON column read with its schema', () => {
  it('gives the parsed value when it has the shape', () => {
    expect(parseStored(z.object({ a: z.number() }), '{"a":1}', { table: 't', column: 'c', id: 1 })).toEqual({
      a: 1,
    });
    expect(storedStrings('["x","y"]', { table: 't', column: 'c' })).toEqual(['x', 'y']);
  });

  it('names the table, column and row of a value that is not JSON, as a coded error', () => {
    const err = (() => {
      try {
        parseStored(z.unknown(), '{broken', { table: 'mailboxes', column: 'settings', id: 7 });
        return null;
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(MailintakeError);
    expect(err).toMatchObject({
      code: 'INTERNAL',
      message: 'the stored mailboxes.settings of row 7 is not valid JSON',
      details: { table: 'mailboxes', column: 'settings', id: 7 },
    });
  });

  it('names where the shape is wrong, without quoting the value (it may hold a secret)', () => {
    const read = () =>
      storedStrings('["a", 2, "hunter2"]', { table: 'mail_outbox', column: 'recipients', id: 3 });
    expect(read).toThrowError(
      'the stored mail_outbox.recipients of row 3 does not have the expected shape at 1',
    );
    expect(read).not.toThrowError(/hunter2/);
  });
});
