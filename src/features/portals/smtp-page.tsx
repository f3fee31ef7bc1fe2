import type { Context } from 'hono';
import {
  OAuthServer,
  SmtpForm,
  type SmtpFormState,
  sendTestMailFrom,
  smtpFromForm,
  TestForm,
  type TestOutcome,
} from '../notifications/smtp-pages.js';
import { type ConsoleApp, type ConsoleKit, type ConsoleUser, fieldErrors } from '../shared/console-kit.js';
import { Csrf, Message } from '../shared/console-ui.js';
import type { PortalSmtpView, PortalsService } from './service.js';

/**
 * `/settings/portals/{name}/smtp` (admins): the outgoing SMTP server a portal's replies, forwards and
 * acknowledgements go out through. The page says which one that is now (the portal's own, the instance's, or
 * none, so they wait in the outbox), sets the portal's own with the instance page's form and rules (the stored
 * password never in the page, one typed into a form that came back kept), goes back to the instance's server, and
 * sends a test mail through whichever is in effect, saying which it went through. Notification mail is not the
 * portal's: it always goes through the instance's server.
 */

/** The words for a server of the portal's: the one in effect unless told which (a test mail's `through`). */
export function serverInEffect(view: PortalSmtpView, which = view.inEffect): string {
  if (which === 'portal') {
    return view.own
      ? `the portal's own server (${view.own.host}:${view.own.port})`
      : "the portal's own server";
  }
  return which === 'instance' ? "the instance's server" : 'no server';
}

/** The page's address for a portal (names are [A-Za-z0-9._-], encoded all the same). */
export const portalSmtpPath = (portal: string) => `/settings/portals/${encodeURIComponent(portal)}/smtp`;

/** Which server the portal's mail goes out through now, with the way to the instance's page when it is that. */
export function InEffect(props: { view: PortalSmtpView }) {
  const { view } = props;
  if (view.inEffect === 'portal') {
    return (
      <p id="smtp-in-effect">
        The replies, forwards and acknowledgements of portal {view.portal} go out through{' '}
        <strong>{serverInEffect(view)}</strong>.
      </p>
    );
  }
  if (view.inEffect === 'instance') {
    return (
      <p id="smtp-in-effect">
        Portal {view.portal} has no server of its own: its replies, forwards and acknowledgements go out
        through <a href="/settings/smtp">the instance's server</a>.
      </p>
    );
  }
  return (
    <p id="smtp-in-effect">
      Neither portal {view.portal} nor the instance has an outgoing server: its replies, forwards and
      acknowledgements wait in the outbox until one is set, here or{' '}
      <a href="/settings/smtp">the instance's server</a>.
    </p>
  );
}

export function mountPortalSmtpPages(
  ui: ConsoleApp,
  kit: ConsoleKit,
  deps: { portals: Pick<PortalsService, 'smtp'> },
): void {
  const page = async (
    c: Context,
    user: ConsoleUser,
    name: string,
    state: { form?: SmtpFormState; test?: TestOutcome; to?: string; toError?: string } = {},
    status = 200,
  ) => {
    // NOT_FOUND (no such portal) is the shell's 404 page, with its code
    const view = await deps.portals.smtp.get(name);
    const own = view.own;
    const path = portalSmtpPath(view.portal);
    const notice =
      c.req.query('saved') === '1'
        ? "The portal's outgoing server is saved."
        : c.req.query('cleared') === '1'
          ? "The portal has no server of its own any more: its mail goes through the instance's server."
          : undefined;
    const body = (
      <section>
        <p>
          <a href="/settings">Settings</a> ›{' '}
          <a href={`/settings/portals/${encodeURIComponent(view.portal)}`}>Portal {view.portal}</a>
        </p>
        <h1>Outgoing SMTP server of portal {view.portal}</h1>
        <InEffect view={view} />
        <p>
          Notification mail (error mails, connection failures, dropped attachments) always goes out through
          the instance's server.
        </p>
        <Message error={state.form?.message} notice={notice} />
        {own?.warnings.map((w) => (
          <p class="message notice">{w}</p>
        ))}
        {own?.auth === 'oauth2' ? (
          <OAuthServer
            current={own}
            setCommand={`mailintake portal smtp set ${view.portal} --file smtp.json`}
            authorizeCommand={`mailintake portal smtp authorize ${view.portal}`}
          />
        ) : (
          <SmtpForm
            user={user}
            action={path}
            title={own ? "The portal's own server" : 'Give the portal a server of its own'}
            current={own}
            state={state.form}
          />
        )}
        {own ? (
          <form method="post" action={`${path}/clear`} class="settings" aria-labelledby="clear-title">
            <h2 id="clear-title">Back to the instance's server</h2>
            <Csrf token={user.csrf} />
            <p>
              The portal's own server is removed; its mail goes out through the instance's server again, or
              waits in the outbox while the instance has none.
            </p>
            <button type="submit">Use the instance's server</button>
          </form>
        ) : null}
        <TestForm
          user={user}
          action={`${path}/test`}
          configured={view.inEffect !== 'none'}
          unconfigured="Set a server first, the portal's own or the instance's; then a test mail can be sent through it."
          outcome={state.test}
          to={state.to}
          error={state.toError}
        />
      </section>
    );
    return kit.render(c, `Outgoing SMTP server of portal ${view.portal}`, user, body, {
      current: '/settings',
      status,
    });
  };

  ui.get(
    '/settings/portals/:name/smtp',
    kit.page('admin', async (c, user) => page(c, user, c.req.param('name') ?? '')),
  );

  ui.post(
    '/settings/portals/:name/smtp',
    kit.formLimit,
    kit.page('admin', async (c, user, form) => {
      const name = c.req.param('name') ?? '';
      try {
        await deps.portals.smtp.set(name, smtpFromForm(form));
        return c.redirect(`${portalSmtpPath(name)}?saved=1`, 303);
      } catch (e) {
        const { message, fields } = fieldErrors(e);
        // what the admin typed comes back, their new password included (the stored one is never read)
        return page(c, user, name, { form: { values: form, errors: fields, message } }, 400);
      }
    }),
  );

  ui.post(
    '/settings/portals/:name/smtp/clear',
    kit.formLimit,
    kit.page('admin', async (c, _user) => {
      const name = c.req.param('name') ?? '';
      await deps.portals.smtp.clear(name);
      return c.redirect(`${portalSmtpPath(name)}?cleared=1`, 303);
    }),
  );

  ui.post(
    '/settings/portals/:name/smtp/test',
    kit.formLimit,
    kit.page('admin', async (c, user, form) => {
      const name = c.req.param('name') ?? '';
      // the server a failure was tried through: the one in effect as the test starts
      const before = await deps.portals.smtp.get(name);
      const { status, ...state } = await sendTestMailFrom(
        form,
        async (to) => {
          const { through, ...result } = await deps.portals.smtp.test(name, { to });
          return { result, through: serverInEffect(before, through) };
        },
        serverInEffect(before),
      );
      return page(c, user, name, state, status);
    }),
  );
}
