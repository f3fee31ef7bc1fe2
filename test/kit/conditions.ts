/**
 * Waiting on events instead of sleeping: `until(check)` resolves once `check()` holds, and is re-checked each
 * time the test's event source calls `recheck()` (a fetch round ended, a server received a command…).
 */
export function conditions(): { until(check: () => boolean): Promise<void>; recheck(): void } {
  let waiters: { check: () => boolean; resolve: () => void }[] = [];
  return {
    until: (check) =>
      new Promise<void>((resolve) => {
        if (check()) resolve();
        else waiters.push({ check, resolve });
      }),
    recheck: () => {
      waiters = waiters.filter((w) => {
        if (!w.check()) return true;
        w.resolve();
        return false;
      });
    },
  };
}
