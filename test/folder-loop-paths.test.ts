import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import { createApi } from '../src/http/app.js';
import { MailintakeError } from '../src/kernel/errors.js';
import { openStore } from '../src/store/db.js';
import { ENGINES, freshConfig } from './support/engines.js';
import { checkResponses } from './support/openapi-check.js';

/**
 * Issue 10 item 6, the ways in: the API's add and update (the CLI calls the same services) refuse a looping
 * folder naming the field; a row stored before the rule existed is refused by the round itself, before it
 * connects, instead of taking its mail in forever.
 */
describe.each(ENGINES)('looping folder settings on every path, on %s', (engine) => {
  let fresh: Awaited<ReturnType<typeof freshConfig>>;
  let rt: Runtime;
  let api: ReturnType<typeof createApi>;
  let key: string;

  beforeAll(async () => {
    fresh = await freshConfig(engine);
    rt = await openRuntime(fresh.config);
    key = (await rt.services.apiKeys.create('loops')).key;
    api = createApi(rt.services);
    checkResponses(api);
  });
  afterAll(async () => {
    await rt?.close();
    await fresh?.cleanup();
  });

  const good = {
    name: 'loopy',
    protocol: 'imaps',
    server: 'localhost',
    port: 1,
    username: 'u',
    password: 'p',
    emailAddress: 'loopy@example.test',
    idle: false,
  };
  const call = (method: string, url: string, body: unknown) =>
    api.request(url, {
      method,
      headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });

  it('add and update through the API name the field; nothing is stored', async () => {
    const added = await call('POST', '/api/v1/mailboxes', {
      ...good,
      afterFetch: 'move',
      moveToFolder: 'inbox',
    });
    expect(added.status).toBe(400);
    const addedBody = (await added.json()) as {
      error: string;
      details: { fields: { field: string; message: string }[] };
    };
    expect(addedBody.error).toBe('INVALID_SETTINGS');
    expect(addedBody.details.fields).toEqual([
      expect.objectContaining({
        field: 'moveToFolder',
        message: expect.stringContaining('is the folder being fetched'),
      }),
    ]);
    expect(await rt.services.mailboxes.list()).toEqual([]);

    expect((await call('POST', '/api/v1/mailboxes', good)).status).toBe(201);
    const updated = await call('PUT', '/api/v1/mailboxes/loopy', {
      ...good,
      moveToErrorFolder: true,
      errorFolder: 'INBOX/',
    });
    expect(updated.status).toBe(400);
    const updatedBody = (await updated.json()) as { details: { fields: { field: string }[] } };
    expect(updatedBody.details.fields.map((f) => f.field)).toEqual(['errorFolder']);
    expect((await rt.services.mailboxes.get('loopy')).moveToErrorFolder).toBe(false);
  });

  it('a looping row saved before the rule is refused by the round, which never connects', async () => {
    const store = await openStore({ databaseUrl: fresh.env.DATABASE_URL, dataDir: fresh.config.dataDir });
    try {
      const row = await store.db
        .selectFrom('mailboxes')
        .select('settings')
        .where('name', '=', 'loopy')
        .executeTakeFirstOrThrow();
      const stored = { ...JSON.parse(row.settings), afterFetch: 'move', moveToFolder: 'INBOX' };
      await store.db
        .updateTable('mailboxes')
        .set({ settings: JSON.stringify(stored) })
        .where('name', '=', 'loopy')
        .execute();
    } finally {
      await store.close();
    }
    const refused = await rt.services.fetch.once({ mailbox: 'loopy' }).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(MailintakeError);
    expect(refused).toMatchObject({
      code: 'INVALID_SETTINGS',
      details: { fields: [{ field: 'moveToFolder' }] },
    });
    // never connected: port 1 would have answered CONNECT_FAILED and been recorded on the mailbox
    expect((await rt.services.mailboxes.get('loopy')).state.lastErrorCode).toBeNull();
  });
});
