import { ACK_PLACEHOLDERS, type PortalMailSettings } from '../../mail/portal-mail.js';
import type { ConsoleUser } from '../shared/console-kit.js';
import { Csrf, Field, TextAreaField } from '../shared/console-ui.js';

/**
 * The portal's mail settings on its page (`/settings/portals/{name}/mail`): form senders, CC participants, the
 * acknowledgement and the per-sender limit. A form of its own, so that a bad template does not lose what the
 * admin typed in the attachment rules, and the other way round. Input names are the settings' field names
 * (`acknowledgement.subject`), so each INVALID_SETTINGS field lands beside its input.
 */

export interface MailSettingsFormState {
  values: Record<string, string>;
  errors: Record<string, string>;
  message: string;
}

const placeholders = ACK_PLACEHOLDERS.map((p) => `{{${p}}}`).join(', ');

export function MailSettingsForm(props: {
  user: ConsoleUser;
  portal: string;
  settings: PortalMailSettings;
  state: MailSettingsFormState | undefined;
}) {
  const s = props.settings;
  const v = props.state?.values;
  const e = props.state?.errors ?? {};
  const value = (key: string, current: string) => (v ? (v[key] ?? '') : current);
  const checked = (key: string, current: boolean) => (v ? v[key] === 'on' : current);
  return (
    <form
      method="post"
      action={`/settings/portals/${encodeURIComponent(props.portal)}/mail`}
      class="settings"
      id="mail-settings"
    >
      <Csrf token={props.user.csrf} />
      <h2>Requesters</h2>
      <Field
        name="formSenders"
        label="Form and no-reply senders"
        value={value('formSenders', s.formSenders.join(', '))}
        error={e.formSenders}
        help="Comma-separated addresses (no-reply@forms.example) or *@domain (*@typeform.io). A mail from one of them is opened for its Reply-To address."
      />
      <Check
        name="ccParticipants"
        label="People in CC become participants of the request (our own addresses and aliases never do)"
        checked={checked('ccParticipants', s.ccParticipants)}
        error={e.ccParticipants}
      />
      <h2>Acknowledgement</h2>
      <Check
        name="acknowledgement.enabled"
        label="Mail the requester when a mail opens a request"
        checked={checked('acknowledgement.enabled', s.acknowledgement.enabled)}
        error={e['acknowledgement.enabled']}
        help="Never to auto-replies, bounces, list mail, our own addresses or no-reply-style senders."
      />
      <Field
        name="acknowledgement.subject"
        label="Subject"
        value={value('acknowledgement.subject', s.acknowledgement.subject)}
        error={e['acknowledgement.subject']}
        help={`Placeholders: ${placeholders}. ##id## is added when left out, so that answers thread. Empty: the default.`}
      />
      <TextAreaField
        name="acknowledgement.body"
        label="Text"
        value={value('acknowledgement.body', s.acknowledgement.body)}
        error={e['acknowledgement.body']}
        help={`Plain text. Placeholders: ${placeholders}. Empty: the default.`}
      />
      <Field
        name="acknowledgement.perSenderPerHour"
        label="At most this many per sender per hour"
        value={value('acknowledgement.perSenderPerHour', String(s.acknowledgement.perSenderPerHour))}
        error={e['acknowledgement.perSenderPerHour']}
        help="Empty: the default, 5."
      />
      <h2>New requests per sender</h2>
      <Field
        name="rateLimit.maxRequests"
        label="New requests one sender may open"
        value={value('rateLimit.maxRequests', String(s.rateLimit.maxRequests))}
        error={e['rateLimit.maxRequests']}
        help="More go to the error folder with RATE_LIMITED (replies to a request are never limited). 0: no limit; empty: the default, 20."
      />
      <Field
        name="rateLimit.windowMinutes"
        label="Within minutes"
        value={value('rateLimit.windowMinutes', String(s.rateLimit.windowMinutes))}
        error={e['rateLimit.windowMinutes']}
        help="Empty: the default, 60."
      />
      {e.mailSettings ? <p class="field-error">{e.mailSettings}</p> : null}
      <button type="submit">Save mail settings</button>
    </form>
  );
}

function Check(props: {
  name: string;
  label: string;
  checked: boolean;
  error?: string | undefined;
  help?: string;
}) {
  const id = `f-${props.name}`;
  return (
    <div class={props.error ? 'check invalid' : 'check'}>
      <input
        type="checkbox"
        id={id}
        name={props.name}
        checked={props.checked}
        aria-invalid={props.error ? 'true' : undefined}
      />
      <label for={id}>{props.label}</label>
      {props.help ? <p class="help">{props.help}</p> : null}
      {props.error ? <p class="field-error">{props.error}</p> : null}
    </div>
  );
}

/**
 * The form as a mail-settings patch: only what differs from what is in effect (a field left as shown keeps
 * following its default), and an emptied field restores the default (null).
 */
export function mailSettingsFromForm(
  form: Record<string, string>,
  current: PortalMailSettings,
): Record<string, unknown> {
  const text = (key: string) => {
    const t = (form[key] ?? '').replace(/\r\n?/g, '\n');
    return t.trim() === '' ? null : t;
  };
  const num = (key: string) => {
    const t = (form[key] ?? '').trim();
    if (t === '') return null;
    return /^-?\d+(\.\d+)?$/.test(t) ? Number(t) : t;
  };
  const senders = (form.formSenders ?? '').split(/[\s,;]+/).filter(Boolean);
  const patch: Record<string, unknown> = {};
  if (senders.join(',').toLowerCase() !== current.formSenders.join(','))
    patch.formSenders = senders.length === 0 ? null : senders;
  const cc = form.ccParticipants === 'on';
  if (cc !== current.ccParticipants) patch.ccParticipants = cc;
  const group = (
    name: 'acknowledgement' | 'rateLimit',
    given: Record<string, unknown>,
    now: Record<string, unknown>,
  ) => {
    const changed = Object.fromEntries(Object.entries(given).filter(([k, val]) => val !== now[k]));
    if (Object.keys(changed).length > 0) patch[name] = changed;
  };
  group(
    'acknowledgement',
    {
      enabled: form['acknowledgement.enabled'] === 'on',
      subject: text('acknowledgement.subject'),
      body: text('acknowledgement.body'),
      perSenderPerHour: num('acknowledgement.perSenderPerHour'),
    },
    current.acknowledgement,
  );
  group(
    'rateLimit',
    { maxRequests: num('rateLimit.maxRequests'), windowMinutes: num('rateLimit.windowMinutes') },
    current.rateLimit,
  );
  return patch;
}
