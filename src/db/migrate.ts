import { fileURLToPath } from 'node:url';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import type { PgliteDatabase } from 'drizzle-orm/pglite';
import type { DatabaseHandle } from './client';

export const MIGRATIONS_FOLDER = fileURLToPath(new URL('../../drizzle', import.meta.url));

/** Arbitrary constant naming this service's migration lock among advisory locks. */
const MIGRATION_LOCK_KEY = 724_311_001;

/**
 * Applies the committed migrations. On PostgreSQL, under an advisory lock taken and
 * released on one reserved connection, so processes starting together don't race: the
 * others wait on the lock, then find the migrations applied. (The migrations themselves run
 * through the pool; drizzle's migrator cannot drive a reserved connection.)
 */
export async function runMigrations(handle: DatabaseHandle): Promise<void> {
  if (handle.pglite) {
    await migratePglite(handle.db as unknown as PgliteDatabase, { migrationsFolder: MIGRATIONS_FOLDER });
    return;
  }
  const client = handle.postgresClient!;
  const reserved = await client.reserve();
  try {
    // Waiting for another process's migrations is not a slow request: no statement timeout.
    await reserved`set statement_timeout = 0`;
    await reserved`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
    try {
      await migratePostgres(drizzlePostgres(client), { migrationsFolder: MIGRATIONS_FOLDER });
    } finally {
      await reserved`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`;
    }
  } finally {
    reserved.release();
  }
}
