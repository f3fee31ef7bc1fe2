import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliRunner } from './support/cli.js';
import { type SmtpTestServer, startSmtpServer } from './support/smtp.js';

/**
 * The notification commands of the CLI: smtp, rules, alerts, notifications and outbox, run in-process against a
 * real SMTP server on loopback. Every byte printed is checked for the SMTP password at the end.
 */

const SMTP_PASSWORD = 'Cli-Smtp-Secret-31';

let dir: string;
let env: NodeJS.ProcessEnv;
let smtpServer: SmtpTestServer;
const transcript: string[] = [];

const run = cliRunner(() => env, transcript);

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'mailintake-notify-cli-'));
  env = { MAILINTAKE_DATA_DIR: path.join(dir, 'data'), MAILINTAKE_LOG_LEVEL: 'silent' };
  // `smtp show` comes first and only reads: it needs the data directory to exist (STORE_NOT_FOUND otherwise)
  await mkdir(path.join(dir, 'data'));
  smtpServer = await startSmtpServer({
    tls: 'starttls',
    auth: { username: 'mailer', password: SMTP_PASSWORD },
  });
  await writeFile(
    path.join(dir, 'smtp.json'),
    JSON.stringify({
      host: '127.0.0.1',
      port: smtpServer.port,
      username: 'mailer',
      password: SMTP_PASSWORD,
      from: 'helpdesk@example.test',
      caFile: smtpServer.caFile,
    }),
  );
  await writeFile(
    path.join(dir, 'bad-smtp.json'),
    JSON.stringify({ host: 'mail server', port: 0, password: SMTP_PASSWORD, from: 'x' }),
  );
  await writeFile(
    path.join(dir, 'down.json'),
    JSON.stringify({
      name: 'down',
      protocol: 'imap',
      server: '127.0.0.1',
      port: 1, // nothing listens: CONNECT_FAILED
      starttls: false,
      username: 'x',
      password: 'imap-pw',
      emailAddress: 'down@example.test',
    }),
  );
});

afterAll(async () => {
  await smtpServer?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('smtp', () => {
  it('shows that none is configured, rejects a bad file naming every field, saves a good one', async () => {
    const none = await run(['smtp', 'show']);
    expect(none.code).toBe(0);
    expect(none.stdout).toContain('No outgoing SMTP server is configured');
    expect(JSON.parse((await run(['smtp', 'show', '--json'])).stdout)).toBeNull();

    const bad = await run(['smtp', 'set', '--file', path.join(dir, 'bad-smtp.json')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error INVALID_SETTINGS: /);
    for (const field of ['host', 'port', 'password', 'from'])
      expect(bad.stderr).toMatch(new RegExp(`^ {2}${field}: `, 'm'));

    const set = await run(['smtp', 'set', '--file', path.join(dir, 'smtp.json')]);
    expect(set.code).toBe(0);
    expect(set.stdout).toContain(`server:   127.0.0.1:${smtpServer.port}`);
    expect(set.stdout).toContain('TLS:      STARTTLS required');
    expect(set.stdout).toContain('password: (set; never shown)');
    const json = JSON.parse((await run(['smtp', 'show', '--json'])).stdout);
    expect(json).toMatchObject({ host: '127.0.0.1', username: 'mailer', passwordSet: true });
    expect(json).not.toHaveProperty('password');
  });

  it('sends a test mail', async () => {
    const r = await run(['smtp', 'test', '--to', 'admin@example.test']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Test mail to admin@example\.test accepted by the server in \d+ ms: 250 /);
    const [mail] = await smtpServer.waitFor(1);
    expect(mail).toMatchObject({ user: 'mailer', secure: true, to: ['admin@example.test'] });
    expect(mail!.parsed.subject).toBe('Mailintake test mail');
  });
});

describe('rules and alerts', () => {
  it('sets, lists, disables and enables rules; an unknown event is a usage error', async () => {
    const set = await run([
      'rules',
      'set',
      'connection-failure',
      '--to',
      'tech1@example.test, tech2@example.test',
    ]);
    expect(set.code).toBe(0);
    expect(set.stdout).toContain('Rule 1 set.');
    expect(set.stdout).toContain('(every portal)');
    const unknown = await run(['rules', 'set', 'printer-on-fire', '--to', 'a@example.test']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('printer-on-fire');
    const badAddress = await run(['rules', 'set', 'mail-error', '--to', 'not-an-address']);
    expect(badAddress.code).toBe(1);
    expect(badAddress.stderr).toMatch(/^ {2}recipients: /m);

    expect((await run(['rules', 'disable', '1'])).stdout).toBe('Rule 1 (connection-failure) disabled.\n');
    expect((await run(['rules', 'enable', '1'])).stdout).toBe('Rule 1 (connection-failure) enabled.\n');
    const list = JSON.parse((await run(['rules', 'list', '--json'])).stdout);
    expect(list).toEqual([
      expect.objectContaining({
        id: 1,
        event: 'connection-failure',
        portal: null,
        recipients: ['tech1@example.test', 'tech2@example.test'],
        enabled: true,
      }),
    ]);
    expect((await run(['rules', 'enable', '42'])).code).toBe(1);
  });

  it('shows and changes the alert settings', async () => {
    const show = await run(['alerts', 'show']);
    expect(show.stdout).toContain('on: after 5 consecutive failed rounds');
    const nothing = await run(['alerts', 'set']);
    expect(nothing.code).toBe(1);
    expect(nothing.stderr).toContain('give --threshold and/or --enabled');
    expect((await run(['alerts', 'set', '--threshold', '0'])).code).toBe(2);
    const set = await run(['alerts', 'set', '--threshold', '1', '--json']);
    expect(JSON.parse(set.stdout)).toEqual({ threshold: 1, enabled: true });
    const off = await run(['alerts', 'set', '--enabled', 'off']);
    expect(off.stdout).toContain('off: failed rounds are counted');
    await run(['alerts', 'set', '--enabled', 'on']);
  });
});

describe('notifications and the outbox', () => {
  it('a fetch that raises the alert sends its email before the command exits; the bell lists it until read', async () => {
    expect((await run(['mailbox', 'add', '--file', path.join(dir, 'down.json')])).code).toBe(0);
    const mailsBefore = smtpServer.mails.length;
    const fetch = await run(['fetch', '--once', '--mailbox', 'down']);
    expect(fetch.code).toBe(3);
    // sent by the command's own runtime, which waits for the outbox on its way out
    expect(smtpServer.mails).toHaveLength(mailsBefore + 1);
    expect(smtpServer.mails.at(-1)!.to).toEqual(['tech1@example.test', 'tech2@example.test']);
    const status = await run(['outbox', 'status']);
    expect(status.stdout).toMatch(/^0 pending, 0 being retried, 0 given up, 1 sent\n$/);

    const list = await run(['notifications', 'list']);
    expect(list.code).toBe(0);
    expect(list.stdout).toContain('connection-failure');
    expect(list.stdout).toContain('Mailbox down cannot connect: 1 failed round in a row');
    expect(list.stdout).toContain('1–1 of 1; 1 unread');
    const full = await run(['notifications', 'list', '--unread', '--full']);
    expect(full.stdout).toContain('Last error: CONNECT_FAILED');
    expect(JSON.parse((await run(['notifications', 'count', '--json'])).stdout)).toEqual({ unread: 1 });

    const neither = await run(['notifications', 'read']);
    expect(neither.code).toBe(1);
    expect(neither.stderr).toContain('give a notification id or --all');
    expect((await run(['notifications', 'read', '--all'])).stdout).toBe('1 notification marked read.\n');
    expect((await run(['notifications', 'count'])).stdout).toBe('0 unread notifications\n');
    expect((await run(['notifications', 'list', '--unread'])).stdout).toBe('No unread notifications.\n');
    expect((await run(['notifications', 'read', '999'])).code).toBe(1);
    const retry = await run(['outbox', 'retry', '999']);
    expect(retry.code).toBe(1);
    expect(retry.stderr).toMatch(/^error NOT_FOUND: /);
  });

  it('never printed the SMTP password', () => {
    expect(transcript.join('').length).toBeGreaterThan(500);
    for (const t of transcript) expect(t).not.toContain(SMTP_PASSWORD);
  });
});
