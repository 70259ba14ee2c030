import { sql, type AnyColumn, type SQL } from 'drizzle-orm';

/**
 * Rows strictly after a keyset position — before it when descending — comparing
 * (sort key, id) as one row value, which an index on (…, sort key, id) serves directly.
 */
export function keysetAfter(sortKey: SQL | AnyColumn, id: AnyColumn, position: { key: SQL; id: string }, order: 'asc' | 'desc' = 'asc'): SQL {
  const comparison = order === 'asc' ? sql`>` : sql`<`;
  return sql`(${sortKey}, ${id}) ${comparison} (${position.key}, ${position.id}::uuid)`;
}

/** A cursor's timestamp as a query parameter. */
export const timestampParam = (iso: string | number) => sql`${new Date(String(iso)).toISOString()}::timestamptz`;
