import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../store/db.js';
import { createUserRepo } from './repo.js';
import { admission, lockedFor } from './throttle.js';

const limits = { maxFailures: 3, windowMs: 60_000, lockMs: 300_000 };

describe('sign-in throttle: the rule', () => {
  it('admits up to the limit of attempts in the window, refuses beyond it and while locked', () => {
    const t = 1_000_000;
    expect(admission({ count: 3, windowStart: t, lockedUntil: null }, t, limits)).toBe(0);
    expect(admission({ count: 4, windowStart: t, lockedUntil: null }, t, limits)).toBe(300_000);
    expect(admission({ count: 1, windowStart: t, lockedUntil: t + 5 }, t, limits)).toBe(5);
    expect(lockedFor({ count: 1, windowStart: t, lockedUntil: t }, t)).toBe(0);
    expect(lockedFor(null, t)).toBe(0);
  });
});

describe('sign-in throttle: the counters (SQLite in a temporary folder)', () => {
  let dataDir: string;
  let store: Store;
  beforeEach(async () => {
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'mailintake-throttle-'));
    store = await openStore({ dataDir });
  });
  afterEach(async () => {
    await store.close();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('counts every attempt of a parallel burst once, so no more than the limit are admitted', async () => {
    const repo = createUserRepo(store);
    const t = Date.parse('2026-12-07T06:00:00.000Z');
    const states = await Promise.all(
      Array.from({ length: 40 }, () => repo.reserveAttempt('account:x', t, limits)),
    );
    expect(states.map((s) => s.count).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 40 }, (_, i) => i + 1),
    );
    expect(states.filter((s) => admission(s, t, limits) === 0)).toHaveLength(limits.maxFailures);
  });

  it('locks at the limit, starts again after the lock or the window, and a success gives its count back', async () => {
    const repo = createUserRepo(store);
    const t = Date.parse('2026-12-07T06:00:00.000Z');
    for (let i = 0; i < 3; i++) await repo.reserveAttempt('account:y', t, limits);
    await repo.lockIfReached('account:y', t, limits);
    const locked = await repo.reserveAttempt('account:y', t + 1, limits);
    expect(admission(locked, t + 1, limits)).toBe(300_000 - 1);
    const afterLock = await repo.reserveAttempt('account:y', t + 300_000, limits);
    expect(afterLock).toMatchObject({ count: 1, lockedUntil: null });

    await repo.reserveAttempt('address:z', t, limits);
    const second = await repo.reserveAttempt('address:z', t + 1, limits);
    expect(second.count).toBe(2);
    await repo.releaseAttempt('address:z');
    expect((await repo.reserveAttempt('address:z', t + 2, limits)).count).toBe(2);
    expect((await repo.reserveAttempt('address:z', t + 60_000 + 2, limits)).count).toBe(1);
  });
});
