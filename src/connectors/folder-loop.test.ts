import { describe, expect, it } from 'vitest';
import { MailintakeError } from '../kernel/errors.js';
import { DEFAULT_ERROR_FOLDER, folderLoopIssues, parseMailboxInput } from './settings.js';

/**
 * Issue 10 item 6: moveToFolder or errorFolder naming the folder being fetched takes every mail in again,
 * forever. Every protocol x {moveToFolder, errorFolder} x the ways an admin writes the same folder differently
 * (case where the server ignores it, surrounding spaces, a trailing hierarchy delimiter) is refused naming the
 * field; names the server tells apart are accepted.
 */

const BASES: Record<string, Record<string, unknown>> = {
  imap: { protocol: 'imap', server: 'mail.example.test', username: 'u', password: 'p' },
  imaps: { protocol: 'imaps', server: 'mail.example.test', username: 'u', password: 'p' },
  pop: { protocol: 'pop', server: 'mail.example.test', username: 'u', password: 'p' },
  pops: { protocol: 'pops', server: 'mail.example.test', username: 'u', password: 'p' },
  graph: { protocol: 'graph', accessToken: 'token' },
  ews: {
    protocol: 'ews',
    connectUrl: 'https://mail.example.test/EWS/Exchange.asmx',
    username: 'EXAMPLE\\support',
    password: 'p',
  },
};
const PROTOCOLS = Object.keys(BASES);
const FIELDS = ['moveToFolder', 'errorFolder'] as const;

function fieldsOf(input: unknown): { field: string; message: string }[] {
  try {
    parseMailboxInput(input);
  } catch (err) {
    if (err instanceof MailintakeError) return err.details.fields ?? [];
    throw err;
  }
  return [];
}

function mailbox(protocol: string, field: (typeof FIELDS)[number], value: string, folder?: string) {
  return {
    name: 'box',
    emailAddress: 'help@example.test',
    ...BASES[protocol],
    ...(folder !== undefined ? { folder } : {}),
    ...(field === 'moveToFolder'
      ? { afterFetch: 'move', moveToFolder: value }
      : { moveToErrorFolder: true, errorFolder: value }),
  };
}

const isExchange = (p: string) => p === 'graph' || p === 'ews';

/** Spellings of the fetched folder `folder` (undefined: the default INBOX) that name that same folder on `protocol`. */
function sameFolderSpellings(protocol: string, folder: string | undefined): string[] {
  const name = folder ?? 'INBOX';
  const out = [name, ` ${name}`, `${name} `, `  ${name}\t`];
  if (!isExchange(protocol)) out.push(`${name}/`, `${name}.`, ` ${name}/ `);
  if (name.toUpperCase() === 'INBOX' || isExchange(protocol)) {
    out.push(name.toLowerCase(), name.toUpperCase(), name[0]!.toUpperCase() + name.slice(1).toLowerCase());
  }
  if (name.toUpperCase() === 'INBOX' && !isExchange(protocol)) out.push('iNbOx/', 'inbox.');
  return out;
}

describe('folder settings that would take mail in forever are refused, naming the field', () => {
  for (const protocol of PROTOCOLS) {
    const pop = protocol === 'pop' || protocol === 'pops';
    // POP3 fetches its only folder; the others are tried with the default and with a named folder
    const folders: (string | undefined)[] = pop ? [undefined] : [undefined, 'Support', 'INBOX/Support'];
    for (const field of FIELDS) {
      for (const folder of folders) {
        it(`${protocol}: ${field} equal to the fetched folder ${folder ?? '(default INBOX)'}`, () => {
          const spellings = sameFolderSpellings(protocol, folder);
          expect(spellings.length).toBeGreaterThan(3);
          for (const value of spellings) {
            const fields = fieldsOf(mailbox(protocol, field, value, folder));
            const named = fields.filter((f) => f.field === field);
            // POP3 refuses the field outright (no folders); everywhere else the message says why
            expect(named, `${field} ${JSON.stringify(value)}`).toHaveLength(1);
            if (!pop) {
              expect(named[0]!.message).toContain('is the folder being fetched');
              expect(named[0]!.message).toContain('forever');
              expect(named[0]!.message).toContain(value.trim());
            }
          }
        });
      }
    }
  }

  it('accepts folders the server tells apart (IMAP names are case-sensitive except INBOX; sub-folders)', () => {
    const accepted: [string, string | undefined, string][] = [];
    for (const protocol of ['imap', 'imaps', 'graph', 'ews']) {
      accepted.push([protocol, undefined, 'Processed'], [protocol, 'Support', 'Support Done']);
    }
    for (const protocol of ['imap', 'imaps']) {
      accepted.push(
        [protocol, undefined, 'INBOX/Processed'],
        [protocol, undefined, 'INBOX.Processed'],
        [protocol, 'Support', 'support'],
        [protocol, 'Support', 'SUPPORT/'],
        [protocol, 'INBOX/Support', 'INBOX'],
      );
    }
    for (const [protocol, folder, value] of accepted) {
      for (const field of FIELDS) {
        expect(fieldsOf(mailbox(protocol, field, value, folder)), `${protocol} ${field} ${value}`).toEqual(
          [],
        );
      }
    }
  });

  it('the default error folder counts when it is used: fetching "Mailintake Errors" with moveToErrorFolder on', () => {
    for (const protocol of ['imap', 'imaps', 'graph', 'ews']) {
      const input = {
        name: 'box',
        emailAddress: 'help@example.test',
        ...BASES[protocol],
        folder: DEFAULT_ERROR_FOLDER,
        moveToErrorFolder: true,
      };
      const fields = fieldsOf(input);
      expect(fields.map((f) => f.field)).toEqual(['errorFolder']);
      expect(fields[0]!.message).toContain('(the default)');
      expect(fieldsOf({ ...input, moveToErrorFolder: false })).toEqual([]);
    }
  });

  it('a stored row is judged by the same rule (rounds refuse rows saved before it)', () => {
    expect(folderLoopIssues({ protocol: 'graph', folder: 'inbox', moveToFolder: 'Inbox' })).toHaveLength(1);
    expect(folderLoopIssues({ protocol: 'imaps', folder: 'INBOX', errorFolder: 'inbox/' })).toHaveLength(1);
    expect(folderLoopIssues({ protocol: 'imaps', folder: 'INBOX', errorFolder: 'Errors' })).toEqual([]);
  });
});
