import type { Context } from 'hono';
import type { Child } from 'hono/jsx';
import { isMailintakeError } from '../../kernel/errors.js';
import type { OAuthService } from '../oauth/service.js';
import { type ConsoleApp, type ConsoleKit, type ConsoleUser, fieldErrors } from '../shared/console-kit.js';
import { Csrf, Message } from '../shared/console-ui.js';
import { type FormValues, formErrors, formInput, newMailboxValues, viewValues } from './form.js';
import { MailboxForm, type MailboxFormProps } from './form-view.js';
import { MailboxList, mailboxPath, SampleFailure, SampleResult, StatePanel, tokenText } from './panels.js';
import type { MailboxesService } from './service.js';
import type { MailboxView } from './views.js';

/**
 * The mailbox pages (admins only): the list with each mailbox's state, the add and edit form, pause and
 * resume, "fetch a sample mail", the OAuth consent and removal. They call the same services as the API and
 * the CLI; the form's translation to settings is form.ts.
 */
export interface MailboxPagesDeps {
  mailboxes: MailboxesService;
  oauth: Pick<OAuthService, 'authorize' | 'status' | 'providers'>;
}

const SCRIPTS = ['mailboxes.js'];
const NOTICES: Record<string, string> = {
  added: 'Mailbox added.',
  saved: 'Saved.',
  paused: 'Fetching paused.',
  resumed: 'Fetching resumed.',
  'saved-paused': 'Saved; fetching is paused until you resume it.',
  removed: 'Mailbox removed; its requests and history are kept.',
};

export function mountMailboxPages(ui: ConsoleApp, kit: ConsoleKit, deps: MailboxPagesDeps): void {
  const { mailboxes, oauth } = deps;
  const redirectUrl = () => oauth.providers().redirectUrl;
  const notice = (c: Context) => NOTICES[c.req.query('done') ?? ''];

  const formPage = (
    c: Context,
    user: ConsoleUser,
    title: string,
    body: Child,
    status = 200,
  ): Promise<Response> =>
    kit.render(c, title, user, body, { status, current: '/mailboxes', scripts: SCRIPTS });

  const newPage = (c: Context, user: ConsoleUser, values: FormValues, more: Partial<MailboxFormProps> = {}) =>
    formPage(
      c,
      user,
      'Add mailbox',
      <section>
        <h1>Add mailbox</h1>
        <MailboxForm
          action="/mailboxes/new"
          csrf={user.csrf}
          values={values}
          errors={{}}
          isNew
          redirectUrl={redirectUrl()}
          {...more}
        />
      </section>,
      more.message ? 400 : 200,
    );

  /** The edit page: state, actions, an optional sample result, and the form (with what was typed, if any). */
  const editPage = async (
    c: Context,
    user: ConsoleUser,
    m: MailboxView,
    o: {
      values?: FormValues;
      form?: Partial<MailboxFormProps>;
      result?: Child;
      status?: number;
      notice?: string | undefined;
    } = {},
  ) => {
    const activity = (await mailboxes.activity())[m.name] ?? { requests: 0, conversations: 0 };
    return formPage(
      c,
      user,
      `Mailbox ${m.name}`,
      <section>
        <h1>Mailbox {m.name}</h1>
        <Message notice={o.notice} />
        {o.result}
        <StatePanel m={m} csrf={user.csrf} {...activity} />
        <h2>Settings</h2>
        <MailboxForm
          action={mailboxPath(m.name)}
          csrf={user.csrf}
          values={o.values ?? viewValues(m)}
          errors={{}}
          isNew={false}
          passwordSet={m.passwordSet}
          clientSecretSet={m.oauth?.clientSecretSet ?? false}
          errorMails={m.errorMails}
          redirectUrl={m.oauth?.redirectUrl ?? redirectUrl()}
          {...o.form}
        />
      </section>,
      o.status ?? 200,
    );
  };

  ui.get(
    '/mailboxes',
    kit.page('admin', async (c, user) => {
      const [list, activity] = await Promise.all([mailboxes.list(), mailboxes.activity()]);
      return kit.render(
        c,
        'Mailboxes',
        user,
        <MailboxList mailboxes={list} activity={activity} csrf={user.csrf} notice={notice(c)} />,
        { current: '/mailboxes' },
      );
    }),
  );

  ui.get(
    '/mailboxes/new',
    kit.page('admin', async (c, user) => newPage(c, user, newMailboxValues())),
  );

  ui.post(
    '/mailboxes/new',
    kit.formLimit,
    kit.page('admin', async (c, user, form) => {
      if (form.intent === 'show-fields') return newPage(c, user, form);
      try {
        const added = await mailboxes.add(formInput(form, true));
        return c.redirect(`${mailboxPath(added.name)}?done=added`, 303);
      } catch (e) {
        if (isMailintakeError(e) && e.code === 'CONFLICT')
          return newPage(c, user, form, { message: e.message, errors: { name: e.message } });
        const bad = fieldErrors(e);
        return newPage(c, user, form, { message: bad.message, errors: formErrors(bad.fields) });
      }
    }),
  );

  ui.get(
    '/mailboxes/:name',
    kit.page('admin', async (c, user) => {
      const m = await mailboxes.get(c.req.param('name') ?? '');
      return editPage(c, user, m, { notice: notice(c) });
    }),
  );

  ui.post(
    '/mailboxes/:name',
    kit.formLimit,
    kit.page('admin', async (c, user, form) => {
      const name = c.req.param('name') ?? '';
      const m = await mailboxes.get(name);
      if (form.intent === 'show-fields') return editPage(c, user, m, { values: form });
      const pause = form.pauseFetching === '1';
      try {
        const saved = await mailboxes.update(name, formInput(form, false), { pauseFetching: pause });
        const paused = pause && !saved.enabled && m.enabled;
        return c.redirect(`${mailboxPath(saved.name)}?done=${paused ? 'saved-paused' : 'saved'}`, 303);
      } catch (e) {
        if (isMailintakeError(e) && e.code === 'FETCH_RUNNING') {
          return editPage(c, user, m, { values: form, form: { fetchRunning: true }, status: 409 });
        }
        if (isMailintakeError(e) && e.code === 'CONFLICT') {
          const form2 = { message: e.message, errors: { name: e.message } };
          return editPage(c, user, m, { values: form, form: form2, status: 409 });
        }
        const bad = fieldErrors(e);
        const form2 = { message: bad.message, errors: formErrors(bad.fields) };
        return editPage(c, user, m, { values: form, form: form2, status: 400 });
      }
    }),
  );

  ui.post(
    '/mailboxes/:name/enabled',
    kit.formLimit,
    kit.page('admin', async (c, _user, form) => {
      const name = c.req.param('name') ?? '';
      const on = form.enabled === '1';
      await mailboxes.setEnabled(name, on);
      const back = form.back === '/mailboxes' ? '/mailboxes' : mailboxPath(name);
      return c.redirect(`${back}?done=${on ? 'resumed' : 'paused'}`, 303);
    }),
  );

  ui.post(
    '/mailboxes/:name/test',
    kit.formLimit,
    kit.page('admin', async (c, user) => {
      const name = c.req.param('name') ?? '';
      const m = await mailboxes.get(name);
      let result: Child;
      try {
        const r = await mailboxes.test(name);
        result = <SampleResult sample={r.sample} durationMs={r.durationMs} />;
      } catch (e) {
        if (!isMailintakeError(e)) throw e;
        result = <SampleFailure error={e} oauth={m.auth === 'oauth2'} />;
      }
      return editPage(c, user, await mailboxes.get(name), { result });
    }),
  );

  /**
   * Starts the consent. The script asks for JSON (`format=json`) and opens the URL in the window it opened on
   * the click; without script the page links to the provider (a redirect after a form would be refused by the
   * console's `form-action 'self'`).
   */
  ui.post(
    '/mailboxes/:name/authorize',
    kit.formLimit,
    kit.page('admin', async (c, user, form) => {
      const name = c.req.param('name') ?? '';
      const json = form.format === 'json';
      try {
        const started = await oauth.authorize(name);
        if (json) return c.json({ authorizationUrl: started.authorizationUrl });
        return kit.render(
          c,
          'Authorize',
          user,
          <section class="narrow">
            <h1>Authorize mailbox {name}</h1>
            <p>
              Sign in at the provider as the mailbox's username and approve. The provider then sends you to
              Mailintake's page that says whether it worked; come back to{' '}
              <a href={mailboxPath(name)}>the mailbox</a> to see the token state.
            </p>
            <p>
              <a href={started.authorizationUrl} class="button" id="consent-link">
                Continue to the provider's sign-in
              </a>
            </p>
            <p class="help">This link is valid until {started.expiresAt.slice(0, 19).replace('T', ' ')}.</p>
          </section>,
          { current: '/mailboxes' },
        );
      } catch (e) {
        if (!json || !isMailintakeError(e)) throw e;
        return c.json({ error: { code: e.code, message: e.message } }, 400);
      }
    }),
  );

  /** The token state as JSON: what the script polls while the consent window is open. */
  ui.get(
    '/mailboxes/:name/token-state',
    kit.page('admin', async (c) => {
      const t = await oauth.status(c.req.param('name') ?? '');
      return c.json({ status: t.status, obtainedAt: t.obtainedAt, text: tokenText(t) });
    }),
  );

  ui.get(
    '/mailboxes/:name/remove',
    kit.page('admin', async (c, user) => {
      const m = await mailboxes.get(c.req.param('name') ?? '');
      return kit.render(
        c,
        `Remove ${m.name}`,
        user,
        <section class="narrow">
          <h1>Remove mailbox {m.name}?</h1>
          <p>
            Mailintake stops fetching it and forgets its password and tokens. Its requests, conversations and
            history are kept. Mail still on the server stays there.
          </p>
          <form method="post" action={`${mailboxPath(m.name)}/remove`}>
            <Csrf token={user.csrf} />
            <button type="submit" class="danger">
              Remove {m.name}
            </button>{' '}
            <a href={mailboxPath(m.name)}>Cancel</a>
          </form>
        </section>,
        { current: '/mailboxes' },
      );
    }),
  );

  ui.post(
    '/mailboxes/:name/remove',
    kit.formLimit,
    kit.page('admin', async (c) => {
      const name = c.req.param('name') ?? '';
      await mailboxes.remove(name);
      return c.redirect('/mailboxes?done=removed', 303);
    }),
  );
}
