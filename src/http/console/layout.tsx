import type { Child } from 'hono/jsx';
import type { SessionUser } from '../../features/users/views.js';

/** The console's navigation: the stable paths that notifications and mails link to. */
const NAV: { path: string; label: string; admin: boolean }[] = [
  { path: '/requests', label: 'Requests', admin: false },
  { path: '/mailboxes', label: 'Mailboxes', admin: true },
  { path: '/error-mails', label: 'Error folder', admin: false },
  { path: '/system-log', label: 'System log', admin: true },
  { path: '/settings', label: 'Settings', admin: true },
  { path: '/users', label: 'Users', admin: true },
];

/** Every console page: the header (product, navigation, who is signed in, sign-out) and the main content. */
export function Layout(props: {
  title: string;
  user: SessionUser | null;
  current?: string | undefined;
  /** Files of the assets folder to load as scripts (deferred; the CSP allows no inline script). */
  scripts?: string[] | undefined;
  /** The bell's unread count; null when it could not be read. */
  unread?: number | null;
  children: Child;
}) {
  const { user } = props;
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} · Mailintake`}</title>
        <link rel="stylesheet" href="/assets/console.css" />
        {/* named, so that browsers do not ask for /favicon.ico (a 404 in every page's console) */}
        <link rel="icon" href="/assets/favicon.svg" type="image/svg+xml" />
        {(props.scripts ?? []).map((name) => (
          <script src={`/assets/${name}`} defer />
        ))}
      </head>
      <body>
        <a class="skip" href="#main">
          Skip to content
        </a>
        <header class="top">
          <span class="product">Mailintake</span>
          {user ? (
            <nav aria-label="Main">
              <ul>
                {NAV.filter((n) => !n.admin || user.role === 'admin').map((n) => (
                  <li>
                    <a href={n.path} aria-current={props.current === n.path ? 'page' : undefined}>
                      {n.label}
                    </a>
                  </li>
                ))}
              </ul>
            </nav>
          ) : null}
          {/* bell notifications are the admins' (the reference: SDAdmins get the bell, technicians email) */}
          {user?.role === 'admin' ? (
            <a
              class="bell"
              href="/notifications"
              aria-current={props.current === '/notifications' ? 'page' : undefined}
              aria-label={props.unread ? `Notifications, ${props.unread} unread` : 'Notifications'}
            >
              <svg aria-hidden="true" viewBox="0 0 24 24" width="22" height="22" focusable="false">
                <path
                  fill="currentColor"
                  d="M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22Zm7-6V11a7 7 0 0 0-5.5-6.84V3a1.5 1.5 0 0 0-3 0v1.16A7 7 0 0 0 5 11v5l-2 2v1h18v-1Z"
                />
              </svg>
              {props.unread ? <span class="count">{props.unread > 99 ? '99+' : props.unread}</span> : null}
            </a>
          ) : null}
          {user ? (
            <form method="post" action="/logout" class="who">
              <span>
                {user.email} ({user.role}
                {user.portal ? `, ${user.portal}` : ''})
              </span>
              <input type="hidden" name="_csrf" value={user.csrf} />
              <button type="submit">Sign out</button>
            </form>
          ) : null}
        </header>
        <main id="main">{props.children}</main>
      </body>
    </html>
  );
}

/** A refused or failed page: the code (the same codes as the API's and the CLI's) and what to do. */
export function ErrorContent(props: { status: number; code: string; message: string }) {
  return (
    <section class="narrow">
      <h1>
        {props.status === 403 ? 'Not allowed' : props.status === 404 ? 'Not found' : 'Something went wrong'}
      </h1>
      <p class="message error" role="alert">
        <code>{props.code}</code> {props.message}
      </p>
      <p>
        <a href="/">Back to the start page</a>
      </p>
    </section>
  );
}
