import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { type Command, Option } from 'commander';
import { SYSTEM_LOG_CATEGORIES } from '../../kernel/system-log-categories.js';
import type { IntakeLogService } from '../requests/service.js';
import type { IntakeLogEntry } from '../requests/views.js';
import { allOption, type CliKit, type Columns, idArg, pageOptions, truncate } from '../shared/cli-kit.js';
import type { SystemLogService } from './service.js';
import type { SystemLogEntry } from './views.js';

/** The services these commands use (their slices of Services). */
type Kit = CliKit<{ log: IntakeLogService; systemLog: SystemLogService }>;

/** The intake log: `raw` (a fetched mail's bytes, by log id) and `log` (every mail fetched, its outcome and why). */
export function addIntakeLogCommands(program: Command, k: Kit): void {
  const { leaf, withServices, line, printJson } = k;
  leaf(
    program,
    'raw',
    'save the raw mail of an intake-log entry (by log id, not request id), exactly as fetched',
  )
    .argument(
      '<id>',
      'intake log id, not a request id: the ID column of "mailintake log", or "intake log" in "requests show"',
      idArg,
    )
    .requiredOption('--out <file>', 'file to write (not overwritten if it exists)')
    .action(async (id: number, opts: { out: string; json?: boolean }) => {
      await withServices(!!opts.json, async (services) => {
        const { meta, open } = await services.log.raw(id);
        // 'wx': a mistyped --out must not clobber an existing file.
        await pipeline(open(), createWriteStream(opts.out, { flags: 'wx', mode: 0o600 }));
        if (opts.json) return printJson({ id, file: opts.out, size: meta.size, sha256: meta.sha256 });
        line(`Wrote ${meta.size} bytes of log entry #${id} to ${opts.out}`);
      });
    });

  const log = leaf(program, 'log', 'the intake log: every mail fetched, its outcome and why')
    .option('--mailbox <name>', 'only this mailbox')
    .option('--request <id>', 'only the mails of this request (its id)', idArg)
    .addOption(
      new Option('--outcome <outcome>', 'only this outcome').choices([
        'created',
        'appended',
        'ignored',
        'error',
      ]),
    );
  pageOptions(log, 'entries')
    .addOption(allOption())
    .action(
      k.listAction(
        (services, opts: { mailbox?: string; outcome?: string; request?: number }, page) =>
          services.log.list({
            mailbox: opts.mailbox,
            outcome: opts.outcome,
            ...(opts.request === undefined ? {} : { request: opts.request }),
            ...page,
          }),
        LOG_COLUMNS,
        () => 'The intake log is empty.',
      ),
    );
}

/** `system-log`: what Mailintake did, why, and who. */
export function addSystemLogCommands(program: Command, k: Kit): void {
  const { leaf } = k;
  const systemLog = leaf(
    program,
    'system-log',
    'the system log: what Mailintake did, why, and who (e.g. dropped attachments)',
  )
    .option('--category <category>', `only this category: ${SYSTEM_LOG_CATEGORIES.join(', ')}`)
    .option('--actor <actor>', 'only this actor: user:<email>, api-key:<name>, cli:<os user>, system')
    .option('--mailbox <name>', 'only entries about this mailbox')
    .option('--since <time>', 'entries at or after this date (YYYY-MM-DD, UTC) or ISO 8601 time')
    .option('--until <time>', 'entries before this date or time');
  pageOptions(systemLog, 'entries')
    .addOption(allOption())
    .action(
      k.listAction(
        (
          services,
          opts: { category?: string; actor?: string; mailbox?: string; since?: string; until?: string },
          page,
        ) =>
          services.systemLog.list({
            category: opts.category,
            actor: opts.actor,
            mailbox: opts.mailbox,
            since: opts.since,
            until: opts.until,
            ...page,
          }),
        SYSTEM_LOG_COLUMNS,
        () => 'The system log is empty.',
      ),
    );
}

const LOG_COLUMNS: Columns<IntakeLogEntry> = {
  headers: ['ID', 'TIME', 'MAILBOX', 'OUTCOME', 'RESULT', 'FROM', 'SUBJECT', 'REASONS'],
  row: (e) => [
    String(e.id),
    e.createdAt,
    e.mailbox,
    e.outcome,
    logResult(e),
    e.from ?? '-',
    truncate(e.subject ?? '-', 40),
    truncate(e.reasons.join('; ') || '-', 60),
  ],
};

const SYSTEM_LOG_COLUMNS: Columns<SystemLogEntry> = {
  headers: ['ID', 'TIME', 'ACTOR', 'LEVEL', 'CATEGORY', 'MESSAGE'],
  row: (e) => [String(e.id), e.createdAt, e.actor, e.level, e.category, truncate(e.message, 120)],
};

function logResult(e: IntakeLogEntry): string {
  if (e.outcome === 'error') return e.errorCode ?? 'error';
  if (e.conversationId !== null && e.requestId !== null) return `#${e.requestId} conv ${e.conversationId}`;
  return e.requestId !== null ? `#${e.requestId}` : '-';
}
