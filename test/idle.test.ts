import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { WatchState } from '../src/connectors/imap/imap-watch.js';
import type { FetchSummary } from '../src/features/mailboxes/views.js';
import { conditions } from './kit/conditions.js';
import { buildMail } from './kit/mails.js';
import { deliverMaildir } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { freshConfig } from './support/engines.js';

/**
 * IMAP IDLE push against a real Dovecot. Every mailbox is scheduled once an hour, so after the first
 * (immediate) round only the IDLE watcher can explain another round. Nothing sleeps: the test waits on the
 * runtime's events (a fetch round ended, a watcher changed state).
 */
function recorder() {
  const rounds: FetchSummary[] = [];
  const states: { mailbox: string; state: WatchState }[] = [];
  const { until, recheck } = conditions();
  return {
    rounds,
    states,
    onFetchRound: (s: FetchSummary) => {
      rounds.push(s);
      recheck();
    },
    onWatchState: (e: { mailbox: string; state: WatchState }) => {
      states.push(e);
      recheck();
    },
    /** Resolves once `check` holds, re-checked at every event. */
    until,
  };
}

describe('IMAP IDLE push, the schedule as fallback', () => {
  let dovecot: DovecotServer;
  let fresh: Awaited<ReturnType<typeof freshConfig>>;

  beforeAll(async () => {
    dovecot = await startDovecot({
      users: [
        { name: 'push', password: 'push-pw' },
        { name: 'quiet', password: 'quiet-pw' },
      ],
    });
    fresh = await freshConfig('sqlite');
  });
  afterAll(async () => {
    await dovecot?.stop();
    await fresh?.cleanup();
  });

  const mailbox = (name: string, extra: Record<string, unknown> = {}) => ({
    name,
    protocol: 'imaps',
    server: 'localhost',
    port: dovecot.ports.imaps,
    username: name,
    password: `${name}-pw`,
    emailAddress: `${name}@example.test`,
    caFile: dovecot.caFile,
    intervalSeconds: 3600,
    ...extra,
  });

  it('a new mail becomes a request at once; idle:false has no watcher; the watcher survives a server crash', async () => {
    const ev = recorder();
    const rt = await openRuntime(fresh.config, {
      onFetchRound: ev.onFetchRound,
      onWatchState: ev.onWatchState,
    });
    try {
      expect((await rt.services.mailboxes.add(mailbox('push'))).idle).toBe(true);
      expect((await rt.services.mailboxes.add(mailbox('quiet', { idle: false }))).idle).toBe(false);
      /** A round of `name` after the `from`-th one created a request. */
      const createdSince = (from: number, name: string) =>
        ev.rounds.slice(from).some((r) => r.mailbox === name && r.created >= 1);

      rt.startScheduler();
      // push: the first, scheduled round, and the one its watcher asks for once it has the folder selected (a
      // mail may have come in between); quiet: the scheduled round only
      const pushRounds = () => ev.rounds.filter((r) => r.mailbox === 'push').length;
      await ev.until(
        () =>
          pushRounds() >= 2 &&
          ev.rounds.some((r) => r.mailbox === 'quiet') &&
          ev.states.some((s) => s.mailbox === 'push' && s.state === 'watching'),
      );
      expect(pushRounds()).toBe(2);
      expect(rt.watching()).toEqual(['push']);
      // idle: false means no watcher at all, not one that failed
      expect(ev.states.filter((s) => s.mailbox === 'quiet')).toEqual([]);

      // 1. push: only the server's EXISTS during IDLE can start this round (the next scheduled one is in an hour)
      let from = ev.rounds.length;
      const sent = Date.now();
      await deliverMaildir(dovecot, 'push', [buildMail({ subject: 'pushed by IDLE' })]);
      await ev.until(() => createdSince(from, 'push'));
      const latencyMs = Date.now() - sent;
      expect(latencyMs).toBeLessThan(30_000);
      expect(pushRounds()).toBe(3);
      let subjects = (await rt.services.requests.list({})).items.map((r) => r.subject);
      expect(subjects).toContain('pushed by IDLE');
      expect(ev.rounds.filter((r) => r.mailbox === 'quiet')).toHaveLength(1);

      // 2. the server crashes (SIGKILL to every Dovecot process) and comes back: the watcher reconnects
      from = ev.rounds.length;
      const statesBefore = ev.states.length;
      await dovecot.kill();
      await ev.until(() =>
        ev.states.slice(statesBefore).some((s) => s.mailbox === 'push' && s.state === 'reconnecting'),
      );
      expect(rt.watching()).toEqual([]);
      await dovecot.restart();
      await deliverMaildir(dovecot, 'push', [buildMail({ subject: 'after the crash' })]);
      await ev.until(() => createdSince(from, 'push'));
      await ev.until(() =>
        ev.states.slice(statesBefore).some((s) => s.mailbox === 'push' && s.state === 'watching'),
      );
      subjects = (await rt.services.requests.list({})).items.map((r) => r.subject);
      expect(subjects).toContain('after the crash');
      expect(rt.watching()).toEqual(['push']);

      // 3. disabling the mailbox stops its watcher at the next tick
      const stoppedBefore = ev.states.length;
      await rt.services.mailboxes.setEnabled('push', false);
      await ev.until(() =>
        ev.states.slice(stoppedBefore).some((s) => s.mailbox === 'push' && s.state === 'stopped'),
      );
      expect(rt.watching()).toEqual([]);
    } finally {
      await rt.close();
    }
    expect(rt.watching()).toEqual([]);
  });
});
