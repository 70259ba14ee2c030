import { randomUUID } from 'node:crypto';
import { eq, inArray } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { openPostgres, PREPARED_STATEMENT_MAX_CHARS, type DatabaseHandle } from '../src/db/client';
import { workspaces } from '../src/db/schema';
import { databaseUrlFor } from './helpers/database-url';

/**
 * DATABASE_PREPARE does what it says: on, the statements drizzle sends are prepared on the
 * connection (PostgreSQL lists them in pg_prepared_statements, which shows the current
 * session's); off, none are (PgBouncer's transaction mode). One connection per handle, so the
 * check reads the session that ran the query.
 */
const serverUrl = process.env.DATABASE_URL;

describe.runIf(Boolean(serverUrl))('DATABASE_PREPARE', () => {
  const name = `ws_prepare_${randomUUID().replace(/-/g, '')}`;
  let admin: postgres.Sql;
  let url: string;

  beforeAll(async () => {
    admin = postgres(serverUrl!, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database "${name}" template "${inject('templateDatabase')}"`);
    url = databaseUrlFor(serverUrl!, name);
  });
  afterAll(async () => {
    await admin?.unsafe(`drop database if exists "${name}" with (force)`);
    await admin?.end();
  });

  async function preparedAfterQueries(prepare: boolean): Promise<string[]> {
    const database: DatabaseHandle = openPostgres({ url, prepare, max: 1 });
    try {
      await database.db.select({ id: workspaces.id }).from(workspaces).where(eq(workspaces.id, randomUUID()));
      await database.db.transaction((tx) => tx.select({ id: workspaces.id }).from(workspaces).limit(1));
      const rows = await database.postgresClient!.unsafe<{ statement: string }[]>(
        `select statement from pg_prepared_statements where statement like '%"workspaces"%'`,
        [],
        { prepare: false },
      );
      return rows.map((r) => r.statement);
    } finally {
      await database.close();
    }
  }

  it('on: every query drizzle sends is prepared on its connection, in and out of transactions', async () => {
    const statements = await preparedAfterQueries(true);
    expect(statements.some((s) => s.includes('where "workspaces"."id" = $1') && !/limit/.test(s))).toBe(true);
    expect(statements.some((s) => /limit \$1/.test(s))).toBe(true);
  });

  it('off: nothing is prepared', async () => {
    expect(await preparedAfterQueries(false)).toEqual([]);
  });

  it('never prepares a statement longer than the bound (a batch insert: each size would be a new statement)', async () => {
    const database = openPostgres({ url, prepare: true, max: 1 });
    try {
      // A parameterised statement (one without parameters is never prepared by postgres.js anyway).
      const ids = Array.from({ length: 2000 }, () => randomUUID());
      const query = database.db.select({ id: workspaces.id }).from(workspaces).where(inArray(workspaces.id, ids));
      expect(query.toSQL().sql.length).toBeGreaterThan(PREPARED_STATEMENT_MAX_CHARS);
      await query;
      const rows = await database.postgresClient!.unsafe<{ n: number }[]>(
        `select count(*)::int as n from pg_prepared_statements where statement like '%"workspaces"."id" in (%'`,
        [],
        { prepare: false },
      );
      expect(rows[0]!.n).toBe(0);
    } finally {
      await database.close();
    }
  });
});
