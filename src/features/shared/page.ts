import { z } from '@hono/zod-openapi';

/** One page of a list, as every list answers it (the API and the CLI alike). */
export interface Page<T> {
  items: T[];
  total: number;
  /**
   * Set by the lists that may stop counting (a request search): true when there are `total` matches or more,
   * counting having stopped there; false or absent, `total` is exact.
   */
  totalCapped?: boolean;
  limit: number;
  offset: number;
}

/** The schema of a page of `item` (a generic type cannot be inferred from a schema, so Page<T> is written above). */
export function pageOf<T extends z.ZodType>(item: T) {
  return z.object({
    items: z.array(item),
    total: z.number().int(),
    totalCapped: z
      .boolean()
      .optional()
      .openapi({
        description:
          'true: counting stopped at `total` and there may be more (a request search counts up to offset + 1000 ' +
          'matches); false or absent: `total` is exact',
      }),
    limit: z.number().int(),
    offset: z.number().int(),
  });
}

/** A timestamp as the store writes it (ISO 8601). */
export const timestamp = () => z.string().openapi({ format: 'date-time' });
