import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import { DEFAULT_ERROR_FOLDER } from '../src/connectors/settings.js';
import type { FetchSummary } from '../src/features/mailboxes/views.js';
import {
  FAILPOINT_NAMES,
  type FailpointName,
  hitFailpoint,
  parseFailpoints,
} from '../src/kernel/failpoints.js';
import { openStore, type Store } from '../src/store/db.js';
import { EwsDouble } from './doubles/ews-double.js';
import { GraphDouble } from './doubles/graph-double.js';
import { conditions } from './kit/conditions.js';
import { buildMail } from './kit/mails.js';
import { deliverMaildir, folderExists, folderMessages, listInbox } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { type EngineName, freshConfig } from './support/engines.js';
import { type SmtpTestServer, startSmtpServer } from './support/smtp.js';

/**
 * Crash coverage made deterministic (DESIGN.md, guarantee 8): for every failpoint (src/kernel/failpoints.ts) and every
 * protocol it applies to, `mailintake fetch --once` is spawned with that failpoint armed to SIGKILL the
 * process, the test checks that it died there (SIGKILL, and the failpoint's marker on stderr — a failpoint
 * never reached fails the test) and that the crash left the state the failpoint names (committed but not
 * acknowledged, \Deleted but not expunged…); then it runs again unarmed and checks exactly once: every mail one
 * intake-log row and one effect (request, conversation or error-mail row), one notice per error mail, and the
 * server in the state of the after-fetch action (inbox empty, error mails in the error folder).
 *
 * The matrix: IMAP (STARTTLS) on both engines, POP3S on PostgreSQL, the Graph double on SQLite, the EWS double
 * (NTLM) on PostgreSQL; every mailbox deletes after fetch (the destructive path, where a lost mail would show)
 * and moves failing mails to its error folder.
 */

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = path.join(repo, 'bin', 'mailintake.js');

type Protocol = 'imap' | 'pops' | 'graph' | 'ews';

/**
 * Twelve mails, fetched in five batches: [0–3] [4] [5–7] [8] [9–11] (mails 4 and 8 are over the 1 MB limit the
 * children run with, so each streams alone and fails with MAIL_TOO_LARGE). 7 requests, 3 conversations
 * (replies to 0, 3 and 9), 2 attachments (mails 0 and 5), 2 error mails.
 */
const BIG = new Set([4, 8]);
const REPLY_TO: Record<number, number> = { 2: 0, 6: 3, 11: 9 };
const WITH_ATTACHMENT = new Set([0, 5]);
const MAILS = 12;
const messageIdOf = (i: number) => `fp-${i}@example.test`;

function mails(tag: string): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < MAILS; i++) {
    const id = `${tag}-${messageIdOf(i)}`;
    if (BIG.has(i)) {
      out.push(
        buildMail({
          subject: `big ${i}`,
          messageId: id,
          body: `The log follows.\r\n${`${'0123456789'.repeat(7)}\r\n`.repeat(21_000)}`,
        }),
      );
      continue;
    }
    const parent = REPLY_TO[i];
    out.push(
      buildMail({
        messageId: id,
        subject: parent === undefined ? `mail ${i}` : `Re: mail ${parent}`,
        ...(parent === undefined ? {} : { inReplyTo: `${tag}-${messageIdOf(parent)}` }),
        ...(WITH_ATTACHMENT.has(i)
          ? {
              attachments: [
                { filename: `log-${i}.txt`, contentType: 'text/plain', content: Buffer.alloc(5_000, 66) },
              ],
            }
          : {}),
      }),
    );
  }
  return out;
}

/**
 * Where each failpoint is armed: the hit that kills. Chosen so that earlier work is done and acknowledged
 * before the crash (batch 3 of 5 for the batch-level points, the 6th mail parsed, the second error mail), so the
 * restart has old and new work to tell apart. `between-dele-and-quit` is the first acknowledgement (batch 1).
 */
const PLAN: { name: FailpointName; at: number; only?: Protocol }[] = [
  { name: 'after-parse', at: 6 },
  { name: 'after-blob-write', at: 3 },
  { name: 'before-commit', at: 3 },
  { name: 'after-commit', at: 3 },
  { name: 'between-store-deleted-and-expunge', at: 2, only: 'imap' },
  { name: 'between-dele-and-quit', at: 1, only: 'pops' },
  { name: 'after-error-record', at: 2 },
  { name: 'after-smtp-accept', at: 1 },
];

/**
 * Every failpoint runs on both engines: on SQLite through IMAP and Graph, on PostgreSQL through POP3S and EWS.
 * IMAP on PostgreSQL adds the points where the two engines differ in what a crash leaves (an open transaction
 * killed: SQLite's WAL vs. a PostgreSQL backend that sees its client gone; committed rows not yet acknowledged)
 * and IMAP's own window; the others would only repeat work done elsewhere, and the run time counts.
 */
const MATRIX: { title: string; protocol: Protocol; engine: EngineName; points?: FailpointName[] }[] = [
  { title: 'IMAP (STARTTLS) on sqlite', protocol: 'imap', engine: 'sqlite' },
  {
    title: 'IMAP (STARTTLS) on postgres',
    protocol: 'imap',
    engine: 'postgres',
    points: ['before-commit', 'after-commit', 'between-store-deleted-and-expunge'],
  },
  { title: 'POP3S on postgres', protocol: 'pops', engine: 'postgres' },
  { title: 'Microsoft Graph (the double) on sqlite', protocol: 'graph', engine: 'sqlite' },
  { title: 'Exchange Web Services (the double, NTLM) on postgres', protocol: 'ews', engine: 'postgres' },
];

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function fetchOnce(env: Record<string, string>, mailbox: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, 'fetch', '--once', '--mailbox', mailbox, '--json'], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

const bare = (id: string | null | undefined) => (id ?? '').replace(/^<|>$/g, '');

describe('the failpoints module', () => {
  it('parses every name with kill, throw and @n; refuses unknown names, actions, counts and doubles', () => {
    for (const name of FAILPOINT_NAMES) {
      expect(parseFailpoints(`${name}=kill`)?.get(name)).toEqual({ action: 'kill', at: 1, hits: 0 });
      expect(parseFailpoints(` ${name}=throw@17 `)?.get(name)).toEqual({ action: 'throw', at: 17, hits: 0 });
    }
    expect(parseFailpoints(undefined)).toBeNull();
    expect(parseFailpoints('')).toBeNull();
    expect(parseFailpoints('after-commit=kill,after-parse=throw@2')?.size).toBe(2);
    for (const bad of [
      'after-comit=kill', // a typo must never silently disarm a test
      'after-commit',
      'after-commit=crash',
      'after-commit=kill@0',
      'after-commit=kill@-1',
      'after-commit=kill@x',
      'after-commit=kill,',
      'after-commit=kill,after-commit=throw',
    ]) {
      expect(() => parseFailpoints(bad), bad).toThrow(/MAILINTAKE_FAILPOINTS/);
    }
  });

  it('throw acts on the n-th hit only; other names pass', () => {
    const armed = parseFailpoints('after-parse=throw@3')!;
    hitFailpoint(armed, 'after-commit');
    hitFailpoint(armed, 'after-parse');
    hitFailpoint(armed, 'after-parse');
    expect(() => hitFailpoint(armed, 'after-parse')).toThrow(
      'mailintake failpoint after-parse: throw (hit 3)',
    );
    hitFailpoint(armed, 'after-parse');
    expect(armed.get('after-parse')!.hits).toBe(4);
  });

  it('an unknown name in MAILINTAKE_FAILPOINTS stops the CLI at start', async () => {
    const fresh = await freshConfig('sqlite');
    try {
      const run = await fetchOnce({ ...fresh.env, MAILINTAKE_FAILPOINTS: 'after-comit=kill' }, 'none');
      expect(run.signal).toBeNull();
      expect(run.code).not.toBe(0);
      // --json: the coded error is the command's output (stdout), as for every other error
      const answer = JSON.parse(run.stdout) as { error: string; message: string };
      expect(answer.error).toBe('INVALID_SETTINGS');
      expect(answer.message).toContain('unknown failpoint "after-comit"');
    } finally {
      await fresh.cleanup();
    }
  });
});

describe('killed at every failpoint, once per protocol: exactly once after the restart', () => {
  let dovecot: DovecotServer;
  let graph: GraphDouble;
  let ews: EwsDouble;
  const GRAPH_TOKEN = 'failpoint-graph-token-0123456789';
  const cases = MATRIX.flatMap((m) =>
    PLAN.filter((p) => (p.only ?? m.protocol) === m.protocol && (m.points?.includes(p.name) ?? true)).map(
      (p) => ({ ...m, ...p }),
    ),
  );
  const users = cases.filter((c) => c.protocol === 'imap' || c.protocol === 'pops').map((_, i) => `u${i}`);

  beforeAll(async () => {
    dovecot = await startDovecot({ users: users.map((name) => ({ name, password: `${name}-pw` })) });
    graph = await GraphDouble.start({ token: GRAPH_TOKEN });
    ews = await EwsDouble.start();
  });
  afterAll(async () => {
    await graph?.stop();
    await ews?.stop();
    await dovecot?.stop();
  });

  let nextUser = 0;

  it.each(cases)('$title: $name=kill@$at', { timeout: 300_000 }, async ({ protocol, engine, name, at }) => {
    const fresh = await freshConfig(engine, { MAILINTAKE_MAX_MAIL_MB: '1', MAILINTAKE_LOG_LEVEL: 'warn' });
    const env = fresh.env;
    const tag = `${protocol}-${engine}-${name}`;
    const address = `${tag}@example.test`;
    const user = protocol === 'imap' || protocol === 'pops' ? users[nextUser++]! : '';
    let smtp: SmtpTestServer | undefined;
    let store: Store | undefined;
    try {
      // --- the mailbox, one notification rule for error mails, and (outbox case) an SMTP server --------------
      const rt = await openRuntime(fresh.config);
      const common = { name: 'fp', afterFetch: 'delete', moveToErrorFolder: true, notifyOnErrorFolder: true };
      if (protocol === 'ews') {
        const account = `EXAMPLE\\${tag}`;
        ews.addAccount(account, 'fp-pw');
        ews.addMailbox(address);
        await rt.services.mailboxes.add({
          ...common,
          protocol,
          connectUrl: ews.url,
          username: account,
          password: 'fp-pw',
          emailAddress: address,
          caFile: ews.caFile,
        });
      } else if (protocol === 'graph') {
        graph.addMailbox(address);
        await rt.services.mailboxes.add({
          ...common,
          protocol,
          graphEndpoint: graph.url,
          accessToken: GRAPH_TOKEN,
          emailAddress: address,
          caFile: graph.caFile,
        });
      } else {
        await rt.services.mailboxes.add({
          ...common,
          protocol,
          starttls: true,
          server: 'localhost',
          port: protocol === 'pops' ? dovecot.ports.pop3s : dovecot.ports.imap,
          username: user,
          password: `${user}-pw`,
          emailAddress: address,
          caFile: dovecot.caFile,
        });
      }
      await rt.services.notificationRules.set({ event: 'mail-error', recipients: ['admins@example.test'] });
      // Only the outbox case has an SMTP server: elsewhere the notification mails wait in the outbox (counted
      // below), so a kill at another point never leaves a half-sent mail to wait out its claim.
      const smtpSettings = async (s: SmtpTestServer) => ({
        host: '127.0.0.1',
        port: s.port,
        from: 'helpdesk@example.test',
        caFile: s.caFile,
      });
      if (name === 'after-smtp-accept') {
        smtp = await startSmtpServer({ tls: 'starttls' });
        await rt.services.smtp.set(await smtpSettings(smtp));
      }
      await rt.close();

      const delivered = mails(tag);
      if (protocol === 'ews') await ews.deliver(address, delivered);
      else if (protocol === 'graph') await graph.deliver(address, delivered);
      else await deliverMaildir(dovecot, user, delivered);

      /** What the server holds: the inbox (message ids, \Deleted) and the error folder (message ids). */
      const server = async (): Promise<{
        inbox: { id: string; deleted: boolean }[];
        errorFolder: string[];
      }> => {
        if (protocol === 'graph' || protocol === 'ews') {
          const double = protocol === 'graph' ? graph : ews;
          return {
            inbox: double.messages(address).map((m) => ({ id: bare(m.messageId), deleted: false })),
            errorFolder: double.messages(address, DEFAULT_ERROR_FOLDER).map((m) => bare(m.messageId)),
          };
        }
        const inbox = (await listInbox(dovecot, user)).map((m) => ({
          id: bare(m.messageId),
          deleted: m.flags.includes('\\Deleted'),
        }));
        const errorFolder = (await folderExists(dovecot, user, DEFAULT_ERROR_FOLDER))
          ? (await folderMessages(dovecot, user, DEFAULT_ERROR_FOLDER)).map((m) => bare(m.messageId))
          : [];
        return { inbox, errorFolder };
      };
      const bigIds = [...BIG].map((i) => `${tag}-${messageIdOf(i)}`);

      // --- the crash ------------------------------------------------------------------------------------------
      const killed = await fetchOnce({ ...env, MAILINTAKE_FAILPOINTS: `${name}=kill@${at}` }, 'fp');
      expect(killed.stderr, 'the failpoint was reached').toContain(
        `mailintake failpoint ${name}: kill (hit ${at})`,
      );
      expect(killed.signal).toBe('SIGKILL');

      store = await openStore({ databaseUrl: env.DATABASE_URL, dataDir: env.MAILINTAKE_DATA_DIR! });
      const db = store.db;
      const log = () => db.selectFrom('intake_log').selectAll().execute();
      const errorMails = () => db.selectFrom('error_mails').selectAll().execute();
      const outbox = () => db.selectFrom('mail_outbox').selectAll().orderBy('id').execute();

      // --- the state the crash left: the window the failpoint names -------------------------------------------
      const atCrash = await log();
      const onServer = await server();
      const taken = atCrash.filter((r) => r.outcome !== 'error');
      switch (name) {
        case 'after-parse':
        case 'after-blob-write':
        case 'before-commit':
          // earlier batches committed and acknowledged; nothing of the crashing batch committed
          expect(taken.length).toBeGreaterThan(0);
          expect(taken.filter((r) => r.acknowledged !== 1)).toEqual([]);
          expect(atCrash.length).toBeLessThan(MAILS);
          break;
        case 'after-commit': {
          // committed, not acknowledged: the mails are still in the inbox
          const open = taken.filter((r) => r.acknowledged !== 1);
          expect(open.length).toBeGreaterThan(0);
          const inbox = new Set(onServer.inbox.map((m) => m.id));
          for (const r of open) expect(inbox.has(bare(r.message_id))).toBe(true);
          break;
        }
        case 'between-store-deleted-and-expunge': {
          // flagged \Deleted, not expunged; each such mail committed
          const flagged = onServer.inbox.filter((m) => m.deleted);
          expect(flagged.length).toBeGreaterThan(0);
          const committed = new Set(taken.map((r) => bare(r.message_id)));
          for (const m of flagged) expect(committed.has(m.id)).toBe(true);
          break;
        }
        case 'between-dele-and-quit':
          // the DELEs of the first batch were forgotten with the session: every mail is still there
          expect(taken.length).toBeGreaterThan(0);
          expect(taken.filter((r) => r.acknowledged !== 1).length).toBeGreaterThan(0);
          expect(onServer.inbox).toHaveLength(MAILS);
          break;
        case 'after-error-record': {
          // both error mails recorded; the second one not yet moved aside
          expect(await errorMails()).toHaveLength(2);
          const inbox = new Set(onServer.inbox.map((m) => m.id));
          expect(bigIds.filter((id) => inbox.has(id))).toEqual([bigIds[1]]);
          break;
        }
        case 'after-smtp-accept': {
          // the SMTP server has the mail; the row is not marked sent
          expect(smtp!.mails).toHaveLength(1);
          const id = Number(/mailintake-outbox-(\d+)-/.exec(smtp!.mails[0]!.parsed.messageId ?? '')![1]);
          const row = (await outbox()).find((r) => r.id === id);
          expect(row).toMatchObject({ sent_at: null, attempts: 1 });
          break;
        }
      }

      // --- the restart, unarmed -------------------------------------------------------------------------------
      const restart = await fetchOnce(env, 'fp');
      expect(restart.signal).toBeNull();
      expect(restart.code, restart.stderr).toBe(0);
      const [summary] = JSON.parse(restart.stdout) as FetchSummary[];
      expect(summary!.error).toBeNull();
      if (['after-commit', 'between-store-deleted-and-expunge', 'between-dele-and-quit'].includes(name)) {
        // the case the intake log exists for: committed before, only acknowledged now
        expect(summary!.reacknowledged).toBeGreaterThan(0);
      }
      if (name === 'after-error-record') expect(summary!.movedToErrorFolder).toBeGreaterThan(0);

      if (smtp) {
        // The dead process's claim on its row lasts 10 minutes (outbox.ts); that time passing is played here by
        // moving the row's due time back. Then a sender pass — woken, as an admin would, by saving the SMTP
        // settings again — sends what is due.
        await db
          .updateTable('mail_outbox')
          .set({ next_attempt_at: new Date(Date.now() - 1000).toISOString() })
          .where('sent_at', 'is', null)
          .execute();
        // Closing right after the save would stop that pass after its first mail (a stopping sender leaves the
        // rest for the next start), so the test waits for the sender's own report of every due row first.
        const waiting = new Set((await outbox()).filter((r) => r.sent_at === null).map((r) => r.id));
        const sent = conditions();
        const again = await openRuntime(fresh.config, {
          onOutboxAttempt: (a) => {
            if (a.ok) waiting.delete(a.id);
            sent.recheck();
          },
        });
        await again.services.smtp.set(await smtpSettings(smtp));
        await sent.until(() => waiting.size === 0);
        await again.close();
      }

      // --- exactly once ---------------------------------------------------------------------------------------
      const check = async () => {
        const rows = await log();
        expect(rows).toHaveLength(MAILS);
        expect(new Set(rows.map((r) => r.server_identity)).size).toBe(MAILS);
        expect(rows.filter((r) => r.outcome === 'created')).toHaveLength(7);
        expect(rows.filter((r) => r.outcome === 'appended')).toHaveLength(3);
        const failed = rows.filter((r) => r.outcome === 'error');
        expect(failed.map((r) => r.error_code)).toEqual(['MAIL_TOO_LARGE', 'MAIL_TOO_LARGE']);
        expect(rows.filter((r) => r.outcome !== 'error' && r.acknowledged !== 1)).toEqual([]);
        const taken = rows.filter((r) => r.outcome !== 'error').map((r) => bare(r.message_id));
        expect(new Set(taken).size).toBe(10);
        const requests = await db.selectFrom('requests').select('message_id').execute();
        expect(requests).toHaveLength(7);
        expect(new Set(requests.map((r) => r.message_id)).size).toBe(7);
        expect(await db.selectFrom('conversations').select('id').execute()).toHaveLength(3);
        expect(await db.selectFrom('attachments').select('id').execute()).toHaveLength(2);
        const errors = await errorMails();
        expect(errors).toHaveLength(2);
        expect(new Set(errors.map((e) => e.server_identity))).toEqual(
          new Set(failed.map((r) => r.server_identity)),
        );
        expect(errors.every((e) => e.status === 'in-error-folder')).toBe(true);
        expect(
          errors.every((e) => e.location === (protocol === 'pops' ? 'kept-locally' : 'server-folder')),
        ).toBe(true);
        // one trace per error mail: the system-log entry and the notification mail
        const logged = await db
          .selectFrom('system_log')
          .select('category')
          .where('category', '=', 'error-folder')
          .execute();
        expect(logged).toHaveLength(2);
        const mailed = await outbox();
        expect(mailed.map((m) => m.event)).toEqual(['mail-error', 'mail-error']);
        // the server: inbox empty (nothing left \Deleted either), the error mails in the error folder
        const end = await server();
        expect(end.inbox).toEqual([]);
        expect(end.errorFolder.sort()).toEqual(protocol === 'pops' ? [] : [...bigIds].sort());
        return mailed;
      };
      const mailed = await check();

      if (smtp) {
        // SMTP cannot give exactly once: a mail accepted before the crash is sent again after it (same
        // Message-ID). Every row ends sent; the receiver sees each mail at least once, at most twice.
        expect(mailed.filter((m) => m.sent_at === null)).toEqual([]);
        const received = new Map<number, number>();
        for (const m of smtp.mails) {
          const id = Number(/mailintake-outbox-(\d+)-/.exec(m.parsed.messageId ?? '')![1]);
          received.set(id, (received.get(id) ?? 0) + 1);
        }
        for (const m of mailed) {
          expect(received.get(m.id) ?? 0).toBeGreaterThanOrEqual(1);
          expect(received.get(m.id) ?? 0).toBeLessThanOrEqual(2);
        }
        expect([...received.keys()].sort()).toEqual(mailed.map((m) => m.id).sort());
      } else {
        // no SMTP server: the notification mails wait, unsent, exactly one per error mail
        expect(mailed.filter((m) => m.sent_at !== null)).toEqual([]);
      }

      // and a further round finds nothing to do: nothing is taken in or acknowledged twice
      const quiet = await openRuntime(fresh.config);
      try {
        const [next] = await quiet.services.fetch.once({ mailbox: 'fp' });
        expect(next).toMatchObject({ fetched: 0, reacknowledged: 0, movedToErrorFolder: 0, error: null });
      } finally {
        await quiet.close();
      }
      await check();
    } finally {
      await store?.close();
      await smtp?.close();
      await fresh.cleanup();
    }
  });
});
