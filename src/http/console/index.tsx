import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { getCookie } from 'hono/cookie';
import type { Child } from 'hono/jsx';
import type { BlankEnv } from 'hono/types';
import type { Services } from '../../features/services.js';
import type {
  ConsoleKit,
  ConsoleUser,
  PageHandler,
  RenderOptions,
} from '../../features/shared/console-kit.js';
import { SetPasswordForm, SignInForm, UserList } from '../../features/users/pages.js';
import { withActor } from '../../kernel/actor.js';
import { isMailintakeError, MailintakeError } from '../../kernel/errors.js';
import { CONSOLE_MAX_FORM_BYTES, PASSWORD_MIN_CHARS, SESSION_MAX_AGE_MS } from '../../kernel/limits.js';
import { withoutNulChars } from '../../kernel/nul.js';
import { ErrorContent, Layout } from './layout.js';
import { mountFeaturePages } from './pages.js';
import {
  clearSessionCookie,
  clientAddress,
  LOGIN_CSRF_COOKIE,
  localPath,
  loginCsrf,
  sameOrigin,
  sameToken,
  securityHeaders,
  sessionToken,
  setSessionCookie,
} from './shell.js';

/**
 * The web console's shell, on the API's Hono app (paths outside /api/): sessions, CSRF, security headers, the
 * layout and the assets; and the people pages (sign-in, sign-out, set password, users). Pages call the same
 * services as the API and the CLI.
 */

/** HTTP status of a console page per code; anything else is 500 with a generic message. */
const PAGE_STATUS: Record<string, 400 | 401 | 403 | 404 | 409 | 429 | 503> = {
  INVALID_SETTINGS: 400,
  UNAUTHORIZED: 401,
  NOT_FOUND: 404,
  CONFLICT: 409,
  SIGN_IN_THROTTLED: 429,
  STORE_FAILED: 503,
};

/** The assets folder at the root of the package (src/http/console and dist/http/console are both 3 below). */
const ASSETS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../assets');
const CONTENT_TYPES: Record<string, string> = {
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
};

/**
 * The bell's unread count (the notifications are the help desk's, not per person). A failure to read it leaves
 * the bell without a number rather than failing the page.
 */
async function unreadFor(services: Services): Promise<number | null> {
  try {
    return (await services.notifications.unreadCount()).unread;
  } catch {
    return null;
  }
}

/** Marks the console's own "no such page", so that the API app goes on routing (e.g. /oauth/callback). */
const MISS_HEADER = 'x-mailintake-console-miss';

/**
 * Mounts the console on the API's app as one middleware in front of its 404: the console's pages are not API
 * routes (the OpenAPI document lists every route the app registers, and only API routes). /api/ is never the
 * console's; any other path the console does not know goes on to the API app's routes.
 */
export function mountConsole(app: Hono<BlankEnv>, services: Services): void {
  const ui = consoleApp(services);
  app.use('*', async (c, next) => {
    if (c.req.path.startsWith('/api/')) return next();
    const res = await ui.fetch(c.req.raw, c.env);
    if (res.headers.has(MISS_HEADER)) return next();
    return res;
  });
}

export function consoleApp(services: Services): Hono<BlankEnv> {
  const app = new Hono<BlankEnv>();
  app.notFound(() => new Response(null, { status: 404, headers: { [MISS_HEADER]: '1' } }));
  // read when a page is served: the app is also built from partial services (the OpenAPI document's tests)
  const publicUrl = (): string => services.users.publicUrl;
  const formLimit = bodyLimit({
    maxSize: CONSOLE_MAX_FORM_BYTES,
    onError: (c) => c.text('The form is too large.', 413),
  });

  /** A full page in the layout; the bell's unread count is read for a signed-in person. */
  const render = async (
    c: Context,
    title: string,
    user: ConsoleUser | null,
    body: Child,
    options: RenderOptions = {},
  ): Promise<Response> => {
    // the bell is the admins' (layout.tsx): nobody else's page asks for its count
    const unread = user?.role === 'admin' ? await unreadFor(services) : null;
    const html = await (
      <Layout title={title} user={user} current={options.current} scripts={options.scripts} unread={unread}>
        {body}
      </Layout>
    );
    return c.html(`<!DOCTYPE html>${html}`, (options.status ?? 200) as 200);
  };
  const refused = (c: Context, user: ConsoleUser | null, message: string) =>
    render(c, 'Not allowed', user, <ErrorContent status={403} code="UNAUTHORIZED" message={message} />, {
      status: 403,
    });

  /** Every page: headers, the session (redirect to /login without one), the role, the CSRF check on changes. */
  const page =
    (access: 'public' | 'user' | 'admin', handler: PageHandler<ConsoleUser | null>) => async (c: Context) => {
      securityHeaders(c);
      let user: ConsoleUser | null = null;
      try {
        const token = sessionToken(c);
        user = token ? await services.users.session(token) : null;
        if (access !== 'public' && !user) {
          const here = new URL(c.req.url);
          return c.redirect(`/login?next=${encodeURIComponent(here.pathname + here.search)}`, 303);
        }
        if (access === 'admin' && user?.role !== 'admin') return refused(c, user, 'This page is for admins.');
        let form: Record<string, string> = {};
        if (c.req.method === 'POST') {
          const body = await c.req.parseBody();
          form = Object.fromEntries(
            Object.entries(body)
              .filter((e): e is [string, string] => typeof e[1] === 'string')
              // a crafted form's NUL would be refused by PostgreSQL where it is stored (kernel/nul.ts)
              .map(([k, v]) => [k, withoutNulChars(v)]),
          );
          // before a session exists the token is the double-submit cookie's; after, the session's
          const expected = access === 'public' ? getCookie(c, LOGIN_CSRF_COOKIE) : user?.csrf;
          if (!sameOrigin(c) || !sameToken(form._csrf, expected)) {
            return refused(
              c,
              user,
              'The form was not sent from this site, or it is too old (the security token did not match). Open the page again and resend it.',
            );
          }
        }
        const signedIn = user;
        return signedIn
          ? await withActor(`user:${signedIn.email}`, () => handler(c, signedIn, form))
          : await handler(c, null, form);
      } catch (e) {
        const err = isMailintakeError(e) ? e : null;
        const status = err ? (PAGE_STATUS[err.code] ?? 500) : 500;
        if (status === 500)
          console.error(
            JSON.stringify({
              level: 'error',
              msg: 'console page failed',
              path: c.req.path,
              error: e instanceof Error ? e.stack : String(e),
            }),
          );
        if (status === 503) c.header('Retry-After', '30');
        const code = status === 500 ? 'INTERNAL' : (err as MailintakeError).code;
        const message =
          status === 500
            ? 'An unexpected error occurred; the server log has the details.'
            : (err as MailintakeError).message;
        return render(c, 'Error', user, <ErrorContent status={status} code={code} message={message} />, {
          status,
        });
      }
    };

  const kit: ConsoleKit = {
    page: page as ConsoleKit['page'],
    render,
    refused,
    formLimit,
    publicUrl,
  };

  app.get(
    '/',
    page('public', async (c, user) => c.redirect(user ? '/requests' : '/login', 303)),
  );

  app.get(
    '/login',
    page('public', async (c, user) => {
      const next = localPath(c.req.query('next'));
      if (user) return c.redirect(next, 303);
      const notice =
        c.req.query('done') === 'password' ? 'Your password is set. Sign in with it.' : undefined;
      return render(
        c,
        'Sign in',
        null,
        <SignInForm csrf={loginCsrf(c, publicUrl())} next={next} notice={notice} />,
      );
    }),
  );
  app.post(
    '/login',
    formLimit,
    page('public', async (c, _user, form) => {
      const next = localPath(form.next);
      const email = form.email ?? '';
      try {
        const { token } = await services.users.signIn({
          email,
          password: form.password ?? '',
          address: clientAddress(c),
        });
        setSessionCookie(c, publicUrl(), token, SESSION_MAX_AGE_MS);
        return c.redirect(next, 303);
      } catch (e) {
        if (!isMailintakeError(e) || (e.code !== 'UNAUTHORIZED' && e.code !== 'SIGN_IN_THROTTLED')) throw e;
        const retry = e.details.retryAfterSeconds;
        if (typeof retry === 'number') c.header('Retry-After', String(retry));
        const form = (
          <SignInForm csrf={loginCsrf(c, publicUrl())} next={next} email={email} error={e.message} />
        );
        return render(c, 'Sign in', null, form, { status: e.code === 'SIGN_IN_THROTTLED' ? 429 : 401 });
      }
    }),
  );

  app.post(
    '/logout',
    formLimit,
    page('user', async (c) => {
      const token = sessionToken(c);
      if (token) await services.users.signOut(token);
      clearSessionCookie(c, publicUrl());
      return c.redirect('/login', 303);
    }),
  );

  app.get(
    '/set-password',
    page('public', async (c, user) => {
      const token = c.req.query('token') ?? '';
      const { email } = await services.users.linkFor(token);
      const form = (
        <SetPasswordForm
          csrf={loginCsrf(c, publicUrl())}
          token={token}
          email={email}
          minLength={PASSWORD_MIN_CHARS}
        />
      );
      return render(c, 'Set your password', user, form);
    }),
  );
  app.post(
    '/set-password',
    formLimit,
    page('public', async (c, user, form) => {
      const token = form.token ?? '';
      const { email } = await services.users.linkFor(token);
      try {
        if ((form.password ?? '') !== (form.confirm ?? '')) {
          throw new MailintakeError('INVALID_SETTINGS', 'The two passwords differ. Type the same one twice.');
        }
        await withActor(`user:${email}`, () => services.users.setPassword(token, form.password ?? ''));
        return c.redirect('/login?done=password', 303);
      } catch (e) {
        if (!isMailintakeError(e) || e.code !== 'INVALID_SETTINGS') throw e;
        const again = (
          <SetPasswordForm
            csrf={loginCsrf(c, publicUrl())}
            token={token}
            email={email}
            minLength={PASSWORD_MIN_CHARS}
            error={e.message}
          />
        );
        return render(c, 'Set your password', user, again, { status: 400 });
      }
    }),
  );

  app.get(
    '/users',
    page('admin', async (c, user) =>
      render(c, 'Users', user, <UserList users={await services.users.list()} />, { current: '/users' }),
    ),
  );

  mountFeaturePages(app, kit, services);
  mountAssets(app);
  return app;
}

/** The files of the assets folder, by exact name (no paths): read once, served with their type and nosniff. */
function mountAssets(app: Hono<BlankEnv>): void {
  const files = new Map<string, { body: Buffer; type: string }>();
  for (const name of readdirSync(ASSETS_DIR)) {
    const type = CONTENT_TYPES[path.extname(name)];
    if (type) files.set(name, { body: readFileSync(path.join(ASSETS_DIR, name)), type });
  }
  app.get('/assets/:name', (c) => {
    const file = files.get(c.req.param('name'));
    securityHeaders(c);
    if (!file) return c.text('Not found', 404);
    c.header('Content-Type', file.type);
    return c.body(new Uint8Array(file.body), 200);
  });
}
