import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { FetchSummary } from '../src/features/mailboxes/views.js';
import { openStore } from '../src/store/db.js';
import { imapsMailbox } from './kit/mailboxes.js';
import { buildMail } from './kit/mails.js';
import { NO_SENDER_LIMIT } from './kit/sender-limit.js';
import { deliverMaildir, listInbox } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'mailintake.js');

function fetchOnceProcess(env: Record<string, string>, args: string[] = []): Promise<FetchSummary[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, 'fetch', '--once', '--json', ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.on('error', reject);
    child.on('exit', () => resolve(JSON.parse(out) as FetchSummary[]));
  });
}

describe.each(ENGINES)('one fetch per mailbox at a time, across processes, on %s', (engine) => {
  let dovecot: DovecotServer;
  let fresh: Awaited<ReturnType<typeof freshConfig>>;
  const N = 200;

  beforeAll(async () => {
    dovecot = await startDovecot({
      users: [
        { name: 'shared', password: 'shared-pw' },
        { name: 'sched', password: 'sched-pw' },
      ],
    });
    fresh = await freshConfig(engine);
    const rt = await openRuntime(fresh.config);
    await rt.services.portals.update('default', NO_SENDER_LIMIT);
    await rt.services.mailboxes.add({
      name: 'shared',
      protocol: 'imaps',
      server: 'localhost',
      port: dovecot.ports.imaps,
      username: 'shared',
      password: 'shared-pw',
      emailAddress: 'shared@example.test',
      caFile: dovecot.caFile,
    });
    await rt.close();
    await deliverMaildir(
      dovecot,
      'shared',
      Array.from({ length: N }, (_, i) => buildMail({ messageId: `shared-${i}@t` })),
    );
  });
  afterAll(async () => {
    await dovecot?.stop();
    await fresh?.cleanup();
  });

  it('two workers started together take in every mail exactly once', async () => {
    const [a, b] = await Promise.all([fetchOnceProcess(fresh.env), fetchOnceProcess(fresh.env)]);
    const both = [...a!, ...b!];
    expect(both.reduce((n, s) => n + s.created, 0)).toBe(N);
    // The loser either found the lease taken (MAILBOX_BUSY) or came after the winner and found nothing new.
    for (const s of both) if (s.error) expect(s.error.code).toBe('MAILBOX_BUSY');
    const store = await openStore({
      databaseUrl: fresh.env.DATABASE_URL,
      dataDir: fresh.env.MAILINTAKE_DATA_DIR!,
    });
    try {
      const log = await store.db.selectFrom('intake_log').select(['message_id', 'acknowledged']).execute();
      expect(log).toHaveLength(N);
      expect(new Set(log.map((r) => r.message_id)).size).toBe(N);
      expect((await store.db.selectFrom('requests').select('id').execute()).length).toBe(N);
      // Passwords are sealed at rest: the stored row does not contain it.
      const row = await store.db.selectFrom('mailboxes').selectAll().executeTakeFirstOrThrow();
      expect(JSON.stringify(row)).not.toContain('shared-pw');
      expect(row.secrets).toMatch(/^v1\./);
      // The lease was released by the winner.
      expect(row.lease_owner).toBeNull();
    } finally {
      await store.close();
    }
    expect((await listInbox(dovecot, 'shared')).every((m) => m.flags.includes('\\Seen'))).toBe(true);
  });

  it('serve’s scheduler takes in mail on its own and reports each round', async () => {
    const rounds: FetchSummary[] = [];
    let notify: () => void = () => {};
    const rt = await openRuntime(fresh.config, {
      onFetchRound: (s) => {
        rounds.push(s);
        notify();
      },
    });
    try {
      await rt.services.mailboxes.setEnabled('shared', false);
      await rt.services.mailboxes.add({
        name: 'sched',
        protocol: 'imaps',
        server: 'localhost',
        port: dovecot.ports.imaps,
        username: 'sched',
        password: 'sched-pw',
        emailAddress: 'sched@example.test',
        caFile: dovecot.caFile,
      });
      await deliverMaildir(dovecot, 'sched', [buildMail({ subject: 'by the scheduler' })]);
      const firstRound = new Promise<void>((resolve) => {
        notify = () => {
          if (rounds.some((r) => r.mailbox === 'sched')) resolve();
        };
      });
      rt.startScheduler();
      await firstRound;
      expect(rounds.map((r) => r.mailbox)).toEqual(['sched']);
      expect(rounds[0]).toMatchObject({ reached: true, created: 1 });
      const list = await rt.services.requests.list({});
      expect(list.items[0]!.subject).toBe('by the scheduler');
    } finally {
      await rt.close();
    }
  });
});

/**
 * The same mail sent to two of our mailboxes (To: support, Cc: helpdesk) must become one request, also when
 * both mailboxes are fetched at the same moment. On PostgreSQL both rounds used to look the Message-ID up under
 * READ COMMITTED before either committed, and both created a request (the second Message-ID row was skipped
 * on conflict). ROUNDS times, two mailboxes receive the same MAILS mails and are fetched at once: exactly MAILS
 * requests and 2 × MAILS log rows must come of it, every copy `ignored` as the copy it is.
 */
describe.each(ENGINES)('the same mails in two mailboxes fetched at once, on %s', (engine) => {
  const ROUNDS = 20;
  const MAILS = 300;
  /**
   * Rounds with each mailbox fetched by a process of its own: SQLite's two writers on one file (BEGIN IMMEDIATE
   * takes the write lock before the lookups). A regression guard, not the proof of the PostgreSQL race: process
   * start-up jitter often lets one round finish first, so without the lock this variant may still pass there;
   * the in-process rounds above overlap every time.
   */
  const PROCESS_ROUNDS = 5;
  let dovecot: DovecotServer;
  let fresh: Awaited<ReturnType<typeof freshConfig>>;
  let rt: Awaited<ReturnType<typeof openRuntime>>;

  beforeAll(async () => {
    const users = [
      ...Array.from({ length: ROUNDS }, (_, r) => [`to-${r}`, `cc-${r}`]),
      ...Array.from({ length: PROCESS_ROUNDS }, (_, r) => [`pto-${r}`, `pcc-${r}`]),
    ].flat();
    dovecot = await startDovecot({ users: users.map((name) => ({ name, password: `${name}-pw` })) });
    fresh = await freshConfig(engine);
    rt = await openRuntime(fresh.config);
    await rt.services.portals.update('default', NO_SENDER_LIMIT);
    for (const user of users) await rt.services.mailboxes.add(imapsMailbox(dovecot, user, user));
  });
  afterAll(async () => {
    await rt?.close();
    await dovecot?.stop();
    await fresh?.cleanup();
  });

  it(`makes ${MAILS} requests and ${2 * MAILS} log rows, ${ROUNDS} times`, async () => {
    const store = await openStore({ databaseUrl: fresh.env.DATABASE_URL, dataDir: fresh.config.dataDir });
    const count = async (table: 'requests' | 'intake_log') =>
      Number(
        (
          await store.db
            .selectFrom(table)
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    try {
      for (let r = 0; r < ROUNDS; r++) {
        const mails = Array.from({ length: MAILS }, (_, i) =>
          buildMail({
            messageId: `round-${r}-mail-${i}@example.test`,
            to: `to-${r}@example.test`,
            cc: `cc-${r}@example.test`,
          }),
        );
        await deliverMaildir(dovecot, `to-${r}`, mails);
        await deliverMaildir(dovecot, `cc-${r}`, mails);
        const before = { requests: await count('requests'), log: await count('intake_log') };
        const [[a], [b]] = await Promise.all([
          rt.services.fetch.once({ mailbox: `to-${r}` }),
          rt.services.fetch.once({ mailbox: `cc-${r}` }),
        ]);
        expect([a!.error, b!.error], `round ${r}`).toEqual([null, null]);
        expect(a!.created + b!.created, `round ${r}`).toBe(MAILS);
        expect(a!.ignored + b!.ignored, `round ${r}`).toBe(MAILS);
        expect(a!.errored + b!.errored + a!.appended + b!.appended, `round ${r}`).toBe(0);
        expect((await count('requests')) - before.requests, `round ${r}`).toBe(MAILS);
        expect((await count('intake_log')) - before.log, `round ${r}`).toBe(2 * MAILS);
      }
    } finally {
      await store.close();
    }
  }, 600_000);

  it(`does the same with each mailbox fetched by a process of its own, ${PROCESS_ROUNDS} times`, async () => {
    const store = await openStore({ databaseUrl: fresh.env.DATABASE_URL, dataDir: fresh.config.dataDir });
    const count = async (table: 'requests' | 'intake_log') =>
      Number(
        (
          await store.db
            .selectFrom(table)
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    try {
      for (let r = 0; r < PROCESS_ROUNDS; r++) {
        const mails = Array.from({ length: MAILS }, (_, i) =>
          buildMail({ messageId: `process-round-${r}-mail-${i}@example.test` }),
        );
        await deliverMaildir(dovecot, `pto-${r}`, mails);
        await deliverMaildir(dovecot, `pcc-${r}`, mails);
        const before = { requests: await count('requests'), log: await count('intake_log') };
        const [[a], [b]] = await Promise.all([
          fetchOnceProcess(fresh.env, ['--mailbox', `pto-${r}`]),
          fetchOnceProcess(fresh.env, ['--mailbox', `pcc-${r}`]),
        ]);
        expect([a!.error, b!.error], `round ${r}`).toEqual([null, null]);
        expect(a!.created + b!.created, `round ${r}`).toBe(MAILS);
        expect(a!.ignored + b!.ignored, `round ${r}`).toBe(MAILS);
        expect((await count('requests')) - before.requests, `round ${r}`).toBe(MAILS);
        expect((await count('intake_log')) - before.log, `round ${r}`).toBe(2 * MAILS);
      }
    } finally {
      await store.close();
    }
  }, 600_000);
});
