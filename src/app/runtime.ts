import type { Services } from '../features/services.js';
import type { AppConfig } from '../kernel/env.js';

/**
 * Everything one process needs, built from the config in one place: store (SQLite or PostgreSQL), secret box,
 * blob store, services. `serve` also starts the scheduler; CLI commands only use the services.
 */
export interface Runtime {
  config: AppConfig;
  services: Services;
  /** Starts fetching each enabled mailbox on its interval; resolves when the first round was scheduled. */
  startScheduler(): void;
  /**
   * Mailboxes whose IMAP IDLE watcher is connected and idling right now (sorted). The scheduler keeps one per
   * enabled IMAP mailbox with `idle` on; a new mail there starts a round at once.
   */
  watching(): string[];
  /** Stops the scheduler and the IDLE watchers (waiting for running fetches to finish their current mail), closes the store. */
  close(): Promise<void>;
}
