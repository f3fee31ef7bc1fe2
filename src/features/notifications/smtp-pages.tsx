import type { Context } from 'hono';
import { ERROR_HELP, isMailintakeError } from '../../kernel/errors.js';
import type { SmtpSettingsView } from '../../notify/smtp-settings.js';
import { type ConsoleApp, type ConsoleKit, type ConsoleUser, fieldErrors } from '../shared/console-kit.js';
import { Csrf, Field, Message } from '../shared/console-ui.js';
import type { NotificationServices, SmtpTestResult } from './service.js';

/**
 * `/settings/smtp` (admins): the outgoing SMTP server notification mail goes through, and "send a test mail".
 * The stored password is never put into the page: an empty password field keeps it (same user name). One the
 * admin typed into a form that came back with an error is theirs and is kept, with the rest of what they typed.
 * A failed test mail is explained with its code, what to check and the server's answer, as the CLI does.
 */

interface FormState {
  values: Record<string, string>;
  errors: Record<string, string>;
  message: string;
}
type TestOutcome =
  | { ok: true; result: SmtpTestResult }
  | { ok: false; code: string; message: string; help: string | null; serverResponse: string | null };

export function mountSmtpPages(
  ui: ConsoleApp,
  kit: ConsoleKit,
  deps: Pick<NotificationServices, 'smtp'>,
): void {
  const page = async (
    c: Context,
    user: ConsoleUser,
    state: { form?: FormState; test?: TestOutcome; to?: string; toError?: string } = {},
    status = 200,
  ) => {
    const current = await deps.smtp.get();
    const saved = c.req.query('saved') === '1' ? 'The SMTP settings are saved.' : undefined;
    const body = (
      <section>
        <p>
          <a href="/settings">Settings</a>
        </p>
        <h1>Outgoing SMTP server</h1>
        <p>Notification mail (error mails, connection failures, dropped attachments) goes out through it.</p>
        <Message error={state.form?.message} notice={saved} />
        {current?.warnings.map((w) => (
          <p class="message notice">{w}</p>
        ))}
        {current?.auth === 'oauth2' ? (
          <p>
            This server logs in with OAuth 2.0 as <strong>{current.username}</strong> ({current.host}:
            {current.port}
            ). Change it with <code>mailintake smtp set --file smtp.json</code> and authorize with{' '}
            <code>mailintake smtp authorize</code>.
          </p>
        ) : (
          <SmtpForm user={user} current={current} state={state.form} />
        )}
        <TestForm
          user={user}
          configured={current !== null}
          outcome={state.test}
          to={state.to}
          error={state.toError}
        />
      </section>
    );
    return kit.render(c, 'Outgoing SMTP server', user, body, { current: '/settings', status });
  };

  ui.get(
    '/settings/smtp',
    kit.page('admin', async (c, user) => page(c, user)),
  );

  ui.post(
    '/settings/smtp',
    kit.formLimit,
    kit.page('admin', async (c, user, form) => {
      try {
        await deps.smtp.set(smtpFromForm(form));
        return c.redirect('/settings/smtp?saved=1', 303);
      } catch (e) {
        const { message, fields } = fieldErrors(e);
        // what the admin typed comes back, their new password included (the stored one is never read)
        return page(c, user, { form: { values: form, errors: fields, message } }, 400);
      }
    }),
  );

  ui.post(
    '/settings/smtp/test',
    kit.formLimit,
    kit.page('admin', async (c, user, form) => {
      const to = (form.to ?? '').trim();
      try {
        const result = await deps.smtp.test({ to });
        return page(c, user, { test: { ok: true, result }, to });
      } catch (e) {
        if (!isMailintakeError(e) || e.code === 'INTERNAL') throw e;
        if (e.code === 'INVALID_SETTINGS') {
          const { fields } = fieldErrors(e);
          return page(c, user, { to, toError: fields.to ?? e.message }, 400);
        }
        const serverResponse = typeof e.details.serverResponse === 'string' ? e.details.serverResponse : null;
        const help = (ERROR_HELP as Record<string, string>)[e.code] ?? null;
        // the test's failure is the answer to the admin's question, not a failure of the page
        return page(
          c,
          user,
          { test: { ok: false, code: e.code, message: e.message, help, serverResponse }, to },
          200,
        );
      }
    }),
  );
}

/** The form as the SMTP settings' input: empty fields left out (the password: keep the stored one). */
function smtpFromForm(form: Record<string, string>): Record<string, unknown> {
  const text = (k: string) => (form[k] ?? '').trim();
  const out: Record<string, unknown> = {
    host: text('host'),
    from: text('from'),
    secure: form.secure === 'on',
    starttls: form.starttls === 'on',
  };
  const port = text('port');
  if (port) out.port = /^\d+$/.test(port) ? Number(port) : port;
  if (text('username')) out.username = text('username');
  if (form.password) out.password = form.password;
  if (text('caFile')) out.caFile = text('caFile');
  return out;
}

function SmtpForm(props: {
  user: ConsoleUser;
  current: SmtpSettingsView | null;
  state: FormState | undefined;
}) {
  const cur = props.current;
  const v = props.state?.values;
  const e = props.state?.errors ?? {};
  const value = (k: string, stored: string | number | null | undefined) =>
    v ? (v[k] ?? '') : stored === null || stored === undefined ? '' : String(stored);
  const checked = (k: string, stored: boolean) => (v ? v[k] === 'on' : stored);
  return (
    <form method="post" action="/settings/smtp" class="settings" aria-labelledby="smtp-title">
      <h2 id="smtp-title">Server</h2>
      <Csrf token={props.user.csrf} />
      <Field
        name="host"
        label="Server name or IP address"
        value={value('host', cur?.host)}
        error={e.host}
        required
      />
      <Field
        name="port"
        label="Port"
        value={value('port', cur?.port)}
        error={e.port}
        help="Empty: 587 (submission with STARTTLS), or 465 with TLS from the first byte."
      />
      <div class="check">
        <input
          type="checkbox"
          id="f-secure"
          name="secure"
          checked={checked('secure', cur?.secure ?? false)}
        />
        <label for="f-secure">TLS from the first byte (implicit TLS, usually port 465)</label>
      </div>
      <div class="check">
        <input
          type="checkbox"
          id="f-starttls"
          name="starttls"
          checked={checked('starttls', cur?.starttls ?? true)}
        />
        <label for="f-starttls">Require STARTTLS (off only for a server without TLS)</label>
      </div>
      <Field
        name="username"
        label="User name"
        value={value('username', cur?.username)}
        error={e.username}
        autocomplete="off"
        help="Empty: the server takes mail without login."
      />
      <Field
        name="password"
        label="Password"
        type="password"
        // the stored password is never shown; one typed in the form that came back with an error is kept
        value={v?.password ?? ''}
        error={e.password}
        autocomplete="new-password"
        help={
          cur?.passwordSet
            ? 'A password is stored; it is never shown. Leave this empty to keep it (with the same user name).'
            : 'No password is stored.'
        }
      />
      <Field
        name="from"
        label="From"
        value={value('from', cur?.from)}
        error={e.from}
        required
        help="helpdesk@example.com or Help Desk <helpdesk@example.com>"
      />
      <Field
        name="caFile"
        label="CA file (PEM) of a private CA"
        value={value('caFile', cur?.caFile)}
        error={e.caFile}
        help="Certificates are always verified; name a file here only for a private CA."
      />
      <button type="submit">Save SMTP settings</button>
    </form>
  );
}

function TestForm(props: {
  user: ConsoleUser;
  configured: boolean;
  outcome: TestOutcome | undefined;
  to: string | undefined;
  error: string | undefined;
}) {
  const o = props.outcome;
  return (
    <section aria-labelledby="test-title">
      <h2 id="test-title">Send a test mail</h2>
      {o?.ok === true ? (
        <p class="message notice" role="status" id="test-result">
          The test mail to {o.result.to} was accepted by the server ({o.result.durationMs} ms). It answered:{' '}
          <code>{o.result.response}</code>
        </p>
      ) : null}
      {o?.ok === false ? (
        <div class="message error" role="alert" id="test-result">
          <p>
            The test mail could not be sent: <code>{o.code}</code> {o.message}
          </p>
          {o.serverResponse ? (
            <p>
              The server answered: <code>{o.serverResponse}</code>
            </p>
          ) : null}
          {o.help ? <p>What to check: {o.help}</p> : null}
        </div>
      ) : null}
      {props.configured ? (
        <form method="post" action="/settings/smtp/test" class="settings">
          <Csrf token={props.user.csrf} />
          <Field
            name="to"
            label="Send a test mail to"
            type="email"
            value={props.to}
            error={props.error}
            required
          />
          <button type="submit">Send test mail</button>
        </form>
      ) : (
        <p>Save the server first; then a test mail can be sent through it.</p>
      )}
    </section>
  );
}
