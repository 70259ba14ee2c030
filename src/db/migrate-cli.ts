/** `npm run db:migrate`: applies the committed migrations to the configured database and exits. */
import { ConfigError, loadConfig } from '../config';
import { runMigrations } from './migrate';
import { openDatabase } from './open';

try {
  const config = loadConfig();
  const database = await openDatabase(config);
  try {
    await runMigrations(database);
    process.stdout.write(`Migrations applied (${database.engine})\n`);
  } finally {
    await database.close();
  }
} catch (error) {
  process.stderr.write(`${error instanceof ConfigError || error instanceof Error ? error.message.split('\n')[0] : String(error)}\n`);
  process.exit(1);
}
