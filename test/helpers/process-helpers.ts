import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';

/** The repository root: the real entry is started from here, as `npm start` would. */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * How long a start may take: tsx compiles the entry and PGlite runs initdb on a fresh
 * directory (seconds alone, far more on 2 cores shared with other test files).
 */
export const START_TIMEOUT_MS = 90_000;

export interface ServerProcess {
  child: ChildProcess;
  pid: number;
  /** Everything written to stdout / stderr so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or the signal's name) once the process has ended. */
  exited: Promise<number | NodeJS.Signals>;
  /** Resolves with the base URL once the process logs that it listens and /healthz answers 200. */
  ready(timeoutMs?: number): Promise<string>;
  /** SIGKILLs the process if it is still running (for cleanup after a failed assertion). */
  kill(): Promise<void>;
  /** The pid of the server itself, from its "listening" log line (under `npm start`, npm's child). */
  serverPid(): number | undefined;
}

/**
 * The environment a process gets: only what a shell would need plus `env`, so nothing of the
 * test runner's (NODE_ENV=test, DATABASE_URL, JWT_SECRET …) leaks into "no configuration".
 */
export function processEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = {};
  for (const key of ['PATH', 'HOME', 'TMPDIR', 'LANG', 'TZ']) {
    if (process.env[key] !== undefined) base[key] = process.env[key];
  }
  return { ...base, ...env };
}

/**
 * How the service is started: `node --import tsx src/main.ts` directly, through `npm start`
 * as the README says (the process is then npm itself), or the production build (`npm run
 * build` first) with plain `node`.
 */
export type StartCommand = 'tsx' | 'npm-start' | 'production';

const COMMANDS: Record<StartCommand, [string, string[]]> = {
  tsx: [process.execPath, ['--import', 'tsx', 'src/main.ts']],
  'npm-start': ['npm', ['start', '--silent']],
  production: [process.execPath, ['--enable-source-maps', 'dist/main.js']],
};

/** Starts the service in the repository with exactly `env` (see processEnv). */
export function startServerProcess(env: Record<string, string>, command: StartCommand = 'tsx'): ServerProcess {
  const [file, args] = COMMANDS[command];
  const child = spawn(file, args, {
    cwd: REPO_ROOT,
    env: processEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<number | NodeJS.Signals>((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? signal!));
  });
  let hasExited = false;
  void exited.then(() => (hasExited = true));

  return {
    child,
    pid: child.pid!,
    stdout: () => out,
    stderr: () => err,
    exited,
    async ready(timeoutMs = START_TIMEOUT_MS) {
      const deadline = Date.now() + timeoutMs;
      let port: number | undefined;
      while (Date.now() < deadline) {
        if (hasExited) {
          throw new Error(`the server exited before it was ready\nstderr: ${err}\nstdout: ${out}`);
        }
        port ??= listeningEntry(out)?.port;
        if (port !== undefined) {
          const ok = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2000) })
            .then((r) => r.status === 200)
            .catch(() => false);
          if (ok) return `http://127.0.0.1:${port}`;
        }
        await sleep(200);
      }
      throw new Error(`the server was not ready within ${timeoutMs} ms\nstderr: ${err}\nstdout: ${out}`);
    },
    async kill() {
      const server = listeningEntry(out)?.pid;
      if (!hasExited) {
        child.kill('SIGKILL');
        await exited;
      }
      // Under npm, the server is a child of its own: make sure it goes too.
      if (server && server !== child.pid) {
        try {
          process.kill(server, 'SIGKILL');
        } catch {
          // Gone already.
        }
      }
    },
    serverPid: () => listeningEntry(out)?.pid,
  };
}

/** main.ts's "listening" log line: its port (the process is started with PORT=0) and pid. */
function listeningEntry(stdout: string): { port: number; pid: number } | undefined {
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const entry = JSON.parse(line) as { msg?: unknown; port?: unknown; pid?: unknown };
      if (typeof entry.msg === 'string' && entry.msg.startsWith('listening') && typeof entry.port === 'number') {
        return { port: entry.port, pid: Number(entry.pid) };
      }
    } catch {
      // A partial line: read it again on the next poll.
    }
  }
  return undefined;
}

/** Resolves with the exit code, or rejects when the process is still running after `timeoutMs`. */
export async function exitWithin(proc: ServerProcess, timeoutMs: number): Promise<number | NodeJS.Signals> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the process did not exit within ${timeoutMs} ms\nstderr: ${proc.stderr()}`)), timeoutMs);
  });
  try {
    return await Promise.race([proc.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Non-empty stderr lines. */
export const stderrLines = (proc: ServerProcess) =>
  proc
    .stderr()
    .split('\n')
    .filter((line) => line.trim() !== '');

/** Holds a port on 127.0.0.1 (so a process told to use it finds it taken). */
export async function holdPort(): Promise<{ port: number; release: () => Promise<void> }> {
  const server: Server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  return { port: address.port, release: () => new Promise((resolve) => server.close(() => resolve())) };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
