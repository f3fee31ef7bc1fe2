import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ImapConnector, type ImapConnectorOptions } from '../src/connectors/imap/connector.js';
import { type MailboxInput, parseMailboxInput } from '../src/connectors/settings.js';
import { MailintakeError } from '../src/kernel/errors.js';
import { appendImap, deliverMaildir, folderMessages, listInbox } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';

// One user per scenario, so scenarios never see each other's mail.
const USERS = ['modes', 'lister', 'big', 'many', 'seen', 'deleter', 'mover', 'sampler', 'errors'].map(
  (name) => ({
    name,
    password: `${name}-secret-pw`,
  }),
);
const pw = (user: string) => `${user}-secret-pw`;

let dovecot: DovecotServer;
let wrongName: DovecotServer;
const open: ImapConnector[] = [];

beforeAll(async () => {
  [dovecot, wrongName] = await Promise.all([
    startDovecot({ users: USERS }),
    startDovecot({ users: USERS, certName: 'wrong.example' }),
  ]);
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

afterAll(async () => {
  await Promise.all([dovecot?.stop(), wrongName?.stop()]);
});

function settings(user: string, over: Partial<MailboxInput> = {}) {
  return parseMailboxInput({
    name: `test-${user}`,
    protocol: 'imaps',
    server: '127.0.0.1',
    port: dovecot.ports.imaps,
    username: user,
    password: pw(user),
    emailAddress: 'help@example.test',
    caFile: dovecot.caFile,
    ...over,
  });
}

function connector(
  user: string,
  over: Partial<MailboxInput> = {},
  opts: ImapConnectorOptions = {},
): ImapConnector {
  const c = new ImapConnector(settings(user, over), opts);
  open.push(c);
  return c;
}

function mail(subject: string, body = 'Hello,\r\nplease help.\r\n'): Buffer {
  const id = `<${subject.replace(/\W+/g, '-')}.${randomBytes(4).toString('hex')}@example.test>`;
  return Buffer.from(
    `From: Customer <customer@example.test>\r\nTo: help@example.test\r\nSubject: ${subject}\r\n` +
      `Message-ID: ${id}\r\nDate: Mon, 06 Jan 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\n` +
      `Content-Type: text/plain; charset=utf-8\r\n\r\n${body}`,
  );
}

const messageIdOf = (raw: Buffer) => /^Message-ID: (.*)$/m.exec(raw.toString('latin1'))![1]!.trim();
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function expectFailure(
  promise: Promise<unknown>,
  code: string,
  password: string,
): Promise<MailintakeError> {
  const err = await promise.then(
    () => {
      throw new Error(`expected ${code}, but it succeeded`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MailintakeError);
  const coded = err as MailintakeError;
  expect(coded.code, coded.message).toBe(code);
  expect(coded.message).not.toContain(password);
  expect(JSON.stringify(coded.toJSON())).not.toContain(password);
  return coded;
}

async function closedPort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('connection modes', () => {
  beforeAll(async () => {
    await deliverMaildir(dovecot, 'modes', [mail('mode check')]);
  });

  it.each([
    ['IMAPS with a private CA', () => ({ protocol: 'imaps', port: dovecot.ports.imaps })],
    [
      'IMAP + STARTTLS with a private CA',
      () => ({ protocol: 'imap', port: dovecot.ports.imap, starttls: true }),
    ],
    [
      'plain IMAP (starttls off)',
      () => ({ protocol: 'imap', port: dovecot.ports.imap, starttls: false, caFile: undefined }),
    ],
  ] as const)('%s: logs in and lists the inbox', async (_name, over) => {
    const c = connector('modes', over() as Partial<MailboxInput>);
    await c.open();
    const mails = await c.listNew();
    expect(mails).toHaveLength(1);
  });

  it('accepts the CA as a Buffer option instead of caFile', async () => {
    const { readFile } = await import('node:fs/promises');
    const c = connector('modes', { caFile: undefined }, { ca: await readFile(dovecot.caFile) });
    await c.open();
    expect(await c.listNew()).toHaveLength(1);
  });
});

describe('listNew', () => {
  it('lists unseen mail oldest first with folder;UIDVALIDITY;UID identities and RFC822.SIZE', async () => {
    const raws = [mail('first'), mail('second'), mail('third')];
    await deliverMaildir(dovecot, 'lister', raws.slice(0, 2));
    await appendImap(dovecot, 'lister', mail('already read'), ['\\Seen']);
    await deliverMaildir(dovecot, 'lister', raws.slice(2));

    const c = connector('lister');
    await c.open();
    const mails = await c.listNew();
    expect(mails).toHaveLength(3);
    const parsed = mails.map((m) => /^INBOX;(\d+);(\d+)$/.exec(m.identity));
    expect(parsed.every(Boolean)).toBe(true);
    const uids = parsed.map((p) => Number(p![2]));
    expect(uids).toEqual([...uids].sort((a, b) => a - b));
    expect(new Set(parsed.map((p) => p![1])).size).toBe(1);
    expect(mails.map((m) => m.size)).toEqual(raws.map((r) => r.length));

    const onServer = await listInbox(dovecot, 'lister');
    const unseen = onServer.filter((m) => !m.flags.includes('\\Seen'));
    expect(unseen.map((m) => m.uid)).toEqual(uids);
    expect(unseen.map((m) => m.messageId)).toEqual(raws.map(messageIdOf));
  });

  it('lists read mail too when the after-fetch action empties the folder (delete/move)', async () => {
    const c = connector('lister', { afterFetch: 'delete' });
    await c.open();
    const mails = await c.listNew();
    expect(mails).toHaveLength(4);
  });

  it('sees mail delivered after open()', async () => {
    const c = connector('lister');
    await c.open();
    const before = await c.listNew();
    await deliverMaildir(dovecot, 'lister', [mail('late arrival')]);
    const after = await c.listNew();
    expect(after).toHaveLength(before.length + 1);
    expect(after.slice(0, before.length)).toEqual(before);
  });
});

describe('reading mail', () => {
  it('streams a ~50 MB mail byte-identical to what was delivered', async () => {
    // base64 lines of 76 chars, as a mail client would attach a 37 MB file
    const payload = randomBytes(37 * 1024 * 1024)
      .toString('base64')
      .replace(/.{76}/g, '$&\r\n');
    const raw = Buffer.concat([
      mail('big one', '').subarray(0, -2),
      Buffer.from(
        'X-Note: multipart follows\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n' +
          '--b1\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n' +
          '--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="big.bin"\r\n' +
          'Content-Transfer-Encoding: base64\r\n\r\n',
      ),
      Buffer.from(payload),
      Buffer.from('\r\n--b1--\r\n'),
    ]);
    expect(raw.length).toBeGreaterThan(49 * 1024 * 1024);
    await deliverMaildir(dovecot, 'big', [raw]);

    const c = connector('big');
    await c.open();
    const [big] = await c.listNew();
    expect(big!.size).toBe(raw.length);
    const stream = await c.stream(big!);
    const hash = createHash('sha256');
    let bytes = 0;
    for await (const chunk of stream) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
    expect(bytes).toBe(raw.length);
    expect(hash.digest('hex')).toBe(sha256(raw));
    // reading did not mark it read
    expect((await listInbox(dovecot, 'big'))[0]!.flags).not.toContain('\\Seen');
  });

  it('fetchMany returns the full sources in the order asked', async () => {
    const raws = [mail('m1'), mail('m2'), mail('m3')];
    await deliverMaildir(dovecot, 'many', raws);
    const c = connector('many');
    await c.open();
    const mails = await c.listNew();
    const asked = [mails[2]!, mails[0]!, mails[1]!];
    const got = await c.fetchMany(asked);
    expect([...got.keys()]).toEqual(asked.map((m) => m.identity));
    expect(got.get(mails[0]!.identity)!.equals(raws[0]!)).toBe(true);
    expect(got.get(mails[1]!.identity)!.equals(raws[1]!)).toBe(true);
    expect(got.get(mails[2]!.identity)!.equals(raws[2]!)).toBe(true);
    expect((await listInbox(dovecot, 'many')).every((m) => !m.flags.includes('\\Seen'))).toBe(true);
  });
});

describe('acknowledge', () => {
  it('mark-read sets \\Seen on exactly those mails', async () => {
    const raws = [mail('r1'), mail('r2'), mail('r3')];
    await deliverMaildir(dovecot, 'seen', raws);
    const c = connector('seen');
    await c.open();
    const mails = await c.listNew();
    await c.acknowledge([mails[0]!, mails[2]!], { action: 'mark-read' });

    const onServer = await listInbox(dovecot, 'seen');
    expect(onServer.map((m) => [m.messageId, m.flags.includes('\\Seen')])).toEqual([
      [messageIdOf(raws[0]!), true],
      [messageIdOf(raws[1]!), false],
      [messageIdOf(raws[2]!), true],
    ]);
    expect((await c.listNew()).map((m) => m.identity)).toEqual([mails[1]!.identity]);
  });

  it('delete expunges only those UIDs, even when another client marked other mail \\Deleted', async () => {
    const raws = [mail('d1'), mail('d2'), mail('d3')];
    await deliverMaildir(dovecot, 'deleter', raws);
    const othersDeleted = mail('flagged deleted by someone else');
    await appendImap(dovecot, 'deleter', othersDeleted, ['\\Deleted']);

    const c = connector('deleter', { afterFetch: 'delete' });
    await c.open();
    const listed = await c.listNew();
    // The mail flagged \Deleted is listed, marked as such: the loop finishes it only if it committed it
    // (a crash between STORE \Deleted and UID EXPUNGE), and leaves a stranger's alone.
    expect(listed.map((m) => Boolean(m.flaggedDeleted))).toEqual([false, false, false, true]);
    const mails = listed.filter((m) => !m.flaggedDeleted);
    await c.acknowledge([mails[0]!, mails[2]!], { action: 'delete' });

    const left = await listInbox(dovecot, 'deleter');
    expect(left.map((m) => m.messageId)).toEqual([messageIdOf(raws[1]!), messageIdOf(othersDeleted)]);
    expect(left[0]!.flags).toEqual([]);
    expect(left[1]!.flags).toEqual(['\\Deleted']);
  });

  it('move creates the folder and moves exactly those mails', async () => {
    const raws = [mail('v1'), mail('v2'), mail('v3')];
    await deliverMaildir(dovecot, 'mover', raws);
    const c = connector('mover', { afterFetch: 'move', moveToFolder: 'Processed' });
    await c.open();
    const mails = await c.listNew();
    await c.acknowledge([mails[0]!, mails[1]!], { action: 'move', folder: 'Processed' });

    expect((await listInbox(dovecot, 'mover')).map((m) => m.messageId)).toEqual([messageIdOf(raws[2]!)]);
    expect((await folderMessages(dovecot, 'mover', 'Processed')).map((m) => m.messageId)).toEqual(
      raws.slice(0, 2).map(messageIdOf),
    );

    // the error-folder seam: into an existing folder and a new nested one
    await c.moveTo([mails[2]!], 'Errors/Mailintake');
    expect(await listInbox(dovecot, 'mover')).toEqual([]);
    expect((await folderMessages(dovecot, 'mover', 'Errors/Mailintake')).map((m) => m.messageId)).toEqual([
      messageIdOf(raws[2]!),
    ]);
  });

  it('refuses to act on identities from an older UIDVALIDITY', async () => {
    const c = connector('seen');
    await c.open();
    const [one] = await c.listNew();
    const stale = { ...one!, handle: { uid: (one!.handle as { uid: number }).uid, uidValidity: '1' } };
    const err = await expectFailure(
      c.acknowledge([stale], { action: 'mark-read' }),
      'PROTOCOL_ERROR',
      pw('seen'),
    );
    expect(err.message).toMatch(/UIDVALIDITY/);
  });
});

describe('sample', () => {
  it('describes the oldest mail (read or not) without changing any flag', async () => {
    const withAttachment = Buffer.from(
      'From: "Jane Customer" <jane@example.test>\r\nTo: help@example.test\r\nSubject: printer on fire\r\n' +
        'Message-ID: <sample-1@example.test>\r\nDate: Tue, 07 Jan 2025 08:30:00 +0100\r\nMIME-Version: 1.0\r\n' +
        'Content-Type: multipart/mixed; boundary="xx"\r\n\r\n' +
        '--xx\r\nContent-Type: text/plain\r\n\r\nsee photo\r\n' +
        '--xx\r\nContent-Type: image/png; name="fire.png"\r\nContent-Disposition: attachment; filename="fire.png"\r\n' +
        'Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n' +
        '--xx\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="invoice.pdf"\r\n' +
        'Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--xx--\r\n',
    );
    await appendImap(dovecot, 'sampler', withAttachment, ['\\Seen', '\\Flagged']);
    await deliverMaildir(dovecot, 'sampler', [mail('newer, unseen')]);
    const before = await listInbox(dovecot, 'sampler');

    const c = connector('sampler');
    await c.open();
    const sample = await c.sample();
    expect(sample).toEqual({
      from: 'Jane Customer <jane@example.test>',
      subject: 'printer on fire',
      date: '2025-01-07T07:30:00.000Z',
      size: withAttachment.length,
      attachments: ['fire.png', 'invoice.pdf'],
    });
    expect(await listInbox(dovecot, 'sampler')).toEqual(before);
    expect(before[1]!.flags).not.toContain('\\Seen');
  });

  it('is null for an empty folder', async () => {
    const c = connector('sampler', { folder: 'Empty' });
    await appendImap(dovecot, 'sampler', mail('x'), [], 'Empty');
    await c.open();
    const [only] = await c.listNew();
    const deleting = connector('sampler', { folder: 'Empty', afterFetch: 'delete' });
    await deleting.open();
    await deleting.acknowledge(await deleting.listNew(), { action: 'delete' });
    expect(only).toBeDefined();
    expect(await c.sample()).toBeNull();
  });
});

describe('failures a person must be able to act on', () => {
  it('wrong password → AUTH_FAILED naming the user and server, never the password', async () => {
    const wrong = 'wrong-secret-pw-123';
    const c = connector('errors', { password: wrong });
    const err = await expectFailure(c.open(), 'AUTH_FAILED', wrong);
    expect(err.message).toContain('"errors"');
    expect(err.message).toContain(`127.0.0.1:${dovecot.ports.imaps}`);
    expect(err.message).toMatch(/password/);
    expect(err.details.serverResponse).toMatch(/Authentication failed/i);
  });

  it('closed port → CONNECT_FAILED', async () => {
    const port = await closedPort();
    const c = connector('errors', { port });
    const err = await expectFailure(c.open(), 'CONNECT_FAILED', pw('errors'));
    expect(err.message).toContain(`127.0.0.1:${port}`);
    expect(err.message).toMatch(/refused/);
  });

  it('certificate for another name → TLS_FAILED naming the mismatch', async () => {
    const c = connector('errors', { port: wrongName.ports.imaps, caFile: wrongName.caFile });
    const err = await expectFailure(c.open(), 'TLS_FAILED', pw('errors'));
    expect(err.message).toContain(`127.0.0.1:${wrongName.ports.imaps}`);
    expect(err.message).toMatch(/does not name this server/);
    expect(err.message).toContain('wrong.example');
  });

  it('certificate for another name over STARTTLS → TLS_FAILED', async () => {
    const c = connector('errors', {
      protocol: 'imap',
      starttls: true,
      port: wrongName.ports.imap,
      caFile: wrongName.caFile,
    });
    const err = await expectFailure(c.open(), 'TLS_FAILED', pw('errors'));
    expect(err.message).toMatch(/does not name this server/);
  });

  it('unknown CA (no caFile) → TLS_FAILED suggesting caFile', async () => {
    const c = connector('errors', { caFile: undefined });
    const err = await expectFailure(c.open(), 'TLS_FAILED', pw('errors'));
    expect(err.message).toMatch(/self-signed/);
    expect(err.message).toContain('caFile');
  });

  it('imaps on the plain IMAP port → TLS_FAILED explaining the port/protocol mix-up', async () => {
    const c = connector('errors', { port: dovecot.ports.imap });
    const err = await expectFailure(c.open(), 'TLS_FAILED', pw('errors'));
    expect(err.message).toMatch(/did not answer with TLS/);
  });

  it('plain IMAP on the IMAPS port → TIMEOUT hinting at protocol imaps', async () => {
    const c = connector(
      'errors',
      { protocol: 'imap', starttls: true, port: dovecot.ports.imaps },
      { timeouts: { greetingMs: 1000 } },
    );
    const err = await expectFailure(c.open(), 'TIMEOUT', pw('errors'));
    expect(err.message).toMatch(/imaps/);
  });

  it('unresolvable host → DNS_FAILED', async () => {
    const c = connector('errors', { server: 'nonexistent.invalid' });
    const err = await expectFailure(c.open(), 'DNS_FAILED', pw('errors'));
    expect(err.message).toContain('nonexistent.invalid');
    expect(err.message).toMatch(/server/);
  });

  it('missing folder → FOLDER_NOT_FOUND naming it', async () => {
    const c = connector('errors', { folder: 'Does/Not/Exist' });
    const err = await expectFailure(c.open(), 'FOLDER_NOT_FOUND', pw('errors'));
    expect(err.message).toContain('"Does/Not/Exist"');
    expect(err.details.serverResponse).toBeTruthy();
  });

  it('the server going away mid-session → coded errors from listNew, stream and acknowledge; close() does not throw', async () => {
    const own = await startDovecot({ users: [{ name: 'errors', password: pw('errors') }] });
    try {
      await deliverMaildir(own, 'errors', [
        mail('five megabytes', 'x'.repeat(76).concat('\r\n').repeat(70_000)),
      ]);
      const make = () =>
        new ImapConnector(
          parseMailboxInput({
            name: 'gone',
            protocol: 'imaps',
            server: '127.0.0.1',
            port: own.ports.imaps,
            username: 'errors',
            password: pw('errors'),
            emailAddress: 'help@example.test',
            caFile: own.caFile,
          }),
        );
      const [lister, streamer, acker] = [make(), make(), make()];
      await Promise.all([lister.open(), streamer.open(), acker.open()]);
      const [big] = await streamer.listNew();
      // the first 64 KB chunk has arrived; the rest is fetched as it is read, i.e. after the kill
      const stream = await streamer.stream(big!);
      stream.on('error', () => {
        // asserted through the iterator below
      });
      await own.kill();
      const readingFailed = expectFailure(
        (async () => {
          for await (const _chunk of stream) {
            // reading until the dead connection shows
          }
        })(),
        'CONNECT_FAILED',
        pw('errors'),
      );

      const listErr = await expectFailure(lister.listNew(), 'CONNECT_FAILED', pw('errors'));
      expect(listErr.message).toContain(`127.0.0.1:${own.ports.imaps}`);
      expect(listErr.message).toMatch(/next round reconnects/);
      await readingFailed;
      await expectFailure(acker.acknowledge([big!], { action: 'mark-read' }), 'CONNECT_FAILED', pw('errors'));
      for (const c of [lister, streamer, acker]) await expect(c.close()).resolves.toBeUndefined();
    } finally {
      await own.stop();
    }
  });
});
