import type { Command } from 'commander';
import { type CliKit, type Columns, clean, fields, table } from '../shared/cli-kit.js';
import type { MailboxesService } from './service.js';
import type { MailboxView } from './views.js';

/** The services these commands use (their slices of Services). */
type Kit = CliKit<{ mailboxes: MailboxesService }>;

/**
 * `mailbox add | list | show | update | remove | enable | disable | test`. Returns the `mailbox` command, where
 * the OAuth commands (authorize, oauth, oauth-revoke) are added next (src/features/oauth/commands.ts).
 */
export function addMailboxCommands(program: Command, k: Kit): Command {
  const { leaf, answer, line } = k;
  const mailbox = program.command('mailbox').description('manage mailboxes (incoming mail servers)');
  leaf(mailbox, 'add', 'add a mailbox from a JSON file (see the README for the fields)')
    .requiredOption('--file <file>', 'mailbox settings file, or - for stdin')
    .action(
      answer(
        async (services, opts: { file: string }) =>
          services.mailboxes.add(await k.readSecretFile(opts.file, 'mailbox')),
        (view) => {
          line(`Mailbox ${clean(view.name)} added.`);
          printMailbox(line, view);
        },
      ),
    );
  leaf(mailbox, 'list', 'list mailboxes').action(
    answer(
      (services) => services.mailboxes.list(),
      (list) => {
        if (list.length === 0)
          return line('No mailboxes. Add one with: mailintake mailbox add --file mailbox.json');
        line(table(MAILBOX_COLUMNS.headers, list.map(MAILBOX_COLUMNS.row)));
      },
    ),
  );
  leaf(mailbox, 'show', 'show one mailbox')
    .argument('<name>')
    .action(
      answer(
        (services, name: string) => services.mailboxes.get(name),
        (view) => printMailbox(line, view),
      ),
    );
  leaf(mailbox, 'update', 'replace a mailbox’s settings from a JSON file (no password: keep the stored one)')
    .argument('<name>')
    .requiredOption('--file <file>', 'mailbox settings file, or - for stdin')
    .option('--pause', 'if the mailbox is being fetched, pause fetching to save (enable it again afterwards)')
    .action(
      answer(
        async (services, name: string, opts: { file: string; pause?: boolean }) =>
          services.mailboxes.update(name, await k.readSecretFile(opts.file, 'mailbox'), {
            pauseFetching: !!opts.pause,
          }),
        (view, _name, opts) => {
          line(`Mailbox ${clean(view.name)} updated.`);
          if (!view.enabled && opts.pause) {
            line(`Fetching is paused; run "mailintake mailbox enable ${clean(view.name)}" to resume it.`);
          }
          printMailbox(line, view);
        },
      ),
    );
  leaf(mailbox, 'remove', 'remove a mailbox (its requests and history are kept)')
    .argument('<name>')
    .action(
      answer(
        async (services, name: string) => ({ removed: name, keptAs: await services.mailboxes.remove(name) }),
        ({ removed, keptAs }) =>
          line(
            `Mailbox ${clean(removed)} removed. Its requests, intake log, error mails and notifications are kept; they now name it "${clean(keptAs)}".`,
          ),
      ),
    );
  for (const [verb, enabled] of [
    ['enable', true],
    ['disable', false],
  ] as const) {
    leaf(mailbox, verb, `${verb} scheduled fetching of a mailbox`)
      .argument('<name>')
      .action(
        answer(
          (services, name: string) => services.mailboxes.setEnabled(name, enabled),
          (view) => line(`Mailbox ${clean(view.name)} ${enabled ? 'enabled' : 'disabled'}.`),
        ),
      );
  }
  leaf(mailbox, 'test', 'connect, log in and describe the oldest mail without processing it')
    .argument('<name>')
    .action(
      answer(
        (services, name: string) => services.mailboxes.test(name),
        (result, name) => printTestResult(k, name, result),
      ),
    );
  return mailbox;
}

/** `mailbox test`: how long the server took, and the oldest mail there (not processed). */
function printTestResult(k: Kit, name: string, result: Awaited<ReturnType<MailboxesService['test']>>): void {
  k.line(`Mailbox ${clean(name)} reached in ${result.durationMs} ms.`);
  const s = result.sample;
  if (!s) {
    k.line('The folder is empty: no sample mail.');
    return;
  }
  k.line('Oldest mail:');
  k.line(
    fields([
      ['from', s.from ?? '-'],
      ['subject', s.subject ?? '-'],
      ['date', s.date ?? '-'],
      ['size', `${s.size} bytes`],
      ['attachments', s.attachments.length ? s.attachments.join(', ') : '(none)'],
    ]),
  );
}

const MAILBOX_COLUMNS: Columns<MailboxView> = {
  headers: ['NAME', 'PORTAL', 'SERVER', 'USER', 'ENABLED', 'LAST FETCH', 'LAST ERROR'],
  row: (m) => [
    m.name,
    m.portal,
    serverUrl(m),
    m.username,
    m.enabled ? 'yes' : `no (${m.status})`,
    m.state.lastFetchAt ?? '-',
    m.state.lastErrorCode ?? '-',
  ],
};

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
