/**
 * The connector contract (src/connectors/connector.ts) as one set of cases every connector runs, each against
 * its real server (Dovecot for IMAP and POP3) or, where none can run here, its protocol double. A case a
 * protocol cannot support is skipped with the reason in its name.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConnectorTraits, RemoteMail } from '../../src/connectors/connector.js';
import type { SamplingConnector } from '../../src/connectors/factory.js';
import type { MailboxInput } from '../../src/connectors/settings.js';
import { MailintakeError } from '../../src/kernel/errors.js';
import { buildMail } from '../kit/mails.js';

/** One user per case (and per target), so cases never see each other's mail. */
export const CONTRACT_CASES = [
  'open',
  'order',
  'stream',
  'many',
  'delete',
  'keep',
  'move',
  'sample',
  'auth',
] as const;
export type ContractCase = (typeof CONTRACT_CASES)[number];

export interface ContractTarget {
  /** e.g. "POP3 (STLS)"; also the prefix of its users. */
  name: string;
  /** Short, user-name safe: users are `${id}-${case}`. */
  id: string;
  /** What the connector declares; the cases follow it (and check the declaration). */
  traits: ConnectorTraits;
  /** Why moveTo cannot be tested, when traits.folders is false. */
  noFoldersReason?: string;
  /** A connector for the case's user; `over` changes settings (wrong password, other server, port). */
  connector(user: string, over?: Partial<MailboxInput>): SamplingConnector;
  deliver(user: string, raws: Buffer[]): Promise<void>;
  /** Message-IDs of the mails the server still keeps for the user (any state), oldest first. */
  onServer(user: string): Promise<string[]>;
  /** Names of folders the user has, for moveTo. */
  folderMessageIds?(user: string, folder: string): Promise<string[]>;
  /** A server name the certificate does not cover, reaching the same server. */
  mismatchedName: string;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function closedPort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

async function readAll(c: SamplingConnector, mail: RemoteMail): Promise<Buffer> {
  const stream = await c.stream(mail);
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

const messageIdOf = (raw: Buffer) => /^Message-ID: <([^>]+)>/im.exec(raw.toString('latin1'))?.[1];

export function connectorContract(t: ContractTarget): void {
  describe(`connector contract: ${t.name}`, () => {
    const opened: SamplingConnector[] = [];
    const user = (c: ContractCase) => `${t.id}-${c}`;
    const open = async (c: ContractCase, over: Partial<MailboxInput> = {}) => {
      const connector = t.connector(user(c), over);
      opened.push(connector);
      await connector.open();
      return connector;
    };
    const mails = (c: ContractCase, n: number) =>
      Array.from({ length: n }, (_, i) =>
        buildMail({ messageId: `${t.id}-${c}-${i}@contract.test`, subject: `${c} ${i}` }),
      );

    afterEach(async () => {
      await Promise.all(opened.splice(0).map((c) => c.close()));
    });

    it('declares its traits', async () => {
      const c = await open('open');
      expect(c.traits).toEqual(t.traits);
    });

    it('opens, lists an empty mailbox, and closes (close twice does not throw)', async () => {
      const c = await open('open');
      expect(await c.listNew()).toEqual([]);
      await c.close();
      await c.close();
    });

    it('lists mail oldest first, with identities that stay the same in the next session', async () => {
      const raws = mails('order', 3);
      await t.deliver(user('order'), raws);
      const first = await open('order');
      const listed = await first.listNew();
      expect(listed).toHaveLength(3);
      const sources: Buffer[] = [];
      for (const m of listed) sources.push(await readAll(first, m)); // a stream is read before the next call
      expect(sources.map(messageIdOf)).toEqual(raws.map(messageIdOf));
      for (const [i, m] of listed.entries()) expect(m.size).toBe(raws[i]!.length);
      await first.close();
      const second = await open('order');
      expect((await second.listNew()).map((m) => m.identity)).toEqual(listed.map((m) => m.identity));
      expect(new Set(listed.map((m) => m.identity)).size).toBe(3);
    });

    it('streams a small and a ~5 MB mail byte-identical to what was delivered', async () => {
      const small = mails('stream', 1)[0]!;
      const line = `${'0123456789abcdef'.repeat(4)}\r\n`;
      // a few lines start with a dot: POP3 servers stuff them, and they must come back as delivered
      const body = `${line.repeat(40_000)}.a line with a leading dot\r\n..two\r\n${line.repeat(40_000)}`;
      const big = buildMail({ messageId: `${t.id}-stream-big@contract.test`, subject: 'big', body });
      expect(big.length).toBeGreaterThan(5_000_000);
      await t.deliver(user('stream'), [small, big]);
      const c = await open('stream');
      const [a, b] = await c.listNew();
      expect(sha256(await readAll(c, a!))).toBe(sha256(small));
      expect(sha256(await readAll(c, b!))).toBe(sha256(big));
    });

    it('fetchMany returns full sources in the order asked', async () => {
      const raws = mails('many', 4);
      await t.deliver(user('many'), raws);
      const c = await open('many');
      if (!c.fetchMany) return; // optional in the contract; IMAP and POP3 both have it
      const listed = await c.listNew();
      const asked = [listed[3]!, listed[0]!, listed[2]!];
      const got = await c.fetchMany(asked);
      expect([...got.keys()]).toEqual(asked.map((m) => m.identity));
      expect([...got.values()].map(sha256)).toEqual([raws[3]!, raws[0]!, raws[2]!].map(sha256));
    });

    it('acknowledge delete removes exactly those mails; the next session no longer lists them', async () => {
      const raws = mails('delete', 3);
      await t.deliver(user('delete'), raws);
      const c = await open('delete');
      const listed = await c.listNew();
      await c.acknowledge([listed[0]!, listed[2]!], { action: 'delete' });
      // the session goes on after the acknowledgement (POP3 reconnects: DELE counts only at QUIT)
      expect(sha256(await readAll(c, listed[1]!))).toBe(sha256(raws[1]!));
      await c.close();
      const next = await open('delete');
      expect((await next.listNew()).map((m) => m.identity)).toEqual([listed[1]!.identity]);
      expect(await t.onServer(user('delete'))).toEqual([messageIdOf(raws[1]!)]);
    });

    it(`acknowledge ${t.traits.keepAction} (the non-destructive action) keeps the mail on the server and it is ${t.traits.listsKeptMail ? 'still listed (the intake log recognises it)' : 'no longer listed'}`, async () => {
      const raws = mails('keep', 2);
      await t.deliver(user('keep'), raws);
      const c = await open('keep');
      const listed = await c.listNew();
      await c.acknowledge([listed[0]!], { action: t.traits.keepAction });
      await c.close();
      const next = await open('keep');
      const again = (await next.listNew()).map((m) => m.identity);
      expect(again).toEqual(t.traits.listsKeptMail ? listed.map((m) => m.identity) : [listed[1]!.identity]);
      expect(await t.onServer(user('keep'))).toEqual(raws.map(messageIdOf));
    });

    it.skipIf(!t.traits.folders)(
      `moveTo creates the folder and moves exactly those mails${t.traits.folders ? '' : ` — skipped: ${t.noFoldersReason ?? 'no folders'}`}`,
      async () => {
        const raws = mails('move', 3);
        await t.deliver(user('move'), raws);
        const c = await open('move');
        const listed = await c.listNew();
        await c.moveTo([listed[1]!], 'Contract/Errors');
        expect((await c.listNew()).map((m) => m.identity)).toEqual([
          listed[0]!.identity,
          listed[2]!.identity,
        ]);
        expect(await t.folderMessageIds!(user('move'), 'Contract/Errors')).toEqual([messageIdOf(raws[1]!)]);
      },
    );

    it.skipIf(t.traits.folders)(
      'moveTo refuses with a coded error saying why (for protocols without folders)',
      async () => {
        await t.deliver(user('move'), mails('move', 1));
        const c = await open('move');
        const listed = await c.listNew();
        const err = (await c.moveTo(listed, 'Errors').catch((e: unknown) => e)) as MailintakeError;
        expect(err).toBeInstanceOf(MailintakeError);
        expect(err.code).toBe('ACK_FAILED');
        expect(err.message).toMatch(/no folders/);
        expect(await t.onServer(user('move'))).toHaveLength(1);
      },
    );

    it('sample() describes the oldest mail and changes nothing', async () => {
      const raws = [
        buildMail({
          messageId: `${t.id}-sample-0@contract.test`,
          from: 'Ada <ada@example.test>',
          subject: 'oldest',
          attachments: [{ filename: 'notes.txt', contentType: 'text/plain', content: Buffer.from('hi') }],
        }),
        ...mails('sample', 1),
      ];
      await t.deliver(user('sample'), raws);
      const c = await open('sample');
      const before = await c.listNew();
      const sample = await c.sample();
      expect(sample).toMatchObject({
        from: 'Ada <ada@example.test>',
        subject: 'oldest',
        date: '2024-01-01T10:00:00.000Z',
        size: raws[0]!.length,
        attachments: ['notes.txt'],
      });
      await c.close();
      const next = await open('sample');
      expect(await next.listNew()).toEqual(before);
    });

    it('wrong password → AUTH_FAILED naming the user, never the password', async () => {
      const err = (await open('auth', { password: 'not-the-password' }).catch(
        (e: unknown) => e,
      )) as MailintakeError;
      expect(err).toBeInstanceOf(MailintakeError);
      expect(err.code).toBe('AUTH_FAILED');
      expect(err.message).toContain(user('auth'));
      expect(JSON.stringify(err.toJSON())).not.toContain('not-the-password');
    });

    it('closed port → CONNECT_FAILED', async () => {
      const port = await closedPort();
      const err = (await open('auth', { port }).catch((e: unknown) => e)) as MailintakeError;
      expect(err.code).toBe('CONNECT_FAILED');
      expect(err.message).toContain(`:${port}`);
    });

    it('certificate for another name → TLS_FAILED naming the mismatch', async () => {
      const err = (await open('auth', { server: t.mismatchedName }).catch(
        (e: unknown) => e,
      )) as MailintakeError;
      expect(err.code).toBe('TLS_FAILED');
      expect(err.message).toMatch(/does not name this server/);
    });
  });
}
