import path from 'node:path';
import type { Connector } from '../connectors/connector.js';
import { createConnector, type SamplingConnector } from '../connectors/factory.js';
import type { WatchState } from '../connectors/imap/imap-watch.js';
import type { MailboxSettings } from '../connectors/settings.js';
import { createApiKeysService } from '../features/api-keys/service.js';
import { createErrorMailsService } from '../features/error-mails/service.js';
import { createFetchService } from '../features/fetch/service.js';
import {
  createMailboxRepo,
  intakeMailbox,
  type MailboxRepo,
  openedMailboxes,
  scheduledRow,
  settingsOf,
} from '../features/mailboxes/repo.js';
import { createMailboxesService } from '../features/mailboxes/service.js';
import type { FetchSummary } from '../features/mailboxes/views.js';
import { createNotificationServices } from '../features/notifications/service.js';
import { resolvePublicUrl } from '../features/oauth/public-url.js';
import { createOAuthService, forgetSmtpTokens, smtpTokenSource } from '../features/oauth/service.js';
import { mailboxOAuthOwner, OAuthTokens } from '../features/oauth/tokens.js';
import { createPortalRepo } from '../features/portals/repo.js';
import { createPortalsService, portalNamed } from '../features/portals/service.js';
import { createIntakeLogService, createRequestsService } from '../features/requests/service.js';
import { createSecretKeyService } from '../features/secret-key/service.js';
import type { Services } from '../features/services.js';
import { createSystemLogService } from '../features/system-log/service.js';
import { createUsersService } from '../features/users/service.js';
import { ErrorFolder } from '../intake/error-folder.js';
import type { DropNotifier, FetchContext } from '../intake/fetch-mailbox.js';
import { MailboxLease } from '../intake/lease.js';
import { createRoundRunner, type RoundRunner } from '../intake/round-runner.js';
import { createIntakeSchedule } from '../intake/watchers.js';
import type { AppConfig } from '../kernel/env.js';
import type { MailintakeError } from '../kernel/errors.js';
import { createLogger, type Logger } from '../kernel/logger.js';
import { loadSecretBox, type SecretBox } from '../kernel/secret-box.js';
import { REPLY_ADDRESS_KEY_LABEL } from '../mail/reply-address.js';
import { type OutboxAttempt, OutboxSender } from '../notify/outbox.js';
import { SmtpServers } from '../notify/smtp-settings.js';
import { StoreNotifier } from '../notify/store-notifier.js';
import { FileBlobStore } from '../store/blobs/blob-store.js';
import { RawPacks } from '../store/blobs/raw-packs.js';
import { SWEEP_INTERVAL_MS, type SweepResult, sweepGraceMs, sweepLeftovers } from '../store/blobs/sweep.js';
import { openStore, openStoreWaiting, type Store } from '../store/db.js';
import type { Runtime } from './runtime.js';

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
  await createPortalRepo(store).ensureDefault();
  const blobs = new FileBlobStore(path.join(config.dataDir, 'blobs'));
  const rawPacks = new RawPacks(path.join(config.dataDir, 'raw'));
  // OAuth: one redirect URL for every consent (the state says whose); tokens per mailbox id, sealed
  const publicUrl = await resolvePublicUrl(store, config);
  const redirectUrl = `${publicUrl}/oauth/callback`;
  const oauthTokens = new OAuthTokens({ store, box, logger, redirectUrl });
  const mailboxes = createMailboxRepo(store);
  /** Every connection of a mailbox goes through here, so OAuth mailboxes always get their token source. */
  const connect = (settings: MailboxSettings, mailbox: { id: number }): SamplingConnector => {
    const who = mailboxOAuthOwner(mailbox.id, settings);
    return createConnector(settings, { logger, ...(who ? { tokens: oauthTokens.source(who) } : {}) });
  };
  // Notices (bell + outbox mail) are recorded in the transactions of what they tell about; the sender mails
  // them afterwards, woken by the notifier after each such commit and by its timer.
  const smtp = new SmtpServers(store, box, smtpTokenSource(oauthTokens), forgetSmtpTokens);
  const sender = new OutboxSender({
    store,
    smtp: () => smtp.instance.config(),
    portalSmtp: () => smtp.portalConfigs(),
    logger,
    blobs,
    ...(opts.onOutboxAttempt ? { onAttempt: opts.onOutboxAttempt } : {}),
  });
  sender.start();
  const base: Wiring = { config, opts, logger, box, store, blobs, rawPacks, mailboxes, oauthTokens, connect };
  const intake = wireIntake(base, new StoreNotifier(() => sender.kick(), publicUrl));
  const services = wireServices(base, { publicUrl, redirectUrl, smtp, sender, ...intake });
  const sweeper = createSweeper(base);

  let closed = false;
  return {
    config,
    services,
    startScheduler: () => {
      intake.schedule.start();
      sweeper.start();
    },
    watching: () => intake.schedule.watching(),
    close: async () => {
      if (closed) return;
      closed = true;
      intake.shutdown.abort();
      const swept = sweeper.stop(); // no sweep starts from here on; the running one is awaited below
      await intake.schedule.stop();
      await swept;
      await intake.rounds.idle(); // rounds the API or CLI asked for, stopping between mails (shutdown is aborted)
      // after the rounds: a notice their last commits recorded is still sent (or left for the next start)
      await sender.stop();
      await intake.schedule.retired();
      await store.close();
    },
  };
}

/** What every part of the runtime is built from. */
interface Wiring {
  config: AppConfig;
  opts: RuntimeOptions;
  logger: Logger;
  box: SecretBox;
  store: Store;
  blobs: FileBlobStore;
  rawPacks: RawPacks;
  mailboxes: MailboxRepo;
  oauthTokens: OAuthTokens;
  connect(settings: MailboxSettings, mailbox: { id: number }): SamplingConnector;
}

/** The fetch rounds (one per mailbox at a time), the schedule and the IDLE watchers. */
function wireIntake(w: Wiring, notifier: StoreNotifier) {
  const { config, opts, logger, box, store, blobs, rawPacks, mailboxes, oauthTokens } = w;
  const shutdown = new AbortController();
  const lease = new MailboxLease(store, config.leaseSeconds);
  const ctx: FetchContext = {
    store,
    blobs,
    rawPacks,
    lease,
    logger,
    connect: (settings, mailbox) => {
      const connector = w.connect(settings, mailbox);
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
  // Every round of this process goes through here (schedule, IDLE push, API, CLI): one per mailbox at a time
  const rounds = createRoundRunner({
    ctx,
    load: async (name) => {
      const row = await mailboxes.row(name);
      const settings = settingsOf(box, row);
      // a customer's answer to a per-request reply address threads by it (mail/reply-address.ts)
      const replyAddresses = { own: settings.emailAddress, keys: box.derivedKeys(REPLY_ADDRESS_KEY_LABEL) };
      const sendFrom = settings.emailAddress[0];
      return {
        mailbox: { ...intakeMailbox(row), replyAddresses, ...(sendFrom ? { sendFrom } : {}) },
        settings,
      };
    },
    logger,
    ...(opts.onFetchRound ? { onFetchRound: opts.onFetchRound } : {}),
    ...(opts.onRoundAsked ? { onRoundAsked: opts.onRoundAsked } : {}),
  });
  const schedule = createIntakeSchedule({
    logger,
    list: async () => (await mailboxes.rows()).map((r) => scheduledRow(box, r)),
    rounds,
    tokensFor: (id, settings) => {
      const who = mailboxOAuthOwner(id, settings);
      return who ? oauthTokens.source(who) : undefined;
    },
    ...(opts.onWatchState ? { onWatchState: opts.onWatchState } : {}),
  });
  return { shutdown, lease, rounds, schedule };
}

/** Each feature's service, built with what it needs. */
function wireServices(
  w: Wiring,
  more: {
    publicUrl: string;
    redirectUrl: string;
    smtp: SmtpServers;
    sender: OutboxSender;
    lease: MailboxLease;
    rounds: RoundRunner;
  },
): Services {
  const { logger, box, store, blobs, rawPacks, mailboxes, oauthTokens, connect } = w;
  const { redirectUrl, smtp, sender } = more;
  return {
    ...createNotificationServices({ store, smtp: smtp.instance, sender }),
    errorMails: createErrorMailsService({
      store,
      blobs,
      box,
      lease: more.lease,
      logger,
      mailbox: async (name) => {
        const row = await mailboxes.row(name);
        return { id: row.id, name: row.name, settings: settingsOf(box, row) };
      },
      connect,
    }),
    secretKey: createSecretKeyService({ store, blobs, box }),
    oauth: createOAuthService({
      store,
      tokens: oauthTokens,
      mailboxes: openedMailboxes(mailboxes, box),
      smtp,
      portalSmtp: async (name) => smtp.portal(await portalNamed(store, name)),
      redirectUrl,
      connectWith: (settings, tokens) => createConnector(settings, { logger, tokens }),
    }),
    portals: createPortalsService({ store, smtp, kickOutbox: () => sender.kick() }),
    mailboxes: createMailboxesService({
      store,
      box,
      repo: mailboxes,
      redirectUrl,
      tokens: oauthTokens,
      smtp: smtp.instance,
      connect,
    }),
    requests: createRequestsService({
      store,
      blobs,
      rawPacks,
      replyKeys: () => box.derivedKeys(REPLY_ADDRESS_KEY_LABEL),
      kickOutbox: () => sender.kick(),
    }),
    log: createIntakeLogService({ store, blobs, rawPacks }),
    systemLog: createSystemLogService({ store }),
    fetch: createFetchService({ mailboxes, rounds: more.rounds }),
    apiKeys: createApiKeysService({ store }),
    users: createUsersService({ store, publicUrl: more.publicUrl }),
  };
}

/** Leftovers of batches that never committed (blobs, packs, partial files): swept at start, then periodically. */
function createSweeper(w: Wiring): { start(): void; stop(): Promise<void> } {
  let stopped = false;
  let sweeping: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | null = null;
  const sweep = () => {
    // one sweep at a time: a slow disk never has two walking the same folders
    sweeping = sweeping.then(async () => {
      if (stopped) return;
      try {
        const result = await sweepLeftovers({
          store: w.store,
          blobsDir: w.blobs.rootDir,
          rawDir: w.rawPacks.rootDir,
          graceMs: sweepGraceMs(w.config.leaseSeconds),
          logger: w.logger,
        });
        w.opts.onSweep?.(result);
      } catch (err) {
        w.logger.error('sweep of leftovers failed', { error: String(err) });
      }
    });
  };
  return {
    start: () => {
      sweep();
      timer ??= setInterval(sweep, SWEEP_INTERVAL_MS);
      timer.unref?.();
    },
    stop: async () => {
      stopped = true;
      if (timer) clearInterval(timer);
      await sweeping;
    },
  };
}
