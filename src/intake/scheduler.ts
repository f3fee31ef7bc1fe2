import { SCHEDULER_TICK_MS } from '../kernel/limits.js';
import type { Logger } from '../kernel/logger.js';

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
      /**
       * One round of `name`. `fresh`: the round must start after this request (a poke: IDLE saw new mail that
       * a running round may have listed before); otherwise a round running already will do (the schedule).
       */
      fetch: (name: string, opts: { fresh: boolean }) => Promise<void>;
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
    this.timer = setTimeout(() => void this.tick(), this.opts.tickMs ?? SCHEDULER_TICK_MS);
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
    this.run(name, true);
  }

  private run(name: string, fresh = false): void {
    const round = this.opts
      .fetch(name, { fresh })
      .catch((err) => this.opts.logger.error('scheduled fetch failed', { mailbox: name, error: String(err) }))
      .finally(() => {
        this.running.delete(name);
        const interval = this.intervals.get(name);
        // a mailbox no tick has listed (poked before the first tick saw it) is left to the next tick
        if (interval !== undefined) this.nextDue.set(name, (this.opts.now ?? Date.now)() + interval * 1000);
        if (this.pokedWhileRunning.delete(name) && !this.stopped) this.run(name, true);
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

/**
 * One round per mailbox in this process, whoever asks (the schedule, an IDLE push, the API's "fetch now", the
 * CLI): a second caller never starts a parallel round. It joins or queues, like a coalescing trigger:
 * - `fresh: false` (the schedule): a running round will do; the caller shares its summary.
 * - `fresh: true` (fetch now, a push): the caller needs a round that starts after it asked, since a running
 *   round may have listed the folder before the mail the caller knows of arrived. It gets the round queued
 *   behind the running one; every fresh caller arriving meanwhile shares that same queued round, so at most one
 *   round runs and one waits per mailbox, however many ask.
 * The lease (lease.ts) still keeps rounds of other processes out; this keeps ours from meeting at the lease,
 * where the loser would only get MAILBOX_BUSY.
 */
export class RoundGate<T> {
  private readonly slots = new Map<string, { running: Promise<T>; queued: Deferred<T> | null }>();

  constructor(
    private readonly round: (key: string) => Promise<T>,
    /** Told how each request was served: a round started, the running one joined, or one queued behind it. */
    private readonly onAsk?: (key: string, how: 'started' | 'joined' | 'queued') => void,
  ) {}

  run(key: string, opts: { fresh: boolean }): Promise<T> {
    const slot = this.slots.get(key);
    if (!slot) {
      this.onAsk?.(key, 'started');
      return this.start(key);
    }
    if (!opts.fresh) {
      this.onAsk?.(key, 'joined');
      return slot.running;
    }
    this.onAsk?.(key, 'queued');
    slot.queued ??= deferred<T>();
    return slot.queued.promise;
  }

  /** Resolves once no round runs or waits (rounds asked for meanwhile included). */
  async idle(): Promise<void> {
    while (this.slots.size > 0) {
      await Promise.allSettled(
        [...this.slots.values()].flatMap((s) => [s.running, ...(s.queued ? [s.queued.promise] : [])]),
      );
    }
  }

  private start(key: string): Promise<T> {
    const running = Promise.resolve().then(() => this.round(key));
    const slot = { running, queued: null as Deferred<T> | null };
    this.slots.set(key, slot);
    const next = () => {
      const queued = slot.queued;
      this.slots.delete(key);
      if (queued) queued.resolve(this.start(key));
    };
    running.then(next, next);
    return running;
  }
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T | Promise<T>) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T | Promise<T>) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
