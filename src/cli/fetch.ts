import type { Command } from 'commander';
import type { FetchService } from '../features/fetch/service.js';
import type { FetchSummary } from '../features/mailboxes/views.js';
import { type CliKit, clean, paint, table } from '../features/shared/cli-kit.js';
import { ERROR_HELP, type ErrorCode } from '../kernel/errors.js';
import { EXIT } from './run-command.js';

/** `fetch --once`: one round now, each mailbox's counts, and why one was not reached or stopped. */
export function addFetchCommand(program: Command, k: CliKit<{ fetch: FetchService }>): void {
  k.leaf(program, 'fetch', 'fetch the enabled mailboxes (or one) once and print what happened')
    .requiredOption('--once', 'one round, then exit (serve fetches on schedule)')
    .option('--mailbox <name>', 'only this mailbox (enabled or not)')
    .addHelpText(
      'after',
      '\nExit status: 0 when every mailbox was reached and its round completed, 3 when one could not be reached or its round stopped on an error; 1, 2 as usual.',
    )
    .action(async (opts: { mailbox?: string; json?: boolean }) => {
      await k.withServices(!!opts.json, async (services) => {
        const summaries = await services.fetch.once(opts.mailbox ? { mailbox: opts.mailbox } : {});
        const code = summaries.every((s) => s.reached && !s.error) ? EXIT.ok : EXIT.unreachable;
        if (opts.json) {
          k.printJson(summaries);
          return code;
        }
        printFetch(k, summaries);
        return code;
      });
    });
}

function printFetch(k: CliKit<{ fetch: FetchService }>, summaries: FetchSummary[]): void {
  const { line, color } = k;
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
