import type { TestApp } from './app';

/** SQL the suites share: timestamps rendered the API's way, and row counts of the tables a request may touch. */

/** A timestamp column as the API renders it (ISO-8601 UTC, milliseconds), the same on both engines. */
export const isoSql = (column: string) => `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

export interface TableCounts {
  users: number;
  organizations: number;
  memberships: number;
  workspaces: number;
  idempotency_keys: number;
}

/** Row counts of the tables an account, a create or a delete touches (each test file has its own database). */
export async function tableCounts(app: TestApp): Promise<TableCounts> {
  const [row] = await app.query<TableCounts>(
    `select (select count(*)::int from users) as users,
            (select count(*)::int from organizations) as organizations,
            (select count(*)::int from memberships) as memberships,
            (select count(*)::int from workspaces) as workspaces,
            (select count(*)::int from idempotency_keys) as idempotency_keys`,
  );
  return row!;
}
