import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import { nowIso, openStore, type Store } from '../src/store/db.js';
import { ENGINES, freshConfig } from './support/engines.js';

/**
 * `mailbox remove` of a mailbox with history. The broken mailboxes an admin wants gone are exactly those with
 * rows everywhere (notifications about its failures, error mails, requests); removing one used to fail with a
 * foreign key error, or would have lost the requests. Every table that references mailboxes.id gets a row here,
 * and the test checks against the database's own catalog that no such table was forgotten.
 */

/** Each table with a foreign key to mailboxes.id, and what removal does with its rows. */
const KEPT = [
  'requests',
  'conversations',
  'intake_log',
  'dropped_attachments',
  'error_mails',
  'notifications',
] as const;

const mailbox = {
  name: 'support',
  protocol: 'imap',
  server: '127.0.0.1',
  port: 1,
  starttls: false,
  username: 'helpdesk',
  password: 'Correct-Horse-Battery-9',
  emailAddress: 'help@example.com',
};

/** The tables whose columns reference mailboxes(id), as the engine itself knows them. */
async function tablesReferencingMailboxes(store: Store): Promise<string[]> {
  if (store.engine === 'postgres') {
    const r = await sql<{ table_name: string }>`
      select distinct tc.table_name from information_schema.table_constraints tc
      join information_schema.constraint_column_usage cu on cu.constraint_name = tc.constraint_name
      where tc.constraint_type = 'FOREIGN KEY' and cu.table_name = 'mailboxes'`.execute(store.db);
    return r.rows.map((x) => x.table_name).sort();
  }
  const tables = await sql<{
    name: string;
  }>`select name from sqlite_master where type = 'table' and name not like 'sqlite_%'`.execute(store.db);
  const out: string[] = [];
  for (const t of tables.rows) {
    const fks = await sql<{ table: string }>`select * from pragma_foreign_key_list(${t.name})`.execute(
      store.db,
    );
    if (fks.rows.some((f) => f.table === 'mailboxes')) out.push(t.name);
  }
  return out.sort();
}

/** One row of every kind that points at the mailbox: history, tokens, a pending consent. */
async function fillHistory(store: Store, mailboxId: number): Promise<{ requestId: number; logId: number }> {
  const db = store.db;
  const now = nowIso();
  const portal = await db.selectFrom('portals').select('id').executeTakeFirstOrThrow();
  const request = await db
    .insertInto('requests')
    .values({
      portal_id: portal.id,
      mailbox_id: mailboxId,
      subject: 'Printer on fire',
      requester_address: 'ann@example.com',
      requester_name: 'Ann',
      to_addresses: '[]',
      cc_addresses: '[]',
      message_id: 'a@example.com',
      text_body: 'help',
      html_body: null,
      mail_date: now,
      status: 'open',
      created_at: now,
      updated_at: now,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  const conv = await db
    .insertInto('conversations')
    .values({
      request_id: request.id,
      mailbox_id: mailboxId,
      from_address: 'ann@example.com',
      from_name: 'Ann',
      to_addresses: '[]',
      cc_addresses: '[]',
      subject: 'Re: Printer on fire',
      message_id: 'b@example.com',
      text_body: 'still',
      html_body: null,
      mail_date: now,
      created_at: now,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  const log = await db
    .insertInto('intake_log')
    .values({
      mailbox_id: mailboxId,
      server_identity: 'INBOX;1;1',
      message_id: 'a@example.com',
      outcome: 'created',
      request_id: request.id,
      reasons: '["new request"]',
      subject: 'Printer on fire',
      from_address: 'ann@example.com',
      size: 100,
      acknowledged: 1,
      created_at: now,
      updated_at: now,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  await db
    .insertInto('dropped_attachments')
    .values({
      request_id: request.id,
      conversation_id: conv.id,
      mailbox_id: mailboxId,
      server_identity: 'INBOX;1;2',
      filename: 'x.exe',
      content_type: 'application/octet-stream',
      size: 3,
      sha256: 'f'.repeat(64),
      content_id: null,
      disposition: 'attachment',
      code: 'EXTENSION_RESTRICTED',
      message: 'restricted',
      detail: '.exe',
      created_at: now,
    })
    .execute();
  await db
    .insertInto('error_mails')
    .values({
      mailbox_id: mailboxId,
      server_identity: 'INBOX;1;3',
      error_code: 'PARSE_FAILED',
      location: 'server-folder',
      folder: 'Mailintake Errors',
      report_blob: 'e'.repeat(64),
      raw_blob: null,
      status: 'in-error-folder',
      created_at: now,
    })
    .execute();
  await db
    .insertInto('notifications')
    .values({
      portal_id: portal.id,
      mailbox_id: mailboxId,
      event: 'connection-failure',
      title: 'support cannot be reached',
      body: 'CONNECT_FAILED',
      created_at: now,
    })
    .execute();
  const owner = `mailbox:${mailboxId}`;
  await db
    .insertInto('oauth_tokens')
    .values({
      owner,
      binding: '{}',
      flow: 'authorization_code',
      sealed: 'x',
      access_expires_at: null,
      scope: null,
      account: null,
      status: 'authorized',
      obtained_at: now,
      last_refresh_at: null,
      last_error_code: null,
      last_error_message: null,
      refresh_lock_owner: null,
      refresh_lock_until: null,
      updated_at: now,
    })
    .execute();
  await db
    .insertInto('oauth_pending')
    .values({
      state: 'state-1',
      owner,
      binding: '{}',
      sealed: 'x',
      redirect_url: 'http://127.0.0.1/oauth/callback',
      started_by: 'test',
      created_at: now,
      expires_at: now,
    })
    .execute();
  // an expired lease, as a crashed fetch leaves it: no reason to refuse the removal
  await db
    .updateTable('mailboxes')
    .set({ lease_owner: 'gone-host:1', lease_until: new Date(Date.now() - 60_000).toISOString() })
    .where('id', '=', mailboxId)
    .execute();
  return { requestId: request.id, logId: log.id };
}

async function counts(store: Store, mailboxId: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of KEPT) {
    const r = await store.db
      .selectFrom(t)
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .where('mailbox_id', '=', mailboxId)
      .executeTakeFirstOrThrow();
    out[t] = Number(r.n);
  }
  return out;
}

describe.each(ENGINES)('mailbox remove (%s)', (engine) => {
  let rt: Runtime | undefined;
  let store: Store | undefined;
  let cleanup: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await rt?.close();
    await store?.close();
    await cleanup?.();
    rt = store = cleanup = undefined;
  });

  async function setup() {
    const fresh = await freshConfig(engine);
    cleanup = fresh.cleanup;
    rt = await openRuntime(fresh.config);
    store = await openStore({ databaseUrl: fresh.config.databaseUrl, dataDir: fresh.config.dataDir });
    const view = await rt.services.mailboxes.add(mailbox);
    return { rt, store, id: view.id };
  }

  it('removes a mailbox with a row in every table that references it, keeping all its history', async () => {
    const { rt, store, id } = await setup();
    expect(await tablesReferencingMailboxes(store)).toEqual([...KEPT].sort());
    const { requestId, logId } = await fillHistory(store, id);
    const before = await counts(store, id);
    for (const t of KEPT) expect(before[t], t).toBe(1);

    await rt.services.mailboxes.remove('support');

    // gone for the admin and the scheduler
    expect(await rt.services.mailboxes.list()).toEqual([]);
    await expect(rt.services.mailboxes.get('support')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    // every history row is still there, still pointing at the same id
    expect(await counts(store, id)).toEqual(before);
    const keptAs = `support (removed #${id})`;
    const request = await rt.services.requests.show(requestId);
    expect(request.mailbox).toBe(keptAs);
    expect(request.conversations[0]?.mailbox).toBe(keptAs);
    expect(request.droppedAttachments.length + request.conversations[0]!.droppedAttachments.length).toBe(1);
    const log = await rt.services.log.list({ mailbox: keptAs });
    expect(log.items.map((e) => e.id)).toEqual([logId]);
    const notes = await rt.services.notifications.list({});
    expect(notes.items.map((n) => n.mailbox)).toEqual([keptAs]);
    const errors = await rt.services.errorMails.list({ mailbox: keptAs });
    expect(errors.total).toBe(1);
    // the secrets are the one thing not kept: tokens, the pending consent, the sealed password
    expect(
      await store.db
        .selectFrom('oauth_tokens')
        .select('owner')
        .where('owner', '=', `mailbox:${id}`)
        .execute(),
    ).toEqual([]);
    expect(
      await store.db
        .selectFrom('oauth_pending')
        .select('owner')
        .where('owner', '=', `mailbox:${id}`)
        .execute(),
    ).toEqual([]);
    const tomb = await store.db
      .selectFrom('mailboxes')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    expect(tomb).toMatchObject({ name: keptAs, enabled: 0, disabled_reason: 'removed', lease_owner: null });
    expect(tomb.removed_at).not.toBeNull();
    expect(tomb.secrets).not.toContain(mailbox.password);
    const entry = (await rt.services.systemLog.list({ category: 'settings-changed' })).items[0];
    expect(entry?.details).toMatchObject({ mailbox: 'support', change: 'removed', keptAs });

    // filtering by the old name says where its history went
    await expect(rt.services.log.list({ mailbox: 'support' })).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: `no mailbox named "support"; it was removed, its history is under "${keptAs}"`,
    });
    // the name is free again, and the new mailbox starts with a clean intake log of its own
    const again = await rt.services.mailboxes.add(mailbox);
    expect(again.id).not.toBe(id);
    expect((await rt.services.log.list({ mailbox: 'support' })).total).toBe(0);
  });

  // The class, one table at a time: a mailbox whose only history is in that one table (the reported case was
  // notifications alone) is removed, and that history kept.
  it.each(KEPT)('removes a mailbox whose only history is in %s', async (only) => {
    const { rt, store, id } = await setup();
    await fillHistory(store, id);
    for (const t of KEPT) {
      if (t === only) continue;
      if (t === 'requests' || t === 'conversations' || t === 'notifications') {
        await store.db.updateTable(t).set({ mailbox_id: null }).where('mailbox_id', '=', id).execute();
      } else {
        await store.db.deleteFrom(t).where('mailbox_id', '=', id).execute();
      }
    }
    const before = await counts(store, id);
    expect(Object.entries(before).filter(([, n]) => n > 0)).toEqual([[only, 1]]);
    await rt.services.mailboxes.remove('support');
    expect(await counts(store, id)).toEqual(before);
    expect(await rt.services.mailboxes.list()).toEqual([]);
  });

  it('two admins removing it at once: one removes it, the other is told it is gone (not that it is busy)', async () => {
    const { rt } = await setup();
    const results = await Promise.allSettled([
      rt.services.mailboxes.remove('support'),
      rt.services.mailboxes.remove('support'),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(refused.reason).toMatchObject({ code: 'NOT_FOUND' });
  });

  it('refuses while a round holds the lease, changing nothing', async () => {
    const { rt, store, id } = await setup();
    await store.db
      .updateTable('mailboxes')
      .set({ lease_owner: 'other-host:1', lease_until: new Date(Date.now() + 600_000).toISOString() })
      .where('id', '=', id)
      .execute();
    await expect(rt.services.mailboxes.remove('support')).rejects.toMatchObject({ code: 'FETCH_RUNNING' });
    expect((await rt.services.mailboxes.get('support')).enabled).toBe(true);
  });
});
