import path from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import { filteredRequests } from '../src/features/requests/work.js';
import { createApi } from '../src/http/app.js';
import { withActor } from '../src/kernel/actor.js';
import { type Engine, nowIso, openStore, type Store } from '../src/store/db.js';
import { migrateTo } from '../src/store/migrations/index.js';
import type { Database } from '../src/store/schema.js';
import { requesterNorm } from '../src/store/search-text.js';
import { cliRunner } from './support/cli.js';
import { ENGINES, freshConfig } from './support/engines.js';
import { checkResponses, type ResponseChecks } from './support/openapi-check.js';

/**
 * Issue 12 §5, the data side: a request's status, assignee and their history (service, API, CLI), and the request
 * list's filters and full-text search on both engines, with hostile search queries that must never error.
 */

// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked by the matchers, not by types
type AnyJson = any;

describe.each(ENGINES)('requests at work, %s', (engine) => {
  let fresh: Awaited<ReturnType<typeof freshConfig>>;
  let rt: Runtime;
  let store: Store;
  let app: ReturnType<typeof createApi>;
  let checks: ResponseChecks;
  let key: string;
  const transcript: string[] = [];
  let cli: ReturnType<typeof cliRunner>;
  const ids: Record<string, number> = {};

  const insert = async (r: {
    portal: number;
    mailbox: number | null;
    subject: string;
    from?: [string, string];
    body?: string;
  }) =>
    (
      await store.db
        .insertInto('requests')
        .values({
          portal_id: r.portal,
          mailbox_id: r.mailbox,
          subject: r.subject,
          requester_address: r.from?.[0] ?? null,
          requester_name: r.from?.[1] ?? null,
          // what intake writes beside the address (a writer of its own, like this, must too)
          requester_norm: requesterNorm(r.from?.[0]),
          to_addresses: '[]',
          cc_addresses: '[]',
          message_id: null,
          text_body: r.body ?? null,
          html_body: null,
          mail_date: null,
          status: 'open',
          created_at: nowIso(),
          updated_at: nowIso(),
        })
        .returning('id')
        .executeTakeFirstOrThrow()
    ).id;

  beforeAll(async () => {
    fresh = await freshConfig(engine);
    rt = await openRuntime(fresh.config);
    store = await openStore({ databaseUrl: fresh.config.databaseUrl, dataDir: fresh.config.dataDir });
    key = (await rt.services.apiKeys.create('work-test')).key;
    app = createApi(rt.services, { logger: { error: () => undefined } });
    checks = checkResponses(app);
    cli = cliRunner(() => fresh.env, transcript);
    const portal = async (name: string) =>
      (
        await store.db
          .insertInto('portals')
          .values({ name, header_threading: 1, created_at: nowIso() })
          .returning('id')
          .executeTakeFirstOrThrow()
      ).id;
    const a = await portal('alpha');
    const b = await portal('beta');
    const mailbox = async (name: string, portalId: number) =>
      (
        await store.db
          .insertInto('mailboxes')
          .values({
            name,
            portal_id: portalId,
            protocol: 'imap',
            enabled: 0,
            settings: '{}',
            secrets: '{}',
            created_at: nowIso(),
            updated_at: nowIso(),
          })
          .returning('id')
          .executeTakeFirstOrThrow()
      ).id;
    const ma = await mailbox('support', a);
    const mb = await mailbox('sales', b);
    ids.printer = await insert({
      portal: a,
      mailbox: ma,
      subject: 'Printer on floor 3 is jammed',
      from: ['Ann.Lee@Example.test', 'Ann Lee'],
      body: 'The paper tray keeps jamming since Monday.',
    });
    ids.vpn = await insert({
      portal: a,
      mailbox: ma,
      subject: 'VPN drops every hour',
      from: ['bob@example.test', 'Bob Stone'],
      body: 'My zeppelin laptop loses the tunnel; the printer works.',
    });
    ids.quote = await insert({
      portal: b,
      mailbox: mb,
      subject: 'Quote for 40 licences',
      from: ['carol@buyer.test', 'Carol Quinn'],
      body: 'Please send a quote. NEAR("x" y) -z * : "',
    });
    ids.nobody = await insert({ portal: b, mailbox: null, subject: 'No sender at all' });
  });

  afterAll(async () => {
    await store?.close();
    await rt?.close();
    await fresh?.cleanup();
  });

  async function call(method: string, url: string, body?: unknown) {
    const headers: Record<string, string> = { Authorization: `Bearer ${key}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await app.request(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, json: (): AnyJson => JSON.parse(text) };
  }
  const listIds = async (q: Record<string, string>) => {
    const res = await call('GET', `/api/v1/requests?${new URLSearchParams(q)}`);
    expect(res.status).toBe(200);
    return (res.json().items as { id: number }[]).map((r) => r.id);
  };

  it('every request starts open and unassigned, in the list and in show', async () => {
    const page = await rt.services.requests.list({});
    expect(page.total).toBe(4);
    for (const r of page.items) expect([r.status, r.assignee]).toEqual(['open', null]);
    const shown = await call('GET', `/api/v1/requests/${ids.printer}`);
    expect(shown.json()).toMatchObject({ status: 'open', assignee: null });
  });

  it('status and assignee through the service, with the actor in the history', async () => {
    const r = await withActor('cli:tester', () =>
      rt.services.requests.setStatus(ids.printer!, 'in-progress'),
    );
    expect(r).toMatchObject({ id: ids.printer, status: 'in-progress' });
    await withActor('cli:tester', () => rt.services.requests.assign(ids.printer!, 'tech@example.test'));
    // no change, no history row
    await rt.services.requests.setStatus(ids.printer!, 'in-progress');
    const h = await rt.services.requests.history(ids.printer!);
    expect(h.map((e) => [e.actor, e.field, e.old, e.new])).toEqual([
      ['cli:tester', 'status', 'open', 'in-progress'],
      ['cli:tester', 'assignee', null, 'tech@example.test'],
    ]);
    await expect(rt.services.requests.setStatus(ids.printer!, 'done')).rejects.toMatchObject({
      code: 'INVALID_SETTINGS',
      details: { fields: [{ field: 'status' }] },
    });
    await expect(rt.services.requests.assign(ids.printer!, 'not an email')).rejects.toMatchObject({
      code: 'INVALID_SETTINGS',
      details: { fields: [{ field: 'assignee' }] },
    });
    await expect(rt.services.requests.history(999999)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('status, assignee and history through the API', async () => {
    const set = await call('PUT', `/api/v1/requests/${ids.vpn}/status`, { status: 'on-hold' });
    expect(set.status).toBe(200);
    expect(set.json()).toMatchObject({ id: ids.vpn, status: 'on-hold' });
    expect((await call('PUT', `/api/v1/requests/${ids.vpn}/status`, { status: 'nope' })).status).toBe(400);
    const assigned = await call('PUT', `/api/v1/requests/${ids.vpn}/assignee`, {
      assignee: 'a@example.test',
    });
    expect(assigned.json()).toMatchObject({ assignee: 'a@example.test' });
    const cleared = await call('PUT', `/api/v1/requests/${ids.vpn}/assignee`, { assignee: null });
    expect(cleared.json()).toMatchObject({ assignee: null });
    expect((await call('PUT', '/api/v1/requests/999999/status', { status: 'closed' })).status).toBe(404);
    const history = await call('GET', `/api/v1/requests/${ids.vpn}/history`);
    expect(history.json().map((e: AnyJson) => [e.actor, e.field, e.old, e.new])).toEqual([
      ['api-key:work-test', 'status', 'open', 'on-hold'],
      ['api-key:work-test', 'assignee', null, 'a@example.test'],
      ['api-key:work-test', 'assignee', 'a@example.test', null],
    ]);
    expect(checks.violations).toEqual([]);
  });

  it('status, assign and history through the CLI', async () => {
    const s = await cli(['requests', 'status', String(ids.quote), 'resolved']);
    expect(s.code).toBe(0);
    expect(s.stdout).toContain(`Request #${ids.quote}: status resolved`);
    const a = await cli(['requests', 'assign', String(ids.quote), 'x@example.test', '--json']);
    expect(JSON.parse(a.stdout)).toMatchObject({ assignee: 'x@example.test' });
    expect((await cli(['requests', 'assign', String(ids.quote), '--none'])).code).toBe(0);
    expect((await cli(['requests', 'assign', String(ids.quote)])).code).not.toBe(0);
    expect((await cli(['requests', 'status', String(ids.quote), 'bogus'])).stderr).toContain('status');
    const h = await cli(['requests', 'history', String(ids.quote)]);
    expect(h.stdout).toMatch(/cli:\S+\s+status\s+open\s+resolved/);
    expect(h.stdout).toMatch(/assignee\s+x@example\.test\s+-/);
    const listed = await cli(['requests', 'list', '--status', 'resolved', '--json']);
    expect(JSON.parse(listed.stdout).items.map((r: AnyJson) => r.id)).toEqual([ids.quote]);
  });

  it('filters: mailbox, status, requester (any case), portal; unknown names are NOT_FOUND', async () => {
    expect(await listIds({ mailbox: 'support' })).toEqual([ids.vpn, ids.printer]);
    expect(await listIds({ status: 'on-hold' })).toEqual([ids.vpn]);
    expect(await listIds({ requester: 'ann.lee@example.TEST' })).toEqual([ids.printer]);
    expect(await listIds({ portal: 'beta' })).toEqual([ids.nobody, ids.quote]);
    expect((await call('GET', '/api/v1/requests?mailbox=nope')).status).toBe(404);
    expect((await call('GET', '/api/v1/requests?status=nope')).status).toBe(400);
    await expect(rt.services.requests.list({ status: 'nope' })).rejects.toMatchObject({
      details: { fields: [{ field: 'status' }] },
    });
  });

  it('search finds words in the subject, the body and the requester, with the portal filter and paging', async () => {
    expect(await listIds({ q: 'jammed' })).toEqual([ids.printer]); // subject
    expect(await listIds({ q: 'zeppelin' })).toEqual([ids.vpn]); // body
    expect(await listIds({ q: 'Quinn' })).toEqual([ids.quote]); // requester name
    expect(await listIds({ q: 'carol@buyer.test' })).toEqual([ids.quote]); // requester address
    expect(await listIds({ q: 'PRINTER' })).toEqual([ids.vpn, ids.printer]); // any case, newest first
    expect(await listIds({ q: 'printer tray' })).toEqual([ids.printer]); // every word
    expect(await listIds({ q: 'printer', portal: 'beta' })).toEqual([]);
    expect(await listIds({ q: 'printer', limit: '1' })).toEqual([ids.vpn]);
    expect(await listIds({ q: 'printer', before: String(ids.vpn) })).toEqual([ids.printer]);
    expect(await listIds({ q: 'printer', status: 'in-progress' })).toEqual([ids.printer]);
    const cliFound = await cli(['requests', 'list', '--search', 'zeppelin', '--json']);
    expect(JSON.parse(cliFound.stdout).items.map((r: AnyJson) => r.id)).toEqual([ids.vpn]);
  });

  it('hostile queries are text, never syntax: none errors, and operators match nothing of their own', async () => {
    for (const q of [
      '"',
      '*',
      'NEAR(',
      '-',
      ':',
      'NEAR("x" y)',
      'a OR b',
      'subject:x',
      '""',
      '(',
      '\u0000',
      '^x',
    ]) {
      const res = await call('GET', `/api/v1/requests?${new URLSearchParams({ q })}`);
      expect(res.status, q).toBe(200);
    }
    // "OR" is a word here, not an operator: no request has both "jammed" and "or" and "zeppelin"
    expect(await listIds({ q: 'jammed OR zeppelin' })).toEqual([]);
    // generated queries: FTS5's and tsquery's special characters, words, controls, any UTF-16 unit
    const special = [
      '"',
      '*',
      '(',
      ')',
      '-',
      ':',
      '^',
      '+',
      ' ',
      'a',
      'N',
      'é',
      '\u0000',
      '{',
      'NEAR',
      'OR',
      'AND',
    ];
    let seed = 12;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    for (let run = 0; run < 200; run++) {
      let q = '';
      const len = rand(30);
      for (let i = 0; i < len; i++) {
        q += run % 2 ? special[rand(special.length)] : String.fromCharCode(rand(0x10000));
      }
      await expect(rt.services.requests.list({ q }), JSON.stringify(q)).resolves.toBeDefined();
    }
  });
});

describe.each(ENGINES)('migrations 0009 and 0010 on existing requests, %s', (engine) => {
  it('makes every status valid, leaves nobody assigned, and indexes the rows already there', async () => {
    const fresh = await freshConfig(engine);
    const db = new Kysely<Database>({
      dialect:
        engine === 'postgres'
          ? new PostgresDialect({ pool: new pg.Pool({ connectionString: fresh.env.DATABASE_URL, max: 2 }) })
          : new SqliteDialect({ database: new SQLite(path.join(fresh.config.dataDir, 'mailintake.sqlite')) }),
    });
    try {
      await migrateTo(db as Kysely<unknown>, engine as Engine, '0007_store_keys');
      const now = '2026-01-01T00:00:00.000Z';
      await sql`insert into portals (name, created_at) values ('p', ${now})`.execute(db);
      await sql`insert into requests (portal_id, subject, requester_address, requester_name, to_addresses,
          cc_addresses, text_body, status, created_at, updated_at)
        values (1, 'Old printer', 'old@example.test', 'Olga Old', '[]', '[]', 'kept before the search existed', 'open', ${now}, ${now}),
          (1, 'Odd', null, null, '[]', '[]', null, 'hand-edited', ${now}, ${now})`.execute(db);
      await migrateTo(db as Kysely<unknown>, engine as Engine, '0010_request_search');
      // 0011 rebuilds the search documents from the same rows (test/request-search.test.ts tests it further)
      await migrateTo(db as Kysely<unknown>, engine as Engine, '0011_request_search_documents');
      const rows = await db
        .selectFrom('requests')
        .select(['id', 'status', 'assignee'])
        .orderBy('id')
        .execute();
      expect(rows).toEqual([
        { id: 1, status: 'open', assignee: null },
        { id: 2, status: 'open', assignee: null },
      ]);
      const store = { db, engine: engine as Engine, close: async () => undefined };
      for (const q of ['printer', 'olga', 'old@example.test', 'existed']) {
        const found = await filteredRequests(store, { q }).rows.execute();
        expect(
          found.map((r) => r.id),
          q,
        ).toEqual([1]);
      }
    } finally {
      await db.destroy();
      await fresh.cleanup();
    }
  });
});
