import path from 'node:path';
import { FileBlobStore } from './blobs/blob-store.js';
import type { AppConfig } from './config/env.js';
import { createConnector } from './connectors/factory.js';
import { MailintakeError } from './errors.js';
import { type FetchContext, fetchMailbox } from './intake/fetch-mailbox.js';
import { MailboxLease } from './intake/lease.js';
import { Scheduler } from './intake/scheduler.js';
import { createLogger, type Logger } from './logger.js';
import type { Runtime } from './runtime.js';
import { loadSecretBox } from './security/secret-box.js';
import { ApiKeys } from './services/api-keys.js';
import type { Services } from './services/index.js';
import { MailboxRepo } from './services/mailboxes.js';
import { RequestQueries } from './services/requests.js';
import type { FetchSummary, PortalView } from './services/views.js';
import { nowIso, openStore, type Store } from './store/db.js';

const PORTAL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export interface RuntimeOptions {
  logger?: Logger;
  /** Called after every scheduled fetch round (tests wait on this instead of sleeping; a UI could stream it). */
  onFetchRound?: (summary: FetchSummary) => void;
}

export async function openRuntime(config: AppConfig, opts: RuntimeOptions = {}): Promise<Runtime> {
  const logger = opts.logger ?? createLogger(config.logLevel);
  const box = loadSecretBox({ secretKey: config.secretKey, dataDir: config.dataDir });
  const store = await openStore({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  await ensureDefaultPortal(store);
  const blobs = new FileBlobStore(path.join(config.dataDir, 'blobs'));
  const mailboxes = new MailboxRepo(store, box);
  const queries = new RequestQueries(store, blobs);
  const apiKeys = new ApiKeys(store);
  const lease = new MailboxLease(store, config.leaseSeconds);
  const shutdown = new AbortController();
  const fetchCtx: FetchContext = {
    store,
    blobs,
    lease,
    logger,
    connect: (settings) => createConnector(settings, { logger }),
    signal: shutdown.signal,
  };

  const fetchOne = async (name: string): Promise<FetchSummary> => {
    const row = await mailboxes.row(name);
    return fetchMailbox(
      fetchCtx,
      { id: row.id, name: row.name, portalId: row.portal_id, headerThreading: row.header_threading === 1 },
      mailboxes.settingsOf(row),
    );
  };

  const services: Services = {
    portals: {
      list: async () =>
        (await store.db.selectFrom('portals').selectAll().orderBy('id').execute()).map(portalView),
      add: async (name) => {
        if (!PORTAL_NAME.test(name)) {
          throw new MailintakeError('INVALID_SETTINGS', 'invalid portal name', {
            details: {
              fields: [{ field: 'name', message: 'letters, digits, dot, hyphen, underscore; up to 100' }],
            },
          });
        }
        const exists = await store.db
          .selectFrom('portals')
          .select('id')
          .where('name', '=', name)
          .executeTakeFirst();
        if (exists) throw new MailintakeError('CONFLICT', `a portal named "${name}" exists already`);
        await store.db
          .insertInto('portals')
          .values({ name, header_threading: 1, created_at: nowIso() })
          .execute();
        return portalView(
          await store.db.selectFrom('portals').selectAll().where('name', '=', name).executeTakeFirstOrThrow(),
        );
      },
      update: async (name, patch) => {
        const res = await store.db
          .updateTable('portals')
          .set(patch.headerThreading === undefined ? {} : { header_threading: patch.headerThreading ? 1 : 0 })
          .where('name', '=', name)
          .executeTakeFirst();
        if (Number(res.numUpdatedRows) === 0 && patch.headerThreading !== undefined) {
          throw new MailintakeError('NOT_FOUND', `no portal named "${name}"`);
        }
        const row = await store.db
          .selectFrom('portals')
          .selectAll()
          .where('name', '=', name)
          .executeTakeFirst();
        if (!row) throw new MailintakeError('NOT_FOUND', `no portal named "${name}"`);
        return portalView(row);
      },
    },
    mailboxes: {
      list: async () => (await mailboxes.rows()).map((r) => mailboxes.view(r)),
      get: async (name) => mailboxes.view(await mailboxes.row(name)),
      add: async (input) => mailboxes.view(await mailboxes.insert(input)),
      update: async (name, input) => mailboxes.view(await mailboxes.replace(name, input)),
      setEnabled: async (name, enabled) => mailboxes.view(await mailboxes.setEnabled(name, enabled)),
      remove: (name) => mailboxes.remove(name),
      test: async (name) => {
        const started = Date.now();
        const connector = createConnector(mailboxes.settingsOf(await mailboxes.row(name)), { logger });
        try {
          await connector.open();
          const sample = await connector.sample();
          return { ok: true as const, sample, durationMs: Date.now() - started };
        } finally {
          await connector.close();
        }
      },
    },
    requests: {
      list: (q) => queries.list(q),
      show: (id) => queries.show(id),
      attachment: (id) => queries.attachment(id),
    },
    log: { list: (q) => queries.log(q), raw: (id) => queries.raw(id) },
    fetch: {
      once: async (q) => {
        const names = q.mailbox
          ? [(await mailboxes.row(q.mailbox)).name]
          : (await mailboxes.rows()).filter((r) => r.enabled === 1).map((r) => r.name);
        const out: FetchSummary[] = [];
        for (const name of names) out.push(await fetchOne(name));
        return out;
      },
    },
    apiKeys: {
      create: (name) => apiKeys.create(name),
      list: () => apiKeys.list(),
      revoke: (id) => apiKeys.revoke(id),
      verify: (key) => apiKeys.verify(key),
    },
  };

  const scheduler = new Scheduler({
    listEnabled: async () =>
      (await mailboxes.rows())
        .filter((r) => r.enabled === 1)
        .map((r) => ({
          name: r.name,
          intervalSeconds: (JSON.parse(r.settings) as { intervalSeconds: number }).intervalSeconds,
        })),
    fetch: async (name) => {
      const s = await fetchOne(name);
      logger.info('fetch round', { ...s });
      opts.onFetchRound?.(s);
    },
    logger,
  });

  let closed = false;
  return {
    config,
    services,
    startScheduler: () => scheduler.start(),
    close: async () => {
      if (closed) return;
      closed = true;
      shutdown.abort();
      await scheduler.stop();
      await store.close();
    },
  };
}

function portalView(r: { id: number; name: string; header_threading: number }): PortalView {
  return { id: r.id, name: r.name, headerThreading: r.header_threading === 1 };
}

async function ensureDefaultPortal(store: Store): Promise<void> {
  await store.db
    .insertInto('portals')
    .values({ name: 'default', header_threading: 1, created_at: nowIso() })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
}
