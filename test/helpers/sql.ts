import postgres from 'postgres';
import { expect } from 'vitest';
import type { TestApp } from './app';

/** SQL the suites share: timestamps rendered the API's way, row counts of the tables a request may touch, and a raw transaction to hold locks with. */

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

/**
 * Runs `body` inside a raw transaction on a PostgreSQL connection of its own (not the app's
 * pool), rolled back afterwards: a test holds row locks with it while a request waits on them.
 */
export async function withRawTransaction(app: TestApp, body: (tx: postgres.ReservedSql) => Promise<void>): Promise<void> {
  expect(app.engine).toBe('postgres');
  const sql = postgres(app.config.DATABASE_URL!, { max: 1, onnotice: () => {} });
  try {
    const reserved = await sql.reserve();
    try {
      await reserved`begin`;
      await body(reserved);
    } finally {
      await reserved`rollback`.catch(() => {});
      reserved.release();
    }
  } finally {
    await sql.end();
  }
}
