import { describe, expect, it } from 'vitest';
import { afterFailure, type FailureState, lockedFor } from './throttle.js';

const limits = { maxFailures: 3, windowMs: 60_000, lockMs: 300_000 };

function fail(times: number, from: FailureState | null, at: number): FailureState | null {
  let s = from;
  for (let i = 0; i < times; i++) s = afterFailure(s, at, limits);
  return s;
}

describe('sign-in throttle', () => {
  it('locks after the limit of failures within the window, for the lock time', () => {
    const t = 1_000_000;
    const two = fail(2, null, t);
    expect(two?.count).toBe(2);
    expect(lockedFor(two, t)).toBe(0);
    const three = afterFailure(two, t + 10, limits);
    expect(lockedFor(three, t + 10)).toBe(300_000);
    expect(lockedFor(three, t + 10 + 299_999)).toBe(1);
    expect(lockedFor(three, t + 10 + 300_000)).toBe(0);
  });

  it('starts counting again when the window has passed', () => {
    const t = 1_000_000;
    const two = fail(2, null, t);
    const later = afterFailure(two, t + 60_000, limits);
    expect(later).toEqual({ count: 1, windowStart: t + 60_000, lockedUntil: null });
  });

  it('starts counting again after a lock ran out (one failure does not lock again at once)', () => {
    const t = 1_000_000;
    const locked = fail(3, null, t);
    const after = afterFailure(locked, t + 300_001, limits);
    expect(after.count).toBe(1);
    expect(lockedFor(after, t + 300_001)).toBe(0);
  });

  it('an unknown key is not locked', () => {
    expect(lockedFor(null, Date.now())).toBe(0);
  });
});
