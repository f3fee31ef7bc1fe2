import crypto from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import { main } from '../src/cli/program.js';
import { MAX_PAGE } from '../src/features/requests/service.js';
import { createApi } from '../src/http/app.js';
import { loadConfig } from '../src/kernel/env.js';
import { nowIso, openStore, type Store } from '../src/store/db.js';
import { buildMail } from './kit/mails.js';
import { cliRunner } from './support/cli.js';
import { appendImap, deliverMaildir, listInbox } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';
import { checkResponses } from './support/openapi-check.js';
import { type SmtpTestServer, startSmtpServer } from './support/smtp.js';

const PASSWORD = 'Tr0ub4dor&3-not-for-print';

let dir: string;
let env: NodeJS.ProcessEnv;
/** Every byte any run printed, to check at the end that the password never appeared. */
const transcript: string[] = [];

const run = cliRunner(() => env, transcript);

const validMailbox = {
  name: 'support',
  protocol: 'imap',
  server: '127.0.0.1',
  // Nothing listens on port 1: fetching must report CONNECT_FAILED, never hang.
  port: 1,
  starttls: false,
  username: 'helpdesk',
  password: PASSWORD,
  emailAddress: 'help@example.com',
};

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'mailintake-cli-'));
  env = { MAILINTAKE_DATA_DIR: path.join(dir, 'data'), MAILINTAKE_LOG_LEVEL: 'silent' };
  await writeFile(path.join(dir, 'valid.json'), JSON.stringify(validMailbox));
  await writeFile(
    path.join(dir, 'invalid.json'),
    JSON.stringify({ name: 'bad name!', protocol: 'pop9', port: 0, password: PASSWORD, surprise: true }),
  );
  await writeFile(path.join(dir, 'broken.json'), `{ "name": "x", "password": "${PASSWORD}", }`);
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('mailbox add', () => {
  it('rejects an invalid file with exit 1, naming every bad field', async () => {
    const r = await run(['mailbox', 'add', '--file', path.join(dir, 'invalid.json')]);
    expect(r.code).toBe(1);
    // the first command of the file starts the store, and says where
    const [notice, ...rest] = r.stderr.split('\n');
    expect(notice).toBe(
      `Created a new store in ${env.MAILINTAKE_DATA_DIR} (MAILINTAKE_DATA_DIR=${env.MAILINTAKE_DATA_DIR}); database: ${path.join(env.MAILINTAKE_DATA_DIR ?? '', 'mailintake.sqlite')}`,
    );
    expect(rest.join('\n')).toMatch(/^error INVALID_SETTINGS: /);
    for (const field of ['name', 'protocol', 'port', 'server', 'username', 'emailAddress', '(file)']) {
      expect(r.stderr).toMatch(new RegExp(`^ {2}${field.replace(/[()]/g, '\\$&')}: `, 'm'));
    }
    expect(r.stderr).toContain('surprise');
    expect(r.stdout).toBe('');
  });

  it('gives the same error as JSON on stdout with --json', async () => {
    const r = await run(['mailbox', 'add', '--file', path.join(dir, 'invalid.json'), '--json']);
    expect(r.code).toBe(1);
    const body = JSON.parse(r.stdout);
    expect(body).toMatchObject({ error: 'INVALID_SETTINGS', message: expect.any(String) });
    expect(body.details.fields.length).toBeGreaterThanOrEqual(6);
  });

  it('rejects a file that is not JSON without quoting it (it may hold the password)', async () => {
    const r = await run(['mailbox', 'add', '--file', path.join(dir, 'broken.json')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('INVALID_JSON');
    expect(r.stderr).toContain('not valid JSON');
    expect(r.stderr).not.toContain(PASSWORD);
    const missing = await run(['mailbox', 'add', '--file', path.join(dir, 'nope.json')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('ENOENT');
  });

  it('adds a valid mailbox, which is then listed', async () => {
    const r = await run(['mailbox', 'add', '--file', path.join(dir, 'valid.json')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Mailbox support added.');
    expect(r.stdout).toMatch(/password:\s+\(set; never shown\)/);
    const list = await run(['mailbox', 'list']);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^NAME\s+PORTAL\s+SERVER/);
    expect(list.stdout).toMatch(/^support\s+default\s+imap:\/\/127\.0\.0\.1:1\s+helpdesk\s+yes/m);
  });

  it('reads the file from stdin with --file -, and reports a taken name as CONFLICT', async () => {
    const stdin = Readable.from([JSON.stringify({ ...validMailbox, name: 'from-stdin' })]);
    const r = await run(['mailbox', 'add', '--file', '-', '--json'], { stdin });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: 'from-stdin', passwordSet: true });
    const again = await run(['mailbox', 'add', '--file', path.join(dir, 'valid.json')]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^error CONFLICT: /);
  });
});

describe('mailbox commands', () => {
  it('--json output parses as JSON, with nothing else on stdout', async () => {
    for (const args of [
      ['mailbox', 'list'],
      ['mailbox', 'show', 'support'],
      ['mailbox', 'disable', 'from-stdin'],
      ['requests', 'list'],
      ['log'],
      ['portal', 'list'],
      ['apikey', 'list'],
    ]) {
      const r = await run([...args, '--json']);
      expect(r.code, args.join(' ')).toBe(0);
      expect(() => JSON.parse(r.stdout), args.join(' ')).not.toThrow();
    }
    const shown = JSON.parse((await run(['mailbox', 'show', 'support', '--json'])).stdout);
    expect(shown).toMatchObject({ name: 'support', port: 1, passwordSet: true });
    expect(shown).not.toHaveProperty('password');
  });

  it('shows, updates, enables, disables and removes', async () => {
    const { password: _kept, ...noPassword } = validMailbox;
    await writeFile(path.join(dir, 'update.json'), JSON.stringify({ ...noPassword, intervalSeconds: 300 }));
    const up = await run(['mailbox', 'update', 'support', '--file', path.join(dir, 'update.json')]);
    expect(up.code).toBe(0);
    expect(up.stdout).toMatch(/interval:\s+300 s/);
    expect((await run(['mailbox', 'disable', 'support'])).stdout).toContain('Mailbox support disabled.');
    expect((await run(['mailbox', 'enable', 'support'])).stdout).toContain('Mailbox support enabled.');
    const removed = await run(['mailbox', 'remove', 'from-stdin']);
    expect(removed.code).toBe(0);
    // the name its history is kept under, with the real id (it printed a placeholder "#ID")
    expect(removed.stdout).toMatch(/they now name it "from-stdin \(removed #\d+\)"/);
    const gone = await run(['mailbox', 'show', 'from-stdin']);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/^error NOT_FOUND: /);
  });

  it('mailbox test on a closed port names the failed step and what to check', async () => {
    const r = await run(['mailbox', 'test', 'support']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error CONNECT_FAILED: /);
    expect(r.stderr).toMatch(/^ {2}failed step: connecting to the server \(TCP\)$/m);
    expect(r.stderr).toMatch(/^ {2}check: Is port \d+ right for protocol "imap"\? Usual ports: IMAPS 993/m);
    expect(r.stderr).toMatch(
      /^ {2}check: Does a firewall or proxy between this machine and 127\.0\.0\.1 allow port \d+\?$/m,
    );
  });
});

describe('fetch --once', () => {
  it('exits 3 and prints CONNECT_FAILED when a mailbox cannot be reached', async () => {
    const r = await run(['fetch', '--once']);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/^MAILBOX\s+FETCHED\s+CREATED\s+APPENDED\s+IGNORED\s+ERRORED\s+REACKNOWLEDGED/);
    expect(r.stdout).toMatch(/^support\s+0\s+0\s+0\s+0\s+0\s+0/m);
    expect(r.stdout).toContain('support: not reached: error CONNECT_FAILED');
  });

  it('gives the summaries as JSON with --json, still exiting 3', async () => {
    const r = await run(['fetch', '--once', '--mailbox', 'support', '--json']);
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout)).toEqual([
      expect.objectContaining({
        mailbox: 'support',
        reached: false,
        error: expect.objectContaining({ code: 'CONNECT_FAILED' }),
      }),
    ]);
  });

  it('needs --once (usage error, exit 2) and documents its exit codes', async () => {
    const r = await run(['fetch']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("'--once'");
    const help = await run(['fetch', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain(
      'Exit status: 0 when every mailbox was reached and its round completed, 3 when one could not be reached or its round stopped on an error',
    );
  });
});

describe('requests, log and portals', () => {
  it('lists requests and reports an unknown one as NOT_FOUND', async () => {
    expect((await run(['requests', 'list', '--limit', '5'])).stdout).toContain('No requests.');
    const r = await run(['requests', 'show', '4242']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error NOT_FOUND: /);
    const j = await run(['requests', 'show', '4242', '--json']);
    expect(JSON.parse(j.stdout)).toMatchObject({ error: 'NOT_FOUND', details: {} });
  });

  it('treats a bad number as a usage error (exit 2)', async () => {
    expect((await run(['requests', 'show', 'abc'])).code).toBe(2);
    expect((await run(['requests', 'list', '--limit', '0'])).code).toBe(2);
    expect((await run(['log', '--outcome', 'exploded'])).code).toBe(2);
    expect((await run(['no-such-command'])).code).toBe(2);
  });

  it('shows the intake log', async () => {
    const r = await run(['log', '--mailbox', 'support', '--limit', '10']);
    expect(r.code).toBe(0);
  });

  it('adds portals and switches header threading', async () => {
    expect((await run(['portal', 'add', 'it-desk'])).stdout).toMatch(/^Portal it-desk added/);
    const set = await run(['portal', 'set', 'it-desk', '--header-threading', 'off']);
    expect(set.stdout).toContain('Portal it-desk: header threading off.');
    const list = JSON.parse((await run(['portal', 'list', '--json'])).stdout);
    expect(list).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'default', headerThreading: true }),
        expect.objectContaining({ name: 'it-desk', headerThreading: false }),
      ]),
    );
    expect((await run(['portal', 'set', 'it-desk', '--header-threading', 'maybe'])).code).toBe(2);
  });

  it('sets an attachment policy from a file, shows the effective policy, and names every bad field', async () => {
    const file = path.join(dir, 'policy.json');
    await writeFile(file, JSON.stringify({ allowedExtensions: ['pdf'], maxSizeMb: 5 }));
    const set = await run(['portal', 'set', 'it-desk', '--attachment-policy', file]);
    expect(set.code).toBe(0);
    expect(set.stdout).toMatch(/max attachment size: +5 MB/);
    const show = await run(['portal', 'show', 'it-desk']);
    expect(show.stdout).toMatch(/allowed extensions: +pdf/);
    expect(show.stdout).toMatch(/max inline image size: +3 MB/);
    expect(show.stdout).toMatch(/denied extensions: +exe, bat/);
    const json = JSON.parse((await run(['portal', 'show', 'it-desk', '--json'])).stdout);
    expect(json.attachmentPolicy).toMatchObject({ maxSizeMb: 5, allowedExtensions: ['pdf'] });

    await writeFile(file, JSON.stringify({ maxSizeMb: -3, inlineImageMaxSizeMb: 0 }));
    const bad = await run(['portal', 'set', 'it-desk', '--attachment-policy', file]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error INVALID_SETTINGS/);
    expect(bad.stderr).toContain('  maxSizeMb: ');
    expect(bad.stderr).toContain('  inlineImageMaxSizeMb: ');
    expect((await run(['portal', 'set', 'it-desk'])).code).toBe(1);
    expect((await run(['portal', 'show', 'nope'])).stderr).toMatch(/^error NOT_FOUND/);
  });

  it('lists the system log', async () => {
    const r = await run(['system-log', '--category', 'attachment-dropped']);
    expect(r.code).toBe(0);
    const j = JSON.parse((await run(['system-log', '--json'])).stdout);
    expect(j).toMatchObject({ items: expect.any(Array), offset: 0 });
  });
});

describe('apikey', () => {
  it('creates a key the API accepts, says it is shown once, and revokes it', async () => {
    const r = await run(['apikey', 'create', 'ci']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('will not be shown again');
    const key = r.stdout.split('\n')[1] ?? '';
    expect(key.length).toBeGreaterThan(20);

    const id = JSON.parse((await run(['apikey', 'list', '--json'])).stdout)[0].id as number;
    const ask = async () => {
      const rt = await openRuntime(loadConfig(env));
      try {
        const api = createApi(rt.services);
        checkResponses(api);
        const res = await api.request('/api/v1/mailboxes', {
          headers: { Authorization: `Bearer ${key}` },
        });
        return res.status;
      } finally {
        await rt.close();
      }
    };
    expect(await ask()).toBe(200);
    expect((await run(['apikey', 'revoke', String(id)])).stdout).toContain(`API key ${id} revoked.`);
    expect(await ask()).toBe(401);
  });

  it('gives the key in JSON with --json', async () => {
    const r = await run(['apikey', 'create', 'robot', '--json']);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: 'robot', key: expect.any(String) });
  });
});

describe('configuration and usage', () => {
  it('prints an invalid environment to stderr and exits 2', async () => {
    const r = await run(['mailbox', 'list'], { env: { ...env, MAILINTAKE_PORT: 'eighty' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('MAILINTAKE_PORT');
    expect(r.stdout).toBe('');
  });

  it('documents the exit codes in --help', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Exit status:');
    expect(r.stdout).toMatch(/3 {2}fetch --once/);
  });
});

describe('serve', () => {
  it('listens, answers the API with a key, and stops on the stop signal', async () => {
    const key = JSON.parse((await run(['apikey', 'create', 'serve-test', '--json'])).stdout).key as string;
    const stop = new AbortController();
    let stdout = '';
    let announce: (url: string) => void = () => {};
    const listening = new Promise<string>((resolve) => {
      announce = resolve;
    });
    const done = main(['serve', '--port', '0', '--host', '127.0.0.1'], {
      env,
      stopSignal: stop.signal,
      stderr: () => {},
      stdout: (t) => {
        stdout += t;
        const url = /listening on (http:\/\/[^ ]+)/.exec(stdout)?.[1];
        if (url) announce(url);
      },
    });
    const url = await listening;
    const port = new URL(url).port;
    expect(stdout).toBe(
      `Mailintake listening on http://127.0.0.1:${port} (data: ${env.MAILINTAKE_DATA_DIR}, database: ${path.join(env.MAILINTAKE_DATA_DIR ?? '', 'mailintake.sqlite')})\n` +
        `OAuth redirect URL: http://localhost:${port}/oauth/callback\n` +
        `No admin yet. Create the first one in another terminal: npx mailintake user create --email YOU@EXAMPLE.ORG --role admin --link, open the link it prints to set the password, then sign in at http://localhost:${port}/\n`,
    );
    expect((await fetch(`${url}/api/openapi.json`)).status).toBe(200);
    expect((await fetch(`${url}/api/v1/mailboxes`)).status).toBe(401);
    const res = await fetch(`${url}/api/v1/mailboxes`, { headers: { Authorization: `Bearer ${key}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    stop.abort();
    expect(await done).toBe(0);
  });
});

describe('secrets', () => {
  it('never printed the mailbox password', () => {
    expect(transcript.join('').length).toBeGreaterThan(1000);
    for (const t of transcript) expect(t).not.toContain(PASSWORD);
  });
});

describe('with a real mailbox (Dovecot)', () => {
  let dovecot: DovecotServer;
  beforeAll(async () => {
    dovecot = await startDovecot({ users: [{ name: 'cliuser', password: 'cli-user-pw' }] });
  });
  afterAll(async () => {
    await dovecot?.stop();
  });

  it('tests the mailbox, fetches once (exit 0) and shows the request without terminal escapes', async () => {
    // An encoded-word lets a sender put ESC into the subject: OSC 0 would retitle the admin's terminal.
    const evil = '\u001b]0;pwned\u0007Printer \u202eon fire';
    await appendImap(
      dovecot,
      'cliuser',
      buildMail({
        subject: `=?utf-8?B?${Buffer.from(evil).toString('base64')}?=`,
        body: 'Line one\r\n\u001b[2JLine two\r\n',
        attachments: [{ filename: 'log.txt', contentType: 'text/plain', content: Buffer.from('boom') }],
      }),
    );
    await writeFile(
      path.join(dir, 'real.json'),
      JSON.stringify({
        name: 'real',
        protocol: 'imap',
        server: dovecot.host,
        port: dovecot.ports.imap,
        caFile: dovecot.caFile,
        username: 'cliuser',
        password: 'cli-user-pw',
        emailAddress: 'support@example.test',
      }),
    );
    expect((await run(['mailbox', 'add', '--file', path.join(dir, 'real.json')])).code).toBe(0);

    const test = await run(['mailbox', 'test', 'real']);
    expect(test.code).toBe(0);
    expect(test.stdout).toMatch(/^Mailbox real reached in \d+ ms\.$/m);
    expect(test.stdout).toMatch(/^ {2}attachments: log\.txt$/m);
    expect(test.stdout).not.toContain('\u001b');

    const fetched = await run(['fetch', '--once', '--mailbox', 'real']);
    expect(fetched.code).toBe(0);
    expect(fetched.stdout).toMatch(/^real\s+1\s+1\s+0\s+0\s+0\s+0\s/m);

    const page = JSON.parse((await run(['requests', 'list', '--json'])).stdout);
    const id = page.items[0].id as number;
    const shown = await run(['requests', 'show', String(id)]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain(`Request #${id}: ?]0;pwned?Printer ?on fire`);
    expect(shown.stdout).toMatch(/^ {4}Line one\n {4}\?\[2JLine two$/m);
    expect(shown.stdout).toMatch(/^ {2}\[\d+\] log\.txt \(text\/plain, 4 bytes\)$/m);
    for (const ch of ['\u001b', '\u0007', '\u202e']) expect(shown.stdout).not.toContain(ch);
    // --json gives the data as stored: escaping is the presenter's job.
    expect(JSON.parse((await run(['requests', 'show', String(id), '--json'])).stdout).subject).toBe(evil);

    const log = await run(['log', '--mailbox', 'real']);
    expect(log.stdout).toMatch(new RegExp(`real\\s+created\\s+#${id}`));

    // A round that reaches the server but stops part-way (here: the server refuses to create the move
    // folder, after the mail was committed) is reported, with exit 3; the next round acknowledges again.
    await appendImap(dovecot, 'cliuser', buildMail({ subject: 'to be moved' }));
    await writeFile(
      path.join(dir, 'badmove.json'),
      JSON.stringify({
        name: 'badmove',
        protocol: 'imap',
        server: dovecot.host,
        port: dovecot.ports.imap,
        caFile: dovecot.caFile,
        username: 'cliuser',
        password: 'cli-user-pw',
        emailAddress: 'support@example.test',
        afterFetch: 'move',
        moveToFolder: 'Done//Tickets', // refused by Dovecot: adjacent hierarchy separators
      }),
    );
    expect((await run(['mailbox', 'add', '--file', path.join(dir, 'badmove.json')])).code).toBe(0);
    const stopped = await run(['fetch', '--once', '--mailbox', 'badmove']);
    expect(stopped.code).toBe(3);
    expect(stopped.stdout).toMatch(/^badmove: round stopped early: error ACK_FAILED: /m);
    expect((await run(['mailbox', 'disable', 'badmove'])).code).toBe(0);

    // The raw mail is kept as fetched; `raw` saves it, and never overwrites a file.
    const entry = JSON.parse((await run(['log', '--mailbox', 'real', '--json'])).stdout).items[0];
    const out = path.join(dir, 'saved.eml');
    const saved = await run(['raw', String(entry.id), '--out', out]);
    expect(saved.code).toBe(0);
    expect(await readFile(out, 'utf8')).toContain('Line one');
    expect((await run(['raw', String(entry.id), '--out', out])).code).toBe(1);
  });
});

describe('the error folder (real Dovecot POP3S and IMAP)', () => {
  let dovecot: DovecotServer;
  /** The default portal's own outgoing server: its sealed password is resealed with the rest. */
  let portalSmtp: SmtpTestServer;
  let efEnv: NodeJS.ProcessEnv;
  const line = `${'0123456789'.repeat(7)}\r\n`;
  const big = buildMail({
    subject: 'Scanned contract',
    from: 'Erika <erika@example.test>',
    messageId: 'cli-big@example.test',
    body: line.repeat(21_000),
  });
  const ef = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) =>
    run(args, { env: { ...efEnv, ...extraEnv } });
  beforeAll(async () => {
    dovecot = await startDovecot({
      users: ['clipop', 'cliimap'].map((n) => ({ name: n, password: `${n}-pw` })),
    });
    // a data dir of its own, and mails over 1 MB fail with MAIL_TOO_LARGE
    efEnv = { ...env, MAILINTAKE_DATA_DIR: path.join(dir, 'ef-data'), MAILINTAKE_MAX_MAIL_MB: '1' };
    portalSmtp = await startSmtpServer({
      tls: 'starttls',
      auth: { username: 'portal-relay', password: 'portal-relay-pw' },
    });
  });
  afterAll(async () => {
    await dovecot?.stop();
    await portalSmtp?.close();
  });

  it('lists error mails, shows a report, saves POP3’s kept mail, moves mails to the inbox, and reseals after a key rotation', async () => {
    const file = (name: string, extra: Record<string, unknown>) => {
      const f = path.join(dir, `${name}.json`);
      return writeFile(
        f,
        JSON.stringify({
          name,
          server: 'localhost',
          username: name,
          password: `${name}-pw`,
          emailAddress: `${name}@example.test`,
          caFile: dovecot.caFile,
          moveToErrorFolder: true,
          ...extra,
        }),
      ).then(() => f);
    };
    const pop = await file('clipop', { protocol: 'pops', port: dovecot.ports.pop3s });
    const imap = await file('cliimap', {
      protocol: 'imap',
      port: dovecot.ports.imap,
      stopAfterErrors: 1,
      idle: false,
    });
    expect((await ef(['mailbox', 'add', '--file', pop])).code).toBe(0);
    expect((await ef(['mailbox', 'add', '--file', imap])).code).toBe(0);
    await deliverMaildir(dovecot, 'clipop', [big]);
    await deliverMaildir(dovecot, 'cliimap', [big]);

    const fetched = await ef(['fetch', '--once']);
    // a stop at the error-folder limit is not an unreachable mailbox: exit 0, but said in red letters
    expect(fetched.code).toBe(0);
    expect(fetched.stdout).toMatch(
      /^MAILBOX\s+FETCHED\s+CREATED\s+APPENDED\s+IGNORED\s+ERRORED\s+REACKNOWLEDGED\s+ERROR FOLDER\s+TIME$/m,
    );
    expect(fetched.stdout).toMatch(/^clipop\s+1\s+0\s+0\s+0\s+1\s+0\s+1\s/m);
    expect(fetched.stdout).toMatch(/^cliimap: fetching stopped: the error folder reached its limit/m);
    const shownBox = await ef(['mailbox', 'show', 'cliimap']);
    expect(shownBox.stdout).toMatch(/^enabled:\s+no \(stopped-by-errors\)$/m);
    expect(shownBox.stdout).toMatch(
      /^error folder:\s+"Mailintake Errors", 1 mail\(s\), stop fetching at 1, notify$/m,
    );

    const listed = await ef(['errors', 'list']);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/^ID\s+TIME\s+MAILBOX\s+CODE\s+WHERE\s+STATUS$/m);
    expect(listed.stdout).toMatch(
      /clipop\s+MAIL_TOO_LARGE\s+kept by Mailintake \(POP3\)\s+in-error-folder$/m,
    );
    expect(listed.stdout).toMatch(/cliimap\s+MAIL_TOO_LARGE\s+folder Mailintake Errors\s+in-error-folder$/m);
    const items = JSON.parse((await ef(['errors', 'list', '--json'])).stdout).items as {
      id: number;
      mailbox: string;
    }[];
    const popId = items.find((i) => i.mailbox === 'clipop')!.id;
    const imapId = items.find((i) => i.mailbox === 'cliimap')!.id;

    const shown = await ef(['errors', 'show', String(popId)]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/^ {2}subject:\s+Scanned contract$/m);
    expect(shown.stdout).toMatch(/^ {2}from:\s+"?Erika"? <erika@example\.test>$/m);
    expect(shown.stdout).toMatch(
      /^ {2}error:\s+MAIL_TOO_LARGE: The mail is larger than the maximum of 1048576 bytes\.$/m,
    );

    const out = path.join(dir, 'kept.eml');
    expect((await ef(['errors', 'raw', String(popId), '--out', out])).code).toBe(0);
    expect((await readFile(out)).equals(big)).toBe(true);
    const noCopy = await ef(['errors', 'raw', String(imapId), '--out', path.join(dir, 'none.eml')]);
    expect(noCopy.code).toBe(1);
    expect(noCopy.stderr).toMatch(/^error NOT_FOUND: /);

    const back = await ef(['errors', 'move-to-inbox', 'cliimap']);
    expect(back.code).toBe(0);
    expect(back.stdout).toContain(
      'Mailbox cliimap: 1 error mail(s) moved to the inbox; 0 left in the error folder.',
    );
    expect(back.stdout).toContain('Fetching is still stopped: run "mailintake mailbox enable cliimap"');
    expect((await listInbox(dovecot, 'cliimap')).map((m) => m.subject)).toEqual(['Scanned contract']);

    // a portal's own outgoing server: its password is sealed in its own instance setting (smtp.portal.<id>)
    const portalSmtpFile = path.join(dir, 'portal-smtp.json');
    await writeFile(
      portalSmtpFile,
      JSON.stringify({
        host: '127.0.0.1',
        port: portalSmtp.port,
        username: 'portal-relay',
        password: 'portal-relay-pw',
        from: 'desk@example.test',
        caFile: portalSmtp.caFile,
      }),
    );
    expect((await ef(['portal', 'smtp', 'set', 'default', '--file', portalSmtpFile])).code).toBe(0);

    // key rotation: a new key, the old one as previous; reseal; then the old key is not needed any more
    const keyFile = path.join(efEnv.MAILINTAKE_DATA_DIR!, 'secret.key');
    const oldKey = (await readFile(keyFile, 'utf8')).trim();
    const newKey = crypto.randomBytes(32).toString('base64');
    const rotated = { MAILINTAKE_SECRET_KEY: newKey, MAILINTAKE_SECRET_KEY_PREVIOUS: oldKey };
    const resealed = await ef(['secret-key', 'reseal', '--json'], rotated);
    expect(resealed.code).toBe(0);
    expect(JSON.parse(resealed.stdout)).toMatchObject({
      mailboxSecrets: { resealed: 2, current: 0, unreadable: [] },
      // the portal's outgoing server's password
      instanceSecrets: { resealed: 1, current: 0, unreadable: [] },
      // two reports and POP3's kept mail
      errorMailBlobs: { resealed: 3, current: 0, unreadable: [] },
    });
    const again = await ef(['secret-key', 'reseal'], rotated);
    expect(again.stdout).toContain('Mailbox secrets: 0 resealed, 2 already current.');
    expect(again.stdout).toContain(
      "Instance secrets (SMTP passwords, the instance's and portals'): 0 resealed, 1 already current.",
    );
    expect(again.stdout).toContain('MAILINTAKE_SECRET_KEY_PREVIOUS can be removed');
    const onlyNew = { MAILINTAKE_SECRET_KEY: newKey };
    expect((await ef(['errors', 'show', String(imapId)], onlyNew)).stdout).toMatch(
      /^ {2}subject:\s+Scanned contract$/m,
    );
    const out2 = path.join(dir, 'kept-after-rotation.eml');
    expect((await ef(['errors', 'raw', String(popId), '--out', out2], onlyNew)).code).toBe(0);
    expect((await readFile(out2)).equals(big)).toBe(true);
    expect((await ef(['mailbox', 'test', 'clipop'], onlyNew)).code).toBe(0);
    // the portal's server still logs in with its password, opened with the new key alone
    const portalTest = await ef(['portal', 'smtp', 'test', 'default', '--to', 'admin@example.test'], onlyNew);
    expect(portalTest.code, portalTest.stderr).toBe(0);
    const [portalMail] = await portalSmtp.waitFor(1);
    expect(portalMail).toMatchObject({ user: 'portal-relay', to: ['admin@example.test'] });
    // the old key alone opens nothing any more
    const oldOnly = await ef(['errors', 'show', String(imapId), '--json'], { MAILINTAKE_SECRET_KEY: oldKey });
    expect(oldOnly.code).toBe(1);
    expect(JSON.parse(oldOnly.stdout).error).toBe('INTERNAL');
  });
});

describe('the installed command', () => {
  it('stops quietly when its reader goes away (mailintake … | head), without an EPIPE crash', async () => {
    const { spawn } = await import('node:child_process');
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailintake-epipe-'));
    try {
      const bin = path.resolve(import.meta.dirname, '../bin/mailintake.js');
      const child = spawn(process.execPath, [bin, 'oauth', 'providers'], {
        env: { ...process.env, MAILINTAKE_DATA_DIR: dataDir, MAILINTAKE_LOG_LEVEL: 'silent' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      // like `| head -0`: the reader is gone before the command prints (the output fits a pipe's buffer, so a
      // reader that leaves after the first chunk could miss the failure)
      child.stdout.destroy();
      const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
      expect(stderr).not.toContain('EPIPE');
      expect(code).toBe(0);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe.each(ENGINES)('lists: filters, one limit, --all, who (%s)', (engine) => {
  let fresh: Awaited<ReturnType<typeof freshConfig>>;
  let store: Store;
  const runHere = cliRunner(() => fresh.env, transcript);
  /** More than one page of each list, so that --all has to page on. */
  const N = MAX_PAGE + 234;

  beforeAll(async () => {
    fresh = await freshConfig(engine);
    await writeFile(path.join(dir, `lists-${engine}.json`), JSON.stringify(validMailbox));
    expect((await runHere(['mailbox', 'add', '--file', path.join(dir, `lists-${engine}.json`)])).code).toBe(
      0,
    );
    store = await openStore({ databaseUrl: fresh.config.databaseUrl, dataDir: fresh.config.dataDir });
    const portal = await store.db.selectFrom('portals').select('id').executeTakeFirstOrThrow();
    const mb = await store.db.selectFrom('mailboxes').select('id').executeTakeFirstOrThrow();
    const now = nowIso();
    for (let i = 0; i < N; i += 200) {
      const n = Math.min(200, N - i);
      const reqs = await store.db
        .insertInto('requests')
        .values(
          Array.from({ length: n }, (_, k) => ({
            portal_id: portal.id,
            mailbox_id: mb.id,
            subject: `request ${i + k}`,
            to_addresses: '[]',
            cc_addresses: '[]',
            status: 'open',
            created_at: now,
            updated_at: now,
          })),
        )
        .returning('id')
        .execute();
      await store.db
        .insertInto('intake_log')
        .values(
          reqs.map((r, k) => ({
            mailbox_id: mb.id,
            server_identity: `INBOX;1;${i + k}`,
            outcome: 'created',
            request_id: r.id,
            reasons: '[]',
            created_at: now,
            updated_at: now,
          })),
        )
        .execute();
      await store.db
        .insertInto('system_log')
        .values(
          Array.from({ length: n }, (_, k) => ({
            created_at: now,
            actor: 'api-key:filler',
            level: 'info',
            category: 'oauth',
            message: `entry ${i + k}`,
            details: '{}',
          })),
        )
        .execute();
    }
  });

  afterAll(async () => {
    await store?.close();
    await fresh?.cleanup();
  });

  /** Each list command, with what its filter names and the rows --all must give. */
  const LISTS = [
    { args: ['log'], table: 'intake_log' },
    { args: ['requests', 'list'], table: 'requests' },
    { args: ['system-log'], table: 'system_log' },
  ] as const;

  it('answers a filter naming nothing that exists with an error, never "empty"', async () => {
    const cases: [string[], string][] = [
      [['log', '--mailbox', 'no-such-mailbox'], 'NOT_FOUND'],
      [['requests', 'list', '--portal', 'no-such-portal'], 'NOT_FOUND'],
      [['system-log', '--category', 'no-such-category'], 'INVALID_SETTINGS'],
      [['errors', 'list', '--mailbox', 'no-such-mailbox'], 'NOT_FOUND'],
    ];
    for (const [args, code] of cases) {
      const r = await runHere(args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr, args.join(' ')).toMatch(new RegExp(`^error ${code}: `));
      expect(r.stdout).toBe('');
    }
    expect((await runHere(['system-log', '--category', 'nope'])).stderr).toContain('settings-changed');
    // the real names still filter
    expect(JSON.parse((await runHere(['log', '--mailbox', 'support', '--json'])).stdout).total).toBe(N);
    expect(
      JSON.parse((await runHere(['requests', 'list', '--portal', 'default', '--json'])).stdout).total,
    ).toBe(N);
  });

  it('takes the same --limit the service does on every list (1 to MAX_PAGE)', async () => {
    for (const args of [...LISTS.map((l) => l.args), ['errors', 'list'], ['notifications', 'list']]) {
      const ok = await runHere([...args, '--limit', String(MAX_PAGE), '--json']);
      expect(ok.code, `${args.join(' ')}: ${ok.stderr}`).toBe(0);
      expect(JSON.parse(ok.stdout).limit).toBe(MAX_PAGE);
      expect((await runHere([...args, '--limit', String(MAX_PAGE + 1)])).code, args.join(' ')).toBe(2);
    }
  });

  it('--all reads every entry across pages, once each, newest first', async () => {
    for (const { args, table } of LISTS) {
      const r = await runHere([...args, '--all', '--json']);
      expect(r.code, r.stderr).toBe(0);
      const ids = (JSON.parse(r.stdout) as { id: number }[]).map((e) => e.id);
      const expected = (await store.db.selectFrom(table).select('id').orderBy('id', 'desc').execute()).map(
        (x) => x.id,
      );
      expect(expected.length).toBeGreaterThan(MAX_PAGE);
      expect(ids, args.join(' ')).toEqual(expected);
      const text = await runHere([...args, '--all']);
      expect(text.stdout.trimEnd().split('\n').at(-1)).toBe(`${expected.length} entries`);
      // one header line, one line per entry, the count
      expect(text.stdout.trimEnd().split('\n')).toHaveLength(expected.length + 2);
      expect((await runHere([...args, '--all', '--limit', '5'])).code).toBe(2);
    }
    const none = await runHere(['log', '--all', '--json', '--outcome', 'error']);
    expect(JSON.parse(none.stdout)).toEqual([]);
  });

  it('shows the intake-log id of a request, which `raw` takes (and says so)', async () => {
    const req = await store.db
      .selectFrom('requests')
      .select('id')
      .orderBy('id', 'desc')
      .executeTakeFirstOrThrow();
    const log = await store.db
      .selectFrom('intake_log')
      .select('id')
      .where('request_id', '=', req.id)
      .executeTakeFirstOrThrow();
    const shown = await runHere(['requests', 'show', String(req.id)]);
    expect(shown.stdout).toMatch(
      new RegExp(`^ {2}intake log: +#${log.id} \\(raw mail: mailintake raw ${log.id} --out FILE\\)$`, 'm'),
    );
    expect(JSON.parse((await runHere(['requests', 'show', String(req.id), '--json'])).stdout).logId).toBe(
      log.id,
    );
    const help = await runHere(['raw', '--help']);
    expect(help.stdout).toContain('not a request id');
    expect((await runHere(['requests', 'show', '--help'])).stdout).toContain('request id');
    const wrong = await runHere(['raw', '987654', '--out', path.join(dir, 'never.eml')]);
    expect(wrong.stderr).toMatch(
      /^error NOT_FOUND: no intake log entry #987654 \(this takes an intake log id, not a request id/,
    );
  });

  it('shows who made each system-log change', async () => {
    const r = await runHere(['system-log', '--category', 'settings-changed']);
    expect(r.stdout.split('\n')[0]).toMatch(/^ID +TIME +ACTOR +LEVEL +CATEGORY +MESSAGE$/);
    expect(r.stdout).toMatch(/ cli:\S+ +info +settings-changed +mailbox support added/);
    expect((await runHere(['system-log', '--limit', '1'])).stdout).toContain('api-key:filler');
  });
});
