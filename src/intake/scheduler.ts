import type { Logger } from '../logger.js';

export interface ScheduledMailbox {
  name: string;
  intervalSeconds: number;
}

/**
 * Fetches each enabled mailbox on its interval, one fetch per mailbox at a time in this process (the lease
 * makes it one at a time across processes). The interval counts from the end of the previous round, so a slow
 * round never piles up rounds behind it. Mailboxes added, changed or disabled are picked up at the next tick.
 *
 * `poke(name)` asks for a round now (IMAP IDLE saw new mail): it starts one at once, or, when a round of that
 * mailbox is running, exactly one more right after it (that round may have listed the folder before the new
 * mail arrived). Any number of pokes during a round still make one follow-up round.
 */
export class Scheduler {
  private timer: NodeJS.Timeout | null = null;
  private readonly running = new Map<string, Promise<void>>();
  private readonly nextDue = new Map<string, number>();
  /** Interval of each enabled mailbox as of the last tick (a poked round sets the next due time with it). */
  private readonly intervals = new Map<string, number>();
  /** Mailboxes poked while a round of theirs was running: one more round follows it. */
  private readonly pokedWhileRunning = new Set<string>();
  /** true until start() and after stop(): no round is started then. */
  private stopped = true;
  /** Ticks failed in a row (the database is down): told once when it starts and once when it ends, not every second. */
  private failedTicks = 0;

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
      this.intervals.clear();
      for (const m of enabled) this.intervals.set(m.name, m.intervalSeconds);
      for (const m of enabled) {
        if (this.stopped) break;
        if (this.running.has(m.name)) continue;
        if ((this.nextDue.get(m.name) ?? 0) > now) continue;
        this.run(m.name);
      }
      if (this.failedTicks > 0) {
        this.opts.logger.info('scheduler works again', { failedTicks: this.failedTicks });
        this.failedTicks = 0;
      }
    } catch (err) {
      const code = (err as { code?: unknown } | null)?.code;
      const facts = { ...(typeof code === 'string' ? { code } : {}), error: String(err) };
      if (this.failedTicks++ === 0) {
        this.opts.logger.error('scheduler tick failed; trying again every tick', facts);
      } else
        this.opts.logger.debug('scheduler tick failed again', { ...facts, failedTicks: this.failedTicks });
    } finally {
      this.schedule();
    }
  }

  /**
   * A round of `name` now: started at once when none is running, else one more right after the running one
   * (never two at once, never more than one waiting). Ignored before start() and after stop().
   */
  poke(name: string): void {
    if (this.stopped) return;
    if (this.running.has(name)) {
      this.pokedWhileRunning.add(name);
      return;
    }
    this.run(name);
  }

  private run(name: string): void {
    const round = this.opts
      .fetch(name)
      .catch((err) => this.opts.logger.error('scheduled fetch failed', { mailbox: name, error: String(err) }))
      .finally(() => {
        this.running.delete(name);
        const interval = this.intervals.get(name);
        // a mailbox no tick has listed (poked before the first tick saw it) is left to the next tick
        if (interval !== undefined) this.nextDue.set(name, (this.opts.now ?? Date.now)() + interval * 1000);
        if (this.pokedWhileRunning.delete(name) && !this.stopped) this.run(name);
      });
    this.running.set(name, round);
  }

  /** Stops scheduling and waits for the rounds under way. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.pokedWhileRunning.clear();
    if (this.timer) clearTimeout(this.timer);
    await Promise.all(this.running.values());
  }
}
