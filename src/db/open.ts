import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import type { Config } from '../config';
import { openPostgres, wrapPglite, type DatabaseHandle } from './client';
import { acquireDataDirLock } from './pglite-lock';

export const isInMemory = (dataDir: string) => dataDir === 'memory://';

/**
 * Opens the configured database: PostgreSQL when DATABASE_URL is set, else embedded
 * PGlite in DATA_DIR (locked against a second process) or in memory.
 */
export async function openDatabase(config: Config): Promise<DatabaseHandle> {
  if (config.DATABASE_URL) {
    return openPostgres({
      url: config.DATABASE_URL,
      migrationUrl: config.DATABASE_MIGRATION_URL,
      prepare: config.DATABASE_PREPARE,
      deadlineMs: config.DATABASE_DEADLINE_MS,
      max: config.DATABASE_POOL_MAX,
      idleTimeoutS: config.DATABASE_IDLE_TIMEOUT_S,
    });
  }
  if (isInMemory(config.DATA_DIR)) {
    return wrapPglite(await PGlite.create());
  }
  mkdirSync(config.DATA_DIR, { recursive: true });
  const release = acquireDataDirLock(join(config.DATA_DIR, 'pglite.lock'));
  try {
    const handle = wrapPglite(await PGlite.create(join(config.DATA_DIR, 'pglite')));
    return {
      ...handle,
      // Closing releases the data directory's lock too.
      close: async () => {
        try {
          await handle.close();
        } finally {
          release();
        }
      },
    };
  } catch (error) {
    release();
    throw error;
  }
}
