import { randomBytes, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_DEADLINE_MS } from '../src/db/client';
import type { ApiResponse } from './helpers/app';
import { expectApiError } from './helpers/errors';
import { multiHostUrl, startReplicatedPair, type DisposableCluster, type ReplicatedPair } from './helpers/pg-cluster';
import { sleep, startServerProcess, type ServerProcess } from './helpers/process-helpers';
import { acknowledgedIds, postWithKey, startWriteLoad, statusOf, type LoadRequest, type LoadResult } from './helpers/write-load';

/**
 * "Survive the database moving" (issue 20): the real service process on a multi-host URL
 * (`postgres://…@h1:P1,h2:P2/…?target_session_attrs=read-write`) over a primary and a streaming
 * hot standby of it (disposable clusters: the machine's shared server is never touched).
 *   - Failover: the primary crashes (`stop -m immediate`) under a steady write load with
 *     Idempotency-Keys, the standby is promoted a second later. The process stays up, answers
 *     every request within the deadline + 1 s, writes again within 5 s of the promotion (no
 *     restart, no configuration change), keeps every acknowledged write, and gives each lost
 *     answer, retried with its key, exactly one effect.
 *   - The old primary comes back as a standby of the new one (now the URL's first host is a
 *     standby): writes keep going to the new primary, none to the standby.
 *   - Start-up on a URL whose first host is a hot standby: migrations and writes go to the primary.
 *   - With no host that qualifies (only a standby up, then every host down) the idle process
 *     backs off: under 2 % of a core, no burst of sessions, and never a TCP self-connection
 *     (which would keep PostgreSQL from binding its port again).
 */

const serverUrl = process.env.DATABASE_URL;

/** The service runs with the default request deadline. */
const DEADLINE_MS = DEFAULT_DEADLINE_MS;
/** Every request is answered (or its connection fails) within this of its start. */
const ANSWER_WITHIN_MS = DEADLINE_MS + 1000;
/** After the standby's promotion (or the pool's connections are cut), a write succeeds within this, and every write started later succeeds. */
const WRITES_WITHIN_MS = 5000;
/** The load runs healthy this long before the fault, and this long after the promotion. */
const HEALTHY_MS = 2000;
const AFTER_PROMOTION_MS = 8000;
/** Between the primary's crash and the standby's promotion (what a failover manager would take to decide). */
const CRASH_TO_PROMOTION_MS = 1000;
/** A retry answered 409 "still in progress" is sent again after a pause, this many times in all. */
const RETRY_ATTEMPTS = 5;
const RETRY_PAUSE_MS = 500;
const RETRY_CONCURRENCY = 6;
/** What the service's pool connections call themselves (src/db/client.ts). */
const SERVICE_APPLICATION_NAME = 'workspaces-api';
/**
 * Idle CPU is measured over windows of this length, back to back, and the quieter of them must
 * stay under this share of one core. A busy loop (the bug: 33-40 % of a core) is steady and fails
 * every window; but the process's own idle cost is about 1 % with its database up (the load
 * shedder's 10 ms event-loop timer, 100 ms timers), and a garbage collection or a late compile can
 * land in one window and double it, so one window alone would fail now and then for no fault
 * (the first window after a host goes measured up to 6 % here; two windows both over 2 % happened
 * once in several runs on a busy machine): the quietest of three is judged.
 */
const IDLE_WINDOW_MS = 5000;
const IDLE_WINDOWS = 3;
const IDLE_CPU_SHARE = 0.02;
/** The window starts this long after the last request was answered. */
const IDLE_SETTLE_MS = 1000;
/** Sessions a second the idle service may open on a standby that never qualifies (the busy loop opened 355 a second). */
const STANDBY_SESSIONS_PER_SECOND = 10;

const ms = (value: number) => `${Math.round(value)}ms`;

/** Runs `query` on a short-lived client of `cluster` (never the service's pool). */
async function onCluster<T>(cluster: DisposableCluster, query: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(cluster.url, { max: 1, onnotice: () => {}, connect_timeout: 5, idle_timeout: 1 });
  try {
    return await query(sql);
  } finally {
    await sql.end({ timeout: 1 });
  }
}

const inRecovery = (cluster: DisposableCluster) =>
  onCluster(cluster, async (sql) => (await sql<[{ r: boolean }]>`select pg_is_in_recovery() as r`)[0].r);

/** Polls `check` every 100 ms until it is true; throws `what` after `timeoutMs`. */
async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const until = performance.now() + timeoutMs;
  let last: Error | undefined;
  while (performance.now() < until) {
    try {
      if (await check()) return;
    } catch (error) {
      last = error as Error;
    }
    await sleep(100);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (last error: ${last.message})` : ''}`);
}

/** The SQLSTATE `promise` fails with (fails the test if it succeeds). */
async function failureCode(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return String((error as { code?: unknown }).code);
  }
  throw new Error('expected the statement to fail, it succeeded');
}

/** The id of a workspace as the clusters see it (`undefined`: not there). */
const workspaceOn = (cluster: DisposableCluster, id: string) =>
  onCluster(cluster, async (sql) => (await sql<{ id: string }[]>`select id from workspaces where id = ${id}`)[0]?.id);

/** Sessions of the service held on `cluster` now. */
const serviceSessionsOn = (cluster: DisposableCluster) =>
  onCluster(
    cluster,
    async (sql) =>
      (await sql<[{ n: number }]>`select count(*)::int as n from pg_stat_activity where application_name = ${SERVICE_APPLICATION_NAME}`)[0]
        .n,
  );

/** CPU time (user + system, every thread) the process has used so far, in seconds, from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The fields after the command name (which may hold spaces), from field 3 on: utime is field 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticksPerSecond = 100; // USER_HZ (getconf CLK_TCK) is 100 on Linux
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
}

/** The process's TCP sockets (IPv4 and IPv6) as /proc shows them: local and remote address, hex `ADDR:PORT`. */
function tcpSocketsOf(pid: number): Array<{ local: string; remote: string }> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match) inodes.add(match[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const sockets: Array<{ local: string; remote: string }> = [];
  for (const table of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length > 9 && inodes.has(cols[9]!)) sockets.push({ local: cols[1]!, remote: cols[2]! });
    }
  }
  return sockets;
}

/** Samples the process's TCP sockets every 50 ms for `windowMs`; returns every self-connection seen (local address == remote address). */
async function selfConnectionsDuring(pid: number, windowMs: number): Promise<Array<{ local: string; remote: string }>> {
  const seen: Array<{ local: string; remote: string }> = [];
  const until = performance.now() + windowMs;
  while (performance.now() < until) {
    seen.push(...tcpSocketsOf(pid).filter((s) => s.local === s.remote));
    await sleep(50);
  }
  return seen;
}

/** The service on `databaseUrl`, and a signed-up user's token and organization (the start may fail: the caller asserts). */
interface RunningService {
  process: ServerProcess;
  base: string;
  token: string;
  organizationId: string;
  /** The pid whose CPU and sockets are measured: the server itself. */
  pid(): number;
  isRunning(): boolean;
  /** Why the process is gone, for failure messages. */
  deathNote(): string;
}

async function startService(databaseUrl: string, label: string): Promise<RunningService> {
  const proc = startServerProcess({
    DATABASE_URL: databaseUrl,
    PORT: '0',
    JWT_SECRET: randomBytes(32).toString('hex'),
    NODE_ENV: 'test',
    // `info`, not quieter: ready() finds the port in the "listening" line.
    LOG_LEVEL: 'info',
    RATE_LIMIT_PER_MINUTE: '0',
    AUTH_RATE_LIMIT_PER_MINUTE: '0',
  });
  let exitedWith: number | string | undefined;
  void proc.exited.then((code) => (exitedWith = code));
  const isRunning = () => exitedWith === undefined && proc.child.exitCode === null && proc.child.signalCode === null;
  const deathNote = () =>
    `the process exited with ${String(exitedWith)}; stderr:\n${proc.stderr()}\nlast log lines:\n${proc.stdout().trimEnd().split('\n').slice(-5).join('\n')}`;
  let base: string;
  try {
    base = await proc.ready();
  } catch (error) {
    await proc.kill();
    throw error;
  }
  const response = await fetch(`${base}/api/v1/auth/signup`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: `${label}-${randomUUID()}@example.com`, password: 'correct horse battery', name: label }),
  });
  const signedUp = (await response.json()) as any;
  if (response.status !== 201) {
    await proc.kill();
    throw new Error(`signup answered ${response.status}: ${JSON.stringify(signedUp)}\n${proc.stdout().slice(-2000)}`);
  }
  return {
    process: proc,
    base,
    token: signedUp.access_token,
    organizationId: signedUp.organization.id,
    pid: () => proc.serverPid() ?? proc.pid,
    isRunning,
    deathNote,
  };
}

/** One create with a fresh key. */
const createOne = (service: RunningService, name: string) =>
  postWithKey(service.base, service.token, '/api/v1/workspaces', { organization_id: service.organizationId, name }, randomUUID());

/** A write load's requests, and the moments of the scenario (performance.now()). */
interface LoadRun {
  label: string;
  requests: LoadRequest[];
  marks: Record<string, number>;
}

/** Runs a write load for HEALTHY_MS, then `scenario` (which records its moments in `marks`), then stops the load. */
async function underLoad(
  service: RunningService,
  label: string,
  scenario: (marks: Record<string, number>) => Promise<void>,
): Promise<LoadRun> {
  const load = startWriteLoad({ base: service.base, token: service.token, organizationId: service.organizationId, label });
  const marks: Record<string, number> = {};
  try {
    await sleep(HEALTHY_MS);
    await scenario(marks);
  } finally {
    await load.stop();
  }
  return { label, requests: load.requests, marks };
}

/** The first 201 of a request started at or after `from`: when its answer came, in ms after `from`. */
function firstWriteAfter(run: LoadRun, from: number): number | undefined {
  const ends = run.requests.filter((r) => r.start >= from && statusOf(r.result) === 201).map((r) => r.end! - from);
  return ends.length === 0 ? undefined : Math.min(...ends);
}

/** The numbers a closing note gives. */
function summarize(run: LoadRun, from: number, firstWrite: number | undefined): string {
  const statuses = new Map<string, number>();
  for (const r of run.requests) statuses.set(String(statusOf(r.result)), (statuses.get(String(statusOf(r.result))) ?? 0) + 1);
  return [
    `scenario=${run.label}`,
    `first-write-after=${firstWrite === undefined ? 'none' : ms(firstWrite)}`,
    `worst=${ms(Math.max(0, ...run.requests.map((r) => r.end! - r.start)))}`,
    `requests=${run.requests.length}`,
    `answers={${[...statuses].map(([s, n]) => `${s}:${n}`).join(' ')}}`,
    ...Object.entries(run.marks).map(([k, v]) => `${k}=+${ms(v - from)}`),
  ].join(' ');
}

/** What a request looked like, for failure messages. */
const describeRequest = (run: LoadRun, from: number, r: LoadRequest) => ({
  kind: r.kind,
  key: r.key,
  status: statusOf(r.result),
  tookMs: r.end === undefined ? undefined : Math.round(r.end - r.start),
  startedMsAfter: Math.round(r.start - from),
  body: typeof r.result === 'object' ? r.result.text.slice(0, 300) : undefined,
});

/** Every request answered within ANSWER_WITHIN_MS; every answer 201, or 503 SERVICE_UNAVAILABLE with Retry-After: 1. */
function expectTimelyAnswers(run: LoadRun, from: number): void {
  const late = run.requests.filter((r) => r.result === 'timeout' || r.end! - r.start > ANSWER_WITHIN_MS);
  expect(
    late.map((r) => describeRequest(run, from, r)),
    `${late.length} of ${run.requests.length} requests answered late`,
  ).toEqual([]);
  const answers = run.requests.filter((r) => typeof r.result === 'object');
  const unexpected = answers.filter((r) => ![201, 503].includes(statusOf(r.result) as number));
  expect(
    unexpected.map((r) => describeRequest(run, from, r)),
    'answers other than 201/503',
  ).toEqual([]);
  for (const r of answers.filter((a) => statusOf(a.result) === 503)) {
    const answer = r.result as ApiResponse;
    expectApiError(answer, 503, 'SERVICE_UNAVAILABLE');
    expect(answer.headers.get('retry-after'), answer.text).toBe('1');
  }
}

/** Writes again within WRITES_WITHIN_MS of `from`, and every write started after that succeeds. */
function expectWritesBack(run: LoadRun, from: number, what: string): void {
  const firstWrite = firstWriteAfter(run, from);
  expect(firstWrite, `no 201 for a request started after ${what}`).toBeDefined();
  expect(firstWrite!, `the first write after ${what}`).toBeLessThanOrEqual(WRITES_WITHIN_MS);
  const later = run.requests.filter((r) => r.start >= from + WRITES_WITHIN_MS && r.result !== 'network error');
  const failed = later.filter((r) => statusOf(r.result) !== 201);
  expect(
    failed.map((r) => describeRequest(run, from, r)),
    `${failed.length} of ${later.length} requests started ${WRITES_WITHIN_MS} ms after ${what} failed`,
  ).toEqual([]);
}

describe.runIf(Boolean(serverUrl))('the replicated pair helper (a primary and a pg_basebackup -R standby)', () => {
  let pair: ReplicatedPair;

  beforeAll(async () => {
    pair = await startReplicatedPair();
  }, 60_000);
  afterAll(() => pair?.destroy());

  it('streams: the standby is in recovery, replicates a row, and refuses writes (25006)', async () => {
    expect(await inRecovery(pair.primary)).toBe(false);
    expect(await inRecovery(pair.standby)).toBe(true);
    await onCluster(pair.primary, (sql) => sql`create table replicated (v text); insert into replicated values ('one')`.simple());
    await waitFor('the row on the standby', async () =>
      onCluster(pair.standby, async (sql) => (await sql`select v from replicated`).length === 1),
    );
    expect(await failureCode(onCluster(pair.standby, (sql) => sql`insert into replicated values ('two')`))).toBe('25006');
    expect(pair.multiHostUrl()).toBe(
      `postgres://postgres@127.0.0.1:${pair.primary.port},127.0.0.1:${pair.standby.port}/postgres?target_session_attrs=read-write`,
    );
  });

  it('promotes: the standby accepts writes; the old primary, rebuilt, streams from it', async () => {
    await pair.primary.stop('immediate');
    await pair.standby.promote();
    expect(await inRecovery(pair.standby)).toBe(false);
    await onCluster(pair.standby, (sql) => sql`insert into replicated values ('after promotion')`);

    await pair.primary.rebuildAsStandbyOf(pair.standby);
    expect(pair.primary.isRunning()).toBe(true);
    expect(await inRecovery(pair.primary)).toBe(true);
    await onCluster(pair.standby, (sql) => sql`insert into replicated values ('after rebuild')`);
    await waitFor('the rows on the rebuilt standby', async () =>
      onCluster(pair.primary, async (sql) => (await sql`select v from replicated`).length === 3),
    );
    expect(await failureCode(onCluster(pair.primary, (sql) => sql`insert into replicated values ('x')`))).toBe('25006');
  }, 60_000);
});

describe.runIf(Boolean(serverUrl))('failover: the primary crashes and the standby is promoted, under a steady write load', () => {
  let pair: ReplicatedPair;
  let service: RunningService | undefined;

  beforeAll(async () => {
    // Synchronous replication: a commit is acknowledged once the standby has it, so "every
    // acknowledged write is on the new primary" tests the service, not asynchronous replication's window.
    pair = await startReplicatedPair({ synchronous: true });
    service = await startService(pair.multiHostUrl(), 'failover');
  }, 150_000);

  afterAll(async () => {
    await service?.process.kill();
    await pair?.destroy();
  });

  const lost = (result: LoadResult | undefined) => {
    const status = statusOf(result);
    return status === 503 || status === 'network error' || status === 'timeout';
  };

  /** Sends `request` again with its key and body until it is not 409 "still in progress". */
  async function retry(request: LoadRequest): Promise<LoadResult> {
    let result: LoadResult = 'network error';
    for (let attempt = 1; attempt <= RETRY_ATTEMPTS; attempt++) {
      result = await postWithKey(service!.base, service!.token, request.path, request.body, request.key);
      if (statusOf(result) !== 409) return result;
      await sleep(RETRY_PAUSE_MS);
    }
    return result;
  }

  /** How many workspaces of the organization carry each name, on `cluster`. */
  const nameCounts = (cluster: DisposableCluster, names: string[]) =>
    onCluster(cluster, async (sql) => {
      const rows = await sql<{ name: string; n: number }[]>`
        select name, count(*)::int as n from workspaces
        where organization_id = ${service!.organizationId} and name = any(${names}::text[])
        group by name`;
      return new Map(rows.map((r) => [r.name, r.n]));
    });

  describe('the failover', () => {
    let run: LoadRun;
    let promoted: number;

    beforeAll(async () => {
      run = await underLoad(service!, 'failover', async (marks) => {
        marks.crash = performance.now();
        await pair.primary.stop('immediate');
        await sleep(CRASH_TO_PROMOTION_MS);
        marks.promote = performance.now();
        await pair.standby.promote();
        promoted = marks.promoted = performance.now();
        await sleep(AFTER_PROMOTION_MS);
      });
      console.log(summarize(run, promoted, firstWriteAfter(run, promoted)));
    }, 90_000);

    it('stays up: the process is alive, /healthz answers 200, nothing reached stderr', async () => {
      expect(service!.isRunning(), service!.deathNote()).toBe(true);
      const health = await fetch(`${service!.base}/healthz`, { signal: AbortSignal.timeout(2000) });
      expect(health.status).toBe(200);
      expect(service!.process.stderr()).toBe('');
    });

    it(`answers every request within the deadline + 1 s (${ANSWER_WITHIN_MS} ms): 201, or 503 with Retry-After`, () => {
      expectTimelyAnswers(run, promoted);
    });

    it(`writes again within ${WRITES_WITHIN_MS / 1000} s of the promotion, with no restart and no configuration change`, () => {
      expectWritesBack(run, promoted, 'the promotion');
    });

    it('keeps every acknowledged write: each id a 201 answered is on the new primary', async () => {
      const ids = run.requests.flatMap((r) => acknowledgedIds(r));
      expect(ids.length).toBeGreaterThan(0);
      const found = await onCluster(pair.standby, (sql) => sql<{ id: string }[]>`select id from workspaces where id = any(${ids}::uuid[])`);
      const present = new Set(found.map((r) => r.id));
      expect(ids.filter((id) => !present.has(id))).toEqual([]);
    });

    it('gives each lost answer (503, network error, timeout), retried with its Idempotency-Key, exactly one effect', async () => {
      const lostRequests = run.requests.filter((r) => lost(r.result));
      const retried: Array<{ request: LoadRequest; result: LoadResult }> = [];
      for (let i = 0; i < lostRequests.length; i += RETRY_CONCURRENCY) {
        const wave = lostRequests.slice(i, i + RETRY_CONCURRENCY);
        retried.push(...(await Promise.all(wave.map(async (request) => ({ request, result: await retry(request) })))));
        // A service that does not serve again would only make each remaining retry wait out its deadline.
        if (retried.some(({ result }) => statusOf(result) !== 201)) break;
      }
      const replays = retried.filter(({ result }) => typeof result === 'object' && result.headers.get('idempotent-replayed') === 'true');
      console.log(`scenario=failover lost=${lostRequests.length} retried=${retried.length} replayed=${replays.length}`);
      const notCreated = retried.filter(({ result }) => statusOf(result) !== 201);
      expect(
        notCreated.map(({ request, result }) => ({
          ...describeRequest(run, promoted, request),
          retry: statusOf(result),
          retryBody: typeof result === 'object' ? result.text.slice(0, 300) : undefined,
        })),
        `retries not answered 201 (${lostRequests.length - retried.length} more not retried)`,
      ).toEqual([]);

      // Every create and every atomic provision of the scenario happened exactly once, on the new primary.
      const names = run.requests.flatMap((r) => r.names);
      const counts = await nameCounts(pair.standby, names);
      expect(names.filter((n) => counts.get(n) !== 1).map((n) => [n, counts.get(n) ?? 0])).toEqual([]);
    }, 90_000);
  });

  describe('the old primary back as a standby of the new one, while the service runs', () => {
    let run: LoadRun;
    let cut: number;
    let cutSessions: number;

    beforeAll(async () => {
      run = await underLoad(service!, 'rejoin', async (marks) => {
        marks.rebuild = performance.now();
        await pair.primary.rebuildAsStandbyOf(pair.standby);
        marks.rebuilt = performance.now();
        // The URL's first host is a hot standby again. The pool keeps its connections to the new
        // primary; cut them, so that every new one tries the first host first and must pass it by.
        cut = marks.cut = performance.now();
        cutSessions = await onCluster(
          pair.standby,
          async (sql) =>
            (
              await sql<{ t: boolean }[]>`select pg_terminate_backend(pid) as t from pg_stat_activity
                where application_name = ${SERVICE_APPLICATION_NAME}`
            ).filter((r) => r.t).length,
        );
        await sleep(AFTER_PROMOTION_MS);
      });
      console.log(`${summarize(run, cut, firstWriteAfter(run, cut))} sessions-cut=${cutSessions}`);
    }, 90_000);

    it('the old primary is a hot standby of the new one and refuses writes (25006)', async () => {
      expect(await inRecovery(pair.primary)).toBe(true);
      expect(await failureCode(onCluster(pair.primary, (sql) => sql`create table not_here (v int)`))).toBe('25006');
    });

    it(`answers every request within the deadline + 1 s, and writes on within ${WRITES_WITHIN_MS / 1000} s of the cut`, () => {
      expect(cutSessions, 'the service held sessions on the new primary').toBeGreaterThan(0);
      expect(service!.isRunning(), service!.deathNote()).toBe(true);
      expectTimelyAnswers(run, cut);
      expectWritesBack(run, cut, 'the pool lost its connections');
    });

    it('writes land on the new primary (and replicate to the old one); no service session is held on the standby', async () => {
      const created = await createOne(service!, `rejoin check ${randomUUID()}`);
      expect(statusOf(created)).toBe(201);
      const id = ((created as ApiResponse).body as { id: string }).id;
      expect(await workspaceOn(pair.standby, id)).toBe(id);
      await waitFor('the row replicated to the old primary', async () => (await workspaceOn(pair.primary, id)) === id);
      expect(await serviceSessionsOn(pair.primary)).toBe(0);
      expect(await serviceSessionsOn(pair.standby)).toBeGreaterThan(0);
    });
  });
});

describe.runIf(Boolean(serverUrl))('a multi-host URL whose first host is a hot standby; then no host that qualifies', () => {
  let pair: ReplicatedPair;
  let service: RunningService | undefined;
  let startFailure: unknown;

  beforeAll(async () => {
    // log_connections: the standby's log counts the sessions the service opens on it.
    // synchronous_commit on: the primary is crashed (stop -m immediate) below, and with it off
    // the crash loses the commits of its last seconds (the signed-up user: every answer a 401).
    pair = await startReplicatedPair({ settings: { log_connections: 'on', synchronous_commit: 'on' } });
    try {
      service = await startService(multiHostUrl([pair.standby, pair.primary]), 'standby-first');
    } catch (error) {
      startFailure = error;
    }
  }, 150_000);

  afterAll(async () => {
    await service?.process.kill();
    await pair?.destroy();
  });

  const running = () => {
    expect(startFailure, String(startFailure)).toBeUndefined();
    return service!;
  };

  /** A few creates with the service's database gone: each answered 503 (Retry-After) within the deadline + 1 s. */
  async function expectRefusedInTime(svc: RunningService, label: string): Promise<void> {
    const results = await Promise.all(
      [1, 2, 3].map(async (i) => {
        const start = performance.now();
        const result = await createOne(svc, `${label} ${i}`);
        return { result, took: performance.now() - start };
      }),
    );
    for (const { result, took } of results) {
      expect(statusOf(result), typeof result === 'object' ? result.text : result).toBe(503);
      expect(took).toBeLessThanOrEqual(ANSWER_WITHIN_MS);
    }
  }

  /**
   * The share of a core the process used in each of IDLE_WINDOWS windows of IDLE_WINDOW_MS, from
   * IDLE_SETTLE_MS after the call (the last answers' work done); the quietest; the whole
   * measurement's length (s); and every self-connection seen meanwhile.
   */
  async function idleCpu(svc: RunningService) {
    const pid = svc.pid();
    await sleep(IDLE_SETTLE_MS);
    const shares: number[] = [];
    const selfConnections: Array<{ local: string; remote: string }> = [];
    const t0 = performance.now();
    for (let i = 0; i < IDLE_WINDOWS; i++) {
      const before = cpuSeconds(pid);
      const start = performance.now();
      selfConnections.push(...(await selfConnectionsDuring(pid, IDLE_WINDOW_MS)));
      shares.push((cpuSeconds(pid) - before) / ((performance.now() - start) / 1000));
    }
    const seconds = (performance.now() - t0) / 1000;
    return { shares, quietest: Math.min(...shares), seconds, selfConnections };
  }

  const percent = (shares: number[]) => shares.map((share) => `${(100 * share).toFixed(1)}%`).join(',');

  it('starts (migrations run on the primary, the second host) and serves writes there', async () => {
    const svc = running();
    expect(svc.isRunning(), svc.deathNote()).toBe(true);
    expect(await inRecovery(pair.standby)).toBe(true);
    const migrated = await onCluster(
      pair.primary,
      async (sql) => (await sql<[{ n: number }]>`select count(*)::int as n from drizzle.__drizzle_migrations`)[0].n,
    );
    expect(migrated).toBeGreaterThan(0);
    const created = await createOne(svc, `standby first ${randomUUID()}`);
    expect(statusOf(created), typeof created === 'object' ? created.text : created).toBe(201);
    const id = ((created as ApiResponse).body as { id: string }).id;
    expect(await workspaceOn(pair.primary, id)).toBe(id);
    expect(await serviceSessionsOn(pair.standby)).toBe(0);
    // For comparison with the windows below: the same process idle with its database up.
    const { shares } = await idleCpu(svc);
    console.log(`scenario=healthy-idle cpu-per-${IDLE_WINDOW_MS}ms-window=${percent(shares)} of a core`);
  }, 45_000);

  it(`backs off with only a standby up (read-write wanted): under ${IDLE_CPU_SHARE * 100} % of a core, few sessions on the standby`, async () => {
    const svc = running();
    await pair.primary.stop('immediate');
    await expectRefusedInTime(svc, 'only standby');
    const logFrom = pair.standby.log().length;
    const { shares, quietest, seconds, selfConnections } = await idleCpu(svc);
    const sessions = pair.standby
      .log()
      .slice(logFrom)
      .split('\n')
      .filter((line) => line.includes('connection authorized') && line.includes(`application_name=${SERVICE_APPLICATION_NAME}`)).length;
    console.log(
      `scenario=only-standby cpu-per-${IDLE_WINDOW_MS}ms-window=${percent(shares)} of a core standby-sessions=${sessions} in ${seconds.toFixed(1)}s`,
    );
    expect(svc.isRunning(), svc.deathNote()).toBe(true);
    expect(quietest, `CPU share of each window: ${percent(shares)}`).toBeLessThan(IDLE_CPU_SHARE);
    expect(sessions / seconds).toBeLessThanOrEqual(STANDBY_SESSIONS_PER_SECOND);
    expect(selfConnections).toEqual([]);
  }, 45_000);

  it(`backs off with every host down: under ${IDLE_CPU_SHARE * 100} % of a core, and never a TCP self-connection`, async () => {
    const svc = running();
    await pair.primary.stop('immediate');
    await pair.standby.stop('immediate');
    await expectRefusedInTime(svc, 'all down');
    const { shares, quietest, selfConnections } = await idleCpu(svc);
    console.log(
      `scenario=all-down cpu-per-${IDLE_WINDOW_MS}ms-window=${percent(shares)} of a core self-connections=${selfConnections.length}`,
    );
    expect(svc.isRunning(), svc.deathNote()).toBe(true);
    expect(quietest, `CPU share of each window: ${percent(shares)}`).toBeLessThan(IDLE_CPU_SHARE);
    expect(selfConnections).toEqual([]);
  }, 45_000);

  it(`both clusters start again on their own ports, and the service writes within ${WRITES_WITHIN_MS / 1000} s`, async () => {
    const svc = running();
    // A self-connection holding a cluster's port would make its start fail ("could not bind").
    await pair.primary.start();
    await pair.standby.start();
    const started = performance.now();
    let last: LoadResult = 'network error';
    const seen: string[] = [];
    while (performance.now() - started < WRITES_WITHIN_MS + 2000) {
      last = await createOne(svc, `back ${randomUUID()}`);
      seen.push(`+${ms(performance.now() - started)}:${statusOf(last)}`);
      if (statusOf(last) === 201) break;
      await sleep(250);
    }
    const took = performance.now() - started;
    console.log(`scenario=all-back first-write-after=${ms(took)} answers=${seen.join(' ')}`);
    expect(statusOf(last), typeof last === 'object' ? last.text : last).toBe(201);
    expect(took).toBeLessThanOrEqual(WRITES_WITHIN_MS);
  }, 30_000);
});
