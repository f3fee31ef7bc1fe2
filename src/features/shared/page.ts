import { z } from '@hono/zod-openapi';

/** One page of a list, as every list answers it (the API and the CLI alike). */
export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

/** The schema of a page of `item` (a generic type cannot be inferred from a schema, so Page<T> is written above). */
export function pageOf<T extends z.ZodType>(item: T) {
  return z.object({
    items: z.array(item),
    total: z.number().int(),
    limit: z.number().int(),
    offset: z.number().int(),
  });
}

/** A timestamp as the store writes it (ISO 8601). */
export const timestamp = () => z.string().openapi({ format: 'date-time' });
