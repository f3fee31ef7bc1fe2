import type { Context } from 'hono';
import type { ErrorReport } from '../../intake/error-folder.js';
import { isMailintakeError } from '../../kernel/errors.js';
import type { MailboxesService } from '../mailboxes/service.js';
import { type ConsoleApp, type ConsoleKit, type ConsoleUser, portalScope } from '../shared/console-kit.js';
import { Csrf, Message, Pager } from '../shared/console-ui.js';
import type { ErrorMailsService } from './service.js';
import type { ErrorMailView, MoveToInboxResult } from './views.js';

/**
 * The error folder in the console (the reference's "Move messages to error folder"): `/error-mails`, every
 * error mail with its reason, date and mailbox, filtered by mailbox and status, paged; `/error-mails/{id}`, the
 * decrypted report (admins only: it holds the customer's personal data); and "move mails to inbox" for the
 * mails ticked, or for every mail of a mailbox. A technician sees the list of their portal's error mails only.
 */

const PAGE_SIZE = 25;
/** Each check box has a name of its own: the shell hands pages one value per field name. */
const PICK = /^pick-(\d{1,12})$/;

interface Deps {
  errorMails: ErrorMailsService;
  mailboxes: Pick<MailboxesService, 'list'>;
}

export function mountErrorMailPages(ui: ConsoleApp, kit: ConsoleKit, deps: Deps): void {
  const listPage = async (
    c: Context,
    user: ConsoleUser,
    message: { error?: string; notice?: string } = {},
    status = 200,
  ) => {
    const portal = portalScope(user);
    const mailbox = c.req.query('mailbox') || undefined;
    const state = c.req.query('status') || undefined;
    const offset = Math.max(0, Number.parseInt(c.req.query('offset') ?? '0', 10) || 0);
    const list = await deps.errorMails.list({
      ...(mailbox ? { mailbox } : {}),
      ...(portal ? { portal } : {}),
      ...(state === 'in-error-folder' || state === 'moved-to-inbox' ? { status: state } : {}),
      limit: PAGE_SIZE,
      offset,
    });
    const mailboxes = (await deps.mailboxes.list())
      .filter((m) => !portal || m.portal === portal)
      .map((m) => m.name);
    const href = (o: number) => {
      const q = new URLSearchParams();
      if (mailbox) q.set('mailbox', mailbox);
      if (state) q.set('status', state);
      if (o > 0) q.set('offset', String(o));
      const s = q.toString();
      return s ? `/error-mails?${s}` : '/error-mails';
    };
    const body = (
      <ErrorMailList
        user={user}
        items={list.items}
        mailboxes={mailboxes}
        mailbox={mailbox}
        status={state}
        back={href(offset)}
        message={message}
        pager={<Pager offset={list.offset} limit={list.limit} total={list.total} href={href} />}
        total={list.total}
      />
    );
    return kit.render(c, 'Error folder', user, body, { current: '/error-mails', status });
  };

  ui.get(
    '/error-mails',
    kit.page('user', async (c, user) => {
      const moved = c.req.query('moved');
      return listPage(c, user, moved ? { notice: moved } : {});
    }),
  );

  ui.get(
    '/error-mails/:id{[0-9]{1,12}}',
    kit.page('admin', async (c, user) => {
      const { errorMail, report } = await deps.errorMails.report(Number(c.req.param('id')));
      return kit.render(
        c,
        `Error mail #${errorMail.id}`,
        user,
        <ReportPage user={user} mail={errorMail} report={report} />,
        {
          current: '/error-mails',
        },
      );
    }),
  );

  /** Runs a move and goes back to the list saying what moved; a refusal is told on the list itself. */
  const move = async (
    c: Context,
    user: ConsoleUser,
    form: Record<string, string>,
    run: () => Promise<MoveToInboxResult[]>,
  ) => {
    try {
      const results = await run();
      const back = localBack(form.back);
      const sep = back.includes('?') ? '&' : '?';
      return c.redirect(`${back}${sep}moved=${encodeURIComponent(describeMoves(results))}`, 303);
    } catch (e) {
      if (!isMailintakeError(e) || e.code === 'INTERNAL') throw e;
      const status =
        e.code === 'MAILBOX_BUSY'
          ? 409
          : e.code === 'NOT_FOUND'
            ? 404
            : e.code === 'INVALID_SETTINGS'
              ? 400
              : 502;
      return listPage(c, user, { error: `${e.code}: ${e.message}` }, status);
    }
  };

  ui.post(
    '/error-mails/move-to-inbox',
    kit.formLimit,
    kit.page('admin', async (c, user, form) => {
      const ids = Object.keys(form)
        .map((k) => PICK.exec(k)?.[1])
        .filter((id): id is string => id !== undefined)
        .map(Number);
      return move(c, user, form, () => deps.errorMails.moveSelectedToInbox(ids));
    }),
  );
  ui.post(
    '/error-mails/move-mailbox-to-inbox',
    kit.formLimit,
    kit.page('admin', async (c, user, form) =>
      move(c, user, form, async () => [await deps.errorMails.moveToInbox(form.mailbox ?? '')]),
    ),
  );
}

/** Back to the list the admin came from (only the error folder's own addresses). */
function localBack(back: string | undefined): string {
  return back && /^\/error-mails(\/\d+)?(\?[\w=&%.+-]*)?$/.test(back)
    ? back.replace(/[?&]moved=[^&]*/, '')
    : '/error-mails';
}

function describeMoves(results: MoveToInboxResult[]): string {
  return results
    .map((r) => {
      const gone = r.notFound.length
        ? `, ${r.notFound.length} no longer in the error folder (marked resolved)`
        : '';
      return `${r.mailbox}: ${r.moved.length} moved to the inbox${gone}; ${r.remaining} left in the error folder.`;
    })
    .join(' ');
}

const when = (iso: string | null) => (iso ? iso.slice(0, 16).replace('T', ' ') : '');

function ErrorMailList(props: {
  user: ConsoleUser;
  items: ErrorMailView[];
  mailboxes: string[];
  mailbox: string | undefined;
  status: string | undefined;
  back: string;
  message: { error?: string; notice?: string };
  pager: unknown;
  total: number;
}) {
  const admin = props.user.role === 'admin';
  const open = props.items.filter((m) => m.status === 'in-error-folder');
  return (
    <section>
      <h1>Error folder</h1>
      <p>
        Mails that could not be processed, moved to their mailbox's error folder with an encrypted report.
        {admin
          ? ' Fix the cause, then move them to the inbox: the next fetch takes them in again (enable a mailbox stopped by errors).'
          : ' An admin reads the reports and moves them back once the cause is fixed.'}
      </p>
      <Message error={props.message.error} notice={props.message.notice} />
      <form method="get" action="/error-mails" class="filters">
        <div class="field">
          <label for="filter-mailbox">Mailbox</label>
          <select id="filter-mailbox" name="mailbox">
            <option value="">Every mailbox</option>
            {props.mailboxes.map((m) => (
              <option value={m} selected={m === props.mailbox}>
                {m}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="filter-status">Status</label>
          <select id="filter-status" name="status">
            <option value="">Any</option>
            <option value="in-error-folder" selected={props.status === 'in-error-folder'}>
              In the error folder
            </option>
            <option value="moved-to-inbox" selected={props.status === 'moved-to-inbox'}>
              Moved to the inbox
            </option>
          </select>
        </div>
        <button type="submit">Filter</button>
      </form>
      {props.items.length === 0 ? (
        <p>No error mails{props.mailbox ? ` in mailbox ${props.mailbox}` : ''}.</p>
      ) : (
        <form method="post" action="/error-mails/move-to-inbox">
          <Csrf token={props.user.csrf} />
          <input type="hidden" name="back" value={props.back} />
          <table>
            <caption>
              {props.total} error mail{props.total === 1 ? '' : 's'}, newest first
            </caption>
            <thead>
              <tr>
                {admin ? <th scope="col">Select</th> : null}
                <th scope="col">#</th>
                <th scope="col">Date</th>
                <th scope="col">Mailbox</th>
                <th scope="col">Reason</th>
                <th scope="col">Status</th>
              </tr>
            </thead>
            <tbody>
              {props.items.map((m) => (
                <tr>
                  {admin ? (
                    <td>
                      {m.status === 'in-error-folder' ? (
                        <input
                          type="checkbox"
                          name={`pick-${m.id}`}
                          id={`pick-${m.id}`}
                          aria-label={`Select error mail #${m.id}`}
                        />
                      ) : null}
                    </td>
                  ) : null}
                  <td>{admin ? <a href={`/error-mails/${m.id}`}>#{m.id} report</a> : `#${m.id}`}</td>
                  <td>
                    <time datetime={m.createdAt}>{when(m.createdAt)}</time>
                  </td>
                  <td>
                    {admin ? (
                      <a href={`/mailboxes/${encodeURIComponent(m.mailbox)}`}>{m.mailbox}</a>
                    ) : (
                      m.mailbox
                    )}
                  </td>
                  <td>
                    <code>{m.errorCode}</code> {m.errorMessage ?? ''}
                  </td>
                  <td>
                    {m.status === 'in-error-folder'
                      ? m.location === 'kept-locally'
                        ? 'kept by Mailintake (POP3)'
                        : `in "${m.folder ?? ''}"`
                      : `moved to the inbox ${when(m.movedBackAt)}`}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {admin && open.length > 0 ? <button type="submit">Move selected mails to inbox</button> : null}
        </form>
      )}
      {props.pager}
      {admin && props.mailbox && open.length > 0 ? (
        <form method="post" action="/error-mails/move-mailbox-to-inbox" class="inline">
          <Csrf token={props.user.csrf} />
          <input type="hidden" name="mailbox" value={props.mailbox} />
          <input type="hidden" name="back" value={props.back} />
          <button type="submit">Move every mail of {props.mailbox} to inbox</button>
        </form>
      ) : null}
    </section>
  );
}

function ReportPage(props: { user: ConsoleUser; mail: ErrorMailView; report: ErrorReport }) {
  const { mail, report } = props;
  const r = report as ErrorReport & {
    mail: Record<string, string | number | null | undefined>;
    error: { code: string; message: string; help?: string | null; causes?: string[] };
  };
  const rows: [string, string | number | null | undefined][] = [
    ['From', r.mail.from],
    ['To', r.mail.to],
    ['Cc', r.mail.cc],
    ['Subject', r.mail.subject],
    ['Date', r.mail.date],
    ['Message-ID', r.mail.messageId],
    ['Size (bytes)', r.mail.size],
    ['SHA-256 of the raw mail', r.mail.rawSha256],
  ];
  return (
    <section>
      <p>
        <a href={`/error-mails?mailbox=${encodeURIComponent(mail.mailbox)}`}>
          Back to the error folder of {mail.mailbox}
        </a>
      </p>
      <h1>Error mail #{mail.id}</h1>
      <p>
        Mailbox <strong>{mail.mailbox}</strong> (portal {mail.portal}),{' '}
        {mail.status === 'in-error-folder' ? 'in the error folder' : 'moved to the inbox'} since{' '}
        <time datetime={mail.createdAt}>{when(mail.createdAt)}</time>. The report below was decrypted for you;
        it holds the customer's personal data.
      </p>
      <h2>The error</h2>
      <p class="message error">
        <code>{r.error.code}</code> {r.error.message}
      </p>
      {r.error.help ? <p>What to check: {r.error.help}</p> : null}
      {r.error.causes && r.error.causes.length > 0 ? (
        <>
          <h3>Causes</h3>
          <ul>
            {r.error.causes.map((cause) => (
              <li>{cause}</li>
            ))}
          </ul>
        </>
      ) : null}
      <h2>The mail</h2>
      <table class="facts">
        <caption>What the report recorded of the mail</caption>
        <tbody>
          {rows.map(([label, value]) => (
            <tr>
              <th scope="row">{label}</th>
              <td>{value === null || value === undefined ? '(unknown)' : String(value)}</td>
            </tr>
          ))}
          <tr>
            <th scope="row">Server identity</th>
            <td>
              <code>{r.serverIdentity}</code>
            </td>
          </tr>
        </tbody>
      </table>
      {mail.status === 'in-error-folder' ? (
        <form method="post" action="/error-mails/move-to-inbox">
          <Csrf token={props.user.csrf} />
          <input type="hidden" name={`pick-${mail.id}`} value="on" />
          <input
            type="hidden"
            name="back"
            value={`/error-mails?mailbox=${encodeURIComponent(mail.mailbox)}`}
          />
          <button type="submit">Move this mail to inbox</button>
        </form>
      ) : null}
    </section>
  );
}
