import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import { GraphDouble } from './doubles/graph-double.js';
import { buildMail } from './kit/mails.js';
import { NO_SENDER_LIMIT } from './kit/sender-limit.js';
import { ENGINES, freshConfig } from './support/engines.js';

/**
 * Microsoft Graph end to end: the real runtime (services the CLI and API use), the Graph double, both store
 * engines. Mark-read (the Graph default) and delete; a throttled listing; a wrong token.
 */
const TOKEN = 'intake-graph-token-0123456789abcdef';

describe.each(ENGINES)('intake from a Microsoft Graph mailbox (double) on %s', (engine) => {
  let graph: GraphDouble;
  let rt: Runtime;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    graph = await GraphDouble.start({ token: TOKEN });
    const fresh = await freshConfig(engine);
    cleanup = fresh.cleanup;
    rt = await openRuntime(fresh.config);
    await rt.services.portals.update('default', NO_SENDER_LIMIT);
  });
  afterAll(async () => {
    await rt?.close();
    await graph?.stop();
    await cleanup?.();
  });

  const common = (name: string) => {
    graph.addMailbox(`${name}@graph.test`);
    return {
      name,
      protocol: 'graph',
      graphEndpoint: graph.url,
      accessToken: TOKEN,
      emailAddress: `${name}@graph.test`,
      caFile: graph.caFile,
    };
  };
  const onServer = (name: string) =>
    graph.messages(`${name}@graph.test`).map((m) => ({ id: m.messageId, read: m.isRead }));

  it('mark-read (default): mails become requests, a reply a conversation; they stay, read; the next round creates nothing', async () => {
    const view = await rt.services.mailboxes.add(common('gread'));
    expect(view).toMatchObject({
      protocol: 'graph',
      server: graph.url,
      port: graph.port,
      afterFetch: 'mark-read',
      folder: 'inbox',
    });
    expect(JSON.stringify(view)).not.toContain(TOKEN);
    await graph.deliver('gread@graph.test', [
      buildMail({ messageId: 'gr-1@graph.test', subject: 'VPN down' }),
      buildMail({ messageId: 'gr-2@graph.test', inReplyTo: 'gr-1@graph.test', subject: 'Re: VPN down' }),
    ]);
    const [first] = await rt.services.fetch.once({ mailbox: 'gread' });
    expect(first).toMatchObject({ reached: true, fetched: 2, created: 1, appended: 1, errored: 0 });
    expect(onServer('gread')).toEqual([
      { id: '<gr-1@graph.test>', read: true },
      { id: '<gr-2@graph.test>', read: true },
    ]);
    const log = (await rt.services.log.list({ mailbox: 'gread' })).items;
    expect(log).toHaveLength(2);
    expect(log.every((e) => e.acknowledged && e.serverIdentity.startsWith('graph;'))).toBe(true);
    const root = log.find((e) => e.messageId === 'gr-1@graph.test')!;
    const detail = await rt.services.requests.show(root.requestId!);
    expect(detail.subject).toBe('VPN down');
    expect(detail.conversations.map((c) => c.messageId)).toEqual(['gr-2@graph.test']);

    const [second] = await rt.services.fetch.once({ mailbox: 'gread' });
    expect(second).toMatchObject({ reached: true, fetched: 0, created: 0 });
  });

  it('delete: mails become requests and leave the inbox', async () => {
    await rt.services.mailboxes.add({ ...common('gdel'), afterFetch: 'delete' });
    await graph.deliver('gdel@graph.test', [
      buildMail({ messageId: 'gd-1@graph.test', subject: 'Laptop broken' }),
      buildMail({ messageId: 'gd-2@graph.test', subject: 'Phone broken' }),
    ]);
    const [first] = await rt.services.fetch.once({ mailbox: 'gdel' });
    expect(first).toMatchObject({ reached: true, fetched: 2, created: 2, errored: 0 });
    expect(onServer('gdel')).toEqual([]);
  });

  it('mailbox test (sample) describes the oldest mail and changes nothing', async () => {
    await rt.services.mailboxes.add(common('gsample'));
    await graph.deliver('gsample@graph.test', [
      buildMail({ messageId: 'gs-1@graph.test', from: 'Bob <bob@example.test>', subject: 'Sample me' }),
    ]);
    const result = await rt.services.mailboxes.test('gsample');
    expect(result.sample).toMatchObject({ from: 'Bob <bob@example.test>', subject: 'Sample me' });
    expect(onServer('gsample')).toEqual([{ id: '<gs-1@graph.test>', read: false }]);
  });

  it('a 429 with Retry-After: 2 in the middle of the listing delays the round and completes without loss', async () => {
    await rt.services.mailboxes.add({ ...common('gthrottle'), afterFetch: 'delete' });
    const raws = Array.from({ length: 70 }, (_, i) =>
      buildMail({ messageId: `gt-${i}@graph.test`, subject: `Throttled ${i}` }),
    );
    await graph.deliver('gthrottle@graph.test', raws);
    // the second page of the listing (mails 51–70) is throttled once
    graph.inject({
      match: (r) => r.method === 'GET' && r.path.endsWith('/messages') && r.query.has('$skip'),
      fault: { kind: 'status', status: 429, retryAfter: 2 },
    });
    const started = performance.now();
    const [round] = await rt.services.fetch.once({ mailbox: 'gthrottle' });
    const elapsed = performance.now() - started;
    // the runtime's connector sleeps for real (no clock seam in the runtime); the injected-sleep version of
    // this case is in graph-connector.test.ts
    expect(elapsed).toBeGreaterThanOrEqual(1_950);
    expect(round).toMatchObject({ reached: true, fetched: 70, created: 70, errored: 0 });
    expect(onServer('gthrottle')).toEqual([]);
    const log = (await rt.services.log.list({ mailbox: 'gthrottle', limit: 500 })).items;
    expect(new Set(log.map((e) => e.messageId)).size).toBe(70);
  });

  it('an update without accessToken keeps the sealed one; an update with a new one replaces it', async () => {
    const { accessToken: _kept, ...withoutToken } = common('gupdate');
    await rt.services.mailboxes.add({ ...withoutToken, accessToken: 'stale-token-0123456789' });
    expect((await rt.services.mailboxes.test('gupdate').catch((e: unknown) => e)) as object).toMatchObject({
      code: 'AUTH_FAILED',
    });
    await rt.services.mailboxes.update('gupdate', { ...withoutToken, accessToken: TOKEN });
    await rt.services.mailboxes.update('gupdate', { ...withoutToken, afterFetch: 'delete' });
    const view = await rt.services.mailboxes.get('gupdate');
    expect(view).toMatchObject({ afterFetch: 'delete', passwordSet: true });
    expect((await rt.services.mailboxes.test('gupdate')).ok).toBe(true);
  });

  it('a wrong token → AUTH_FAILED for the round; nothing taken in, nothing changed', async () => {
    await rt.services.mailboxes.add({ ...common('gauth'), accessToken: 'not-the-token-at-all' });
    await graph.deliver('gauth@graph.test', [buildMail({ messageId: 'ga-1@graph.test' })]);
    const [round] = await rt.services.fetch.once({ mailbox: 'gauth' });
    expect(round).toMatchObject({ reached: false, fetched: 0 });
    expect(round!.error?.code).toBe('AUTH_FAILED');
    expect(JSON.stringify(round)).not.toContain('not-the-token-at-all');
    expect(onServer('gauth')).toEqual([{ id: '<ga-1@graph.test>', read: false }]);
    const err = await rt.services.mailboxes.test('gauth').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'AUTH_FAILED' });
  });
});
