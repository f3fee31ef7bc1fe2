import { describe, expect, it } from 'vitest';
import { MailintakeError } from '../errors.js';
import { parseMailboxInput } from './mailbox-settings.js';

const base = {
  name: 'box',
  server: 'mail.example.test',
  username: 'u',
  password: 'p',
  emailAddress: 'help@example.test',
};

function fieldsOf(input: unknown): { field: string; message: string }[] {
  try {
    parseMailboxInput(input);
  } catch (err) {
    if (err instanceof MailintakeError) return err.details.fields ?? [];
    throw err;
  }
  return [];
}

describe('mailbox settings: POP3', () => {
  it('defaults: pop 110 with STLS required, pops 995, afterFetch delete; IMAP keeps mark-read', () => {
    expect(parseMailboxInput({ ...base, protocol: 'pop' })).toMatchObject({
      port: 110,
      starttls: true,
      afterFetch: 'delete',
    });
    expect(parseMailboxInput({ ...base, protocol: 'pops' })).toMatchObject({
      port: 995,
      afterFetch: 'delete',
    });
    expect(parseMailboxInput({ ...base, protocol: 'imaps' })).toMatchObject({
      port: 993,
      afterFetch: 'mark-read',
    });
    expect(parseMailboxInput({ ...base, protocol: 'pop', afterFetch: 'leave' }).afterFetch).toBe('leave');
  });

  it('refuses mark-read and move for POP3, and leave for IMAP, saying why', () => {
    for (const afterFetch of ['mark-read', 'move']) {
      const fields = fieldsOf({ ...base, protocol: 'pop', afterFetch, moveToFolder: 'X' });
      expect(fields.find((f) => f.field === 'afterFetch')?.message).toMatch(/no flags and no folders/);
    }
    expect(fieldsOf({ ...base, protocol: 'imap', afterFetch: 'leave' })[0]?.message).toMatch(/for POP3/);
  });

  it('refuses a folder for POP3 and pops on the plain port', () => {
    expect(fieldsOf({ ...base, protocol: 'pop', folder: 'Archive' })[0]).toMatchObject({ field: 'folder' });
    expect(fieldsOf({ ...base, protocol: 'pops', port: 110 })[0]).toMatchObject({ field: 'port' });
  });
});
