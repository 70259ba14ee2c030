import { execFile, execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './free-port';
import { asPostgresUser, chownToPostgres } from './postgres-user';

/**
 * A PostgreSQL cluster of the test's own (initdb into a temp dir, its own port), for the tests
 * that must stop, crash or restart the database under the app. The machine's shared server
 * must never be stopped, so those tests get a disposable one instead.
 */

const run = promisify(execFile);

/** How `stop()` shuts the cluster down: `immediate` is a crash (no checkpoint, recovery on start); `fast` is a clean shutdown. */
export type StopMode = 'immediate' | 'fast';

export interface DisposableCluster {
  /** `postgres://postgres@127.0.0.1:PORT/postgres`: trust auth, no password. */
  readonly url: string;
  readonly port: number;
  /** The temp dir: `data/` (the cluster), `server.log`, and the Unix socket. */
  readonly dir: string;
  /** `pg_ctl stop -m mode`, waiting until the server is gone; a no-op when it is not running. */
  stop(mode?: StopMode): Promise<void>;
  /** Starts it again on the same port and waits until it accepts connections. */
  start(): Promise<void>;
  /** Whether the server is running now (as far as this helper started and stopped it). */
  isRunning(): boolean;
  /** The server log so far (for failure messages). */
  log(): string;
  /** Stops the server (immediate) and removes the dir; safe to call twice. */
  destroy(): Promise<void>;
}

export interface DisposableClusterOptions {
  /** Extra `postgresql.conf` settings, e.g. `{ max_connections: '50' }`. */
  settings?: Record<string, string>;
}

/** The newest installed server's bin dir, `/usr/lib/postgresql/<ver>/bin` (Debian's layout). */
export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((name) => /^\d+(\.\d+)?$/.test(name) && existsSync(join(root, name, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) throw new Error(`no PostgreSQL server binaries under ${root}/<version>/bin`);
  return join(root, versions[0]!, 'bin');
}

/** Runs a server binary as the postgres user; fails with its output (and the server log, if given). */
async function runPg(bin: string, args: string[], cwd: string, logPath?: string): Promise<string> {
  const [command, argv] = asPostgresUser(bin, args);
  try {
    const { stdout, stderr } = await run(command, argv, { cwd, encoding: 'utf8', timeout: 60_000 });
    return stdout + stderr;
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    const log = logPath && existsSync(logPath) ? `\nserver log:\n${readFileSync(logPath, 'utf8').slice(-4000)}` : '';
    throw new Error(`${[bin, ...args].join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}${log}`, { cause: error });
  }
}

/** Clusters alive in this process: stopped at exit if a test forgot (or crashed before) destroy(). */
const alive = new Set<{ pgCtl: string; dataDir: string; dir: string }>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const { pgCtl, dataDir, dir } of alive) {
      try {
        const [command, argv] = asPostgresUser(pgCtl, ['-D', dataDir, 'stop', '-m', 'immediate', '-w']);
        execFileSync(command, argv, { cwd: dir, stdio: 'ignore', timeout: 10_000 });
      } catch {
        // not running
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

/**
 * initdb (as the postgres user, trust auth, no fsync) into a fresh temp dir, then starts it on
 * 127.0.0.1 at a free port, its socket in the temp dir. Settings live in postgresql.conf, so
 * `start()` after `stop()` comes back on the same port.
 */
export async function startDisposableCluster(options: DisposableClusterOptions = {}): Promise<DisposableCluster> {
  const bin = postgresBinDir();
  const pgCtl = join(bin, 'pg_ctl');
  const dir = mkdtempSync(join(tmpdir(), 'pg-cluster-'));
  chownToPostgres(dir);
  const dataDir = join(dir, 'data');
  const logPath = join(dir, 'server.log');
  const entry = { pgCtl, dataDir, dir };
  alive.add(entry);
  installExitHook();

  let running = false;
  let port: number | undefined;
  try {
    await runPg(
      join(bin, 'initdb'),
      ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions'],
      dir,
    );
    const settings: Record<string, string> = {
      listen_addresses: "'127.0.0.1'",
      unix_socket_directories: `'${dir}'`,
      fsync: 'off',
      synchronous_commit: 'off',
      full_page_writes: 'off',
      max_connections: '100',
      shared_buffers: '32MB',
      ...options.settings,
    };
    appendFileSync(
      join(dataDir, 'postgresql.conf'),
      `\n# disposable test cluster\n${Object.entries(settings)
        .map(([k, v]) => `${k} = ${v}`)
        .join('\n')}\n`,
    );

    // The free port may be taken between the pick and the bind: pick again a few times.
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      appendFileSync(join(dataDir, 'postgresql.conf'), `port = ${port}\n`);
      try {
        await runPg(pgCtl, ['-D', dataDir, '-l', logPath, '-w', '-t', '30', 'start'], dir, logPath);
        running = true;
        break;
      } catch (error) {
        const log = existsSync(logPath) ? readFileSync(logPath, 'utf8') : '';
        if (attempt >= 3 || !/could not bind|already in use/i.test(log)) throw error;
      }
    }
  } catch (error) {
    alive.delete(entry);
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }

  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let destroyed = false;
  return {
    url,
    port,
    dir,
    isRunning: () => running,
    log: () => (existsSync(logPath) ? readFileSync(logPath, 'utf8') : ''),
    async stop(mode: StopMode = 'fast') {
      if (!running) return;
      await runPg(pgCtl, ['-D', dataDir, 'stop', '-m', mode, '-w', '-t', '30'], dir, logPath);
      running = false;
    },
    async start() {
      if (destroyed) throw new Error('the cluster was destroyed');
      if (running) return;
      await runPg(pgCtl, ['-D', dataDir, '-l', logPath, '-w', '-t', '30', 'start'], dir, logPath);
      running = true;
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      try {
        if (running) await runPg(pgCtl, ['-D', dataDir, 'stop', '-m', 'immediate', '-w', '-t', '30'], dir, logPath);
      } catch {
        // already gone: the dir goes anyway
      }
      running = false;
      alive.delete(entry);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
