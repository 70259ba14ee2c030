/**
 * `npm run soak`: an open-loop load generator for the issue "Load held".
 *
 * It starts the real service as a child process (so the server's RSS can be read from
 * /proc/<pid>/status), seeds a few users with workspaces, then sends requests at a fixed rate
 * for a bounded time whatever the service's answers take, and prints requests, errors by status,
 * latency percentiles and RSS at start and end, with a PASS/FAIL line against the targets
 * (0 errors, p99 < 150 ms, RSS growth after warm-up within 10 %). Warm-up requests count for
 * errors but not for latency; RSS start and end are medians over a few seconds, and only growth
 * fails (memory given back is not a leak).
 *
 * Open loop matters: a closed loop (send, wait, send) slows down with the server and hides
 * queueing. Here request n is due at start + n / rate and its latency is measured from that due
 * time, so a stalled server or a stalled generator shows up in the numbers instead of silently
 * lowering the rate (the "coordinated omission" trap). The generator's own lateness is reported
 * separately (scheduler lag) so the two can be told apart.
 *
 * Options (CLI flags win over env vars):
 *   --rate N      / SOAK_RATE            requests per second (default 200)
 *   --seconds N   / SOAK_SECONDS         length of the load, warm-up included (default 60)
 *   --warmup N    / SOAK_WARMUP_SECONDS  first seconds left out of latency stats and the RSS baseline (default 5)
 *   --url URL     target a running service (loopback only) instead of starting one
 *   --pid PID     with --url: the server's pid, so RSS can be read
 *   --json        print the report as JSON
 *   DATABASE_URL  when set (and no --url), the started service uses it; else a fresh embedded DB in a temp dir
 *
 * Exit code: 0 PASS, 1 FAIL (or setup failure), 2 bad arguments.
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

/** The repository root: the service is started from here, as `npm start` would. */
const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Targets from the issue. */
const TARGET_P99_MS = 150;
const TARGET_RSS_GROWTH_PCT = 10;
/** RSS at start and end is the median of the samples (one a second) over this long, at most. */
const RSS_WINDOW_MS = 5000;

/** Enough users and workspaces that reads spread over many rows and several organizations. */
const USERS = 5;
const WORKSPACES_PER_USER = 20;
/** Setup runs a few creates at once: faster than one by one, without being a load test of its own. */
const SETUP_CONCURRENCY = 4;

/** Every request gives up after this; a give-up counts as the error `timeout`. */
const REQUEST_TIMEOUT_MS = 10_000;
/** After the last request is sent, how long to wait for answers still in flight. */
const DRAIN_TIMEOUT_MS = 10_000;
/** tsx compiles the entry and PGlite runs initdb on a fresh directory: seconds, more on a busy 2-core machine. */
const START_TIMEOUT_MS = 90_000;
/** The service forces its own exit 10 s after SIGTERM; a little more before SIGKILL. */
const STOP_TIMEOUT_MS = 15_000;

const USAGE = `usage: npm run soak -- [--rate N] [--seconds N] [--warmup N] [--url http://127.0.0.1:PORT [--pid PID]] [--json]
env: SOAK_RATE (200), SOAK_SECONDS (60), SOAK_WARMUP_SECONDS (5), DATABASE_URL (else embedded DB in a temp dir)`;

/** A bad command line: printed with the usage, exit code 2. */
class UsageError extends Error {}

interface Options {
  rate: number;
  seconds: number;
  warmupSeconds: number;
  url?: string;
  pid?: number;
  json: boolean;
}

/** A positive (or, with `allowZero`, non-negative) finite number from a flag or an env var. */
function numberOption(name: string, raw: string | undefined, fallback: number, allowZero = false): number {
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new UsageError(`${name} must be a ${allowZero ? 'non-negative' : 'positive'} number (got ${JSON.stringify(raw)})`);
  }
  return value;
}

/**
 * Only loopback targets: this is a tool for a developer's machine, and a fixed-rate writer
 * pointed at a shared or production host by a typo would do real harm.
 */
function loopbackOrigin(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`--url is not a URL: ${raw}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--url must be http(s): ${raw}`);
  // URL keeps the brackets of an IPv6 host.
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) {
    throw new UsageError(`--url must point at 127.0.0.1, localhost or [::1], not ${url.hostname}`);
  }
  return url.origin;
}

function parseOptions(argv: string[], env: NodeJS.ProcessEnv): Options {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        rate: { type: 'string' },
        seconds: { type: 'string' },
        warmup: { type: 'string' },
        url: { type: 'string' },
        pid: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const { values } = parsed;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const rate = numberOption('rate', values.rate ?? env.SOAK_RATE, 200);
  const seconds = numberOption('seconds', values.seconds ?? env.SOAK_SECONDS, 60);
  const warmupSeconds = numberOption('warmup', values.warmup ?? env.SOAK_WARMUP_SECONDS, 5, true);
  if (warmupSeconds >= seconds) throw new UsageError(`the warm-up (${warmupSeconds} s) must be shorter than the run (${seconds} s)`);
  if (rate > 10_000) throw new UsageError('rate above 10000 req/s is beyond what one Node process can schedule');
  let pid: number | undefined;
  if (values.pid !== undefined) {
    if (values.url === undefined) throw new UsageError('--pid only goes with --url (a started server is measured anyway)');
    if (!/^\d+$/.test(values.pid)) throw new UsageError(`--pid must be a process id (got ${JSON.stringify(values.pid)})`);
    pid = Number(values.pid);
  }
  const url = values.url === undefined ? undefined : loopbackOrigin(values.url);
  return { rate, seconds, warmupSeconds, url, pid, json: values.json };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Progress goes to stderr so that `--json` leaves stdout to the report alone. */
const say = (line: string) => process.stderr.write(`soak: ${line}\n`);

/** VmRSS of a process in KiB, or undefined when it cannot be read (gone, not Linux, another user's). */
async function readRssKb(pid: number): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * TCP ports a process listens on, from its socket inodes matched against /proc/<pid>/net/tcp{,6}.
 * Needed because main.ts logs its "listening" line at info, which LOG_LEVEL=warn suppresses, and
 * the soak wants warn (a log line per request would tax the server being measured) and PORT=0 (no
 * race for a port picked in advance).
 */
async function listeningPorts(pid: number): Promise<number[]> {
  const inodes = new Set<string>();
  try {
    for (const fd of await readdir(`/proc/${pid}/fd`)) {
      const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      const match = /^socket:\[(\d+)\]$/.exec(link);
      if (match) inodes.add(match[1]!);
    }
  } catch {
    return [];
  }
  const ports = new Set<number>();
  for (const table of ['tcp', 'tcp6']) {
    const text = await readFile(`/proc/${pid}/net/${table}`, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      const fields = line.trim().split(/\s+/);
      const [local, state, inode] = [fields[1], fields[3], fields[9]];
      // 0A is TCP_LISTEN.
      if (local && state === '0A' && inode && inodes.has(inode)) ports.add(parseInt(local.split(':').pop()!, 16));
    }
  }
  return [...ports];
}

/**
 * CPU seconds (user + system) a process has used, from /proc/<pid>/stat. Both sides share the
 * machine's cores, so the server's and the soak's own share tell a saturated server from a
 * starved generator. Assumes USER_HZ = 100, which Linux fixes for /proc on every common arch.
 */
async function readCpuSeconds(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces), starting at field 3 (state).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/** A point to measure CPU use from: wall clock, the server's CPU seconds, the soak's own. */
interface CpuMark {
  atMs: number;
  server?: number;
  soak: number;
}

async function cpuMark(pid: number | undefined): Promise<CpuMark> {
  const own = process.cpuUsage();
  return {
    atMs: performance.now(),
    server: pid === undefined ? undefined : await readCpuSeconds(pid),
    soak: (own.user + own.system) / 1e6,
  };
}

// ---------------------------------------------------------------------------------------------
// The server process

/** Server log lines at warn or above, grouped by level, message and error code (a storm of one warning is one entry). */
interface ServerLogGroup {
  level: number;
  msg: string;
  code?: string;
  count: number;
  /** The first such line without pino's bookkeeping fields, since msg and code alone rarely say why. */
  example: string;
}

interface StartedServer {
  base: string;
  pid: number;
  child: ChildProcess;
  database: 'embedded' | 'postgres';
  exited: Promise<number | string>;
  /** Log lines at warn or above (pino level >= 40). */
  warnings: { count: number; groups: Map<string, ServerLogGroup> };
  stderr: () => string;
  cleanup: () => Promise<void>;
}

/**
 * Starts `node --import tsx src/main.ts` with only the variables it needs, so nothing of the
 * caller's shell (a RATE_LIMIT_*, a LOG_LEVEL=debug) changes what is measured.
 */
async function startServer(): Promise<StartedServer> {
  const databaseUrl = process.env.DATABASE_URL;
  const dataDir = databaseUrl ? undefined : await mkdtemp(join(tmpdir(), 'soak-data-'));
  const env: NodeJS.ProcessEnv = {};
  for (const key of ['PATH', 'HOME', 'TMPDIR', 'LANG', 'TZ']) {
    if (process.env[key] !== undefined) env[key] = process.env[key];
  }
  Object.assign(env, {
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    NODE_ENV: 'production',
    // 36 random bytes are 48 base64url characters.
    JWT_SECRET: randomBytes(36).toString('base64url'),
    // The soak measures the service, not its limiter (which would answer 429 at this rate).
    RATE_LIMIT_PER_MINUTE: '0',
    AUTH_RATE_LIMIT_PER_MINUTE: '0',
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : { DATA_DIR: dataDir }),
  });

  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group: a Ctrl-C in the terminal reaches only the soak, which then stops
    // the load, reports, and shuts the server down itself.
    detached: true,
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start the server');
  // Whatever way the soak ends, the server must not outlive it.
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);
  // An abort (a second Ctrl-C) leaves through process.exit, past the async cleanup below.
  const removeDataDirOnExit = () => dataDir && rmSync(dataDir, { recursive: true, force: true });
  process.on('exit', removeDataDirOnExit);

  let stderr = '';
  let pending = '';
  let port: number | undefined;
  const warnings = { count: 0, groups: new Map<string, ServerLogGroup>() };
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-20_000)));
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      const entry = parseLogLine(line);
      if (!entry) continue;
      if (port === undefined && typeof entry.port === 'number' && typeof entry.msg === 'string' && entry.msg.startsWith('listening')) {
        port = entry.port;
      }
      if (typeof entry.level === 'number' && entry.level >= 40) {
        warnings.count += 1;
        const msg = String(entry.msg);
        const code = typeof entry.code === 'string' ? entry.code : undefined;
        const key = `${entry.level} ${msg} ${code ?? ''}`;
        const group = warnings.groups.get(key);
        if (group) group.count += 1;
        else if (warnings.groups.size < 20) {
          const { level: _level, time: _time, pid: _pid, hostname: _hostname, msg: _msg, ...rest } = entry;
          warnings.groups.set(key, { level: entry.level, msg, code, count: 1, example: JSON.stringify(rest).slice(0, 1000) });
        }
      }
    }
  });
  let hasExited = false;
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => {
      hasExited = true;
      process.off('exit', killOnExit);
      resolve(code ?? signal ?? 'unknown');
    });
  });
  const cleanup = async () => {
    if (!hasExited) {
      child.kill('SIGKILL');
      await exited;
    }
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
    process.off('exit', removeDataDirOnExit);
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  try {
    while (Date.now() < deadline) {
      if (hasExited) throw new Error(`the server exited before it was ready\n${stderr.trim()}`);
      for (const candidate of port === undefined ? await listeningPorts(pid) : [port]) {
        const ok = await fetch(`http://127.0.0.1:${candidate}/healthz`, { signal: AbortSignal.timeout(2000) })
          .then(async (r) => (await r.arrayBuffer(), r.status === 200))
          .catch(() => false);
        if (ok) {
          return {
            base: `http://127.0.0.1:${candidate}`,
            pid,
            child,
            database: databaseUrl ? 'postgres' : 'embedded',
            exited,
            warnings,
            stderr: () => stderr,
            cleanup,
          };
        }
      }
      await sleep(200);
    }
    throw new Error(`the server was not ready within ${START_TIMEOUT_MS / 1000} s\n${stderr.trim()}`);
  } catch (error) {
    await cleanup();
    throw error;
  }
}

function parseLogLine(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** SIGTERM, as an orchestrator would, then the exit code (SIGKILL if it hangs past the service's own 10 s bound). */
async function stopServer(server: StartedServer): Promise<number | string> {
  server.child.kill('SIGTERM');
  const timer = setTimeout(() => server.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  try {
    return await server.exited;
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// Setup: users and workspaces the reads can target

interface Target {
  id: string;
  organizationId: string;
  token: string;
}

interface Tenant {
  token: string;
  organizationId: string;
}

/** A setup call that must succeed: anything else aborts the soak with the answer in the message. */
async function setupCall(base: string, method: string, path: string, token: string | undefined, body: unknown): Promise<unknown> {
  let response: Response;
  let text: string;
  try {
    response = await fetch(`${base}/api/v1${path}`, {
      method,
      headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS * 3),
    });
    text = await response.text();
  } catch (error) {
    // fetch says only "fetch failed"; the reason (ECONNREFUSED, a wrong port) is in its cause.
    throw new Error(`setup: ${method} ${base}/api/v1${path} failed: ${errorKind(error)}`, { cause: error });
  }
  if (!response.ok) throw new Error(`setup: ${method} ${path} answered ${response.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text) as unknown;
}

/** Reads a string at a dotted path of a parsed answer, failing loudly if the contract changed under us. */
function stringAt(value: unknown, path: string): string {
  let current: unknown = value;
  for (const key of path.split('.')) {
    current = typeof current === 'object' && current !== null ? (current as Record<string, unknown>)[key] : undefined;
  }
  if (typeof current !== 'string') throw new Error(`setup: the answer has no string at ${path}`);
  return current;
}

/** Varied overrides, so settings reads resolve more than the defaults and clones copy something. */
function seedSettings(i: number) {
  return {
    features: { beta: i % 2 === 0, soak_toggle: false, [`flag_${i % 7}`]: true },
    permissions: { allow_guests: i % 3 === 0, visibility: i % 2 === 0 ? 'private' : 'organization' },
    integrations: { slack: { enabled: i % 4 !== 0, config: { channel: `#soak-${i}`, retries: i % 5 } } },
  };
}

async function setup(base: string, runId: string): Promise<{ tenants: Tenant[]; targets: Target[] }> {
  const tenants: Tenant[] = [];
  // One by one: signup hashes with scrypt, which would only queue behind itself.
  for (let u = 0; u < USERS; u++) {
    const answer = await setupCall(base, 'POST', '/auth/signup', undefined, {
      email: `soak-${runId}-${u}@example.com`,
      password: 'soak password long enough',
      name: `Soak ${u}`,
    });
    tenants.push({ token: stringAt(answer, 'access_token'), organizationId: stringAt(answer, 'organization.id') });
  }
  const jobs = tenants.flatMap((tenant, u) => Array.from({ length: WORKSPACES_PER_USER }, (_, w) => ({ tenant, i: u * 100 + w })));
  const targets: Target[] = [];
  let nextJob = 0;
  const worker = async () => {
    while (nextJob < jobs.length) {
      const { tenant, i } = jobs[nextJob++]!;
      const answer = await setupCall(base, 'POST', '/workspaces', tenant.token, {
        organization_id: tenant.organizationId,
        name: `Soak ${runId} seed ${i}`,
        metadata: { seed: String(i) },
        settings: seedSettings(i),
      });
      targets.push({ id: stringAt(answer, 'id'), organizationId: tenant.organizationId, token: tenant.token });
    }
  };
  await Promise.all(Array.from({ length: SETUP_CONCURRENCY }, worker));
  return { tenants, targets };
}

// ---------------------------------------------------------------------------------------------
// The load

const OPERATIONS = ['get', 'list', 'settings', 'create', 'update_settings', 'clone'] as const;
type Operation = (typeof OPERATIONS)[number];

/**
 * One cycle of the mix, shuffled each time: 12 reads (4 each) and 3 writes (1 each) are exactly
 * 80 % / 20 % with equal shares inside each group, where independent random draws would only
 * approach that over a long run.
 */
const CYCLE: Operation[] = [
  ...Array<Operation>(4).fill('get'),
  ...Array<Operation>(4).fill('list'),
  ...Array<Operation>(4).fill('settings'),
  'create',
  'update_settings',
  'clone',
];

function shuffled<T>(items: readonly T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

interface RequestSpec {
  method: string;
  path: string;
  token: string;
  body?: unknown;
  expect: number;
}

/** Builds the request for one operation against a random seeded workspace. */
function requestFor(op: Operation, targets: Target[], runId: string, n: number): RequestSpec {
  const target = targets[Math.floor(Math.random() * targets.length)]!;
  const ws = `/workspaces/${target.id}`;
  switch (op) {
    case 'get':
      return { method: 'GET', path: ws, token: target.token, expect: 200 };
    case 'list':
      return { method: 'GET', path: `/workspaces?organization_id=${target.organizationId}&limit=20`, token: target.token, expect: 200 };
    case 'settings':
      return { method: 'GET', path: `${ws}/settings`, token: target.token, expect: 200 };
    case 'create':
      return {
        method: 'POST',
        path: '/workspaces',
        token: target.token,
        body: { organization_id: target.organizationId, name: `Soak ${runId} new ${n}`, settings: { features: { beta: n % 2 === 0 } } },
        expect: 201,
      };
    case 'update_settings':
      // No If-Match: concurrent toggles of one workspace must all apply, never 412.
      return { method: 'PUT', path: `${ws}/settings`, token: target.token, body: { features: { soak_toggle: n % 2 === 0 } }, expect: 200 };
    case 'clone':
      return { method: 'POST', path: `${ws}/clone`, token: target.token, body: { name: `Soak ${runId} clone ${n}` }, expect: 201 };
  }
}

/** How a failed request is counted: the unexpected status, `timeout`, or `network:<code>`. */
function errorKind(error: unknown): string {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) return 'timeout';
  // fetch rejects with TypeError('fetch failed'); what went wrong is its cause's code (or, for
  // refusals such as a blocked port, only the cause's message).
  const cause: unknown = error instanceof Error ? error.cause : undefined;
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return `network:${typeof code === 'string' ? code : cause.message}`;
  }
  return `network:${error instanceof Error ? error.message : String(error)}`;
}

/** One slice of the run for the timeline: shows whether trouble was a start-up transient or steady. */
interface Window {
  sent: number;
  errors: number;
  /** All requests due in the slice, warm-up included (the timeline is for diagnosis, not the verdict). */
  latencies: number[];
}

class Stats {
  constructor(readonly windowMs: number) {}
  sent = 0;
  completed = 0;
  measured = 0;
  inFlight = 0;
  maxInFlight = 0;
  readonly statuses = new Map<string, number>();
  readonly errors = new Map<string, number>();
  readonly latencies: number[] = [];
  readonly lags: number[] = [];
  readonly windows: Window[] = [];
  readonly byOp = new Map<Operation, { count: number; errors: number; latencies: number[] }>(
    OPERATIONS.map((op) => [op, { count: 0, errors: 0, latencies: [] }]),
  );

  window(offsetMs: number): Window {
    const i = Math.floor(offsetMs / this.windowMs);
    return (this.windows[i] ??= { sent: 0, errors: 0, latencies: [] });
  }

  error(op: Operation, kind: string, window: Window) {
    this.errors.set(kind, (this.errors.get(kind) ?? 0) + 1);
    this.byOp.get(op)!.errors += 1;
    window.errors += 1;
  }
}

interface LoadResult {
  stats: Stats;
  /** Intervals between requests sent after warm-up, and the time they spanned (for the achieved rate). */
  measuredSent: number;
  measuredWindowMs: number;
  unfinished: number;
  interrupted: boolean;
  rss: { start?: number; end?: number; peak?: number; series: { atMs: number; kb: number }[] };
  /** CPU use after warm-up, in % of one core (so 200 % is both cores of a 2-core machine). */
  cpu: { server?: number; soak?: number };
}

/**
 * Sends `rate × seconds` requests, request n due at t0 + n × interval. A timer wakes for the next
 * due request and sends every request whose time has come (a late wake-up sends the backlog at
 * once rather than shifting the schedule), so the rate holds whatever the answers do.
 */
async function runLoad(
  base: string,
  targets: Target[],
  runId: string,
  options: Options,
  pid: number | undefined,
  shouldStop: () => boolean,
): Promise<LoadResult> {
  // At most about 12 timeline lines, none shorter than 5 s.
  const stats = new Stats(Math.max(5, Math.ceil(options.seconds / 12)) * 1000);
  const interval = 1000 / options.rate;
  const total = Math.max(1, Math.floor(options.seconds * options.rate));
  const warmupMs = options.warmupSeconds * 1000;
  const inFlight = new Set<Promise<void>>();
  const rss: LoadResult['rss'] = { series: [] };
  let cycle: Operation[] = [];
  const t0 = performance.now();

  const send = async (n: number, dueAt: number) => {
    if (cycle.length === 0) cycle = shuffled(CYCLE);
    const op = cycle.pop()!;
    const spec = requestFor(op, targets, runId, n);
    // From n, not dueAt - t0: the subtraction's rounding put request 1000 of 200/s just before 5 s.
    const measured = n * interval >= warmupMs;
    const opStats = stats.byOp.get(op)!;
    opStats.count += 1;
    const window = stats.window(n * interval);
    window.sent += 1;
    try {
      const response = await fetch(`${base}/api/v1${spec.path}`, {
        method: spec.method,
        headers: {
          Authorization: `Bearer ${spec.token}`,
          ...(spec.body === undefined ? {} : { 'Content-Type': 'application/json' }),
        },
        body: spec.body === undefined ? undefined : JSON.stringify(spec.body),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      // Read the body: the latency a client sees ends there, and an unread body holds the connection.
      await response.arrayBuffer();
      const status = String(response.status);
      stats.statuses.set(status, (stats.statuses.get(status) ?? 0) + 1);
      if (response.status !== spec.expect) stats.error(op, status, window);
    } catch (error) {
      stats.error(op, errorKind(error), window);
    }
    stats.completed += 1;
    // From the due time, not the send time: see the module comment on coordinated omission.
    const latency = performance.now() - dueAt;
    window.latencies.push(latency);
    if (measured) {
      stats.latencies.push(latency);
      opStats.latencies.push(latency);
      stats.measured += 1;
    }
  };

  const sampleRss = async () => {
    if (pid === undefined) return undefined;
    const kb = await readRssKb(pid);
    if (kb !== undefined) {
      rss.series.push({ atMs: performance.now() - t0, kb });
      rss.peak = Math.max(rss.peak ?? 0, kb);
    }
    return kb;
  };

  let next = 0;
  let lastSentAt = t0;
  let firstMeasuredSentAt: number | undefined;
  let measuredSent = 0;
  let interrupted = false;
  const rssTimer = setInterval(() => void sampleRss(), 1000);
  let cpuStart: CpuMark | undefined;
  const warmupTimer = setTimeout(() => {
    void sampleRss().then((kb) => (rss.start = kb));
    void cpuMark(pid).then((mark) => (cpuStart = mark));
  }, warmupMs);
  const progressTimer = setInterval(() => {
    const elapsed = ((performance.now() - t0) / 1000).toFixed(0);
    const errors = [...stats.errors.values()].reduce((a, b) => a + b, 0);
    say(`t=${elapsed}s sent=${stats.sent} done=${stats.completed} in-flight=${stats.inFlight} errors=${errors}`);
  }, 10_000);

  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      if (shouldStop()) {
        interrupted = true;
        resolve();
        return;
      }
      while (next < total && t0 + next * interval <= now) {
        const dueAt = t0 + next * interval;
        stats.lags.push(now - dueAt);
        stats.sent += 1;
        stats.inFlight += 1;
        stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
        const p = send(next, dueAt).finally(() => {
          stats.inFlight -= 1;
          inFlight.delete(p);
        });
        inFlight.add(p);
        lastSentAt = now;
        if (next * interval >= warmupMs) {
          firstMeasuredSentAt ??= now;
          measuredSent += 1;
        }
        next += 1;
      }
      if (next >= total) {
        resolve();
        return;
      }
      setTimeout(tick, Math.max(0, t0 + next * interval - performance.now()));
    };
    tick();
  });
  clearTimeout(warmupTimer);

  const drained = await Promise.race([Promise.all(inFlight).then(() => true), sleep(DRAIN_TIMEOUT_MS).then(() => false)]);
  clearInterval(rssTimer);
  clearInterval(progressTimer);
  rss.end = await sampleRss();
  const cpuEnd = await cpuMark(pid);
  const cpu: LoadResult['cpu'] = {};
  if (cpuStart && cpuEnd.atMs > cpuStart.atMs) {
    const wallSeconds = (cpuEnd.atMs - cpuStart.atMs) / 1000;
    cpu.soak = ((cpuEnd.soak - cpuStart.soak) / wallSeconds) * 100;
    if (cpuStart.server !== undefined && cpuEnd.server !== undefined) cpu.server = ((cpuEnd.server - cpuStart.server) / wallSeconds) * 100;
  }
  // Warm-up may not have ended if the run was interrupted early: then there is no baseline.
  if (rss.start === undefined && !interrupted) rss.start = rss.end;

  return {
    stats,
    // n requests sent over the time between the first and the last: n - 1 intervals.
    measuredSent: Math.max(0, measuredSent - 1),
    measuredWindowMs: firstMeasuredSentAt === undefined ? 0 : lastSentAt - firstMeasuredSentAt,
    unfinished: drained ? 0 : inFlight.size,
    interrupted,
    rss,
    cpu,
  };
}

// ---------------------------------------------------------------------------------------------
// The report

/** Nearest-rank percentile of unsorted samples; undefined for none. */
function percentile(samples: number[], p: number): number | undefined {
  if (samples.length === 0) return undefined;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

const round = (value: number | undefined, digits = 1) => (value === undefined ? null : Number(value.toFixed(digits)));

interface Report {
  target: { url: string; database: string; server_pid: number | null; rate: number; seconds: number; warmup_seconds: number };
  setup: { users: number; workspaces: number; seconds: number };
  requests: { sent: number; completed: number; measured: number; unfinished: number; interrupted: boolean };
  achieved_rate: number | null;
  statuses: Record<string, number>;
  errors: { total: number; by_kind: Record<string, number> };
  operations: Record<Operation, { count: number; errors: number; p50_ms: number | null; p99_ms: number | null }>;
  latency_ms: { p50: number | null; p99: number | null; max: number | null };
  scheduler_lag_ms: { p99: number | null; max: number | null };
  max_in_flight: number;
  /** Other work on the machine skews every number here; these say how much there was. */
  machine: {
    cores: number;
    load_average_start: number;
    load_average_end: number;
    cpu_pct_server: number | null;
    cpu_pct_soak: number | null;
  };
  rss_kb: {
    after_setup: number | null;
    start: number | null;
    end: number | null;
    peak: number | null;
    /** How long the start and end medians span, in seconds. */
    window_s: number;
    /** The lowest sample after warm-up: when it is far below `start`, the baseline still held start-up garbage. */
    low_after_warmup: number | null;
    change_pct: number | null;
  };
  timeline: { from_s: number; to_s: number; sent: number; errors: number; p99_ms: number | null; rss_kb: number | null }[];
  server: { exit: number | string | null; warn_log_lines: number; warnings: ServerLogGroup[] } | null;
  checks: { errors: boolean; p99: boolean; rss: boolean | null };
  pass: boolean;
}

/** Everything a run found out, gathered for the report. */
interface RunFacts {
  options: Options;
  base: string;
  database: string;
  pid: number | undefined;
  setup: Report['setup'];
  load: LoadResult;
  rssAfterSetup: number | undefined;
  loadStart: number;
  server: Report['server'];
}

function buildReport({ options, base, database, pid, setup: setupInfo, load, rssAfterSetup, loadStart, server }: RunFacts): Report {
  const { stats } = load;
  const errorsByKind = Object.fromEntries(stats.errors);
  if (load.unfinished > 0) errorsByKind.unfinished = load.unfinished;
  const errorTotal = Object.values(errorsByKind).reduce((a, b) => a + b, 0);
  const p99 = percentile(stats.latencies, 99);
  // RSS saws up and down by ~10 % with GC on its own, so one sample at each end would judge the
  // sawtooth; the median of the samples in the first and last few seconds judges the trend.
  const series = load.rss.series;
  const warmupMs = options.warmupSeconds * 1000;
  const spanMs = Math.min(RSS_WINDOW_MS, ((options.seconds - options.warmupSeconds) * 1000) / 2);
  const lastAt = series.at(-1)?.atMs;
  const kbs = (samples: typeof series) => samples.map((sample) => sample.kb);
  const start =
    load.rss.start === undefined ? undefined : percentile(kbs(series.filter((x) => x.atMs >= warmupMs && x.atMs <= warmupMs + spanMs)), 50);
  const end =
    lastAt === undefined || start === undefined ? undefined : percentile(kbs(series.filter((x) => x.atMs >= lastAt - spanMs)), 50);
  const after = kbs(series.filter((sample) => sample.atMs >= warmupMs));
  const lowAfterWarmup = after.length > 0 ? Math.min(...after) : undefined;
  const changePct = start !== undefined && end !== undefined ? ((end - start) / start) * 100 : undefined;
  const operations = Object.fromEntries(
    OPERATIONS.map((op) => {
      const s = stats.byOp.get(op)!;
      return [
        op,
        { count: s.count, errors: s.errors, p50_ms: round(percentile(s.latencies, 50)), p99_ms: round(percentile(s.latencies, 99)) },
      ];
    }),
  ) as Report['operations'];
  const checks = {
    errors: errorTotal === 0,
    // No measured request (a run shorter than its warm-up, an interrupt) proves nothing: not a pass.
    p99: p99 !== undefined && p99 < TARGET_P99_MS,
    // Growth is the failure mode the target guards against (a leak); memory given back after
    // warm-up is not. Without a pid (a --url target) RSS cannot be judged, so it is left out.
    rss: changePct === undefined ? null : changePct <= TARGET_RSS_GROWTH_PCT,
  };
  return {
    target: {
      url: base,
      database,
      server_pid: pid ?? null,
      rate: options.rate,
      seconds: options.seconds,
      warmup_seconds: options.warmupSeconds,
    },
    setup: setupInfo,
    requests: {
      sent: stats.sent,
      completed: stats.completed,
      measured: stats.measured,
      unfinished: load.unfinished,
      interrupted: load.interrupted,
    },
    achieved_rate: load.measuredWindowMs > 0 ? round((load.measuredSent / load.measuredWindowMs) * 1000) : null,
    statuses: Object.fromEntries([...stats.statuses].sort()),
    errors: { total: errorTotal, by_kind: errorsByKind },
    operations,
    latency_ms: { p50: round(percentile(stats.latencies, 50)), p99: round(p99), max: round(percentile(stats.latencies, 100)) },
    scheduler_lag_ms: { p99: round(percentile(stats.lags, 99)), max: round(percentile(stats.lags, 100)) },
    max_in_flight: stats.maxInFlight,
    machine: {
      cores: availableParallelism(),
      load_average_start: round(loadStart, 2) ?? 0,
      load_average_end: round(loadavg()[0], 2) ?? 0,
      cpu_pct_server: round(load.cpu.server, 0),
      cpu_pct_soak: round(load.cpu.soak, 0),
    },
    timeline: stats.windows.map((w, i) => {
      const end = Math.min((i + 1) * stats.windowMs, options.seconds * 1000);
      const sample = load.rss.series.filter((s) => s.atMs <= end).pop();
      return {
        from_s: (i * stats.windowMs) / 1000,
        to_s: end / 1000,
        sent: w.sent,
        errors: w.errors,
        p99_ms: round(percentile(w.latencies, 99)),
        rss_kb: sample?.kb ?? null,
      };
    }),
    rss_kb: {
      after_setup: rssAfterSetup ?? null,
      start: start ?? null,
      end: end ?? null,
      peak: load.rss.peak ?? null,
      window_s: spanMs / 1000,
      low_after_warmup: lowAfterWarmup ?? null,
      change_pct: round(changePct),
    },
    server,
    checks,
    pass: checks.errors && checks.p99 && checks.rss !== false && !load.interrupted,
  };
}

const mib = (kb: number | null) => (kb === null ? 'n/a' : `${(kb / 1024).toFixed(1)} MiB`);
const ms = (value: number | null) => (value === null ? 'n/a' : `${value.toFixed(1)} ms`);
const mark = (ok: boolean | null) => (ok === null ? '–' : ok ? '✓' : '✗');

function formatReport(r: Report): string {
  const lines: string[] = [];
  const t = r.target;
  lines.push(
    `soak: ${t.rate} req/s for ${t.seconds} s (warm-up ${t.warmup_seconds} s) against ${t.url} (${t.database}${t.server_pid ? `, pid ${t.server_pid}` : ''})`,
  );
  lines.push(`setup: ${r.setup.users} users, ${r.setup.workspaces} workspaces in ${r.setup.seconds} s`);
  lines.push(
    `requests: ${r.requests.sent} sent, ${r.requests.completed} completed, ${r.requests.unfinished} unfinished; ` +
      `achieved ${r.achieved_rate ?? 'n/a'} req/s (target ${t.rate})${r.requests.interrupted ? '; INTERRUPTED' : ''}`,
  );
  lines.push(
    `statuses: ${
      Object.entries(r.statuses)
        .map(([s, n]) => `${s}=${n}`)
        .join(' ') || 'none'
    }`,
  );
  const kinds = Object.entries(r.errors.by_kind).map(([k, n]) => `${k}=${n}`);
  lines.push(`errors: ${r.errors.total}${kinds.length ? ` (${kinds.join(' ')})` : ''}`);
  lines.push(`${'operation'.padEnd(16)}${'count'.padStart(7)}${'errors'.padStart(9)}${'p50'.padStart(12)}${'p99'.padStart(12)}`);
  for (const op of OPERATIONS) {
    const o = r.operations[op];
    lines.push(
      `${op.padEnd(16)}${String(o.count).padStart(7)}${String(o.errors).padStart(9)}${ms(o.p50_ms).padStart(12)}${ms(o.p99_ms).padStart(12)}`,
    );
  }
  lines.push(
    `latency after warm-up (n=${r.requests.measured}, from due time): p50 ${ms(r.latency_ms.p50)}  p99 ${ms(r.latency_ms.p99)}  max ${ms(r.latency_ms.max)}`,
  );
  lines.push(`scheduler lag: p99 ${ms(r.scheduler_lag_ms.p99)}  max ${ms(r.scheduler_lag_ms.max)}; max in flight ${r.max_in_flight}`);
  const m = r.machine;
  const pct = (value: number | null) => (value === null ? 'n/a' : `${value} %`);
  lines.push(
    `cpu after warm-up (% of one core): server ${pct(m.cpu_pct_server)}, soak ${pct(m.cpu_pct_soak)}; ` +
      `load average ${m.load_average_start} → ${m.load_average_end} on ${m.cores} cores`,
  );
  lines.push('timeline (all requests by due time):');
  for (const w of r.timeline) {
    lines.push(
      `  ${`${w.from_s}-${w.to_s} s`.padEnd(10)} sent ${String(w.sent).padStart(6)}  errors ${String(w.errors).padStart(5)}  ` +
        `p99 ${ms(w.p99_ms).padStart(10)}  rss ${mib(w.rss_kb)}`,
    );
  }
  const rss = r.rss_kb;
  lines.push(
    rss.start === null
      ? 'rss: n/a (no server pid: pass --pid with --url)'
      : `rss: after setup ${mib(rss.after_setup)}; median of ${rss.window_s} s after warm-up ${mib(rss.start)}, of the last ${rss.window_s} s ${mib(rss.end)} ` +
          `(${rss.change_pct !== null && rss.change_pct >= 0 ? '+' : ''}${rss.change_pct ?? 'n/a'} %), ` +
          `low after warm-up ${mib(rss.low_after_warmup)}, peak ${mib(rss.peak)}`,
  );
  if (rss.change_pct !== null && rss.change_pct < -TARGET_RSS_GROWTH_PCT) {
    // A large drop means the baseline was taken before a major GC freed start-up memory, so it
    // would also hide growth of that size: the RSS verdict is weak for this run.
    lines.push(`  note: RSS fell by more than ${TARGET_RSS_GROWTH_PCT} % after warm-up; a longer --warmup gives a truer baseline`);
  }
  if (r.server) {
    lines.push(`server: exit ${r.server.exit ?? 'n/a'} after SIGTERM; ${r.server.warn_log_lines} log lines at warn or above`);
    for (const w of r.server.warnings) {
      lines.push(`  ${w.count} × [level ${w.level}] ${w.msg}${w.code ? ` (${w.code})` : ''}`);
      if (w.example !== '{}') lines.push(`    e.g. ${w.example.slice(0, 200)}`);
    }
  }
  const c = r.checks;
  lines.push(
    `${r.pass ? 'PASS' : 'FAIL'}  (errors ${r.errors.total} ${mark(c.errors)}, p99 ${ms(r.latency_ms.p99)} < ${TARGET_P99_MS} ms ${mark(c.p99)}, ` +
      `RSS ${rss.change_pct === null ? 'n/a' : `${rss.change_pct >= 0 ? '+' : ''}${rss.change_pct} %`} ≤ +${TARGET_RSS_GROWTH_PCT} % ${mark(c.rss)})`,
  );
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  let options: Options;
  try {
    options = parseOptions(process.argv.slice(2), process.env);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`soak: ${error.message}\n${USAGE}\n`);
      return 2;
    }
    throw error;
  }

  // The first Ctrl-C ends the load early (then drain, report, shutdown); a second one leaves at once.
  let stopRequested = false;
  let firstSignalAt = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (!stopRequested) {
      stopRequested = true;
      firstSignalAt = Date.now();
      say('stopping early (Ctrl-C again to abort)');
      return;
    }
    // npm and tsx pass the terminal's signal on, so one Ctrl-C can arrive two or three times
    // within milliseconds; only a later one is the user asking again.
    if (Date.now() - firstSignalAt < 1000) return;
    say(`aborting on a second ${signal}`);
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let server: StartedServer | undefined;
  try {
    let base: string;
    let pid: number | undefined;
    let database: string;
    if (options.url) {
      base = options.url;
      pid = options.pid;
      database = 'external service';
    } else {
      say(`starting the service (${process.env.DATABASE_URL ? 'PostgreSQL from DATABASE_URL' : 'embedded PGlite in a temp dir'})`);
      server = await startServer();
      base = server.base;
      pid = server.pid;
      database = server.database === 'postgres' ? 'PostgreSQL' : 'embedded PGlite';
    }

    // Unique per run, so emails and names never collide with an earlier run on the same database.
    const runId = randomBytes(4).toString('hex');
    say(`setup: ${USERS} users × ${WORKSPACES_PER_USER} workspaces`);
    const setupStart = performance.now();
    const { targets } = await setup(base, runId);
    const setupSeconds = round((performance.now() - setupStart) / 1000) ?? 0;
    const rssAfterSetup = pid === undefined ? undefined : await readRssKb(pid);

    say(`load: ${options.rate} req/s for ${options.seconds} s (warm-up ${options.warmupSeconds} s)`);
    const loadStart = loadavg()[0] ?? 0;
    const load = await runLoad(base, targets, runId, options, pid, () => stopRequested);

    let serverInfo: Report['server'] = null;
    if (server) {
      say('stopping the service (SIGTERM)');
      const exit = await stopServer(server);
      serverInfo = { exit, warn_log_lines: server.warnings.count, warnings: [...server.warnings.groups.values()] };
    }

    const report = buildReport({
      options,
      base,
      database,
      pid,
      setup: { users: USERS, workspaces: targets.length, seconds: setupSeconds },
      load,
      rssAfterSetup,
      loadStart,
      server: serverInfo,
    });
    process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatReport(report)}\n`);
    return report.pass ? 0 : 1;
  } catch (error) {
    process.stderr.write(`soak: ${error instanceof Error ? error.message : String(error)}\n`);
    if (server) process.stderr.write(`server stderr (tail):\n${server.stderr().slice(-2000)}\n`);
    return 1;
  } finally {
    await server?.cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`soak: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
