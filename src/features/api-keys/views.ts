import { z } from '@hono/zod-openapi';

/** What `apikey list` shows of a key: never the key, only its first characters. */
export const apiKeyViewSchema = z.object({
  id: z.number().int(),
  name: z.string(),
  prefix: z.string(),
  createdAt: z.string(),
  lastUsedAt: z.string().nullable(),
});
export type ApiKeyView = z.infer<typeof apiKeyViewSchema>;
