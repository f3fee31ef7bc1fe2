import fs from 'node:fs';
import os from 'node:os';
import type { Runtime } from '../app/runtime.js';
import { clean, paint } from '../features/shared/cli-kit.js';
import { withActor } from '../kernel/actor.js';
import type { AppConfig } from '../kernel/env.js';
import { CONNECTION_CODES, ERROR_HELP, isMailintakeError, MailintakeError } from '../kernel/errors.js';
import { createLogger, type Logger } from '../kernel/logger.js';
import { ConfigError, type StoreLocation, storeLocation } from '../kernel/store-location.js';
import type { CliIo, CliOutput } from './kit.js';

export const EXIT = { ok: 0, error: 1, usage: 2, unreachable: 3 } as const;

/** One run of the CLI: where it prints, what it reads, and the exit code its command leaves. */
export interface CliRun {
  readonly o: CliOutput;
  readonly io: CliIo;
  readonly env: NodeJS.ProcessEnv;
  /** The command being run ("mailbox list"), for the store check. */
  commandPath: string;
  exitCode: number;
}

export interface RuntimeOptions {
  /** `serve`: logs JSON at info, waits for the database, and its work is the system's, not the admin's. */
  service?: boolean;
  /** Runs once the config is loaded, before the store opens (serve listens there). */
  beforeOpen?: (config: AppConfig) => Promise<void>;
}

/** Opens the runtime for one command and always closes it. The action returns the exit code. */
export async function withRuntime(
  run: CliRun,
  json: boolean,
  action: (rt: Runtime) => Promise<unknown>,
  opts: RuntimeOptions = {},
): Promise<void> {
  let rt: Runtime | undefined;
  try {
    rt = await openForCommand(run, json, opts);
    const opened = rt;
    // A one-off command is the admin at the terminal: the system log names them. The service's own work
    // (fetch rounds) is the system's, and its API requests name their key.
    const code = opts.service
      ? await action(opened)
      : await withActor(`cli:${cliUser(run.env)}`, () => action(opened));
    run.exitCode = typeof code === 'number' ? code : EXIT.ok;
  } catch (e) {
    run.exitCode = reportError(run.o, e, json);
  } finally {
    if (rt) {
      try {
        await rt.close();
      } catch (e) {
        run.o.err(`warning: closing the store failed: ${e instanceof Error ? e.message : String(e)}\n`);
      }
    }
  }
}

async function openForCommand(run: CliRun, json: boolean, opts: RuntimeOptions): Promise<Runtime> {
  // Imported here, not at the top: `--help` and usage errors must not pay for zod, the database drivers,
  // the IMAP and MIME libraries (1.5-2 s on a small machine before this was lazy).
  const { loadConfig } = await import('../kernel/env.js');
  const { openRuntime } = await import('../app/compose.js');
  const config = loadConfig(run.env);
  const where = storeLocation(run.env);
  const created = checkStore(where, run.commandPath);
  const logger = commandLogger(run, config, !!opts.service);
  await opts.beforeOpen?.(config);
  const rt = await openRuntime(config, {
    logger,
    ...(opts.service ? { waitForStore: waitForStore(run, logger, json) } : {}),
  });
  if (created) {
    run.o.err(
      `Created a new store in ${where.dataDir} (${where.dataDirSource}); database: ${where.database}\n`,
    );
  }
  return rt;
}

/**
 * A one-off command prints its own result (fetch --once: every failure, in its summary); JSON log lines would
 * repeat it among the human output. Only what the output cannot show (an error of the machinery) is printed,
 * in words. MAILINTAKE_LOG_LEVEL asks for the JSON lines. The service logs JSON at info.
 */
function commandLogger(run: CliRun, config: AppConfig, service: boolean): Logger {
  return service || run.env.MAILINTAKE_LOG_LEVEL
    ? createLogger(config.logLevel, run.o.err)
    : createLogger('error', (l) => run.o.err(`${clean(l.trimEnd())}\n`), 'text');
}

/**
 * The service waits for a database that is not up yet (started before it, or restarting) and says so on every
 * attempt: an admin sees why it is not listening; it comes up by itself once it can.
 */
function waitForStore(run: CliRun, logger: Logger, json: boolean) {
  return {
    ...(run.io.stopSignal ? { signal: run.io.stopSignal } : {}),
    onWait: (e: MailintakeError, ms: number) => {
      logger.warn('waiting for the database', { code: e.code, error: e.message, retryInMs: ms });
      if (!json)
        run.o.err(
          `waiting for the database (${e.code}: ${e.message}); trying again in ${Math.round(ms / 1000)} s\n`,
        );
    },
  };
}

/** Prints an error as the exit code's documentation says ("error CODE: message", or its JSON) and returns that code. */
export function reportError(o: CliOutput, e: unknown, json: boolean): number {
  if (e instanceof ConfigError) {
    o.err(`${e.message}\n`);
    return EXIT.usage;
  }
  const coded = isMailintakeError(e)
    ? e
    : new MailintakeError('INTERNAL', e instanceof Error ? e.message : String(e), { cause: e });
  if (json) {
    o.printJson(coded.toJSON());
    return EXIT.error;
  }
  o.err(`${paint(o.color, 'red', `error ${coded.code}`)}: ${clean(coded.message)}\n`);
  for (const f of coded.details.fields ?? []) o.err(`  ${clean(f.field)}: ${clean(f.message)}\n`);
  if (typeof coded.details.serverResponse === 'string') {
    o.err(`  server said: ${clean(coded.details.serverResponse)}\n`);
  }
  if (typeof coded.details.stepLabel === 'string') {
    o.err(`  failed step: ${clean(coded.details.stepLabel)}\n`);
    for (const check of (coded.details.checks as unknown[] | undefined) ?? []) {
      o.err(`  check: ${clean(String(check))}\n`);
    }
  } else if (typeof coded.details.hint === 'string') o.err(`  hint: ${clean(coded.details.hint)}\n`);
  else if (CONNECTION_CODES.has(coded.code)) o.err(`  hint: ${ERROR_HELP[coded.code]}\n`);
  return EXIT.error;
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

/** The OS user running a CLI command (SUDO_USER first: `sudo mailintake …` is that person, not root). */
function cliUser(env: NodeJS.ProcessEnv): string {
  if (env.SUDO_USER) return env.SUDO_USER;
  try {
    return os.userInfo().username;
  } catch {
    return env.USER ?? 'unknown';
  }
}
