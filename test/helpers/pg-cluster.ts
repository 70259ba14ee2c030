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
  /**
   * Where initdb puts the cluster's data directory (default: `data/` in the temp dir), e.g. a
   * path inside a small tmpfs the test mounted. It must not exist yet, and its parent must be
   * writable by the postgres user. `destroy()` removes it.
   */
  dataDir?: string;
  /**
   * `initdb --waldir`: the WAL in a directory of its own (an absolute path that must not exist
   * yet, its parent writable by the postgres user), so that filling the data directory's disk
   * refuses writes instead of stopping the server. `destroy()` removes it.
   */
  walDir?: string;
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
const alive = new Set<{ pgCtl: string; dataDir: string; dir: string; outside: string[] }>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const { pgCtl, dataDir, dir, outside } of alive) {
      try {
        const [command, argv] = asPostgresUser(pgCtl, ['-D', dataDir, 'stop', '-m', 'immediate', '-w']);
        execFileSync(command, argv, { cwd: dir, stdio: 'ignore', timeout: 10_000 });
      } catch {
        // not running
      }
      for (const path of [dir, ...outside]) rmSync(path, { recursive: true, force: true });
    }
  });
}

/** A cluster's temp dir and its paths, before it has a port. */
interface ClusterFiles {
  bin: string;
  pgCtl: string;
  dir: string;
  dataDir: string;
  logPath: string;
  /** `initdb --waldir`, when the WAL lives apart from the data directory. */
  walDir?: string;
  entry: { pgCtl: string; dataDir: string; dir: string; outside: string[] };
}

/** A fresh temp dir owned by the postgres user, registered for the exit hook. */
function newClusterFiles(prefix: string, paths: { dataDir?: string; walDir?: string } = {}): ClusterFiles {
  const bin = postgresBinDir();
  const pgCtl = join(bin, 'pg_ctl');
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chownToPostgres(dir);
  const dataDir = paths.dataDir ?? join(dir, 'data');
  // Paths outside the temp dir that are the cluster's own (removed with it).
  const outside = [paths.dataDir, paths.walDir].filter((path): path is string => path !== undefined);
  const entry = { pgCtl, dataDir, dir, outside };
  alive.add(entry);
  installExitHook();
  return { bin, pgCtl, dir, dataDir, walDir: paths.walDir, logPath: join(dir, 'server.log'), entry };
}

/** Removes a cluster's temp dir and the paths of its own outside it. */
function removeFiles({ dir, entry }: ClusterFiles): void {
  for (const path of [dir, ...entry.outside]) rmSync(path, { recursive: true, force: true });
}

/** Appends `settings` to the cluster's postgresql.conf (a later line wins over an earlier one). */
function appendSettings(dataDir: string, settings: Record<string, string>, comment: string): void {
  appendFileSync(
    join(dataDir, 'postgresql.conf'),
    `\n# ${comment}\n${Object.entries(settings)
      .map(([k, v]) => `${k} = ${v}`)
      .join('\n')}\n`,
  );
}

/** Starts the cluster on a free port (written to postgresql.conf); picks again a few times if the port was taken meanwhile. */
async function startOnFreePort({ pgCtl, dataDir, dir, logPath }: ClusterFiles): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    appendFileSync(join(dataDir, 'postgresql.conf'), `port = ${port}\n`);
    try {
      await runPg(pgCtl, ['-D', dataDir, '-l', logPath, '-w', '-t', '30', 'start'], dir, logPath);
      return port;
    } catch (error) {
      const log = existsSync(logPath) ? readFileSync(logPath, 'utf8') : '';
      if (attempt >= 3 || !/could not bind|already in use/i.test(log)) throw error;
    }
  }
}

/**
 * `pg_basebackup -R -X stream` of the server at `sourcePort` into `files.dataDir` (which must not
 * exist), then the settings that make the copy a cluster of its own: its socket dir, no
 * synchronous standby of its own (a copy of a primary that waits for one would hang every commit
 * once promoted), and `extra`. The port is the caller's to append.
 */
async function baseBackup(files: ClusterFiles, sourcePort: number, extra: Record<string, string> = {}): Promise<void> {
  await runPg(
    join(files.bin, 'pg_basebackup'),
    ['-h', '127.0.0.1', '-p', String(sourcePort), '-U', 'postgres', '-D', files.dataDir, '-R', '-X', 'stream', '-c', 'fast', '--no-sync'],
    files.dir,
  );
  appendSettings(
    files.dataDir,
    { unix_socket_directories: `'${files.dir}'`, hot_standby: 'on', synchronous_standby_names: "''", ...extra },
    'a standby of the disposable test cluster on port ' + String(sourcePort),
  );
}

/** A cluster of this helper that can take part in replication. */
export interface ReplicationMember extends DisposableCluster {
  /** `pg_ctl promote -w`: a standby leaves recovery and accepts writes (it fails on a cluster that is no standby). */
  promote(): Promise<void>;
  /**
   * Makes this cluster a hot standby of `source` on its same port: stops it (immediate) if it
   * runs, throws its data away, takes a fresh `pg_basebackup -R` of `source`, and starts it. (The
   * simple, reliable way to bring an old primary back after a failover: no pg_rewind.)
   */
  rebuildAsStandbyOf(source: DisposableCluster): Promise<void>;
}

/** The handle over a cluster's files, running on `port`. */
function clusterHandle(files: ClusterFiles, port: number): ReplicationMember {
  const { pgCtl, dir, dataDir, logPath, entry } = files;
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let running = true;
  let destroyed = false;
  const stop = async (mode: StopMode = 'fast') => {
    if (!running) return;
    await runPg(pgCtl, ['-D', dataDir, 'stop', '-m', mode, '-w', '-t', '30'], dir, logPath);
    running = false;
  };
  const start = async () => {
    if (destroyed) throw new Error('the cluster was destroyed');
    if (running) return;
    await runPg(pgCtl, ['-D', dataDir, '-l', logPath, '-w', '-t', '30', 'start'], dir, logPath);
    running = true;
  };
  return {
    url,
    port,
    dir,
    isRunning: () => running,
    log: () => (existsSync(logPath) ? readFileSync(logPath, 'utf8') : ''),
    stop,
    start,
    async promote() {
      await runPg(pgCtl, ['-D', dataDir, 'promote', '-w', '-t', '30'], dir, logPath);
    },
    async rebuildAsStandbyOf(source: DisposableCluster) {
      if (destroyed) throw new Error('the cluster was destroyed');
      await stop('immediate');
      rmSync(dataDir, { recursive: true, force: true });
      await baseBackup(files, source.port, {});
      appendFileSync(join(dataDir, 'postgresql.conf'), `port = ${port}\n`);
      await start();
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
      removeFiles(files);
    },
  };
}

/** initdb into `files` with the helper's settings (plus `settings`), then starts it on a free port. */
async function initAndStart(files: ClusterFiles, settings: Record<string, string> = {}): Promise<ReplicationMember> {
  try {
    await runPg(
      join(files.bin, 'initdb'),
      [
        '-D',
        files.dataDir,
        ...(files.walDir ? [`--waldir=${files.walDir}`] : []),
        '-U',
        'postgres',
        '-A',
        'trust',
        '-E',
        'UTF8',
        '--locale=C',
        '--no-sync',
        '--no-instructions',
      ],
      files.dir,
    );
    appendSettings(
      files.dataDir,
      {
        listen_addresses: "'127.0.0.1'",
        unix_socket_directories: `'${files.dir}'`,
        fsync: 'off',
        synchronous_commit: 'off',
        full_page_writes: 'off',
        max_connections: '100',
        shared_buffers: '32MB',
        ...settings,
      },
      'disposable test cluster',
    );
    return clusterHandle(files, await startOnFreePort(files));
  } catch (error) {
    alive.delete(files.entry);
    removeFiles(files);
    throw error;
  }
}

/**
 * initdb (as the postgres user, trust auth, no fsync) into a fresh temp dir, then starts it on
 * 127.0.0.1 at a free port, its socket in the temp dir. Settings live in postgresql.conf, so
 * `start()` after `stop()` comes back on the same port.
 */
export async function startDisposableCluster(options: DisposableClusterOptions = {}): Promise<DisposableCluster> {
  return initAndStart(newClusterFiles('pg-cluster-', { dataDir: options.dataDir, walDir: options.walDir }), options.settings);
}

/** libpq's `target_session_attrs` values. */
export type TargetSessionAttrs = 'any' | 'read-write' | 'read-only' | 'primary' | 'standby' | 'prefer-standby';

/** `postgres://postgres@127.0.0.1:P1,127.0.0.1:P2/postgres?target_session_attrs=…`: the clusters' hosts, in the order given. */
export function multiHostUrl(clusters: readonly DisposableCluster[], attrs: TargetSessionAttrs = 'read-write'): string {
  return `postgres://postgres@${clusters.map((c) => `127.0.0.1:${c.port}`).join(',')}/postgres?target_session_attrs=${attrs}`;
}

export interface ReplicatedPairOptions {
  /** Extra `postgresql.conf` settings of the primary (the standby's copy of its configuration has them too). */
  settings?: Record<string, string>;
  /**
   * Synchronous replication: the primary acknowledges a commit only once the standby has it
   * (`synchronous_standby_names = '*'`, `synchronous_commit = on`). A test that asserts "every
   * acknowledged write survives the failover" needs it: asynchronous replication may lose the last
   * commits a crashed primary acknowledged (the database's loss, not the service's). The standby
   * (and any cluster rebuilt from it) has no synchronous standby of its own.
   */
  synchronous?: boolean;
}

export interface ReplicatedPair {
  /** The primary (initdb'd; `wal_level = replica`, WAL senders, replication from 127.0.0.1 trusted). */
  primary: ReplicationMember;
  /** A hot standby streaming from the primary (`pg_basebackup -R -X stream`), on a port of its own. */
  standby: ReplicationMember;
  /** The multi-host URL naming the primary first, then the standby (the ports they were started on). */
  multiHostUrl(attrs?: TargetSessionAttrs): string;
  /** Destroys both; safe to call twice. */
  destroy(): Promise<void>;
}

/**
 * A primary and a streaming hot standby of it, each a disposable cluster of its own (see
 * startDisposableCluster): for failover tests. The standby is started and streaming when this
 * resolves (it may still be replaying the last of the base backup: wait for a row, not a clock).
 */
export async function startReplicatedPair(options: ReplicatedPairOptions = {}): Promise<ReplicatedPair> {
  const primary = await initAndStart(newClusterFiles('pg-primary-'), {
    wal_level: 'replica',
    max_wal_senders: '10',
    wal_keep_size: "'128MB'",
    hot_standby: 'on',
    ...(options.synchronous ? { synchronous_commit: 'on', synchronous_standby_names: "'*'" } : {}),
    ...options.settings,
  });
  let standby: ReplicationMember | undefined;
  try {
    // initdb -A trust lets 127.0.0.1 in for replication already; make sure of it whatever the version's default.
    const hbaPath = join(primary.dir, 'data', 'pg_hba.conf');
    if (!/^host\s+replication\s+all\s+127\.0\.0\.1\/32\s+trust/m.test(readFileSync(hbaPath, 'utf8'))) {
      appendFileSync(hbaPath, '\nhost replication all 127.0.0.1/32 trust\n');
      await runPg(join(postgresBinDir(), 'pg_ctl'), ['-D', join(primary.dir, 'data'), 'reload'], primary.dir);
    }
    const files = newClusterFiles('pg-standby-');
    try {
      await baseBackup(files, primary.port);
      standby = clusterHandle(files, await startOnFreePort(files));
    } catch (error) {
      alive.delete(files.entry);
      rmSync(files.dir, { recursive: true, force: true });
      throw error;
    }
  } catch (error) {
    await primary.destroy();
    throw error;
  }
  const pair: ReplicatedPair = {
    primary,
    standby,
    multiHostUrl: (attrs = 'read-write') => multiHostUrl([pair.primary, pair.standby], attrs),
    async destroy() {
      await Promise.allSettled([pair.standby.destroy(), pair.primary.destroy()]);
    },
  };
  return pair;
}
