import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import postgres from 'postgres';
import type { TestProject } from 'vitest/node';
import { openPostgres, wrapPglite } from '../../src/db/client';
import { runMigrations } from '../../src/db/migrate';
import { databaseUrlFor } from './database-url';

declare module 'vitest' {
  export interface ProvidedContext {
    pgliteSnapshot: string;
    templateDatabase: string | null;
  }
}

/**
 * Migrates once per run: a PGlite snapshot every test file restores (fast), and, when
 * DATABASE_URL is set, a template database every test file copies.
 */
export default async function setup(project: TestProject) {
  const dir = mkdtempSync(join(tmpdir(), 'workspaces-test-'));
  const pglite = wrapPglite(await PGlite.create());
  await runMigrations(pglite);
  const snapshotPath = join(dir, 'migrated.tar');
  writeFileSync(snapshotPath, Buffer.from(await (await pglite.pglite!.dumpDataDir('none')).arrayBuffer()));
  await pglite.close();
  project.provide('pgliteSnapshot', snapshotPath);

  const serverUrl = process.env.DATABASE_URL;
  let template: string | null = null;
  if (serverUrl) {
    template = `ws_template_${process.pid}_${Date.now()}`;
    const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database "${template}"`);
    const handle = openPostgres({ url: databaseUrlFor(serverUrl, template), prepare: true, max: 2 });
    await runMigrations(handle);
    await handle.close();
    await admin.end();
  }
  project.provide('templateDatabase', template);

  return async () => {
    rmSync(dir, { recursive: true, force: true });
    if (serverUrl && template) {
      const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
      await admin.unsafe(`drop database if exists "${template}" with (force)`);
      await admin.end();
    }
  };
}
