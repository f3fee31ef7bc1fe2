import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import type { Connector } from '../src/connectors/connector.js';
import { createApi } from '../src/http/app.js';
import { imapsMailbox } from './kit/mailboxes.js';
import { buildMail } from './kit/mails.js';
import { NO_SENDER_LIMIT } from './kit/sender-limit.js';
import { deliverMaildir, listInbox } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';
import { checkResponses } from './support/openapi-check.js';

/**
 * The reference: "If a mail fetching process is ongoing, the application will prompt to disable mail fetching
 * temporarily. After saving the changes, enable the fetching process manually." Real Dovecot, both engines, the
 * REST API as an admin uses it; the round is held at its first acknowledgement so the edit lands mid-fetch
 * every time (no timing).
 */
describe.each(ENGINES)('editing a mailbox while it is fetched, on %s', (engine) => {
  let dovecot: DovecotServer;
  let rt: Runtime;
  let cleanup: () => Promise<void>;
  let api: ReturnType<typeof createApi>;
  let key: string;
  /** Resolved when the held round reached its first acknowledgement; `release` lets it go on. */
  let held: Promise<void>;
  let release: () => void;

  beforeAll(async () => {
    dovecot = await startDovecot({ users: [{ name: 'busy', password: 'busy-pw' }] });
    const fresh = await freshConfig(engine);
    cleanup = fresh.cleanup;
    let reached!: () => void;
    held = new Promise((r) => {
      reached = r;
    });
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let first = true;
    rt = await openRuntime(fresh.config, {
      wrapConnector: (c: Connector): Connector => ({
        traits: c.traits,
        open: () => c.open(),
        listNew: () => c.listNew(),
        stream: (mail) => c.stream(mail),
        ...(c.fetchMany
          ? { fetchMany: (mails: Parameters<Connector['stream']>[0][]) => c.fetchMany!(mails) }
          : {}),
        acknowledge: async (mails, action) => {
          if (first) {
            first = false;
            reached();
            await gate;
          }
          return c.acknowledge(mails, action);
        },
        moveTo: (mails, folder) => c.moveTo(mails, folder),
        close: () => c.close(),
      }),
    });
    await rt.services.portals.update('default', NO_SENDER_LIMIT);
    key = (await rt.services.apiKeys.create('ops-desk')).key;
    api = createApi(rt.services);
    checkResponses(api);
  });
  afterAll(async () => {
    await rt?.close();
    await dovecot?.stop();
    await cleanup?.();
  });

  const put = (name: string, body: unknown, query = '') =>
    api.request(`/api/v1/mailboxes/${name}${query}`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });

  it('answers 409 FETCH_RUNNING without pause; with pause the round stops, stays stopped, and resumes on enable', async () => {
    const settings = imapsMailbox(dovecot, 'busy', 'busy', { idle: false });
    await rt.services.mailboxes.add(settings);
    await deliverMaildir(
      dovecot,
      'busy',
      Array.from({ length: 300 }, (_, i) =>
        buildMail({ subject: `Mail ${i}`, messageId: `busy-${i}@example.test`, body: `n ${i}` }),
      ),
    );

    const round = rt.services.fetch.once({ mailbox: 'busy' });
    await held;
    expect((await rt.services.mailboxes.get('busy')).state.fetching).toBe(true);

    const refused = await put('busy', { ...settings, intervalSeconds: 120 });
    expect(refused.status).toBe(409);
    expect(await refused.json()).toMatchObject({ error: 'FETCH_RUNNING' });
    expect((await rt.services.mailboxes.get('busy')).intervalSeconds).toBe(60);

    const paused = await put('busy', { ...settings, intervalSeconds: 120 }, '?pauseFetching=true');
    expect(paused.status).toBe(200);
    expect(await paused.json()).toMatchObject({ intervalSeconds: 120, enabled: false, status: 'paused' });

    release();
    const [summary] = await round;
    // the first batch (100 mails) was committed before the edit and is acknowledged; the round stops before the next
    expect(summary).toMatchObject({
      mailbox: 'busy',
      created: 100,
      stopped: 'settings-changed',
      error: null,
    });
    const inbox = await listInbox(dovecot, 'busy');
    expect(inbox.filter((m) => m.flags.includes('\\Seen'))).toHaveLength(100);

    // stays stopped: a round over the enabled mailboxes does not touch it
    expect(await rt.services.fetch.once({})).toEqual([]);
    expect((await rt.services.requests.list({ limit: 1 })).total).toBe(100);

    const log = await rt.services.systemLog.list({ category: 'settings-changed' });
    const entry = log.items.find((e) => e.details.change === 'updated');
    expect(entry).toMatchObject({
      actor: 'api-key:ops-desk',
      details: { mailbox: 'busy', paused: true, fields: [{ field: 'intervalSeconds', from: 60, to: 120 }] },
    });

    await rt.services.mailboxes.setEnabled('busy', true);
    const [rest] = await rt.services.fetch.once({});
    expect(rest).toMatchObject({ mailbox: 'busy', created: 200, stopped: null, error: null });
    const all = await rt.services.requests.list({ limit: 500 });
    expect(all.total).toBe(300);
    expect(new Set(all.items.map((r) => r.subject)).size).toBe(300);
  });

  it('saves at once when no fetch is running, keeps the state, and logs who changed what (secrets only as "changed")', async () => {
    const settings = imapsMailbox(dovecot, 'quiet', 'busy', { idle: false, folder: 'Nothing' });
    await rt.services.mailboxes.add(settings);
    await rt.services.mailboxes.setEnabled('quiet', false);
    const res = await put('quiet', { ...settings, password: 'a-new-secret-pw', starttls: false });
    expect(res.status).toBe(200);
    // `enabled` left out keeps the mailbox as it was (disabled), instead of the default `true`
    expect(await res.json()).toMatchObject({ enabled: false });
    const log = await rt.services.systemLog.list({ category: 'settings-changed' });
    const entry = log.items.find((e) => e.details.mailbox === 'quiet' && e.details.change === 'updated');
    expect(entry?.actor).toBe('api-key:ops-desk');
    expect(entry?.details.fields).toEqual([
      { field: 'password', changed: true },
      { field: 'starttls', from: true, to: false },
    ]);
    expect(JSON.stringify(log)).not.toContain('a-new-secret-pw');
    expect(JSON.stringify(log)).not.toContain('busy-pw');
    expect(log.items.some((e) => e.details.mailbox === 'quiet' && e.details.change === 'added')).toBe(true);
  });
});
