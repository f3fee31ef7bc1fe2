import type { Context } from 'hono';
import type { Child } from 'hono/jsx';
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
 * The form, the test-mail form and the test's outcome are exported for a portal's own server's page
 * (features/portals/smtp-page.tsx): one server's settings look and behave the same wherever they are set.
 */

/** The server form as it came back with an error: what the admin typed, and each bad field's message. */
export interface SmtpFormState {
  values: Record<string, string>;
  errors: Record<string, string>;
  message: string;
}
/** What a test mail did, as the page shows it; `through` (when told) names the server it went through. */
export type TestOutcome =
  | { ok: true; result: SmtpTestResult; through?: string }
  | {
      ok: false;
      code: string;
      message: string;
      help: string | null;
      serverResponse: string | null;
      through?: string;
    };

export function mountSmtpPages(
  ui: ConsoleApp,
  kit: ConsoleKit,
  deps: Pick<NotificationServices, 'smtp'>,
): void {
  const page = async (
    c: Context,
    user: ConsoleUser,
    state: { form?: SmtpFormState; test?: TestOutcome; to?: string; toError?: string } = {},
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
          <OAuthServer
            current={current}
            setCommand="mailintake smtp set --file smtp.json"
            authorizeCommand="mailintake smtp authorize"
          />
        ) : (
          <SmtpForm user={user} action="/settings/smtp" title="Server" current={current} state={state.form} />
        )}
        <TestForm
          user={user}
          action="/settings/smtp/test"
          configured={current !== null}
          unconfigured="Save the server first; then a test mail can be sent through it."
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
      const { status, ...state } = await sendTestMailFrom(form, async (to) => ({
        result: await deps.smtp.test({ to }),
      }));
      return page(c, user, state, status);
    }),
  );
}

/**
 * Sends the test mail to the form's `to` through `send` and turns what happened into what the page shows: the
 * server's answer, or the failure's code with what to check and the server's answer (200: the test's failure is
 * the answer to the admin's question, not a failure of the page), or a bad address beside its field (400).
 * `through` names the server the mail went (or was tried) through, when the page tells.
 */
export async function sendTestMailFrom(
  form: Record<string, string>,
  send: (to: string) => Promise<{ result: SmtpTestResult; through?: string }>,
  tried?: string,
): Promise<{ to: string; test?: TestOutcome; toError?: string; status: number }> {
  const to = (form.to ?? '').trim();
  try {
    const { result, through } = await send(to);
    return { to, test: { ok: true, result, ...(through ? { through } : {}) }, status: 200 };
  } catch (e) {
    if (!isMailintakeError(e) || e.code === 'INTERNAL') throw e;
    if (e.code === 'INVALID_SETTINGS') {
      const { fields } = fieldErrors(e);
      return { to, toError: fields.to ?? e.message, status: 400 };
    }
    const serverResponse = typeof e.details.serverResponse === 'string' ? e.details.serverResponse : null;
    const help =
      typeof e.details.hint === 'string'
        ? e.details.hint
        : ((ERROR_HELP as Record<string, string>)[e.code] ?? null);
    const test: TestOutcome = { ok: false, code: e.code, message: e.message, help, serverResponse };
    return { to, test: tried ? { ...test, through: tried } : test, status: 200 };
  }
}

/** The form as the SMTP settings' input: empty fields left out (the password: keep the stored one). */
export function smtpFromForm(form: Record<string, string>): Record<string, unknown> {
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

/**
 * A server that logs in with OAuth 2.0 is set and authorized from the CLI (the consent needs a browser on the
 * admin's side and the provider's app): the page says which account and which commands.
 */
export function OAuthServer(props: {
  current: SmtpSettingsView;
  setCommand: string;
  authorizeCommand: string;
}) {
  const { current } = props;
  return (
    <p>
      This server logs in with OAuth 2.0 as <strong>{current.username}</strong> ({current.host}:{current.port}
      ). Change it with <code>{props.setCommand}</code> and authorize with{' '}
      <code>{props.authorizeCommand}</code>.
    </p>
  );
}

/** The server's settings form, posted to `action`; `title` heads it. */
export function SmtpForm(props: {
  user: ConsoleUser;
  action: string;
  title: string;
  current: SmtpSettingsView | null;
  state: SmtpFormState | undefined;
}) {
  const cur = props.current;
  const v = props.state?.values;
  const e = props.state?.errors ?? {};
  const value = (k: string, stored: string | number | null | undefined) =>
    v ? (v[k] ?? '') : stored === null || stored === undefined ? '' : String(stored);
  const checked = (k: string, stored: boolean) => (v ? v[k] === 'on' : stored);
  return (
    <form method="post" action={props.action} class="settings" aria-labelledby="smtp-title">
      <h2 id="smtp-title">{props.title}</h2>
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

/**
 * The test-mail form, posted to `action`, and the last test's outcome above it; `unconfigured` says what to do
 * when there is no server to send through yet.
 */
export function TestForm(props: {
  user: ConsoleUser;
  action: string;
  configured: boolean;
  unconfigured: Child;
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
          The test mail to {o.result.to} was accepted by the server ({o.result.durationMs} ms).
          {o.through ? ` It went through ${o.through}.` : ''} It answered: <code>{o.result.response}</code>
        </p>
      ) : null}
      {o?.ok === false ? (
        <div class="message error" role="alert" id="test-result">
          <p>
            The test mail could not be sent: <code>{o.code}</code> {o.message}
          </p>
          {o.through ? <p>It was tried through {o.through}.</p> : null}
          {o.serverResponse ? (
            <p>
              The server answered: <code>{o.serverResponse}</code>
            </p>
          ) : null}
          {o.help ? <p>What to check: {o.help}</p> : null}
        </div>
      ) : null}
      {props.configured ? (
        <form method="post" action={props.action} class="settings">
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
        <p>{props.unconfigured}</p>
      )}
    </section>
  );
}
