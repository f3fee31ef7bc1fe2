import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import { buildMail } from './kit/mails.js';
import { deliverMaildir, listInbox } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';

/**
 * POP3 end to end: the real runtime (services the CLI and API use), a real Dovecot, both store engines.
 * POP3S with delete (the POP default) and POP3 + STLS with leave (the intake log remembers the UIDLs).
 */
describe.each(ENGINES)('intake from a real POP3 mailbox on %s', (engine) => {
  let dovecot: DovecotServer;
  let rt: Runtime;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    dovecot = await startDovecot({
      users: ['popdel', 'popleave'].map((n) => ({ name: n, password: `${n}-pw` })),
    });
    const fresh = await freshConfig(engine);
    cleanup = fresh.cleanup;
    rt = await openRuntime(fresh.config);
  });
  afterAll(async () => {
    await rt?.close();
    await dovecot?.stop();
    await cleanup?.();
  });

  const common = (user: string) => ({
    server: 'localhost',
    username: user,
    password: `${user}-pw`,
    emailAddress: `${user}@example.test`,
    caFile: dovecot.caFile,
  });

  it('pops + delete: mails become requests, a reply a conversation, and the server mailbox ends empty', async () => {
    const view = await rt.services.mailboxes.add({
      name: 'popdel',
      protocol: 'pops',
      port: dovecot.ports.pop3s,
      ...common('popdel'),
    });
    expect(view).toMatchObject({ protocol: 'pops', afterFetch: 'delete' }); // delete is the POP default
    await deliverMaildir(dovecot, 'popdel', [
      buildMail({ messageId: 'pd-1@pop.test', subject: 'Scanner jammed' }),
      buildMail({ messageId: 'pd-2@pop.test', subject: 'Mouse lost' }),
    ]);
    const [first] = await rt.services.fetch.once({ mailbox: 'popdel' });
    expect(first).toMatchObject({ reached: true, fetched: 2, created: 2, errored: 0 });
    expect(await listInbox(dovecot, 'popdel')).toEqual([]);

    await deliverMaildir(dovecot, 'popdel', [
      buildMail({ messageId: 'pd-3@pop.test', inReplyTo: 'pd-1@pop.test', subject: 'Re: Scanner jammed' }),
    ]);
    const [second] = await rt.services.fetch.once({ mailbox: 'popdel' });
    expect(second).toMatchObject({ fetched: 1, appended: 1, created: 0 });
    expect(await listInbox(dovecot, 'popdel')).toEqual([]);

    const log = (await rt.services.log.list({ mailbox: 'popdel' })).items;
    expect(log).toHaveLength(3);
    expect(log.every((e) => e.acknowledged && /^pop3;[0-9a-f]{16}$/i.test(e.serverIdentity))).toBe(true);
    const root = log.find((e) => e.messageId === 'pd-1@pop.test')!;
    const detail = await rt.services.requests.show(root.requestId!);
    expect(detail.subject).toBe('Scanner jammed');
    expect(detail.conversations.map((c) => c.messageId)).toEqual(['pd-3@pop.test']);

    const [third] = await rt.services.fetch.once({ mailbox: 'popdel' });
    expect(third).toMatchObject({ reached: true, fetched: 0, reacknowledged: 0 });
  });

  it('pop + STLS + leave: mails become requests and stay on the server; the next round creates nothing', async () => {
    await rt.services.mailboxes.add({
      name: 'popleave',
      protocol: 'pop',
      starttls: true,
      port: dovecot.ports.pop3,
      afterFetch: 'leave',
      ...common('popleave'),
    });
    await deliverMaildir(dovecot, 'popleave', [
      buildMail({ messageId: 'pl-1@pop.test', subject: 'Keyboard sticky' }),
      buildMail({ messageId: 'pl-2@pop.test', inReplyTo: 'pl-1@pop.test', subject: 'Re: Keyboard sticky' }),
    ]);
    const [first] = await rt.services.fetch.once({ mailbox: 'popleave' });
    expect(first).toMatchObject({ reached: true, fetched: 2, created: 1, appended: 1, errored: 0 });
    expect((await listInbox(dovecot, 'popleave')).map((m) => m.messageId)).toEqual([
      '<pl-1@pop.test>',
      '<pl-2@pop.test>',
    ]);

    const [second] = await rt.services.fetch.once({ mailbox: 'popleave' });
    expect(second).toMatchObject({ reached: true, fetched: 0, created: 0, appended: 0, reacknowledged: 0 });
    await deliverMaildir(dovecot, 'popleave', [
      buildMail({ messageId: 'pl-3@pop.test', subject: 'Monitor dark' }),
    ]);
    const [third] = await rt.services.fetch.once({ mailbox: 'popleave' });
    expect(third).toMatchObject({ fetched: 1, created: 1 });
    expect(await listInbox(dovecot, 'popleave')).toHaveLength(3);
    const log = (await rt.services.log.list({ mailbox: 'popleave' })).items;
    expect(log).toHaveLength(3);
    expect(log.every((e) => e.acknowledged)).toBe(true);
  });

  it('refuses mark-read and move for POP3, naming why', async () => {
    for (const afterFetch of ['mark-read', 'move']) {
      const err = await rt.services.mailboxes
        .add({
          name: `bad-${afterFetch}`,
          protocol: 'pops',
          afterFetch,
          moveToFolder: 'X',
          ...common('popdel'),
        })
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'INVALID_SETTINGS' });
      const fields = (err as { details: { fields: { field: string; message: string }[] } }).details.fields;
      expect(fields.find((f) => f.field === 'afterFetch')?.message).toMatch(/no flags and no folders/);
    }
  });
});
