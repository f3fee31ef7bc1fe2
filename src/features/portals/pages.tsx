import type { Context } from 'hono';
import { type AttachmentPolicy, FILE_NAME_RULE_SETS } from '../../mail/attachment-checks.js';
import { NOTIFICATION_EVENTS, type NotificationEvent } from '../../notify/notifier.js';
import type { NotificationServices } from '../notifications/service.js';
import { type ConsoleApp, type ConsoleKit, type ConsoleUser, fieldErrors } from '../shared/console-kit.js';
import { Csrf, Field, Message, SelectField } from '../shared/console-ui.js';
import { MailSettingsForm, type MailSettingsFormState, mailSettingsFromForm } from './mail-settings-form.js';
import { AlertsForm, EVENT_LABELS, RuleForm, type RuleFormState } from './rule-forms.js';
import type { PortalPatch, PortalsService } from './service.js';
import { InEffect, portalSmtpPath } from './smtp-page.js';
import type { PortalView } from './views.js';

/**
 * Settings (admins): `/settings` links to each portal's settings and to the outgoing SMTP servers (the
 * instance's, and each portal's own: `smtp-page.tsx`), and holds the
 * two instance-wide notification settings (the connection-failure threshold, and the rules for every portal);
 * `/settings/portals/{name}` edits one portal: header threading, attachment rules and limits, the file-name
 * rule, and the notification rules of that portal. Every form re-renders with the admin's input and each bad
 * field's message beside it; a save goes back to the page (POST-redirect-GET).
 */

type Deps = { portals: PortalsService } & Pick<NotificationServices, 'notificationRules' | 'alerts'>;

type Errors = Record<string, string>;
interface PortalFormState {
  values: Record<string, string>;
  errors: Errors;
  message: string;
}

const SWITCHES = [
  ['skipAttachmentValidation', 'Skip attachment validation (keep every attachment without any check)'],
  ['skipInlineImageValidation', 'Skip inline image validation'],
  ['notifyOnDrop', 'Email the "attachment-dropped" rule’s recipients when attachments are dropped'],
  [
    'notifyOnInlineImageDrop',
    'Email the "inline-image-dropped" rule’s recipients when inline images are dropped',
  ],
] as const;

export function mountPortalSettingsPages(ui: ConsoleApp, kit: ConsoleKit, deps: Deps): void {
  const settingsIndex = async (
    c: Context,
    user: ConsoleUser,
    state: { alerts?: PortalFormState; rule?: RuleFormState } = {},
  ) => {
    const [portals, rules, alerts] = await Promise.all([
      deps.portals.list(),
      deps.notificationRules.list(),
      deps.alerts.get(),
    ]);
    const saved = c.req.query('saved');
    const body = (
      <section>
        <h1>Settings</h1>
        <Message
          error={state.alerts?.message ?? state.rule?.message}
          notice={saved ? `Saved: ${saved}.` : undefined}
        />
        <h2>Portals</h2>
        <ul>
          {portals.map((p) => (
            <li>
              <a href={`/settings/portals/${encodeURIComponent(p.name)}`}>Settings of portal {p.name}</a>
            </li>
          ))}
        </ul>
        <h2>Outgoing mail</h2>
        <p>
          <a href="/settings/smtp">Outgoing SMTP server</a>: how notification mail is sent, and a test mail.
          The replies, forwards and acknowledgements of every portal without a server of its own go out
          through it too.
        </p>
        <p>A portal may have an outgoing server of its own for its replies, forwards and acknowledgements:</p>
        <ul>
          {portals.map((p) => (
            <li>
              <a href={portalSmtpPath(p.name)}>Outgoing SMTP server of portal {p.name}</a>
            </li>
          ))}
        </ul>
        <AlertsForm user={user} alerts={alerts} state={state.alerts} />
        <h2>Notification rules for every portal</h2>
        <p>
          Who gets an email for each event in every portal. A portal’s own rules (on its page) add recipients
          for that portal.
        </p>
        {NOTIFICATION_EVENTS.map((event) => (
          <RuleForm
            user={user}
            action="/settings/rules"
            event={event}
            rule={rules.find((r) => r.event === event && r.portal === null)}
            state={state.rule?.event === event ? state.rule : undefined}
          />
        ))}
      </section>
    );
    const status = state.alerts || state.rule ? 400 : 200;
    return kit.render(c, 'Settings', user, body, { current: '/settings', status });
  };

  const portalPage = async (
    c: Context,
    user: ConsoleUser,
    name: string,
    state: { form?: PortalFormState; rule?: RuleFormState; mail?: MailSettingsFormState } = {},
  ) => {
    const portal = (await deps.portals.list()).find((p) => p.name === name);
    if (!portal) return kit.render(c, 'Not found', user, <p>No portal named “{name}”.</p>, { status: 404 });
    const [rules, alerts, smtp] = await Promise.all([
      deps.notificationRules.list(),
      deps.alerts.get(),
      deps.portals.smtp.get(portal.name),
    ]);
    const saved = c.req.query('saved');
    const body = (
      <section>
        <p>
          <a href="/settings">Settings</a>
        </p>
        <h1>Portal {portal.name}</h1>
        <Message
          error={state.form?.message ?? state.mail?.message ?? state.rule?.message}
          notice={saved ? `Saved: ${saved}.` : undefined}
        />
        <PortalForm user={user} portal={portal} state={state.form} />
        <MailSettingsForm
          user={user}
          portal={portal.name}
          settings={portal.mailSettings}
          state={state.mail}
        />
        <h2>Outgoing mail</h2>
        <InEffect view={smtp} />
        <p>
          <a href={portalSmtpPath(portal.name)}>Outgoing SMTP server of portal {portal.name}</a>: give it a
          server of its own, go back to the instance's, or send a test mail.
        </p>
        <h2>Notification rules of portal {portal.name}</h2>
        <p>
          Recipients here get the event’s email for this portal, besides the{' '}
          <a href="/settings">rules for every portal</a>. Bell notifications go to admins whatever the rules
          say.
        </p>
        {NOTIFICATION_EVENTS.map((event) => (
          <RuleForm
            user={user}
            action={`/settings/portals/${encodeURIComponent(portal.name)}/rules`}
            event={event}
            rule={rules.find((r) => r.event === event && r.portal === portal.name)}
            state={state.rule?.event === event ? state.rule : undefined}
          />
        ))}
        <h2>Connection failures</h2>
        <p>
          Admins and the “{EVENT_LABELS['connection-failure']}” recipients are told after{' '}
          <strong>{alerts.threshold}</strong> consecutive rounds that could not connect (notifications{' '}
          {alerts.enabled ? 'on' : 'off'}). This threshold is one setting for every portal:{' '}
          <a href="/settings#alerts">change it on the settings page</a>.
        </p>
      </section>
    );
    const status = state.form || state.rule || state.mail ? 400 : 200;
    return kit.render(c, `Portal ${portal.name}`, user, body, { current: '/settings', status });
  };

  ui.get(
    '/settings',
    kit.page('admin', async (c, user) => settingsIndex(c, user)),
  );
  ui.get(
    '/settings/portals/:name',
    kit.page('admin', async (c, user) => portalPage(c, user, c.req.param('name') ?? '')),
  );

  /**
   * The portal page's two forms (settings, mail settings) save the same way: the patch the form makes against
   * what is in effect, then back to the page saying what was saved, or the page again with each bad field marked
   * and everything typed kept.
   */
  const saveForm = (
    path: string,
    state: 'form' | 'mail',
    saved: string,
    patchOf: (form: Record<string, string>, current: PortalView) => PortalPatch,
  ) =>
    ui.post(
      path,
      kit.formLimit,
      kit.page('admin', async (c, user, form) => {
        const name = c.req.param('name') ?? '';
        try {
          const current = (await deps.portals.list()).find((p) => p.name === name);
          if (!current) return portalPage(c, user, name);
          const patch = patchOf(form, current);
          if (Object.keys(patch).length > 0) await deps.portals.update(name, patch);
          return c.redirect(`/settings/portals/${encodeURIComponent(name)}?saved=${saved}`, 303);
        } catch (e) {
          const { message, fields } = fieldErrors(e);
          return portalPage(c, user, name, { [state]: { values: form, errors: fields, message } });
        }
      }),
    );
  saveForm('/settings/portals/:name', 'form', 'portal+settings', (form, current) => {
    const policy = policyFromForm(form, current.attachmentPolicy);
    return {
      headerThreading: form.headerThreading === 'on',
      ...(Object.keys(policy).length > 0 ? { attachmentPolicy: policy } : {}),
    };
  });
  saveForm('/settings/portals/:name/mail', 'mail', 'mail+settings', (form, current) => {
    const patch = mailSettingsFromForm(form, current.mailSettings);
    return Object.keys(patch).length > 0 ? { mailSettings: patch } : {};
  });

  /** A rule's form: recipients set (or replaced); none given disables the rule that is there. */
  const saveRule = async (form: Record<string, string>, portal: string | null): Promise<void> => {
    const event = form.event as NotificationEvent;
    const recipients = (form.recipients ?? '').split(/[\s,;]+/).filter(Boolean);
    const existing = (await deps.notificationRules.list()).find(
      (r) => r.event === event && r.portal === portal,
    );
    if (recipients.length === 0 && existing) {
      await deps.notificationRules.setEnabled(existing.id, false);
      return;
    }
    await deps.notificationRules.set({ event, portal, recipients, enabled: form.enabled === 'on' });
  };
  const ruleState = (e: unknown, form: Record<string, string>): RuleFormState => {
    const { message, fields } = fieldErrors(e);
    return { event: form.event ?? '', values: form, errors: fields, message };
  };

  ui.post(
    '/settings/portals/:name/rules',
    kit.formLimit,
    kit.page('admin', async (c, user, form) => {
      const name = c.req.param('name') ?? '';
      try {
        await saveRule(form, name);
        return c.redirect(
          `/settings/portals/${encodeURIComponent(name)}?saved=${encodeURIComponent(`rule ${form.event}`)}`,
          303,
        );
      } catch (e) {
        return portalPage(c, user, name, { rule: ruleState(e, form) });
      }
    }),
  );
  ui.post(
    '/settings/rules',
    kit.formLimit,
    kit.page('admin', async (c, user, form) => {
      try {
        await saveRule(form, null);
        return c.redirect(`/settings?saved=${encodeURIComponent(`rule ${form.event}`)}`, 303);
      } catch (e) {
        return settingsIndex(c, user, { rule: ruleState(e, form) });
      }
    }),
  );
  ui.post(
    '/settings/alerts',
    kit.formLimit,
    kit.page('admin', async (c, user, form) => {
      try {
        await deps.alerts.set({
          threshold: numberOrText(form.threshold ?? ''),
          enabled: form.enabled === 'on',
        });
        return c.redirect('/settings?saved=connection-failure+alerts', 303);
      } catch (e) {
        const { message, fields } = fieldErrors(e);
        return settingsIndex(c, user, { alerts: { values: form, errors: fields, message } });
      }
    }),
  );
}

/** A number typed as one; anything else is passed on as typed, for the service to name it. */
function numberOrText(value: string): unknown {
  const v = value.trim();
  return /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v;
}

/**
 * The form's fields as the attachment policy's patch: only what the admin changed (a field left as shown stays
 * unset, so it keeps following the default), and empty means the default (null restores it).
 */
function policyFromForm(form: Record<string, string>, current: AttachmentPolicy): Record<string, unknown> {
  const list = (v: string | undefined) => (v ?? '').split(/[\s,;]+/).filter(Boolean);
  const limit = (v: string | undefined) => ((v ?? '').trim() === '' ? null : numberOrText(v ?? ''));
  const given: Record<string, unknown> = {
    maxSizeMb: limit(form.maxSizeMb),
    inlineImageMaxSizeMb: limit(form.inlineImageMaxSizeMb),
    allowedExtensions: list(form.allowedExtensions),
    deniedExtensions: (form.deniedExtensions ?? '').trim() === '' ? null : list(form.deniedExtensions),
    fileNames: form.fileNames || null,
  };
  for (const [key] of SWITCHES) given[key] = form[key] === 'on';
  const same = (a: unknown, b: unknown) =>
    Array.isArray(a) && Array.isArray(b)
      ? a.map(ext).join(',') === b.map(ext).join(',')
      : JSON.stringify(a) === JSON.stringify(b);
  return Object.fromEntries(
    Object.entries(given).filter(([k, v]) => !same(v, current[k as keyof AttachmentPolicy])),
  );
}

/** An extension as the policy stores it (for comparing what was typed with what is set). */
const ext = (e: unknown) => String(e).trim().replace(/^\./, '').toLowerCase();

function PortalForm(props: { user: ConsoleUser; portal: PortalView; state: PortalFormState | undefined }) {
  const p = props.portal.attachmentPolicy;
  const v = props.state?.values;
  const e = props.state?.errors ?? {};
  const value = (key: string, current: string) => (v ? (v[key] ?? '') : current);
  const checked = (key: string, current: boolean) => (v ? v[key] === 'on' : current);
  return (
    <form
      method="post"
      action={`/settings/portals/${encodeURIComponent(props.portal.name)}`}
      class="settings"
    >
      <Csrf token={props.user.csrf} />
      <h2>Threading</h2>
      <div class="check">
        <input
          type="checkbox"
          id="f-headerThreading"
          name="headerThreading"
          checked={checked('headerThreading', props.portal.headerThreading)}
        />
        <label for="f-headerThreading">
          Add mails as conversations by their headers (In-Reply-To, References). Off: only a{' '}
          <code>##request id##</code> in the subject does.
        </label>
      </div>
      <h2>Attachments</h2>
      <Field
        name="maxSizeMb"
        label="Maximum attachment size (MB)"
        value={value('maxSizeMb', String(p.maxSizeMb))}
        error={e.maxSizeMb}
        help="Larger attachments are dropped. -1: unlimited; empty: the default, 25."
      />
      <Field
        name="inlineImageMaxSizeMb"
        label="Maximum inline image size (MB)"
        value={value('inlineImageMaxSizeMb', String(p.inlineImageMaxSizeMb))}
        error={e.inlineImageMaxSizeMb}
        help="-1: not checked; empty: the default, 3."
      />
      <Field
        name="allowedExtensions"
        label="Allowed extensions"
        value={value('allowedExtensions', p.allowedExtensions.join(', '))}
        error={e.allowedExtensions}
        help="Comma-separated, e.g. pdf, png. Empty: every extension that is not denied."
      />
      <Field
        name="deniedExtensions"
        label="Denied extensions"
        value={value('deniedExtensions', p.deniedExtensions.join(', '))}
        error={e.deniedExtensions}
        help="Comma-separated; deny wins over allow. Empty: the default list (exe, bat, js, ps1, …)."
      />
      <SelectField
        name="fileNames"
        label="File-name rule"
        value={value('fileNames', p.fileNames)}
        error={e.fileNames}
        options={FILE_NAME_RULE_SETS.map((r) => ({
          value: r,
          label:
            r === 'safe'
              ? 'safe: refuse only unsafe names or names that cannot be saved'
              : 'strict: also refuse anything but letters, digits, “.”, “-”, “_” and space',
        }))}
      />
      {SWITCHES.map(([key, label]) => (
        <div class={e[key] ? 'check invalid' : 'check'}>
          <input type="checkbox" id={`f-${key}`} name={key} checked={checked(key, p[key])} />
          <label for={`f-${key}`}>{label}</label>
          {e[key] ? <p class="field-error">{e[key]}</p> : null}
        </div>
      ))}
      <button type="submit">Save portal settings</button>
    </form>
  );
}
