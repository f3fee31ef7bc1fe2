import { createRoute, z } from '@hono/zod-openapi';
import { attachmentResponse } from '../shared/download.js';
import { pageOf } from '../shared/page.js';
import {
  type Api,
  bodyDoc,
  download,
  errors,
  idParams,
  nameParams,
  ok,
  pageQuery,
  parse,
  queryOf,
  readJson,
} from '../shared/route-kit.js';
import type { ErrorMailsService } from './service.js';
import { errorMailReportSchema, errorMailViewSchema, moveToInboxResultSchema } from './views.js';

/** The error folder: error mails, their sealed reports (opened here for the admin), POP3's kept mails. */

const errorMailsQuery = queryOf({
  mailbox: z.string().min(1).optional(),
  portal: z.string().min(1).optional(),
  status: z.enum(['in-error-folder', 'moved-to-inbox']).optional(),
  ...pageQuery,
});

export const listErrorMails = createRoute({
  method: 'get',
  path: '/api/v1/error-mails',
  summary: 'Error mails (the error folders of the mailboxes), newest first',
  request: { query: errorMailsQuery },
  responses: { 200: ok('A page of error mails', pageOf(errorMailViewSchema)), ...errors(400, 401, 404) },
});
export const errorMailReport = createRoute({
  method: 'get',
  path: '/api/v1/error-mails/{id}/report',
  summary: 'The report of an error mail, decrypted: mail details and the exception',
  description:
    'Reports are sealed at rest (AES-256-GCM with the instance key) because they hold personal data; this ' +
    'call opens one for the admin holding the API key.',
  request: { params: idParams('error mail') },
  responses: { 200: ok('The error mail and its report', errorMailReportSchema), ...errors(400, 401, 404) },
});
export const errorMailRaw = createRoute({
  method: 'get',
  path: '/api/v1/error-mails/{id}/raw',
  summary: 'POP3: download the raw mail Mailintake kept for an error mail, decrypted',
  description:
    'POP3 has no folders, so its error mails are kept (sealed) by Mailintake and deleted from the server. ' +
    'Mails in a server error folder (IMAP, Graph) answer NOT_FOUND; their copy as fetched is under /log/{id}/raw.',
  request: { params: idParams('error mail') },
  responses: {
    200: download('The raw RFC 5322 mail, byte for byte as fetched', 'message/rfc822'),
    ...errors(400, 401, 404),
  },
});
export const moveToInbox = createRoute({
  method: 'post',
  path: '/api/v1/mailboxes/{name}/error-mails/move-to-inbox',
  summary: '"Move mails to inbox": every error mail of the mailbox back to its inbox, the count reset',
  description:
    'IMAP and Graph: the mails are moved from the error folder back to the folder Mailintake reads; POP3: the ' +
    'kept copies are taken in by the next round. The next fetch processes them again (enable the mailbox ' +
    'if it was stopped by errors). Mails no longer in the error folder are listed in `notFound` and count ' +
    'as resolved.',
  request: { params: nameParams },
  responses: { 200: ok('What was moved', moveToInboxResultSchema), ...errors(400, 401, 404, 409, 502) },
});

const moveSelectedBody = z.strictObject({
  ids: z.array(z.number().int().positive(), 'must be a list of error mail ids').min(1).max(1000),
});
export const moveSelectedToInbox = createRoute({
  method: 'post',
  path: '/api/v1/error-mails/move-to-inbox',
  summary: '"Move mails to inbox" for chosen error mails: each back to its mailbox\'s inbox',
  description:
    'Like the per-mailbox call, for the error mails named in `ids` only (they may belong to several ' +
    'mailboxes: one result per mailbox). Ids already moved back are skipped; an unknown id is NOT_FOUND.',
  request: { body: bodyDoc(moveSelectedBody) },
  responses: {
    200: ok('What was moved, per mailbox', z.array(moveToInboxResultSchema)),
    ...errors(400, 401, 404, 409, 502),
  },
});

export function mountErrorMailRoutes(app: Api, services: { errorMails: ErrorMailsService }): void {
  app.openapi(listErrorMails, async (c) => c.json(await services.errorMails.list(c.req.valid('query')), 200));
  app.openapi(errorMailReport, async (c) =>
    c.json(await services.errorMails.report(c.req.valid('param').id), 200),
  );
  app.openapi(errorMailRaw, async (c) => {
    const { meta, open } = await services.errorMails.raw(c.req.valid('param').id);
    return attachmentResponse(meta, open());
  });
  app.openapi(moveSelectedToInbox, async (c) => {
    const { ids } = parse(moveSelectedBody, await readJson(c));
    return c.json(await services.errorMails.moveSelectedToInbox(ids), 200);
  });
  app.openapi(moveToInbox, async (c) =>
    c.json(await services.errorMails.moveToInbox(c.req.valid('param').name), 200),
  );
}
