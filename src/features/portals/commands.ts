import { type Command, Option } from 'commander';
import { MailintakeError } from '../../kernel/errors.js';
import { printSmtp, printSmtpConsent } from '../notifications/commands.js';
import { tokenStateFields } from '../oauth/fields.js';
import type { OAuthService } from '../oauth/service.js';
import { type CliKit, clean, fields, table } from '../shared/cli-kit.js';
import type { PortalPatch, PortalSmtpView, PortalsService } from './service.js';
import type { PortalView } from './views.js';

/** The services these commands use (their slices of Services). */
type Kit = CliKit<{ portals: PortalsService; oauth: OAuthService }>;

/** `portal list | add | show | set`. */
export function addPortalCommands(program: Command, k: Kit): void {
  const { leaf, answer, line } = k;
  const portal = program.command('portal').description('portals (help desks)');
  leaf(portal, 'list', 'list portals').action(
    answer(
      (services) => services.portals.list(),
      (list) =>
        line(
          table(
            ['ID', 'NAME', 'HEADER THREADING'],
            list.map((p) => [String(p.id), p.name, p.headerThreading ? 'on' : 'off']),
          ),
        ),
    ),
  );
  leaf(portal, 'add', 'add a portal')
    .argument('<name>')
    .action(
      answer(
        (services, name: string) => services.portals.add(name),
        (p) => line(`Portal ${clean(p.name)} added (id ${p.id}).`),
      ),
    );
  leaf(portal, 'show', 'show a portal’s settings, with the effective attachment policy')
    .argument('<name>')
    .action(
      answer(
        async (services, name: string) => {
          const p = (await services.portals.list()).find((x) => x.name === name);
          if (!p) throw new MailintakeError('NOT_FOUND', `no portal named "${name}"`);
          return p;
        },
        (p) => printPortal(line, p),
      ),
    );
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
    .option(
      '--mail-settings <file>',
      'JSON file with mail-settings fields to change: formSenders, ccParticipants, acknowledgement {enabled, subject, body, perSenderPerHour}, rateLimit {maxRequests, windowMinutes} (null restores a default); "-" reads stdin',
    )
    .action(
      answer(
        async (services, name: string, opts: PortalSetOptions) =>
          services.portals.update(name, await portalPatch(k, opts)),
        (p, _name, opts) => {
          if (opts.attachmentPolicy === undefined && opts.mailSettings === undefined) {
            return line(`Portal ${clean(p.name)}: header threading ${p.headerThreading ? 'on' : 'off'}.`);
          }
          printPortal(line, p);
        },
      ),
    );
  addPortalSmtpCommands(portal, k);
}

/** `portal smtp show | set | clear | test | authorize | oauth <name>`: a portal's own outgoing server. */
function addPortalSmtpCommands(portal: Command, k: Kit): void {
  const { leaf, answer, line } = k;
  const smtp = portal
    .command('smtp')
    .description(
      "a portal's own outgoing SMTP server for its replies, forwards and acknowledgements (else the instance's: mailintake smtp)",
    );
  const show = (v: PortalSmtpView) => {
    const name = clean(v.portal);
    if (v.own) {
      line(`Portal ${name} sends its replies, forwards and acknowledgements through its own server:`);
      printSmtp(k, v.own, `mailintake portal smtp authorize ${name}`);
    } else if (v.inEffect === 'instance') {
      line(
        `Portal ${name} has no outgoing server of its own: its replies go through the instance's (mailintake smtp show). Give it one with: mailintake portal smtp set ${name} --file smtp.json`,
      );
    } else {
      line(
        `Portal ${name} has no outgoing server, and neither has the instance: its replies wait in the outbox. Set one with: mailintake portal smtp set ${name} --file smtp.json (or mailintake smtp set --file smtp.json for every portal)`,
      );
    }
  };
  leaf(smtp, 'show', "show the server the portal's replies go through (never the password)")
    .argument('<name>', 'portal')
    .action(
      answer(
        (services, name: string) => services.portals.smtp.get(name),
        (v) => show(v),
      ),
    );
  leaf(
    smtp,
    'set',
    'give the portal its own server, from a JSON file like smtp set takes (no password: keep the stored one)',
  )
    .argument('<name>', 'portal')
    .requiredOption('--file <file>', 'SMTP settings file, or - for stdin')
    .action(
      answer(
        async (services, name: string, opts: { file: string }) =>
          services.portals.smtp.set(name, await k.readSecretFile(opts.file, 'SMTP settings')),
        (v) => {
          line(`Saved. Send a test mail with: mailintake portal smtp test ${clean(v.portal)} --to ADDRESS`);
          show(v);
        },
      ),
    );
  leaf(smtp, 'clear', "remove the portal's own server: its replies go through the instance's again")
    .argument('<name>', 'portal')
    .action(
      answer(
        (services, name: string) => services.portals.smtp.clear(name),
        (v) => show(v),
      ),
    );
  leaf(smtp, 'test', "send a test mail now through the server the portal's replies use")
    .argument('<name>', 'portal')
    .requiredOption('--to <address>', 'who gets the test mail')
    .action(
      answer(
        (services, name: string, opts: { to: string }) => services.portals.smtp.test(name, { to: opts.to }),
        (r) =>
          line(
            `Test mail to ${clean(r.to)} accepted by ${r.through === 'portal' ? "the portal's own server" : "the instance's server"} in ${r.durationMs} ms: ${clean(r.response)}`,
          ),
      ),
    );
  leaf(smtp, 'authorize', "start the OAuth consent of the portal's own server: prints the URL to open")
    .argument('<name>', 'portal')
    .action(
      answer(
        (services, name: string) => services.oauth.authorizeSmtp(name),
        (started) => printSmtpConsent(k, started),
      ),
    );
  leaf(smtp, 'oauth', "show the OAuth token state of the portal's own server (never the tokens)")
    .argument('<name>', 'portal')
    .action(
      answer(
        (services, name: string) => services.oauth.smtpStatus(name),
        (t) => line(fields(tokenStateFields(t))),
      ),
    );
}

interface PortalSetOptions {
  headerThreading?: 'on' | 'off';
  attachmentPolicy?: string;
  mailSettings?: string;
}

/** What `portal set` changes: the header threading and/or the attachment-policy fields of a JSON file. */
async function portalPatch(k: Kit, opts: PortalSetOptions): Promise<PortalPatch> {
  if (
    opts.headerThreading === undefined &&
    opts.attachmentPolicy === undefined &&
    opts.mailSettings === undefined
  ) {
    throw new MailintakeError('INVALID_SETTINGS', 'nothing to change', {
      details: {
        fields: [
          {
            field: '(options)',
            message: 'give --header-threading, --attachment-policy and/or --mail-settings',
          },
        ],
      },
    });
  }
  const patch: PortalPatch = {};
  if (opts.headerThreading !== undefined) patch.headerThreading = opts.headerThreading === 'on';
  if (opts.attachmentPolicy !== undefined) {
    const value = await k.readJsonFile(opts.attachmentPolicy, 'attachment policy');
    if (!value || typeof value !== 'object' || Array.isArray(value)) {
      throw new MailintakeError('INVALID_SETTINGS', 'the attachment policy must be a JSON object', {
        details: { fields: [{ field: '(file)', message: 'must be a JSON object' }] },
      });
    }
    patch.attachmentPolicy = value as Record<string, unknown>;
  }
  if (opts.mailSettings !== undefined) {
    const value = await k.readJsonFile(opts.mailSettings, 'mail settings');
    if (!value || typeof value !== 'object' || Array.isArray(value)) {
      throw new MailintakeError('INVALID_SETTINGS', 'the mail settings must be a JSON object', {
        details: { fields: [{ field: '(file)', message: 'must be a JSON object' }] },
      });
    }
    patch.mailSettings = value as Record<string, unknown>;
  }
  return patch;
}

function printPortal(line: (t: string) => void, p: PortalView): void {
  const a = p.attachmentPolicy;
  const m = p.mailSettings;
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
      ['form senders (requester from Reply-To)', m.formSenders.join(', ') || 'none'],
      ['CC participants', m.ccParticipants ? 'on' : 'off'],
      [
        'acknowledgement',
        m.acknowledgement.enabled
          ? `on, at most ${m.acknowledgement.perSenderPerHour} per sender per hour`
          : 'off',
      ],
      ['acknowledgement subject', m.acknowledgement.subject],
      [
        'new requests per sender',
        m.rateLimit.maxRequests === 0
          ? 'no limit'
          : `${m.rateLimit.maxRequests} per ${m.rateLimit.windowMinutes} minutes`,
      ],
    ]),
  );
}
