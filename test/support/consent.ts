/**
 * A scripted browser for the consent step at the test authorization server (oauth-server.ts): follows
 * redirects by hand with a per-origin cookie jar (like shared/reference/dovecot-rig/oauth-client.mjs), shows
 * up at the login form, signs in, answers the consent page, and stops at the first redirect that leaves the
 * authorization server: the client's redirect URL with ?code=&state= or ?error=access_denied.
 *
 * The start URL may also be a client page that redirects to the authorization server (say, the app's
 * "connect" link): redirects are followed until the browser reaches the server given as `authorizationServer`
 * (default: the start URL's origin), and cookies set on the way are kept for the callback.
 *
 * The forms are read from the pages (method, action, field names), not guessed from URLs.
 */

export interface RunConsentOptions {
  user: string;
  password: string;
  decision: 'approve' | 'deny';
  /** Also GET the callback URL (with the cookies the browser holds for it) and return its answer. */
  followCallback?: boolean;
  /** Origin or URL of the authorization server, when the start URL is a client page. */
  authorizationServer?: string;
}

export type ConsentResult =
  | {
      /** The client's redirect URL as the authorization server sent it (code/state or error). */
      callbackUrl: string;
      /** With followCallback: the client's answer to the callback (not followed further). */
      status?: number;
      body?: string;
      location?: string;
      providerError?: undefined;
    }
  | {
      /**
       * The authorization server showed a page instead of redirecting to the client: an error page (e.g. an
       * unregistered redirect_uri, an unknown client) or the login form again after a wrong password (401).
       */
      providerError: { status: number; body: string; url: string };
      callbackUrl?: undefined;
    };

interface Form {
  method: string;
  action: string;
  fields: Map<string, string>;
  hasPassword: boolean;
  buttons: { name: string; value: string }[];
}

const attr = (tag: string, name: string): string | undefined => {
  const m = new RegExp(`\\s${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)'|([^\\s>]+))`, 'i').exec(tag);
  const raw = m ? (m[1] ?? m[2] ?? m[3]) : undefined;
  return raw === undefined ? undefined : decodeEntities(raw);
};

function decodeEntities(s: string): string {
  return s.replace(/&(amp|lt|gt|quot|#39);/g, (_, e: string) =>
    e === 'amp' ? '&' : e === 'lt' ? '<' : e === 'gt' ? '>' : e === 'quot' ? '"' : "'",
  );
}

/** The first <form> of a page, with its inputs and submit buttons. */
function readForm(html: string): Form | null {
  const m = /<form\b([^>]*)>([\s\S]*?)<\/form>/i.exec(html);
  if (!m) return null;
  const [, formAttrs = '', inner = ''] = m;
  const fields = new Map<string, string>();
  let hasPassword = false;
  for (const [tag] of inner.matchAll(/<input\b[^>]*>/gi)) {
    const name = attr(tag, 'name');
    if (!name) continue;
    if ((attr(tag, 'type') ?? '').toLowerCase() === 'password') hasPassword = true;
    fields.set(name, attr(tag, 'value') ?? '');
  }
  const buttons: Form['buttons'] = [];
  for (const [tag] of inner.matchAll(/<button\b[^>]*>/gi)) {
    const name = attr(tag, 'name');
    if (name) buttons.push({ name, value: attr(tag, 'value') ?? '' });
  }
  return {
    method: (attr(` ${formAttrs}`, 'method') ?? 'get').toLowerCase(),
    action: attr(` ${formAttrs}`, 'action') ?? '',
    fields,
    hasPassword,
    buttons,
  };
}

function cookieJar() {
  const byOrigin = new Map<string, Map<string, string>>();
  return {
    header(url: URL): string {
      return [...(byOrigin.get(url.origin) ?? [])].map(([k, v]) => `${k}=${v}`).join('; ');
    },
    take(url: URL, res: Response): void {
      const jar = byOrigin.get(url.origin) ?? new Map<string, string>();
      byOrigin.set(url.origin, jar);
      for (const line of res.headers.getSetCookie()) {
        const [kv = '', ...attrs] = line.split(';');
        const i = kv.indexOf('=');
        if (i <= 0) continue;
        const name = kv.slice(0, i).trim();
        const expired = attrs.some((a) => {
          const [k = '', v = ''] = a.trim().split('=');
          if (k.toLowerCase() === 'max-age') return Number(v) <= 0;
          if (k.toLowerCase() === 'expires') return Date.parse(a.trim().slice(8)) <= Date.now();
          return false;
        });
        if (expired) jar.delete(name);
        else jar.set(name, kv.slice(i + 1).trim());
      }
    },
  };
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export async function runConsent(startUrl: string, opts: RunConsentOptions): Promise<ConsentResult> {
  const jar = cookieJar();
  const asOrigin = new URL(opts.authorizationServer ?? startUrl).origin;

  const request = async (url: URL, init: { method?: string; body?: string } = {}) => {
    const headers: Record<string, string> = { accept: 'text/html' };
    const cookie = jar.header(url);
    if (cookie) headers.cookie = cookie;
    if (init.body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await fetch(url, {
      method: init.method ?? 'GET',
      headers,
      body: init.body,
      redirect: 'manual',
    });
    jar.take(url, res);
    return res;
  };

  let url = new URL(startUrl);
  let res = await request(url);
  let onServer = url.origin === asOrigin;
  let loggedIn = false;
  let decided = false;

  for (let step = 0; step < 30; step++) {
    const location = res.headers.get('location');
    if (REDIRECTS.has(res.status) && location) {
      await res.body?.cancel();
      const next = new URL(location, url);
      if (onServer && next.origin !== asOrigin) return callback(next);
      url = next;
      onServer ||= url.origin === asOrigin;
      res = await request(url);
      continue;
    }

    const body = await res.text();
    const providerError = { providerError: { status: res.status, body, url: url.toString() } };
    if (!onServer || res.status !== 200) return providerError;
    const form = readForm(body);
    if (form?.method !== 'post') return providerError;

    const fields = new URLSearchParams([...form.fields]);
    if (form.hasPassword) {
      if (loggedIn) return providerError; // the login form again: refused
      loggedIn = true;
      fields.set('login', opts.user);
      fields.set('password', opts.password);
    } else {
      const button = form.buttons.find((b) => b.value === opts.decision);
      if (!button || decided) return providerError;
      decided = true;
      fields.set(button.name, button.value);
    }
    url = new URL(form.action, url);
    res = await request(url, { method: 'POST', body: fields.toString() });
    // a refused login answers with the form again (HTTP 401): report that page
    if (res.status >= 400) {
      return { providerError: { status: res.status, body: await res.text(), url: url.toString() } };
    }
  }
  throw new Error(`runConsent: no redirect to the client after 30 steps (last ${url})`);

  async function callback(target: URL): Promise<ConsentResult> {
    const callbackUrl = target.toString();
    if (!opts.followCallback) return { callbackUrl };
    const answer = await request(target);
    const location = answer.headers.get('location');
    return {
      callbackUrl,
      status: answer.status,
      body: await answer.text(),
      ...(location ? { location: new URL(location, target).toString() } : {}),
    };
  }
}
