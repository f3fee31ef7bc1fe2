import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import { EwsDouble } from './doubles/ews-double.js';
import { buildMail } from './kit/mails.js';
import { NO_SENDER_LIMIT } from './kit/sender-limit.js';
import { ENGINES, freshConfig } from './support/engines.js';

/**
 * Exchange Web Services end to end: the real runtime (services the CLI and API use), the EWS double (NTLM with
 * Extended Protection, as Exchange 2019 ships), both store engines. Mark-read (the default), delete and move;
 * ErrorServerBusy in the middle of a listing; a mail moved away and back by a person; a wrong password.
 */
describe.each(ENGINES)('intake from an Exchange Web Services mailbox (double) on %s', (engine) => {
  let ews: EwsDouble;
  let rt: Runtime;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    ews = await EwsDouble.start();
    const fresh = await freshConfig(engine);
    cleanup = fresh.cleanup;
    rt = await openRuntime(fresh.config);
    await rt.services.portals.update('default', NO_SENDER_LIMIT);
  });
  afterAll(async () => {
    await rt?.close();
    await ews?.stop();
    await cleanup?.();
  });

  const address = (name: string) => `${name}@ews.test`;
  const common = (name: string) => {
    ews.addAccount(`EXAMPLE\\${name}`, `${name}-Pässw0rd`);
    ews.addMailbox(address(name));
    return {
      name,
      protocol: 'ews',
      connectUrl: ews.url,
      username: `EXAMPLE\\${name}`,
      password: `${name}-Pässw0rd`,
      emailAddress: address(name),
      caFile: ews.caFile,
    };
  };
  const onServer = (name: string, folder = 'inbox') =>
    ews.messages(address(name), folder).map((m) => ({ id: m.messageId, read: m.isRead }));

  it('mark-read (default): mails become requests, a reply a conversation; they stay, read; the next round creates nothing', async () => {
    const view = await rt.services.mailboxes.add(common('eread'));
    expect(view).toMatchObject({
      protocol: 'ews',
      server: ews.url,
      port: ews.port,
      username: 'EXAMPLE\\eread',
      afterFetch: 'mark-read',
      folder: 'inbox',
    });
    expect(JSON.stringify(view)).not.toContain('eread-Pässw0rd');
    await ews.deliver(address('eread'), [
      buildMail({ messageId: 'er-1@ews.test', subject: 'Printer jammed' }),
      buildMail({ messageId: 'er-2@ews.test', inReplyTo: 'er-1@ews.test', subject: 'Re: Printer jammed' }),
    ]);
    const [first] = await rt.services.fetch.once({ mailbox: 'eread' });
    expect(first).toMatchObject({ reached: true, fetched: 2, created: 1, appended: 1, errored: 0 });
    expect(onServer('eread')).toEqual([
      { id: '<er-1@ews.test>', read: true },
      { id: '<er-2@ews.test>', read: true },
    ]);
    const log = (await rt.services.log.list({ mailbox: 'eread' })).items;
    expect(log).toHaveLength(2);
    expect(log.every((e) => e.acknowledged && e.serverIdentity.startsWith('ews;'))).toBe(true);
    const root = log.find((e) => e.messageId === 'er-1@ews.test')!;
    const detail = await rt.services.requests.show(root.requestId!);
    expect(detail.subject).toBe('Printer jammed');
    expect(detail.conversations.map((c) => c.messageId)).toEqual(['er-2@ews.test']);

    const [second] = await rt.services.fetch.once({ mailbox: 'eread' });
    expect(second).toMatchObject({ reached: true, fetched: 0, created: 0 });
  });

  it('a mail a person moves out and back (a new ItemId) is recognised, not taken in twice', async () => {
    await rt.services.mailboxes.add(common('emoved'));
    await ews.deliver(address('emoved'), [buildMail({ messageId: 'em-1@ews.test', subject: 'Moved about' })]);
    const [first] = await rt.services.fetch.once({ mailbox: 'emoved' });
    expect(first).toMatchObject({ fetched: 1, created: 1 });
    const [before] = ews.messages(address('emoved'));
    const away = ews.moveByPerson(address('emoved'), before!.id, 'Later');
    const back = ews.moveByPerson(address('emoved'), away, 'inbox');
    ews.setRead(address('emoved'), back, false);
    expect(back).not.toBe(before!.id);

    const [second] = await rt.services.fetch.once({ mailbox: 'emoved' });
    expect(second).toMatchObject({ reached: true, fetched: 1, created: 0, ignored: 1, errored: 0 });
    const log = (await rt.services.log.list({ mailbox: 'emoved' })).items;
    expect(log.map((e) => e.serverIdentity).sort()).toEqual([`ews;${before!.id}`, `ews;${back}`].sort());
    const again = log.find((e) => e.serverIdentity === `ews;${back}`)!;
    expect(again.outcome).toBe('ignored');
    expect(again.requestId).toBe(log.find((e) => e.outcome === 'created')!.requestId);
    expect(onServer('emoved')).toEqual([{ id: '<em-1@ews.test>', read: true }]);
  });

  it('delete: mails become requests and leave the inbox into Recoverable Items (SoftDelete)', async () => {
    await rt.services.mailboxes.add({ ...common('edel'), afterFetch: 'delete' });
    await ews.deliver(address('edel'), [
      buildMail({ messageId: 'ed-1@ews.test', subject: 'Laptop broken' }),
      buildMail({ messageId: 'ed-2@ews.test', subject: 'Phone broken' }),
    ]);
    const [first] = await rt.services.fetch.once({ mailbox: 'edel' });
    expect(first).toMatchObject({ reached: true, fetched: 2, created: 2, errored: 0 });
    expect(onServer('edel')).toEqual([]);
    expect(ews.deleted(address('edel'))).toEqual([
      { messageId: '<ed-1@ews.test>', deleteType: 'SoftDelete' },
      { messageId: '<ed-2@ews.test>', deleteType: 'SoftDelete' },
    ]);
  });

  it('move: mails become requests and go to a top-level folder, created when missing', async () => {
    await rt.services.mailboxes.add({ ...common('emove'), afterFetch: 'move', moveToFolder: 'Processed' });
    await ews.deliver(address('emove'), [buildMail({ messageId: 'emv-1@ews.test' })]);
    const [round] = await rt.services.fetch.once({ mailbox: 'emove' });
    expect(round).toMatchObject({ reached: true, fetched: 1, created: 1, errored: 0 });
    expect(onServer('emove')).toEqual([]);
    expect(onServer('emove', 'Processed')).toEqual([{ id: '<emv-1@ews.test>', read: false }]);
  });

  it('mailbox test (fetch a sample mail) describes the oldest mail and changes nothing', async () => {
    await rt.services.mailboxes.add(common('esample'));
    await ews.deliver(address('esample'), [
      buildMail({ messageId: 'es-1@ews.test', from: 'Bob <bob@example.test>', subject: 'Sample me' }),
    ]);
    const result = await rt.services.mailboxes.test('esample');
    expect(result.sample).toMatchObject({ from: 'Bob <bob@example.test>', subject: 'Sample me' });
    expect(onServer('esample')).toEqual([{ id: '<es-1@ews.test>', read: false }]);
  });

  it('ErrorServerBusy in the middle of the listing delays the round by its BackOffMilliseconds and completes without loss', async () => {
    await rt.services.mailboxes.add({ ...common('ebusy'), afterFetch: 'delete' });
    const raws = Array.from({ length: 150 }, (_, i) =>
      buildMail({ messageId: `eb-${i}@ews.test`, subject: `Busy ${i}` }),
    );
    await ews.deliver(address('ebusy'), raws);
    // the second page of the listing (mails 101–150) is refused once: Exchange's throttling fault
    ews.inject({
      match: (r) => r.operation === 'FindItem' && r.body.includes('Offset="100"'),
      fault: { kind: 'busy', backOffMs: 1_500 },
    });
    const started = performance.now();
    const [round] = await rt.services.fetch.once({ mailbox: 'ebusy' });
    const elapsed = performance.now() - started;
    // the runtime's connector sleeps for real (no clock seam in the runtime); the injected-sleep version of
    // this case is in ews-connector.test.ts
    expect(elapsed).toBeGreaterThanOrEqual(1_450);
    expect(round).toMatchObject({ reached: true, fetched: 150, created: 150, errored: 0 });
    expect(onServer('ebusy')).toEqual([]);
    const log = (await rt.services.log.list({ mailbox: 'ebusy', limit: 500 })).items;
    expect(new Set(log.map((e) => e.messageId)).size).toBe(150);
    expect(
      ews.requests.filter((r) => r.operation === 'FindItem' && r.body.includes('Offset="100"')),
    ).toHaveLength(2);
  });

  it('an update without password keeps the sealed one; a new password replaces it', async () => {
    const { password: _kept, ...withoutPassword } = common('eupdate');
    await rt.services.mailboxes.add({ ...withoutPassword, password: 'stale-password' });
    expect((await rt.services.mailboxes.test('eupdate').catch((e: unknown) => e)) as object).toMatchObject({
      code: 'AUTH_FAILED',
    });
    await rt.services.mailboxes.update('eupdate', { ...withoutPassword, password: 'eupdate-Pässw0rd' });
    await rt.services.mailboxes.update('eupdate', { ...withoutPassword, afterFetch: 'delete' });
    const view = await rt.services.mailboxes.get('eupdate');
    expect(view).toMatchObject({ afterFetch: 'delete', passwordSet: true });
    expect((await rt.services.mailboxes.test('eupdate')).ok).toBe(true);
  });

  it('a wrong password → AUTH_FAILED for the round; nothing taken in, nothing changed', async () => {
    await rt.services.mailboxes.add({ ...common('eauth'), password: 'not-the-password-at-all' });
    await ews.deliver(address('eauth'), [buildMail({ messageId: 'ea-1@ews.test' })]);
    const [round] = await rt.services.fetch.once({ mailbox: 'eauth' });
    expect(round).toMatchObject({ reached: false, fetched: 0 });
    expect(round!.error?.code).toBe('AUTH_FAILED');
    expect(JSON.stringify(round)).not.toContain('not-the-password-at-all');
    expect(onServer('eauth')).toEqual([{ id: '<ea-1@ews.test>', read: false }]);
  });
});
