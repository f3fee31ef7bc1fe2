import { createHash, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EwsConnector, type EwsConnectorOptions } from '../src/connectors/ews/ews-connector.js';
import { parseAnswer } from '../src/connectors/ews/ews-xml.js';
import { authenticateMessage, channelBindingHash, negotiateMessage } from '../src/connectors/ews/ntlm.js';
import { createConnector } from '../src/connectors/factory.js';
import { type MailboxInput, parseMailboxInput } from '../src/connectors/settings.js';
import { EwsDouble, type EwsRequest } from './doubles/ews-double.js';
import {
  challengeMessage,
  expectedChannelBinding,
  md4,
  ntowfv2,
  parseAuthenticate,
  verifyNtlmV2,
} from './doubles/ntlm-server.js';
import { failure } from './kit/failure.js';
import { expectNoTokenIn, type FakeTokenSource, fakeTokenSource } from './kit/fake-token-source.js';
import { buildMail } from './kit/mails.js';

/**
 * The EWS connector's own behaviour beyond the shared contract: paging, Exchange's busy back-off, NTLM and
 * Basic, item-level errors, faults on the wire, sample(). Time is the injected sleep: no test waits for a
 * real BackOffMilliseconds.
 */
let ews: EwsDouble;
let n = 0;

beforeAll(async () => {
  ews = await EwsDouble.start({ auth: { ntlm: true, basic: true } });
});
afterAll(async () => {
  await ews?.stop();
});

const opened: EwsConnector[] = [];
afterEach(async () => {
  ews.clearFaults();
  await Promise.all(opened.splice(0).map((c) => c.close()));
});

/** A fresh account and mailbox per test, and a connector for it whose sleeps are recorded instead of waited. */
function setup(over: Partial<MailboxInput> = {}, opts: EwsConnectorOptions = {}) {
  const user = `unit-${++n}`;
  const address = `${user}@ews.test`;
  const password = `${user}-pässword`;
  ews.addAccount(user, password);
  ews.addMailbox(address);
  const slept: number[] = [];
  const settings = parseMailboxInput({
    name: `e${n}`,
    protocol: 'ews',
    connectUrl: ews.url,
    username: user,
    password,
    emailAddress: address,
    caFile: ews.caFile,
    ...over,
  });
  const c = new EwsConnector(settings, {
    sleep: async (ms) => {
      slept.push(ms);
    },
    ...opts,
  });
  opened.push(c);
  const mine = () =>
    ews.requests.filter((r) => r.account === user || r.headers['x-anchormailbox'] === address);
  return { c, user, address, password, slept, mine };
}

const mails = (prefix: string, count: number) =>
  Array.from({ length: count }, (_, i) =>
    buildMail({ messageId: `${prefix}-${i}@e.test`, subject: `${prefix} ${i}` }),
  );

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const op = (name: string) => (r: EwsRequest) => r.operation === name;
const ids = (address: string, folder = 'inbox') => ews.messages(address, folder).map((m) => `ews;${m.id}`);

describe('EWS connector: listing and reading', () => {
  it('pages through FindItem (IndexedPageItemView, 100 per page) oldest first, on one NTLM-authenticated connection', async () => {
    const { c, address, mine } = setup();
    await ews.deliver(address, mails('page', 250));
    const logins = ews.ntlmLogins;
    const connections = ews.connections;
    await c.open();
    const listed = await c.listNew();
    expect(listed.map((m) => m.identity)).toEqual(ids(address));
    const finds = mine().filter(op('FindItem'));
    expect(finds.map((r) => /Offset="(\d+)"/.exec(r.body)?.[1])).toEqual(['0', '100', '200']);
    expect(finds.every((r) => r.body.includes('MaxEntriesReturned="100"'))).toBe(true);
    expect(finds.every((r) => r.body.includes('<t:RequestServerVersion Version="Exchange2013_SP1"/>'))).toBe(
      true,
    );
    // NTLM authenticates the connection once; every later request rides on it without a header
    expect(ews.ntlmLogins - logins).toBe(1);
    expect(ews.connections - connections).toBe(1);
    const operations = mine().filter((r) => r.operation !== '');
    expect(operations.slice(1).every((r) => r.headers.authorization === undefined)).toBe(true);
  });

  it('mark-read lists only unread mail; marking read is one UpdateItem with SuppressReadReceipts', async () => {
    const { c, address, mine } = setup();
    await ews.deliver(address, mails('unread', 3));
    await c.open();
    const listed = await c.listNew();
    await c.acknowledge([listed[0]!, listed[2]!], { action: 'mark-read' });
    expect((await c.listNew()).map((m) => m.identity)).toEqual([listed[1]!.identity]);
    expect(ews.messages(address).map((m) => m.isRead)).toEqual([true, false, true]);
    const updates = mine().filter(op('UpdateItem'));
    expect(updates).toHaveLength(1);
    expect(updates[0]!.body).toContain('SuppressReadReceipts="true"');
    expect(
      mine()
        .filter(op('FindItem'))
        .every((r) => r.body.includes('FieldURI="message:IsRead"')),
    ).toBe(true);
  });

  it('delete mode lists read mail too; delete is one SoftDelete (Recoverable Items) for many mails', async () => {
    const { c, address, mine } = setup({ afterFetch: 'delete' });
    await ews.deliver(address, mails('del', 3));
    await c.open();
    const listed = await c.listNew();
    await c.acknowledge([listed[0]!], { action: 'mark-read' });
    expect(await c.listNew()).toHaveLength(3);
    expect(
      mine()
        .filter(op('FindItem'))
        .some((r) => r.body.includes('message:IsRead')),
    ).toBe(false);
    await c.acknowledge(listed, { action: 'delete' });
    expect(ews.messages(address)).toEqual([]);
    expect(ews.deleted(address).map((d) => d.deleteType)).toEqual(['SoftDelete', 'SoftDelete', 'SoftDelete']);
    expect(mine().filter(op('DeleteItem'))).toHaveLength(1);
  });

  it('lists messages and meeting requests together in received order', async () => {
    const { c, address } = setup();
    await ews.deliver(address, mails('mixed-a', 1));
    await ews.deliver(address, mails('mixed-b', 1), 'inbox', { element: 'MeetingRequest' });
    await ews.deliver(address, mails('mixed-c', 1));
    await c.open();
    expect((await c.listNew()).map((m) => m.identity)).toEqual(ids(address));
  });

  it('fetchMany reads several mails in one GetItem, in the order asked, leaving out one deleted meanwhile', async () => {
    const { c, address, mine } = setup();
    const raws = mails('many', 6);
    await ews.deliver(address, raws);
    await c.open();
    const listed = await c.listNew();
    const gone = listed[2]!;
    await c.acknowledge([gone], { action: 'delete' }); // as if a person deleted it
    const before = mine().filter(op('GetItem')).length;
    const got = await c.fetchMany([listed[5]!, gone, listed[0]!]);
    expect([...got.keys()]).toEqual([listed[5]!.identity, listed[0]!.identity]);
    expect(got.get(listed[0]!.identity)!.equals(raws[0]!)).toBe(true);
    expect(got.get(listed[5]!.identity)!.equals(raws[5]!)).toBe(true);
    expect(mine().filter(op('GetItem')).length - before).toBe(1);
  });

  it('streams a 3 MB mail byte-identical (base64 decoded as it arrives)', async () => {
    const { c, address } = setup();
    const big = buildMail({ messageId: 'big@e.test', body: `${'x'.repeat(76)}\r\n`.repeat(40_000) });
    await ews.deliver(address, [big]);
    await c.open();
    const [m] = await c.listNew();
    expect((await readAll(await c.stream(m!))).equals(big)).toBe(true);
  });

  it('acknowledging a mail that is gone already is not an error (ErrorItemNotFound: the goal is met)', async () => {
    const { c, address } = setup();
    await ews.deliver(address, mails('gone', 1));
    await c.open();
    const [m] = await c.listNew();
    await c.acknowledge([m!], { action: 'delete' });
    await c.acknowledge([m!], { action: 'delete' });
    await c.acknowledge([m!], { action: 'mark-read' });
    await c.moveTo([m!], 'Elsewhere');
    expect(ews.deleted(address)).toHaveLength(1);
  });

  it('a change the server refuses for one mail is ACK_FAILED naming it; the others of the batch are done', async () => {
    const { c, address } = setup();
    await ews.deliver(address, mails('refuse', 3));
    await c.open();
    const listed = await c.listNew();
    ews.refuseChanges(
      listed[1]!.identity.slice(4),
      'ErrorQuotaExceeded',
      'The mailbox quota has been exceeded.',
    );
    const err = await failure(c.acknowledge(listed, { action: 'mark-read' }));
    expect(err.code).toBe('ACK_FAILED');
    expect(err.details.identities).toEqual([listed[1]!.identity]);
    expect(err.details.serverResponse).toBe('ErrorQuotaExceeded: The mailbox quota has been exceeded.');
    expect(ews.messages(address).map((m) => m.isRead)).toEqual([true, false, true]);
  });

  it('move finds an existing top-level folder (any case) instead of creating a second one; a moved mail gets a new ItemId', async () => {
    const { c, address, mine } = setup();
    await ews.deliver(address, mails('mv', 2));
    await c.open();
    const listed = await c.listNew();
    await c.moveTo([listed[0]!], 'Errors & <Stuff>');
    await c.close();
    await c.open(); // a new session forgets the cached folder id: it must find, not create
    await c.acknowledge([listed[1]!], { action: 'move', folder: 'errors & <stuff>' });
    expect(ews.topFolders(address).filter((f) => f.toLowerCase() === 'errors & <stuff>')).toEqual([
      'Errors & <Stuff>',
    ]);
    const moved = ews.messages(address, 'Errors & <Stuff>');
    expect(moved.map((m) => m.messageId)).toEqual(['<mv-0@e.test>', '<mv-1@e.test>']);
    // EWS gives a moved item a new id: the identity names the mail only while it is in the folder we read
    expect(moved.map((m) => `ews;${m.id}`)).not.toContain(listed[0]!.identity);
    expect(mine().filter(op('CreateFolder'))).toHaveLength(1);
    expect(
      mine()
        .filter(op('MoveItem'))
        .every((r) => r.body.includes('<m:ReturnNewItemIds>false')),
    ).toBe(true);
  });

  it('moveBack (the error folder\'s "move mails to inbox") finds our mails by sha256, since a move changed their ItemIds', async () => {
    const { c, address } = setup();
    const raws = mails('back', 3);
    await ews.deliver(address, raws);
    await c.open();
    expect(await c.moveBack('Errors', [{ key: 'k0', identity: 'ews;x', sha256: sha256(raws[0]!) }])).toEqual(
      [],
    );
    const listed = await c.listNew();
    await c.moveTo([listed[0]!, listed[1]!], 'Errors');
    const own = buildMail({ messageId: 'admins-own@e.test' });
    await ews.deliver(address, [own], 'Errors'); // an admin's own mail in that folder stays
    const moved = await c.moveBack('Errors', [
      { key: 'k0', identity: listed[0]!.identity, sha256: sha256(raws[0]!) },
      { key: 'k1', identity: listed[1]!.identity, sha256: sha256(raws[1]!) },
      { key: 'gone', identity: 'ews;gone', sha256: sha256(Buffer.from('never delivered')) },
    ]);
    expect(moved.sort()).toEqual(['k0', 'k1']);
    expect(ews.messages(address, 'Errors').map((m) => m.messageId)).toEqual(['<admins-own@e.test>']);
    // back where they were, received times kept: the next round lists them (under new ItemIds) as new mail
    expect(ews.messages(address).map((m) => m.messageId)).toEqual([
      '<back-0@e.test>',
      '<back-1@e.test>',
      '<back-2@e.test>',
    ]);
    expect((await c.listNew()).map((m) => m.identity)).toEqual(ids(address));
  });

  it('a folder setting that is not a well-known one is a display name under the root; unknown → FOLDER_NOT_FOUND', async () => {
    const { c, address } = setup({ folder: 'Support' });
    await ews.deliver(address, mails('support-inbox', 1));
    const err = await failure(c.open());
    expect(err.code).toBe('FOLDER_NOT_FOUND');
    expect(err.message).toContain('"Support"');
    const id = ews.moveByPerson(address, ews.messages(address)[0]!.id, 'Support');
    await c.open();
    expect((await c.listNew()).map((m) => m.identity)).toEqual([`ews;${id}`]);
  });

  it('sample() describes the oldest mail by properties (no MIME read) and changes nothing', async () => {
    const { c, address, mine } = setup();
    await c.open();
    expect(await c.sample()).toBeNull();
    const oldest = buildMail({
      messageId: 's-0@e.test',
      from: 'Ada Lovelace <ada@example.test>',
      subject: 'Oldest & first',
      date: 'Tue, 02 Jan 2024 09:30:00 +0100',
      attachments: [
        { filename: 'a.txt', contentType: 'text/plain', content: Buffer.from('a') },
        { filename: 'b.pdf', contentType: 'application/pdf', content: Buffer.from('%PDF-1.4') },
      ],
    });
    await ews.deliver(address, [oldest, ...mails('s', 1)]);
    expect(await c.sample()).toEqual({
      from: 'Ada Lovelace <ada@example.test>',
      subject: 'Oldest & first',
      date: '2024-01-02T08:30:00.000Z',
      size: oldest.length,
      attachments: ['a.txt', 'b.pdf'],
    });
    expect(mine().some((r) => r.body.includes('IncludeMimeContent'))).toBe(false);
    expect(ews.messages(address).map((m) => m.isRead)).toEqual([false, false]);
  });
});

describe('EWS connector: ErrorServerBusy and other back-off', () => {
  it('ErrorServerBusy in the middle of listing waits BackOffMilliseconds (injected sleep) and completes without loss', async () => {
    const { c, address, slept } = setup();
    await ews.deliver(address, mails('busy', 250));
    await c.open();
    ews.inject({ match: op('FindItem'), skip: 1, fault: { kind: 'busy', backOffMs: 3_500 } });
    const listed = await c.listNew();
    expect(slept).toEqual([3_500]);
    expect(listed.map((m) => m.identity)).toEqual(ids(address));
    expect(new Set(listed.map((m) => m.identity)).size).toBe(250);
  });

  it('ErrorServerBusy as a response message (Exchange 2010) is retried the same way', async () => {
    const { c, address, slept } = setup();
    await ews.deliver(address, mails('busymsg', 2));
    await c.open();
    const listed = await c.listNew();
    ews.inject({ match: op('UpdateItem'), fault: { kind: 'busy-message', backOffMs: 700 } });
    await c.acknowledge(listed, { action: 'mark-read' });
    expect(slept).toEqual([700]);
    expect(ews.messages(address).every((m) => m.isRead)).toBe(true);
  });

  it('busy without BackOffMilliseconds backs off 1 s, then 2 s', async () => {
    const { c, address, slept } = setup();
    await ews.deliver(address, mails('b', 1));
    await c.open();
    ews.inject({ match: op('FindItem'), times: 2, fault: { kind: 'busy' } });
    expect(await c.listNew()).toHaveLength(1);
    expect(slept).toEqual([1_000, 2_000]);
  });

  it('gives up after the bounded attempts with TIMEOUT naming ErrorServerBusy; nothing changed', async () => {
    const { c, address, slept } = setup({}, { retry: { maxAttempts: 3 } });
    await ews.deliver(address, mails('giveup', 1));
    await c.open();
    ews.inject({ match: op('FindItem'), times: 10, fault: { kind: 'busy', backOffMs: 1_000 } });
    const err = await failure(c.listNew());
    expect(err.code).toBe('TIMEOUT');
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/ErrorServerBusy.*3 attempt/);
    expect(err.details.serverResponse).toBe(
      'The server cannot service this request right now. Try again later.',
    );
    expect(slept).toEqual([1_000, 1_000]);
    expect(ews.messages(address)[0]!.isRead).toBe(false);
  });

  it('a back-off beyond the total wait budget is not waited for', async () => {
    const { c, address, slept } = setup({}, { retry: { maxTotalWaitMs: 10_000 } });
    await ews.deliver(address, mails('long', 1));
    await c.open();
    ews.inject({ match: op('FindItem'), fault: { kind: 'busy', backOffMs: 297_749 } });
    const err = await failure(c.listNew());
    expect(err.code).toBe('TIMEOUT');
    expect(err.message).toContain('it asked for 298 s more');
    expect(slept).toEqual([]);
  });

  it('503 from a load balancer with Retry-After is retried after it', async () => {
    const { c, address, slept } = setup();
    await ews.deliver(address, mails('lb', 1));
    await c.open();
    ews.inject({ match: op('FindItem'), fault: { kind: 'status', status: 503, retryAfter: 4 } });
    expect(await c.listNew()).toHaveLength(1);
    expect(slept).toEqual([4_000]);
  });

  it('a busy GetItem for a streamed mail is retried before the stream is handed out', async () => {
    const { c, address, slept } = setup();
    const raw = buildMail({ messageId: 'busy-stream@e.test' });
    await ews.deliver(address, [raw]);
    await c.open();
    const [m] = await c.listNew();
    ews.inject({ match: op('GetItem'), fault: { kind: 'busy-message', backOffMs: 250 } });
    expect((await readAll(await c.stream(m!))).equals(raw)).toBe(true);
    expect(slept).toEqual([250]);
  });
});

describe('EWS connector: authentication', () => {
  it('NTLM: NEGOTIATE offers Unicode and NTLMv2; the password never travels; the answer carries the channel binding', async () => {
    const { c, password, mine } = setup();
    await c.open();
    const auth = mine()
      .map((r) => r.headers.authorization)
      .filter((a): a is string => typeof a === 'string');
    expect(auth).toHaveLength(2); // NEGOTIATE, then AUTHENTICATE with the request; nothing after
    const negotiate = Buffer.from(auth[0]!.replace(/^NTLM /, ''), 'base64');
    expect(negotiate.readUInt32LE(8)).toBe(1);
    expect(negotiate.readUInt32LE(12) & 0x00080001).toBe(0x00080001); // UNICODE | EXTENDED_SESSIONSECURITY
    const everything = JSON.stringify(mine());
    expect(everything).not.toContain(password);
    expect(everything).not.toContain(Buffer.from(password, 'utf16le').toString('base64'));
  });

  it('NTLM with DOMAIN\\user and with user@upn', async () => {
    for (const username of ['EXAMPLE\\ntlm-dom', 'ntlm-upn@example.test']) {
      ews.addAccount(username, 'Secret!1');
      ews.addMailbox('shared@ews.test');
      const c = createConnector(
        parseMailboxInput({
          name: 'dom',
          protocol: 'ews',
          connectUrl: ews.url,
          username,
          password: 'Secret!1',
          emailAddress: 'shared@ews.test',
          caFile: ews.caFile,
        }),
      );
      await c.open();
      expect(await c.listNew()).toEqual([]);
      await c.close();
    }
  });

  it('NTLM: wrong password → AUTH_FAILED naming the user, never the password', async () => {
    const { c, user } = setup({ password: 'not-the-password' });
    const err = await failure(c.open());
    expect(err.code).toBe('AUTH_FAILED');
    expect(err.message).toContain(`"${user}" (NTLM)`);
    expect(JSON.stringify(err.toJSON())).not.toContain('not-the-password');
  });

  it('NTLM: a connection the server dropped is authenticated again on the next request', async () => {
    const { c, address } = setup();
    await ews.deliver(address, mails('again', 1));
    await c.open();
    const logins = ews.ntlmLogins;
    ews.dropConnections();
    expect(await c.listNew()).toHaveLength(1);
    expect(ews.ntlmLogins - logins).toBe(1);
  });

  it('Basic: logs in with ewsAuth "basic"; a wrong password → AUTH_FAILED', async () => {
    const { c, address, mine } = setup({ ewsAuth: 'basic' });
    await ews.deliver(address, mails('basic', 1));
    await c.open();
    expect(await c.listNew()).toHaveLength(1);
    expect(mine().every((r) => r.headers.authorization?.startsWith('Basic '))).toBe(true);
    const { c: wrong } = setup({ ewsAuth: 'basic', password: 'nope-nope' });
    const err = await failure(wrong.open());
    expect(err.code).toBe('AUTH_FAILED');
    expect(err.message).toContain('(Basic)');
  });

  describe('against servers that offer something else', () => {
    let only: EwsDouble;
    afterEach(async () => {
      await only?.stop();
    });
    const connect = (double: EwsDouble, ewsAuth: 'ntlm' | 'basic') => {
      double.addAccount('other', 'other-pw');
      double.addMailbox('other@ews.test');
      return createConnector(
        parseMailboxInput({
          name: 'other',
          protocol: 'ews',
          connectUrl: double.url,
          username: 'other',
          password: 'other-pw',
          emailAddress: 'other@ews.test',
          caFile: double.caFile,
          ewsAuth,
        }),
      );
    };

    it('NTLM against a Basic-only server → AUTH_FAILED saying to set ewsAuth "basic"', async () => {
      only = await EwsDouble.start({ auth: { ntlm: false, basic: true } });
      const err = await failure(connect(only, 'ntlm').open());
      expect(err.code).toBe('AUTH_FAILED');
      expect(err.message).toMatch(/does not offer NTLM.*"ewsAuth": "basic"/);
    });

    it('Basic against Exchange defaults (Windows authentication only) → AUTH_FAILED saying to set ewsAuth "ntlm"', async () => {
      only = await EwsDouble.start();
      const err = await failure(connect(only, 'basic').open());
      expect(err.code).toBe('AUTH_FAILED');
      expect(err.message).toMatch(
        /does not offer Basic authentication \(it offers negotiate, ntlm\).*"ewsAuth": "ntlm"/,
      );
    });

    it('a server offering only Negotiate gets the NTLM messages under Negotiate', async () => {
      only = await EwsDouble.start({ auth: { negotiateOnly: true } });
      const c = connect(only, 'ntlm');
      await c.open();
      await c.close();
      expect(only.ntlmLogins).toBe(1);
      expect(only.requests.some((r) => r.headers.authorization?.startsWith('Negotiate TlRMTVNTUA'))).toBe(
        true,
      );
    });

    it('a server offering only NTLMv1 is refused: AUTH_FAILED saying why', async () => {
      only = await EwsDouble.start({ auth: { ntlmV1Only: true } });
      const err = await failure(connect(only, 'ntlm').open());
      expect(err.code).toBe('AUTH_FAILED');
      expect(err.message).toContain('only NTLMv1');
    });
  });
});

describe('EWS connector: OAuth 2.0 bearer tokens', () => {
  /** Exchange Online (or hybrid modern auth): bearer tokens judged by the test's source, NTLM still offered. */
  let online: EwsDouble;
  let source: FakeTokenSource;
  beforeAll(async () => {
    online = await EwsDouble.start({ auth: { ntlm: true, bearer: (t) => source.verify(t) } });
  });
  afterAll(async () => {
    await online?.stop();
  });
  afterEach(() => {
    online.clearFaults();
  });

  function oauthSetup(kind: 'delegated' | 'app' = 'delegated', double: () => EwsDouble = () => online) {
    const address = `oauth-${++n}@ews.test`;
    const server = double();
    server.addMailbox(address);
    source = fakeTokenSource({ kind, subject: address });
    const settings = parseMailboxInput({
      name: `eo${n}`,
      protocol: 'ews',
      connectUrl: server.url,
      emailAddress: address,
      caFile: server.caFile,
      oauth: {
        provider: 'microsoft',
        clientId: 'client-id',
        clientSecret: 'client-secret',
        ...(kind === 'app' ? { flow: 'client-credentials', tenant: 'contoso.onmicrosoft.com' } : {}),
      },
    });
    const c = createConnector(settings, { tokens: source, sleep: async () => undefined });
    const mine = () => server.requests.filter((r) => r.headers['x-anchormailbox'] === address);
    return { c, address, settings, mine };
  }

  it('delegated token: Bearer and X-AnchorMailbox on every request, no NTLM, no impersonation', async () => {
    const { c, address, mine } = oauthSetup();
    await online.deliver(address, mails('bearer', 3));
    const logins = online.ntlmLogins;
    await c.open();
    const listed = await c.listNew();
    expect(listed).toHaveLength(3);
    expect((await readAll(await c.stream(listed[0]!))).length).toBeGreaterThan(0);
    await c.acknowledge(listed, { action: 'mark-read' });
    const token = source.issued[0]!;
    expect(mine().length).toBeGreaterThanOrEqual(4);
    expect(mine().every((r) => r.headers.authorization === `Bearer ${token}`)).toBe(true);
    expect(mine().every((r) => r.account === address && r.subject === address)).toBe(true);
    expect(mine().some((r) => r.body.includes('ExchangeImpersonation'))).toBe(false);
    expect(online.ntlmLogins).toBe(logins);
    expect(online.messages(address).every((m) => m.isRead)).toBe(true);
  });

  it('application token: every request impersonates the mailbox (ExchangeImpersonation, ConnectingSID)', async () => {
    const { c, address, mine } = oauthSetup('app');
    await online.deliver(address, mails('app', 2));
    await c.open();
    const listed = await c.listNew();
    await c.fetchMany?.(listed);
    await c.acknowledge(listed, { action: 'delete' });
    const impersonation = `<t:ExchangeImpersonation><t:ConnectingSID><t:SmtpAddress>${address}</t:SmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>`;
    expect(mine().length).toBeGreaterThanOrEqual(4);
    expect(mine().every((r) => r.body.includes(impersonation) && r.subject === null)).toBe(true);
    // the header sits in the SOAP header, beside the version: Exchange reads it there
    expect(mine()[0]!.body).toMatch(/<soap:Header><t:RequestServerVersion [^>]*\/><t:ExchangeImpersonation>/);
    expect(online.messages(address)).toEqual([]);
  });

  it('the double refuses an application token without impersonation, as Exchange Online does', async () => {
    const { c, address } = oauthSetup('app');
    await c.open();
    // a delegated-style request (no header) with the application token
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = https.request(online.url, {
        method: 'POST',
        ca: fs.readFileSync(online.caFile),
        headers: {
          Authorization: `Bearer ${source.issued[0]}`,
          'Content-Type': 'text/xml; charset=utf-8',
          'X-AnchorMailbox': address,
        },
      });
      req.on('error', reject);
      req.on('response', (r) => {
        let body = '';
        r.on('data', (d: Buffer) => {
          body += d.toString();
        });
        r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
      });
      req.end(
        '<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"><soap:Header><t:RequestServerVersion Version="Exchange2013_SP1"/></soap:Header><soap:Body><m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:GetFolder></soap:Body></soap:Envelope>',
      );
    });
    expect(res.status).toBe(500);
    expect(res.body).toContain('ErrorInvalidExchangeImpersonationHeaderData');
    expect(res.body).toContain(
      'ExchangeImpersonation SOAP header must be present for this type of OAuth token.',
    );
  });

  it('a 401 renews the token once and sends the request again on the same connection', async () => {
    const { c, address, mine } = oauthSetup();
    await online.deliver(address, mails('renew', 2));
    await c.open();
    const stale = source.issued[0]!;
    source.revokeCurrent();
    expect(await c.listNew()).toHaveLength(2);
    expect(source.calls.renew).toEqual([stale]);
    const finds = mine().filter(op('FindItem'));
    expect(finds.map((r) => r.headers.authorization)).toEqual([
      `Bearer ${stale}`,
      `Bearer ${source.issued[1]}`,
    ]);
  });

  it('a token refused again after renewing → AUTH_FAILED saying to authorize again, never the token', async () => {
    const { c, settings } = oauthSetup();
    source.refuseAll();
    const err = await failure(c.open());
    expect(err.code).toBe('AUTH_FAILED');
    expect(err.message).toMatch(/refused the OAuth token .* also after it was renewed/);
    expect(err.message).toContain(`mailintake mailbox authorize ${settings.name}`);
    expect(err.details.serverResponse).toContain('invalid_token');
    expect(source.calls.renew).toHaveLength(1);
    expectNoTokenIn(err, source);
  });

  it('renew failing with OAUTH_REAUTHORIZE_REQUIRED surfaces that error as it is', async () => {
    const { c } = oauthSetup('app');
    await c.open();
    const withdrawn = source.withdrawConsent();
    expect(await failure(c.listNew())).toBe(withdrawn);
  });

  it('an application token for a mailbox it may not impersonate → AUTH_FAILED naming full_access_as_app', async () => {
    const { c, address } = oauthSetup('app');
    online.denyMailbox(address);
    const err = await failure(c.open());
    expect(err.code).toBe('AUTH_FAILED');
    expect(err.details.errorCode).toBe('ErrorImpersonateUserDenied');
    expect(err.message).toContain('full_access_as_app');
  });

  it('an on-premises server without OAuth → AUTH_FAILED saying it offers only NTLM', async () => {
    const { c } = oauthSetup('delegated', () => ews);
    const err = await failure(c.open());
    expect(err.code).toBe('AUTH_FAILED');
    expect(err.message).toMatch(/does not accept OAuth bearer tokens \(it offers negotiate, ntlm, basic\)/);
  });
});

describe('EWS connector: coded errors', () => {
  it('a mailbox the account may not open → AUTH_FAILED (ErrorAccessDenied); an unknown one → FOLDER_NOT_FOUND', async () => {
    const { c, address } = setup();
    ews.denyMailbox(address);
    const err = await failure(c.open());
    expect(err.code).toBe('AUTH_FAILED');
    expect(err.details.errorCode).toBe('ErrorAccessDenied');
    const { c: nobody } = setup({ emailAddress: 'nobody-here@ews.test' });
    const err2 = await failure(nobody.open());
    expect(err2.code).toBe('FOLDER_NOT_FOUND');
    expect(err2.details.errorCode).toBe('ErrorNonExistentMailbox');
    expect(err2.message).toContain('nobody-here@ews.test');
  });

  it('a wrong path in connectUrl → CONNECT_FAILED naming it', async () => {
    const { c } = setup({ connectUrl: ews.url.replace('/EWS/', '/EWSX/') });
    const err = await failure(c.open());
    expect(err.code).toBe('CONNECT_FAILED');
    expect(err.message).toMatch(/Nothing answers EWS at https:\/\/localhost:\d+\/EWSX\/Exchange\.asmx/);
  });

  it('another SOAP fault → PROTOCOL_ERROR (retryable) with the fault in details.serverResponse', async () => {
    const { c } = setup();
    await c.open();
    ews.inject({
      match: op('FindItem'),
      fault: {
        kind: 'fault',
        code: 'ErrorInternalServerError',
        message: 'An internal server error occurred.',
      },
    });
    const err = await failure(c.listNew());
    expect(err.code).toBe('PROTOCOL_ERROR');
    expect(err.retryable).toBe(true);
    expect(err.details.serverResponse).toBe('ErrorInternalServerError: An internal server error occurred.');
  });

  it('an IIS 500 page (no SOAP) → PROTOCOL_ERROR with the page text', async () => {
    const { c } = setup();
    await c.open();
    ews.inject({ match: op('FindItem'), fault: { kind: 'status', status: 500 } });
    const err = await failure(c.listNew());
    expect(err.code).toBe('PROTOCOL_ERROR');
    expect(err.details.serverResponse).toContain('500 - Server Error');
  });

  it('an operation Exchange does not know is answered with its ErrorSchemaValidation fault', async () => {
    const agent = new https.Agent({ ca: [fs.readFileSync(ews.caFile)] });
    ews.addAccount('raw', 'raw-pw');
    const body =
      '<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"><soap:Header><t:RequestServerVersion Version="Exchange2013_SP1"/></soap:Header><soap:Body><m:Frobnicate/></soap:Body></soap:Envelope>';
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = https.request(ews.url, {
        method: 'POST',
        agent,
        headers: {
          'Content-Type': 'text/xml; charset=utf-8',
          Authorization: `Basic ${Buffer.from('raw:raw-pw').toString('base64')}`,
        },
      });
      req.on('error', reject);
      req.on('response', async (res) => {
        const parts: Buffer[] = [];
        for await (const chunk of res) parts.push(chunk as Buffer);
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString('utf8') });
      });
      req.end(body);
    });
    agent.destroy();
    expect(status).toBe(500);
    const answer = parseAnswer(text, 'FindItem');
    expect(answer).toMatchObject({ kind: 'fault', fault: { code: 'ErrorSchemaValidation' } });
  });

  it('a kept-alive connection dropped under a request is tried once more on a new one; dropped again → CONNECT_FAILED', async () => {
    const { c, address, mine } = setup();
    await ews.deliver(address, mails('drop', 1));
    await c.open();
    // once: indistinguishable from a keep-alive socket the server closed while idle, which Node's docs say
    // to retry; every EWS request we send is safe to repeat
    ews.inject({ match: op('FindItem'), fault: { kind: 'drop' } });
    expect(await c.listNew()).toHaveLength(1);
    expect(mine().filter(op('FindItem'))).toHaveLength(2);
    ews.inject({ match: op('FindItem'), times: 2, fault: { kind: 'drop' } });
    expect((await failure(c.listNew())).code).toBe('CONNECT_FAILED');
  });

  it('a connection dropped in the middle of a mail fails the stream with a coded error, never a short mail', async () => {
    const { c, address } = setup();
    await ews.deliver(address, [buildMail({ messageId: 'half@e.test', body: 'x'.repeat(300_000) })]);
    await c.open();
    const [m] = await c.listNew();
    ews.inject({ match: op('GetItem'), fault: { kind: 'drop-mid-body' } });
    const stream = await c.stream(m!);
    const err = await failure(readAll(stream));
    expect(['CONNECT_FAILED', 'TIMEOUT']).toContain(err.code);
  });

  it('a slow answer beyond the request timeout → TIMEOUT; within it, just slow', async () => {
    const { c } = setup({}, { timeouts: { requestMs: 300 } });
    await c.open();
    ews.inject({ match: op('FindItem'), fault: { kind: 'slow', delayMs: 1_000 } });
    expect((await failure(c.listNew())).code).toBe('TIMEOUT');
    const { c: patient } = setup({}, { timeouts: { requestMs: 3_000 } });
    await patient.open();
    ews.inject({ match: op('FindItem'), fault: { kind: 'slow', delayMs: 100 } });
    expect(await patient.listNew()).toEqual([]);
  });

  it('an unknown host → DNS_FAILED; an untrusted certificate → TLS_FAILED', async () => {
    const base = {
      name: 'x',
      protocol: 'ews',
      username: 'u',
      password: 'p',
      emailAddress: 'a@ews.test',
    };
    const dns = createConnector(
      parseMailboxInput({ ...base, connectUrl: 'https://no-such-host.invalid/EWS/Exchange.asmx' }),
    );
    expect((await failure(dns.open())).code).toBe('DNS_FAILED');
    const untrusted = createConnector(parseMailboxInput({ ...base, connectUrl: ews.url }));
    const err = await failure(untrusted.open());
    expect(err.code).toBe('TLS_FAILED');
    expect(err.message).toMatch(/self-signed/);
  });
});

describe('NTLM: the double checks what Exchange checks', () => {
  it('its MD4 and NTLMv2 follow RFC 1320 and the MS-NLMP 4.2.4 test vectors', () => {
    expect(md4(Buffer.from('')).toString('hex')).toBe('31d6cfe0d16ae931b73c59d7e0c089c0');
    expect(md4(Buffer.from('abc')).toString('hex')).toBe('a448017aaf21d8525fc10ae87aa6729d');
    expect(
      md4(
        Buffer.from('12345678901234567890123456789012345678901234567890123456789012345678901234567890'),
      ).toString('hex'),
    ).toBe('e33b4ddc9c38f2199c3e7b164fcc0536');
    expect(md4(Buffer.from('Password', 'utf16le')).toString('hex')).toBe('a4f49c406510bdcab6824ee7c30fd852');
    expect(ntowfv2('Password', 'User', 'Domain').toString('hex')).toBe('0c868a403bfd7a93a3001ef22ef02e3f');
  });

  it('the client channel binding equals the one the double derives from its certificate', () => {
    const der = new X509Certificate(fs.readFileSync(ews.caFile)).raw;
    expect(channelBindingHash(der).equals(expectedChannelBinding(der))).toBe(true);
  });

  it('an NTLMv2 answer without channel binding, or with a wrong password, is refused', () => {
    const negotiate = Buffer.from(negotiateMessage(), 'base64');
    const { token, serverChallenge } = challengeMessage(negotiate, {
      domain: 'EXAMPLE',
      computer: 'EXCH01',
      dnsDomain: 'example.test',
      dnsComputer: 'exch01.example.test',
    });
    const answer = (password: string, cert: Buffer | undefined) =>
      parseAuthenticate(
        Buffer.from(
          authenticateMessage(token.toString('base64'), { username: 'EXAMPLE\\bob', password }, cert),
          'base64',
        ),
      );
    const withoutBinding = verifyNtlmV2(answer('right', undefined), serverChallenge, 'right');
    expect(withoutBinding).toBeDefined();
    expect(withoutBinding!.has(10)).toBe(false); // so Extended Protection ("required") refuses it
    expect(verifyNtlmV2(answer('wrong', undefined), serverChallenge, 'right')).toBeUndefined();
    const cert = Buffer.from('any certificate bytes');
    expect(verifyNtlmV2(answer('right', cert), serverChallenge, 'right')!.get(10)).toEqual(
      channelBindingHash(cert),
    );
    expect(answer('right', cert)).toMatchObject({ user: 'bob', domain: 'EXAMPLE' });
  });
});
