import { SIGN_IN_LOCK_MS, SIGN_IN_MAX_FAILURES, SIGN_IN_WINDOW_MS } from '../../kernel/limits.js';

/** The failed sign-ins counted for one key (an account or an address). Pure: the repo stores it. */
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
 * The state after one more failure: counted in the current window (a new window once the old one passed), and
 * locked for `lockMs` when the count reaches the limit.
 */
export function afterFailure(
  state: FailureState | null,
  now: number,
  limits: ThrottleLimits = DEFAULT_THROTTLE,
): FailureState {
  const fresh =
    !state ||
    now - state.windowStart >= limits.windowMs ||
    (lockedFor(state, now) === 0 && state.lockedUntil !== null);
  const count = fresh ? 1 : state.count + 1;
  const windowStart = fresh ? now : state.windowStart;
  return { count, windowStart, lockedUntil: count >= limits.maxFailures ? now + limits.lockMs : null };
}
