import { describe, expect, it } from 'vitest';
import { conditions } from '../../test/kit/conditions.js';
import { prng } from '../../test/kit/prng.js';
import { silentLogger } from '../kernel/logger.js';
import { RoundGate, Scheduler } from './scheduler.js';

/**
 * RoundGate over generated interleavings of asks (schedule: join; fetch now / push: fresh) and round endings,
 * on several mailboxes. Invariants: never two rounds of one mailbox at once; a fresh caller's answer comes
 * from a round that STARTED after it asked; a joining caller's from a round running when it asked or later;
 * at most one round waits per mailbox; every caller is answered; a failing round fails only its own callers.
 */
describe('RoundGate', () => {
  interface Round {
    n: number;
    key: string;
    startedAt: number;
    finish: (fail: boolean) => void;
  }

  for (let seed = 1; seed <= 40; seed++) {
    it(`seed ${seed}: one round per mailbox, fresh callers get a later round, joiners the running one`, async () => {
      const rand = prng(seed);
      let clock = 0;
      let rounds = 0;
      const running = new Map<string, Round>();
      let overlaps = 0;
      const gate = new RoundGate<{ n: number; startedAt: number }>(
        (key) =>
          new Promise((resolve, reject) => {
            const r: Round = {
              n: ++rounds,
              key,
              startedAt: ++clock,
              finish: (fail) => {
                running.delete(key);
                if (fail) reject(new Error(`round ${r.n} failed`));
                else resolve({ n: r.n, startedAt: r.startedAt });
              },
            };
            if (running.has(key)) overlaps++;
            running.set(key, r);
          }),
      );
      const callers: {
        key: string;
        fresh: boolean;
        askedAt: number;
        runningAtAsk: number | null;
        answer?: { n: number; startedAt: number } | Error;
      }[] = [];
      const keys = ['a', 'b', 'c'];
      // every promise reaction queued so far has run once the event loop comes back here
      const settle = () => new Promise<void>((r) => setImmediate(r));
      for (let step = 0; step < 200; step++) {
        const key = keys[Math.floor(rand() * keys.length)]!;
        if (rand() < 0.6) {
          const caller = {
            key,
            fresh: rand() < 0.5,
            askedAt: ++clock,
            runningAtAsk: running.get(key)?.n ?? null,
          } as (typeof callers)[number];
          callers.push(caller);
          gate.run(key, { fresh: caller.fresh }).then(
            (v) => {
              caller.answer = v;
            },
            (err: Error) => {
              caller.answer = err;
            },
          );
        } else {
          running.get(key)?.finish(rand() < 0.1);
        }
        await settle();
      }
      // drain: finish every round until none runs or waits
      while (running.size > 0) {
        for (const r of [...running.values()]) r.finish(false);
        await settle();
      }
      await gate.idle();
      await settle();

      for (const c of callers) {
        expect(c.answer, `caller of ${c.key} at ${c.askedAt} unanswered`).toBeDefined();
        if (c.answer instanceof Error) continue;
        if (c.fresh) expect(c.answer!.startedAt).toBeGreaterThan(c.askedAt);
        else if (c.runningAtAsk !== null) expect(c.answer!.n).toBe(c.runningAtAsk);
        else expect(c.answer!.startedAt).toBeGreaterThan(c.askedAt);
      }
      expect(overlaps).toBe(0);
      // fresh callers asking during the same round all get the ONE round queued behind it
      const shared = new Map<number, Set<unknown>>();
      for (const c of callers) {
        if (!c.fresh || c.runningAtAsk === null) continue;
        const seen = shared.get(c.runningAtAsk) ?? new Set();
        seen.add(c.answer instanceof Error ? c.answer.message : c.answer!.n);
        shared.set(c.runningAtAsk, seen);
      }
      for (const seen of shared.values()) expect(seen.size).toBe(1);
      // callers asking during one round share at most one more: never more rounds than callers
      expect(rounds).toBeLessThanOrEqual(callers.length);
      expect(rounds).toBeGreaterThan(0);
    });
  }
});

describe('Scheduler asks the gate', () => {
  it('a scheduled round may join the running one; a push (poke) needs a fresh one, also its follow-up', async () => {
    const calls: { name: string; fresh: boolean }[] = [];
    const pending: (() => void)[] = [];
    const { until, recheck } = conditions();
    const scheduler = new Scheduler({
      listEnabled: async () => [{ name: 'a', intervalSeconds: 3600 }],
      fetch: (name, opts) =>
        new Promise<void>((resolve) => {
          calls.push({ name, fresh: opts.fresh });
          pending.push(resolve);
          recheck();
        }),
      logger: silentLogger,
    });
    scheduler.start();
    try {
      await until(() => calls.length === 1);
      scheduler.poke('a'); // during the scheduled round: one more, fresh, right after it
      pending.shift()!();
      await until(() => calls.length === 2);
      pending.shift()!();
      await new Promise<void>((r) => setImmediate(r));
      scheduler.poke('a'); // idle: at once, fresh
      await until(() => calls.length === 3);
      pending.shift()!();
      expect(calls).toEqual([
        { name: 'a', fresh: false },
        { name: 'a', fresh: true },
        { name: 'a', fresh: true },
      ]);
    } finally {
      await scheduler.stop();
    }
  });
});
