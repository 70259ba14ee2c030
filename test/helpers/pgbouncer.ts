import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './free-port';
import { chownToPostgres } from './postgres-user';

/**
 * A private PgBouncer (transaction pooling) in front of a PostgreSQL server, for tests of the
 * app behind a pooler: there a server connection changes between transactions, so session
 * state (prepared statements, SET, advisory locks) must not leak across them.
 */

const run = promisify(execFile);

/** Debian's binary; the package is installed on first use. */
export const PGBOUNCER_BIN = '/usr/sbin/pgbouncer';

/**
 * Startup parameters PgBouncer 1.18 would refuse ("unsupported startup parameter") and so must
 * ignore: postgres.js sends `extra_float_digits`/`options` only when asked, but the app sends
 * `statement_timeout` (see src/db/client.ts). Ignored means dropped: behind this bouncer the
 * server-side statement timeout is NOT applied. (`application_name` and `client_encoding`
 * PgBouncer tracks itself.)
 */
export const IGNORED_STARTUP_PARAMETERS = ['extra_float_digits', 'options', 'statement_timeout'];

export type PoolMode = 'transaction' | 'session' | 'statement';

export interface PgBouncerOptions {
  /** The server to pool, e.g. `postgres://postgres@127.0.0.1:5432/postgres`: host, port, user (and password) are used. */
  targetUrl: string;
  poolMode?: PoolMode;
  maxClientConn?: number;
  defaultPoolSize?: number;
  /** Extra `[pgbouncer]` settings, e.g. `{ query_wait_timeout: '5' }`. */
  settings?: Record<string, string>;
}

export interface PgBouncer {
  readonly host: string;
  readonly port: number;
  /** A client URL for `database` through the bouncer (default: the target URL's database). */
  url(database?: string): string;
  /** PgBouncer's log so far (for failure messages). */
  log(): string;
  /** Stops it (SIGTERM, then SIGKILL after 2 s) and removes its dir; safe to call twice. */
  stop(): Promise<void>;
}

let installing: Promise<void> | undefined;

/**
 * Installs Debian's pgbouncer if it is missing, once per process (and under a file lock across
 * processes, since test files run in parallel workers). The package's own service must not
 * start: a policy-rc.d that forbids it is put in place for the install when the machine has
 * none, and a service an init system started anyway is stopped. Ours never uses port 6432.
 */
export function ensurePgBouncerInstalled(): Promise<void> {
  if (existsSync(PGBOUNCER_BIN)) return Promise.resolve();
  installing ??= (async () => {
    if (process.getuid?.() !== 0) {
      throw new Error(`${PGBOUNCER_BIN} is missing and only root can install it: apt-get install pgbouncer`);
    }
    const script = `
      set -e
      [ -x ${PGBOUNCER_BIN} ] && exit 0
      made_policy=
      if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
      fi
      status=0
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer; } || status=$?
      if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
      if [ -d /run/systemd/system ]; then systemctl stop pgbouncer >/dev/null 2>&1 || true; fi
      if [ -x /etc/init.d/pgbouncer ]; then /etc/init.d/pgbouncer stop >/dev/null 2>&1 || true; fi
      exit $status
    `;
    try {
      await run('flock', ['/tmp/.pgbouncer-install.lock', 'sh', '-c', script], { timeout: 300_000, encoding: 'utf8' });
    } catch (error) {
      const e = error as { stdout?: string; stderr?: string; message: string };
      throw new Error(`installing pgbouncer failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`, { cause: error });
    }
    if (!existsSync(PGBOUNCER_BIN)) throw new Error(`apt-get installed pgbouncer but ${PGBOUNCER_BIN} is missing`);
  })();
  installing.catch(() => (installing = undefined));
  return installing;
}

/** Bouncers alive in this process: killed at exit if a test forgot (or crashed before) stop(). */
const alive = new Set<{ child: ChildProcess; dir: string }>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const { child, dir } of alive) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

/** Resolves once something accepts TCP connections on `port`. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A `key=value` for PgBouncer's connection strings (values with spaces or quotes are single-quoted). */
function connValue(key: string, value: string): string {
  return /^[^\s'\\]+$/.test(value) ? `${key}=${value}` : `${key}='${value.replace(/'/g, "''")}'`;
}

/**
 * Installs PgBouncer if needed, then starts a private one on 127.0.0.1 at a free port, in a temp
 * dir, in the foreground as a child of this process (as the postgres OS user when we are root:
 * PgBouncer refuses root). Every database name a client asks for is passed through to the
 * target server (`*` entry), logging in as the target URL's user whatever user the client
 * names (`auth_type = any`).
 */
export async function startPgBouncer(options: PgBouncerOptions): Promise<PgBouncer> {
  await ensurePgBouncerInstalled();
  const target = new URL(options.targetUrl);
  const targetUser = decodeURIComponent(target.username) || 'postgres';
  const targetDatabase = decodeURIComponent(target.pathname.slice(1)) || targetUser;
  const server = [
    connValue('host', target.hostname || '127.0.0.1'),
    connValue('port', target.port || '5432'),
    connValue('user', targetUser),
    ...(target.password ? [connValue('password', decodeURIComponent(target.password))] : []),
  ].join(' ');

  const dir = mkdtempSync(join(tmpdir(), 'pgbouncer-'));
  chownToPostgres(dir);
  const logPath = join(dir, 'pgbouncer.log');
  const configPath = join(dir, 'pgbouncer.ini');
  const readLog = () => (existsSync(logPath) ? readFileSync(logPath, 'utf8') : '');

  const start = async (port: number): Promise<ChildProcess> => {
    const settings: Record<string, string> = {
      listen_addr: '127.0.0.1',
      listen_port: String(port),
      unix_socket_dir: '',
      auth_type: 'any',
      pool_mode: options.poolMode ?? 'transaction',
      max_client_conn: String(options.maxClientConn ?? 200),
      default_pool_size: String(options.defaultPoolSize ?? 20),
      ignore_startup_parameters: IGNORED_STARTUP_PARAMETERS.join(','),
      logfile: logPath,
      // Fault tests restart the server under it: retry a failed server login after 1 s, not 15.
      server_login_retry: '1',
      server_connect_timeout: '5',
      ...options.settings,
    };
    writeFileSync(
      configPath,
      `[databases]\n* = ${server}\n\n[pgbouncer]\n${Object.entries(settings)
        .map(([k, v]) => `${k} = ${v}`)
        .join('\n')}\n`,
    );
    const args = process.getuid?.() === 0 ? ['-u', 'postgres', configPath] : [configPath];
    const child = spawn(PGBOUNCER_BIN, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', () => {});
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`pgbouncer exited (${child.exitCode ?? child.signalCode})\n${stderr}\n${readLog()}`);
      }
      if (await accepts(port)) {
        // Once started it needs nothing from us: let a test process exit without waiting on it.
        child.unref();
        (child.stderr as unknown as { unref?: () => void }).unref?.();
        return child;
      }
      await sleep(50);
    }
    child.kill('SIGKILL');
    throw new Error(`pgbouncer did not listen on ${port} within 10 s\n${stderr}\n${readLog()}`);
  };

  let port = 0;
  let child: ChildProcess | undefined;
  try {
    // The free port may be taken between the pick and the bind: pick again a few times.
    for (let attempt = 1; !child; attempt++) {
      port = await freePort();
      try {
        child = await start(port);
      } catch (error) {
        if (attempt >= 3 || !/bind|in use/i.test(String(error))) throw error;
      }
    }
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const entry = { child, dir };
  alive.add(entry);
  installExitHook();

  let stopped = false;
  return {
    host: '127.0.0.1',
    port,
    url(database = targetDatabase) {
      return `postgres://${encodeURIComponent(targetUser)}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
    },
    log: readLog,
    async stop() {
      if (stopped) return;
      stopped = true;
      const proc = entry.child;
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 2_000);
        await exited;
        clearTimeout(timer);
      }
      alive.delete(entry);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
