import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import { main } from '../src/cli/program.js';
import { conditions } from './kit/conditions.js';
import { buildMail } from './kit/mails.js';
import { deliverMaildir } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { freshConfig } from './support/engines.js';

const modeOf = (p: string) => fs.statSync(p).mode & 0o777;

function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((f) => path.join(dir, f))
    .filter((f) => fs.statSync(f).isFile());
}

/**
 * The data directory holds mail, attachments, sealed credentials and the secret key: every file Mailintake
 * creates in it is for this account only, whatever the umask (SQLite alone would create its file, and so its
 * -wal and -shm, 0644: readable by every account on the host).
 */
describe('file modes in the data directory (sqlite)', () => {
  let dovecot: DovecotServer;
  let fresh: Awaited<ReturnType<typeof freshConfig>>;
  let umask: number;

  beforeAll(async () => {
    // the usual umask: SQLite's 0644 would survive it
    umask = process.umask(0o022);
    dovecot = await startDovecot({ users: [{ name: 'modes', password: 'modes-pw' }] });
    fresh = await freshConfig('sqlite');
  });
  afterAll(async () => {
    process.umask(umask);
    await dovecot?.stop();
    await fresh?.cleanup();
  });

  it('the SQLite file, its WAL and shared memory, the secret key, blobs and raw packs are 0600; the directory 0700', async () => {
    const rt = await openRuntime(fresh.config);
    try {
      await rt.services.mailboxes.add({
        name: 'modes',
        protocol: 'imaps',
        server: 'localhost',
        port: dovecot.ports.imaps,
        username: 'modes',
        password: 'modes-pw',
        emailAddress: 'modes@example.test',
        caFile: dovecot.caFile,
      });
      await deliverMaildir(dovecot, 'modes', [
        buildMail({ subject: 'small' }),
        buildMail({
          subject: 'with an attachment',
          attachments: [{ filename: 'a.txt', contentType: 'text/plain', content: Buffer.alloc(50_000, 97) }],
        }),
      ]);
      const [round] = await rt.services.fetch.once({ mailbox: 'modes' });
      expect(round).toMatchObject({ created: 2, errored: 0 });
      const dir = fresh.config.dataDir;
      // while the store is open: the WAL and shared-memory files exist now
      const db = ['mailintake.sqlite', 'mailintake.sqlite-wal', 'mailintake.sqlite-shm'].map((f) =>
        path.join(dir, f),
      );
      const stored = [...filesUnder(path.join(dir, 'blobs')), ...filesUnder(path.join(dir, 'raw'))];
      expect(stored.length).toBeGreaterThan(0);
      const files = [...db, path.join(dir, 'secret.key'), ...stored];
      expect(files.map((f) => [path.relative(dir, f), modeOf(f).toString(8)])).toEqual(
        files.map((f) => [path.relative(dir, f), '600']),
      );
      expect(modeOf(dir).toString(8)).toBe('700');
    } finally {
      await rt.close();
    }
  });
});

/** `serve` in-process until it listens, then stopped; resolves with what it printed on stderr. */
async function serveOnce(env: Record<string, string>): Promise<string> {
  const stop = new AbortController();
  let stdout = '';
  let stderr = '';
  const { until, recheck } = conditions();
  const done = main(['serve', '--port', '0'], {
    env,
    stdout: (t) => {
      stdout += t;
      recheck();
    },
    stderr: (t) => {
      stderr += t;
    },
    stopSignal: stop.signal,
  });
  let code: number | null = null;
  void done.then((c) => {
    code = c;
    recheck();
  });
  await until(() => stdout.includes('listening') || code !== null);
  stop.abort();
  expect(await done).toBe(0);
  return stderr;
}

/**
 * An older install (or an admin's chmod) left the data directory open to other accounts: `serve` says so at
 * start, naming the path and the chmod to run, on stderr and as a log line. Every directory mode with any group
 * or other bit warns; 0700 does not. A SQLite file an older version created 0644 is named too.
 */
describe('serve warns about a data directory other accounts can read', () => {
  let fresh: Awaited<ReturnType<typeof freshConfig>>;
  beforeAll(async () => {
    fresh = await freshConfig('sqlite');
    // the store and key exist (first start), as in an install being upgraded
    await (await openRuntime(fresh.config)).close();
  });
  afterAll(async () => {
    await fresh?.cleanup();
  });

  const env = () => ({ ...fresh.env, MAILINTAKE_LOG_LEVEL: 'warn' });

  it.each(['700', '750', '705', '755', '770', '711', '701', '710'])(
    'data directory mode %s',
    async (octal) => {
      const mode = Number.parseInt(octal, 8);
      const dir = fresh.config.dataDir;
      fs.chmodSync(dir, mode);
      try {
        const stderr = await serveOnce(env());
        const human = stderr.split('\n').filter((l) => l.startsWith('warning: '));
        const logged = stderr
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as { msg: string; warning?: string })
          .filter((l) => l.msg === 'file permissions');
        if (mode === 0o700) {
          expect(human).toEqual([]);
          expect(logged).toEqual([]);
        } else {
          expect(human).toEqual([
            `warning: the data directory ${dir} is open to other accounts (mode ${mode.toString(8)}): it holds mail and credentials; run: chmod 700 ${dir}`,
          ]);
          expect(logged.map((l) => l.warning)).toEqual([human[0]!.slice('warning: '.length)]);
        }
      } finally {
        fs.chmodSync(dir, 0o700);
      }
    },
  );

  it('a SQLite file left readable by others by an older version is named with its chmod', async () => {
    const file = path.join(fresh.config.dataDir, 'mailintake.sqlite');
    fs.chmodSync(file, 0o644);
    try {
      const stderr = await serveOnce(env());
      expect(stderr).toContain(
        `warning: the database file ${file} is readable by other accounts (mode 644); run: chmod 600 ${file}`,
      );
    } finally {
      fs.chmodSync(file, 0o600);
    }
  });
});
