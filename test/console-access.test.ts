import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Services } from '../src/features/services.js';
import { consoleApp } from '../src/http/console/index.js';
import { cli, freePort, serve } from './support/console.js';
import { ENGINES, freshConfig } from './support/engines.js';

/**
 * Every route of the console, whichever feature adds it, against a real `mailintake serve` on both engines: a
 * change (POST) without the session's CSRF token, or from another origin, is refused 403, for an admin and a
 * technician alike; a technician is refused every admin page and change; nobody signed in is sent to /login.
 * The routes are read from the console's app itself, so a page added later is covered without touching this
 * file, and a route whose access is not declared below fails the test until it is.
 */
type Access = 'public' | 'user' | 'admin';
const ACCESS: [RegExp, Access][] = [
  [/^\/$/, 'public'],
  [/^\/login$/, 'public'],
  [/^\/set-password$/, 'public'],
  [/^\/logout$/, 'user'],
  [/^\/requests(\/|$)/, 'user'],
  [/^\/error-mails(\/|$)/, 'user'],
  // the bell is the admins' (the reference: SDAdmins get bell notifications, technicians mails)
  [/^\/notifications(\/|$)/, 'admin'],
  [/^\/mailboxes(\/|$)/, 'admin'],
  [/^\/system-log(\/|$)/, 'admin'],
  [/^\/settings(\/|$)/, 'admin'],
  [/^\/users(\/|$)/, 'admin'],
];
/** Served to anyone by design: the stylesheet and page scripts. */
const UNGUARDED = new Set(['/assets/:name']);

const accessOf = (path: string): Access | undefined => ACCESS.find(([re]) => re.test(path))?.[1];

/** Services that are never called: the console's app is built only to list its routes. */
function listingOnly(): Services {
  const handler: ProxyHandler<object> = {
    get: (_t, key) => (key === 'then' ? undefined : new Proxy(() => undefined, handler)),
  };
  return new Proxy({}, handler) as Services;
}

function consoleRoutes(): { method: string; path: string }[] {
  const seen = new Set<string>();
  return consoleApp(listingOnly())
    .routes.filter((r) => r.method === 'GET' || r.method === 'POST')
    .filter((r) => !UNGUARDED.has(r.path))
    .filter((r) => {
      const key = `${r.method} ${r.path}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    })
    .map((r) => ({ method: r.method, path: r.path }));
}

/** A concrete path for a route pattern: every parameter filled with something plausible. */
const concrete = (pattern: string): string =>
  pattern.replace(/:([A-Za-z]+)(\{(?:[^{}]|\{[^{}]*\})*\})?/g, (_m, name: string) =>
    /id$/i.test(name) ? '1' : 'support',
  );

const cookieOf = (res: Response, name: string): string | undefined =>
  res.headers
    .getSetCookie()
    .map((c) => c.split(';')[0]!)
    .find((c) => c.startsWith(`${name}=`));

/** Signs in through the form, as a browser would: the login CSRF cookie and token, then the session cookie. */
async function signIn(url: string, email: string, password: string): Promise<string> {
  const form = await fetch(`${url}/login`);
  const csrfCookie = cookieOf(form, 'mi_csrf');
  const token = /name="_csrf" value="([^"]+)"/.exec(await form.text())?.[1];
  expect(csrfCookie && token).toBeTruthy();
  const res = await fetch(`${url}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: csrfCookie!, origin: url, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ _csrf: token!, email, password, next: '/requests' }),
  });
  expect(res.status).toBe(303);
  const session = cookieOf(res, 'mi_session');
  expect(session).toBeTruthy();
  return session!;
}

/** The CSRF token of a signed-in session: every page's sign-out form carries it. */
async function sessionToken(url: string, cookie: string): Promise<string> {
  const page = await (await fetch(`${url}/requests`, { headers: { cookie } })).text();
  const token = /name="_csrf" value="([^"]+)"/.exec(page)?.[1];
  expect(token).toBeTruthy();
  return token!;
}

const post = (
  url: string,
  path: string,
  cookie: string | null,
  fields: Record<string, string>,
  origin = url,
) =>
  fetch(`${url}${path}`, {
    method: 'POST',
    redirect: 'manual',
    headers: {
      ...(cookie ? { cookie } : {}),
      origin,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams(fields),
  });

describe('the console declares who may use each route', () => {
  it('every GET and POST route has a declared access', () => {
    const routes = consoleRoutes();
    expect(routes.length).toBeGreaterThan(5);
    const undeclared = routes
      .filter((r) => accessOf(r.path) === undefined)
      .map((r) => `${r.method} ${r.path}`);
    expect(undeclared, 'declare these in ACCESS').toEqual([]);
  });
});

describe.each(ENGINES)('every console route refuses what it must (%s)', (engine) => {
  let fresh: Awaited<ReturnType<typeof freshConfig>>;
  let server: Awaited<ReturnType<typeof serve>>;
  let url: string;
  let admin: string;
  let tech: string;
  const routes = consoleRoutes();
  const posts = routes.filter((r) => r.method === 'POST');

  beforeAll(async () => {
    const port = await freePort();
    fresh = await freshConfig(engine);
    url = `http://127.0.0.1:${port}`;
    const env = { ...process.env, ...fresh.env, MAILINTAKE_PORT: String(port), MAILINTAKE_PUBLIC_URL: url };
    for (const [email, role] of [
      ['admin@example.org', 'admin'],
      ['tech@example.org', 'technician'],
    ] as const) {
      const made = await cli(
        env,
        [
          'user',
          'create',
          '--email',
          email,
          '--role',
          role,
          ...(role === 'technician' ? ['--portal', 'default'] : []),
        ],
        'a long enough passphrase\n',
      );
      expect(made, made.err).toMatchObject({ code: 0 });
    }
    server = await serve(env);
    admin = await signIn(url, 'admin@example.org', 'a long enough passphrase');
    tech = await signIn(url, 'tech@example.org', 'a long enough passphrase');
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
    await fresh?.cleanup();
  });

  it('a change without the token, with a wrong one, or from another origin is refused 403, for anyone', async () => {
    const adminToken = await sessionToken(url, admin);
    for (const r of posts) {
      const where = concrete(r.path);
      for (const cookie of [admin, tech]) {
        const none = await post(url, where, cookie, {});
        expect(none.status, `POST ${where} without a token`).toBe(403);
        const wrong = await post(url, where, cookie, { _csrf: 'x'.repeat(43) });
        expect(wrong.status, `POST ${where} with a wrong token`).toBe(403);
      }
      const foreign = await post(url, where, admin, { _csrf: adminToken }, 'http://evil.example');
      expect(foreign.status, `POST ${where} from another origin`).toBe(403);
    }
  });

  it('a technician is refused every admin page and change, even with the right token', async () => {
    const techToken = await sessionToken(url, tech);
    for (const r of routes.filter((x) => accessOf(x.path) === 'admin')) {
      const where = concrete(r.path);
      const res =
        r.method === 'GET'
          ? await fetch(`${url}${where}`, { headers: { cookie: tech }, redirect: 'manual' })
          : await post(url, where, tech, { _csrf: techToken });
      expect(res.status, `${r.method} ${where} as a technician`).toBe(403);
    }
  });

  it('nobody signed in is sent to sign in from every page that needs a person', async () => {
    for (const r of routes.filter((x) => x.method === 'GET' && accessOf(x.path) !== 'public')) {
      const where = concrete(r.path);
      const res = await fetch(`${url}${where}`, { redirect: 'manual' });
      expect(res.status, `GET ${where}`).toBe(303);
      expect(res.headers.get('location')).toBe(`/login?next=${encodeURIComponent(where)}`);
    }
  });
});
