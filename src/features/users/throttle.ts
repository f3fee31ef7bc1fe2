import { SIGN_IN_LOCK_MS, SIGN_IN_MAX_FAILURES, SIGN_IN_WINDOW_MS } from '../../kernel/limits.js';

/**
 * The sign-in attempts counted for one key (an account or an address) in its window: failures, and attempts
 * still being checked. The repo counts them atomically; the rules here are pure.
 */
export interface FailureState {
  count: number;
  windowStart: number;
  lockedUntil: number | null;
}

export interface ThrottleLimits {
  maxFailures: number;
  windowMs: number;
  lockMs: number;
}

export const DEFAULT_THROTTLE: ThrottleLimits = {
  maxFailures: SIGN_IN_MAX_FAILURES,
  windowMs: SIGN_IN_WINDOW_MS,
  lockMs: SIGN_IN_LOCK_MS,
};

/** Milliseconds sign-in stays refused for this key (0: not locked). */
export function lockedFor(state: FailureState | null, now: number): number {
  return state?.lockedUntil != null && state.lockedUntil > now ? state.lockedUntil - now : 0;
}

/**
 * Whether an attempt that has just been counted (repo.reserveAttempt) may go on: the milliseconds to wait, 0
 * when it may. Refused while the key is locked, and also when more attempts than the limit were counted in the
 * window: parallel guesses each count before any password is checked, so a burst cannot outrun the lock.
 */
export function admission(
  state: FailureState,
  now: number,
  limits: ThrottleLimits = DEFAULT_THROTTLE,
): number {
  const locked = lockedFor(state, now);
  if (locked > 0) return locked;
  return state.count > limits.maxFailures ? limits.lockMs : 0;
}
