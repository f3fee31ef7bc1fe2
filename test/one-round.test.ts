import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime, type RuntimeOptions } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import type { Connector } from '../src/connectors/connector.js';
import type { MailboxSettings } from '../src/connectors/settings.js';
import type { FetchSummary } from '../src/features/mailboxes/views.js';
import { createApi } from '../src/http/app.js';
import { MailboxLease } from '../src/intake/lease.js';
import { openStore } from '../src/store/db.js';
import { conditions } from './kit/conditions.js';
import { imapsMailbox } from './kit/mailboxes.js';
import { buildMail } from './kit/mails.js';
import { deliverMaildir } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';
import { checkResponses } from './support/openapi-check.js';

/**
 * Issue 10 item 5: one round per mailbox, whoever asks — the schedule, IDLE pushes, the API's "fetch now" and a
 * second process (a second runtime on the same database). Every round's connection is counted while open
 * (wrapConnector), across both runtimes: two rounds of one mailbox overlapping would show two open at once.
 * Real Dovecot, both engines; nothing sleeps (waits are on the runtime's events).
 */

/** Open connections per mailbox, shared by every runtime of a test, and the most ever open at once. */
function connectionMeter() {
  const open = new Map<string, number>();
  const most = new Map<string, number>();
  const { until, recheck } = conditions();
  let listedHook: ((mailbox: string) => Promise<void>) | null = null;
  const wrap = (c: Connector, s: MailboxSettings): Connector => ({
    traits: c.traits,
    open: () => {
      const n = (open.get(s.name) ?? 0) + 1;
      open.set(s.name, n);
      most.set(s.name, Math.max(most.get(s.name) ?? 0, n));
      recheck();
      return c.open();
    },
    listNew: async () => {
      const listed = await c.listNew();
      if (listedHook) await listedHook(s.name);
      return listed;
    },
    stream: (mail) => c.stream(mail),
    ...(c.fetchMany
      ? { fetchMany: (mails: Parameters<Connector['stream']>[0][]) => c.fetchMany!(mails) }
      : {}),
    acknowledge: (mails, action) => c.acknowledge(mails, action),
    moveTo: (mails, folder) => c.moveTo(mails, folder),
    ...(c.moveBack
      ? {
          moveBack: (...args: Parameters<NonNullable<Connector['moveBack']>>) => c.moveBack!(...args),
        }
      : {}),
    close: async () => {
      try {
        await c.close();
      } finally {
        open.set(s.name, (open.get(s.name) ?? 1) - 1);
        recheck();
      }
    },
  });
  return {
    wrap,
    most: (name: string) => most.get(name) ?? 0,
    until,
    recheck,
    /** Runs `hook` after each listing, inside the round (it may hold the round there). */
    onListed(hook: ((mailbox: string) => Promise<void>) | null) {
      listedHook = hook;
    },
  };
}

const mails = (prefix: string, n: number) =>
  Array.from({ length: n }, (_, i) =>
    buildMail({
      subject: `${prefix} ${i}`,
      messageId: `${prefix}-${i}@one-round.test`,
      body: `${prefix} ${i}`,
    }),
  );

describe.each(ENGINES)('one round per mailbox, whoever asks, on %s', (engine) => {
  let dovecot: DovecotServer;
  let fresh: Awaited<ReturnType<typeof freshConfig>>;

  beforeAll(async () => {
    dovecot = await startDovecot({
      users: [
        { name: 'held', password: 'held-pw' },
        { name: 'storm', password: 'storm-pw' },
      ],
    });
    fresh = await freshConfig(engine);
  });
  afterAll(async () => {
    await dovecot?.stop();
    await fresh?.cleanup();
  });

  async function withRuntime<T>(opts: RuntimeOptions, body: (rt: Runtime) => Promise<T>): Promise<T> {
    const rt = await openRuntime(fresh.config, opts);
    try {
      return await body(rt);
    } finally {
      await rt.close();
    }
  }

  it('"fetch now" asked mid-round waits for a round after it: no parallel round, no mail missed, never MAILBOX_BUSY', async () => {
    const meter = connectionMeter();
    const asked: string[] = [];
    const { until, recheck } = conditions();
    await withRuntime(
      {
        wrapConnector: meter.wrap,
        onRoundAsked: (e) => {
          asked.push(e.how);
          recheck();
        },
      },
      async (rt) => {
        await rt.services.mailboxes.add(imapsMailbox(dovecot, 'held', 'held', { idle: false }));
        const key = (await rt.services.apiKeys.create('ops')).key;
        const api = createApi(rt.services);
        checkResponses(api);
        const fetchNow = async (): Promise<FetchSummary[]> => {
          const res = await api.request('/api/v1/fetch', {
            method: 'POST',
            headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
            body: JSON.stringify({ mailbox: 'held' }),
          });
          expect(res.status).toBe(200);
          return (await res.json()) as FetchSummary[];
        };

        await deliverMaildir(dovecot, 'held', mails('before', 3));
        // the first round is held right after it listed the folder
        let reachedList!: () => void;
        const listed = new Promise<void>((r) => {
          reachedList = r;
        });
        let letGo!: () => void;
        const gate = new Promise<void>((r) => {
          letGo = r;
        });
        meter.onListed(async () => {
          meter.onListed(null);
          reachedList();
          await gate;
        });
        const first = rt.services.fetch.once({ mailbox: 'held' });
        await listed;
        // mail that arrives after the running round listed: only a later round can see it
        await deliverMaildir(dovecot, 'held', mails('after', 2));
        const CALLERS = 6;
        const later = [
          ...Array.from({ length: CALLERS - 2 }, () => fetchNow()),
          rt.services.fetch.once({ mailbox: 'held' }),
          rt.services.fetch.once({ mailbox: 'held' }),
        ];
        await until(() => asked.length >= 1 + CALLERS);
        letGo();
        const [firstSummary] = await first;
        const laterSummaries = (await Promise.all(later)).flat();

        expect(meter.most('held')).toBe(1);
        // every caller during the round shared ONE round queued behind it
        expect(asked).toEqual(['started', ...Array.from({ length: CALLERS }, () => 'queued')]);
        expect(firstSummary).toMatchObject({ created: 3, error: null });
        for (const s of laterSummaries) expect(s).toMatchObject({ created: 2, error: null });
        expect((await rt.services.requests.list({})).total).toBe(5);
      },
    );
  });

  it('API, CLI-style calls, the schedule and IDLE pushes of two runtimes at once: never two rounds of a mailbox together, every mail once', async () => {
    const meter = connectionMeter();
    const ROUNDS = 6;
    const PER_ROUND = 4;
    const busy: FetchSummary[] = [];
    const watching = conditions();
    let isWatching = false;
    const a = await openRuntime(fresh.config, {
      wrapConnector: meter.wrap,
      onWatchState: (e) => {
        isWatching = e.mailbox === 'storm' && e.state === 'watching';
        watching.recheck();
      },
    });
    const b = await openRuntime(fresh.config, { wrapConnector: meter.wrap });
    try {
      await a.services.mailboxes.add(imapsMailbox(dovecot, 'storm', 'storm', { intervalSeconds: 10 }));
      const key = (await a.services.apiKeys.create('storm')).key;
      const api = createApi(a.services);
      checkResponses(api);
      const fetchNow = async (): Promise<FetchSummary[]> => {
        const res = await api.request('/api/v1/fetch', {
          method: 'POST',
          headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ mailbox: 'storm' }),
        });
        expect(res.status).toBe(200);
        return (await res.json()) as FetchSummary[];
      };
      a.startScheduler();
      await watching.until(() => isWatching);
      for (let r = 0; r < ROUNDS; r++) {
        // delivering pokes runtime A through IDLE while the API and both runtimes ask for rounds
        const results = await Promise.all([
          deliverMaildir(dovecot, 'storm', mails(`storm-${r}`, PER_ROUND)).then(() => []),
          fetchNow(),
          fetchNow(),
          fetchNow(),
          a.services.fetch.once({ mailbox: 'storm' }),
          b.services.fetch.once({ mailbox: 'storm' }),
          b.services.fetch.once({}),
        ]);
        for (const s of results.flat()) if (s.error) busy.push(s);
      }
      // one more round after every delivery: whatever a round listed too early is in now
      const [last] = await a.services.fetch.once({ mailbox: 'storm' });
      expect(last?.error).toBeNull();

      expect(meter.most('storm')).toBe(1);
      // across runtimes (processes) the loser meets the lease; inside one runtime nobody does
      for (const s of busy) expect(s.error?.code).toBe('MAILBOX_BUSY');
      const store = await openStore({ databaseUrl: fresh.env.DATABASE_URL, dataDir: fresh.config.dataDir });
      try {
        const log = await store.db.selectFrom('intake_log').select('message_id').execute();
        const storm = log.filter((l) => l.message_id?.includes('storm-'));
        expect(storm).toHaveLength(ROUNDS * PER_ROUND);
        expect(new Set(storm.map((l) => l.message_id)).size).toBe(ROUNDS * PER_ROUND);
      } finally {
        await store.close();
      }
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a lease left by a round of this process that is gone, or by a dead process, is taken at once; a live one is not', async () => {
    const store = await openStore({ databaseUrl: fresh.env.DATABASE_URL, dataDir: fresh.config.dataDir });
    try {
      const { id } = await store.db
        .selectFrom('mailboxes')
        .select('id')
        .where('name', '=', 'held')
        .executeTakeFirstOrThrow();
      const lease = new MailboxLease(store, 120);
      const future = new Date(Date.now() + 3_600_000).toISOString();
      const leaveOwner = (owner: string) =>
        store.db
          .updateTable('mailboxes')
          .set({ lease_owner: owner, lease_until: future })
          .where('id', '=', id)
          .execute();

      const held = await lease.acquire(id);
      expect(held).not.toBeNull();
      // the same lease object, the same process: a second round is refused while the first holds it
      expect(await lease.acquire(id)).toBeNull();
      expect(await new MailboxLease(store, 120).acquire(id)).toBeNull();
      await held!.release();

      // a round of this process whose release never reached the database
      await leaveOwner(`${os.hostname()}:${process.pid}:0123456789abcdef`);
      const own = await lease.acquire(id);
      expect(own).not.toBeNull();
      await own!.release();

      // a process that is gone (pid 2^22 + 1: above the largest pid Linux can give, so no process has it)
      await leaveOwner(`${os.hostname()}:4194305:0123456789abcdef`);
      const dead = await lease.acquire(id);
      expect(dead).not.toBeNull();
      await dead!.release();

      // another machine's round: only its expiry frees the mailbox
      await leaveOwner('other-host.example:1234:0123456789abcdef');
      expect(await lease.acquire(id)).toBeNull();
      await store.db
        .updateTable('mailboxes')
        .set({ lease_owner: null, lease_until: null })
        .where('id', '=', id)
        .execute();
    } finally {
      await store.close();
    }
  });
});
