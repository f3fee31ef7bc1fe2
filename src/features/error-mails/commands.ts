import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { type Command, Option } from 'commander';
import type { ErrorReport } from '../../intake/error-folder.js';
import type { MailboxesService } from '../mailboxes/service.js';
import { type CliKit, type Columns, clean, fields, idArg, pageOptions } from '../shared/cli-kit.js';
import type { ErrorMailsService } from './service.js';
import type { ErrorMailView } from './views.js';

/** The services these commands use (their slices of Services). */
type Kit = CliKit<{ errorMails: ErrorMailsService; mailboxes: MailboxesService }>;

/**
 * The error folder's commands: `errors list | show | raw | move-to-inbox`. Thin like the rest of the CLI:
 * parse, call one service, print.
 */
export function addErrorMailCommands(program: Command, k: Kit): void {
  const { leaf, withServices, answer, line, printJson } = k;

  const errors = program
    .command('errors')
    .description('the error folder: mails that failed processing, their encrypted reports, move to inbox');
  const list = leaf(errors, 'list', 'list error mails, newest first')
    .option('--mailbox <name>', 'only this mailbox')
    .addOption(
      new Option('--status <status>', 'only this status').choices(['in-error-folder', 'moved-to-inbox']),
    );
  pageOptions(list, 'entries').action(
    k.listAction(
      (services, opts: { mailbox?: string; status?: string }, page) =>
        services.errorMails.list({ mailbox: opts.mailbox, status: opts.status, ...page }),
      ERROR_MAIL_COLUMNS,
      () => 'No error mails.',
    ),
  );
  leaf(errors, 'show', 'show the report of an error mail (decrypted): mail details and the exception')
    .argument('<id>', 'error mail id', idArg)
    .action(
      answer(
        async (services, id: number) => {
          const { errorMail, report } = await services.errorMails.report(id);
          return { errorMail, report };
        },
        ({ errorMail, report }) => printErrorReport(k, errorMail, report),
      ),
    );
  leaf(errors, 'raw', 'POP3: save the raw mail Mailintake kept for an error mail (decrypted)')
    .argument('<id>', 'error mail id', idArg)
    .requiredOption('--out <file>', 'file to write (not overwritten if it exists)')
    .action(async (id: number, opts: { out: string; json?: boolean }) => {
      await withServices(!!opts.json, async (services) => {
        const { meta, open } = await services.errorMails.raw(id);
        // 'wx': a mistyped --out must not clobber an existing file; 0600: it is a customer's mail
        await pipeline(open(), createWriteStream(opts.out, { flags: 'wx', mode: 0o600 }));
        if (opts.json) return printJson({ id, file: opts.out, size: meta.size });
        line(`Wrote ${meta.size} bytes of error mail #${id} to ${opts.out}`);
      });
    });
  leaf(errors, 'move-to-inbox', '"move mails to inbox": every error mail of the mailbox back to its inbox')
    .argument('<mailbox>')
    .action(async (mailbox: string, opts: { json?: boolean }) => {
      await withServices(!!opts.json, async (services) => {
        const result = await services.errorMails.moveToInbox(mailbox);
        if (opts.json) return printJson(result);
        line(
          `Mailbox ${clean(mailbox)}: ${result.moved.length} error mail(s) moved to the inbox; ${result.remaining} left in the error folder.`,
        );
        if (result.notFound.length > 0) {
          line(`  no longer in the error folder (counted as resolved): #${result.notFound.join(', #')}`);
        }
        const view = await services.mailboxes.get(mailbox);
        if (view.status === 'stopped-by-errors') {
          line(`Fetching is still stopped: run "mailintake mailbox enable ${clean(mailbox)}" to resume it.`);
        } else {
          line('The next fetch takes them in again.');
        }
      });
    });
}

function printErrorReport(k: Kit, errorMail: ErrorMailView, report: ErrorReport): void {
  k.line(`Error mail #${errorMail.id} of mailbox ${clean(errorMail.mailbox)} (${errorMail.status})`);
  k.line(
    fields([
      [
        'where',
        report.movedTo.location === 'server-folder'
          ? `folder ${report.movedTo.folder}`
          : 'kept by Mailintake (POP3)',
      ],
      ['server id', report.serverIdentity],
      ['failed at', report.failedAt ?? '-'],
      ['from', report.mail.from ?? '-'],
      ['to', report.mail.to ?? '-'],
      ['cc', report.mail.cc ?? '-'],
      ['subject', report.mail.subject ?? '-'],
      ['date', report.mail.date ?? '-'],
      ['message-id', report.mail.messageId ?? '-'],
      ['size', report.mail.size === null ? '-' : `${report.mail.size} bytes`],
      ['intake log', report.intakeLogId === null ? '-' : `#${report.intakeLogId}`],
      ['error', `${report.error.code}: ${report.error.message}`],
    ]),
  );
  if (report.mail.headerProblem) k.line(`  note: ${clean(report.mail.headerProblem)}`);
  for (const cause of report.error.causes) k.line(`  caused by: ${clean(cause)}`);
  if (report.error.help) k.line(`  hint: ${report.error.help}`);
}

const ERROR_MAIL_COLUMNS: Columns<ErrorMailView> = {
  headers: ['ID', 'TIME', 'MAILBOX', 'CODE', 'WHERE', 'STATUS'],
  row: (e) => [
    String(e.id),
    e.createdAt,
    e.mailbox,
    e.errorCode,
    e.location === 'kept-locally' ? 'kept by Mailintake (POP3)' : `folder ${e.folder ?? '?'}`,
    e.status,
  ],
};
