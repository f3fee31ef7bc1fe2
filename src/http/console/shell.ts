import crypto from 'node:crypto';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';

/**
 * The console shell's plumbing: security headers, the session and double-submit cookies, the CSRF check and
 * the `next` redirect target. No page content here (layout.tsx) and no rules about people (features/users).
 */

export const SESSION_COOKIE = 'mi_session';
/** The double-submit token of the forms shown before a session exists (sign-in, set password). */
export const LOGIN_CSRF_COOKIE = 'mi_csrf';

/** connect-src 'self': page scripts may ask this site for small JSON answers (e.g. an OAuth token state). */
export const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; " +
  "frame-ancestors 'none'; base-uri 'none'; frame-src 'self'";

/** On every console answer: pages hold personal data (never cached), nothing runs that is not ours. */
export function securityHeaders(c: Context): void {
  c.header('Content-Security-Policy', CSP);
  c.header('X-Content-Type-Options', 'nosniff');
  c.header('Referrer-Policy', 'same-origin');
  c.header('Cache-Control', 'no-store');
}

/** Secure cookies when the browser came over https, or the installation is published as https (a proxy). */
function secure(c: Context, publicUrl: string): boolean {
  return new URL(c.req.url).protocol === 'https:' || publicUrl.startsWith('https:');
}

const cookieOptions = (c: Context, publicUrl: string) =>
  ({ httpOnly: true, sameSite: 'Lax', path: '/', secure: secure(c, publicUrl) }) as const;

export function sessionToken(c: Context): string | undefined {
  return getCookie(c, SESSION_COOKIE);
}

export function setSessionCookie(c: Context, publicUrl: string, token: string, maxAgeMs: number): void {
  setCookie(c, SESSION_COOKIE, token, {
    ...cookieOptions(c, publicUrl),
    maxAge: Math.floor(maxAgeMs / 1000),
  });
}

export function clearSessionCookie(c: Context, publicUrl: string): void {
  deleteCookie(c, SESSION_COOKIE, cookieOptions(c, publicUrl));
}

/** The double-submit token for a form without a session: the cookie's when it has one, else a new one. */
export function loginCsrf(c: Context, publicUrl: string): string {
  const existing = getCookie(c, LOGIN_CSRF_COOKIE);
  if (existing && /^[A-Za-z0-9_-]{43}$/.test(existing)) return existing;
  const token = crypto.randomBytes(32).toString('base64url');
  setCookie(c, LOGIN_CSRF_COOKIE, token, cookieOptions(c, publicUrl));
  return token;
}

export function sameToken(a: string | undefined, b: string | undefined): boolean {
  if (!a || !b) return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}

/** A browser that says where the form came from must say it came from here (the token is checked as well). */
export function sameOrigin(c: Context): boolean {
  const origin = c.req.header('origin');
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === (c.req.header('host') ?? new URL(c.req.url).host);
  } catch {
    return false;
  }
}

/** Where to go after sign-in: a path of this site only (never `//host` or a URL), else the requests. */
export function localPath(next: string | undefined): string {
  if (!next || next.length > 2000 || !next.startsWith('/') || next.startsWith('//') || /[\\\s]/.test(next)) {
    return '/requests';
  }
  return next;
}

/** The peer's address (the throttle's key); behind a proxy it is the proxy's, which still slows a guesser. */
export function clientAddress(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? 'unknown';
  } catch {
    return 'unknown';
  }
}
