import { createRoute, z } from '@hono/zod-openapi';
import { fetchSummarySchema } from '../mailboxes/views.js';
import { type Api, bodyDoc, errors, ok, parse, readJson } from '../shared/route-kit.js';
import type { FetchService } from './service.js';

/** "Fetch now": one round over the enabled mailboxes, or the one named. */

const fetchBody = z.strictObject({ mailbox: z.string().min(1).optional() });

export const fetchOnce = createRoute({
  method: 'post',
  path: '/api/v1/fetch',
  summary: 'One fetch round over the enabled mailboxes, or the one named (enabled or not)',
  request: { body: bodyDoc(fetchBody, false) },
  responses: {
    200: ok(
      'One summary per mailbox; `reached: false` with `error` when it could not be reached',
      z.array(fetchSummarySchema),
    ),
    ...errors(400, 401, 404, 409, 502),
  },
});

export function mountFetchRoutes(app: Api, services: { fetch: FetchService }): void {
  app.openapi(fetchOnce, async (c) => {
    const body = parse(fetchBody, await readJson(c, { optional: true }));
    return c.json(await services.fetch.once(body.mailbox ? { mailbox: body.mailbox } : {}), 200);
  });
}
