import { execFileSync } from 'node:child_process';
import { chownSync } from 'node:fs';

/**
 * Running PostgreSQL's tools as the `postgres` OS user. initdb, postgres and pgbouncer refuse
 * to run as root, and tests (and CI) run as root here; as any other user, commands run as is.
 */

const isRoot = () => process.getuid?.() === 0;

/** `[command, args]` to spawn: wrapped in `runuser -u postgres --` when we are root. */
export function asPostgresUser(command: string, args: string[]): [string, string[]] {
  return isRoot() ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args];
}

/** Gives `path` to the `postgres` OS user when we are root, so a server running as it can write there. */
export function chownToPostgres(path: string): void {
  if (!isRoot()) return;
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  chownSync(path, uid, gid);
}
