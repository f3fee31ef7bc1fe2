import type { Logger } from '../logger.js';

export interface ScheduledMailbox {
  name: string;
  intervalSeconds: number;
}

/**
 * Fetches each enabled mailbox on its interval, one fetch per mailbox at a time in this process (the lease
 * makes it one at a time across processes). The interval counts from the end of the previous round, so a slow
 * round never piles up rounds behind it. Mailboxes added, changed or disabled are picked up at the next tick.
 */
export class Scheduler {
  private timer: NodeJS.Timeout | null = null;
  private readonly running = new Map<string, Promise<void>>();
  private readonly nextDue = new Map<string, number>();
  private stopped = false;

  constructor(
    private readonly opts: {
      listEnabled: () => Promise<ScheduledMailbox[]>;
      fetch: (name: string) => Promise<void>;
      logger: Logger;
      tickMs?: number;
      now?: () => number;
    },
  ) {}

  start(): void {
    this.stopped = false;
    void this.tick();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), this.opts.tickMs ?? 1000);
    this.timer.unref?.();
  }

  private async tick(): Promise<void> {
    try {
      const now = (this.opts.now ?? Date.now)();
      const enabled = await this.opts.listEnabled();
      const names = new Set(enabled.map((m) => m.name));
      for (const name of this.nextDue.keys()) if (!names.has(name)) this.nextDue.delete(name);
      for (const m of enabled) {
        if (this.stopped) break;
        if (this.running.has(m.name)) continue;
        if ((this.nextDue.get(m.name) ?? 0) > now) continue;
        const run = this.opts
          .fetch(m.name)
          .catch((err) =>
            this.opts.logger.error('scheduled fetch failed', { mailbox: m.name, error: String(err) }),
          )
          .finally(() => {
            this.running.delete(m.name);
            this.nextDue.set(m.name, (this.opts.now ?? Date.now)() + m.intervalSeconds * 1000);
          });
        this.running.set(m.name, run);
      }
    } catch (err) {
      this.opts.logger.error('scheduler tick failed', { error: String(err) });
    } finally {
      this.schedule();
    }
  }

  /** Stops scheduling and waits for the rounds under way. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await Promise.all(this.running.values());
  }
}
