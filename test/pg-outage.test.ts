import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import SQLite from 'better-sqlite3';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import { loadConfig } from '../src/kernel/env.js';
import { isMailintakeError, type MailintakeError } from '../src/kernel/errors.js';
import { createLogger } from '../src/kernel/logger.js';
import { loadSecretBox } from '../src/kernel/secret-box.js';
import { OutboxSender } from '../src/notify/outbox.js';
import { NotificationRules } from '../src/notify/rules.js';
import { SmtpSettings } from '../src/notify/smtp-settings.js';
import { StoreNotifier } from '../src/notify/store-notifier.js';
import { openStore, type Store } from '../src/store/db.js';
import { withTransaction } from '../src/store/tx.js';
import { conditions } from './kit/conditions.js';
import { buildMail } from './kit/mails.js';
import { NO_SENDER_LIMIT } from './kit/sender-limit.js';
import { cliRunner } from './support/cli.js';
import { deliverMaildir, listInbox } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';
import { type OwnPostgres, startOwnPostgres } from './support/own-postgres.js';
import { type SmtpTestServer, startSmtpServer } from './support/smtp.js';

/** What a failed store call rejected with (the test fails when it did not reject). */
async function failure(p: Promise<unknown>): Promise<MailintakeError> {
  try {
    await p;
  } catch (err) {
    if (isMailintakeError(err)) return err;
    throw new Error(`expected a coded error, got ${String(err)}`, { cause: err });
  }
  throw new Error('expected the call to fail');
}

const one = (store: Store) => sql<{ n: number }>`select 1 as n`.execute(store.db).then((r) => r.rows[0]?.n);

/** A store whose log lines the test can wait on (a dropped connection is reported through it). */
function recordingLogger() {
  const lines: { level: string; msg: string; [k: string]: unknown }[] = [];
  const { until, recheck } = conditions();
  const logger = createLogger('debug', (line) => {
    lines.push(JSON.parse(line));
    recheck();
  });
  return { lines, until, logger };
}

/**
 * The ways a PostgreSQL connection dies under a running process, each on a cluster of the test's own: terminated
 * while idle in the pool, while checked out in a transaction between two statements, during a statement;
 * the whole server restarted or stopped. Each must end as a retryable STORE_FAILED (or nothing at all for an
 * idle connection), never as an 'error' event nobody listens to (which Node throws, ending the process: vitest
 * reports it as an unhandled error and fails the run), and the same store must work once the server is back.
 */
describe('PostgreSQL connections dropped under the store (own cluster)', () => {
  let cluster: OwnPostgres;
  let store: Store;
  let dataDir: string;
  const log = recordingLogger();
  const lost = () =>
    log.lines.filter((l) => l.msg === 'database connection lost; it is replaced on next use');

  beforeAll(async () => {
    cluster = await startOwnPostgres();
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailintake-pg-outage-'));
    const url = await cluster.createDatabase('outage_store');
    store = await openStore({ databaseUrl: url, dataDir, logger: log.logger });
  });
  afterAll(async () => {
    await store?.close().catch(() => undefined);
    await cluster?.destroy();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('idle pool connections terminated: reported, replaced, the next queries work', async () => {
    // several connections in the pool at once, then all idle
    await Promise.all(Array.from({ length: 5 }, () => sql`select pg_sleep(0.05)`.execute(store.db)));
    const before = lost().length;
    const killed = await cluster.terminateBackends('outage_store');
    expect(killed).toBeGreaterThanOrEqual(2);
    await log.until(() => lost().length - before >= killed);
    expect(
      lost()
        .slice(before)
        .every((l) => l.where === 'idle connection' && l.code === 'STORE_FAILED'),
    ).toBe(true);
    expect(await Promise.all(Array.from({ length: 5 }, () => one(store)))).toEqual([1, 1, 1, 1, 1]);
  });

  it('a connection terminated inside a transaction, between two statements: STORE_FAILED, rolled back', async () => {
    await sql`create table if not exists t (v int)`.execute(store.db);
    const before = lost().length;
    const err = await failure(
      withTransaction(store, async (tx) => {
        await sql`insert into t values (1)`.execute(tx);
        const killed = await cluster.terminateBackends('outage_store');
        // the checked-out client hears of it while no query runs: an 'error' event on the client itself; the
        // idle ones through the pool (all waited for, so that the query after this test meets none of them)
        await log.until(() => lost().length - before >= killed);
        expect(
          lost()
            .slice(before)
            .some((l) => l.where === 'connection in use'),
        ).toBe(true);
        await sql`insert into t values (2)`.execute(tx);
      }),
    );
    expect(err.code).toBe('STORE_FAILED');
    expect(err.retryable).toBe(true);
    const rows = await sql<{ v: number }>`select v from t`.execute(store.db);
    expect(rows.rows).toEqual([]);
  });

  it('a connection terminated during a statement: STORE_FAILED naming 57P01', async () => {
    const running = failure(sql`select pg_sleep(60)`.execute(store.db));
    // wait until the statement runs on the server, then terminate it
    await waitForActivity(cluster, 'pg_sleep(60)');
    expect(await cluster.terminateBackends('outage_store', 'pg_sleep(60)')).toBe(1);
    const err = await running;
    expect(err.code).toBe('STORE_FAILED');
    expect(err.retryable).toBe(true);
    expect(err.details.driverCode).toBe('57P01');
    expect(await one(store)).toBe(1);
  });

  it('the server restarted (pg_ctl restart -m fast): the same store works afterwards', async () => {
    await Promise.all(Array.from({ length: 3 }, () => one(store)));
    await cluster.restart();
    // pg may still hand out a connection whose end it has not read yet: that call fails coded, never uncoded
    const first = await one(store).catch((e: unknown) => e);
    if (first !== 1) expect((first as MailintakeError).code).toBe('STORE_FAILED');
    expect(await one(store)).toBe(1);
  });

  it('the server stopped: queries and transactions fail with retryable STORE_FAILED, and work once it is back', async () => {
    await cluster.stop();
    try {
      const query = await failure(one(store));
      expect([query.code, query.retryable, query.details.driverCode]).toEqual([
        'STORE_FAILED',
        true,
        'ECONNREFUSED',
      ]);
      const tx = await failure(withTransaction(store, async (t) => sql`select 1`.execute(t)));
      expect([tx.code, tx.retryable]).toEqual(['STORE_FAILED', true]);
      // a second store opened now (serve starting while the database is down) fails coded as well
      const opening = await failure(
        openStore({ databaseUrl: cluster.adminUrl, dataDir, logger: log.logger }),
      );
      expect([opening.code, opening.retryable]).toEqual(['STORE_FAILED', true]);
    } finally {
      await cluster.start();
    }
    expect(await one(store)).toBe(1);
  });

  it('a statement that is wrong is not an outage: a unique violation stays the driver error it is', async () => {
    await sql`create table if not exists u (v int primary key)`.execute(store.db);
    await sql`insert into u values (1)`.execute(store.db);
    const err = await sql`insert into u values (1)`.execute(store.db).catch((e: unknown) => e);
    expect(isMailintakeError(err)).toBe(false);
    expect((err as { code?: string }).code).toBe('23505');
  });
});

async function waitForActivity(cluster: OwnPostgres, text: string): Promise<void> {
  const c = new pg.Client({ connectionString: cluster.adminUrl });
  c.on('error', () => undefined);
  await c.connect();
  try {
    for (;;) {
      const { rows } = await c.query(
        'select 1 from pg_stat_activity where query like $1 and pid <> pg_backend_pid()',
        [`%${text}%`],
      );
      if (rows.length > 0) return;
      await new Promise((r) => setImmediate(r));
    }
  } finally {
    await c.end();
  }
}

/**
 * The embedded database's failures the same way: real SQLite result codes from a real file, coded as a
 * retryable STORE_FAILED. SQLITE_FULL from a page limit (the disk-full code without filling a disk); SQLITE_BUSY
 * from a second connection holding the write lock past the busy timeout.
 */
describe('SQLite failures under the store', () => {
  let dataDir: string;
  let store: Store;
  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailintake-sqlite-fail-'));
    store = await openStore({ dataDir });
    await sql`create table big (v text)`.execute(store.db);
  });
  afterAll(async () => {
    await store?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('SQLITE_FULL: STORE_FAILED, retryable, naming the code; the store works once there is room', async () => {
    const { rows } = await sql<{ page_count: number }>`pragma page_count`.execute(store.db);
    await sql.raw(`pragma max_page_count = ${rows[0]!.page_count + 1}`).execute(store.db);
    const err = await failure(
      withTransaction(store, async (tx) => {
        for (let i = 0; i < 100; i++) await sql`insert into big values (${'x'.repeat(10_000)})`.execute(tx);
      }),
    );
    expect([err.code, err.retryable, err.details.driverCode]).toEqual(['STORE_FAILED', true, 'SQLITE_FULL']);
    await sql.raw('pragma max_page_count = 1073741823').execute(store.db);
    expect(await one(store)).toBe(1);
  });

  it('SQLITE_BUSY: another writer holds the lock past the busy timeout', async () => {
    const other = new SQLite(path.join(dataDir, 'mailintake.sqlite'));
    try {
      other.exec('begin immediate');
      await sql`pragma busy_timeout = 50`.execute(store.db);
      const err = await failure(
        withTransaction(store, async (tx) => sql`insert into big values ('y')`.execute(tx)),
      );
      expect([err.code, err.retryable, err.details.driverCode]).toEqual([
        'STORE_FAILED',
        true,
        'SQLITE_BUSY',
      ]);
      other.exec('rollback');
      expect(await one(store)).toBe(1);
    } finally {
      other.close();
      await sql`pragma busy_timeout = 10000`.execute(store.db);
    }
  });
});

// ---- serve, spawned, through the outages ------------------------------------------------------------------------

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = path.join(repo, 'bin', 'mailintake.js');

interface LogLine {
  msg?: string;
  level?: string;
  [k: string]: unknown;
}

/**
 * `mailintake serve` as a child process with its JSON log lines (stderr, debug level) collected. `until` waits
 * for a condition over the lines so far and fails at once when the process ends first (a crash is the bug).
 */
function spawnServe(env: Record<string, string>) {
  const child = spawn(process.execPath, [bin, 'serve', '--port', '0', '--json'], {
    env: { ...process.env, ...env, MAILINTAKE_LOG_LEVEL: 'debug' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: LogLine[] = [];
  const text: string[] = [];
  const { until, recheck } = conditions();
  let exited: { code: number | null; signal: string | null } | null = null;
  let buffer = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    buffer += chunk;
    for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      text.push(line);
      try {
        lines.push(JSON.parse(line) as LogLine);
      } catch {
        // a plain line (a crash's stack trace would be one)
      }
    }
    recheck();
  });
  let stdout = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    stdout += chunk;
    recheck();
  });
  const ended = new Promise<void>((resolve) =>
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      recheck();
      resolve();
    }),
  );
  return {
    child,
    lines,
    text,
    stdout: () => stdout,
    exited: () => exited,
    ended,
    /** Resolves once `check` holds; rejects when serve exited before. */
    until: async (what: string, check: () => boolean) => {
      await until(() => check() || exited !== null);
      if (!check()) {
        throw new Error(
          `serve exited (${JSON.stringify(exited)}) before: ${what}\n${text.slice(-30).join('\n')}`,
        );
      }
    },
  };
}

const rounds = (lines: LogLine[], from = 0) => lines.slice(from).filter((l) => l.msg === 'fetch round');

describe('serve through PostgreSQL restarts, terminated backends and a stopped server (own cluster)', () => {
  let cluster: OwnPostgres;
  let dovecot: DovecotServer;
  let dataDir: string;
  let url: string;
  let serve: ReturnType<typeof spawnServe> | undefined;
  const MAILBOX = 'outage';

  const query = async <T extends pg.QueryResultRow>(text: string) => {
    // the test's own connection meets the same restarts: a fresh one per question
    const c = new pg.Client({ connectionString: url });
    c.on('error', () => undefined);
    await c.connect();
    try {
      return (await c.query<T>(text)).rows;
    } finally {
      await c.end().catch(() => undefined);
    }
  };

  beforeAll(async () => {
    cluster = await startOwnPostgres();
    url = await cluster.createDatabase('outage_serve');
    dovecot = await startDovecot({ users: [{ name: MAILBOX, password: `${MAILBOX}-pw` }] });
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailintake-pg-serve-'));
    const rt = await openRuntime(
      loadConfig({ MAILINTAKE_DATA_DIR: dataDir, DATABASE_URL: url, MAILINTAKE_LOG_LEVEL: 'silent' }),
    );
    try {
      await rt.services.portals.update('default', NO_SENDER_LIMIT);
      await rt.services.mailboxes.add({
        name: MAILBOX,
        protocol: 'imaps',
        server: 'localhost',
        port: dovecot.ports.imaps,
        username: MAILBOX,
        password: `${MAILBOX}-pw`,
        emailAddress: `${MAILBOX}@example.test`,
        caFile: dovecot.caFile,
        intervalSeconds: 10,
      });
    } finally {
      await rt.close();
    }
  });
  afterAll(async () => {
    if (serve && serve.exited() === null) {
      serve.child.kill('SIGKILL');
      await serve.ended;
    }
    await dovecot?.stop();
    await cluster?.destroy();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('stays up, loses and duplicates nothing, and takes mail in again in the first round after each outage', async () => {
    const env = { MAILINTAKE_DATA_DIR: dataDir, DATABASE_URL: url };
    serve = spawnServe(env);
    const s = serve;
    await s.until('listening', () => s.stdout().includes('"listening"'));
    const subjects: string[] = [];
    const deliver = async (tag: string, n: number) => {
      const mails = Array.from({ length: n }, (_, i) => {
        subjects.push(`${tag} ${i}`);
        return buildMail({ subject: `${tag} ${i}`, messageId: `${tag}-${i}@outage.test` });
      });
      await deliverMaildir(dovecot, MAILBOX, mails);
    };
    const prepared = (from: number) => s.lines.slice(from).some((l) => l.msg === 'mail prepared');
    /** The first round after `from` that reached the mailbox and had no error: the mail flows again. */
    const goodRound = (from: number) =>
      rounds(s.lines, from).find((r) => r.error === null && r.reached === true);

    // 0. a normal round first
    await deliver('before', 10);
    await s.until('the first mails taken in', () => rounds(s.lines).some((r) => Number(r.created) > 0));

    // 1. restart the cluster while a round is between "prepared" and its commit
    let mark = s.lines.length;
    await deliver('restart', 20);
    await s.until('a round preparing mail', () => prepared(mark));
    await cluster.restart();
    mark = s.lines.length;
    await s.until('a good round after the restart', () => goodRound(mark) !== undefined);

    // 2. terminate every backend of the database while a round is in flight
    mark = s.lines.length;
    await deliver('terminate', 20);
    await s.until('a round preparing mail', () => prepared(mark));
    await cluster.terminateBackends('outage_serve');
    mark = s.lines.length;
    await s.until('a good round after the terminations', () => goodRound(mark) !== undefined);

    // 3. stop the server outright; mail arrives while it is down; rounds fail coded; then it comes back
    await cluster.stop();
    mark = s.lines.length;
    await deliver('down', 10);
    await s.until('a round failing with STORE_FAILED while the database is down', () =>
      rounds(s.lines, mark).some((r) => (r.error as { code?: string } | null)?.code === 'STORE_FAILED'),
    );
    const failedRound = rounds(s.lines, mark).find((r) => r.error !== null)!;
    expect((failedRound.error as { code: string }).code).toBe('STORE_FAILED');
    await cluster.start();
    mark = s.lines.length;
    await s.until('a good round after the database came back', () => goodRound(mark) !== undefined);

    // Everything delivered is a request exactly once: wait for a good round that found nothing new (mail is
    // acknowledged, \Seen, once its effect committed)
    mark = s.lines.length;
    await s.until('a round that finds nothing left to take in', () =>
      rounds(s.lines, mark).some((r) => r.error === null && r.fetched === 0 && r.reacknowledged === 0),
    );
    expect(s.exited()).toBeNull();
    const requests = await query<{ subject: string; n: string }>(
      'select subject, count(*) as n from requests group by subject order by subject',
    );
    expect(requests.map((r) => [r.subject, Number(r.n)])).toEqual(
      [...subjects].sort().map((subject) => [subject, 1]),
    );
    const inbox = await listInbox(dovecot, MAILBOX);
    expect(inbox.length).toBe(subjects.length);
    expect(inbox.filter((m) => !m.flags.includes('\\Seen'))).toEqual([]);
    // nothing of it reached the process as an uncaught error
    expect(s.text.filter((t) => /Uncaught|unhandled|ERR_UNHANDLED/i.test(t))).toEqual([]);
    // the outage was said, coded, and its end too
    expect(s.lines.some((l) => l.msg === 'database connection lost; it is replaced on next use')).toBe(true);

    s.child.kill('SIGTERM');
    await s.ended;
    expect(s.exited()).toEqual({ code: 0, signal: null });
  });

  it('started while the database is down, serve waits, says so, and comes up once it is back', async () => {
    await cluster.stop();
    // a one-off command does not wait: the admin at the terminal gets the coded reason at once
    const cli = cliRunner(() => ({ MAILINTAKE_DATA_DIR: dataDir, DATABASE_URL: url }), []);
    const listed = await cli(['mailbox', 'list']);
    expect(listed.code).toBe(1);
    expect(listed.stderr).toMatch(/^error STORE_FAILED: the database is unavailable \(ECONNREFUSED\)/);
    const s = spawnServe({ MAILINTAKE_DATA_DIR: dataDir, DATABASE_URL: url });
    serve = s;
    try {
      await s.until('a "waiting for the database" line', () =>
        s.lines.some((l) => l.msg === 'waiting for the database' && l.code === 'STORE_FAILED'),
      );
    } finally {
      await cluster.start();
    }
    await s.until('listening', () => s.stdout().includes('"listening"'));
    const mark = 0;
    await s.until('a good round', () =>
      rounds(s.lines, mark).some((r) => r.error === null && r.reached === true),
    );
    s.child.kill('SIGTERM');
    await s.ended;
    expect(s.exited()).toEqual({ code: 0, signal: null });
  });
});

// ---- the outbox: a sent mail whose note fails is not sent again ------------------------------------------------

/**
 * The SMTP server took the notification mail, then the database refused to mark it sent (a connection that
 * dropped right then, or a full disk). That is not a failed send: counted as one, the mail was scheduled for a
 * retry and mailed a second time. Here the refusal is a real one from the database, deterministic: a trigger
 * refuses exactly the update that sets sent_at, on both engines.
 */
describe.each(ENGINES)('outbox: marking a sent mail fails, on %s', (engine) => {
  let fresh: Awaited<ReturnType<typeof freshConfig>>;
  let store: Store;
  let smtpServer: SmtpTestServer;
  beforeAll(async () => {
    fresh = await freshConfig(engine);
    store = await openStore({ databaseUrl: fresh.config.databaseUrl, dataDir: fresh.config.dataDir });
    smtpServer = await startSmtpServer({ tls: 'none' });
  });
  afterAll(async () => {
    await store?.close();
    await smtpServer?.close();
    await fresh?.cleanup();
  });

  it('the mail is sent once, stays claimed, and no send error is recorded', async () => {
    const box = loadSecretBox({ secretKey: undefined, dataDir: fresh.config.dataDir });
    const smtp = new SmtpSettings(store, box);
    await smtp.set({
      host: '127.0.0.1',
      port: smtpServer.port,
      secure: false,
      starttls: false,
      from: 'alerts@example.test',
    });
    await new NotificationRules(store).set({
      event: 'connection-failure',
      recipients: ['tech@example.test'],
    });
    await withTransaction(store, (tx) =>
      new StoreNotifier().record(tx, {
        event: 'connection-failure',
        portalId: null,
        mailboxId: null,
        title: 'noted once',
        body: 'body',
      }),
    );
    if (engine === 'postgres') {
      await sql
        .raw(
          `create function refuse_sent() returns trigger language plpgsql as $$
             begin if new.sent_at is not null then raise exception 'refused by the test'; end if; return new; end $$;
           create trigger refuse_sent before update on mail_outbox for each row execute function refuse_sent();`,
        )
        .execute(store.db);
    } else {
      await sql
        .raw(
          `create trigger refuse_sent before update of sent_at on mail_outbox when new.sent_at is not null
             begin select raise(abort, 'refused by the test'); end;`,
        )
        .execute(store.db);
    }
    const sender = new OutboxSender({
      store,
      smtp: () => smtp.config(),
      logger: createLogger('silent'),
      // a failed send would be due again at once: a second pass would mail it again
      retryDelayMs: () => 0,
    });
    await sender.drain();
    await smtpServer.waitFor(1);
    await sender.drain();
    await sender.drain();
    expect(smtpServer.mails.map((m) => m.parsed.subject)).toEqual(['noted once']);
    const row = await store.db.selectFrom('mail_outbox').selectAll().executeTakeFirstOrThrow();
    expect([row.attempts, row.last_error, row.failed_at, row.sent_at]).toEqual([1, null, null, null]);
    expect(Date.parse(row.next_attempt_at)).toBeGreaterThan(Date.now());
    await sender.stop();
  });
});
