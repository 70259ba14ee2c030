/**
 * Keyset pagination, shared by every list: a signed cursor names the last row of the
 * previous page; the next page is the rows strictly after it in (sort key, id) order.
 * @module
 */
import { sql, type AnyColumn, type SQL } from 'drizzle-orm';
import type { CursorCodec } from './cursor';

/** What a list request says about its page. */
export interface PageRequest {
  limit: number;
  cursor?: string | undefined;
}

/** How one list is ordered, and how a row's position is written into a cursor. */
export interface Keyset<Row> {
  /** The sort key (a column, or an expression such as `name_key collate "C"`). */
  sortKey: SQL | AnyColumn;
  /** The tie-break: the row's id. */
  id: AnyColumn;
  order?: 'asc' | 'desc';
  /** A cursor's sort key as a query parameter of the sort key's type. */
  keyParam(key: string | number): SQL;
  /** The row's position as a cursor stores it: its sort key and its id. */
  position(row: Row): [string, string];
}

/** One page of rows and the cursor of the next one (null on the last page). */
export interface RowPage<Row> {
  rows: Row[];
  next_cursor: string | null;
}

/**
 * One keyset page: decodes the cursor (400 when tampered with or issued for other
 * `filters`), turns it into the condition "after this position", lets `fetch` read
 * `limit + 1` rows in keyset order under that condition, and encodes the next cursor
 * when more rows follow.
 */
export async function paginate<Row>(
  cursors: CursorCodec,
  filters: unknown,
  request: PageRequest,
  keyset: Keyset<Row>,
  fetch: (after: SQL | undefined, take: number) => Promise<Row[]>,
): Promise<RowPage<Row>> {
  let after: SQL | undefined;
  if (request.cursor) {
    const [key, id] = cursors.decode(request.cursor, filters);
    after = keysetAfter(keyset, { key: keyset.keyParam(key!), id: String(id) });
  }
  const rows = await fetch(after, request.limit + 1);
  const page = rows.slice(0, request.limit);
  const last = page.at(-1);
  return {
    rows: page,
    next_cursor: rows.length > request.limit && last ? cursors.encode(keyset.position(last), filters) : null,
  };
}

/**
 * Rows strictly after a keyset position — before it when descending — comparing
 * (sort key, id) as one row value, which an index on (…, sort key, id) serves directly.
 */
function keysetAfter(keyset: Keyset<unknown>, position: { key: SQL; id: string }): SQL {
  const comparison = keyset.order === 'desc' ? sql`<` : sql`>`;
  return sql`(${keyset.sortKey}, ${keyset.id}) ${comparison} (${position.key}, ${position.id}::uuid)`;
}

/**
 * A page's row count written into the statement's text (`limit 21`), where drizzle's
 * `.limit(n)` would bind it as a parameter. PostgreSQL plans a prepared statement generically
 * after a few runs, and a generic plan cannot see a bound LIMIT: it assumes a tenth of the rows
 * will be read and prefers whatever returns the first rows soonest. For a union of keyset scans
 * that means walking a whole organization's index in order instead of sorting the twenty rows
 * a caller's memberships give (workspaces/service.ts listWorkspaces). `take` is the page's
 * size plus one (2–101), so the statement's text varies with the page size and nothing else.
 */
export function literalLimit(take: number): number {
  if (!Number.isSafeInteger(take) || take < 1) throw new Error(`A page's row count must be a positive integer, not ${take}`);
  // drizzle's .limit() accepts SQL at run time (it writes `limit ${value}`); its type says number.
  return sql.raw(String(take)) as unknown as number;
}

/** A cursor's timestamp as a query parameter. */
export const timestampParam = (iso: string | number) => sql`${new Date(String(iso)).toISOString()}::timestamptz`;
