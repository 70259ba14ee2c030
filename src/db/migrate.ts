import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import type { PgliteDatabase } from 'drizzle-orm/pglite';
import type { DatabaseHandle } from './client';

/**
 * The committed migrations: `drizzle/` at the repository root, found by walking up from this
 * module, so it is the same folder from `src/db/` (tsx) and from the bundle in `dist/`.
 */
export const MIGRATIONS_FOLDER = findMigrationsFolder(dirname(fileURLToPath(import.meta.url)));

function findMigrationsFolder(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    const candidate = join(dir, 'drizzle');
    if (existsSync(join(candidate, 'meta', '_journal.json'))) return candidate;
    if (dirname(dir) === dir) throw new Error(`No drizzle/meta/_journal.json above ${start}`);
  }
}

/** Arbitrary constant naming this service's migration lock among advisory locks. */
const MIGRATION_LOCK_KEY = 724_311_001;

/**
 * Applies the committed migrations. On PostgreSQL, under an advisory lock taken and
 * released on one reserved connection, so processes starting together don't race: the
 * others wait on the lock, then find the migrations applied. (The migrations themselves run
 * through the rest of the pool; drizzle's migrator cannot drive a reserved connection.) They
 * use a client of their own: waiting for another process's migrations is no request, and
 * must not meet the request pool's deadlines.
 */
export async function runMigrations(handle: DatabaseHandle): Promise<void> {
  if (handle.pglite) {
    await migratePglite(handle.db as unknown as PgliteDatabase, { migrationsFolder: MIGRATIONS_FOLDER });
    return;
  }
  const client = postgres(handle.migrationUrl!, { max: 2, onnotice: () => {}, connection: { application_name: 'workspaces-api-migrate' } });
  try {
    await migrateUnderLock(client);
  } finally {
    await client.end({ timeout: 5 });
  }
}

async function migrateUnderLock(client: postgres.Sql): Promise<void> {
  const reserved = await client.reserve();
  try {
    // Waiting for another process's migrations is no slow request: not even a role-level statement_timeout applies.
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
