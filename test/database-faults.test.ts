import { randomBytes, randomUUID } from 'node:crypto';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_DEADLINE_MS } from '../src/db/client';
import type { ApiResponse } from './helpers/app';
import { expectApiError } from './helpers/errors';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy';
import { startDisposableCluster, type DisposableCluster } from './helpers/pg-cluster';
import { sleep, startServerProcess, type ServerProcess } from './helpers/process-helpers';
import { acknowledgedIds, postWithKey, startWriteLoad, statusOf, type LoadRequest, type LoadResult } from './helpers/write-load';

/**
 * "Survive the database failing": the real service process (as `npm start` runs it) on a
 * disposable PostgreSQL cluster of this file's own, reached through a fault proxy, under a
 * steady open-loop write load (a create every 20 ms, an atomic provision of 20 every second,
 * each with its own Idempotency-Key). Each fault runs ~2 s into the load, lasts a few seconds
 * and ends; the load goes on ~6 s after. Whatever the fault, the service
 *   - never dies of it;
 *   - answers every request within the request deadline (DATABASE_DEADLINE_MS) plus 1 s:
 *     201, or 503 SERVICE_UNAVAILABLE with Retry-After in the error shape;
 *   - creates again within 5 s of the fault ending, by itself;
 *   - loses nothing: every 201 is in the database, every atomic provision is all or nothing,
 *     and a request whose answer was lost, retried with its key after recovery, has exactly
 *     one effect.
 * The machine's shared server is never touched: the cluster is stopped and restarted, the
 * proxy breaks the path to it, and migrations go to it directly (DATABASE_MIGRATION_URL).
 */

const serverUrl = process.env.DATABASE_URL;

/** The service runs with the default request deadline. */
const DEADLINE_MS = DEFAULT_DEADLINE_MS;
/** Every request is answered (or its connection fails) within this of its start. Keys are unique here: no request waits on another's. */
const ANSWER_WITHIN_MS = DEADLINE_MS + 1000;
/** After the fault ends, a create succeeds within this, and every create started later succeeds. */
const RECOVERY_WITHIN_MS = 5000;
/** The load runs healthy this long before the fault, and this long after it ends. */
const HEALTHY_MS = 2000;
const AFTER_FAULT_MS = 6000;
/** A retry answered 409 "still in progress" is sent again after a pause, this many times in all. */
const RETRY_ATTEMPTS = 5;
const RETRY_PAUSE_MS = 500;
const RETRY_CONCURRENCY = 6;
/** Before each scenario the service must be serving creates again within this (it recovered from the one before). */
const SERVING_WITHIN_MS = 10_000;
/** What the service's pool connections call themselves (src/db/client.ts). */
const SERVICE_APPLICATION_NAME = 'workspaces-api';
/** Codes a direct admin query may fail with while the cluster restarts under it. */
const CONNECTION_ERRORS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'CONNECTION_CLOSED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
  '57P01',
  '57P03',
]);

const ms = (value: number) => `${Math.round(value)}ms`;

/** One fault: `inject` starts it, holds it, ends it, and resolves once it is over. */
interface Fault {
  /** The describe's name: what happens to the database. */
  title: string;
  /** Names the fault in keys, names and the printed numbers. */
  label: string;
  /** Returns how many connections it killed, when it kills connections (a fault that hit nothing proves nothing). */
  inject(): Promise<number | undefined>;
}

interface ScenarioRun {
  label: string;
  requests: LoadRequest[];
  faultStart: number;
  faultEnd: number;
  /** Service log lines (stdout) written during the scenario. */
  logLines: string[];
  /** fault end → the end of the first 201 of a request started after it; undefined if none. */
  recoveryMs: number | undefined;
}

describe.runIf(Boolean(serverUrl))('the service when its database fails (one process under a steady write load)', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  let cluster: DisposableCluster;
  let proxy: FaultProxy;
  let admin: postgres.Sql;
  let service: ServerProcess;
  let exitedWith: number | string | undefined;
  let base: string;
  let token: string;
  let organizationId: string;

  beforeAll(async () => {
    // The helper's cluster runs with synchronous_commit off (fast, but a crash loses the last
    // commits it acknowledged); a test of "every acknowledged write survives a crash" needs it on.
    cluster = await startDisposableCluster({ settings: { synchronous_commit: 'on' } });
    cleanups.push(() => cluster.destroy());
    proxy = await startFaultProxy({ targetHost: '127.0.0.1', targetPort: cluster.port });
    cleanups.push(() => proxy.close());
    admin = postgres(cluster.url, { max: 2, onnotice: () => {}, connect_timeout: 5, idle_timeout: 5 });
    cleanups.push(() => admin.end({ timeout: 1 }));

    service = startServerProcess({
      DATABASE_URL: `postgres://postgres@${proxy.host}:${proxy.port}/postgres`,
      DATABASE_MIGRATION_URL: cluster.url,
      PORT: '0',
      JWT_SECRET: randomBytes(32).toString('hex'),
      NODE_ENV: 'test',
      // `info`, not quieter: ready() finds the port in the "listening" line.
      LOG_LEVEL: 'info',
      RATE_LIMIT_PER_MINUTE: '0',
      AUTH_RATE_LIMIT_PER_MINUTE: '0',
    });
    cleanups.push(() => service.kill());
    void service.exited.then((code) => (exitedWith = code));
    base = await service.ready();

    const response = await fetch(`${base}/api/v1/auth/signup`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: `faults-${randomUUID()}@example.com`, password: 'correct horse battery', name: 'Faults' }),
    });
    const signedUp = (await response.json()) as any;
    expect(response.status, JSON.stringify(signedUp)).toBe(201);
    token = signedUp.access_token;
    organizationId = signedUp.organization.id;
  }, 150_000);

  afterAll(async () => {
    const failures: unknown[] = [];
    for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => failures.push(error));
    if (failures.length > 0) throw new AggregateError(failures, 'cleanup failed');
  });

  /** A direct query on the cluster (never through the proxy), retried while the cluster is coming back. */
  async function adminQuery<T extends readonly object[]>(query: (sql: postgres.Sql) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await query(admin);
      } catch (error) {
        const code = String((error as { code?: unknown }).code);
        if (attempt >= 10 || !CONNECTION_ERRORS.has(code)) throw error;
        await sleep(200);
      }
    }
  }

  /** How many workspaces of the organization carry each name (names absent from the map: none). */
  async function nameCounts(names: string[]): Promise<Map<string, number>> {
    const rows = await adminQuery(
      (sql) => sql<{ name: string; n: number }[]>`
        select name, count(*)::int as n from workspaces
        where organization_id = ${organizationId} and name = any(${names}::text[])
        group by name`,
    );
    return new Map(rows.map((r) => [r.name, r.n]));
  }

  /** Why the process is gone, for failure messages: its exit, stderr, and the last lines it logged. */
  const deathNote = () =>
    `the process exited with ${String(exitedWith)}; stderr:\n${service.stderr()}\nlast log lines:\n${service.stdout().trimEnd().split('\n').slice(-3).join('\n')}`;

  const isRunning = () => exitedWith === undefined && service.child.exitCode === null && service.child.signalCode === null;

  /** pino lines at error level or above (a 500 is logged so); a line still being written is skipped. */
  const errorLogLines = (lines: string[]) =>
    lines.filter((line) => {
      try {
        return (JSON.parse(line) as { level?: number }).level! >= 50;
      } catch {
        return false;
      }
    });

  /** Before a scenario: the service creates again (so a scenario never measures what the one before left broken). */
  async function expectServing(label: string): Promise<void> {
    const until = performance.now() + SERVING_WITHIN_MS;
    let last: LoadResult = 'network error';
    while (performance.now() < until) {
      last = await postWithKey(
        base,
        token,
        '/api/v1/workspaces',
        { organization_id: organizationId, name: `probe ${randomUUID()}` },
        randomUUID(),
      );
      if (statusOf(last) === 201) return;
      await sleep(250);
    }
    const answer = typeof last === 'object' ? `${last.status} ${last.text}` : last;
    throw new Error(`before "${label}": the service did not create a workspace within ${SERVING_WITHIN_MS} ms (last answer: ${answer})`);
  }

  async function runScenario(fault: Fault): Promise<ScenarioRun> {
    if (!isRunning()) throw new Error(`the service process is not running: ${deathNote()}`);
    await expectServing(fault.label);
    const logFrom = service.stdout().length;
    const load = startWriteLoad({ base, token, organizationId, label: fault.label });
    let faultStart: number;
    let faultEnd: number;
    let injected: number | undefined;
    try {
      await sleep(HEALTHY_MS);
      faultStart = performance.now();
      injected = await fault.inject();
      faultEnd = performance.now();
      await sleep(AFTER_FAULT_MS);
    } finally {
      await load.stop();
    }
    const requests = load.requests;
    const firstAfter = requests
      .filter((r) => r.start >= faultEnd && statusOf(r.result) === 201)
      .reduce<number | undefined>((first, r) => Math.min(first ?? Infinity, r.end!), undefined);
    const run: ScenarioRun = {
      label: fault.label,
      requests,
      faultStart,
      faultEnd,
      logLines: service
        .stdout()
        .slice(logFrom)
        .split('\n')
        .filter((line) => line.trim() !== ''),
      recoveryMs: firstAfter === undefined ? undefined : firstAfter - faultEnd,
    };
    console.log(summarize(run, injected));
    if (injected === 0) throw new Error(`the fault "${fault.label}" killed no connection: it tested nothing`);
    return run;
  }

  /** The numbers the closing note gives: worst answer time during the fault, recovery time, and what was answered. */
  function summarize(run: ScenarioRun, injected: number | undefined): string {
    const took = (r: LoadRequest) => r.end! - r.start;
    const during = run.requests.filter((r) => r.start <= run.faultEnd && r.end! >= run.faultStart);
    const statuses = new Map<string, number>();
    for (const r of run.requests) statuses.set(String(statusOf(r.result)), (statuses.get(String(statusOf(r.result))) ?? 0) + 1);
    const startedDuring = run.requests.filter((r) => r.start >= run.faultStart && r.start <= run.faultEnd);
    return [
      `fault=${run.label}`,
      `worst=${ms(Math.max(0, ...during.map(took)))}`,
      `recovery=${run.recoveryMs === undefined ? 'none' : ms(run.recoveryMs)}`,
      `fault-duration=${ms(run.faultEnd - run.faultStart)}`,
      `worst-overall=${ms(Math.max(0, ...run.requests.map(took)))}`,
      `requests=${run.requests.length}`,
      `created-of-started-during-fault=${startedDuring.filter((r) => statusOf(r.result) === 201).length}/${startedDuring.length}`,
      `answers={${[...statuses].map(([s, n]) => `${s}:${n}`).join(' ')}}`,
      ...(injected === undefined ? [] : [`connections-killed=${injected}`]),
    ].join(' ');
  }

  /** What a request looked like, for failure messages. */
  const describeRequest = (run: ScenarioRun, r: LoadRequest) => ({
    kind: r.kind,
    key: r.key,
    status: statusOf(r.result),
    tookMs: r.end === undefined ? undefined : Math.round(r.end - r.start),
    startedMsAfterFaultStart: Math.round(r.start - run.faultStart),
    body: typeof r.result === 'object' ? r.result.text.slice(0, 300) : undefined,
  });

  const isLost = (result: LoadResult | undefined) => {
    const status = statusOf(result);
    return status === 503 || status === 'network error' || status === 'timeout';
  };

  /** Sends `request` again with its key and body until it is 201 (a 409 "still in progress" waits and retries). */
  async function retry(request: LoadRequest): Promise<LoadResult> {
    let result: LoadResult = 'network error';
    for (let attempt = 1; attempt <= RETRY_ATTEMPTS; attempt++) {
      result = await postWithKey(base, token, request.path, request.body, request.key);
      if (statusOf(result) !== 409) return result;
      expectApiError(result as ApiResponse, 409, 'CONFLICT');
      expect((result as ApiResponse).headers.get('retry-after')).toBe('1');
      await sleep(RETRY_PAUSE_MS);
    }
    return result;
  }

  function describeFault(fault: Fault): void {
    describe(fault.title, () => {
      let run: ScenarioRun;
      beforeAll(async () => {
        run = await runScenario(fault);
      }, 90_000);

      it('stays up: the process is alive, /healthz answers 200, and nothing (no uncaught exception) reached stderr', async () => {
        expect(isRunning(), deathNote()).toBe(true);
        const health = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(2000) });
        expect(health.status).toBe(200);
        expect(service.stderr()).toBe('');
      });

      it(`answers every request within the deadline + 1 s (${ANSWER_WITHIN_MS} ms) of its start`, () => {
        const late = run.requests.filter((r) => r.result === 'timeout' || r.end! - r.start > ANSWER_WITHIN_MS);
        expect(
          late.map((r) => describeRequest(run, r)),
          `${late.length} of ${run.requests.length} requests answered late`,
        ).toEqual([]);
      });

      it('answers 201, or 503 SERVICE_UNAVAILABLE with Retry-After: 1 in the documented error shape', () => {
        const answers = run.requests.filter((r) => typeof r.result === 'object');
        const unexpected = answers.filter((r) => ![201, 503].includes(statusOf(r.result) as number));
        expect(
          unexpected.map((r) => describeRequest(run, r)),
          `answers other than 201/503; error-level log lines:\n${errorLogLines(run.logLines).join('\n')}`,
        ).toEqual([]);
        for (const r of answers.filter((a) => statusOf(a.result) === 503)) {
          const answer = r.result as ApiResponse;
          expectApiError(answer, 503, 'SERVICE_UNAVAILABLE');
          expect(answer.headers.get('retry-after'), answer.text).toBe('1');
        }
      });

      it(`creates again within ${RECOVERY_WITHIN_MS / 1000} s of the fault ending, and every create started after that succeeds`, () => {
        expect(run.recoveryMs, 'no 201 for a request started after the fault ended').toBeDefined();
        expect(run.recoveryMs!).toBeLessThanOrEqual(RECOVERY_WITHIN_MS);
        const later = run.requests.filter((r) => r.start >= run.faultEnd + RECOVERY_WITHIN_MS && r.result !== 'network error');
        const failed = later.filter((r) => statusOf(r.result) !== 201);
        expect(
          failed.map((r) => describeRequest(run, r)),
          `${failed.length} of ${later.length} requests started ${RECOVERY_WITHIN_MS} ms after the fault failed`,
        ).toEqual([]);
      });

      it('keeps every acknowledged write: each id a 201 answered is in the database', async () => {
        const ids = run.requests.flatMap((r) => acknowledgedIds(r));
        expect(ids.length).toBeGreaterThan(0);
        const found = await adminQuery((sql) => sql<{ id: string }[]>`select id from workspaces where id = any(${ids}::uuid[])`);
        const present = new Set(found.map((r) => r.id));
        expect(ids.filter((id) => !present.has(id))).toEqual([]);
      });

      it('applies each atomic provision entirely or not at all, and no create twice', async () => {
        const counts = await nameCounts(run.requests.flatMap((r) => r.names));
        const partial = run.requests
          .filter((r) => r.kind === 'provision')
          .map((r) => ({ ...describeRequest(run, r), present: r.names.filter((n) => counts.has(n)).length, of: r.names.length }))
          .filter((p) => p.present !== 0 && p.present !== p.of);
        expect(partial, 'provisions partly applied').toEqual([]);
        const acknowledgedButAbsent = run.requests.filter((r) => statusOf(r.result) === 201 && r.names.some((n) => counts.get(n) !== 1));
        expect(acknowledgedButAbsent.map((r) => describeRequest(run, r))).toEqual([]);
        const duplicated = [...counts].filter(([, n]) => n > 1);
        expect(duplicated).toEqual([]);
      });

      it('gives each lost answer (503, network error, timeout), retried with its Idempotency-Key, exactly one effect', async () => {
        const lost = run.requests.filter((r) => isLost(r.result));
        const retried: Array<{ request: LoadRequest; result: LoadResult }> = [];
        for (let i = 0; i < lost.length; i += RETRY_CONCURRENCY) {
          const wave = lost.slice(i, i + RETRY_CONCURRENCY);
          retried.push(...(await Promise.all(wave.map(async (request) => ({ request, result: await retry(request) })))));
          // A service that does not serve again would only make each remaining retry wait out its deadline.
          if (retried.some(({ result }) => statusOf(result) !== 201)) break;
        }
        const replays = retried.filter(({ result }) => typeof result === 'object' && result.headers.get('idempotent-replayed') === 'true');
        console.log(`fault=${run.label} retried=${retried.length} replayed=${replays.length}`);
        const notCreated = retried.filter(({ result }) => statusOf(result) !== 201);
        expect(
          notCreated.map(({ request, result }) => ({
            ...describeRequest(run, request),
            retry: statusOf(result),
            retryBody: typeof result === 'object' ? result.text : undefined,
          })),
          `retries not answered 201 (${lost.length - retried.length} more not retried)`,
        ).toEqual([]);
        for (const { request, result } of retried) {
          if (request.kind === 'provision')
            expect((result as ApiResponse).body.created.map((w: { name: string }) => w.name)).toEqual(request.names);
          else expect((result as ApiResponse).body.name).toBe(request.names[0]);
        }

        // Every create and every provision of the scenario happened exactly once.
        const names = run.requests.flatMap((r) => r.names);
        const counts = await nameCounts(names);
        expect(names.filter((n) => counts.get(n) !== 1).map((n) => [n, counts.get(n) ?? 0])).toEqual([]);
        const ids = retried.flatMap(({ request, result }) => acknowledgedIds(request, result));
        const found = await adminQuery((sql) => sql<{ id: string }[]>`select id from workspaces where id = any(${ids}::uuid[])`);
        expect(found).toHaveLength(ids.length);
      }, 60_000);
    });
  }

  /** Repeats `action` `times` times, `everyMs` apart; sums what it returns. */
  async function repeatedly(times: number, everyMs: number, action: () => number | Promise<number>): Promise<number> {
    let total = 0;
    for (let i = 0; i < times; i++) {
      if (i > 0) await sleep(everyMs);
      total += await action();
    }
    return total;
  }

  describeFault({
    title: 'connections reset mid-transaction (the proxy resets every connection every 300 ms for 3 s)',
    label: 'reset',
    inject: () =>
      repeatedly(10, 300, () => {
        const open = proxy.connections();
        proxy.resetAll();
        return open;
      }),
  });

  describeFault({
    title: "backends terminated (pg_terminate_backend on the service's backends every 300 ms for 3 s)",
    label: 'terminate',
    inject: () =>
      repeatedly(10, 300, async () => {
        const rows = await adminQuery(
          (sql) => sql<{ terminated: boolean }[]>`
            select pg_terminate_backend(pid) as terminated from pg_stat_activity
            where application_name = ${SERVICE_APPLICATION_NAME}`,
        );
        return rows.filter((r) => r.terminated).length;
      }),
  });

  describeFault({
    title: 'a silent network path (the proxy forwards nothing and closes nothing for 5 s)',
    label: 'silence',
    async inject() {
      proxy.goSilent();
      await sleep(5000);
      proxy.resume();
      return undefined;
    },
  });

  describeFault({
    title: 'the database server down (stop -m immediate, a crash, for 5 s, then started again)',
    label: 'stop',
    async inject() {
      await cluster.stop('immediate');
      await sleep(5000);
      await cluster.start();
      return undefined;
    },
  });

  describeFault({
    title: 'a slow network path (300 ms added each way for 3 s)',
    label: 'latency',
    async inject() {
      proxy.setLatency(300);
      await sleep(3000);
      proxy.setLatency(0);
      return undefined;
    },
  });
});
