import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MailintakeError } from '../kernel/errors.js';
import { createLogger, silentLogger } from '../kernel/logger.js';
import { type ScheduledMailbox, Scheduler } from './scheduler.js';

/** The scheduler against fake timers: time is driven by the test, nothing waits on the wall clock. */
describe('Scheduler', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function harness(mailboxes: ScheduledMailbox[]) {
    const calls: string[] = [];
    const pending = new Map<string, () => void>();
    const scheduler = new Scheduler({
      listEnabled: async () => mailboxes,
      fetch: (name) =>
        new Promise<void>((resolve) => {
          calls.push(name);
          pending.set(name, resolve);
        }),
      logger: silentLogger,
      tickMs: 1000,
      now: () => Date.now(),
    });
    const finish = async (name: string) => {
      pending.get(name)?.();
      pending.delete(name);
      await vi.advanceTimersByTimeAsync(0);
    };
    return { scheduler, calls, finish };
  }

  it('fetches every enabled mailbox at once on start, then each on its own interval after its round ended', async () => {
    const boxes = [
      { name: 'a', intervalSeconds: 10 },
      { name: 'b', intervalSeconds: 30 },
    ];
    const { scheduler, calls, finish } = harness(boxes);
    scheduler.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toEqual(['a', 'b']);
    await finish('a');
    await finish('b');
    await vi.advanceTimersByTimeAsync(9_000);
    expect(calls).toEqual(['a', 'b']);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(calls).toEqual(['a', 'b', 'a']);
    await finish('a');
    await vi.advanceTimersByTimeAsync(20_000);
    expect(calls).toEqual(['a', 'b', 'a', 'a', 'b']);
    await finish('a');
    await finish('b');
    await scheduler.stop();
  });

  it('never starts a second round of a mailbox while one is running, however long it takes', async () => {
    const { scheduler, calls, finish } = harness([{ name: 'slow', intervalSeconds: 10 }]);
    scheduler.start();
    await vi.advanceTimersByTimeAsync(120_000);
    expect(calls).toEqual(['slow']);
    await finish('slow');
    // The interval counts from the end of the slow round, not from its start.
    await vi.advanceTimersByTimeAsync(9_000);
    expect(calls).toEqual(['slow']);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(calls).toEqual(['slow', 'slow']);
    await finish('slow');
    await scheduler.stop();
  });

  it('picks up added mailboxes and drops disabled ones at the next tick', async () => {
    const boxes: ScheduledMailbox[] = [{ name: 'a', intervalSeconds: 10 }];
    const { scheduler, calls, finish } = harness(boxes);
    scheduler.start();
    await vi.advanceTimersByTimeAsync(0);
    await finish('a');
    boxes.push({ name: 'new', intervalSeconds: 10 });
    boxes.shift();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls).toEqual(['a', 'new']);
    await finish('new');
    await scheduler.stop();
  });

  it('stop() waits for the rounds under way and schedules nothing after', async () => {
    const { scheduler, calls, finish } = harness([{ name: 'a', intervalSeconds: 10 }]);
    scheduler.start();
    await vi.advanceTimersByTimeAsync(0);
    let stopped = false;
    const stopping = scheduler.stop().then(() => {
      stopped = true;
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(stopped).toBe(false);
    await finish('a');
    await stopping;
    expect(stopped).toBe(true);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls).toEqual(['a']);
  });

  describe('poke (IMAP IDLE saw new mail)', () => {
    it('runs a round at once when none is running, and the interval then counts from its end', async () => {
      const { scheduler, calls, finish } = harness([{ name: 'a', intervalSeconds: 60 }]);
      scheduler.start();
      await vi.advanceTimersByTimeAsync(0);
      await finish('a');
      await vi.advanceTimersByTimeAsync(10_000);
      expect(calls).toEqual(['a']);
      scheduler.poke('a');
      expect(calls).toEqual(['a', 'a']);
      await finish('a');
      // the poked round reset the schedule: next due 60 s after it ended, not 60 s after the first round
      await vi.advanceTimersByTimeAsync(55_000);
      expect(calls).toEqual(['a', 'a']);
      await vi.advanceTimersByTimeAsync(6_000);
      expect(calls).toEqual(['a', 'a', 'a']);
      await finish('a');
      await scheduler.stop();
    });

    it('a poke during a running round makes exactly one more round, right after it', async () => {
      const { scheduler, calls, finish } = harness([{ name: 'a', intervalSeconds: 3600 }]);
      scheduler.start();
      await vi.advanceTimersByTimeAsync(0);
      expect(calls).toEqual(['a']);
      scheduler.poke('a');
      await vi.advanceTimersByTimeAsync(5_000);
      // never two at once
      expect(calls).toEqual(['a']);
      await finish('a');
      expect(calls).toEqual(['a', 'a']);
      await finish('a');
      await vi.advanceTimersByTimeAsync(60_000);
      expect(calls).toEqual(['a', 'a']);
      await scheduler.stop();
    });

    it('several pokes during a round still make one more round, not a pile-up', async () => {
      const { scheduler, calls, finish } = harness([
        { name: 'a', intervalSeconds: 3600 },
        { name: 'b', intervalSeconds: 3600 },
      ]);
      scheduler.start();
      await vi.advanceTimersByTimeAsync(0);
      expect(calls).toEqual(['a', 'b']);
      for (let i = 0; i < 5; i++) scheduler.poke('a');
      await finish('a');
      expect(calls).toEqual(['a', 'b', 'a']);
      // a poke while the follow-up runs queues one more again, and only one
      scheduler.poke('a');
      scheduler.poke('a');
      await finish('a');
      expect(calls).toEqual(['a', 'b', 'a', 'a']);
      await finish('a');
      await finish('b');
      await vi.advanceTimersByTimeAsync(60_000);
      // b was never poked: only its first round
      expect(calls).toEqual(['a', 'b', 'a', 'a']);
      await scheduler.stop();
    });

    it('is ignored before start() and after stop(); stop() drops a waiting follow-up round', async () => {
      const { scheduler, calls, finish } = harness([{ name: 'a', intervalSeconds: 3600 }]);
      scheduler.poke('a');
      expect(calls).toEqual([]);
      scheduler.start();
      await vi.advanceTimersByTimeAsync(0);
      scheduler.poke('a');
      const stopping = scheduler.stop();
      await finish('a');
      await stopping;
      scheduler.poke('a');
      await vi.advanceTimersByTimeAsync(60_000);
      expect(calls).toEqual(['a']);
    });
  });
  it('a database outage failing every tick is said once with its code, its end once, and rounds resume', async () => {
    const logged: { level: string; msg: string; code?: unknown }[] = [];
    const logger = createLogger('debug', (line) => logged.push(JSON.parse(line)));
    let down = true;
    const calls: string[] = [];
    const scheduler = new Scheduler({
      listEnabled: async () => {
        if (down) {
          throw new MailintakeError('STORE_FAILED', 'the database is unavailable (ECONNREFUSED)', {
            retryable: true,
          });
        }
        return [{ name: 'a', intervalSeconds: 10 }];
      },
      fetch: async (name) => {
        calls.push(name);
      },
      logger,
      tickMs: 1000,
      now: () => Date.now(),
    });
    scheduler.start();
    await vi.advanceTimersByTimeAsync(30_000);
    const loud = () => logged.filter((l) => l.level !== 'debug').map((l) => [l.level, l.msg, l.code]);
    expect(loud()).toEqual([['error', 'scheduler tick failed; trying again every tick', 'STORE_FAILED']]);
    expect(logged.filter((l) => l.msg === 'scheduler tick failed again').length).toBeGreaterThanOrEqual(29);
    expect(calls).toEqual([]);
    down = false;
    await vi.advanceTimersByTimeAsync(1_000);
    expect(calls).toEqual(['a']);
    expect(loud().slice(1)).toEqual([['info', 'scheduler works again', undefined]]);
    await scheduler.stop();
  });
});
