import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { type Command, Option } from 'commander';
import { MAX_PAGE } from '../kernel/limits.js';
import type { CliKit } from './notification-commands.js';

/**
 * The error folder's commands: `errors list | show | raw | move-to-inbox` and `secret-key reseal` (the second
 * step of a key rotation). Thin like the rest of the CLI: parse, call one service, print.
 */
export function addErrorFolderCommands(program: Command, k: Omit<CliKit, 'readSecretFile'>): void {
  const { leaf, withRuntime, line, printJson, clean } = k;
  const idArg = k.intArg(1, Number.MAX_SAFE_INTEGER);

  const errors = program
    .command('errors')
    .description('the error folder: mails that failed processing, their encrypted reports, move to inbox');
  leaf(errors, 'list', 'list error mails, newest first')
    .option('--mailbox <name>', 'only this mailbox')
    .addOption(
      new Option('--status <status>', 'only this status').choices(['in-error-folder', 'moved-to-inbox']),
    )
    .option('--limit <n>', 'at most n entries', k.intArg(1, MAX_PAGE))
    .option('--offset <n>', 'skip the first n', k.intArg(0, 1_000_000_000))
    .action(
      async (opts: {
        mailbox?: string;
        status?: string;
        limit?: number;
        offset?: number;
        json?: boolean;
      }) => {
        await withRuntime(!!opts.json, async (rt) => {
          const page = await rt.services.errorMails.list({
            mailbox: opts.mailbox,
            status: opts.status,
            limit: opts.limit,
            offset: opts.offset,
          });
          if (opts.json) return printJson(page);
          if (page.items.length === 0) return line('No error mails.');
          line(
            k.table(
              ['ID', 'TIME', 'MAILBOX', 'CODE', 'WHERE', 'STATUS'],
              page.items.map((e) => [
                String(e.id),
                e.createdAt,
                e.mailbox,
                e.errorCode,
                e.location === 'kept-locally' ? 'kept by Mailintake (POP3)' : `folder ${e.folder ?? '?'}`,
                e.status,
              ]),
            ),
          );
          line(k.pageFooter(page));
        });
      },
    );
  leaf(errors, 'show', 'show the report of an error mail (decrypted): mail details and the exception')
    .argument('<id>', 'error mail id', idArg)
    .action(async (id: number, opts: { json?: boolean }) => {
      await withRuntime(!!opts.json, async (rt) => {
        const { errorMail, report } = await rt.services.errorMails.report(id);
        if (opts.json) return printJson({ errorMail, report });
        line(`Error mail #${errorMail.id} of mailbox ${clean(errorMail.mailbox)} (${errorMail.status})`);
        line(
          k.fields([
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
        if (report.mail.headerProblem) line(`  note: ${clean(report.mail.headerProblem)}`);
        for (const cause of report.error.causes) line(`  caused by: ${clean(cause)}`);
        if (report.error.help) line(`  hint: ${report.error.help}`);
      });
    });
  leaf(errors, 'raw', 'POP3: save the raw mail Mailintake kept for an error mail (decrypted)')
    .argument('<id>', 'error mail id', idArg)
    .requiredOption('--out <file>', 'file to write (not overwritten if it exists)')
    .action(async (id: number, opts: { out: string; json?: boolean }) => {
      await withRuntime(!!opts.json, async (rt) => {
        const { meta, open } = await rt.services.errorMails.raw(id);
        // 'wx': a mistyped --out must not clobber an existing file; 0600: it is a customer's mail
        await pipeline(open(), createWriteStream(opts.out, { flags: 'wx', mode: 0o600 }));
        if (opts.json) return printJson({ id, file: opts.out, size: meta.size });
        line(`Wrote ${meta.size} bytes of error mail #${id} to ${opts.out}`);
      });
    });
  leaf(errors, 'move-to-inbox', '"move mails to inbox": every error mail of the mailbox back to its inbox')
    .argument('<mailbox>')
    .action(async (mailbox: string, opts: { json?: boolean }) => {
      await withRuntime(!!opts.json, async (rt) => {
        const result = await rt.services.errorMails.moveToInbox(mailbox);
        if (opts.json) return printJson(result);
        line(
          `Mailbox ${clean(mailbox)}: ${result.moved.length} error mail(s) moved to the inbox; ${result.remaining} left in the error folder.`,
        );
        if (result.notFound.length > 0) {
          line(`  no longer in the error folder (counted as resolved): #${result.notFound.join(', #')}`);
        }
        const view = await rt.services.mailboxes.get(mailbox);
        if (view.status === 'stopped-by-errors') {
          line(`Fetching is still stopped: run "mailintake mailbox enable ${clean(mailbox)}" to resume it.`);
        } else {
          line('The next fetch takes them in again.');
        }
      });
    });

  const key = program
    .command('secret-key')
    .description('the key that seals passwords, tokens and error reports');
  leaf(
    key,
    'reseal',
    'after a key rotation: seal everything sealed with a MAILINTAKE_SECRET_KEY_PREVIOUS key again with the current key',
  ).action(async (opts: { json?: boolean }) => {
    await withRuntime(!!opts.json, async (rt) => {
      const r = await rt.services.secretKey.reseal();
      if (opts.json) return printJson(r);
      line(
        `Mailbox secrets: ${r.mailboxSecrets.resealed} resealed, ${r.mailboxSecrets.current} already current.`,
      );
      line(
        `Instance secrets (SMTP password): ${r.instanceSecrets.resealed} resealed, ${r.instanceSecrets.current} already current.`,
      );
      line(
        `Error reports and kept mails: ${r.errorMailBlobs.resealed} resealed, ${r.errorMailBlobs.current} already current.`,
      );
      line(`OAuth tokens: ${r.oauthTokens.resealed} resealed, ${r.oauthTokens.current} already current.`);
      const unreadable = [
        ...r.mailboxSecrets.unreadable.map((n) => `mailbox ${n}`),
        ...r.oauthTokens.unreadable.map((n) => `OAuth tokens of ${n}`),
        ...r.instanceSecrets.unreadable.map((n) => `setting ${n}`),
        ...r.errorMailBlobs.unreadable.map((b) => `blob ${b}`),
      ];
      if (unreadable.length > 0) {
        line(`Sealed with a key that is not configured (left as they are): ${unreadable.join(', ')}`);
        return 1;
      }
      line('Nothing is sealed with a previous key any more: MAILINTAKE_SECRET_KEY_PREVIOUS can be removed.');
    });
  });
}
