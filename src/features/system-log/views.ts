import { z } from '@hono/zod-openapi';
import { timestamp } from '../shared/page.js';

export const systemLogEntrySchema = z
  .object({
    id: z.number().int(),
    createdAt: timestamp(),
    /** Who: `api-key:<name>`, `cli:<os user>` or `system`. */
    actor: z.string().openapi({ description: 'api-key:<name>, cli:<os user> or system' }),
    level: z.string().openapi({ enum: ['info', 'warn', 'error'] }),
    category: z.string(),
    message: z.string(),
    details: z.record(z.string(), z.unknown()),
  })
  .openapi('SystemLogEntry');
export type SystemLogEntry = z.infer<typeof systemLogEntrySchema>;
