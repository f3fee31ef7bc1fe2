import { createRoute, z } from '@hono/zod-openapi';
import { SYSTEM_LOG_CATEGORIES } from '../../store/system-log.js';
import { pageOf } from '../shared/page.js';
import { type Api, errors, keysetQuery, ok, queryOf } from '../shared/route-kit.js';
import type { SystemLogService } from './service.js';
import { systemLogEntrySchema } from './views.js';

const systemLogQuery = queryOf({
  // the service names the categories when this is none of them
  category: z
    .string()
    .min(1)
    .max(64)
    .optional()
    .openapi({
      enum: [...SYSTEM_LOG_CATEGORIES],
      param: {
        description: 'Only this category; any other value is 400 INVALID_SETTINGS naming the categories',
      },
    }),
  actor: z
    .string()
    .min(1)
    .max(320)
    .optional()
    .openapi({
      param: { description: 'Only this actor: user:<email>, api-key:<name>, cli:<os user>, system' },
    }),
  mailbox: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .openapi({ param: { description: 'Only entries about this mailbox' } }),
  since: z
    .string()
    .max(40)
    .optional()
    .openapi({ param: { description: 'Entries at or after this date (YYYY-MM-DD, UTC) or ISO 8601 time' } }),
  until: z
    .string()
    .max(40)
    .optional()
    .openapi({ param: { description: 'Entries before this date (YYYY-MM-DD, UTC) or ISO 8601 time' } }),
  ...keysetQuery,
});

export const listSystemLog = createRoute({
  method: 'get',
  path: '/api/v1/system-log',
  summary: 'The system log, newest first: what Mailintake did and why (e.g. dropped attachments)',
  request: { query: systemLogQuery },
  responses: {
    200: ok('A page of system-log entries', pageOf(systemLogEntrySchema)),
    ...errors(400, 401, 404),
  },
});

export function mountSystemLogRoutes(app: Api, services: { systemLog: SystemLogService }): void {
  app.openapi(listSystemLog, async (c) => c.json(await services.systemLog.list(c.req.valid('query')), 200));
}
