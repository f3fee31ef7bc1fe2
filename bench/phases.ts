/**
 * Diagnosis helper (not part of `npm run bench`): one fetch round of the product's own fetchMailbox, with the
 * time of each phase measured from outside src/ — connector calls (listNew, fetchMany, stream, acknowledge),
 * SQL statements by kind (better-sqlite3 statements / pg client queries), blob fsyncs — on both engines.
 *   node .bench/bench/phases.js            (BENCH_MAILS, default 2000; add --cpu-prof for a profile)
 */
import { open } from 'node:fs/promises';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { openRuntime } from '../src/app/compose.js';
import { createConnector } from '../src/connectors/factory.js';
import { createMailboxRepo, intakeMailbox, settingsOf } from '../src/features/mailboxes/repo.js';
import { fetchMailbox } from '../src/intake/fetch-mailbox.js';
import { MailboxLease } from '../src/intake/lease.js';
import { silentLogger } from '../src/kernel/logger.js';
import { loadSecretBox } from '../src/kernel/secret-box.js';
import { FileBlobStore } from '../src/store/blobs/blob-store.js';
import { RawPacks } from '../src/store/blobs/raw-packs.js';
import { openStore } from '../src/store/db.js';
import { deliverMaildir } from '../test/support/deliver.js';
import { startDovecot } from '../test/support/dovecot.js';
import { type EngineName, freshConfig } from '../test/support/engines.js';
import { mailMix } from './mix.js';

const MAILS = Number(process.env.BENCH_MAILS ?? 2000);
const now = () => performance.now();
const times = new Map<string, { ms: number; n: number }>();
const add = (k: string, ms: number) => {
  const t = times.get(k) ?? { ms: 0, n: 0 };
  t.ms += ms;
  t.n++;
  times.set(k, t);
};
const sqlKind = (sql: string) => {
  const w = sql.trim().split(/\s+/)[0]!.toLowerCase();
  if (w === 'insert' || w === 'update' || w === 'select') {
    const table = /(?:into|update|from)\s+"?(\w+)"?/i.exec(sql)?.[1] ?? '?';
    return `sql ${w} ${table}`;
  }
  return `sql ${w}`;
};

// better-sqlite3: every statement Kysely runs goes through Statement#all/run/get
{
  const mem = new SQLite(':memory:');
  const proto = Object.getPrototypeOf(mem.prepare('select 1')) as Record<string, unknown>;
  for (const m of ['all', 'run', 'get']) {
    const orig = proto[m] as (...a: unknown[]) => unknown;
    proto[m] = function (this: { source: string }, ...a: unknown[]) {
      const t = now();
      try {
        return orig.apply(this, a);
      } finally {
        add(sqlKind(this.source), now() - t);
      }
    };
  }
  mem.close();
}
// pg: every query is Client#query(text, values) returning a promise
{
  const orig = pg.Client.prototype.query as (...a: unknown[]) => unknown;
  (pg.Client.prototype as unknown as { query: unknown }).query = function (this: unknown, ...a: unknown[]) {
    const t = now();
    const text = typeof a[0] === 'string' ? a[0] : ((a[0] as { text?: string })?.text ?? '?');
    const r = orig.apply(this, a);
    if (r && typeof (r as Promise<unknown>).then === 'function') {
      return (r as Promise<unknown>).finally(() => add(sqlKind(text), now() - t));
    }
    return r;
  };
}
// fsync of blob files and directories (FileHandle#sync)
{
  const fh = await open(process.execPath, 'r');
  const proto = Object.getPrototypeOf(fh) as { sync: (...a: unknown[]) => Promise<void> };
  await fh.close();
  const orig = proto.sync;
  proto.sync = async function (this: unknown, ...a: unknown[]) {
    const t = now();
    try {
      return await orig.apply(this, a);
    } finally {
      add('blob fsync', now() - t);
    }
  };
}

function timed<T extends object>(obj: T, name: string, methods: string[]): T {
  for (const m of methods) {
    const o = obj as Record<string, unknown>;
    const orig = o[m] as ((...a: unknown[]) => Promise<unknown>) | undefined;
    if (!orig) continue;
    o[m] = async (...a: unknown[]) => {
      const t = now();
      try {
        return await orig.apply(obj, a);
      } finally {
        add(`${name}.${m}`, now() - t);
      }
    };
  }
  return obj;
}

const dovecot = await startDovecot({ users: [{ name: 'bench', password: 'bench-pw' }] });
try {
  await deliverMaildir(
    dovecot,
    'bench',
    (function* () {
      for (const m of mailMix(MAILS)) yield m.raw;
    })(),
  );
  for (const engine of ['sqlite', 'postgres'] as EngineName[]) {
    times.clear();
    const fresh = await freshConfig(engine);
    try {
      const rt = await openRuntime(fresh.config);
      await rt.services.mailboxes.add({
        name: 'bench',
        protocol: 'imaps',
        server: '127.0.0.1',
        port: dovecot.ports.imaps,
        username: 'bench',
        password: 'bench-pw',
        emailAddress: 'support@example.test',
        caFile: dovecot.caFile,
      });
      await rt.close();
      const store = await openStore({ databaseUrl: fresh.config.databaseUrl, dataDir: fresh.config.dataDir });
      const box = loadSecretBox({ secretKey: fresh.config.secretKey, dataDir: fresh.config.dataDir });
      const row = await createMailboxRepo(store).row('bench');
      const blobs = timed(new FileBlobStore(path.join(fresh.config.dataDir, 'blobs')), 'blobs', ['put']);
      times.clear();
      const t0 = now();
      const summary = await fetchMailbox(
        {
          store,
          blobs,
          rawPacks: new RawPacks(path.join(fresh.config.dataDir, 'raw')),
          lease: new MailboxLease(store, 120),
          logger: silentLogger,
          connect: (s) =>
            timed(createConnector(s), 'imap', [
              'open',
              'listNew',
              'fetchMany',
              'stream',
              'acknowledge',
              'close',
            ]),
        },
        intakeMailbox(row),
        settingsOf(box, row),
      );
      const total = now() - t0;
      await store.close();
      console.log(
        `\n== ${engine}: ${summary.fetched} mails in ${(total / 1000).toFixed(2)} s = ${((summary.fetched * 1000) / total).toFixed(1)} mails/s (created ${summary.created}, appended ${summary.appended}, errored ${summary.errored})`,
      );
      const rows = [...times.entries()].sort((a, b) => b[1].ms - a[1].ms);
      let sqlTotal = 0;
      for (const [k, v] of rows) {
        if (k.startsWith('sql ')) sqlTotal += v.ms;
        console.log(
          `${k.padEnd(34)} ${String(v.n).padStart(6)} calls ${(v.ms / 1000).toFixed(2).padStart(7)} s ${((100 * v.ms) / total).toFixed(1).padStart(5)} %  ${(v.ms / v.n).toFixed(3)} ms/call`,
        );
      }
      console.log(
        `${'all SQL'.padEnd(34)} ${''.padStart(12)} ${(sqlTotal / 1000).toFixed(2).padStart(7)} s ${((100 * sqlTotal) / total).toFixed(1).padStart(5)} %  ${(sqlTotal / MAILS).toFixed(3)} ms/mail`,
      );
      // reset \Seen for the next engine
      const { ImapFlow } = await import('imapflow');
      const c = new ImapFlow({
        host: '127.0.0.1',
        port: dovecot.ports.imap,
        secure: false,
        doSTARTTLS: false,
        auth: { user: 'bench', pass: 'bench-pw' },
        logger: false,
      });
      await c.connect();
      await c.mailboxOpen('INBOX');
      await c.messageFlagsRemove('1:*', ['\\Seen']);
      await c.logout();
    } finally {
      await fresh.cleanup();
    }
  }
} finally {
  const keepAlive = setInterval(() => undefined, 1000); // see cleanUp in run.ts
  await dovecot.stop();
  clearInterval(keepAlive);
}
