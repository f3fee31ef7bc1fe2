import type { ConsoleApp, ConsoleKit, ConsoleUser } from '../shared/console-kit.js';
import { Csrf, Message, Pager } from '../shared/console-ui.js';
import type { NotificationServices, NotificationView } from './service.js';

/**
 * The bell's page, `/notifications` (admins: the reference sends bell notifications to SDAdmins, and there is
 * one bell list per instance): unread first, then the rest, newest first within each, paged; each entry links
 * to the page it speaks of; mark one read, or all. The layout's bell shows the unread count.
 */

const PAGE_SIZE = 25;

export function mountNotificationPages(
  ui: ConsoleApp,
  kit: ConsoleKit,
  deps: Pick<NotificationServices, 'notifications'>,
): void {
  const { notifications } = deps;

  ui.get(
    '/notifications',
    kit.page('admin', async (c, user) => {
      const show = c.req.query('show') === 'all' ? 'all' : 'unread';
      const offset = Math.max(0, Number.parseInt(c.req.query('offset') ?? '0', 10) || 0);
      const list = await notifications.list({
        ...(show === 'unread' ? { unread: true } : {}),
        limit: PAGE_SIZE,
        offset,
      });
      const unread = (await notifications.unreadCount()).unread;
      const href = (o: number) => `/notifications?show=${show}${o > 0 ? `&offset=${o}` : ''}`;
      const notice = c.req.query('marked');
      return kit.render(
        c,
        'Notifications',
        user,
        <NotificationList
          user={user}
          show={show}
          unread={unread}
          items={list.items}
          back={href(offset)}
          notice={notice ? `${notice} marked read.` : undefined}
          pager={<Pager offset={list.offset} limit={list.limit} total={list.total} href={href} />}
        />,
        { current: '/notifications' },
      );
    }),
  );

  ui.post(
    '/notifications/:id{[0-9]{1,12}}/read',
    kit.formLimit,
    kit.page('admin', async (c, _user, form) => {
      await notifications.markRead(Number(c.req.param('id')));
      return c.redirect(`${back(form.back)}&marked=1`, 303);
    }),
  );
  ui.post(
    '/notifications/read-all',
    kit.formLimit,
    kit.page('admin', async (c, _user, form) => {
      const { marked } = await notifications.markAllRead();
      return c.redirect(`${back(form.back)}&marked=${marked}`, 303);
    }),
  );
}

/** Back to the list shown (only this page's own addresses); always with a query, so `&` can follow. */
function back(value: string | undefined): string {
  return value && /^\/notifications\?show=(all|unread)(&offset=\d+)?$/.test(value)
    ? value
    : '/notifications?show=unread';
}

const when = (iso: string) => iso.slice(0, 16).replace('T', ' ');

function NotificationList(props: {
  user: ConsoleUser;
  show: 'all' | 'unread';
  unread: number;
  items: NotificationView[];
  back: string;
  notice: string | undefined;
  pager: unknown;
}) {
  return (
    <section>
      <h1>Notifications</h1>
      <Message notice={props.notice} />
      <p>
        {props.unread} unread.{' '}
        {props.show === 'unread' ? (
          <a href="/notifications?show=all">Show all notifications, read ones too</a>
        ) : (
          <a href="/notifications?show=unread">Show unread only</a>
        )}
      </p>
      {props.unread > 0 ? (
        <form method="post" action="/notifications/read-all">
          <Csrf token={props.user.csrf} />
          <input type="hidden" name="back" value={props.back} />
          <button type="submit">Mark all read</button>
        </form>
      ) : null}
      {props.items.length === 0 ? (
        <p>{props.show === 'unread' ? 'No unread notifications.' : 'No notifications yet.'}</p>
      ) : (
        <ul class="notifications">
          {props.items.map((n) => (
            <li class={n.readAt ? 'read' : 'unread'}>
              <h2>
                {n.link ? <a href={n.link}>{n.title}</a> : n.title}
                {n.readAt ? null : <span class="badge">unread</span>}
              </h2>
              <p class="meta">
                <time datetime={n.createdAt}>{when(n.createdAt)}</time> · {n.event}
                {n.mailbox ? ` · mailbox ${n.mailbox}` : ''}
                {n.portal ? ` · portal ${n.portal}` : ''}
              </p>
              <pre class="body">{n.body}</pre>
              {n.readAt ? null : (
                <form method="post" action={`/notifications/${n.id}/read`}>
                  <Csrf token={props.user.csrf} />
                  <input type="hidden" name="back" value={props.back} />
                  <button type="submit" aria-label={`Mark read: ${n.title}`}>
                    Mark read
                  </button>
                </form>
              )}
            </li>
          ))}
        </ul>
      )}
      {props.pager}
    </section>
  );
}
