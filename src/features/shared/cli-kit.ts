import { type Command, InvalidArgumentError, Option } from 'commander';
import { MAX_PAGE } from '../../kernel/limits.js';
import type { Page } from './page.js';

/**
 * What every feature's commands.ts gets from the CLI (src/cli/kit.ts builds it): output, the runtime's
 * services, list printing, settings files. It is declared here, below the CLI, so a feature's commands import
 * nothing from src/cli (the CLI mounts the features, never the other way round). Commands are thin: parse
 * arguments, call one service, print.
 *
 * This module is loaded by `mailintake --help`: nothing here may import a heavy module, and the services come
 * only through `withServices` (the runtime is opened lazily).
 *
 * `S` is the services a command may use: a feature's commands declare only their own slices
 * (`CliKit<{ mailboxes: MailboxesService }>`), so no feature imports the aggregate Services (src/cli hands
 * them the whole kit, which fits every such slice).
 */
export interface CliKit<S> {
  /** A leaf command: every one takes --json (JSON on stdout and nothing else there). */
  leaf(parent: Command, spec: string, description: string): Command;
  /**
   * Opens the runtime for one command, runs `action` with its services and always closes it. A number the
   * action returns is the exit code; an error is printed (coded) and gives exit 1.
   */
  withServices(json: boolean, action: (services: S) => Promise<unknown>): Promise<void>;
  /**
   * The action of a command that calls one service and shows its answer: as JSON with --json, else through
   * `present` (a number it returns is the exit code). Both get what Commander hands an action: the command's
   * arguments, then its options.
   */
  answer<A extends unknown[], R>(
    call: (services: S, ...args: A) => R | Promise<R>,
    present: (result: R, ...args: A) => unknown,
  ): (...commanderArgs: unknown[]) => Promise<void>;
  line(text?: string): void;
  printJson(value: unknown): void;
  /** Text for the person at the terminal that must not mix with stdout (a file's bytes written there). */
  err(text: string): void;
  /** Whether the output may be coloured (a terminal, NO_COLOR unset). */
  readonly color: boolean;
  /**
   * The action of every list command: all entries (`--all`, page after page by id), or one page as JSON or as
   * a table with its footer; `empty` words an empty page. `list` asks the service for one page, with the
   * command's options as its filters.
   */
  listAction<O extends object, T extends { id: number }>(
    list: (services: S, opts: O, page: PageQuery) => Promise<Page<T>>,
    columns: Columns<T>,
    empty: (page: Page<T>) => string,
  ): (opts: O & ListOptions) => Promise<void>;
  /** Reads a JSON file (or - for stdin); a file that cannot be read or parsed is a coded error. */
  readJsonFile(file: string, what: string): Promise<unknown>;
  /** Like readJsonFile, for settings with secrets: the password, access token and OAuth client secret in it are cut out of everything printed. */
  readSecretFile(file: string, what: string): Promise<unknown>;
  /** Where `--out -` writes bytes: stdout as a byte stream (`line` is for text). */
  binaryStdout(): NodeJS.WritableStream;
}

export interface ListOptions {
  limit?: number;
  offset?: number;
  all?: boolean;
  json?: boolean;
}

export interface PageQuery {
  limit?: number;
  offset?: number;
  before?: number;
}

/** A table's header and how one item fills a row of it. */
export interface Columns<T> {
  headers: string[];
  row: (item: T) => string[];
}

// ---- options ----------------------------------------------------------------------------------------------------

export function intArg(min: number, max: number) {
  return (value: string): number => {
    if (!/^[0-9]+$/.test(value)) throw new InvalidArgumentError('must be a whole number.');
    const n = Number(value);
    if (n < min || n > max) throw new InvalidArgumentError(`must be between ${min} and ${max}.`);
    return n;
  };
}

/** An id argument: 1 and up. */
export const idArg = intArg(1, Number.MAX_SAFE_INTEGER);

/** `--limit` (at most n `what`) and `--offset`, the options of a paged list. */
export function pageOptions(command: Command, what: string): Command {
  return command
    .option('--limit <n>', `at most n ${what}`, intArg(1, MAX_PAGE))
    .option('--offset <n>', 'skip the first n', intArg(0, 1_000_000_000));
}

export function allOption(): Option {
  return new Option('--all', 'every entry, page after page (with --json: one array of entries)').conflicts([
    'limit',
    'offset',
  ]);
}

// ---- presenting -------------------------------------------------------------------------------------------------

/**
 * Subjects, names and bodies come from the sender. Printed raw, an ESC sequence could rewrite the admin's
 * terminal (move the cursor, hide lines, set the window title, on some terminals even inject input), and bidi
 * overrides could make text read differently from what it is. Those characters are shown as `?`.
 */
export function clean(text: string, keepNewlines = false): string {
  return Array.from(text, (ch) => {
    const cp = ch.codePointAt(0) ?? 0;
    if (keepNewlines && (ch === '\n' || ch === '\t')) return ch;
    if (ch === '\r' || ch === '\n' || ch === '\t') return ' ';
    const control = cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
    const bidi =
      (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp === 0x2028 || cp === 0x2029;
    return control || bidi ? '?' : ch;
  }).join('');
}

export function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function table(headers: string[], rows: string[][]): string {
  const cells = rows.map((r) => r.map((c) => clean(c)));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [fmt(headers), ...cells.map(fmt)].join('\n');
}

/** `key: value` lines with the values aligned. */
export function fields(pairs: [string, string][], indent = '  '): string {
  const width = Math.max(...pairs.map(([k]) => k.length)) + 1;
  return pairs.map(([k, v]) => `${indent}${`${k}:`.padEnd(width)} ${clean(v)}`).join('\n');
}

export function paint(on: boolean, tone: 'red' | 'green' | 'bold', text: string): string {
  if (!on) return text;
  const codes = { red: 31, green: 32, bold: 1 } as const;
  return `\u001b[${codes[tone]}m${text}\u001b[0m`;
}

export function pageFooter(page: {
  items: unknown[];
  total: number;
  totalCapped?: boolean;
  offset: number;
}): string {
  const from = page.offset + 1;
  return `${from}–${page.offset + page.items.length} of ${page.total}${page.totalCapped ? '+' : ''}`;
}

/** The three lines of a consent's start (mailbox authorize, smtp authorize): the URL to open, set apart. */
export function printConsentUrl(k: Pick<CliKit<unknown>, 'line'>, intro: string, url: string): void {
  k.line(intro);
  k.line();
  k.line(`  ${url}`);
  k.line();
}
