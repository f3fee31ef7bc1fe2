import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { Runtime } from '../app/runtime.js';
import type { Services } from '../features/services.js';
import {
  type CliKit,
  type Columns,
  type ListOptions,
  type PageQuery,
  pageFooter,
  table,
} from '../features/shared/cli-kit.js';
import type { Page } from '../features/shared/page.js';
import { MailintakeError } from '../kernel/errors.js';
import { MAX_PAGE } from '../kernel/limits.js';
import { refuseNul } from '../kernel/nul.js';
import { MIN_REDACTED_LENGTH, secretsIn } from '../kernel/secrets.js';

export interface CliIo {
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
  /** Read by `--file -`. */
  stdin?: NodeJS.ReadableStream;
  /** The environment loadConfig reads (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** Whether stdout is a terminal (colours). Default: process.stdout.isTTY when writing to process.stdout. */
  isTTY?: boolean;
  /** Stops `serve` like SIGINT/SIGTERM do (for tests and embedding). */
  stopSignal?: AbortSignal;
  /** Where `attachment get --out -` writes the attachment's bytes (default: process.stdout). */
  binaryStdout?: NodeJS.WritableStream;
}

/** What one run of the CLI prints through: every text passes the secret filter. */
export interface CliOutput {
  out(text: string): void;
  err(text: string): void;
  line(text?: string): void;
  printJson(value: unknown): void;
  readonly color: boolean;
  /** A secret read in this run (a mailbox file's password): cut out of everything printed from now on. */
  keepSecret(secret: string): void;
}

export function createOutput(io: CliIo, env: NodeJS.ProcessEnv): CliOutput {
  const isTTY = io.isTTY ?? (io.stdout ? false : process.stdout.isTTY === true);
  const secrets: string[] = [];
  const scrub = (text: string): string => {
    let out = text;
    for (const s of secrets) {
      out = out.split(s).join('[redacted]');
      const escaped = JSON.stringify(s).slice(1, -1);
      if (escaped !== s) out = out.split(escaped).join('[redacted]');
    }
    return out;
  };
  const rawOut = io.stdout ?? ((t: string) => void process.stdout.write(t));
  const rawErr = io.stderr ?? ((t: string) => void process.stderr.write(t));
  const out = (text: string) => rawOut(scrub(text));
  return {
    out,
    err: (text) => rawErr(scrub(text)),
    line: (text = '') => out(`${text}\n`),
    printJson: (value) => out(`${JSON.stringify(value, null, 2)}\n`),
    color: isTTY && !env.NO_COLOR,
    keepSecret: (secret) => {
      if (secret.length >= MIN_REDACTED_LENGTH) secrets.push(secret);
    },
  };
}

/** Opens the runtime for one command (src/cli/run-command.ts). */
export type WithRuntime = (json: boolean, action: (rt: Runtime) => Promise<unknown>) => Promise<void>;

/** The kit every feature's commands get (see src/features/shared/cli-kit.ts). */
export function createKit(o: CliOutput, io: CliIo, withRuntime: WithRuntime): CliKit<Services> {
  const withServices: CliKit<Services>['withServices'] = (json, action) =>
    withRuntime(json, (rt) => action(rt.services));
  return {
    leaf: (parent: Command, spec: string, description: string) =>
      parent
        .command(spec)
        .description(description)
        .option('--json', 'machine-readable output (JSON on stdout)'),
    withServices,
    answer:
      <A extends unknown[], R>(
        call: (services: Services, ...args: A) => R | Promise<R>,
        present: (result: R, ...args: A) => unknown,
      ) =>
      async (...commanderArgs: unknown[]) => {
        // Commander calls an action with the command's arguments, then its options, then the command.
        const args = commanderArgs.slice(0, -1) as A;
        const { json } = commanderArgs[commanderArgs.length - 2] as { json?: boolean };
        await withServices(!!json, async (services) => {
          const result = await call(services, ...args);
          if (json) return o.printJson(result);
          return present(result, ...args);
        });
      },
    line: o.line,
    printJson: o.printJson,
    err: o.err,
    color: o.color,
    listAction: (list, columns, empty) => (opts) =>
      withServices(!!opts.json, (services) =>
        printList(o, io, opts, (page) => list(services, opts, page), columns, empty),
      ),
    readJsonFile: (file, what) => readJsonFile(io, file, what),
    readSecretFile: async (file, what) => {
      const value = await readJsonFile(io, file, what);
      for (const secret of secretsIn(value)) o.keepSecret(secret);
      return value;
    },
    binaryStdout: () => io.binaryStdout ?? process.stdout,
  };
}

// ---- lists ------------------------------------------------------------------------------------------------------

async function printList<T extends { id: number }>(
  o: CliOutput,
  io: CliIo,
  opts: ListOptions,
  list: (page: PageQuery) => Promise<Page<T>>,
  columns: Columns<T>,
  empty: (page: Page<T>) => string,
): Promise<void> {
  if (opts.all) {
    return printAll(
      o,
      io,
      !!opts.json,
      (before) => list({ limit: MAX_PAGE, ...(before ? { before } : {}) }),
      columns,
    );
  }
  const page = await list({
    ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
    ...(opts.offset !== undefined ? { offset: opts.offset } : {}),
  });
  if (opts.json) return o.printJson(page);
  if (page.items.length === 0) return o.line(empty(page));
  o.line(table(columns.headers, page.items.map(columns.row)));
  o.line(pageFooter(page));
}

/**
 * `--all`: every entry, newest first, page after page of MAX_PAGE, each page asking for ids below the last one
 * seen (so entries arriving meanwhile neither repeat one nor shift one out). Printed as it arrives, so memory
 * holds one page however long the log: with --json one array of entries, else a table per page.
 */
async function printAll<T extends { id: number }>(
  o: CliOutput,
  io: CliIo,
  json: boolean,
  fetchPage: (before: number | undefined) => Promise<Page<T>>,
  columns: Columns<T>,
): Promise<void> {
  let before: number | undefined;
  let n = 0;
  if (json) o.out('[');
  for (;;) {
    const p = await fetchPage(before);
    for (const item of p.items) o.out(json ? `${n++ === 0 ? '\n' : ',\n'}${JSON.stringify(item)}` : '');
    if (!json && p.items.length > 0) {
      const t = table(columns.headers, p.items.map(columns.row));
      // the header once, at the top
      o.line(before === undefined ? t : t.slice(t.indexOf('\n') + 1));
      n += p.items.length;
    }
    const last = p.items[p.items.length - 1];
    if (p.items.length < MAX_PAGE || !last) break;
    before = last.id;
    // A slow reader (`… | less`) would otherwise let every page pile up in the stream's buffer.
    if (!io.stdout && process.stdout.writableNeedDrain) await drained(process.stdout);
  }
  if (json) o.out(n === 0 ? ']\n' : '\n]\n');
  else o.line(`${n} entr${n === 1 ? 'y' : 'ies'}`);
}

function drained(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}

// ---- settings files ---------------------------------------------------------------------------------------------

async function readJsonFile(io: CliIo, file: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = file === '-' ? await readStream(io.stdin ?? process.stdin) : await readFile(file, 'utf8');
  } catch (e) {
    const reason = (e as NodeJS.ErrnoException).code ?? (e instanceof Error ? e.message : String(e));
    throw new MailintakeError('INVALID_SETTINGS', `Cannot read the ${what} file ${file}: ${reason}`, {
      details: { fields: [{ field: '--file', message: `cannot read ${file} (${reason})` }] },
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    // V8's message quotes a piece of the input, which may be the password: only the position is kept.
    const pos = /position (\d+)/.exec(e instanceof Error ? e.message : '')?.[1];
    const where = pos === undefined ? '' : ` (${lineColumn(text, Number(pos))})`;
    throw new MailintakeError('INVALID_JSON', `The ${what} file ${file} is not valid JSON${where}`, {
      details: { fields: [{ field: '(file)', message: `not valid JSON${where}` }] },
    });
  }
  refuseNul(value, `${what} file ${file}`);
  return value;
}

function lineColumn(text: string, pos: number): string {
  const before = text.slice(0, pos);
  const lineNo = before.split('\n').length;
  const col = pos - before.lastIndexOf('\n');
  return `line ${lineNo}, column ${col}`;
}

async function readStream(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString('utf8');
}
