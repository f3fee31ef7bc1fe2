/**
 * `npm run bench`: the Measure section of issue 2, in one run, against a throwaway Dovecot and the local
 * PostgreSQL. See README "Benchmarks" for what each number includes.
 *
 *   (a) raw full-source fetch of the mailbox with imapflow alone (IMAPS, UID FETCH 1:* BODY.PEEK[])
 *  (a2) the same mails with our POP3 client alone (POP3S, UIDL + pipelined RETR of every mail); Dovecot sets
 *       \Seen on RETRieved mail at QUIT, so \Seen is removed again afterwards (not timed) for (c)
 *   (b) parse-only: the sources from (a), held in memory, each through parseMail with a FileBlobStore in a temp
 *       dir (attachment blobs are written and fsynced, as in the product)
 *   (c) end-to-end ingest (services.fetch.once, IMAPS, mark-read) on SQLite, then on PostgreSQL; the same
 *       mailbox is used for both: \Seen is removed from every mail between the two runs
 *  (c2) end-to-end ingest on SQLite of the same mailbox as a POP3S mailbox with afterFetch "leave" (fresh data
 *       dir), right after (c) SQLite: POP3 lists every mail whatever its \Seen flag, and "leave" removes
 *       nothing, so the server mailbox is the same for the PostgreSQL run that follows
 *   (d) one mail with a 50 MB attachment, ingested end to end in a child Node process (bench/big-child.ts)
 *   (e) one mail with a 95 MB text/plain body, and one with a 60 MB HTML body, each alone in a child process
 *       (SQLite); (f) the 95 MB text, the 60 MB HTML and a second 95 MB text mail in three mailboxes fetched at
 *       the same time in one child process, as `serve`'s scheduler runs mailboxes side by side: peak RSS
 *
 * Environment: BENCH_MAILS (default 5000) for a quick smoke run; BENCH_BIG_MB (default 50);
 * BENCH_TEXT_BODY_MB (95), BENCH_HTML_BODY_MB (60); BENCH_ONLY=bodies runs (e) and (f) alone.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ImapFlow } from 'imapflow';
import pg from 'pg';
import { openRuntime } from '../src/app/compose.js';
import { Pop3Client } from '../src/connectors/pop3/pop3-client.js';
import type { FetchSummary } from '../src/features/mailboxes/views.js';
import { parseMail } from '../src/mail/parse.js';
import { FileBlobStore } from '../src/store/blobs/blob-store.js';
import { deliverMaildir } from '../test/support/deliver.js';
import { type DovecotServer, ensureDovecotInstalled, startDovecot } from '../test/support/dovecot.js';
import { type EngineName, freshConfig } from '../test/support/engines.js';
import { ADMIN_URL, ensurePostgres } from '../test/support/postgres.js';
import { bigBodyMail, bigMail, type MixStats, mailMix } from './mix.js';
import { SEARCH_REQUESTS, searchCase } from './search.js';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const MAILS = Number(process.env.BENCH_MAILS ?? 5000);
const BIG_MB = Number(process.env.BENCH_BIG_MB ?? 50);
const MiB = 1024 * 1024;
const USER = { name: 'bench', password: 'bench-pw' };
const BIG_USER = { name: 'big', password: 'big-pw' };
/** (e) and (f): one huge-body mail each (issue 10: 95 MB text/plain, 60 MB HTML). */
const TEXT_BODY_MB = Number(process.env.BENCH_TEXT_BODY_MB ?? 95);
const HTML_BODY_MB = Number(process.env.BENCH_HTML_BODY_MB ?? 60);
const BODY_TEXT_USER = { name: 'bodytext', password: 'body-pw' };
const BODY_HTML_USER = { name: 'bodyhtml', password: 'body-pw' };
const BODY_TEXT2_USER = { name: 'bodytext2', password: 'body-pw' };
const BODY_USERS_ALL = [BODY_TEXT_USER, BODY_HTML_USER, BODY_TEXT2_USER];
/** BENCH_ONLY=bodies runs (e) and (f) alone (no 5000-mail mix). */
const ONLY_BODIES = process.env.BENCH_ONLY === 'bodies';
/** BENCH_ONLY=qp runs (h) alone. */
const ONLY_QP = process.env.BENCH_ONLY === 'qp';
/** BENCH_ONLY=search runs (i) alone: the request list and search over BENCH_SEARCH_REQUESTS (100,000) requests. */
const ONLY_SEARCH = process.env.BENCH_ONLY === 'search';
/** BENCH_ONLY=replies runs (j) alone: replies queued and sent through SMTP on loopback (bench/replies.ts). */
const ONLY_REPLIES = process.env.BENCH_ONLY === 'replies';

// ---------------------------------------------------------------------------------------------------------
// Clean-up, also on failure and on Ctrl-C
// ---------------------------------------------------------------------------------------------------------
const cleanups: { what: string; fn: () => Promise<void> | void }[] = [];
async function cleanUp(): Promise<void> {
  // Dovecot's master is an unref'd child: without a live handle Node would exit before its 'exit' event, and
  // stop() would never get to remove the instance directory (~0.6 GB of mail).
  const keepAlive = setInterval(() => undefined, 1000);
  try {
    await cleanUpSteps();
  } finally {
    clearInterval(keepAlive);
  }
}
async function cleanUpSteps(): Promise<void> {
  while (cleanups.length > 0) {
    const c = cleanups.pop()!;
    try {
      await c.fn();
    } catch (err) {
      console.error(`[bench] clean-up of ${c.what} failed: ${String(err)}`);
    }
  }
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    console.error(`[bench] ${sig}: cleaning up`);
    void cleanUp().finally(() => process.exit(130));
  });
}

const log = (line: string) => console.log(`[bench] ${line}`);
const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;
const gc = () => (globalThis as { gc?: () => void }).gc?.();
const now = () => performance.now();

// ---------------------------------------------------------------------------------------------------------
// Machine
// ---------------------------------------------------------------------------------------------------------
async function machine() {
  const dovecot = (await run('dovecot', ['--version']).catch(() => ({ stdout: 'unknown' }))).stdout.trim();
  const c = new pg.Client({ connectionString: ADMIN_URL });
  await c.connect();
  let postgres: string;
  try {
    postgres = (await c.query<{ version: string }>('select version()')).rows[0]!.version;
  } finally {
    await c.end();
  }
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryGiB: round(os.totalmem() / 1024 ** 3),
    node: process.version,
    dovecot,
    postgres,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    /** Other work on the machine disturbs the figures: the 1/5/15-minute load averages at the start. */
    loadAverageAtStart: os.loadavg().map((l) => round(l, 2)),
  };
}

// ---------------------------------------------------------------------------------------------------------
// IMAP helpers (imapflow alone, no product code)
// ---------------------------------------------------------------------------------------------------------
async function imapClient(dovecot: DovecotServer, user: { name: string; password: string }) {
  const client = new ImapFlow({
    host: '127.0.0.1',
    port: dovecot.ports.imaps,
    secure: true,
    auth: { user: user.name, pass: user.password },
    tls: { ca: [readFileSync(dovecot.caFile)] },
    logger: false,
    disableAutoIdle: true,
  });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** (a) UID FETCH 1:* BODY.PEEK[] over IMAPS; returns the sources (kept for (b)). */
async function rawFetch(dovecot: DovecotServer) {
  const client = await imapClient(dovecot, USER);
  try {
    const t0 = now();
    const box = await client.mailboxOpen('INBOX', { readOnly: true });
    const selectMs = now() - t0;
    const sources: Buffer[] = [];
    let bytes = 0;
    const t1 = now();
    for await (const msg of client.fetch('1:*', { uid: true, source: true })) {
      if (!msg.source) throw new Error(`no source for UID ${msg.uid}`);
      sources.push(msg.source);
      bytes += msg.source.length;
    }
    const seconds = (now() - t1) / 1000;
    if (sources.length !== box.exists || sources.length !== MAILS) {
      throw new Error(`fetched ${sources.length} mails, the mailbox has ${box.exists}, expected ${MAILS}`);
    }
    return {
      sources,
      result: {
        mails: sources.length,
        MiB: round(bytes / MiB),
        seconds: round(seconds, 2),
        mailsPerSecond: round(sources.length / seconds),
        MiBPerSecond: round(bytes / MiB / seconds),
        firstSelectMs: Math.round(selectMs),
      },
    };
  } finally {
    await client.logout().catch(() => client.close());
  }
}

/** Removes \Seen from every mail of the user's INBOX (between the SQLite and the PostgreSQL ingest). */
async function resetSeen(dovecot: DovecotServer): Promise<void> {
  const client = await imapClient(dovecot, USER);
  try {
    await client.mailboxOpen('INBOX');
    await client.messageFlagsRemove('1:*', ['\\Seen']);
    const unseen = await client.search({ seen: false });
    if (!unseen || unseen.length !== MAILS) {
      throw new Error(`after resetting \\Seen, ${unseen ? unseen.length : '?'} of ${MAILS} mails are unseen`);
    }
  } finally {
    await client.logout().catch(() => client.close());
  }
}

/** Unseen mails in the user's INBOX (to see what a POP3 session did to \Seen). */
async function countUnseen(dovecot: DovecotServer): Promise<number> {
  const client = await imapClient(dovecot, USER);
  try {
    await client.mailboxOpen('INBOX', { readOnly: true });
    const unseen = await client.search({ seen: false });
    return unseen ? unseen.length : 0;
  } finally {
    await client.logout().catch(() => client.close());
  }
}

// ---------------------------------------------------------------------------------------------------------
// (a2) raw fetch with our POP3 client alone (no connector, no intake)
// ---------------------------------------------------------------------------------------------------------
/**
 * POP3S: connect + TLS + CAPA + AUTH (timed apart, like (a)'s first SELECT), then UIDL and a RETR of every
 * mail, all queued at once (the client keeps its default window of 32 commands in flight, as Dovecot announces
 * PIPELINING), then QUIT (timed apart: Dovecot writes \Seen for the RETRieved mails there). Each source is
 * compared with the one from (a) after the clock stops: the same mails, byte for byte.
 */
async function rawFetchPop3s(dovecot: DovecotServer, imapSources: Buffer[]) {
  const t0 = now();
  const client = await Pop3Client.connect({
    host: '127.0.0.1',
    port: dovecot.ports.pop3s,
    security: 'tls',
    ca: readFileSync(dovecot.caFile),
  });
  let quitMs: number;
  let seconds: number;
  let sources: Buffer[];
  let pipelining: boolean;
  let loginMs: number;
  try {
    await client.login({ user: USER.name, password: USER.password });
    loginMs = now() - t0;
    pipelining = client.capabilities?.has('PIPELINING') ?? false;
    const t1 = now();
    const byNumber = await client.uidl();
    const numbers = [...byNumber.keys()].sort((a, b) => a - b);
    sources = await client.retrMany(numbers);
    seconds = (now() - t1) / 1000;
    const t2 = now();
    await client.quit();
    quitMs = now() - t2;
  } catch (err) {
    client.destroy();
    throw err;
  }
  if (sources.length !== MAILS || sources.length !== imapSources.length) {
    throw new Error(`POP3S fetched ${sources.length} mails, IMAPS ${imapSources.length}, expected ${MAILS}`);
  }
  let bytes = 0;
  sources.forEach((s, i) => {
    bytes += s.length;
    if (!s.equals(imapSources[i]!))
      throw new Error(`POP3S mail ${i + 1} differs from IMAPS UID order ${i + 1}`);
  });
  return {
    mails: sources.length,
    MiB: round(bytes / MiB),
    seconds: round(seconds, 2),
    mailsPerSecond: round(sources.length / seconds),
    MiBPerSecond: round(bytes / MiB / seconds),
    connectAndLoginMs: Math.round(loginMs),
    quitMs: Math.round(quitMs),
    pipelining,
    identicalToImaps: true,
  };
}

// ---------------------------------------------------------------------------------------------------------
// (b) parse only
// ---------------------------------------------------------------------------------------------------------
async function parseOnly(sources: Buffer[]) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mailintake-bench-blobs-'));
  cleanups.push({ what: dir, fn: () => rmSync(dir, { recursive: true, force: true }) });
  const blobs = new FileBlobStore(dir);
  let bytes = 0;
  let attachments = 0;
  const t0 = now();
  for (const source of sources) {
    const parsed = await parseMail(new PassThrough().end(source), { blobs });
    bytes += parsed.size;
    attachments += parsed.attachments.length;
  }
  const seconds = (now() - t0) / 1000;
  rmSync(dir, { recursive: true, force: true });
  return {
    mails: sources.length,
    attachmentsStored: attachments,
    seconds: round(seconds, 2),
    mailsPerSecond: round(sources.length / seconds),
    MiBPerSecond: round(bytes / MiB / seconds),
  };
}

// ---------------------------------------------------------------------------------------------------------
// (c) end-to-end ingest
// ---------------------------------------------------------------------------------------------------------
/** imaps: afterFetch mark-read (the IMAP default); pops: afterFetch leave (nothing changes on the server). */
async function ingest(
  engine: EngineName,
  dovecot: DovecotServer,
  totalBytes: number,
  protocol: 'imaps' | 'pops' = 'imaps',
) {
  const fresh = await freshConfig(engine);
  cleanups.push({ what: `${engine} data dir / database`, fn: () => fresh.cleanup() });
  const rt = await openRuntime(fresh.config);
  let summary: FetchSummary;
  let seconds: number;
  try {
    await rt.services.mailboxes.add({
      name: 'bench',
      protocol,
      server: '127.0.0.1',
      port: protocol === 'pops' ? dovecot.ports.pop3s : dovecot.ports.imaps,
      username: USER.name,
      password: USER.password,
      emailAddress: 'support@example.test',
      caFile: dovecot.caFile,
      afterFetch: protocol === 'pops' ? 'leave' : 'mark-read',
    });
    const t0 = now();
    [summary] = (await rt.services.fetch.once({ mailbox: 'bench' })) as [FetchSummary];
    seconds = (now() - t0) / 1000;
  } finally {
    await rt.close();
  }
  await fresh.cleanup();
  cleanups.pop();
  const taken = summary.created + summary.appended;
  if (summary.error || summary.fetched !== MAILS || taken !== MAILS) {
    throw new Error(
      `ingest on ${engine} (${protocol}) did not take in every mail: ${JSON.stringify(summary)}`,
    );
  }
  return {
    protocol,
    afterFetch: protocol === 'pops' ? 'leave' : 'mark-read',
    mails: summary.fetched,
    created: summary.created,
    appended: summary.appended,
    seconds: round(seconds, 2),
    mailsPerSecond: round(MAILS / seconds),
    MiBPerSecond: round(totalBytes / MiB / seconds),
  };
}

// ---------------------------------------------------------------------------------------------------------
// (d) one big mail, in a child process
// ---------------------------------------------------------------------------------------------------------
async function bigMailChild(
  engine: EngineName,
  dovecot: DovecotServer,
  users: { name: string; password: string }[] = [BIG_USER],
) {
  // Linux keeps a process's maxRSS across execve and a forked child starts from its parent's RSS, so a child
  // forked straight from this process would report this process's peak (the 0.5 GB of sources held for (b)).
  // A small shell in between (which forks, then execs node; not its last command, so it cannot exec in place)
  // gives the child a clean count.
  const child = spawn(
    '/bin/sh',
    ['-c', '"$0" "$1"; exit $?', process.execPath, path.join(here, 'big-child.js')],
    {
      env: {
        ...process.env,
        BENCH_CHILD: JSON.stringify({
          engine,
          port: dovecot.ports.imaps,
          caFile: dovecot.caFile,
          users: users.map((u) => ({ user: u.name, password: u.password })),
        }),
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`big-mail child (${engine}) exited with ${code}: ${out}`);
  const r = JSON.parse(out.trim().split('\n').pop()!) as {
    baselineMaxRssMb: number;
    peakMaxRssMb: number;
    baselineVmHwmMb: number | null;
    peakVmHwmMb: number | null;
    seconds: number;
    summary: FetchSummary;
    summaries: FetchSummary[];
    attachmentSizes: number[];
    requests: number;
  };
  if (users[0] === BIG_USER) {
    if (r.summary.created !== 1 || r.attachmentSizes[0] !== BIG_MB * MiB) {
      throw new Error(`the big mail was not taken in as expected: ${out}`);
    }
  } else if (r.requests !== users.length || r.summaries.some((s) => s.created !== 1 || s.error)) {
    throw new Error(`the big-body mails were not taken in as expected: ${out}`);
  }
  return {
    baselineMaxRssMiB: r.baselineMaxRssMb,
    peakMaxRssMiB: r.peakMaxRssMb,
    vmHwmMiB: { baseline: r.baselineVmHwmMb, peak: r.peakVmHwmMb },
    seconds: r.seconds,
  };
}

/** Puts \Seen off the big mail again, so the next child ingests it too. */
async function resetBigSeen(dovecot: DovecotServer, user = BIG_USER): Promise<void> {
  const client = await imapClient(dovecot, user);
  try {
    await client.mailboxOpen('INBOX');
    await client.messageFlagsRemove('1:*', ['\\Seen']);
  } finally {
    await client.logout().catch(() => client.close());
  }
}

// ---------------------------------------------------------------------------------------------------------
// (e) one huge-body mail alone, (f) three at once; each in a child process on SQLite
// ---------------------------------------------------------------------------------------------------------
async function bodyCases(dovecot: DovecotServer) {
  await deliverMaildir(dovecot, BODY_TEXT_USER.name, [bigBodyMail('text', TEXT_BODY_MB * MiB)]);
  await deliverMaildir(dovecot, BODY_HTML_USER.name, [bigBodyMail('html', HTML_BODY_MB * MiB)]);
  await deliverMaildir(dovecot, BODY_TEXT2_USER.name, [bigBodyMail('text', TEXT_BODY_MB * MiB, 'text2')]);
  gc();
  log(`(e) one mail with a ${TEXT_BODY_MB} MB text/plain body, in a child process …`);
  const text = await bigMailChild('sqlite', dovecot, [BODY_TEXT_USER]);
  log(`(e) peak RSS ${text.peakMaxRssMiB} MiB`);
  log(`(e) one mail with a ${HTML_BODY_MB} MB HTML body, in a child process …`);
  const html = await bigMailChild('sqlite', dovecot, [BODY_HTML_USER]);
  log(`(e) peak RSS ${html.peakMaxRssMiB} MiB`);
  for (const u of [BODY_TEXT_USER, BODY_HTML_USER]) await resetBigSeen(dovecot, u);
  log('(f) three huge-body mails in three mailboxes fetched at the same time, in a child process …');
  const three = await bigMailChild('sqlite', dovecot, BODY_USERS_ALL);
  log(`(f) peak RSS ${three.peakMaxRssMiB} MiB`);
  return { textBodyMiB: TEXT_BODY_MB, htmlBodyMiB: HTML_BODY_MB, text, html, threeAtOnce: three };
}

function bodyRows(b: Awaited<ReturnType<typeof bodyCases>>): [string, string, string, string][] {
  return [
    [
      `(e) ${b.textBodyMiB} MB text/plain body`,
      '',
      '',
      `peak RSS ${b.text.peakMaxRssMiB} MiB (baseline ${b.text.baselineMaxRssMiB}; target < 250), ${b.text.seconds} s`,
    ],
    [
      `(e) ${b.htmlBodyMiB} MB HTML body`,
      '',
      '',
      `peak RSS ${b.html.peakMaxRssMiB} MiB (baseline ${b.html.baselineMaxRssMiB}; target < 250), ${b.html.seconds} s`,
    ],
    [
      '(f) the three at once',
      '',
      '',
      `peak RSS ${b.threeAtOnce.peakMaxRssMiB} MiB (baseline ${b.threeAtOnce.baselineMaxRssMiB}; target < 400), ${b.threeAtOnce.seconds} s`,
    ],
  ];
}

// ---------------------------------------------------------------------------------------------------------
// (h) quoted-printable: a 64 MB attachment and a 96 MB body of soft line breaks, each parsed in a child process
// ---------------------------------------------------------------------------------------------------------
async function qpCases() {
  const one = async (shape: 'attachment' | 'soft-breaks', mb: number) => {
    // the same small shell as bigMailChild: a clean maxRSS for the child
    const child = spawn(
      '/bin/sh',
      ['-c', '"$0" "$1"; exit $?', process.execPath, path.join(here, 'qp-child.js')],
      {
        env: { ...process.env, BENCH_QP_SHAPE: shape, BENCH_QP_MB: String(mb) },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    if (code !== 0) throw new Error(`quoted-printable child exited with ${code}: ${out}`);
    const r = JSON.parse(out.trim()) as { peakMaxRssMiB: number; seconds: number };
    log(`(h) ${mb} MB quoted-printable ${shape}: peak RSS ${r.peakMaxRssMiB} MiB, ${r.seconds} s`);
    return r;
  };
  return { attachment64: await one('attachment', 64), softBreaks96: await one('soft-breaks', 96) };
}

async function onlyBodies(): Promise<void> {
  await ensureDovecotInstalled(log);
  await ensurePostgres();
  const host = await machine();
  log(`machine: ${host.cpu}, ${host.cores} cores, load ${host.loadAverageAtStart.join(' ')}`);
  const dovecot = await startDovecot({ users: BODY_USERS_ALL });
  cleanups.push({ what: 'Dovecot', fn: () => dovecot.stop() });
  const bodies = await bodyCases(dovecot);
  for (const r of bodyRows(bodies)) console.log(`${r[0].padEnd(32)}  ${r[3]}`);
  const out = path.join(path.resolve(here, '..'), 'results-bodies.json');
  writeFileSync(
    out,
    `${JSON.stringify({ machine: host, bodies, loadAverageAtEnd: os.loadavg().map((l) => round(l, 2)) }, null, 2)}\n`,
  );
  console.log(`\nresults: ${out}`);
}

// ---------------------------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------------------------
// ---------------------------------------------------------------------------------------------------------
// (g) CLI start: `mailintake --help` against a bare `node -e 0` (issue 10: it took 1.5-2 s)
// ---------------------------------------------------------------------------------------------------------
/**
 * Wall time of the installed command (bin/mailintake.js, which loads dist/), spawned like a shell would, against
 * a bare `node -e 0`: alternated so load changes hit both, median of `runs` each. Target: within 3x.
 */
async function cliStartup(runs = 21) {
  const { spawnSync } = await import('node:child_process');
  const { existsSync } = await import('node:fs');
  const root = path.resolve(here, '..', '..');
  const bin = path.join(root, 'bin', 'mailintake.js');
  if (!existsSync(path.join(root, 'dist', 'cli', 'program.js'))) {
    throw new Error('dist/ is missing: run `npm run build` first (the installed command runs from dist/)');
  }
  const time = (args: string[]) => {
    const t = now();
    const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'ignore' });
    if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}`);
    return now() - t;
  };
  const help: number[] = [];
  const bare: number[] = [];
  time(['-e', '0']); // the first spawn warms the file cache for both
  time([bin, '--help']);
  for (let i = 0; i < runs; i++) {
    bare.push(time(['-e', '0']));
    help.push(time([bin, '--help']));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
  const helpMs = round(median(help), 1);
  const bareMs = round(median(bare), 1);
  return {
    runs,
    helpMs,
    bareNodeMs: bareMs,
    ratio: round(helpMs / bareMs, 2),
    withinThreeTimes: helpMs <= 3 * bareMs,
  };
}

async function main(): Promise<void> {
  const startedAt = new Date().toISOString();
  const startup = await cliStartup();
  log(
    `(g) mailintake --help ${startup.helpMs} ms, node -e 0 ${startup.bareNodeMs} ms: ${startup.ratio}x (target <= 3x)`,
  );
  if (process.env.BENCH_ONLY === 'cli-startup') return;
  await ensureDovecotInstalled(log);
  await ensurePostgres();
  const host = await machine();
  log(`machine: ${host.cpu}, ${host.cores} cores, ${host.memoryGiB} GiB, Node ${host.node}`);
  log(`Dovecot ${host.dovecot}; ${host.postgres}`);
  if (host.loadAverageAtStart[0]! > 0.5) {
    log(
      `note: load average ${host.loadAverageAtStart.join(' ')}: other work on this machine skews the figures`,
    );
  }

  const dovecot = await startDovecot({ users: [USER, BIG_USER, ...BODY_USERS_ALL] });
  cleanups.push({ what: 'Dovecot', fn: () => dovecot.stop() });

  const mix: MixStats = { mails: 0, bytes: 0, withAttachment: 0, replies: 0, html: 0 };
  let t0 = now();
  await deliverMaildir(
    dovecot,
    USER.name,
    (function* () {
      for (const m of mailMix(MAILS, undefined, mix)) yield m.raw;
    })(),
  );
  const deliverSeconds = (now() - t0) / 1000;
  log(
    `delivered ${mix.mails} mails (${round(mix.bytes / MiB)} MiB; ${mix.withAttachment} with an attachment, ` +
      `${mix.replies} replies, ${mix.html} with HTML) by Maildir in ${round(deliverSeconds)} s`,
  );
  await deliverMaildir(dovecot, BIG_USER.name, [bigMail(BIG_MB * MiB)]);

  log('(a) raw fetch with imapflow …');
  const { sources, result: rawFetchResult } = await rawFetch(dovecot);
  log(`(a) ${rawFetchResult.mailsPerSecond} mails/s, ${rawFetchResult.MiBPerSecond} MiB/s`);
  const totalBytes = sources.reduce((n, s) => n + s.length, 0);

  gc();
  log('(a2) raw fetch with the POP3 client (POP3S, pipelined RETR) …');
  const rawPop3s = await rawFetchPop3s(dovecot, sources);
  log(`(a2) ${rawPop3s.mailsPerSecond} mails/s, ${rawPop3s.MiBPerSecond} MiB/s`);
  // Dovecot marks RETRieved mail \Seen at QUIT; IMAPS ingest (c) takes only unseen mail
  const unseenAfterPop3s = await countUnseen(dovecot);
  t0 = now();
  await resetSeen(dovecot);
  const pop3sSeenResetSeconds = (now() - t0) / 1000;
  log(
    `(a2) ${MAILS - unseenAfterPop3s} of ${MAILS} mails were \\Seen after the POP3 session; all unseen again`,
  );

  gc();
  log('(b) parse only …');
  const parse = await parseOnly(sources);
  log(`(b) ${parse.mailsPerSecond} mails/s, ${parse.MiBPerSecond} MiB/s`);
  sources.length = 0;
  gc();

  log('(c) ingest on SQLite …');
  const sqlite = await ingest('sqlite', dovecot, totalBytes);
  log(`(c) SQLite: ${sqlite.mailsPerSecond} mails/s`);
  gc();
  // POP3 lists every mail whatever its \Seen flag (set by (c)); "leave" changes nothing on the server
  log('(c2) ingest on SQLite, POP3S (afterFetch leave) …');
  const sqlitePop3s = await ingest('sqlite', dovecot, totalBytes, 'pops');
  log(`(c2) SQLite, POP3S: ${sqlitePop3s.mailsPerSecond} mails/s`);
  if ((await countUnseen(dovecot)) !== 0) throw new Error('(c) SQLite left unseen mails on the server');
  gc();
  t0 = now();
  await resetSeen(dovecot);
  const resetSeconds = (now() - t0) / 1000;
  log('(c) ingest on PostgreSQL …');
  const postgres = await ingest('postgres', dovecot, totalBytes);
  log(`(c) PostgreSQL: ${postgres.mailsPerSecond} mails/s`);
  gc();

  log(`(d) one mail with a ${BIG_MB} MB attachment, in a child process …`);
  const bigSqlite = await bigMailChild('sqlite', dovecot);
  await resetBigSeen(dovecot);
  const bigPostgres = await bigMailChild('postgres', dovecot);
  const bodies = await bodyCases(dovecot);
  const qp = await qpCases();

  const ratio = (r: number) => round((100 * r) / parse.mailsPerSecond);
  const results = {
    startedAt,
    machine: host,
    mix: {
      ...mix,
      MiB: round(mix.bytes / MiB),
      deliverSeconds: round(deliverSeconds, 1),
      seed: 20240601,
    },
    rawFetch: rawFetchResult,
    rawFetchPop3s: {
      ...rawPop3s,
      percentOfImaps: round((100 * rawPop3s.mailsPerSecond) / rawFetchResult.mailsPerSecond),
      seenAfterSession: MAILS - unseenAfterPop3s,
      seenResetSeconds: round(pop3sSeenResetSeconds, 2),
    },
    parseOnly: parse,
    ingest: {
      sqlite: { ...sqlite, percentOfParseOnly: ratio(sqlite.mailsPerSecond) },
      sqlitePop3s: {
        ...sqlitePop3s,
        percentOfParseOnly: ratio(sqlitePop3s.mailsPerSecond),
        percentOfSqliteImaps: round((100 * sqlitePop3s.mailsPerSecond) / sqlite.mailsPerSecond),
      },
      postgres: { ...postgres, percentOfParseOnly: ratio(postgres.mailsPerSecond) },
      seenResetSeconds: round(resetSeconds, 2),
    },
    bigMail: { attachmentMiB: BIG_MB, sqlite: bigSqlite, postgres: bigPostgres },
    cliStartup: startup,
    bigBodies: bodies,
    quotedPrintable: qp,
    loadAverageAtEnd: os.loadavg().map((l) => round(l, 2)),
    targets: {
      ingestAtLeast60PercentOfParse: {
        sqlite: ratio(sqlite.mailsPerSecond) >= 60,
        sqlitePop3s: ratio(sqlitePop3s.mailsPerSecond) >= 60,
        postgres: ratio(postgres.mailsPerSecond) >= 60,
      },
      bigMailUnder150MiB: {
        sqlite: bigSqlite.peakMaxRssMiB < 150,
        postgres: bigPostgres.peakMaxRssMiB < 150,
      },
      bigBodyUnder250MiB: { text: bodies.text.peakMaxRssMiB < 250, html: bodies.html.peakMaxRssMiB < 250 },
      threeBodiesUnder400MiB: bodies.threeAtOnce.peakMaxRssMiB < 400,
    },
  };

  const rows: [string, string, string, string][] = [
    ['measure', 'mails/s', 'MiB/s', 'notes'],
    [
      '(a) raw fetch, imapflow',
      String(rawFetchResult.mailsPerSecond),
      String(rawFetchResult.MiBPerSecond),
      `${rawFetchResult.mails} mails, ${rawFetchResult.MiB} MiB in ${rawFetchResult.seconds} s`,
    ],
    [
      '(a2) raw fetch, POP3 client, POP3S',
      String(rawPop3s.mailsPerSecond),
      String(rawPop3s.MiBPerSecond),
      `UIDL + ${rawPop3s.mails} RETR${rawPop3s.pipelining ? ' pipelined' : ''}, ${rawPop3s.MiB} MiB in ${rawPop3s.seconds} s; ` +
        `${round((100 * rawPop3s.mailsPerSecond) / rawFetchResult.mailsPerSecond)} % of (a)`,
    ],
    [
      '(b) parse only (+ blob writes)',
      String(parse.mailsPerSecond),
      String(parse.MiBPerSecond),
      `${parse.seconds} s, ${parse.attachmentsStored} attachments stored`,
    ],
    [
      '(c) ingest, SQLite',
      String(sqlite.mailsPerSecond),
      String(sqlite.MiBPerSecond),
      `${sqlite.seconds} s; ${ratio(sqlite.mailsPerSecond)} % of (b) (target >= 60 %)`,
    ],
    [
      '(c2) ingest, SQLite, POP3S (leave)',
      String(sqlitePop3s.mailsPerSecond),
      String(sqlitePop3s.MiBPerSecond),
      `${sqlitePop3s.seconds} s; ${ratio(sqlitePop3s.mailsPerSecond)} % of (b); ` +
        `${round((100 * sqlitePop3s.mailsPerSecond) / sqlite.mailsPerSecond)} % of (c) SQLite IMAPS`,
    ],
    [
      '(c) ingest, PostgreSQL',
      String(postgres.mailsPerSecond),
      String(postgres.MiBPerSecond),
      `${postgres.seconds} s; ${ratio(postgres.mailsPerSecond)} % of (b) (target >= 60 %)`,
    ],
    [
      `(d) ${BIG_MB} MB attachment, SQLite`,
      '',
      '',
      `peak RSS ${bigSqlite.peakMaxRssMiB} MiB (baseline ${bigSqlite.baselineMaxRssMiB}; target < 150), ${bigSqlite.seconds} s`,
    ],
    [
      `(d) ${BIG_MB} MB attachment, PostgreSQL`,
      '',
      '',
      `peak RSS ${bigPostgres.peakMaxRssMiB} MiB (baseline ${bigPostgres.baselineMaxRssMiB}; target < 150), ${bigPostgres.seconds} s`,
    ],
    ...bodyRows(bodies),
    [
      '(h) quoted-printable, parse only',
      '',
      '',
      `64 MB attachment ${qp.attachment64.peakMaxRssMiB} MiB, 96 MB of soft line breaks ${qp.softBreaks96.peakMaxRssMiB} MiB peak RSS (target < 250)`,
    ],
  ];
  rows.push([
    '(g) mailintake --help',
    '',
    '',
    `${startup.helpMs} ms, ${startup.ratio}x node -e 0 (${startup.bareNodeMs} ms; target <= 3x)`,
  ]);
  const widths = [0, 1, 2].map((c) => Math.max(...rows.map((r) => r[c]!.length)));
  console.log('');
  console.log(
    `Machine: ${host.cpu} (${host.cores} cores), ${host.memoryGiB} GiB, Node ${host.node}, Dovecot ${host.dovecot}`,
  );
  console.log(`PostgreSQL: ${host.postgres}`);
  console.log(
    `Mix: ${mix.mails} mails, ${round(mix.bytes / MiB)} MiB (${mix.withAttachment} with attachment, ${mix.replies} replies)`,
  );
  for (const r of rows) {
    console.log(
      `${r[0].padEnd(widths[0]!)}  ${r[1].padStart(widths[1]!)}  ${r[2].padStart(widths[2]!)}  ${r[3]}`,
    );
  }
  const outDir = path.resolve(here, '..');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\nresults: ${path.join(outDir, 'results.json')}`);
}

/** (i) alone: both engines, the machine, and results-search.json. */
async function onlySearch(): Promise<void> {
  await ensurePostgres();
  const host = await machine().catch(() => ({
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
  }));
  log(
    `machine: ${host.cpu}, ${host.cores} cores, ${round(os.totalmem() / 1024 ** 3)} GiB, Node ${process.version}, load ${os
      .loadavg()
      .map((l) => round(l, 2))
      .join(' ')}`,
  );
  const sqlite = await searchCase('sqlite', log);
  const postgres = await searchCase('postgres', log);
  const out = path.join(path.resolve(here, '..'), 'results-search.json');
  writeFileSync(
    out,
    `${JSON.stringify({ machine: host, requests: SEARCH_REQUESTS, sqlite, postgres }, null, 2)}\n`,
  );
  console.log(`\nresults: ${out}`);
}

try {
  if (ONLY_SEARCH) await onlySearch();
  else if (ONLY_QP) await qpCases();
  // (j) replies: bench/replies.ts runs its cases when loaded (it prints its own figures)
  else if (ONLY_REPLIES) await import('./replies.js');
  else if (ONLY_BODIES) await onlyBodies();
  else {
    await main();
    await import('./replies.js');
  }
} catch (err) {
  process.exitCode = 1;
  console.error('[bench] failed:', err);
} finally {
  await cleanUp();
}
