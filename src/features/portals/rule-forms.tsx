import type { AlertSettings } from '../../notify/alert-settings.js';
import type { NotificationEvent } from '../../notify/notifier.js';
import type { NotificationRuleView } from '../../notify/rules.js';
import type { ConsoleUser } from '../shared/console-kit.js';
import { Csrf, Field } from '../shared/console-ui.js';

/** The notification settings' small forms, shown on /settings (every portal) and on each portal's page. */

export const EVENT_LABELS: Record<NotificationEvent, string> = {
  'mail-error': 'A mail was moved to the error folder, or fetching stopped (application error)',
  'connection-failure': 'A mailbox cannot be reached',
  'connection-recovered': 'A mailbox connects again',
  'attachment-dropped': 'Attachments were dropped',
  'inline-image-dropped': 'Inline images were dropped',
};

export interface RuleFormState {
  event: string;
  values: Record<string, string>;
  errors: Record<string, string>;
  message: string;
}

/** One event's rule: its recipients and whether it is on. Empty recipients switch an existing rule off. */
export function RuleForm(props: {
  user: ConsoleUser;
  action: string;
  event: NotificationEvent;
  rule: NotificationRuleView | undefined;
  state: RuleFormState | undefined;
}) {
  const { event, rule, state } = props;
  const id = `rule-${event}`;
  const recipients = state ? (state.values.recipients ?? '') : (rule?.recipients.join(', ') ?? '');
  const enabled = state ? state.values.enabled === 'on' : (rule?.enabled ?? true);
  return (
    <form method="post" action={props.action} class="rule" aria-labelledby={`${id}-title`}>
      <h3 id={`${id}-title`}>
        {EVENT_LABELS[event]} <code>{event}</code>
      </h3>
      <Csrf token={props.user.csrf} />
      <input type="hidden" name="event" value={event} />
      <Field
        id={`${id}-recipients`}
        name="recipients"
        label={`Recipients of “${event}” emails`}
        value={recipients}
        error={state?.errors.recipients ?? state?.errors.event ?? state?.errors.portal}
        help={
          rule
            ? `Comma-separated addresses. Now ${rule.enabled ? 'on' : 'off'}. Empty: the rule is switched off.`
            : 'Comma-separated addresses. No rule yet: nobody gets this email from here.'
        }
      />
      <div class="check">
        <input type="checkbox" id={`${id}-enabled`} name="enabled" checked={enabled} />
        <label for={`${id}-enabled`}>Rule on</label>
      </div>
      <button type="submit">Save rule</button>
    </form>
  );
}

/** The reference's "Configure Notifications for Connectivity Issues": one threshold and switch per instance. */
export function AlertsForm(props: {
  user: ConsoleUser;
  alerts: AlertSettings;
  state: { values: Record<string, string>; errors: Record<string, string> } | undefined;
}) {
  const v = props.state?.values;
  return (
    <form method="post" action="/settings/alerts" class="settings" id="alerts" aria-labelledby="alerts-title">
      <h2 id="alerts-title">Connection-failure alerts</h2>
      <Csrf token={props.user.csrf} />
      <Field
        name="threshold"
        label="Consecutive failed rounds before admins and technicians are told"
        type="text"
        value={v ? (v.threshold ?? '') : String(props.alerts.threshold)}
        error={props.state?.errors.threshold}
        help="At least 1 (default 5). The count starts again after each notice; a round that connects resets it."
      />
      <div class="check">
        <input
          type="checkbox"
          id="f-alerts-enabled"
          name="enabled"
          checked={v ? v.enabled === 'on' : props.alerts.enabled}
        />
        <label for="f-alerts-enabled">Notifications on</label>
      </div>
      <button type="submit">Save alerts</button>
    </form>
  );
}
