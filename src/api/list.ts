// One way to page every list the API returns, as Stripe's do: `limit` and `starting_after` (the id of the
// last item already seen) in the query, `{ object: "list", data, has_more, next_cursor }` in the answer.
// Routes ask their store for limit + 1 rows; the extra row only says whether there is more.
import { z } from 'zod';

export interface ListPage<T> {
  object: 'list';
  data: T[];
  has_more: boolean;
  /** Pass as `starting_after` for the next page; null on the last one. */
  next_cursor: string | null;
}

export interface ListQueryOptions {
  /** The largest `limit` accepted (default 100). */
  max?: number;
  /** `limit` when none is given (default 20, at most max). */
  default?: number;
  /** What a cursor looks like (default: a UUID); it is the id of the last item of the previous page. */
  cursor?: z.ZodType<string>;
}

/** The query fields every paged list takes; spread into the route's query object. */
export function listQuery(o: ListQueryOptions = {}) {
  const max = o.max ?? 100;
  return {
    limit: z.coerce.number().int().min(1).max(max).default(Math.min(o.default ?? 20, max))
      .describe(`how many items, 1 to ${max}`),
    starting_after: (o.cursor ?? z.string().uuid()).optional()
      .describe('the next_cursor of the previous page: items after this one, in the list\'s order'),
  };
}

/** The response schema of a list of `item`. */
export function listOf<T extends z.ZodType>(item: T) {
  return z.object({ object: z.literal('list'), data: z.array(item), has_more: z.boolean(), next_cursor: z.string().nullable() });
}

/** A page from up to limit + 1 rows, in the list's order; `cursorOf` names a row for `starting_after`. */
export function pageOf<R, T>(rows: R[], limit: number, cursorOf: (row: R) => string, map: (row: R) => T): ListPage<T> {
  const kept = rows.slice(0, limit);
  const hasMore = rows.length > limit;
  return { object: 'list', data: kept.map(map), has_more: hasMore, next_cursor: hasMore ? cursorOf(kept[kept.length - 1]!) : null };
}

/** A list that is always whole (configuration: subscriptions, partners, case actions): one page, no cursor. */
export function wholeList<T>(data: T[]): ListPage<T> {
  return { object: 'list', data, has_more: false, next_cursor: null };
}
