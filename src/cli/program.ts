import fs, { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { pipeline } from 'node:stream/promises';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { Runtime } from '../app/runtime.js';
import type { FetchSummary, MailboxView } from '../features/mailboxes/views.js';
import { tokenStateFields } from '../features/oauth/fields.js';
import type { Page } from '../features/page.js';
import type { PortalView } from '../features/portals/views.js';
import type {
  AttachmentView,
  ConversationView,
  DroppedAttachmentView,
  IntakeLogEntry,
  RequestDetail,
  RequestSummary,
} from '../features/requests/views.js';
import type { SystemLogEntry } from '../features/system-log/views.js';
import { withActor } from '../kernel/actor.js';
import type { AppConfig } from '../kernel/env.js';
import {
  CONNECTION_CODES,
  ERROR_HELP,
  type ErrorCode,
  isMailintakeError,
  MailintakeError,
} from '../kernel/errors.js';
import { MAX_PAGE } from '../kernel/limits.js';
import { createLogger } from '../kernel/logger.js';
import { ConfigError, type StoreLocation, storeLocation } from '../kernel/store-location.js';
import { SYSTEM_LOG_CATEGORIES } from '../kernel/system-log-categories.js';
import { addAttachmentCommands } from './attachment-commands.js';
import { addErrorFolderCommands } from './error-folder-commands.js';
import { addNotificationCommands } from './notification-commands.js';

/**
 * The `mailintake` command line. Commands are thin: parse arguments, open the runtime, call one service, print.
 * Every command has `--json` (JSON on stdout and nothing else there). Exit codes are documented in EXIT_HELP.
 */

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

const EXIT = { ok: 0, error: 1, usage: 2, unreachable: 3 } as const;

const EXIT_HELP = `
Exit status:
  0  success
  1  the operation failed with a coded error (printed as "error CODE: message")
  2  usage or configuration error (bad arguments, invalid environment)
  3  fetch --once: at least one mailbox could not be reached (or was busy), or its round stopped on an error

Environment: MAILINTAKE_DATA_DIR (default ./data), DATABASE_URL (PostgreSQL instead of the embedded SQLite),
MAILINTAKE_SECRET_KEY (and MAILINTAKE_SECRET_KEY_PREVIOUS while rotating it), MAILINTAKE_MAX_MAIL_MB, MAILINTAKE_PORT,
MAILINTAKE_HOST, MAILINTAKE_LOG_LEVEL.`;

/** Shorter secrets are not redacted: replacing "ab" everywhere would mangle the output, not protect anything. */
const MIN_REDACTED_LENGTH = 4;

/**
 * Runs the CLI and resolves with the exit code. `argv` is either `process.argv` (node, script, args…) as
 * bin/mailintake.js passes it, or just the arguments (`['mailbox', 'list']`) as tests pass them.
 */
export async function main(argv: string[], io: CliIo = {}): Promise<number> {
  const args = argv === process.argv || argv[0] === process.execPath ? argv.slice(2) : argv;
  const env = io.env ?? process.env;
  const isTTY = io.isTTY ?? (io.stdout ? false : process.stdout.isTTY === true);
  const color = isTTY && !env.NO_COLOR;

  // Secrets read in this run (a mailbox file's password): cut out of everything printed, whatever the path.
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
  const err = (text: string) => rawErr(scrub(text));
  const line = (text = '') => out(`${text}\n`);
  const printJson = (value: unknown) => out(`${JSON.stringify(value, null, 2)}\n`);

  /**
   * `--all`: every entry, newest first, page after page of MAX_PAGE, each page asking for ids below the last one
   * seen (so entries arriving meanwhile neither repeat one nor shift one out). Printed as it arrives, so memory
   * holds one page however long the log: with --json one array of entries, else a table per page.
   */
  const printAll = async <T extends { id: number }>(
    json: boolean,
    fetchPage: (before: number | undefined) => Promise<Page<T>>,
    headers: string[],
    row: (item: T) => string[],
  ): Promise<void> => {
    let before: number | undefined;
    let n = 0;
    if (json) out('[');
    for (;;) {
      const p = await fetchPage(before);
      for (const item of p.items) out(json ? `${n++ === 0 ? '\n' : ',\n'}${JSON.stringify(item)}` : '');
      if (!json && p.items.length > 0) {
        const t = table(headers, p.items.map(row));
        // the header once, at the top
        line(before === undefined ? t : t.slice(t.indexOf('\n') + 1));
        n += p.items.length;
      }
      const last = p.items[p.items.length - 1];
      if (p.items.length < MAX_PAGE || !last) break;
      before = last.id;
      // A slow reader (`… | less`) would otherwise let every page pile up in the stream's buffer.
      if (!io.stdout && process.stdout.writableNeedDrain) {
        await new Promise<void>((resolve) => {
          const done = () => {
            process.stdout.off('drain', done);
            process.stdout.off('close', done);
            resolve();
          };
          process.stdout.on('drain', done);
          process.stdout.on('close', done);
        });
      }
    }
    if (json) out(n === 0 ? ']\n' : '\n]\n');
    else line(`${n} entr${n === 1 ? 'y' : 'ies'}`);
  };

  /**
   * What every list command prints: all entries (`--all`, page after page by id), or one page as JSON or as a
   * table with its footer; `empty` words an empty page.
   */
  const printList = async <T extends { id: number }>(
    opts: { limit?: number; offset?: number; all?: boolean; json?: boolean },
    list: (page: { limit?: number; offset?: number; before?: number }) => Promise<Page<T>>,
    headers: string[],
    row: (item: T) => string[],
    empty: (page: Page<T>) => string,
  ): Promise<void> => {
    if (opts.all) {
      return printAll(
        !!opts.json,
        (before) => list({ limit: MAX_PAGE, ...(before ? { before } : {}) }),
        headers,
        row,
      );
    }
    const page = await list({
      ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
      ...(opts.offset !== undefined ? { offset: opts.offset } : {}),
    });
    if (opts.json) return printJson(page);
    if (page.items.length === 0) return line(empty(page));
    line(table(headers, page.items.map(row)));
    line(pageFooter(page));
  };
  const allOption = () =>
    new Option('--all', 'every entry, page after page (with --json: one array of entries)').conflicts([
      'limit',
      'offset',
    ]);

  let exitCode: number = EXIT.ok;

  const reportError = (e: unknown, json: boolean): number => {
    if (e instanceof ConfigError) {
      err(`${e.message}\n`);
      return EXIT.usage;
    }
    const coded = isMailintakeError(e)
      ? e
      : new MailintakeError('INTERNAL', e instanceof Error ? e.message : String(e), { cause: e });
    if (json) {
      printJson(coded.toJSON());
      return EXIT.error;
    }
    err(`${paint(color, 'red', `error ${coded.code}`)}: ${clean(coded.message)}\n`);
    for (const f of coded.details.fields ?? []) err(`  ${clean(f.field)}: ${clean(f.message)}\n`);
    if (typeof coded.details.serverResponse === 'string') {
      err(`  server said: ${clean(coded.details.serverResponse)}\n`);
    }
    if (typeof coded.details.stepLabel === 'string') {
      err(`  failed step: ${clean(coded.details.stepLabel)}\n`);
      for (const check of (coded.details.checks as unknown[] | undefined) ?? []) {
        err(`  check: ${clean(String(check))}\n`);
      }
    } else if (CONNECTION_CODES.has(coded.code)) err(`  hint: ${ERROR_HELP[coded.code]}\n`);
    return EXIT.error;
  };

  /** The command being run ("mailbox list"), for the store check in withRuntime. */
  let commandPath = '';

  /** Opens the runtime for one command and always closes it. The action returns the exit code. */
  const withRuntime = async (
    json: boolean,
    action: (rt: Runtime) => Promise<unknown>,
    opts: { service?: boolean; beforeOpen?: (config: AppConfig) => Promise<void> } = {},
  ) => {
    let rt: Runtime | undefined;
    try {
      // Imported here, not at the top: `--help` and usage errors must not pay for zod, the database drivers,
      // the IMAP and MIME libraries (1.5-2 s on a small machine before this was lazy).
      const { loadConfig } = await import('../kernel/env.js');
      const { openRuntime } = await import('../app/runtime.js');
      const config = loadConfig(env);
      const where = storeLocation(env);
      const created = checkStore(where, commandPath);
      // A one-off command prints its own result (fetch --once: every failure, in its summary); JSON log lines
      // would repeat it among the human output. Only what the output cannot show (an error of the machinery)
      // is printed, in words. MAILINTAKE_LOG_LEVEL asks for the JSON lines. The service logs JSON at info.
      const logger =
        opts.service || env.MAILINTAKE_LOG_LEVEL
          ? createLogger(config.logLevel, err)
          : createLogger('error', (l) => err(`${clean(l.trimEnd())}\n`), 'text');
      await opts.beforeOpen?.(config);
      rt = await openRuntime(config, {
        logger,
        // The service waits for a database that is not up yet (started before it, or restarting) and says so on
        // every attempt: an admin sees why it is not listening; it comes up by itself once it can.
        ...(opts.service
          ? {
              waitForStore: {
                ...(io.stopSignal ? { signal: io.stopSignal } : {}),
                onWait: (e: MailintakeError, ms: number) => {
                  logger.warn('waiting for the database', { code: e.code, error: e.message, retryInMs: ms });
                  if (!json)
                    err(
                      `waiting for the database (${e.code}: ${e.message}); trying again in ${Math.round(ms / 1000)} s\n`,
                    );
                },
              },
            }
          : {}),
      });
      if (created) {
        err(
          `Created a new store in ${where.dataDir} (${where.dataDirSource}); database: ${where.database}\n`,
        );
      }
      const opened = rt;
      // A one-off command is the admin at the terminal: the system log names them. The service's own work
      // (fetch rounds) is the system's, and its API requests name their key.
      const code = opts.service
        ? await action(opened)
        : await withActor(`cli:${cliUser(env)}`, () => action(opened));
      exitCode = typeof code === 'number' ? code : EXIT.ok;
    } catch (e) {
      exitCode = reportError(e, json);
    } finally {
      if (rt) {
        try {
          await rt.close();
        } catch (e) {
          err(`warning: closing the store failed: ${e instanceof Error ? e.message : String(e)}\n`);
        }
      }
    }
  };

  const readMailboxFile = async (file: string): Promise<unknown> => {
    const value = await readJsonFile(file, 'mailbox');
    if (value && typeof value === 'object') {
      // a Graph mailbox's accessToken is a secret like a password
      const v = value as Record<string, unknown>;
      const oauth = v.oauth as Record<string, unknown> | undefined;
      for (const pw of [v.password, v.accessToken, oauth?.clientSecret]) {
        if (typeof pw === 'string' && pw.length >= MIN_REDACTED_LENGTH) secrets.push(pw);
      }
    }
    return value;
  };

  const readJsonFile = async (file: string, what: string): Promise<unknown> => {
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
    return value;
  };

  // ---- the commands --------------------------------------------------------------------------------------------

  const program = new Command('mailintake')
    .description('Email-to-ticket engine for help desks: every mail becomes one request or conversation.')
    .exitOverride()
    .configureOutput({ writeOut: out, writeErr: err, outputError: (text, write) => write(text) })
    .hook('preAction', (_program, actionCommand) => {
      const names: string[] = [];
      for (let c: Command | null = actionCommand; c?.parent; c = c.parent) names.unshift(c.name());
      commandPath = names.join(' ');
    })
    .addHelpText('after', () => {
      // Said up front: run from another directory, ./data is another (empty) store.
      const where = storeLocation(env);
      return `${EXIT_HELP}\n\nData directory: ${where.dataDir} (${where.dataDirSource})\nDatabase: ${where.database}\n`;
    });

  /** Leaf commands all take --json. */
  const leaf = (parent: Command, spec: string, description: string) =>
    parent
      .command(spec)
      .description(description)
      .option('--json', 'machine-readable output (JSON on stdout)');

  leaf(program, 'serve', 'run the REST API and the fetch scheduler')
    .option('--port <n>', 'port to listen on (default: MAILINTAKE_PORT or 8025)', intArg(0, 65535))
    .option('--host <host>', 'address to listen on (default: MAILINTAKE_HOST or 127.0.0.1)')
    .action(async (opts: { port?: number; host?: string; json?: boolean }) => {
      // Listen before the runtime opens: the port taken is known (--port 0, and the OAuth redirect URL is built
      // from it), and a port in use fails at once, before the store is touched.
      let listener: Listener | undefined;
      try {
        await withRuntime(
          !!opts.json,
          (rt) =>
            serveUntilStopped(rt, listener as Listener, {
              json: !!opts.json,
              line,
              printJson,
              err,
              database: storeLocation(env).database,
              stopSignal: io.stopSignal,
            }),
          {
            service: true,
            beforeOpen: async (config) => {
              listener = await listen(opts.host ?? config.host, opts.port ?? config.port);
              config.listeningPort = listener.port;
            },
          },
        );
      } finally {
        await listener?.close();
      }
    });

  // mailbox …
  const mailbox = program.command('mailbox').description('manage mailboxes (incoming mail servers)');
  leaf(mailbox, 'add', 'add a mailbox from a JSON file (see the README for the fields)')
    .requiredOption('--file <file>', 'mailbox settings file, or - for stdin')
    .action(async (opts: { file: string; json?: boolean }) => {
      await withRuntime(!!opts.json, async (rt) => {
        const view = await rt.services.mailboxes.add(await readMailboxFile(opts.file));
        if (opts.json) return printJson(view);
        line(`Mailbox ${clean(view.name)} added.`);
        printMailbox(line, view);
      });
    });
  leaf(mailbox, 'list', 'list mailboxes').action(async (opts: { json?: boolean }) => {
    await withRuntime(!!opts.json, async (rt) => {
      const list = await rt.services.mailboxes.list();
      if (opts.json) return printJson(list);
      if (list.length === 0)
        return line('No mailboxes. Add one with: mailintake mailbox add --file mailbox.json');
      line(
        table(
          ['NAME', 'PORTAL', 'SERVER', 'USER', 'ENABLED', 'LAST FETCH', 'LAST ERROR'],
          list.map((m) => [
            m.name,
            m.portal,
            serverUrl(m),
            m.username,
            m.enabled ? 'yes' : `no (${m.status})`,
            m.state.lastFetchAt ?? '-',
            m.state.lastErrorCode ?? '-',
          ]),
        ),
      );
    });
  });
  leaf(mailbox, 'show', 'show one mailbox')
    .argument('<name>')
    .action(async (name: string, opts: { json?: boolean }) => {
      await withRuntime(!!opts.json, async (rt) => {
        const view = await rt.services.mailboxes.get(name);
        if (opts.json) return printJson(view);
        printMailbox(line, view);
      });
    });
  leaf(mailbox, 'update', 'replace a mailbox’s settings from a JSON file (no password: keep the stored one)')
    .argument('<name>')
    .requiredOption('--file <file>', 'mailbox settings file, or - for stdin')
    .option('--pause', 'if the mailbox is being fetched, pause fetching to save (enable it again afterwards)')
    .action(async (name: string, opts: { file: string; pause?: boolean; json?: boolean }) => {
      await withRuntime(!!opts.json, async (rt) => {
        const view = await rt.services.mailboxes.update(name, await readMailboxFile(opts.file), {
          pauseFetching: !!opts.pause,
        });
        if (opts.json) return printJson(view);
        line(`Mailbox ${clean(view.name)} updated.`);
        if (!view.enabled && opts.pause) {
          line(`Fetching is paused; run "mailintake mailbox enable ${clean(view.name)}" to resume it.`);
        }
        printMailbox(line, view);
      });
    });
  leaf(mailbox, 'remove', 'remove a mailbox (its requests and history are kept)')
    .argument('<name>')
    .action(async (name: string, opts: { json?: boolean }) => {
      await withRuntime(!!opts.json, async (rt) => {
        const keptAs = await rt.services.mailboxes.remove(name);
        if (opts.json) return printJson({ removed: name, keptAs });
        line(
          `Mailbox ${clean(name)} removed. Its requests, intake log, error mails and notifications are kept; they now name it "${clean(keptAs)}".`,
        );
      });
    });
  for (const [verb, enabled] of [
    ['enable', true],
    ['disable', false],
  ] as const) {
    leaf(mailbox, verb, `${verb} scheduled fetching of a mailbox`)
      .argument('<name>')
      .action(async (name: string, opts: { json?: boolean }) => {
        await withRuntime(!!opts.json, async (rt) => {
          const view = await rt.services.mailboxes.setEnabled(name, enabled);
          if (opts.json) return printJson(view);
          line(`Mailbox ${clean(view.name)} ${enabled ? 'enabled' : 'disabled'}.`);
        });
      });
  }
  leaf(mailbox, 'test', 'connect, log in and describe the oldest mail without processing it')
    .argument('<name>')
    .action(async (name: string, opts: { json?: boolean }) => {
      await withRuntime(!!opts.json, async (rt) => {
        const result = await rt.services.mailboxes.test(name);
        if (opts.json) return printJson(result);
        line(`Mailbox ${clean(name)} reached in ${result.durationMs} ms.`);
        const s = result.sample;
        if (!s) return line('The folder is empty: no sample mail.');
        line('Oldest mail:');
        line(
          fields([
            ['from', s.from ?? '-'],
            ['subject', s.subject ?? '-'],
            ['date', s.date ?? '-'],
            ['size', `${s.size} bytes`],
            ['attachments', s.attachments.length ? s.attachments.join(', ') : '(none)'],
          ]),
        );
      });
    });

  // OAuth 2.0 consent and token state
  leaf(mailbox, 'authorize', 'start the OAuth consent of a mailbox: prints the URL to open')
    .argument('<name>')
    .addHelpText(
      'after',
      "\nOpen the URL, sign in as the mailbox's user and approve. The provider then sends the browser to the\n" +
        'redirect URL (MAILINTAKE_PUBLIC_URL/oauth/callback), where the running service finishes the consent.\n' +
        'If that address is not reachable from the browser, copy the address the browser shows and run\n' +
        '"mailintake oauth complete \'<address>\'".',
    )
    .action(async (name: string, opts: { json?: boolean }) => {
      await withRuntime(!!opts.json, async (rt) => {
        const started = await rt.services.oauth.authorize(name);
        if (opts.json) return printJson(started);
        line(`Open this URL in a browser and sign in as the user of mailbox ${clean(name)}:`);
        line();
        line(`  ${started.authorizationUrl}`);
        line();
        line(
          `The provider returns the browser to ${started.redirectUrl} (register exactly this URL for the app;`,
        );
        line(`the service must be running there). The link is valid until ${started.expiresAt}.`);
        line(
          'If the browser cannot reach that address, copy the address it shows and run: mailintake oauth complete "<address>"',
        );
      });
    });
  leaf(mailbox, 'oauth', 'show the OAuth token state of a mailbox (never the tokens)')
    .argument('<name>')
    .action(async (name: string, opts: { json?: boolean }) => {
      await withRuntime(!!opts.json, async (rt) => {
        const view = await rt.services.oauth.status(name);
        if (opts.json) return printJson(view);
        line(fields(tokenStateFields(view)));
      });
    });
  leaf(mailbox, 'oauth-revoke', 'discard the OAuth tokens of a mailbox (not fetched until authorized again)')
    .argument('<name>')
    .action(async (name: string, opts: { json?: boolean }) => {
      await withRuntime(!!opts.json, async (rt) => {
        await rt.services.oauth.revoke(name);
        if (opts.json) return printJson({ revoked: name });
        line(
          `Tokens of mailbox ${clean(name)} discarded. Run "mailintake mailbox authorize ${clean(name)}" to authorize it again.`,
        );
      });
    });
  const oauth = program.command('oauth').description('OAuth 2.0: finish a consent by hand, provider presets');
  leaf(oauth, 'complete', 'finish a consent with the address the provider sent the browser to')
    .argument('<address>', 'the whole address from the browser, with ?code=…&state=…')
    .action(async (address: string, opts: { json?: boolean }) => {
      await withRuntime(!!opts.json, async (rt) => {
        const done = await rt.services.oauth.complete(address);
        if (opts.json) return printJson(done);
        line(
          `${clean(done.label.charAt(0).toUpperCase() + done.label.slice(1))} authorized${done.account ? ` for ${clean(done.account)}` : ''}.`,
        );
        line(
          fields([
            ['scope granted', done.grantedScope],
            ['refresh token', done.refreshTokenSet ? 'issued' : 'NOT issued'],
            ['access token until', done.accessTokenExpiresAt ?? '-'],
          ]),
        );
        for (const w of done.warnings) line(`warning: ${clean(w)}`);
      });
    });
  leaf(oauth, 'providers', 'the scope each provider preset fills per protocol, and the redirect URL').action(
    async (opts: { json?: boolean }) => {
      await withRuntime(!!opts.json, async (rt) => {
        const p = rt.services.oauth.providers();
        if (opts.json) return printJson(p);
        line(`Redirect URL to register at the provider: ${p.redirectUrl}`);
        for (const [provider, uses] of Object.entries(p.presets)) {
          line();
          line(`${provider}:`);
          for (const [use, v] of Object.entries(uses)) {
            line(
              `  ${use.padEnd(6)} ${v?.scope ?? '(type the scope)'}${v?.appScope ? `   app-only: ${v.appScope}` : ''}`,
            );
          }
        }
      });
    },
  );

  // fetch
  leaf(program, 'fetch', 'fetch the enabled mailboxes (or one) once and print what happened')
    .requiredOption('--once', 'one round, then exit (serve fetches on schedule)')
    .option('--mailbox <name>', 'only this mailbox (enabled or not)')
    .addHelpText(
      'after',
      '\nExit status: 0 when every mailbox was reached and its round completed, 3 when one could not be reached or its round stopped on an error; 1, 2 as usual.',
    )
    .action(async (opts: { mailbox?: string; json?: boolean }) => {
      await withRuntime(!!opts.json, async (rt) => {
        const summaries = await rt.services.fetch.once(opts.mailbox ? { mailbox: opts.mailbox } : {});
        const code = summaries.every((s) => s.reached && !s.error) ? EXIT.ok : EXIT.unreachable;
        if (opts.json) {
          printJson(summaries);
          return code;
        }
        printFetch(line, color, summaries);
        return code;
      });
    });

  // requests
  const requests = program.command('requests').description('requests (tickets) created from mail');
  const requestRow = (r: RequestSummary) => [
    `#${r.id}`,
    r.portal,
    r.status,
    String(r.conversationCount),
    r.requester?.address ?? '-',
    truncate(r.subject, 60),
    r.createdAt,
  ];
  const requestHeaders = ['ID', 'PORTAL', 'STATUS', 'CONV', 'FROM', 'SUBJECT', 'CREATED'];
  leaf(requests, 'list', 'list requests, newest first')
    .option('--portal <portal>', 'only this portal')
    .option('--limit <n>', 'at most n requests', intArg(1, MAX_PAGE))
    .option('--offset <n>', 'skip the first n', intArg(0, 1_000_000_000))
    .addOption(allOption())
    .action(
      async (opts: { portal?: string; limit?: number; offset?: number; all?: boolean; json?: boolean }) => {
        await withRuntime(!!opts.json, (rt) =>
          printList(
            opts,
            (page) => rt.services.requests.list({ portal: opts.portal, ...page }),
            requestHeaders,
            requestRow,
            (page) => (page.total === 0 ? 'No requests.' : 'No requests on this page.'),
          ),
        );
      },
    );
  leaf(requests, 'show', 'show a request (by request id) with its conversations and attachment metadata')
    .argument('<id>', 'request id: the number of #12 in "requests list"', intArg(1, Number.MAX_SAFE_INTEGER))
    .action(async (id: number, opts: { json?: boolean }) => {
      await withRuntime(!!opts.json, async (rt) => {
        const detail = await rt.services.requests.show(id);
        if (opts.json) return printJson(detail);
        printRequest(line, detail);
      });
    });

  leaf(
    program,
    'raw',
    'save the raw mail of an intake-log entry (by log id, not request id), exactly as fetched',
  )
    .argument(
      '<id>',
      'intake log id, not a request id: the ID column of "mailintake log", or "intake log" in "requests show"',
      intArg(1, Number.MAX_SAFE_INTEGER),
    )
    .requiredOption('--out <file>', 'file to write (not overwritten if it exists)')
    .action(async (id: number, opts: { out: string; json?: boolean }) => {
      await withRuntime(!!opts.json, async (rt) => {
        const { meta, open } = await rt.services.log.raw(id);
        // 'wx': a mistyped --out must not clobber an existing file.
        await pipeline(open(), createWriteStream(opts.out, { flags: 'wx', mode: 0o600 }));
        if (opts.json) return printJson({ id, file: opts.out, size: meta.size, sha256: meta.sha256 });
        line(`Wrote ${meta.size} bytes of log entry #${id} to ${opts.out}`);
      });
    });

  // log
  const logHeaders = ['ID', 'TIME', 'MAILBOX', 'OUTCOME', 'RESULT', 'FROM', 'SUBJECT', 'REASONS'];
  const logRow = (e: IntakeLogEntry) => [
    String(e.id),
    e.createdAt,
    e.mailbox,
    e.outcome,
    logResult(e),
    e.from ?? '-',
    truncate(e.subject ?? '-', 40),
    truncate(e.reasons.join('; ') || '-', 60),
  ];
  leaf(program, 'log', 'the intake log: every mail fetched, its outcome and why')
    .option('--mailbox <name>', 'only this mailbox')
    .addOption(
      new Option('--outcome <outcome>', 'only this outcome').choices([
        'created',
        'appended',
        'ignored',
        'error',
      ]),
    )
    .option('--limit <n>', 'at most n entries', intArg(1, MAX_PAGE))
    .option('--offset <n>', 'skip the first n', intArg(0, 1_000_000_000))
    .addOption(allOption())
    .action(
      async (opts: {
        mailbox?: string;
        outcome?: string;
        limit?: number;
        offset?: number;
        all?: boolean;
        json?: boolean;
      }) => {
        await withRuntime(!!opts.json, (rt) =>
          printList(
            opts,
            (page) => rt.services.log.list({ mailbox: opts.mailbox, outcome: opts.outcome, ...page }),
            logHeaders,
            logRow,
            () => 'The intake log is empty.',
          ),
        );
      },
    );

  // portal …
  const portal = program.command('portal').description('portals (help desks)');
  leaf(portal, 'list', 'list portals').action(async (opts: { json?: boolean }) => {
    await withRuntime(!!opts.json, async (rt) => {
      const list = await rt.services.portals.list();
      if (opts.json) return printJson(list);
      line(
        table(
          ['ID', 'NAME', 'HEADER THREADING'],
          list.map((p) => [String(p.id), p.name, p.headerThreading ? 'on' : 'off']),
        ),
      );
    });
  });
  leaf(portal, 'add', 'add a portal')
    .argument('<name>')
    .action(async (name: string, opts: { json?: boolean }) => {
      await withRuntime(!!opts.json, async (rt) => {
        const p = await rt.services.portals.add(name);
        if (opts.json) return printJson(p);
        line(`Portal ${clean(p.name)} added (id ${p.id}).`);
      });
    });
  leaf(portal, 'show', 'show a portal’s settings, with the effective attachment policy')
    .argument('<name>')
    .action(async (name: string, opts: { json?: boolean }) => {
      await withRuntime(!!opts.json, async (rt) => {
        const p = (await rt.services.portals.list()).find((x) => x.name === name);
        if (!p) throw new MailintakeError('NOT_FOUND', `no portal named "${name}"`);
        if (opts.json) return printJson(p);
        printPortal(line, p);
      });
    });
  leaf(portal, 'set', 'change a portal’s settings')
    .argument('<name>')
    .addOption(
      new Option(
        '--header-threading <mode>',
        'off: only ##<request id>## in the subject threads a reply; on: In-Reply-To/References too',
      ).choices(['on', 'off']),
    )
    .option(
      '--attachment-policy <file>',
      'JSON file with attachment-policy fields to change (null restores a default); "-" reads stdin',
    )
    .action(
      async (
        name: string,
        opts: { headerThreading?: 'on' | 'off'; attachmentPolicy?: string; json?: boolean },
      ) => {
        await withRuntime(!!opts.json, async (rt) => {
          if (opts.headerThreading === undefined && opts.attachmentPolicy === undefined) {
            throw new MailintakeError('INVALID_SETTINGS', 'nothing to change', {
              details: {
                fields: [
                  { field: '(options)', message: 'give --header-threading and/or --attachment-policy' },
                ],
              },
            });
          }
          const patch: { headerThreading?: boolean; attachmentPolicy?: Record<string, unknown> } = {};
          if (opts.headerThreading !== undefined) patch.headerThreading = opts.headerThreading === 'on';
          if (opts.attachmentPolicy !== undefined) {
            const value = await readJsonFile(opts.attachmentPolicy, 'attachment policy');
            if (!value || typeof value !== 'object' || Array.isArray(value)) {
              throw new MailintakeError('INVALID_SETTINGS', 'the attachment policy must be a JSON object', {
                details: { fields: [{ field: '(file)', message: 'must be a JSON object' }] },
              });
            }
            patch.attachmentPolicy = value as Record<string, unknown>;
          }
          const p = await rt.services.portals.update(name, patch);
          if (opts.json) return printJson(p);
          if (opts.attachmentPolicy === undefined) {
            return line(`Portal ${clean(p.name)}: header threading ${p.headerThreading ? 'on' : 'off'}.`);
          }
          printPortal(line, p);
        });
      },
    );

  // system-log
  const systemHeaders = ['ID', 'TIME', 'ACTOR', 'LEVEL', 'CATEGORY', 'MESSAGE'];
  const systemRow = (e: SystemLogEntry) => [
    String(e.id),
    e.createdAt,
    e.actor,
    e.level,
    e.category,
    truncate(e.message, 120),
  ];
  leaf(program, 'system-log', 'the system log: what Mailintake did, why, and who (e.g. dropped attachments)')
    .option('--category <category>', `only this category: ${SYSTEM_LOG_CATEGORIES.join(', ')}`)
    .option('--limit <n>', 'at most n entries', intArg(1, MAX_PAGE))
    .option('--offset <n>', 'skip the first n', intArg(0, 1_000_000_000))
    .addOption(allOption())
    .action(
      async (opts: { category?: string; limit?: number; offset?: number; all?: boolean; json?: boolean }) => {
        await withRuntime(!!opts.json, (rt) =>
          printList(
            opts,
            (page) => rt.services.systemLog.list({ category: opts.category, ...page }),
            systemHeaders,
            systemRow,
            () => 'The system log is empty.',
          ),
        );
      },
    );

  // notifications, rules, smtp, alerts, outbox
  // What every group of commands in its own file gets from here: output, tables, the runtime.
  const commandKit = {
    leaf,
    withRuntime: (json: boolean, action: (rt: Runtime) => Promise<unknown>) => withRuntime(json, action),
    line,
    printJson,
    clean,
    table,
    fields,
    truncate,
    pageFooter,
    intArg,
  };
  addNotificationCommands(program, {
    ...commandKit,
    readSecretFile: async (file, what) => {
      const value = await readJsonFile(file, what);
      const v = value as { password?: unknown; oauth?: { clientSecret?: unknown } } | null;
      for (const pw of [v?.password, v?.oauth?.clientSecret]) {
        if (typeof pw === 'string' && pw.length >= MIN_REDACTED_LENGTH) secrets.push(pw);
      }
      return value;
    },
  });

  // errors … (the error folder), secret-key reseal
  addErrorFolderCommands(program, commandKit);

  // attachment get
  addAttachmentCommands(program, {
    ...commandKit,
    err,
    binaryStdout: () => io.binaryStdout ?? process.stdout,
  });

  // apikey …
  const apikey = program.command('apikey').description('API keys for the REST API');
  leaf(apikey, 'create', 'create an API key (shown once)')
    .argument('<name>')
    .action(async (name: string, opts: { json?: boolean }) => {
      await withRuntime(!!opts.json, async (rt) => {
        const { key, view } = await rt.services.apiKeys.create(name);
        if (opts.json) return printJson({ ...view, key });
        line(`API key ${view.id} (${clean(view.name)}):`);
        line(key);
        line('Store it now: it will not be shown again. Send it as "Authorization: Bearer <key>".');
      });
    });
  leaf(apikey, 'list', 'list API keys (never the keys themselves)').action(
    async (opts: { json?: boolean }) => {
      await withRuntime(!!opts.json, async (rt) => {
        const list = await rt.services.apiKeys.list();
        if (opts.json) return printJson(list);
        if (list.length === 0) return line('No API keys. Create one with: mailintake apikey create NAME');
        line(
          table(
            ['ID', 'NAME', 'PREFIX', 'CREATED', 'LAST USED'],
            list.map((k) => [String(k.id), k.name, k.prefix, k.createdAt, k.lastUsedAt ?? 'never']),
          ),
        );
      });
    },
  );
  leaf(apikey, 'revoke', 'revoke an API key')
    .argument('<id>', 'key id', intArg(1, Number.MAX_SAFE_INTEGER))
    .action(async (id: number, opts: { json?: boolean }) => {
      await withRuntime(!!opts.json, async (rt) => {
        await rt.services.apiKeys.revoke(id);
        if (opts.json) return printJson({ revoked: id });
        line(`API key ${id} revoked.`);
      });
    });

  try {
    await program.parseAsync(args, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    return reportError(e, false);
  }
  return exitCode;
}

// ---- serve ------------------------------------------------------------------------------------------------------

interface Listener {
  host: string;
  port: number;
  url: string;
  /** Hands the requests to the API (until then they are answered 503: the store is still opening). */
  serveWith(handler: (req: Request, env: unknown) => Response | Promise<Response>): void;
  /** Stops taking connections and waits for the open ones to end (idempotent). */
  close(): Promise<void>;
}

async function listen(host: string, port: number): Promise<Listener> {
  const { serve: serveHttp } = await import('@hono/node-server');
  let handler: ((req: Request, env: unknown) => Response | Promise<Response>) | undefined;
  const server = serveHttp({
    fetch: (req, env) =>
      handler
        ? handler(req, env)
        : new Response('Mailintake is starting', { status: 503, headers: { 'retry-after': '1' } }),
    port,
    hostname: host,
  });
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', (e: NodeJS.ErrnoException) => {
      server.close();
      reject(
        e.code === 'EADDRINUSE'
          ? new MailintakeError(
              'PORT_IN_USE',
              `Port ${port} on ${host} is already in use by another program (another Mailintake service?). ` +
                'Stop that program, or choose another port with --port or MAILINTAKE_PORT.',
              { details: { host, port } },
            )
          : new MailintakeError('INTERNAL', `Cannot listen on ${host}:${port}: ${e.code ?? e.message}`, {
              details: { host, port },
            }),
      );
    });
  });
  const actual = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    host,
    port: actual,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${actual}`,
    serveWith: (h) => {
      handler = h;
    },
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        if ('closeIdleConnections' in server) server.closeIdleConnections();
      });
      return closing;
    },
  };
}

async function serveUntilStopped(
  rt: Runtime,
  listener: Listener,
  o: {
    json: boolean;
    line: (t: string) => void;
    printJson: (v: unknown) => void;
    err: (t: string) => void;
    /** The SQLite file or the PostgreSQL server and database, never the password. */
    database: string;
    stopSignal: AbortSignal | undefined;
  },
): Promise<number> {
  const { createApi } = await import('../http/app.js');
  const app = createApi(rt.services, {
    logger: {
      error: (msg, fields) =>
        o.err(`${JSON.stringify({ time: new Date().toISOString(), level: 'error', msg, ...fields })}\n`),
    },
  });
  listener.serveWith((req, env) => app.fetch(req, env as never));
  const { dataDirWarnings } = await import('../store/db.js');
  const log = createLogger(rt.config.logLevel, o.err);
  for (const warning of dataDirWarnings(rt.config.dataDir)) {
    log.warn('file permissions', { warning });
    if (!o.json) o.err(`warning: ${warning}\n`);
  }
  rt.startScheduler();
  const { redirectUrl } = rt.services.oauth.providers();
  if (o.json) {
    o.printJson({
      listening: listener.url,
      host: listener.host,
      port: listener.port,
      dataDir: rt.config.dataDir,
      database: o.database,
      redirectUrl,
    });
  } else {
    o.line(`Mailintake listening on ${listener.url} (data: ${rt.config.dataDir}, database: ${o.database})`);
    o.line(`OAuth redirect URL: ${redirectUrl}`);
  }

  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      o.stopSignal?.removeEventListener('abort', stop);
      resolve();
    };
    // Only the first signal is ours: with the handlers gone, a second Ctrl-C or SIGTERM ends the process at
    // once (the lease then expires on its own, nothing committed is lost).
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    if (o.stopSignal?.aborted) stop();
    else o.stopSignal?.addEventListener('abort', stop);
  });
  if (!o.json) o.err('Stopping: finishing running fetches (a second Ctrl-C stops at once)…\n');
  // Stop taking requests, then let withRuntime's runtime.close() finish the running fetches and close the store.
  await listener.close();
  return EXIT.ok;
}

/**
 * Run from another directory, ./data is another, empty store: `requests list` answered "No requests." and the
 * admin believed the mail was lost. A command that only reads refuses when the data directory is missing; a
 * command that sets something up (serve, add, create, set) creates it and says where (the returned flag).
 */
function checkStore(where: StoreLocation, commandPath: string): boolean {
  const dirExists = fs.existsSync(where.dataDir);
  const isNew = !dirExists || (where.engine === 'sqlite' && !fs.existsSync(where.database));
  if (dirExists) return isNew;
  const leafName = commandPath.split(' ').pop() ?? '';
  if (commandPath === 'serve' || STORE_CREATING.has(leafName)) return true;
  throw new MailintakeError(
    'STORE_NOT_FOUND',
    `No Mailintake data directory at ${where.dataDir} (${where.dataDirSource}). Run the command where the ` +
      'data directory is, or set MAILINTAKE_DATA_DIR to it. A new installation starts with "mailintake serve" ' +
      'or "mailintake mailbox add".',
    { details: { dataDir: where.dataDir } },
  );
}

/** Leaf commands that set something up, and so may start a new store; all others need an existing one. */
const STORE_CREATING = new Set(['add', 'create', 'set']);

// ---- presenting -------------------------------------------------------------------------------------------------

/**
 * Subjects, names and bodies come from the sender. Printed raw, an ESC sequence could rewrite the admin's
 * terminal (move the cursor, hide lines, set the window title, on some terminals even inject input), and bidi
 * overrides could make text read differently from what it is. Those characters are shown as `?`.
 */
function clean(text: string, keepNewlines = false): string {
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

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function table(headers: string[], rows: string[][]): string {
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
function fields(pairs: [string, string][], indent = '  '): string {
  const width = Math.max(...pairs.map(([k]) => k.length)) + 1;
  return pairs.map(([k, v]) => `${indent}${`${k}:`.padEnd(width)} ${clean(v)}`).join('\n');
}

function paint(on: boolean, tone: 'red' | 'green' | 'bold', text: string): string {
  if (!on) return text;
  const codes = { red: 31, green: 32, bold: 1 } as const;
  return `\u001b[${codes[tone]}m${text}\u001b[0m`;
}

/** The URL scheme people know: pop3:// and pop3s:// (RFC 2384), imap:// and imaps:// (RFC 5092). */
function serverUrl(m: MailboxView): string {
  // Graph and EWS: `server` is the endpoint URL itself (Graph Endpoint, EWS Connect URL)
  if (m.protocol === 'graph' || m.protocol === 'ews') return m.server;
  const scheme = m.protocol === 'pop' ? 'pop3' : m.protocol === 'pops' ? 'pop3s' : m.protocol;
  return `${scheme}://${m.server}:${m.port}`;
}

function tlsNote(m: MailboxView): string {
  if (m.protocol === 'imap') return m.starttls ? ' (STARTTLS)' : ' (no TLS)';
  if (m.protocol === 'pop') return m.starttls ? ' (STLS)' : ' (no TLS)';
  return '';
}

function printMailbox(line: (t: string) => void, m: MailboxView): void {
  const s = m.state;
  line(
    fields(
      [
        ['name', m.name],
        ['portal', m.portal],
        ['server', `${serverUrl(m)}${tlsNote(m)}`],
        ['username', m.username],
        m.auth === 'oauth2' && m.oauth
          ? [
              'login',
              `OAuth 2.0 (${m.oauth.provider}, ${m.oauth.flow}, client ${m.oauth.clientId}, scope "${m.oauth.scope}")` +
                (m.oauth.tokens
                  ? `: ${m.oauth.tokens.status}${m.oauth.tokens.account ? ` as ${m.oauth.tokens.account}` : ''}`
                  : ''),
            ]
          : m.auth === 'token'
            ? ['access token', '(set; never shown)']
            : ['password', m.passwordSet ? '(set; never shown)' : '(not set)'],
        ...(m.oauth ? [['redirect URL', m.oauth.redirectUrl] as [string, string]] : []),
        ['addresses', m.emailAddress.join(', ')],
        ['folder', m.folder],
        ['after fetch', m.afterFetch === 'move' ? `move to ${m.moveToFolder ?? '?'}` : m.afterFetch],
        ['interval', `${m.intervalSeconds} s`],
        [
          'push (IDLE)',
          m.protocol === 'graph' || m.protocol === 'ews' || m.protocol === 'pop' || m.protocol === 'pops'
            ? `none for ${m.protocol === 'graph' ? 'Graph' : m.protocol === 'ews' ? 'EWS' : 'POP3'}: on the interval only`
            : m.idle
              ? 'on: new mail is taken in at once'
              : 'off: on the interval only',
        ],
        ['CA file', m.caFile ?? '-'],
        ['enabled', m.enabled ? 'yes' : `no (${m.status})`],
        [
          'error folder',
          !m.moveToErrorFolder
            ? 'off: a failing mail stays in the inbox'
            : `${m.errorFolder === null ? 'kept by Mailintake (POP3 has no folders)' : `"${m.errorFolder}"`}, ${m.errorMails} mail(s)` +
              `${m.stopAfterErrors === null ? '' : `, stop fetching at ${m.stopAfterErrors}`}` +
              `${m.notifyOnErrorFolder ? ', notify' : ''}`,
        ],
        ['last fetch', s.lastFetchAt ?? 'never'],
        [
          'last error',
          s.lastErrorCode
            ? `${s.lastErrorCode}: ${s.lastErrorMessage ?? ''} (${s.consecutiveFailures} failure(s) in a row)`
            : '-',
        ],
      ],
      '',
    ),
  );
}

function printFetch(line: (t: string) => void, color: boolean, summaries: FetchSummary[]): void {
  if (summaries.length === 0) {
    line('No enabled mailboxes to fetch.');
    return;
  }
  line(
    table(
      [
        'MAILBOX',
        'FETCHED',
        'CREATED',
        'APPENDED',
        'IGNORED',
        'ERRORED',
        'REACKNOWLEDGED',
        'ERROR FOLDER',
        'TIME',
      ],
      summaries.map((s) => [
        s.mailbox,
        ...[
          s.fetched,
          s.created,
          s.appended,
          s.ignored,
          s.errored,
          s.reacknowledged,
          s.movedToErrorFolder,
        ].map(String),
        `${s.durationMs} ms`,
      ]),
    ),
  );
  // A round can fail before the mailbox is reached, or stop part-way (what was committed stays committed; the
  // rest is taken in next round): either way the operator must see it.
  for (const s of summaries.filter((x) => !x.reached || x.error)) {
    const code = s.error?.code ?? 'INTERNAL';
    const what = s.reached ? 'round stopped early' : 'not reached';
    line(
      `${clean(s.mailbox)}: ${what}: ${paint(color, 'red', `error ${code}`)}: ${clean(s.error?.message ?? '')}`,
    );
    // The connectors' messages already say what to check for that very server; the generic hint would say it
    // a second time (with the JSON log line, each failure was printed three times).
    const help = ERROR_HELP[code as ErrorCode] as string | undefined;
    if (help && !/\bCheck\b/.test(s.error?.message ?? '')) line(`  hint: ${help}`);
  }
  for (const s of summaries.filter((x) => x.stopped === 'error-folder-limit')) {
    line(
      `${clean(s.mailbox)}: ${paint(color, 'red', 'fetching stopped')}: the error folder reached its limit ("stop mail fetching after N mails"). ` +
        `See "mailintake errors list --mailbox ${clean(s.mailbox)}", fix the cause, then "mailintake errors move-to-inbox ${clean(s.mailbox)}" and "mailintake mailbox enable ${clean(s.mailbox)}".`,
    );
  }
  for (const s of summaries.filter((x) => x.stopped && x.stopped !== 'error-folder-limit')) {
    line(
      `${clean(s.mailbox)}: round stopped, the mailbox was disabled (${clean(s.stopped ?? '')}); the rest waits on the server`,
    );
  }
}

function pageFooter(page: { items: unknown[]; total: number; offset: number }): string {
  const from = page.offset + 1;
  return `${from}–${page.offset + page.items.length} of ${page.total}`;
}

function logResult(e: IntakeLogEntry): string {
  if (e.outcome === 'error') return e.errorCode ?? 'error';
  if (e.conversationId !== null && e.requestId !== null) return `#${e.requestId} conv ${e.conversationId}`;
  return e.requestId !== null ? `#${e.requestId}` : '-';
}

/** A mail's intake-log id, with the command that saves its raw source (`raw` takes log ids, not request ids). */
function logLine(id: number | null): string {
  return id === null ? '-' : `#${id} (raw mail: mailintake raw ${id} --out FILE)`;
}

function addr(a: { address: string; name: string } | null): string {
  if (!a) return '-';
  return a.name ? `${a.name} <${a.address}>` : a.address;
}

function attachmentLines(list: AttachmentView[]): string[] {
  return list.map(
    (a) =>
      `  [${a.id}] ${clean(a.filename)} (${clean(a.contentType)}, ${a.size} bytes${a.disposition === 'inline' ? ', inline' : ''})`,
  );
}

function droppedLines(list: DroppedAttachmentView[]): string[] {
  return list.map(
    (d) =>
      `  ${clean(d.filename)} (${d.size} bytes${d.disposition === 'inline' ? ', inline' : ''}): ${d.code} ${d.message} — ${clean(d.detail)}`,
  );
}

function printPortal(line: (t: string) => void, p: PortalView): void {
  const a = p.attachmentPolicy;
  const mb = (n: number, off: string) => (n === -1 ? off : `${n} MB`);
  line(`Portal ${clean(p.name)} (id ${p.id})`);
  line(
    fields([
      ['header threading', p.headerThreading ? 'on' : 'off'],
      ['max attachment size', mb(a.maxSizeMb, 'unlimited')],
      ['max inline image size', mb(a.inlineImageMaxSizeMb, 'not checked')],
      ['allowed extensions', a.allowedExtensions.join(', ') || 'all not denied'],
      ['denied extensions', a.deniedExtensions.join(', ') || 'none'],
      [
        'file names',
        a.fileNames === 'strict' ? 'strict (letters, digits, . - _ space)' : 'safe (unsafe names refused)',
      ],
      ['attachment checks', a.skipAttachmentValidation ? 'skipped' : 'on'],
      ['inline image checks', a.skipInlineImageValidation ? 'skipped' : 'on'],
      ['notify on drop', a.notifyOnDrop ? 'on' : 'off'],
      ['notify on inline image drop', a.notifyOnInlineImageDrop ? 'on' : 'off'],
    ]),
  );
}

function printRequest(line: (t: string) => void, r: RequestDetail): void {
  line(`Request #${r.id}: ${clean(r.subject)}`);
  line(
    fields([
      ['portal', r.portal],
      ['status', r.status],
      ['from', addr(r.requester)],
      ['to', r.to.map(addr).join(', ') || '-'],
      ['cc', r.cc.map(addr).join(', ') || '-'],
      ['date', r.date ?? '-'],
      ['mailbox', r.mailbox ?? '-'],
      ['intake log', logLine(r.logId)],
      ['message-id', r.messageId ?? '-'],
      ['created', r.createdAt],
    ]),
  );
  printBody(line, r.text, r.html);
  if (r.attachments.length) {
    line('Attachments ([id]: save with `mailintake attachment get ID --out FILE`):');
    for (const l of attachmentLines(r.attachments)) line(l);
  }
  if (r.droppedAttachments.length) {
    line('Dropped attachments:');
    for (const l of droppedLines(r.droppedAttachments)) line(l);
  }
  r.conversations.forEach((c: ConversationView, i) => {
    line('');
    line(`Conversation ${i + 1} (id ${c.id}): ${clean(c.subject)}`);
    line(
      fields([
        ['from', addr(c.from)],
        ['date', c.date ?? '-'],
        ['mailbox', c.mailbox ?? '-'],
        ['intake log', logLine(c.logId)],
      ]),
    );
    printBody(line, c.text, c.html);
    if (c.attachments.length) {
      line('Attachments:');
      for (const l of attachmentLines(c.attachments)) line(l);
    }
    if (c.droppedAttachments.length) {
      line('Dropped attachments:');
      for (const l of droppedLines(c.droppedAttachments)) line(l);
    }
  });
}

function printBody(line: (t: string) => void, text: string | null, html: string | null): void {
  line('');
  if (text) line(clean(text.trimEnd(), true).replace(/^/gm, '    '));
  else if (html) line(`    (HTML only, ${html.length} characters; see the API or --json)`);
  else line('    (no body)');
}

// ---- small helpers ----------------------------------------------------------------------------------------------

function intArg(min: number, max: number) {
  return (value: string): number => {
    if (!/^[0-9]+$/.test(value)) throw new InvalidArgumentError('must be a whole number.');
    const n = Number(value);
    if (n < min || n > max) throw new InvalidArgumentError(`must be between ${min} and ${max}.`);
    return n;
  };
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

/** The OS user running a CLI command (SUDO_USER first: `sudo mailintake …` is that person, not root). */
function cliUser(env: NodeJS.ProcessEnv): string {
  if (env.SUDO_USER) return env.SUDO_USER;
  try {
    return os.userInfo().username;
  } catch {
    return env.USER ?? 'unknown';
  }
}
