import { createRoute, z } from '@hono/zod-openapi';
import { REPLY_BODY_MAX_CHARS, REPLY_RECIPIENTS_MAX } from '../../kernel/limits.js';
import { attachmentResponse } from '../shared/download.js';
import { pageOf } from '../shared/page.js';
import {
  type Api,
  bodyDoc,
  download,
  errors,
  idParams,
  intQuery,
  keysetQuery,
  ok,
  parse,
  queryOf,
  readJson,
  UNKNOWN_FILTER,
} from '../shared/route-kit.js';
import type { IntakeLogService, RequestsService } from './service.js';
import {
  intakeLogEntrySchema,
  outcomeSchema,
  REQUEST_STATUSES,
  requestDetailSchema,
  requestHistoryEntrySchema,
  requestListItemSchema,
  requestSummarySchema,
  sentReplyViewSchema,
} from './views.js';
import { MAX_QUERY_CHARS } from './work.js';

/** Requests with their attachments, and the intake log with the raw mails as fetched. */

const requestsQuery = queryOf({
  portal: z.string().min(1).optional(),
  mailbox: z.string().min(1).optional(),
  status: z.enum(REQUEST_STATUSES).optional(),
  requester: z
    .string()
    .min(1)
    .max(320)
    .optional()
    .openapi({
      param: { description: "The requester's address, exact but case-insensitive in any script (Ä = ä)" },
    }),
  q: z
    .string()
    .max(MAX_QUERY_CHARS)
    .optional()
    .openapi({
      param: {
        description:
          'Words that must all occur in the request: the subject, the requester’s name or address, the body ' +
          '(an HTML-only body by its text), or its 20 newest conversations. Plain words: no operators, quotes ' +
          'or wildcards; a word without a letter or digit is ignored; the first 16 words are used. A search ' +
          'counts up to offset + 1000 matches: past that, `total` is that number and `totalCapped` is true.',
      },
    }),
  ...keysetQuery,
});
const statusBody = z.strictObject({ status: z.enum(REQUEST_STATUSES) });
const assigneeBody = z.strictObject({
  assignee: z.string().min(1).max(320).nullable().openapi({ description: 'An email address; null: nobody' }),
});
const logQuery = queryOf({
  mailbox: z.string().min(1).optional(),
  outcome: outcomeSchema.optional(),
  request: intQuery(1, 999_999_999, {
    description:
      'Only the entries of this request (the mails that made or extended it, and recognised copies)',
  }),
  ...keysetQuery,
});

export const listRequests = createRoute({
  method: 'get',
  path: '/api/v1/requests',
  summary: 'List requests, newest first',
  description: UNKNOWN_FILTER,
  request: { query: requestsQuery },
  responses: { 200: ok('A page of requests', pageOf(requestListItemSchema)), ...errors(400, 401, 404) },
});
export const showRequest = createRoute({
  method: 'get',
  path: '/api/v1/requests/{id}',
  summary: 'Show a request with its conversations and attachment metadata',
  request: { params: idParams('request', 'The request id (12 for request #12)') },
  responses: { 200: ok('The request', requestDetailSchema), ...errors(400, 401, 404) },
});
export const attachmentContent = createRoute({
  method: 'get',
  path: '/api/v1/attachments/{id}/content',
  summary: 'Download an attachment',
  description:
    'Always `Content-Disposition: attachment` with `X-Content-Type-Options: nosniff`; types a browser ' +
    'would render as active content (HTML, SVG, XML) are served as application/octet-stream.',
  request: { params: idParams('attachment') },
  responses: { 200: download('The attachment’s bytes', '*/*'), ...errors(400, 401, 404) },
});
export const setRequestStatus = createRoute({
  method: 'put',
  path: '/api/v1/requests/{id}/status',
  summary: 'Set the status of a request (written to its history with who set it)',
  request: { params: idParams('request'), body: bodyDoc(statusBody) },
  responses: { 200: ok('The request', requestSummarySchema), ...errors(400, 401, 404) },
});
export const assignRequest = createRoute({
  method: 'put',
  path: '/api/v1/requests/{id}/assignee',
  summary: 'Assign a request to someone (an email address), or to nobody with null',
  request: { params: idParams('request'), body: bodyDoc(assigneeBody) },
  responses: { 200: ok('The request', requestSummarySchema), ...errors(400, 401, 404) },
});
export const requestHistory = createRoute({
  method: 'get',
  path: '/api/v1/requests/{id}/history',
  summary: 'The status and assignee changes of a request, oldest first',
  request: { params: idParams('request') },
  responses: { 200: ok('The changes', z.array(requestHistoryEntrySchema)), ...errors(400, 401, 404) },
});
const addressList = z
  .array(z.string().min(1).max(1000))
  .max(REPLY_RECIPIENTS_MAX)
  .optional()
  .openapi({ description: 'Addresses, each "Name <a@b>" or "a@b"; the help desk’s own are always dropped' });
const replyBody = z.strictObject({
  to: addressList.openapi({ description: 'Reply: default the requester. Forward: required.' }),
  cc: addressList.openapi({
    description: 'Reply: default the request’s participants ([] for nobody). Forward: nobody unless given.',
  }),
  bcc: addressList,
  text: z.string().max(REPLY_BODY_MAX_CHARS),
  html: z.string().max(REPLY_BODY_MAX_CHARS).optional(),
  attachments: z
    .array(
      z.strictObject({
        filename: z.string().min(1).max(255),
        contentType: z.string().min(1).max(255).default('application/octet-stream'),
        contentBase64: z.string().openapi({ description: 'The file’s bytes, base64' }),
      }),
    )
    .max(100)
    .optional(),
  requestAttachments: z
    .array(z.number().int().positive())
    .max(100)
    .optional()
    .openapi({ description: 'Ids of the request’s own attachments to send along (a forward’s usual case)' }),
  forward: z.boolean().optional().openapi({ description: 'true: a forward (Fwd:, To required)' }),
});
export const replyToRequest = createRoute({
  method: 'post',
  path: '/api/v1/requests/{id}/replies',
  summary: 'Reply to (or forward) a request: stored as an outgoing conversation and sent through the outbox',
  description:
    'From the address of the mailbox the request came through, through the outgoing SMTP server of the ' +
    'request’s portal (`PUT /api/v1/portals/{name}/smtp`), or the instance’s when the portal has none ' +
    '(`PUT /api/v1/settings/smtp`). The subject carries `##<id>##`, the Message-ID is ours and In-Reply-To/References ' +
    'name the thread, so the answer threads back. The help desk’s own addresses and aliases are dropped from ' +
    'To, Cc and Bcc. The answer is the conversation with its delivery state (pending until the outbox sent it).',
  request: { params: idParams('request'), body: bodyDoc(replyBody) },
  responses: {
    201: ok('The outgoing conversation, and the typed addresses left out', sentReplyViewSchema),
    ...errors(400, 401, 404, 409),
  },
});
export const listLog = createRoute({
  method: 'get',
  path: '/api/v1/log',
  summary: 'The intake log: one entry per mail fetched, with its outcome and the reasons',
  description: UNKNOWN_FILTER,
  request: { query: logQuery },
  responses: { 200: ok('A page of log entries', pageOf(intakeLogEntrySchema)), ...errors(400, 401, 404) },
});
export const logRaw = createRoute({
  method: 'get',
  path: '/api/v1/log/{id}/raw',
  summary: 'Download the raw mail of a log entry, as it was fetched',
  description:
    'The original source is kept for every mail taken in or failed, so nothing a parser missed is lost. ' +
    'Served as an attachment (`mail-<id>.eml`).',
  request: {
    params: idParams(
      'intake log entry',
      "An intake-log id (a log entry's id, or a request's or conversation's logId), not a request id",
    ),
  },
  responses: { 200: download('The raw RFC 5322 mail', 'message/rfc822'), ...errors(400, 401, 404) },
});

export function mountRequestRoutes(
  app: Api,
  services: { requests: RequestsService; log: IntakeLogService },
): void {
  app.openapi(listRequests, async (c) => c.json(await services.requests.list(c.req.valid('query')), 200));
  app.openapi(showRequest, async (c) => c.json(await services.requests.show(c.req.valid('param').id), 200));
  app.openapi(setRequestStatus, async (c) => {
    const body = parse(statusBody, await readJson(c));
    return c.json(await services.requests.setStatus(c.req.valid('param').id, body.status), 200);
  });
  app.openapi(assignRequest, async (c) => {
    const body = parse(assigneeBody, await readJson(c));
    return c.json(await services.requests.assign(c.req.valid('param').id, body.assignee), 200);
  });
  app.openapi(requestHistory, async (c) =>
    c.json(await services.requests.history(c.req.valid('param').id), 200),
  );
  app.openapi(attachmentContent, async (c) => {
    const { meta, open } = await services.requests.attachment(c.req.valid('param').id);
    return attachmentResponse(meta, open());
  });
  app.openapi(replyToRequest, async (c) => {
    const body = parse(replyBody, await readJson(c));
    const input = {
      ...(body.to ? { to: body.to } : {}),
      ...(body.cc ? { cc: body.cc } : {}),
      ...(body.bcc ? { bcc: body.bcc } : {}),
      text: body.text,
      ...(body.html !== undefined ? { html: body.html } : {}),
      ...(body.requestAttachments ? { requestAttachments: body.requestAttachments } : {}),
      attachments: (body.attachments ?? []).map((a) => ({
        filename: a.filename,
        contentType: a.contentType,
        content: Buffer.from(a.contentBase64, 'base64'),
      })),
    };
    const id = c.req.valid('param').id;
    const conv = body.forward
      ? await services.requests.forward(id, input)
      : await services.requests.reply(id, input);
    return c.json(conv, 201);
  });
  app.openapi(listLog, async (c) => c.json(await services.log.list(c.req.valid('query')), 200));
  app.openapi(logRaw, async (c) => {
    const { meta, open } = await services.log.raw(c.req.valid('param').id);
    return attachmentResponse(meta, open());
  });
}
