import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/program.js';
import { type CliRun, cliRunner } from './support/cli.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';

/**
 * What a new user tripped over (issue 10): an empty store made silently in the wrong directory, JSON log lines
 * among the human output, a taken port answered INTERNAL, and an OAuth redirect URL that the CLI and the
 * service disagreed on.
 */
const transcript: string[] = [];
let env: NodeJS.ProcessEnv = {};
const run = cliRunner(() => env, transcript);
let tmp: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'mailintake-human-'));
});
afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/** Every command that only reads (or acts on what must exist already): none may start a store. */
const NEEDS_A_STORE: string[][] = [
  ['mailbox', 'list'],
  ['mailbox', 'show', 'support'],
  ['mailbox', 'remove', 'support'],
  ['mailbox', 'test', 'support'],
  ['mailbox', 'oauth', 'support'],
  ['fetch', '--once'],
  ['requests', 'list'],
  ['requests', 'show', '1'],
  ['log'],
  ['system-log'],
  ['raw', '1', '--out', 'never-written.eml'],
  ['portal', 'list'],
  ['portal', 'show', 'default'],
  ['apikey', 'list'],
  ['apikey', 'revoke', '1'],
  ['oauth', 'providers'],
  ['errors', 'list'],
  ['notifications', 'list'],
  ['smtp', 'show'],
  ['rules', 'list'],
  ['alerts', 'show'],
  ['outbox', 'status'],
];

describe.each(ENGINES)('a missing data directory (%s)', (engine) => {
  let cleanup: () => Promise<void>;
  let dataDir: string;
  beforeAll(async () => {
    const fresh = await freshConfig(engine);
    cleanup = fresh.cleanup;
    // the data directory the admin meant is elsewhere: this one does not exist
    dataDir = path.join(fresh.config.dataDir, 'elsewhere', 'data');
    env = { ...fresh.env, MAILINTAKE_DATA_DIR: dataDir };
    delete env.MAILINTAKE_LOG_LEVEL;
  });
  afterAll(async () => cleanup());

  it.each(NEEDS_A_STORE.map((a) => [a.join(' '), a] as const))(
    '%s: refuses with STORE_NOT_FOUND naming the directory, and creates nothing',
    async (_name, args) => {
      const r = await run(args);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(
        `error STORE_NOT_FOUND: No Mailintake data directory at ${dataDir} (MAILINTAKE_DATA_DIR=${dataDir}). Run the command where the data directory is, or set MAILINTAKE_DATA_DIR to it. A new installation starts with "mailintake serve" or "mailintake mailbox add".\n`,
      );
      expect(fs.existsSync(dataDir)).toBe(false);
      const json = await run([...args, '--json']);
      expect(json.code).toBe(1);
      expect(JSON.parse(json.stdout)).toMatchObject({ error: 'STORE_NOT_FOUND', details: { dataDir } });
    },
  );

  it('a command that sets something up creates the store and says where, once', async () => {
    const first = await run(['portal', 'add', 'sales']);
    expect(first.code).toBe(0);
    const database =
      engine === 'sqlite'
        ? path.join(dataDir, 'mailintake.sqlite')
        : /^PostgreSQL postgres@127\.0\.0\.1:5432\/\S+$/;
    const [notice, rest] = [first.stderr.split('\n')[0] ?? '', first.stderr.split('\n').slice(1).join('\n')];
    expect(
      notice.startsWith(`Created a new store in ${dataDir} (MAILINTAKE_DATA_DIR=${dataDir}); database: `),
    ).toBe(true);
    const shown = notice.replace(/^.*; database: /, '');
    if (typeof database === 'string') expect(shown).toBe(database);
    else expect(shown).toMatch(database);
    expect(rest).toBe('');
    expect(fs.existsSync(dataDir)).toBe(true);
    // from now on the store exists: no notice, and the read-only commands work
    const again = await run(['portal', 'list']);
    expect(again.code).toBe(0);
    expect(again.stderr).toBe('');
    expect(again.stdout).toContain('sales');
  });
});

describe('fetch --once prints each failure once, in words', () => {
  let dovecot: DovecotServer;
  let closedPort: number;
  beforeAll(async () => {
    dovecot = await startDovecot({ users: [{ name: 'human', password: 'human-pw' }] });
    // a port that was just free: nothing listens there
    const probe = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => probe.once('listening', r));
    closedPort = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
  }, 120_000);
  afterAll(async () => dovecot?.stop());

  /** Mailboxes that fail in different ways: a closed port, a refused login, a folder that does not exist. */
  const failing = () => [
    {
      name: 'closed',
      protocol: 'imap',
      server: '127.0.0.1',
      port: closedPort,
      starttls: false,
      username: 'x',
      password: 'x-password',
      emailAddress: 'closed@example.test',
    },
    {
      name: 'badlogin',
      protocol: 'imaps',
      server: 'localhost',
      port: dovecot.ports.imaps,
      caFile: dovecot.caFile,
      username: 'human',
      password: 'not-the-password',
      emailAddress: 'human@example.test',
    },
    {
      name: 'nofolder',
      protocol: 'imaps',
      server: 'localhost',
      port: dovecot.ports.imaps,
      caFile: dovecot.caFile,
      username: 'human',
      password: 'human-pw',
      folder: 'NoSuchFolder',
      emailAddress: 'human@example.test',
    },
    {
      name: 'pop-closed',
      protocol: 'pop',
      server: '127.0.0.1',
      port: closedPort,
      starttls: false,
      username: 'x',
      password: 'x-password',
      emailAddress: 'pop@example.test',
    },
  ];

  it.each(ENGINES)(
    '%s: no JSON lines unless MAILINTAKE_LOG_LEVEL asks, each error message once',
    async (engine) => {
      const fresh = await freshConfig(engine);
      try {
        const base = { ...fresh.env };
        delete base.MAILINTAKE_LOG_LEVEL;
        env = base;
        for (const m of failing()) {
          const file = path.join(tmp, `${engine}-${m.name}.json`);
          await writeFile(file, JSON.stringify(m));
          expect((await run(['mailbox', 'add', '--file', file])).code).toBe(0);
        }
        const r = await run(['fetch', '--once']);
        expect(r.code).toBe(3);
        expect(r.stderr).toBe('');
        const summaries = JSON.parse((await run(['fetch', '--once', '--json'])).stdout) as {
          mailbox: string;
          error: { code: string; message: string } | null;
        }[];
        expect(summaries.map((s) => [s.mailbox, s.error?.code]).sort()).toEqual(
          [
            ['badlogin', 'AUTH_FAILED'],
            ['closed', 'CONNECT_FAILED'],
            ['nofolder', 'FOLDER_NOT_FOUND'],
            ['pop-closed', 'CONNECT_FAILED'],
          ].sort(),
        );
        const out = r.stdout.split('\n');
        for (const s of summaries) {
          const at = out.findIndex((l) => l.startsWith(`${s.mailbox}: `));
          // the failure is one line with nothing under it: the message already says what to check for this
          // server (a generic hint under it said it a second time, the JSON log line a third)
          expect(out[at]).toBe(`${s.mailbox}: not reached: error ${s.error?.code}: ${s.error?.message}`);
          expect(s.error?.message).toMatch(/Check /);
          expect(out[at + 1]?.startsWith('  ')).toBe(false);
          expect(out.filter((l) => l.startsWith(`${s.mailbox}: `))).toHaveLength(1);
        }
        for (const l of r.stdout.split('\n')) expect(l.startsWith('{')).toBe(false);

        // asked for: the JSON lines, on stderr, at that level; stdout unchanged in shape
        env = { ...base, MAILINTAKE_LOG_LEVEL: 'warn' };
        const asked = await run(['fetch', '--once']);
        const json = asked.stderr
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as { level: string; msg: string; mailbox: string });
        expect(
          json
            .filter((j) => j.msg === 'fetch round failed')
            .map((j) => j.mailbox)
            .sort(),
        ).toEqual(['badlogin', 'closed', 'nofolder', 'pop-closed']);
        expect(json.every((j) => j.level === 'warn' || j.level === 'error')).toBe(true);
      } finally {
        await fresh.cleanup();
      }
    },
  );
});

/** Runs `serve` in-process until stopped; `settled` is 'listening', or the exit code if it ended at once. */
async function serveInProcess(args: string[], serveEnv: NodeJS.ProcessEnv) {
  const stop = new AbortController();
  let stdout = '';
  let stderr = '';
  let listening: (v: 'listening') => void = () => {};
  const started = new Promise<'listening'>((resolve) => {
    listening = resolve;
  });
  const done = main(['serve', ...args], {
    env: serveEnv,
    stopSignal: stop.signal,
    stdout: (t) => {
      stdout += t;
      // serve writes its lines one after another in one go: once this resolves, output() has them all
      if (stdout.includes('listening on ')) listening('listening');
    },
    stderr: (t) => {
      stderr += t;
    },
  });
  const settled = await Promise.race([started, done.then((code) => ({ code }))]);
  return {
    settled,
    stop: async () => {
      stop.abort();
      return done;
    },
    output: () => ({ stdout, stderr }),
  };
}

describe.each(ENGINES)('serve and the CLI agree on the OAuth redirect URL (%s)', (engine) => {
  const running: Awaited<ReturnType<typeof serveInProcess>>[] = [];
  it('serve --port: the API, serve’s own line and a CLI command in another process name the same URL', async () => {
    const fresh = await freshConfig(engine);
    try {
      // MAILINTAKE_PORT says 8025 to both; the service runs elsewhere
      const serveEnv = { ...fresh.env, MAILINTAKE_PORT: '8025' };
      const s = await serveInProcess(['--port', '0', '--host', '127.0.0.1'], serveEnv);
      running.push(s);
      expect(s.settled).toBe('listening');
      const out = s.output().stdout;
      const port = /listening on http:\/\/127\.0\.0\.1:(\d+) /.exec(out)?.[1];
      const expected = `http://localhost:${port}/oauth/callback`;
      expect(out).toContain(`OAuth redirect URL: ${expected}\n`);

      const key = JSON.parse((await cliIn(serveEnv, ['apikey', 'create', 'agree', '--json'])).stdout).key;
      const api = (await (
        await fetch(`http://127.0.0.1:${port}/api/v1/oauth/providers`, {
          headers: { Authorization: `Bearer ${key}` },
        })
      ).json()) as { redirectUrl: string };
      expect(api.redirectUrl).toBe(expected);
      const cli = await spawnCli(['oauth', 'providers', '--json'], serveEnv);
      expect(cli.code).toBe(0);
      expect(JSON.parse(cli.stdout).redirectUrl).toBe(expected);
      expect(await s.stop()).toBe(0);

      // the CLI keeps the service's URL after it stopped (it will be started the same way again), and an
      // explicit MAILINTAKE_PUBLIC_URL wins everywhere
      expect(JSON.parse((await cliIn(serveEnv, ['oauth', 'providers', '--json'])).stdout).redirectUrl).toBe(
        expected,
      );
      const pub = { ...serveEnv, MAILINTAKE_PUBLIC_URL: 'https://helpdesk.example.com/' };
      expect(JSON.parse((await cliIn(pub, ['oauth', 'providers', '--json'])).stdout).redirectUrl).toBe(
        'https://helpdesk.example.com/oauth/callback',
      );
      const s2 = await serveInProcess(['--port', '0', '--host', '127.0.0.1'], pub);
      running.push(s2);
      expect(s2.settled).toBe('listening');
      expect(s2.output().stdout).toContain(
        'OAuth redirect URL: https://helpdesk.example.com/oauth/callback\n',
      );
      expect(await s2.stop()).toBe(0);
    } finally {
      // a failed expectation must not leave a service holding the database that is dropped next
      for (const r of running.splice(0)) await r.stop();
      await fresh.cleanup();
    }
  });
});

describe('serve on a port in use', () => {
  it.each(ENGINES)(
    '%s: PORT_IN_USE names the port and what to do; exit 1; the store is not touched',
    async (engine) => {
      const fresh = await freshConfig(engine);
      const taken = net.createServer().listen(0, '127.0.0.1');
      try {
        await new Promise((r) => taken.once('listening', r));
        const port = (taken.address() as net.AddressInfo).port;
        const dataDir = path.join(fresh.config.dataDir, 'new');
        const serveEnv = { ...fresh.env, MAILINTAKE_DATA_DIR: dataDir };
        const s = await serveInProcess(['--port', String(port), '--host', '127.0.0.1'], serveEnv);
        expect(s.settled).toEqual({ code: 1 });
        expect(s.output()).toEqual({
          stdout: '',
          stderr: `error PORT_IN_USE: Port ${port} on 127.0.0.1 is already in use by another program (another Mailintake service?). Stop that program, or choose another port with --port or MAILINTAKE_PORT.\n`,
        });
        expect(fs.existsSync(path.join(dataDir, 'mailintake.sqlite'))).toBe(false);
        // the installed command: the same, with a non-zero exit status; --json gives the code
        const spawned = await spawnCli(
          ['serve', '--port', String(port), '--host', '127.0.0.1', '--json'],
          serveEnv,
        );
        expect(spawned.code).toBe(1);
        expect(JSON.parse(spawned.stdout)).toMatchObject({
          error: 'PORT_IN_USE',
          details: { port, host: '127.0.0.1' },
        });
      } finally {
        await new Promise((r) => taken.close(r));
        await fresh.cleanup();
      }
    },
  );
});

async function cliIn(e: NodeJS.ProcessEnv, args: string[]): Promise<CliRun> {
  return cliRunner(() => e, transcript)(args);
}

const bin = path.resolve(import.meta.dirname, '../bin/mailintake.js');
function spawnCli(args: string[], e: NodeJS.ProcessEnv): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { env: e, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe('the log in words (one-off commands without MAILINTAKE_LOG_LEVEL)', () => {
  it('prints errors as one plain line with their facts, drops what the output already shows', async () => {
    const { createLogger } = await import('../src/kernel/logger.js');
    const lines: string[] = [];
    const log = createLogger('error', (l) => lines.push(l), 'text');
    log.debug('mail prepared', { mailbox: 'a' });
    log.info('mail taken in', { mailbox: 'a' });
    log.warn('fetch round failed', { mailbox: 'a', code: 'CONNECT_FAILED' });
    log.error('drop notification failed', {
      mailbox: 'a',
      attempt: 2,
      skipped: undefined,
      error: 'Error: x',
    });
    log.error('notification outbox pass failed');
    expect(lines).toEqual([
      'error: drop notification failed (mailbox=a, attempt=2, error=Error: x)\n',
      'error: notification outbox pass failed\n',
    ]);
    // the service's format is unchanged: one JSON object per line
    const json: string[] = [];
    createLogger('warn', (l) => json.push(l)).warn('fetch round failed', { mailbox: 'a' });
    expect(JSON.parse(json[0] ?? '')).toMatchObject({
      level: 'warn',
      msg: 'fetch round failed',
      mailbox: 'a',
    });
  });
});
