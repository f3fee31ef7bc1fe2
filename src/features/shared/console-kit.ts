import type { Context, Hono, MiddlewareHandler } from 'hono';
import type { Child } from 'hono/jsx';
import type { BlankEnv } from 'hono/types';
import { isMailintakeError, MailintakeError } from '../../kernel/errors.js';

/**
 * What a feature's console pages (features/<name>/pages.tsx) get from the console's shell (src/http/console):
 * the session, the role check, CSRF, the layout and the error page. A feature exports
 * `mount<Name>Pages(ui, kit, <the service slices it uses>)` and registers plain GET and POST routes on `ui`,
 * each wrapped in `kit.page(access, handler)`. Pages call the same services as the API and the CLI.
 */

/** The signed-in person a console page acts for. */
export interface ConsoleUser {
  id: number;
  email: string;
  role: 'admin' | 'technician';
  /** The technician's portal name (null for admins): the requests a technician sees are this portal's. */
  portal: string | null;
  /** The session's CSRF token: every form of the page carries it as `_csrf`. */
  csrf: string;
}

/** Who may open a page: anyone, any signed-in person, or admins only. */
export type Access = 'public' | 'user' | 'admin';

/** A page's handler: the signed-in person (null only on public pages) and, on POST, the form's string fields. */
export type PageHandler<U extends ConsoleUser | null = ConsoleUser> = (
  c: Context,
  user: U,
  form: Record<string, string>,
) => Promise<Response>;

export interface RenderOptions {
  /** HTTP status, 200 unless told. */
  status?: number;
  /** The navigation entry to mark as the current page (a stable path: '/mailboxes', '/requests', ...). */
  current?: string;
  /** Script files of the assets folder this page loads (e.g. 'mailboxes.js'): never inline scripts (CSP). */
  scripts?: string[];
}

export interface ConsoleKit {
  /** Wraps a handler: security headers, session (redirect to /login), role, CSRF on POST, actor, error page. */
  page(access: 'public', handler: PageHandler<ConsoleUser | null>): (c: Context) => Promise<Response>;
  page(access: 'user' | 'admin', handler: PageHandler): (c: Context) => Promise<Response>;
  /** A full page in the layout. */
  render(
    c: Context,
    title: string,
    user: ConsoleUser | null,
    body: Child,
    options?: RenderOptions,
  ): Promise<Response>;
  /** The 403 page. */
  refused(c: Context, user: ConsoleUser | null, message: string): Promise<Response>;
  /** Body limit for POST forms. */
  formLimit: MiddlewareHandler;
  /** MAILINTAKE_PUBLIC_URL (or the derived one): the base of links in notifications and mails. */
  publicUrl(): string;
}

/** The console's own Hono app that pages are registered on. */
export type ConsoleApp = Hono<BlankEnv>;

/**
 * The portal a person's request pages are scoped to: null (every portal) for admins, the technician's own
 * portal otherwise. A technician without a portal sees nothing: UNAUTHORIZED.
 */
export function portalScope(user: ConsoleUser): string | null {
  if (user.role === 'admin') return null;
  if (!user.portal)
    throw new MailintakeError('UNAUTHORIZED', 'Your account has no portal. Ask an admin to set one.');
  return user.portal;
}

/**
 * The per-field messages of an INVALID_SETTINGS error (details.fields), by field name, for marking each bad field
 * beside it. Any other error is rethrown (the shell's error page shows it).
 */
export function fieldErrors(e: unknown): { message: string; fields: Record<string, string> } {
  if (!isMailintakeError(e) || e.code !== 'INVALID_SETTINGS') throw e;
  const fields: Record<string, string> = {};
  const list = (e.details as { fields?: { field: string; message: string }[] }).fields ?? [];
  for (const f of list) fields[f.field] ??= f.message;
  return { message: e.message, fields };
}
