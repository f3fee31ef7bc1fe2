import path from 'node:path';
import type { Connector } from '../connectors/connector.js';
import { diagnose } from '../connectors/diagnose.js';
import { createConnector } from '../connectors/factory.js';
import { type WatchState, watchImapFolder } from '../connectors/imap/imap-watch.js';
import { folderLoopIssues, type MailboxSettings } from '../connectors/settings.js';
import { ApiKeys } from '../features/api-keys/service.js';
import { errorFolderServices } from '../features/error-mails/service.js';
import { MailboxRepo } from '../features/mailboxes/service.js';
import type { FetchSummary, MailboxView } from '../features/mailboxes/views.js';
import { notificationServices } from '../features/notifications/service.js';
import { resolvePublicUrl } from '../features/oauth/public-url.js';
import { type OAuthOwner, OAuthTokens } from '../features/oauth/tokens.js';
import type { PortalView } from '../features/portals/views.js';
import { listSystemLog, RequestQueries } from '../features/requests/service.js';
import type { Services } from '../features/services.js';
import { ErrorFolder } from '../intake/error-folder.js';
import { type DropNotifier, emptySummary, type FetchContext, fetchMailbox } from '../intake/fetch-mailbox.js';
import { MailboxLease } from '../intake/lease.js';
import { RoundGate, Scheduler } from '../intake/scheduler.js';
import type { AppConfig } from '../kernel/env.js';
import { MailintakeError, toMailintakeError } from '../kernel/errors.js';
import { createLogger, type Logger } from '../kernel/logger.js';
import { loadSecretBox } from '../kernel/secret-box.js';
import { resolveAttachmentPolicy } from '../mail/attachment-checks.js';
import { type OutboxAttempt, OutboxSender } from '../notify/outbox.js';
import { type SmtpOAuth, SmtpSettings } from '../notify/smtp-settings.js';
import { openSmtpTransport } from '../notify/smtp-transport.js';
import { StoreNotifier } from '../notify/store-notifier.js';
import { providerPresets } from '../oauth/providers.js';
import { FileBlobStore } from '../store/blobs/blob-store.js';
import { RawPacks } from '../store/blobs/raw-packs.js';
import { SWEEP_INTERVAL_MS, type SweepResult, sweepGraceMs, sweepLeftovers } from '../store/blobs/sweep.js';
import { nowIso, openStore, openStoreWaiting, type Store } from '../store/db.js';
import { systemLog } from '../store/system-log.js';
import { withTransaction } from '../store/tx.js';
import type { Runtime } from './runtime.js';

const PORTAL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export interface RuntimeOptions {
  logger?: Logger;
  /**
   * Called after every fetch round, whoever asked for it (tests wait on this instead of sleeping; a UI could
   * stream it). A caller that joined a round does not make it reported twice.
   */
  onFetchRound?: (summary: FetchSummary) => void;
  /**
   * Told how each request for a round was served (tests wait on it; a UI could say "queued"): `started` a round,
   * `joined` the running one (the schedule), or `queued` for the one right after it (fetch now, IDLE push).
   */
  onRoundAsked?: (event: { mailbox: string; how: 'started' | 'joined' | 'queued' }) => void;
  /** Told after each sweep of leftovers (blobs/sweep.ts) that `serve` runs at start and every 30 minutes. */
  onSweep?: (result: SweepResult) => void;
  /** Called when a mailbox's IMAP IDLE watcher changes state (tests wait on 'watching'; a UI could show it). */
  onWatchState?: (event: { mailbox: string; state: WatchState }) => void;
  /**
   * Told after a mail with dropped attachments committed (tests, a UI). The drop notification email does not
   * depend on it: it is recorded in the mail's own transaction (notify/drop-notice.ts).
   */
  notifyDrops?: DropNotifier;
  /** Told after every attempt to send a notification mail from the outbox (tests wait on this; a UI could show it). */
  onOutboxAttempt?: (attempt: OutboxAttempt) => void;
  /**
   * Wraps each fetch round's connector (tests hold a round at a chosen step, e.g. to edit a mailbox while it is
   * fetched; an operator tool could trace calls). Default: the connector as created.
   */
  wrapConnector?: (connector: Connector, mailbox: MailboxSettings) => Connector;
  /**
   * Wait for a database that cannot be reached yet instead of failing (`serve`: a service started before its
   * database, or during its restart, comes up by itself). `onWait` is told each failed attempt. Absent (one-off
   * commands): fail at once with STORE_FAILED.
   */
  waitForStore?: { signal?: AbortSignal; onWait: (error: MailintakeError, retryInMs: number) => void };
}

/** One IDLE watcher of the runtime; `key` tells whether the mailbox's settings changed since it started. */
interface Watcher {
  key: string;
  controller: AbortController;
  state: WatchState | 'connecting' | 'failed';
  done: Promise<unknown>;
}

export async function openRuntime(config: AppConfig, opts: RuntimeOptions = {}): Promise<Runtime> {
  const logger = opts.logger ?? createLogger(config.logLevel);
  const box = loadSecretBox({
    secretKey: config.secretKey,
    previousKeys: config.previousSecretKeys,
    dataDir: config.dataDir,
  });
  const storeConfig = { databaseUrl: config.databaseUrl, dataDir: config.dataDir, logger };
  const store = opts.waitForStore
    ? await openStoreWaiting(storeConfig, opts.waitForStore)
    : await openStore(storeConfig);
  await ensureDefaultPortal(store);
  const blobs = new FileBlobStore(path.join(config.dataDir, 'blobs'));
  const rawPacks = new RawPacks(path.join(config.dataDir, 'raw'));
  // OAuth: one redirect URL for every consent (the state says whose); tokens per mailbox id, sealed
  const redirectUrl = `${await resolvePublicUrl(store, config)}/oauth/callback`;
  const oauthTokens = new OAuthTokens({ store, box, logger, redirectUrl });
  const mailboxes = new MailboxRepo(store, box, redirectUrl);
  /** The OAuth identity of a mailbox (null when it logs in with a password or a static token). */
  const oauthOwnerOf = (id: number, settings: MailboxSettings): OAuthOwner | null =>
    settings.auth === 'oauth2' && settings.oauth
      ? {
          owner: MailboxRepo.oauthOwner(id),
          label: `mailbox "${settings.name}"`,
          oauth: settings.oauth,
          username: settings.username,
          authorizeCommand: `mailintake mailbox authorize ${settings.name}`,
        }
      : null;
  /** Every connection of a mailbox goes through here, so OAuth mailboxes always get their token source. */
  const connectorFor = (settings: MailboxSettings, mailbox: { id: number }) => {
    const who = oauthOwnerOf(mailbox.id, settings);
    return createConnector(settings, { logger, ...(who ? { tokens: oauthTokens.source(who) } : {}) });
  };
  const withTokenState = async (view: MailboxView, settings?: MailboxSettings): Promise<MailboxView> => {
    if (!view.oauth) return view;
    const s = settings ?? mailboxes.settingsOf(await mailboxes.row(view.name));
    const who = oauthOwnerOf(view.id, s);
    if (!who) return view;
    const warnings: string[] = [];
    const out = await smtp.oauth();
    if (
      s.protocol === 'graph' &&
      out &&
      out.oauth.clientId === who.oauth.clientId &&
      s.emailAddress.some((a) => a.toLowerCase() === out.username.toLowerCase())
    ) {
      warnings.push(
        `The outgoing SMTP server uses the same app (client ID ${who.oauth.clientId}) and mailbox (${out.username}): Microsoft throttles per app and mailbox, so fetching and sending share one limit. Register a second app for outgoing mail.`,
      );
    }
    return { ...view, oauth: { ...view.oauth, tokens: await oauthTokens.view(who), warnings } };
  };
  const oauthMailbox = async (name: string): Promise<OAuthOwner> => {
    const row = await mailboxes.row(name);
    const who = oauthOwnerOf(row.id, mailboxes.settingsOf(row));
    if (!who) {
      throw new MailintakeError(
        'INVALID_SETTINGS',
        `mailbox "${name}" does not use OAuth; set "oauth" in its settings first (provider, clientId, clientSecret)`,
        { details: { fields: [{ field: 'oauth', message: 'not set' }] } },
      );
    }
    return who;
  };
  const queries = new RequestQueries(store, blobs, rawPacks);
  const apiKeys = new ApiKeys(store);
  const lease = new MailboxLease(store, config.leaseSeconds);
  const shutdown = new AbortController();
  // Notices (bell + outbox mail) are recorded in the transactions of what they tell about; the sender mails
  // them afterwards, woken by the notifier after each such commit and by its timer.
  const SMTP_OWNER = 'smtp';
  const smtpOwner = (o: SmtpOAuth): OAuthOwner => ({
    owner: SMTP_OWNER,
    label: 'the outgoing SMTP server',
    oauth: o.oauth,
    username: o.username,
    authorizeCommand: 'mailintake smtp authorize',
  });
  const smtp = new SmtpSettings(
    store,
    box,
    (o) => oauthTokens.source(smtpOwner(o)),
    async (tx) => {
      if (await OAuthTokens.forget(tx, SMTP_OWNER)) {
        await systemLog(tx, {
          level: 'warn',
          category: 'oauth',
          message:
            'outgoing SMTP server: OAuth settings changed; its tokens were discarded, authorize it again',
        });
      }
    },
  );
  const smtpOAuth = async (): Promise<OAuthOwner> => {
    const o = await smtp.oauth();
    if (!o) {
      throw new MailintakeError(
        'INVALID_SETTINGS',
        'the outgoing SMTP server does not use OAuth; set "oauth" and "username" in its settings first',
        { details: { fields: [{ field: 'oauth', message: 'not set' }] } },
      );
    }
    return smtpOwner(o);
  };
  const sender = new OutboxSender({
    store,
    smtp: () => smtp.config(),
    logger,
    ...(opts.onOutboxAttempt ? { onAttempt: opts.onOutboxAttempt } : {}),
  });
  const notifier = new StoreNotifier(() => sender.kick());
  sender.start();
  const fetchCtx: FetchContext = {
    store,
    blobs,
    rawPacks,
    lease,
    logger,
    connect: (settings, mailbox) => {
      const connector = connectorFor(settings, mailbox);
      return opts.wrapConnector ? opts.wrapConnector(connector, settings) : connector;
    },
    signal: shutdown.signal,
    notifier,
    // a failing mail goes to the mailbox's error folder (when it has one), with its report sealed
    errorRoute: new ErrorFolder({ store, blobs, rawPacks, box, logger }),
    ...(config.maxMailMb !== undefined
      ? { parseLimits: { maxMailBytes: config.maxMailMb === -1 ? -1 : config.maxMailMb * 1024 * 1024 } }
      : {}),
    ...(opts.notifyDrops ? { notify: opts.notifyDrops } : {}),
  };

  const fetchOne = async (name: string): Promise<FetchSummary> => {
    // The portal's attachment policy is read with the mailbox, once per round: a change applies from the
    // next round on, never halfway through a batch.
    const row = await mailboxes.row(name);
    const settings = mailboxes.settingsOf(row);
    // rows saved before the folder-loop rule are refused here rather than taking their mail in forever
    const loops = folderLoopIssues(settings);
    if (loops.length > 0) {
      throw new MailintakeError('INVALID_SETTINGS', `mailbox "${name}": ${loops[0]!.message}`, {
        details: { fields: loops },
      });
    }
    return fetchMailbox(
      fetchCtx,
      {
        id: row.id,
        name: row.name,
        portalId: row.portal_id,
        headerThreading: row.header_threading === 1,
        enabled: row.enabled === 1,
        attachmentPolicy: resolveAttachmentPolicy(JSON.parse(row.attachment_policy)),
      },
      settings,
    );
  };
  // Every round of this process goes through here (schedule, IDLE push, API, CLI): one per mailbox at a time
  const rounds = new RoundGate(
    async (name: string) => {
      const s = await fetchOne(name);
      logger.info('fetch round', { ...s });
      opts.onFetchRound?.(s);
      return s;
    },
    opts.onRoundAsked ? (mailbox, how) => opts.onRoundAsked?.({ mailbox, how }) : undefined,
  );

  const services: Services = {
    ...notificationServices({ store, smtp, sender }),
    ...errorFolderServices({
      store,
      blobs,
      box,
      lease,
      logger,
      mailbox: async (name) => {
        const row = await mailboxes.row(name);
        return { id: row.id, name: row.name, settings: mailboxes.settingsOf(row) };
      },
      connect: (settings, mailbox) => connectorFor(settings, mailbox),
    }),
    oauth: {
      authorize: async (name) => oauthTokens.start(await oauthMailbox(name)),
      complete: (callbackUrl) =>
        oauthTokens.complete(callbackUrl, async (owner) => {
          if (owner === SMTP_OWNER) {
            const who = await smtpOAuth();
            const config = await smtp.config();
            return {
              who,
              // log in to the SMTP server with the new token (nothing is sent)
              verify: async (tokens) => {
                if (!config) throw new MailintakeError('NOT_FOUND', 'no outgoing SMTP server is configured');
                const transport = await openSmtpTransport(config, { tokens });
                try {
                  await transport.verify();
                } finally {
                  transport.close();
                }
              },
            };
          }
          const id = Number(owner.replace(/^mailbox:/, ''));
          const row = (await mailboxes.rows()).find((r) => r.id === id);
          const settings = row ? mailboxes.settingsOf(row) : undefined;
          const who = row && settings ? oauthOwnerOf(row.id, settings) : null;
          if (!row || !settings || !who) {
            throw new MailintakeError(
              'OAUTH_CONSENT_FAILED',
              'The mailbox this authorization was started for was removed, or no longer uses OAuth.',
            );
          }
          return {
            who,
            // the mail server judges whose token it is: log in as the mailbox's user with it
            verify: async (tokens) => {
              const connector = createConnector(settings, { logger, tokens });
              try {
                await connector.open();
              } finally {
                await connector.close();
              }
            },
          };
        }),
      status: async (name) => oauthTokens.view(await oauthMailbox(name)),
      revoke: async (name) => {
        const who = await oauthMailbox(name);
        await withTransaction(store, async (tx) => {
          await OAuthTokens.forget(tx, who.owner);
          await systemLog(tx, {
            level: 'info',
            category: 'oauth',
            message: `tokens of ${who.label} discarded; it is not fetched until authorized again`,
            details: { owner: who.owner },
          });
        });
      },
      providers: () => ({ redirectUrl, presets: providerPresets() }),
      authorizeSmtp: async () => oauthTokens.start(await smtpOAuth()),
      smtpStatus: async () => oauthTokens.view(await smtpOAuth()),
    },
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
        await withTransaction(store, async (tx) => {
          await tx
            .insertInto('portals')
            .values({ name, header_threading: 1, created_at: nowIso() })
            .execute();
          await systemLog(tx, {
            level: 'info',
            category: 'settings-changed',
            message: `portal ${name} added`,
            details: { portal: name, change: 'added' },
          });
        });
        return portalView(
          await store.db.selectFrom('portals').selectAll().where('name', '=', name).executeTakeFirstOrThrow(),
        );
      },
      update: async (name, patch) => {
        const current = await store.db
          .selectFrom('portals')
          .select('attachment_policy')
          .where('name', '=', name)
          .executeTakeFirst();
        if (!current) throw new MailintakeError('NOT_FOUND', `no portal named "${name}"`);
        const set: { header_threading?: number; attachment_policy?: string } = {};
        if (patch.headerThreading !== undefined) set.header_threading = patch.headerThreading ? 1 : 0;
        if (patch.attachmentPolicy !== undefined) {
          // Field by field over what the admin set before; null restores a field's default. Only the fields
          // set are stored, so a later change of a default reaches every portal that did not override it.
          const merged: Record<string, unknown> = {
            ...(JSON.parse(current.attachment_policy) as Record<string, unknown>),
            ...patch.attachmentPolicy,
          };
          for (const [k, v] of Object.entries(merged)) if (v === null) delete merged[k];
          resolveAttachmentPolicy(merged); // INVALID_SETTINGS naming every bad field; nothing saved
          set.attachment_policy = JSON.stringify(merged);
        }
        if (Object.keys(set).length > 0) {
          await withTransaction(store, async (tx) => {
            await tx.updateTable('portals').set(set).where('name', '=', name).execute();
            await systemLog(tx, {
              level: 'info',
              category: 'settings-changed',
              message: `portal ${name} updated`,
              details: {
                portal: name,
                change: 'updated',
                ...(patch.headerThreading !== undefined ? { headerThreading: patch.headerThreading } : {}),
                ...(patch.attachmentPolicy !== undefined ? { attachmentPolicy: patch.attachmentPolicy } : {}),
              },
            });
          });
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
      list: async () => Promise.all((await mailboxes.rows()).map((r) => withTokenState(mailboxes.view(r)))),
      get: async (name) => withTokenState(mailboxes.view(await mailboxes.row(name))),
      add: async (input) => withTokenState(mailboxes.view(await mailboxes.insert(input))),
      update: async (name, input, o) =>
        withTokenState(mailboxes.view(await mailboxes.replace(name, input, o))),
      setEnabled: async (name, enabled) => mailboxes.view(await mailboxes.setEnabled(name, enabled)),
      remove: (name) => mailboxes.remove(name),
      test: async (name) => {
        const started = Date.now();
        const testRow = await mailboxes.row(name);
        const settings = mailboxes.settingsOf(testRow);
        // A failure says which step failed (DNS, TCP, TLS, login, folder) and what to check, in the error's
        // details: the API answers it with the code, the CLI prints it under the message.
        const explained = (err: unknown) => {
          const coded = toMailintakeError(err, 'INTERNAL');
          const d = diagnose(settings, coded.code);
          if (d) Object.assign(coded.details, d);
          return coded;
        };
        let connector: ReturnType<typeof createConnector>;
        try {
          connector = connectorFor(settings, testRow);
        } catch (err) {
          throw explained(err);
        }
        try {
          await connector.open();
          const sample = await connector.sample();
          return { ok: true as const, sample, durationMs: Date.now() - started };
        } catch (err) {
          throw explained(err);
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
    systemLog: { list: (q) => listSystemLog(store, q) },
    fetch: {
      once: async (q) => {
        const names = q.mailbox
          ? [(await mailboxes.row(q.mailbox)).name]
          : (await mailboxes.rows()).filter((r) => r.enabled === 1).map((r) => r.name);
        const out: FetchSummary[] = [];
        // fresh: a caller asking mid-round may know of mail that round listed too early to see
        for (const name of names) out.push(await rounds.run(name, { fresh: true }));
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

  // IMAP IDLE push: one watcher per enabled IMAP mailbox with `idle` on, reconciled at every scheduler tick
  // (added, disabled, removed, changed mailboxes); a new mail pokes the scheduler for a round of that mailbox.
  const watchers = new Map<string, Watcher>();
  /** Watchers told to stop that may still be closing their connection (close() waits for them). */
  const retiring = new Set<Promise<unknown>>();
  let closed = false;

  const stopWatcher = (name: string) => {
    const w = watchers.get(name);
    if (!w) return;
    watchers.delete(name);
    w.controller.abort();
    retiring.add(w.done);
    void w.done.finally(() => retiring.delete(w.done));
  };

  const reconcileWatchers = (rows: Awaited<ReturnType<MailboxRepo['rows']>>) => {
    if (closed) return;
    const wanted = new Map<string, (typeof rows)[number]>();
    for (const r of rows) {
      if (r.enabled !== 1 || (r.protocol !== 'imap' && r.protocol !== 'imaps')) continue;
      if ((JSON.parse(r.settings) as { idle?: boolean }).idle === false) continue;
      wanted.set(r.name, r);
    }
    // the sealed secret is re-sealed (new nonce) on every update, so a changed password changes the key too
    const keyOf = (r: (typeof rows)[number]) => `${r.settings}\n${r.secrets}`;
    for (const [name, w] of [...watchers]) {
      const r = wanted.get(name);
      if (!r || keyOf(r) !== w.key) stopWatcher(name);
    }
    for (const [name, r] of wanted) {
      if (watchers.has(name)) continue;
      const controller = new AbortController();
      const watcher: Watcher = { key: keyOf(r), controller, state: 'connecting', done: Promise.resolve() };
      watchers.set(name, watcher);
      let settings: ReturnType<MailboxRepo['settingsOf']>;
      try {
        settings = mailboxes.settingsOf(r);
      } catch (err) {
        // kept (as failed) so it is not retried every tick; a settings change retries it
        watcher.state = 'failed';
        logger.error('IMAP IDLE watcher not started', { mailbox: name, error: String(err) });
        continue;
      }
      const who = oauthOwnerOf(r.id, settings);
      watcher.done = watchImapFolder(settings, {
        logger,
        ...(who ? { tokens: oauthTokens.source(who) } : {}),
        signal: controller.signal,
        onNewMail: () => scheduler.poke(name),
        onState: (state) => {
          watcher.state = state;
          opts.onWatchState?.({ mailbox: name, state });
        },
      }).catch((err: unknown) => {
        // it resolves on every path it knows; should it ever reject, the schedule still fetches the mailbox
        // and close() must not meet an unhandled rejection
        logger.error('IMAP IDLE watcher failed', { mailbox: name, error: String(err) });
      });
    }
  };

  const scheduler = new Scheduler({
    listEnabled: async () => {
      const rows = await mailboxes.rows();
      reconcileWatchers(rows);
      return rows
        .filter((r) => r.enabled === 1)
        .map((r) => ({
          name: r.name,
          intervalSeconds: (JSON.parse(r.settings) as { intervalSeconds: number }).intervalSeconds,
        }));
    },
    fetch: async (name, { fresh }) => {
      const started = Date.now();
      try {
        await rounds.run(name, { fresh });
      } catch (err) {
        // A round that could not even start (the database went away before the lease or the mailbox row was
        // read) is still a round: reported with its code like any other, and the schedule tries again.
        const coded = toMailintakeError(err, 'INTERNAL');
        logger.warn('fetch round failed', { mailbox: name, code: coded.code, error: coded.message });
        const s: FetchSummary = {
          ...emptySummary(name),
          error: { code: coded.code, message: coded.message },
          durationMs: Date.now() - started,
        };
        logger.info('fetch round', { ...s });
        opts.onFetchRound?.(s);
      }
    },
    logger,
  });

  // Leftovers of batches that never committed (blobs, packs, partial files): swept at start, then periodically
  let sweeping: Promise<void> = Promise.resolve();
  let sweepTimer: NodeJS.Timeout | null = null;
  const sweep = () => {
    sweeping = sweeping.then(async () => {
      if (closed) return;
      try {
        const result = await sweepLeftovers({
          store,
          blobsDir: blobs.rootDir,
          rawDir: rawPacks.rootDir,
          graceMs: sweepGraceMs(config.leaseSeconds),
          logger,
        });
        opts.onSweep?.(result);
      } catch (err) {
        logger.error('sweep of leftovers failed', { error: String(err) });
      }
    });
  };

  return {
    config,
    services,
    startScheduler: () => {
      scheduler.start();
      sweep();
      sweepTimer ??= setInterval(sweep, SWEEP_INTERVAL_MS);
      sweepTimer.unref?.();
    },
    watching: () =>
      [...watchers]
        .filter(([, w]) => w.state === 'watching')
        .map(([name]) => name)
        .sort(),
    close: async () => {
      if (closed) return;
      closed = true;
      shutdown.abort();
      for (const name of [...watchers.keys()]) stopWatcher(name);
      await scheduler.stop();
      if (sweepTimer) clearInterval(sweepTimer);
      await sweeping;
      await rounds.idle(); // rounds the API or CLI asked for, stopping between mails (shutdown is aborted)
      // after the rounds: a notice their last commits recorded is still sent (or left for the next start)
      await sender.stop();
      await Promise.all(retiring);
      await store.close();
    },
  };
}

function portalView(r: {
  id: number;
  name: string;
  header_threading: number;
  attachment_policy: string;
}): PortalView {
  return {
    id: r.id,
    name: r.name,
    headerThreading: r.header_threading === 1,
    attachmentPolicy: resolveAttachmentPolicy(JSON.parse(r.attachment_policy)),
  };
}

async function ensureDefaultPortal(store: Store): Promise<void> {
  await store.db
    .insertInto('portals')
    .values({ name: 'default', header_threading: 1, created_at: nowIso() })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
}
