import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import { isMailintakeError } from '../src/kernel/errors.js';
import { SIGN_IN_MAX_FAILURES } from '../src/kernel/limits.js';
import { ENGINES, freshConfig } from './support/engines.js';

/**
 * A burst of parallel guesses cannot outrun the sign-in throttle: every attempt is counted (atomically, on the
 * real database) before its password is checked, so at most the limit are checked at all; the rest are
 * refused as SIGN_IN_THROTTLED. Sequential attempts and the pages are covered by console-people.test.ts.
 */
describe.each(ENGINES)('sign-in throttle under a parallel burst (%s)', (engine) => {
  let rt: Runtime;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    const fresh = await freshConfig(engine);
    cleanup = fresh.cleanup;
    rt = await openRuntime(fresh.config);
  });
  afterAll(async () => {
    await rt?.close();
    await cleanup?.();
  });

  it(`checks at most ${SIGN_IN_MAX_FAILURES} of 40 parallel wrong passwords; the others are throttled`, async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) =>
        rt.services.users.signIn({
          email: 'nobody@example.org',
          password: `guess-${i}`,
          address: i % 2 === 0 ? '192.0.2.1' : '192.0.2.2',
        }),
      ),
    );
    const codes = results.map((r) =>
      r.status === 'rejected' && isMailintakeError(r.reason) ? r.reason.code : 'signed in',
    );
    const throttled = codes.filter((c) => c === 'SIGN_IN_THROTTLED').length;
    expect(codes).not.toContain('signed in');
    // At most the limit are checked: that is the guarantee. Not exactly the limit: an attempt is counted on two
    // keys (the account, then the address) one statement after the other, so under load an attempt that got
    // the account's 5th count can find its address already past 5 (others counted in between) and be refused
    // too. Seen on a loaded machine: 4 checked. Fewer checked is the safe side.
    expect(40 - throttled).toBeLessThanOrEqual(SIGN_IN_MAX_FAILURES);
    expect(codes.filter((c) => c !== 'SIGN_IN_THROTTLED').every((c) => c === 'UNAUTHORIZED')).toBe(true);
    // and after the burst the account stays closed to the next guess
    const next = await rt.services.users
      .signIn({ email: 'nobody@example.org', password: 'guess-41', address: '192.0.2.3' })
      .then(
        () => 'signed in',
        (e: unknown) => (isMailintakeError(e) ? e.code : String(e)),
      );
    expect(next).toBe('SIGN_IN_THROTTLED');
  });
});
