import { describe, expect, it } from 'vitest';
import { MailintakeError } from '../kernel/errors.js';
import { mailboxInputSchema, parseMailboxInput } from './settings.js';

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

describe('mailbox settings: OAuth 2.0', () => {
  const oauthBox = {
    name: 'box',
    server: 'outlook.office365.com',
    username: 'support@contoso.example',
    emailAddress: 'support@contoso.example',
  };
  const ms = { provider: 'microsoft', clientId: 'app-1', clientSecret: 's3cret-value' };

  it('fills the Microsoft 365 preset per protocol: URLs of the tenant, the scope with offline_access', () => {
    const imap = parseMailboxInput({
      ...oauthBox,
      protocol: 'imaps',
      oauth: { ...ms, tenant: 'contoso.example' },
    });
    expect(imap.auth).toBe('oauth2');
    expect(imap.password).toBe('');
    expect(imap.oauth).toMatchObject({
      authorizationUrl: 'https://login.microsoftonline.com/contoso.example/oauth2/v2.0/authorize',
      tokenUrl: 'https://login.microsoftonline.com/contoso.example/oauth2/v2.0/token',
      scope: 'https://outlook.office365.com/IMAP.AccessAsUser.All offline_access',
      issuer: 'https://login.microsoftonline.com/contoso.example/v2.0',
      clientAuthentication: 'client_secret_post',
      clientSecret: 's3cret-value',
    });
    expect(parseMailboxInput({ ...oauthBox, protocol: 'pops', oauth: ms }).oauth?.scope).toBe(
      'https://outlook.office365.com/POP.AccessAsUser.All offline_access',
    );
    const ews = parseMailboxInput({ name: 'x', protocol: 'ews', emailAddress: 'a@b.example', oauth: ms });
    expect(ews).toMatchObject({
      connectUrl: 'https://outlook.office365.com/EWS/Exchange.asmx',
      username: 'a@b.example',
      oauth: { scope: 'https://outlook.office365.com/EWS.AccessAsUser.All offline_access' },
    });
    expect(ews.ewsAuth).toBeUndefined();
    const graph = parseMailboxInput({ name: 'g', protocol: 'graph', emailAddress: 'a@b.example', oauth: ms });
    expect(graph.oauth?.scope).toBe('Mail.ReadWrite offline_access');
    expect(graph.oauth?.authorizationUrl).toContain('/organizations/');
  });

  it("fills Google (mail.google.com) and takes the admin's own values over a preset", () => {
    const g = parseMailboxInput({
      ...oauthBox,
      protocol: 'imaps',
      oauth: { provider: 'google', clientId: 'c', clientSecret: 'sssss' },
    });
    expect(g.oauth).toMatchObject({
      authorizationUrl: 'https://accounts.google.com/o/oauth2/v2/auth',
      tokenUrl: 'https://oauth2.googleapis.com/token',
      scope: 'https://mail.google.com/',
    });
    const own = parseMailboxInput({
      ...oauthBox,
      protocol: 'imaps',
      oauth: { ...ms, scope: 'Mail.ReadWrite,offline_access' },
    });
    // commas as the reference writes them become the spaces OAuth wants
    expect(own.oauth?.scope).toBe('Mail.ReadWrite offline_access');
  });

  it('generic: the admin types the URLs and the scope; the issuer defaults to the authorization URL origin', () => {
    expect(
      fieldsOf({ ...oauthBox, protocol: 'imaps', oauth: { clientId: 'c', clientSecret: 'sssss' } }),
    ).toEqual([
      { field: 'oauth.authorizationUrl', message: 'required with provider "generic"' },
      { field: 'oauth.tokenUrl', message: 'required with provider "generic"' },
      { field: 'oauth.scope', message: 'required with provider "generic"' },
    ]);
    const s = parseMailboxInput({
      ...oauthBox,
      protocol: 'pop',
      oauth: {
        clientId: 'c',
        clientSecret: 'sssss',
        authorizationUrl: 'http://127.0.0.1:9000/auth',
        tokenUrl: 'http://127.0.0.1:9000/token',
        scope: 'mail offline_access',
      },
    });
    expect(s.oauth).toMatchObject({
      issuer: 'http://127.0.0.1:9000',
      clientAuthentication: 'client_secret_basic',
    });
  });

  it('names every field an admin got wrong', () => {
    const fields = fieldsOf({
      ...oauthBox,
      protocol: 'imaps',
      password: 'also-a-password',
      oauth: {
        provider: 'microsoft',
        flow: 'client-credentials',
        clientId: 'c',
        tokenUrl: 'http://login.example.com/token',
      },
    }).map((f) => f.field);
    expect(fields).toEqual(
      expect.arrayContaining([
        'password',
        'oauth.flow',
        'oauth.clientSecret',
        'oauth.tokenUrl',
        'oauth.tenant',
      ]),
    );
    expect(
      fieldsOf({
        name: 'g',
        protocol: 'graph',
        emailAddress: 'a@b.example',
        oauth: { ...ms, provider: 'google' },
      }),
    ).toEqual([{ field: 'oauth.provider', message: 'Google does not serve Microsoft Graph' }]);
    expect(fieldsOf({ ...oauthBox, protocol: 'imaps', oauth: { ...ms, clientId: undefined } })).toEqual([
      { field: 'oauth.clientId', message: 'required' },
    ]);
    // Graph needs one way to log in
    expect(
      fieldsOf({ name: 'g', protocol: 'graph', emailAddress: 'a@b.example' }).map((f) => f.field),
    ).toEqual(['oauth']);
  });
});

describe('mailbox settings: every message in plain words', () => {
  const PASSWORD = 'Zebra-Stapler-Lantern-7';
  const bases: Record<string, Record<string, unknown>> = {
    imap: { ...base, protocol: 'imap', password: PASSWORD },
    pop: { ...base, protocol: 'pop', password: PASSWORD },
    graph: { name: 'g', protocol: 'graph', emailAddress: 'a@b.example', accessToken: PASSWORD },
    ews: {
      name: 'e',
      protocol: 'ews',
      connectUrl: 'https://mail.example.test/EWS/Exchange.asmx',
      username: 'u',
      password: PASSWORD,
      emailAddress: 'a@b.example',
    },
  };
  const BAD: unknown[] = [
    123,
    1.5,
    -1,
    0,
    70_000,
    true,
    null,
    [],
    [1],
    {},
    '',
    ' ',
    'x'.repeat(300),
    'no such value',
    'a@',
    'http://x',
  ];
  /** What a validator says and an admin should not have to read. */
  const VALIDATOR_TEXT = /Invalid|Too small|Too big|expected|received|>=|<=|Unrecognized|ZodError|\bNaN\b/;

  it('says every problem of every field, with every kind of wrong value, in words, never quoting a secret', () => {
    const fields = Object.keys(mailboxInputSchema.shape);
    expect(fields.length).toBeGreaterThanOrEqual(25);
    let problems = 0;
    for (const [protocol, good] of Object.entries(bases)) {
      for (const field of fields) {
        for (const value of BAD) {
          for (const f of fieldsOf({ ...good, [field]: value })) {
            problems++;
            const where = `${protocol} ${field}=${JSON.stringify(value)} → ${f.field}: ${f.message}`;
            expect(f.message, where).not.toMatch(VALIDATOR_TEXT);
            expect(f.message.length, where).toBeGreaterThan(3);
            expect(f.message, where).not.toContain(PASSWORD);
            expect(f.field, where).toMatch(/^(\(file\)|[A-Za-z]+(\.[A-Za-z]+)?)$/);
          }
        }
      }
    }
    expect(problems).toBeGreaterThan(1000);
  });

  it('says what was given instead of what the validator expected', () => {
    expect(fieldsOf({ ...bases.imap, port: 'x' })).toEqual([
      { field: 'port', message: 'must be a number, not text' },
    ]);
    expect(fieldsOf({ ...bases.imap, port: 1.5 })).toEqual([
      { field: 'port', message: 'must be a whole number' },
    ]);
    expect(fieldsOf({ ...bases.imap, name: '' })[0]).toEqual({ field: 'name', message: 'must not be empty' });
    expect(fieldsOf({ ...bases.imap, starttls: 'yes' })).toEqual([
      { field: 'starttls', message: 'must be true or false, not text' },
    ]);
    expect(fieldsOf({ ...bases.imap, emailAddress: 'a@b.example, nope' })).toEqual([
      { field: 'emailAddress', message: '"nope" is not a valid email address' },
    ]);
    expect(fieldsOf({ ...bases.imap, protocol: 'imap4' })[0]).toEqual({
      field: 'protocol',
      message: 'must be one of "imap", "imaps", "pop", "pops", "graph", "ews"',
    });
    expect(fieldsOf({ ...bases.imap, surprise: 1 })).toEqual([
      {
        field: '(file)',
        message: 'unknown field: surprise (check the spelling; field names are case-sensitive)',
      },
    ]);
  });
});
