import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import { openStore } from '../src/store/db.js';
import { EwsDouble } from './doubles/ews-double.js';
import { GraphDouble } from './doubles/graph-double.js';
import { buildMail } from './kit/mails.js';
import { prng } from './kit/prng.js';
import { NO_SENDER_LIMIT } from './kit/sender-limit.js';
import { deliverMaildir, listInbox } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, type EngineName, freshConfig } from './support/engines.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = path.join(repo, 'bin', 'mailintake.js');
const MAILS = 500;
const KILLS = 20;

function fetchOnce(env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, [bin, 'fetch', '--once', '--mailbox', 'crash', '--json'], {
    env: { ...process.env, ...env, MAILINTAKE_LOG_LEVEL: 'debug' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/**
 * Runs `fetch --once` and SIGKILLs it right after its k-th event of a kind plus a random number of further
 * event-loop turns of ours: after the k-th "mail prepared" (downloaded and parsed, blobs written, nothing
 * committed — a batch is committed as one transaction), or after the k-th "mail taken in" (committed, not yet
 * acknowledged on the server). Resolves with how the child ended.
 */
function runAndKill(
  env: Record<string, string>,
  event: 'mail prepared' | 'mail taken in',
  afterEvents: number,
  jitter: number,
): Promise<'killed' | 'finished'> {
  return new Promise((resolve, reject) => {
    const child = fetchOnce(env);
    let seen = 0;
    let buffer = '';
    let killed = false;
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      buffer += chunk;
      let nl = buffer.indexOf('\n');
      while (nl >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        nl = buffer.indexOf('\n');
        if (!killed && line.includes(`"${event}"`) && ++seen >= afterEvents) {
          killed = true;
          let turns = jitter;
          const later = () => (turns-- > 0 ? setImmediate(later) : child.kill('SIGKILL'));
          later();
        }
      }
    });
    child.stdout!.resume();
    child.on('error', reject);
    child.on('exit', (_code, signal) => resolve(signal === 'SIGKILL' ? 'killed' : 'finished'));
  });
}

/**
 * The same crash loop for each connection that matters: IMAP (STARTTLS) on both engines (mark read on
 * SQLite, delete on PostgreSQL, so both acknowledgement paths go through the crashes), and POP3S with delete on
 * SQLite, where a kill between DELE and QUIT must leave the mails on the server to be acknowledged again, and
 * Microsoft Graph (the protocol double) with delete on SQLite, and Exchange Web Services (the protocol double,
 * NTLM) with mark-read on PostgreSQL.
 */
interface CrashCase {
  engine: EngineName;
  protocol: 'imap' | 'pops' | 'graph' | 'ews';
  afterFetch: 'mark-read' | 'delete';
  seed: number;
}
const CASES: (CrashCase & { title: string })[] = [
  ...ENGINES.map((engine) => ({
    title: engine,
    engine,
    protocol: 'imap' as const,
    afterFetch: engine === 'sqlite' ? ('mark-read' as const) : ('delete' as const),
    seed: engine === 'sqlite' ? 20_261_126 : 4_242,
  })),
  {
    title: 'sqlite over POP3S (delete)',
    engine: 'sqlite',
    protocol: 'pops',
    afterFetch: 'delete',
    seed: 1_939,
  },
  {
    title: 'sqlite over Microsoft Graph, the protocol double (delete)',
    engine: 'sqlite',
    protocol: 'graph',
    afterFetch: 'delete',
    seed: 365,
  },
  {
    title: 'postgres over Exchange Web Services, the protocol double with NTLM (mark-read)',
    engine: 'postgres',
    protocol: 'ews',
    afterFetch: 'mark-read',
    seed: 2_013,
  },
];
const GRAPH_TOKEN = 'crash-test-token-0123456789';

describe.each(CASES)(
  'crash safety on $title: SIGKILL at random moments while taking in 500 mails',
  ({ engine, protocol, afterFetch, seed }) => {
    let dovecot: DovecotServer | undefined;
    let graph: GraphDouble | undefined;
    let ews: EwsDouble | undefined;
    let env: Record<string, string>;
    let cleanup: () => Promise<void>;

    beforeAll(async () => {
      const fresh = await freshConfig(engine);
      env = fresh.env;
      cleanup = fresh.cleanup;
      const rt = await openRuntime(fresh.config);
      await rt.services.portals.update('default', NO_SENDER_LIMIT);
      if (protocol === 'ews') {
        ews = await EwsDouble.start();
        ews.addAccount('EXAMPLE\\crash', 'crash-pw');
        ews.addMailbox('crash@example.test');
        await rt.services.mailboxes.add({
          name: 'crash',
          protocol,
          connectUrl: ews.url,
          username: 'EXAMPLE\\crash',
          password: 'crash-pw',
          emailAddress: 'crash@example.test',
          caFile: ews.caFile,
          afterFetch,
        });
      } else if (protocol === 'graph') {
        graph = await GraphDouble.start({ token: GRAPH_TOKEN });
        graph.addMailbox('crash@example.test');
        await rt.services.mailboxes.add({
          name: 'crash',
          protocol,
          graphEndpoint: graph.url,
          accessToken: GRAPH_TOKEN,
          emailAddress: 'crash@example.test',
          caFile: graph.caFile,
          afterFetch,
        });
      } else {
        dovecot = await startDovecot({ users: [{ name: 'crash', password: 'crash-pw' }] });
        await rt.services.mailboxes.add({
          name: 'crash',
          protocol,
          starttls: true,
          server: 'localhost',
          port: protocol === 'pops' ? dovecot.ports.pop3s : dovecot.ports.imap,
          username: 'crash',
          password: 'crash-pw',
          emailAddress: 'crash@example.test',
          caFile: dovecot.caFile,
          afterFetch,
        });
      }
      await rt.close();
      // 450 new requests and 50 replies to earlier ones; every 10th mail carries an attachment.
      const mails: Buffer[] = [];
      for (let i = 0; i < MAILS; i++) {
        const reply = i % 10 === 9;
        mails.push(
          buildMail({
            messageId: `crash-${i}@example.test`,
            subject: reply ? `Re: crash ${i - 1}` : `crash ${i}`,
            ...(reply ? { inReplyTo: `crash-${i - 1}@example.test` } : {}),
            ...(i % 10 === 0
              ? {
                  attachments: [
                    {
                      filename: `log-${i}.txt`,
                      contentType: 'text/plain',
                      content: Buffer.alloc(20_000, 65 + (i % 26)),
                    },
                  ],
                }
              : {}),
          }),
        );
      }
      if (ews) await ews.deliver('crash@example.test', mails);
      else if (graph) await graph.deliver('crash@example.test', mails);
      else await deliverMaildir(dovecot!, 'crash', mails);
    });
    afterAll(async () => {
      await graph?.stop();
      await ews?.stop();
      await dovecot?.stop();
      await cleanup?.();
    });

    // Twenty-odd CLI processes start here one after the other; on a loaded 2-core machine (seen: load 9, 5 s per
    // start) that alone passes the suite's 120 s default, so this case gets its own limit. Nothing is timed.
    it('every mail ends with exactly one intake-log entry and one effect, and is acknowledged on the server', {
      timeout: 900_000,
    }, async () => {
      const random = prng(seed);
      let kills = 0;
      for (let round = 0; round < KILLS; round++) {
        // Every fifth kill aims at the time after a batch committed and before it was acknowledged (progress: the
        // next run acknowledges again); the others before the batch commits (no progress: the whole batch is
        // fetched again). Where in the batch, and how many event-loop turns later, is random.
        const afterCommit = round % 5 === 4;
        const outcome = await runAndKill(
          env,
          afterCommit ? 'mail taken in' : 'mail prepared',
          1 + Math.floor(random() * 100),
          Math.floor(random() * 50),
        );
        if (outcome === 'killed') kills++;
        else break; // a run that was not killed took in everything that was left
      }
      // How many of the kills land before a run finishes, and whether one lands between a commit and its
      // acknowledgement, is up to the scheduler (a kill arrives some turns after the event; on a loaded machine
      // the child may commit, or even finish, first), so neither is asserted: the first run is killed (it has
      // 500 mails to take in, the kill comes within its first 100 events) and the end state below is checked.
      // test/failpoints.test.ts crashes in every named window, that one included, deterministically.
      expect(kills).toBeGreaterThan(0);
      // Then let it finish undisturbed (as many rounds as it takes; each round makes progress).
      for (let round = 0; round < 20; round++) {
        const child = fetchOnce(env);
        child.stderr!.resume();
        let out = '';
        child.stdout!.on('data', (d) => {
          out += d;
        });
        const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
        expect(code).toBe(0);
        const [summary] = JSON.parse(out) as { fetched: number; reacknowledged: number }[];
        if (summary!.fetched === 0 && summary!.reacknowledged === 0) break;
      }

      const store = await openStore({ databaseUrl: env.DATABASE_URL, dataDir: env.MAILINTAKE_DATA_DIR! });
      try {
        const log = await store.db.selectFrom('intake_log').selectAll().execute();
        expect(log).toHaveLength(MAILS);
        expect(new Set(log.map((r) => r.message_id)).size).toBe(MAILS);
        expect(log.filter((r) => r.outcome === 'created')).toHaveLength(450);
        expect(log.filter((r) => r.outcome === 'appended')).toHaveLength(50);
        expect(log.every((r) => r.acknowledged === 1)).toBe(true);
        const requests = await store.db.selectFrom('requests').select(['id', 'message_id']).execute();
        expect(requests).toHaveLength(450);
        expect(new Set(requests.map((r) => r.message_id)).size).toBe(450);
        const conversations = await store.db
          .selectFrom('conversations')
          .select(['request_id', 'message_id'])
          .execute();
        expect(conversations).toHaveLength(50);
        const attachments = await store.db.selectFrom('attachments').select('id').execute();
        expect(attachments).toHaveLength(50);
      } finally {
        await store.close();
      }
      if (graph) {
        expect(graph.messages('crash@example.test')).toEqual([]);
        return;
      }
      if (ews) {
        const inbox = ews.messages('crash@example.test');
        expect(inbox).toHaveLength(MAILS);
        expect(inbox.filter((m) => !m.isRead)).toEqual([]);
        return;
      }
      const server = await listInbox(dovecot!, 'crash');
      if (afterFetch === 'mark-read') {
        expect(server).toHaveLength(MAILS);
        expect(server.filter((m) => !m.flags.includes('\\Seen'))).toEqual([]);
      } else {
        expect(server).toEqual([]);
      }
    });
  },
);
