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

describe('mailbox settings: Exchange Web Services', () => {
  const ews = {
    name: 'ews',
    protocol: 'ews',
    connectUrl: 'https://mail.example.test/EWS/Exchange.asmx',
    username: 'EXAMPLE\\support',
    password: 'p',
    emailAddress: 'support@example.test, help@example.test',
  };

  it('defaults: NTLM, folder inbox, mark-read; server and port come from the Connect URL', () => {
    expect(parseMailboxInput(ews)).toMatchObject({
      connectUrl: 'https://mail.example.test/EWS/Exchange.asmx',
      ewsAuth: 'ntlm',
      server: 'mail.example.test',
      port: 443,
      username: 'EXAMPLE\\support',
      folder: 'inbox',
      afterFetch: 'mark-read',
      emailAddress: ['support@example.test', 'help@example.test'],
    });
    expect(
      parseMailboxInput({ ...ews, connectUrl: 'https://10.0.0.5:8443/EWS/Exchange.asmx', ewsAuth: 'basic' }),
    ).toMatchObject({ server: '10.0.0.5', port: 8443, ewsAuth: 'basic' });
    expect(parseMailboxInput({ ...ews, afterFetch: 'move', moveToFolder: 'Done' }).afterFetch).toBe('move');
  });

  it('requires an https Connect URL, saying it is for on-premises Exchange', () => {
    const missing = fieldsOf({ ...ews, connectUrl: undefined });
    expect(missing).toHaveLength(1);
    expect(missing[0]).toMatchObject({ field: 'connectUrl' });
    expect(missing[0]!.message).toMatch(
      /on-premises Exchange; Exchange Online has been turning EWS off since October 2026/,
    );
    for (const bad of [
      'http://mail.example.test/EWS/Exchange.asmx',
      'https://user:pw@mail.example.test/EWS/Exchange.asmx',
      'https://mail.example.test/EWS/Exchange.asmx?x=1',
      'mail.example.test',
    ]) {
      const got = fieldsOf({ ...ews, connectUrl: bad });
      expect(got.map((f) => f.field)).toEqual(['connectUrl']);
      expect(got[0]!.message).toMatch(/https:\/\/ URL of the EWS endpoint/);
    }
  });

  it('names every bad field at once: missing credentials, server/port, Graph fields, leave', () => {
    const got = fieldsOf({
      ...ews,
      username: undefined,
      password: undefined,
      server: 'mail.example.test',
      port: 443,
      accessToken: 't',
      afterFetch: 'leave',
    });
    expect(Object.fromEntries(got.map((f) => [f.field, f.message]))).toEqual({
      username: 'required',
      password: 'required',
      server: 'not used with EWS; the server and port are those of "connectUrl"',
      port: 'not used with EWS; the server and port are those of "connectUrl"',
      accessToken: 'only used with protocol "graph"',
      afterFetch: '"leave" is for POP3; with EWS use "mark-read" (the default), "delete" or "move"',
    });
    const auth = fieldsOf({ ...ews, ewsAuth: 'kerberos' });
    expect(auth).toEqual([{ field: 'ewsAuth', message: expect.stringMatching(/"ntlm".*"basic"/) }]);
  });

  it('refuses EWS fields on other protocols, and lists "ews" among the protocols', () => {
    expect(fieldsOf({ ...base, protocol: 'imaps', connectUrl: ews.connectUrl, ewsAuth: 'ntlm' })).toEqual([
      { field: 'connectUrl', message: 'only used with protocol "ews"' },
      { field: 'ewsAuth', message: 'only used with protocol "ews"' },
    ]);
    const protocol = fieldsOf({ ...ews, protocol: 'exchange' }).find((f) => f.field === 'protocol');
    expect(protocol?.message).toBe('must be one of "imap", "imaps", "pop", "pops", "graph", "ews"');
  });
});
