import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../logger.js';
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
});
