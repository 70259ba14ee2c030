/**
 * Child processes (the service in its production start, the baseline), free ports, and what
 * /proc says about a process: its CPU time and resident memory.
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { freePort } from '../test/helpers/free-port';
import { fileURLToPath } from 'node:url';

/** The repository root: the service is started from here, as `npm run start:prod` would. */
export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Starting includes migrations (a no-op on a migrated database) or PGlite's initdb: seconds on a busy 2-core machine. */
const START_TIMEOUT_MS = 60_000;
/** The service drains in-flight requests for up to 10 s after SIGTERM; nothing is in flight when the bench stops it. */
const STOP_TIMEOUT_MS = 5_000;

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A started HTTP server process. */
export interface Server {
  name: string;
  url: string;
  pid: number;
  /** Stops it (SIGTERM, then SIGKILL) and waits for its exit. */
  stop(): Promise<void>;
}

const children = new Set<ChildProcess>();

// Whatever way the bench ends, no child outlives it: an exit handler can only do synchronous
// work, so this is a plain SIGKILL; orderly stops happen before it through Server.stop.
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** Only what a process needs from the bench's environment, so nothing of the caller's shell (a LOG_LEVEL, a RATE_LIMIT_*) changes what is measured. */
export function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const key of ['PATH', 'HOME', 'TMPDIR', 'LANG', 'TZ']) {
    if (process.env[key] !== undefined) env[key] = process.env[key];
  }
  return env;
}

/**
 * Spawns `node <args>` and waits until GET `readyPath` answers 200. stdout goes to /dev/null
 * (the service logs a line per request at info: reading it would spend the bench's CPU, which
 * shares the machine's two cores with the server); stderr is kept (its tail) for a failure message.
 */
export async function startProcess(name: string, args: string[], env: NodeJS.ProcessEnv, port: number, readyPath: string): Promise<Server> {
  const child = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    env: { ...baseEnv(), ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
    // Its own process group: a Ctrl-C in the terminal reaches only the bench, which stops the children itself.
    detached: true,
  });
  if (child.pid === undefined) throw new Error(`could not start ${name}`);
  children.add(child);
  const pid = child.pid;
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
  let exitCode: number | string | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exitCode = code ?? signal ?? 'unknown';
      children.delete(child);
      resolve();
    }),
  );
  const stop = async () => {
    if (exitCode !== undefined) return;
    child.kill('SIGTERM');
    const killed = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(killed);
  };

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exitCode !== undefined) throw new Error(`${name} exited (${exitCode}) before it was ready:\n${stderr.trim()}`);
    const ready = await fetch(`${url}${readyPath}`, { signal: AbortSignal.timeout(2000) })
      .then(async (response) => (await response.arrayBuffer(), response.status === 200))
      .catch(() => false);
    if (ready) return { name, url, pid, stop };
    await sleep(100);
  }
  await stop();
  throw new Error(`${name} was not ready within ${START_TIMEOUT_MS / 1000} s:\n${stderr.trim()}`);
}

export interface ServiceSettings {
  name: string;
  jwtSecret: string;
  /** Unset: the embedded database in `dataDir`. */
  databaseUrl?: string;
  dataDir?: string;
  logLevel?: 'info' | 'warn';
  prepare?: boolean;
  /** Run under `node --cpu-prof`, writing the profile into this directory at exit. */
  cpuProfileDir?: string;
}

/** The service as production runs it: the esbuild bundle under plain node, NODE_ENV=production. */
export async function startService(settings: ServiceSettings): Promise<Server> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: String(port),
    JWT_SECRET: settings.jwtSecret,
    LOG_LEVEL: settings.logLevel ?? 'info',
    // The limiter runs (its cost is part of every request) but never refuses the bench's load.
    RATE_LIMIT_PER_MINUTE: '1000000',
    DATABASE_PREPARE: String(settings.prepare ?? true),
    ...(settings.databaseUrl ? { DATABASE_URL: settings.databaseUrl } : { DATA_DIR: settings.dataDir }),
  };
  // /readyz: the database answers too, not only the process.
  const profiling = settings.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${settings.cpuProfileDir}`] : [];
  return startProcess(settings.name, [...profiling, '--enable-source-maps', 'dist/main.js'], env, port, '/readyz');
}

export async function startBaseline(name: string, bundle: string, databaseUrl: string, jwtSecret: string): Promise<Server> {
  const port = await freePort();
  const env = { BASELINE_PORT: String(port), BASELINE_DATABASE_URL: databaseUrl, BASELINE_JWT_SECRET: jwtSecret };
  return startProcess(name, [bundle], env, port, '/healthz');
}

/** A command run to its end (npm run build, the migrations) with exactly `env`; its output on failure. */
export function runToEnd(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let output = '';
    const keep = (chunk: Buffer) => (output = (output + chunk.toString('utf8')).slice(-4000));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.once('error', reject);
    child.once('exit', (code) => {
      children.delete(child);
      if (code === 0) resolve();
      else reject(new Error(`${command} ${args.join(' ')} failed (exit ${code}):\n${output.trim()}`));
    });
  });
}

/** Clock ticks per second for /proc/<pid>/stat times: Linux fixes USER_HZ at 100 on every common architecture. */
const USER_HZ = 100;

/** CPU time (user + system) the process has used, in µs. */
export function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / USER_HZ;
}

/** Resident memory in KiB, or undefined when the process is gone. */
export function rssKb(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Samples the processes' VmRSS every 200 ms until stopped; the maximum per pid. */
export function sampleRss(pids: number[]): () => Map<number, number> {
  const max = new Map<number, number>();
  const sample = () => {
    for (const pid of pids) {
      const kb = rssKb(pid);
      if (kb !== undefined && kb > (max.get(pid) ?? 0)) max.set(pid, kb);
    }
  };
  sample();
  const timer = setInterval(sample, 200);
  return () => {
    clearInterval(timer);
    sample();
    return max;
  };
}
