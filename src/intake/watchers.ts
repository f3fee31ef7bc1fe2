import { type WatchState, watchImapFolder } from '../connectors/imap/imap-watch.js';
import type { MailboxSettings } from '../connectors/settings.js';
import type { Logger } from '../kernel/logger.js';
import type { AccessTokenSource } from '../oauth/token-source.js';
import type { RoundRunner } from './round-runner.js';
import { Scheduler } from './scheduler.js';

/** A mailbox as the schedule and the IDLE watchers see it (read at every tick). */
export interface ScheduledRow {
  id: number;
  name: string;
  enabled: boolean;
  protocol: string;
  /** IMAP IDLE push wanted (mailboxes stored before the setting existed have it on). */
  idle: boolean;
  intervalSeconds: number;
  /** Changes whenever the settings or the sealed secrets change (a watcher is restarted then). */
  key: string;
  /** The settings with secrets opened; may throw (a secret sealed with a key no longer configured). */
  settings(): MailboxSettings;
}

export interface IntakeScheduleOptions {
  logger: Logger;
  /** Every mailbox not removed. */
  list(): Promise<ScheduledRow[]>;
  rounds: RoundRunner;
  /** Where a mailbox's IDLE connection gets its OAuth access tokens (undefined: it logs in otherwise). */
  tokensFor(id: number, settings: MailboxSettings): AccessTokenSource | undefined;
  /** Called when a mailbox's IDLE watcher changes state (see RuntimeOptions.onWatchState). */
  onWatchState?: (event: { mailbox: string; state: WatchState }) => void;
}

export interface IntakeSchedule {
  /** Starts fetching each enabled mailbox on its interval (and watching those with IDLE). */
  start(): void;
  /** Mailboxes whose IDLE watcher idles right now, sorted. */
  watching(): string[];
  /** Stops the watchers and the scheduler (waiting for the rounds it started). */
  stop(): Promise<void>;
  /** Resolves once every stopped watcher has closed its connection. */
  retired(): Promise<void>;
}

/** One IDLE watcher; `key` tells whether the mailbox's settings changed since it started. */
interface Watcher {
  key: string;
  controller: AbortController;
  state: WatchState | 'connecting' | 'failed';
  done: Promise<unknown>;
}

const isImap = (protocol: string) => protocol === 'imap' || protocol === 'imaps';

/**
 * The schedule, and IMAP IDLE push: one watcher per enabled IMAP mailbox with `idle` on, reconciled at every
 * scheduler tick (added, disabled, removed, changed mailboxes); a new mail pokes the scheduler for a round of
 * that mailbox.
 */
export function createIntakeSchedule(o: IntakeScheduleOptions): IntakeSchedule {
  const { logger } = o;
  const watchers = new Map<string, Watcher>();
  /** Watchers told to stop that may still be closing their connection (retired() waits for them). */
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

  const startWatcher = (r: ScheduledRow) => {
    const controller = new AbortController();
    const watcher: Watcher = { key: r.key, controller, state: 'connecting', done: Promise.resolve() };
    watchers.set(r.name, watcher);
    let settings: MailboxSettings;
    try {
      settings = r.settings();
    } catch (err) {
      // kept (as failed) so it is not retried every tick; a settings change retries it
      watcher.state = 'failed';
      logger.error('IMAP IDLE watcher not started', { mailbox: r.name, error: String(err) });
      return;
    }
    const tokens = o.tokensFor(r.id, settings);
    watcher.done = watchImapFolder(settings, {
      logger,
      ...(tokens ? { tokens } : {}),
      signal: controller.signal,
      onNewMail: () => scheduler.poke(r.name),
      onState: (state) => {
        watcher.state = state;
        o.onWatchState?.({ mailbox: r.name, state });
      },
    }).catch((err: unknown) => {
      // it resolves on every path it knows; should it ever reject, the schedule still fetches the mailbox
      // and stop() must not meet an unhandled rejection
      logger.error('IMAP IDLE watcher failed', { mailbox: r.name, error: String(err) });
    });
  };

  const reconcileWatchers = (rows: ScheduledRow[]) => {
    if (closed) return;
    const wanted = new Map(
      rows.filter((r) => r.enabled && isImap(r.protocol) && r.idle).map((r) => [r.name, r]),
    );
    for (const [name, w] of [...watchers]) {
      if (wanted.get(name)?.key !== w.key) stopWatcher(name);
    }
    for (const [name, r] of wanted) if (!watchers.has(name)) startWatcher(r);
  };

  const scheduler = new Scheduler({
    listEnabled: async () => {
      const rows = await o.list();
      reconcileWatchers(rows);
      return rows.filter((r) => r.enabled).map((r) => ({ name: r.name, intervalSeconds: r.intervalSeconds }));
    },
    fetch: (name, { fresh }) => o.rounds.scheduled(name, { fresh }),
    logger,
  });

  return {
    start: () => scheduler.start(),
    watching: () =>
      [...watchers]
        .filter(([, w]) => w.state === 'watching')
        .map(([name]) => name)
        .sort(),
    stop: async () => {
      closed = true;
      for (const name of [...watchers.keys()]) stopWatcher(name);
      await scheduler.stop();
    },
    retired: async () => {
      await Promise.all(retiring);
    },
  };
}
