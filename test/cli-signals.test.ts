import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../src/store/db.js';
import { imapsMailbox } from './kit/mailboxes.js';
import { buildMail } from './kit/mails.js';
import { NO_SENDER_LIMIT } from './kit/sender-limit.js';
import { cliRunner } from './support/cli.js';
import { deliverMaildir } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';

/**
 * SIGTERM/SIGINT stop the service cleanly: the running batch ends with what it committed, the lease is released,
 * and a restart takes in the rest: no mail lost, none twice. Killing `npm start` used to leave the service
 * running: npm signals its `sh -c`, which died without passing the signal on to node.
 */
const root = path.resolve(import.meta.dirname, '..');
const bin = path.join(root, 'bin', 'mailintake.js');
const MAILS = 150;
let dovecot: DovecotServer;

beforeAll(async () => {
  dovecot = await startDovecot({
    users: ENGINES.flatMap((e) => [0, 1, 2].map((i) => `sig-${e}-${i}`)).map((name) => ({
      name,
      password: `${name}-pw`,
    })),
  });
}, 120_000);
afterAll(async () => dovecot?.stop());

interface Started {
  child: ChildProcess;
  stderr: () => string;
  /** Resolves when every holder of the pipes is gone: npm and, through `sh`, the service itself. */
  closed: Promise<number | null>;
}

/** Starts the command and resolves once a mail has been taken in (JSON log line 'mail taken in'). */
async function startUntilTaking(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<Started> {
  const child = spawn(cmd, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let taking: () => void = () => {};
  const takingIn = new Promise<void>((resolve) => {
    taking = resolve;
  });
  child.stdout?.resume();
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (stderr.includes('"msg":"mail taken in"')) taking();
  });
  const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  await Promise.race([takingIn, closed.then(() => Promise.reject(new Error(`ended early:\n${stderr}`)))]);
  return { child, stderr: () => stderr, closed };
}

/** The pids under `pid` (Linux /proc), to clean up a service that outlived npm when the test fails. */
function descendants(pid: number): number[] {
  const out: number[] = [];
  for (const task of safeReaddir(`/proc/${pid}/task`)) {
    let children = '';
    try {
      children = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8');
    } catch {}
    for (const c of children.split(' ').filter(Boolean).map(Number)) out.push(c, ...descendants(c));
  }
  return out;
}
function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

async function freePort(): Promise<number> {
  const probe = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => probe.once('listening', r));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise((r) => probe.close(r));
  return port;
}

describe.each(ENGINES)('stopping the service with a signal (%s)', (engine) => {
  it.each([
    ['node bin/mailintake.js serve', 'SIGTERM', 0],
    ['node bin/mailintake.js serve', 'SIGINT', 1],
    ['npm start', 'SIGTERM', 2],
  ] as const)(
    '%s, %s during a round: exit 0, lease released, a restart takes in the rest exactly once',
    async (how, signal, account) => {
      const fresh = await freshConfig(engine);
      const name = `sig-${engine}-${account}`;
      let started: Started | undefined;
      let spawned: number[] = [];
      try {
        const mails = Array.from({ length: MAILS }, (_, i) =>
          buildMail({
            subject: `signal ${i}`,
            messageId: `sig-${engine}-${how.length}-${signal}-${i}@example.test`,
          }),
        );
        await deliverMaildir(dovecot, name, mails);
        const run = cliRunner(() => ({ ...fresh.env, MAILINTAKE_LOG_LEVEL: 'silent' }), []);
        const file = path.join(fresh.config.dataDir, 'mailbox.json');
        await import('node:fs/promises').then((fs) =>
          fs.writeFile(file, JSON.stringify(imapsMailbox(dovecot, 'sig', name, { password: `${name}-pw` }))),
        );
        expect((await run(['mailbox', 'add', '--file', file])).code).toBe(0);
        const limit = path.join(fresh.config.dataDir, 'mail-settings.json');
        await import('node:fs/promises').then((fs) =>
          fs.writeFile(limit, JSON.stringify(NO_SENDER_LIMIT.mailSettings)),
        );
        expect((await run(['portal', 'set', 'default', '--mail-settings', limit])).code).toBe(0);

        const env = {
          ...process.env,
          ...fresh.env,
          MAILINTAKE_LOG_LEVEL: 'info',
          MAILINTAKE_PORT: String(await freePort()),
        };
        started =
          how === 'npm start'
            ? await startUntilTaking('npm', ['start', '--silent'], env)
            : await startUntilTaking(process.execPath, [bin, 'serve'], env);
        // recorded now: once npm is gone, a service it left behind is no longer found under it
        spawned = descendants(started.child.pid ?? 0);
        started.child.kill(signal);
        const code = await started.closed;
        if (how !== 'npm start') expect(code).toBe(0);
        // the service itself handled the signal (it did not just die with npm)
        expect(started.stderr()).toContain('Stopping: finishing running fetches');
        expect(started.stderr()).not.toContain('"level":"error"');

        const store = await openStore(fresh.config);
        let takenAtStop: number;
        try {
          const box = await store.db
            .selectFrom('mailboxes')
            .select(['lease_owner'])
            .where('name', '=', 'sig')
            .executeTakeFirstOrThrow();
          expect(box.lease_owner).toBeNull();
          takenAtStop = Number(
            (
              await store.db
                .selectFrom('requests')
                .select((eb) => eb.fn.countAll().as('n'))
                .executeTakeFirstOrThrow()
            ).n,
          );
        } finally {
          await store.close();
        }
        expect(takenAtStop).toBeGreaterThan(0);

        // restart: the rest, once
        const again = await run(['fetch', '--once']);
        expect(again.code).toBe(0);
        const check = await openStore(fresh.config);
        try {
          const rows = await check.db.selectFrom('requests').select(['message_id']).execute();
          expect(rows).toHaveLength(MAILS);
          expect(new Set(rows.map((r) => r.message_id)).size).toBe(MAILS);
        } finally {
          await check.close();
        }
      } finally {
        if (started && started.child.pid !== undefined) {
          for (const pid of spawned) {
            try {
              process.kill(pid, 'SIGKILL');
            } catch {}
          }
          started.child.kill('SIGKILL');
        }
        await fresh.cleanup();
      }
    },
    120_000,
  );
});
