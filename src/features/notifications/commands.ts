import { Argument, type Command, InvalidArgumentError, Option } from 'commander';
import { MailintakeError } from '../../kernel/errors.js';
import { NOTIFICATION_EVENTS } from '../../notify/notifier.js';
import type { OutboxStatus } from '../../notify/outbox.js';
import type { NotificationRuleView } from '../../notify/rules.js';
import type { SmtpSettingsView } from '../../notify/smtp-settings.js';
import { tokenStateFields } from '../oauth/fields.js';
import type { OAuthService } from '../oauth/service.js';
import {
  type CliKit,
  clean,
  fields,
  idArg,
  intArg,
  pageFooter,
  pageOptions,
  printConsentUrl,
  table,
  truncate,
} from '../shared/cli-kit.js';
import type { Page } from '../shared/page.js';
import type { NotificationServices, NotificationView } from './service.js';

/** The services these commands use (their slices of Services). */
type Kit = CliKit<NotificationServices & { oauth: OAuthService }>;

/**
 * The notification commands: `notifications` (the bell), `rules`, `smtp`, `alerts` and `outbox`. Thin like the
 * rest of the CLI: parse, call one service, print.
 */
export function addNotificationCommands(program: Command, k: Kit): void {
  addBellCommands(program, k);
  addRuleCommands(program, k);
  addSmtpCommands(program, k);
  addAlertCommands(program, k);
  addOutboxCommands(program, k);
}

/** `notifications list | count | read`: the bell. */
function addBellCommands(program: Command, k: Kit): void {
  const { leaf, withServices, answer, line, printJson } = k;
  const bell = program.command('notifications').description('bell notifications for admins');
  pageOptions(
    leaf(bell, 'list', 'list notifications, newest first').option('--unread', 'only those not marked read'),
    'notifications',
  )
    .option('--full', 'print each notification’s text')
    .action(async (opts: BellListOptions & { json?: boolean }) => {
      await withServices(!!opts.json, async (services) => {
        const page = await services.notifications.list({
          unread: !!opts.unread,
          limit: opts.limit,
          offset: opts.offset,
        });
        if (opts.json) return printJson(page);
        const { unread } = await services.notifications.unreadCount();
        printBell(k, page, unread, opts);
      });
    });
  leaf(bell, 'count', 'how many notifications are unread').action(
    answer(
      (services) => services.notifications.unreadCount(),
      (count) => line(`${count.unread} unread notification${count.unread === 1 ? '' : 's'}`),
    ),
  );
  leaf(bell, 'read', 'mark a notification read, or all with --all')
    .argument('[id]', 'notification id', idArg)
    .option('--all', 'mark every unread notification read')
    .action(async (id: number | undefined, opts: { all?: boolean; json?: boolean }) => {
      await withServices(!!opts.json, async (services) => {
        if ((id === undefined) === !opts.all) {
          throw new MailintakeError('INVALID_SETTINGS', 'give a notification id or --all', {
            details: {
              fields: [{ field: '(arguments)', message: 'give a notification id or --all, not both' }],
            },
          });
        }
        if (opts.all) {
          const r = await services.notifications.markAllRead();
          if (opts.json) return printJson(r);
          return line(`${r.marked} notification${r.marked === 1 ? '' : 's'} marked read.`);
        }
        const n = await services.notifications.markRead(id!);
        if (opts.json) return printJson(n);
        line(`Notification #${n.id} marked read.`);
      });
    });
}

/** `rules list | set | enable | disable`: who gets an email for which event. */
function addRuleCommands(program: Command, k: Kit): void {
  const { leaf, answer, line } = k;
  const rules = program.command('rules').description('notification rules: who gets an email for which event');
  leaf(rules, 'list', 'list notification rules').action(
    answer(
      (services) => services.notificationRules.list(),
      (list) => {
        if (list.length === 0) {
          return line(
            'No notification rules: nobody gets email. Add one with: mailintake rules set EVENT --to ADDRESS',
          );
        }
        printRules(k, list);
      },
    ),
  );
  leaf(rules, 'set', 'set who gets an email for an event (in one portal, or every portal)')
    .addArgument(new Argument('<event>', 'the event').choices([...NOTIFICATION_EVENTS]))
    .requiredOption('--to <addresses>', 'recipients, separated by commas', commaList)
    .option('--portal <portal>', 'only for this portal (default: every portal)')
    .option('--disabled', 'store the rule switched off')
    .action(
      answer(
        (services, event: string, opts: { to: string[]; portal?: string; disabled?: boolean }) =>
          services.notificationRules.set({
            event,
            recipients: opts.to,
            ...(opts.portal ? { portal: opts.portal } : {}),
            enabled: !opts.disabled,
          }),
        (rule) => {
          line(`Rule ${rule.id} set.`);
          printRules(k, [rule]);
        },
      ),
    );
  for (const [verb, enabled] of [
    ['enable', true],
    ['disable', false],
  ] as const) {
    leaf(rules, verb, `${verb} a notification rule`)
      .argument('<id>', 'rule id', idArg)
      .action(
        answer(
          (services, id: number) => services.notificationRules.setEnabled(id, enabled),
          (rule) => line(`Rule ${rule.id} (${rule.event}) ${enabled ? 'enabled' : 'disabled'}.`),
        ),
      );
  }
}

/** `smtp show | set | test | authorize | oauth`: the outgoing server for notification mail. */
function addSmtpCommands(program: Command, k: Kit): void {
  const { leaf, answer, line } = k;
  const smtp = program.command('smtp').description('the outgoing SMTP server for notification mail');
  leaf(smtp, 'show', 'show the SMTP settings (never the password)').action(
    answer(
      (services) => services.smtp.get(),
      (s) => {
        if (!s) {
          return line(
            'No outgoing SMTP server is configured. Set one with: mailintake smtp set --file smtp.json',
          );
        }
        printSmtp(k, s);
      },
    ),
  );
  leaf(smtp, 'set', 'set the SMTP server from a JSON file (no password: keep the stored one)')
    .requiredOption('--file <file>', 'SMTP settings file, or - for stdin')
    .action(
      answer(
        async (services, opts: { file: string }) =>
          services.smtp.set(await k.readSecretFile(opts.file, 'SMTP settings')),
        (s) => {
          line('SMTP settings saved. Send a test mail with: mailintake smtp test --to ADDRESS');
          printSmtp(k, s);
        },
      ),
    );
  leaf(smtp, 'test', 'send a test mail through the stored settings now')
    .requiredOption('--to <address>', 'who gets the test mail')
    .action(
      answer(
        (services, opts: { to: string }) => services.smtp.test({ to: opts.to }),
        (r) =>
          line(
            `Test mail to ${clean(r.to)} accepted by the server in ${r.durationMs} ms: ${clean(r.response)}`,
          ),
      ),
    );
  leaf(
    smtp,
    'authorize',
    'start the OAuth consent of the outgoing SMTP server: prints the URL to open',
  ).action(
    answer(
      (services) => services.oauth.authorizeSmtp(),
      (started) => printSmtpConsent(k, started),
    ),
  );
  leaf(smtp, 'oauth', 'show the OAuth token state of the outgoing SMTP server (never the tokens)').action(
    answer(
      (services) => services.oauth.smtpStatus(),
      (t) => line(fields(tokenStateFields(t))),
    ),
  );
}

/** `alerts show | set`: notifications when a mailbox cannot be reached. */
function addAlertCommands(program: Command, k: Kit): void {
  const { leaf, answer } = k;
  const alerts = program
    .command('alerts')
    .description('notifications when a mailbox cannot be reached (consecutive failed rounds)');
  leaf(alerts, 'show', 'show the threshold and whether notifications are on').action(
    answer(
      (services) => services.alerts.get(),
      (a) => printAlerts(k, a),
    ),
  );
  leaf(alerts, 'set', 'change the threshold and/or switch notifications on or off')
    .option(
      '--threshold <n>',
      'consecutive failed rounds before admins and technicians are notified',
      intArg(1, 10_000),
    )
    .addOption(
      new Option('--enabled <state>', 'on: notify at the threshold; off: only count').choices(['on', 'off']),
    )
    .action(
      answer(
        (services, opts: { threshold?: number; enabled?: 'on' | 'off' }) => {
          if (opts.threshold === undefined && opts.enabled === undefined) {
            throw new MailintakeError('INVALID_SETTINGS', 'nothing to change', {
              details: { fields: [{ field: '(options)', message: 'give --threshold and/or --enabled' }] },
            });
          }
          return services.alerts.set({
            ...(opts.threshold !== undefined ? { threshold: opts.threshold } : {}),
            ...(opts.enabled !== undefined ? { enabled: opts.enabled === 'on' } : {}),
          });
        },
        (a) => printAlerts(k, a),
      ),
    );
}

/** `outbox status | retry`: notification mail waiting to be sent. */
function addOutboxCommands(program: Command, k: Kit): void {
  const { leaf, answer, line } = k;
  const outbox = program.command('outbox').description('notification mail waiting to be sent');
  leaf(outbox, 'status', 'what is waiting, being retried or given up').action(
    answer(
      (services) => services.outbox.status(),
      (s) => printOutbox(k, s),
    ),
  );
  leaf(outbox, 'retry', 'put a given-up mail back in line')
    .argument('<id>', 'outbox mail id', idArg)
    .action(
      answer(
        (services, id: number) => services.outbox.retry(id),
        (m) => line(`Outbox mail ${m.id} is in line again.`),
      ),
    );
}

interface BellListOptions {
  unread?: boolean;
  limit?: number;
  offset?: number;
  full?: boolean;
}

function printBell(k: Kit, page: Page<NotificationView>, unread: number, opts: BellListOptions): void {
  if (page.items.length === 0) {
    k.line(opts.unread ? 'No unread notifications.' : 'No notifications.');
    return;
  }
  if (opts.full) {
    for (const n of page.items) {
      k.line(`#${n.id} ${n.createdAt} ${n.readAt ? '' : '[unread] '}${n.event}: ${clean(n.title)}`);
      k.line(clean(n.body, true).replace(/^/gm, '    '));
      k.line();
    }
  } else {
    k.line(
      table(
        ['ID', 'TIME', 'EVENT', 'MAILBOX', 'READ', 'TITLE'],
        page.items.map((n) => [
          String(n.id),
          n.createdAt,
          n.event,
          n.mailbox ?? '-',
          n.readAt ? 'yes' : 'no',
          truncate(n.title, 100),
        ]),
      ),
    );
  }
  k.line(`${pageFooter(page)}; ${unread} unread`);
}

function commaList(value: string): string[] {
  const list = value
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
  if (list.length === 0) throw new InvalidArgumentError('give at least one address.');
  return list;
}

function printRules(k: Kit, list: NotificationRuleView[]): void {
  k.line(
    table(
      ['ID', 'EVENT', 'PORTAL', 'ENABLED', 'RECIPIENTS'],
      list.map((r) => [
        String(r.id),
        r.event,
        r.portal ?? '(every portal)',
        r.enabled ? 'yes' : 'no',
        r.recipients.join(', '),
      ]),
    ),
  );
}

/** A started consent of an outgoing server (`smtp authorize`, `portal smtp authorize`): where to go next. */
export function printSmtpConsent(
  k: Pick<CliKit<object>, 'line'> & Parameters<typeof printConsentUrl>[0],
  started: { authorizationUrl: string; redirectUrl: string },
): void {
  printConsentUrl(
    k,
    'Open this URL in a browser and sign in as the SMTP username:',
    started.authorizationUrl,
  );
  k.line(
    `The provider returns the browser to ${started.redirectUrl} (register exactly this URL for the app).`,
  );
  k.line(`If the browser cannot reach it, run: mailintake oauth complete "<the address the browser shows>"`);
}

/** The settings of an outgoing server, as `smtp show` and `portal smtp show` print them. */
export function printSmtp(
  k: Pick<CliKit<object>, 'line'>,
  s: SmtpSettingsView,
  authorizeCommand = 'mailintake smtp authorize',
): void {
  const tls = s.secure ? 'implicit TLS' : s.starttls ? 'STARTTLS required' : 'none (plain SMTP)';
  k.line(
    fields(
      [
        ['server', `${s.host}:${s.port}`],
        ['TLS', tls],
        ['username', s.username ?? '(no login)'],
        s.oauth
          ? [
              'login',
              `OAuth 2.0 XOAUTH2 (${s.oauth.provider}, client ${s.oauth.clientId}, scope "${s.oauth.scope}"); authorize with: ${authorizeCommand}`,
            ]
          : ['password', s.passwordSet ? '(set; never shown)' : '(not set)'],
        ['from', s.from],
        ['CA file', s.caFile ?? '-'],
      ],
      '',
    ),
  );
  for (const w of s.warnings) k.line(`warning: ${clean(w)}`);
}

function printAlerts(k: Kit, a: { threshold: number; enabled: boolean }): void {
  k.line(
    a.enabled
      ? `Connection-failure notifications are on: after ${a.threshold} consecutive failed rounds of a mailbox, admins get a bell notification and the "connection-failure" rule's recipients an email; the count then starts again.`
      : `Connection-failure notifications are off: failed rounds are counted (mailbox show), nobody is notified. Threshold when on: ${a.threshold}.`,
  );
}

function printOutbox(k: Kit, s: OutboxStatus): void {
  k.line(
    `${s.pending} pending, ${s.retrying} being retried, ${s.failed} given up, ${s.sent} sent${s.smtpConfigured ? '' : ' — the instance has no SMTP server: notifications, and the replies of portals without a server of their own, wait (mailintake smtp set)'}`,
  );
  if (s.unsent.length === 0) return;
  k.line(
    table(
      ['ID', 'STATE', 'EVENT', 'CREATED', 'ATTEMPTS', 'NEXT ATTEMPT', 'TO', 'LAST ERROR'],
      s.unsent.map((m) => [
        String(m.id),
        m.state,
        m.event,
        m.createdAt,
        String(m.attempts),
        m.nextAttemptAt ?? '-',
        truncate(m.recipients.join(', '), 60),
        truncate(m.lastError ?? '-', 100),
      ]),
    ),
  );
}
