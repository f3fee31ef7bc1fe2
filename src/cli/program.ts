import { Command, CommanderError } from 'commander';
import { addApiKeyCommands } from '../features/api-keys/commands.js';
import { addErrorMailCommands } from '../features/error-mails/commands.js';
import { addMailboxCommands } from '../features/mailboxes/commands.js';
import { addNotificationCommands } from '../features/notifications/commands.js';
import { addOAuthCommands } from '../features/oauth/commands.js';
import { addPortalCommands } from '../features/portals/commands.js';
import { addAttachmentCommands, addRequestCommands } from '../features/requests/commands.js';
import { addSecretKeyCommands } from '../features/secret-key/commands.js';
import type { Services } from '../features/services.js';
import type { CliKit } from '../features/shared/cli-kit.js';
import { addIntakeLogCommands, addSystemLogCommands } from '../features/system-log/commands.js';
import { addUserCommands } from '../features/users/commands.js';
import { storeLocation } from '../kernel/store-location.js';
import { addFetchCommand } from './fetch.js';
import { type CliIo, createKit, createOutput } from './kit.js';
import { type CliRun, EXIT, reportError, withRuntime } from './run-command.js';
import { addServeCommand } from './serve.js';

export type { CliIo } from './kit.js';

/**
 * The `mailintake` command line: the root command, and each feature's commands mounted on it (from
 * src/features/<feature>/commands.ts). Commands are thin: parse arguments, open the runtime, call one service,
 * print. Every command has `--json` (JSON on stdout and nothing else there). Exit codes are documented in
 * EXIT_HELP.
 *
 * `--help` must stay cheap: nothing imported here (or by the commands' modules) may load the runtime, the store,
 * zod or the protocol libraries; the runtime is opened lazily when a command runs (src/cli/run-command.ts).
 */

const EXIT_HELP = `
Exit status:
  0  success
  1  the operation failed with a coded error (printed as "error CODE: message")
  2  usage or configuration error (bad arguments, invalid environment)
  3  fetch --once: at least one mailbox could not be reached (or was busy), or its round stopped on an error

Environment: MAILINTAKE_DATA_DIR (default ./data), DATABASE_URL (PostgreSQL instead of the embedded SQLite),
MAILINTAKE_SECRET_KEY (and MAILINTAKE_SECRET_KEY_PREVIOUS while rotating it), MAILINTAKE_MAX_MAIL_MB, MAILINTAKE_PORT,
MAILINTAKE_HOST, MAILINTAKE_LOG_LEVEL.`;

/**
 * Runs the CLI and resolves with the exit code. `argv` is either `process.argv` (node, script, args…) as
 * bin/mailintake.js passes it, or just the arguments (`['mailbox', 'list']`) as tests pass them.
 */
export async function main(argv: string[], io: CliIo = {}): Promise<number> {
  const args = argv === process.argv || argv[0] === process.execPath ? argv.slice(2) : argv;
  const env = io.env ?? process.env;
  const run: CliRun = { o: createOutput(io, env), io, env, commandPath: '', exitCode: EXIT.ok };
  const kit = createKit(run.o, io, (json, action) => withRuntime(run, json, action));
  const program = rootCommand(run);
  mountCommands(program, kit, run);
  try {
    await program.parseAsync(args, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    return reportError(run.o, e, false);
  }
  return run.exitCode;
}

/** `mailintake` itself: its help says where the data is, and each run records the command being run. */
function rootCommand(run: CliRun): Command {
  const { out, err } = run.o;
  return new Command('mailintake')
    .description('Email-to-ticket engine for help desks: every mail becomes one request or conversation.')
    .exitOverride()
    .configureOutput({ writeOut: out, writeErr: err, outputError: (text, write) => write(text) })
    .hook('preAction', (_program, actionCommand) => {
      const names: string[] = [];
      for (let c: Command | null = actionCommand; c?.parent; c = c.parent) names.unshift(c.name());
      run.commandPath = names.join(' ');
    })
    .addHelpText('after', () => {
      // Said up front: run from another directory, ./data is another (empty) store.
      const where = storeLocation(run.env);
      return `${EXIT_HELP}\n\nData directory: ${where.dataDir} (${where.dataDirSource})\nDatabase: ${where.database}\n`;
    });
}

/** In the order `mailintake --help` lists them. */
function mountCommands(program: Command, kit: CliKit<Services>, run: CliRun): void {
  addServeCommand(program, kit, run);
  const mailbox = addMailboxCommands(program, kit);
  addOAuthCommands(program, mailbox, kit);
  addFetchCommand(program, kit);
  addRequestCommands(program, kit);
  addIntakeLogCommands(program, kit);
  addPortalCommands(program, kit);
  addSystemLogCommands(program, kit);
  addNotificationCommands(program, kit);
  addErrorMailCommands(program, kit);
  addSecretKeyCommands(program, kit);
  addAttachmentCommands(program, kit);
  addApiKeyCommands(program, kit);
  addUserCommands(program, kit, () => run.io.stdin ?? process.stdin);
}
