import { type Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { isMailintakeError, MailintakeError } from '../../kernel/errors.js';
import { REPLY_FORM_MAX_BYTES } from '../../kernel/limits.js';
import { withoutNulChars } from '../../kernel/nul.js';
import type { MailboxesService } from '../mailboxes/service.js';
import type { PortalsService } from '../portals/service.js';
import {
  type ConsoleApp,
  type ConsoleKit,
  type ConsoleUser,
  fieldErrors,
  portalScope,
} from '../shared/console-kit.js';
import { attachmentResponse } from '../shared/download.js';
import type { UsersService } from '../users/service.js';
import { mountRequestBodyRoutes } from './body-routes.js';
import { FILTER_NAMES, type ListFilters, listHref, RequestList } from './list-page.js';
import {
  deliveryWords,
  forwardableAttachments,
  type ReplyTyped,
  RequestPage,
  type WorkState,
} from './request-page.js';
import type { IntakeLogService, RequestsService } from './service.js';
import type { SentReplyView } from './views.js';

/**
 * The request pages (issue 12 §5, §6): the list (`/requests`, filters in the URL), one request
 * (`/requests/{id}`, a stable address notifications link to) with its status and assignee forms, its attachments
 * and raw mails, and its mails' bodies in sandboxed frames (body-routes.ts). A technician sees only their
 * portal's requests: anything of another portal's request (page, body, inline part, attachment, raw mail, form)
 * answers 404, as an unknown request does, so that ids of other portals are not even confirmed.
 */

export interface RequestPagesDeps {
  requests: RequestsService;
  log: IntakeLogService;
  users: UsersService;
  portals: PortalsService;
  mailboxes: MailboxesService;
}

const PAGE_SIZE = 50;
/** The most log entries shown for one request (its mails and the copies recognised as such). */
const LOG_ENTRIES_SHOWN = 200;

const id = '{[0-9]+}';
const idOf = (raw: string | undefined, what: string): number => {
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new MailintakeError('NOT_FOUND', `no ${what} #${raw}`);
  return n;
};

/** Downloads leave the console's origin behind: nothing in them may run or be cached. */
function asDownload(res: Response): Response {
  res.headers.set('X-Content-Type-Options', 'nosniff');
  res.headers.set('Content-Security-Policy', "default-src 'none'; sandbox");
  res.headers.set('Cache-Control', 'private, no-store');
  res.headers.set('Referrer-Policy', 'no-referrer');
  return res;
}

export function mountRequestsPages(ui: ConsoleApp, kit: ConsoleKit, deps: RequestPagesDeps): void {
  /** The request's id once the person may see it: NOT_FOUND for another portal's request, as for none. */
  const visible = async (user: ConsoleUser, raw: string | undefined): Promise<number> => {
    const requestId = idOf(raw, 'request');
    const scope = portalScope(user);
    const portal = await deps.requests.portalOf(requestId);
    if (scope !== null && portal !== scope)
      throw new MailintakeError('NOT_FOUND', `no request #${requestId}`);
    return requestId;
  };

  ui.get(
    '/requests',
    kit.page('user', async (c, user) => {
      const scope = portalScope(user);
      const filters = Object.fromEntries(
        FILTER_NAMES.map((n) => [n, c.req.query(n) ?? '']),
      ) as unknown as ListFilters;
      if (scope !== null) filters.portal = '';
      const offsetRaw = c.req.query('offset') ?? '';
      const offset = /^[0-9]{1,9}$/.test(offsetRaw) ? Number(offsetRaw) : 0;
      // A GET form sends its empty fields too (q=&portal=&...): one redirect to the list's own address keeps
      // the URL to bookmark or send short, and the same for the same list.
      const here = new URL(c.req.url);
      const address = listHref(filters, offset);
      if (here.pathname + here.search !== address) return c.redirect(address, 303);
      const mailboxes = (await deps.mailboxes.list())
        .filter((m) => scope === null || m.portal === scope)
        .map((m) => m.name);
      const portals = scope === null ? (await deps.portals.list()).map((p) => p.name) : null;
      const props = { filters, portals, scope, mailboxes };
      const render = (body: Parameters<typeof RequestList>[0], status = 200) =>
        kit.render(c, 'Requests', user, <RequestList {...body} />, { current: '/requests', status });
      try {
        const page = await deps.requests.list({
          ...(scope !== null ? { portal: scope } : filters.portal ? { portal: filters.portal } : {}),
          ...(filters.mailbox ? { mailbox: filters.mailbox } : {}),
          ...(filters.status ? { status: filters.status } : {}),
          ...(filters.requester ? { requester: filters.requester.trim() } : {}),
          ...(filters.q.trim() ? { q: filters.q } : {}),
          limit: PAGE_SIZE,
          offset,
        });
        return render({ ...props, page });
      } catch (e) {
        // a filter naming no mailbox or portal is NOT_FOUND with the field named: shown beside the field too
        if (isMailintakeError(e) && e.code === 'NOT_FOUND' && e.details.fields) {
          const error = fieldErrors(
            new MailintakeError('INVALID_SETTINGS', e.message, { details: e.details }),
          );
          return render({ ...props, page: null, error }, 404);
        }
        return render({ ...props, page: null, error: fieldErrors(e) }, 400);
      }
    }),
  );

  const showRequest = async (
    c: Context,
    user: ConsoleUser,
    requestId: number,
    work: WorkState,
    status = 200,
  ) => {
    const request = await deps.requests.show(requestId);
    const [history, log, users] = await Promise.all([
      deps.requests.history(requestId),
      deps.log.list({ request: requestId, limit: LOG_ENTRIES_SHOWN }),
      deps.users.list(),
    ]);
    // the people who can work on this request: admins and the portal's technicians, still active
    const assignees = users
      .filter((u) => u.disabledAt === null && (u.portal === null || u.portal === request.portal))
      .map((u) => u.email);
    return kit.render(
      c,
      `#${request.id} ${request.subject}`,
      user,
      <RequestPage
        request={request}
        history={history}
        log={[...log.items].reverse()}
        assignees={assignees}
        csrf={user.csrf}
        work={work}
      />,
      { current: '/requests', status, scripts: ['requests.js'] },
    );
  };

  const NOTICES: Record<string, string> = {
    status: 'The status is changed; the history below shows it.',
    assignee: 'The assignee is changed; the history below shows it.',
    reply: 'The reply is queued; its delivery is shown with it below.',
    forward: 'The forward is queued; its delivery is shown with it below.',
    'reply-own':
      'The reply is queued; its delivery is shown with it below. The help desk’s own addresses you typed were left out.',
    'forward-own':
      'The forward is queued; its delivery is shown with it below. The help desk’s own addresses you typed were left out.',
  };
  ui.get(
    `/requests/:id${id}`,
    kit.page('user', async (c, user) => {
      const requestId = await visible(user, c.req.param('id'));
      return showRequest(c, user, requestId, { notice: NOTICES[c.req.query('changed') ?? ''] });
    }),
  );

  /** A change from the page's forms: POST, then redirect to the page (303), or the page again with the error. */
  const change = (field: 'status' | 'assignee') =>
    kit.page('user', async (c, user, form) => {
      const requestId = await visible(user, c.req.param('id'));
      const value = (form[field] ?? '').trim();
      try {
        if (field === 'status') await deps.requests.setStatus(requestId, value);
        else await deps.requests.assign(requestId, value === '' ? null : value);
        return c.redirect(`/requests/${requestId}?changed=${field}`, 303);
      } catch (e) {
        const { message, fields } = fieldErrors(e);
        return showRequest(c, user, requestId, { error: message, fields, [field]: form[field] ?? '' }, 400);
      }
    });
  ui.post(`/requests/:id${id}/status`, kit.formLimit, change('status'));
  ui.post(`/requests/:id${id}/assignee`, kit.formLimit, change('assignee'));

  // The reply box: multipart (it carries files), so it has a body limit of its own, above the forms' one.
  const replyLimit = bodyLimit({
    maxSize: REPLY_FORM_MAX_BYTES,
    onError: (c) =>
      c.text(`The reply is too large (at most ${REPLY_FORM_MAX_BYTES / 1048576} MB with its files).`, 413),
  });
  ui.post(
    `/requests/:id${id}/replies`,
    replyLimit,
    kit.page('user', async (c, user, form) => {
      const requestId = await visible(user, c.req.param('id'));
      const all = await c.req.parseBody({ all: true });
      const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : v === undefined ? [] : [v]);
      // `form` is cleaned of NUL by the kit; what parseBody gives here again is cleaned the same way
      const typed: ReplyTyped = {
        to: form.to ?? '',
        cc: list(all.cc)
          .filter((v): v is string => typeof v === 'string')
          .map(withoutNulChars),
        ccExtra: form.ccExtra ?? '',
        bcc: form.bcc ?? '',
        text: form.text ?? '',
        forwardAttachments: list(all.forwardAttachment)
          .filter((v): v is string => typeof v === 'string')
          .map(withoutNulChars),
      };
      const forward = form.action === 'forward';
      const files = list(all.attachments).filter(
        (v): v is File => typeof v === 'object' && v !== null && v instanceof File && v.name !== '',
      );
      try {
        const input = {
          ...(typed.to.trim() !== '' ? { to: [typed.to] } : {}),
          cc: [...typed.cc, typed.ccExtra].filter((v) => v.trim() !== ''),
          bcc: typed.bcc.trim() !== '' ? [typed.bcc] : [],
          text: typed.text,
          attachments: await Promise.all(
            files.map(async (f) => ({
              filename: withoutNulChars(f.name),
              contentType: f.type || 'application/octet-stream',
              content: Buffer.from(await f.arrayBuffer()),
            })),
          ),
        };
        const scope = { portal: portalScope(user) };
        let sent: SentReplyView;
        if (forward) {
          // a forward carries the request's own attachments the technician left checked
          const checked = new Set(typed.forwardAttachments);
          const r = await deps.requests.show(requestId);
          sent = await deps.requests.forward(
            requestId,
            {
              ...input,
              requestAttachments: forwardableAttachments(r)
                .filter((a) => checked.has(String(a.id)))
                .map((a) => a.id),
            },
            scope,
          );
        } else {
          sent = await deps.requests.reply(requestId, input, scope);
        }
        const own = sent.leftOut.length > 0 ? '-own' : '';
        return c.redirect(`/requests/${requestId}?changed=${forward ? 'forward' : 'reply'}${own}`, 303);
      } catch (e) {
        const { message, fields } = fieldErrors(e);
        // the service names the list a bad address is in: the free Cc field is where it was typed
        if (fields.cc && !fields.ccExtra) fields.ccExtra = fields.cc;
        return showRequest(c, user, requestId, { error: message, fields, reply: typed }, 400);
      }
    }),
  );

  /** The delivery state of a request's replies, for the page's script to update them in place. */
  ui.get(
    `/requests/:id${id}/deliveries`,
    kit.page('user', async (c, user) => {
      const requestId = await visible(user, c.req.param('id'));
      const r = await deps.requests.show(requestId);
      return c.json(
        r.conversations
          .filter((x) => x.delivery !== null)
          .map((x) => ({
            conversationId: x.id,
            state: x.delivery!.state,
            words: deliveryWords(x.delivery!),
          })),
      );
    }),
  );

  ui.get(
    `/requests/:id${id}/attachments/:attachmentId${id}`,
    kit.page('user', async (c, user) => {
      const requestId = await visible(user, c.req.param('id'));
      const { meta, open } = await deps.requests.inlinePart(
        requestId,
        idOf(c.req.param('attachmentId'), 'attachment'),
      );
      return asDownload(attachmentResponse(meta, open()));
    }),
  );

  ui.get(
    `/requests/:id${id}/mails/:logId${id}/raw`,
    kit.page('user', async (c, user) => {
      const requestId = await visible(user, c.req.param('id'));
      const logId = idOf(c.req.param('logId'), 'intake log entry');
      // only the raw mails of this request: a log id of another request (or portal) is not found here
      const entry = await deps.log.list({ request: requestId, before: logId + 1, limit: 1 });
      if (entry.items[0]?.id !== logId) {
        throw new MailintakeError('NOT_FOUND', `no mail with log entry #${logId} in request #${requestId}`);
      }
      const { meta, open } = await deps.log.raw(logId);
      return asDownload(attachmentResponse(meta, open()));
    }),
  );

  // The mail body frames and their inline images: the body routes' own headers (their CSP, framing by 'self'),
  // behind the session and the portal check. They run in an app of their own whose errors go up to kit.page,
  // which shows its error page.
  const frames = new Hono();
  frames.onError((err) => {
    throw err;
  });
  mountRequestBodyRoutes(frames, deps, { inlineImages: 'embedded' });
  const frame = kit.page('user', async (c, user) => {
    await visible(user, c.req.param('id'));
    return frames.fetch(c.req.raw);
  });
  ui.get(`/requests/:id${id}/body`, frame);
  ui.get(`/requests/:id${id}/conversations/:cid${id}/body`, frame);
  ui.get(`/requests/:id${id}/inline/:attachmentId${id}`, frame);
}
