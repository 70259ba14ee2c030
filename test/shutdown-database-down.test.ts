import { randomBytes, randomUUID } from 'node:crypto';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_DEADLINE_MS } from '../src/db/client';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy';
import { startDisposableCluster, type DisposableCluster } from './helpers/pg-cluster';
import { exitWithin, sleep, startServerProcess, type ServerProcess } from './helpers/process-helpers';

/**
 * Shutdown while the database is unreachable: SIGTERM to the real service process (as `npm
 * start` runs it) with a request in flight and idle pool connections, after its database went
 * away, ends the process with 0 within the request deadline (DATABASE_DEADLINE_MS) plus 1 s,
 * measured from the signal (the start-up is not counted) — never at the 10 s forced exit of
 * src/main.ts. Two ways to lose the database, each with a process of its own on one disposable
 * cluster:
 *   - the network path goes silent (a fault proxy that forwards nothing and closes nothing):
 *     the in-flight statement and the Terminate messages of the pool's close never answer;
 *   - the server crashes (`pg_ctl stop -m immediate`) and stays down: connections are refused.
 * And a third process, stopped while the database is healthy, still drains: the request in
 * flight at the signal (held on a row lock) is answered 200 before the process exits 0.
 * The machine's shared server is never touched. (Before the shutdown was bounded, the silent
 * path took 6.7 s: the pool's close waited 5 s for goodbyes a silent server never sends.)
 */

const serverUrl = process.env.DATABASE_URL;

const DEADLINE_MS = DEFAULT_DEADLINE_MS;
/** SIGTERM → exit, at most. */
const EXIT_WITHIN_MS = DEADLINE_MS + 1000;
/** The in-flight request is sent this long before the signal, after the database went away. */
const IN_FLIGHT_BEFORE_SIGNAL_MS = 300;

interface Stopped {
  code: number | string;
  /** SIGTERM → exit. */
  exitMs: number;
  /** The request sent before the signal: its status (or 'network error'), answered this long after the signal (negative: before it). */
  inFlight: { status: number | 'network error'; afterSignalMs: number };
}

describe.runIf(Boolean(serverUrl))('SIGTERM while the database is unreachable', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  let cluster: DisposableCluster;
  let proxy: FaultProxy;
  /** Behind the proxy (which goes silent) / on the cluster directly (which is stopped). */
  let behindProxy: Service;
  let direct: Service;
  /** On the cluster, stopped while all is well: the drain still waits for the request in flight. */
  let healthy: Service;
  let admin: postgres.Sql;

  interface Service {
    proc: ServerProcess;
    base: string;
    token: string;
    workspaceId: string;
  }

  async function startService(databaseUrl: string): Promise<Service> {
    const proc = startServerProcess({
      DATABASE_URL: databaseUrl,
      // Migrations go to the cluster directly (never through the proxy).
      DATABASE_MIGRATION_URL: cluster.url,
      PORT: '0',
      JWT_SECRET: randomBytes(32).toString('hex'),
      NODE_ENV: 'test',
      // `info`, not quieter: ready() finds the port in the "listening" line.
      LOG_LEVEL: 'info',
      RATE_LIMIT_PER_MINUTE: '0',
      AUTH_RATE_LIMIT_PER_MINUTE: '0',
    });
    cleanups.push(() => proc.kill());
    const base = await proc.ready();
    const response = await fetch(`${base}/api/v1/auth/signup`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: `shutdown-${randomUUID()}@example.com`, password: 'correct horse battery', name: 'Shutdown' }),
    });
    const body = (await response.json()) as any;
    expect(response.status, JSON.stringify(body)).toBe(201);
    const service = { proc, base, token: body.access_token as string, workspaceId: body.workspace.id as string };
    // A few reads at once: the pool holds several idle connections when the database goes away.
    const reads = await Promise.all(Array.from({ length: 4 }, () => read(service)));
    expect(reads).toEqual([200, 200, 200, 200]);
    return service;
  }

  /** A read that needs the database; its status, or 'network error' when the connection failed. */
  async function read({ base, token, workspaceId }: Service): Promise<number | 'network error'> {
    try {
      const response = await fetch(`${base}/api/v1/workspaces/${workspaceId}`, {
        headers: { authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(15_000),
      });
      await response.arrayBuffer();
      return response.status;
    } catch {
      return 'network error';
    }
  }

  /** One read in flight, then SIGTERM; resolves once the process has exited (or 15 s passed). */
  async function stopWithRequestInFlight(service: Service): Promise<Stopped> {
    const inFlight = read(service).then((status) => ({ status, answeredAt: Date.now() }));
    await sleep(IN_FLIGHT_BEFORE_SIGNAL_MS);
    const signalledAt = Date.now();
    service.proc.child.kill('SIGTERM');
    const code = await exitWithin(service.proc, 15_000);
    const exitMs = Date.now() - signalledAt;
    const { status, answeredAt } = await inFlight;
    return { code, exitMs, inFlight: { status, afterSignalMs: answeredAt - signalledAt } };
  }

  beforeAll(async () => {
    cluster = await startDisposableCluster();
    cleanups.push(() => cluster.destroy());
    proxy = await startFaultProxy({ targetHost: '127.0.0.1', targetPort: cluster.port });
    cleanups.push(() => proxy.close());
    admin = postgres(cluster.url, { max: 1, onnotice: () => {} });
    cleanups.push(() => admin.end({ timeout: 1 }));
    [behindProxy, direct, healthy] = await Promise.all([
      startService(`postgres://postgres@${proxy.host}:${proxy.port}/postgres`),
      startService(cluster.url),
      startService(cluster.url),
    ]);
  }, 150_000);

  afterAll(async () => {
    const failures: unknown[] = [];
    for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => failures.push(error));
    if (failures.length > 0) throw new AggregateError(failures, 'cleanup failed');
  });

  it('with the database healthy, still finishes the request in flight before it exits 0', async () => {
    // The request waits for a row lock the test holds, so it is surely in flight at the signal.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let locked!: () => void;
    const lockHeld = new Promise<void>((resolve) => (locked = resolve));
    const holding = admin.begin(async (sql) => {
      await sql`select 1 from workspaces where id = ${healthy.workspaceId} for update`;
      locked();
      await released;
    });
    await lockHeld;
    const update = fetch(`${healthy.base}/api/v1/workspaces/${healthy.workspaceId}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${healthy.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Renamed during shutdown' }),
    }).then(async (response) => ({ status: response.status, body: await response.text(), answeredAt: Date.now() }));
    await sleep(IN_FLIGHT_BEFORE_SIGNAL_MS);
    const signalledAt = Date.now();
    healthy.proc.child.kill('SIGTERM');
    await sleep(IN_FLIGHT_BEFORE_SIGNAL_MS);
    release();
    await holding;
    const code = await exitWithin(healthy.proc, 15_000);
    const exitMs = Date.now() - signalledAt;
    const answered = await update;
    console.log(
      `healthy: exit ${code} after ${exitMs} ms; the update answered ${answered.status} ${answered.answeredAt - signalledAt} ms after the signal`,
    );
    expect(code, healthy.proc.stderr()).toBe(0);
    expect(answered.status, answered.body).toBe(200);
    expect(answered.answeredAt).toBeGreaterThan(signalledAt);
    expect(exitMs).toBeLessThanOrEqual(EXIT_WITHIN_MS);
    const [row] = await admin<[{ name: string }]>`select name from workspaces where id = ${healthy.workspaceId}`;
    expect(row.name).toBe('Renamed during shutdown');
  }, 30_000);

  it('exits 0 within the deadline + 1 s when the network path to the database has gone silent', async () => {
    proxy.goSilent();
    const stopped = await stopWithRequestInFlight(behindProxy);
    console.log(`silent path: exit ${stopped.code} after ${stopped.exitMs} ms; in-flight request ${JSON.stringify(stopped.inFlight)}`);
    expect(stopped.code, behindProxy.proc.stderr()).toBe(0);
    expect(stopped.exitMs).toBeLessThanOrEqual(EXIT_WITHIN_MS);
    // The request in flight was answered (503 at its deadline), not cut off.
    expect(stopped.inFlight.status).toBe(503);
    expect(behindProxy.proc.stdout()).toContain('"msg":"stopped"');
  }, 30_000);

  it('exits 0 within the deadline + 1 s when the database server has crashed and stays down', async () => {
    await cluster.stop('immediate');
    // Here the read fails at once (the connection is refused): the process is idle, its pool's
    // connections closed by the crash, when the signal comes.
    const stopped = await stopWithRequestInFlight(direct);
    console.log(`server down: exit ${stopped.code} after ${stopped.exitMs} ms; in-flight request ${JSON.stringify(stopped.inFlight)}`);
    expect(stopped.code, direct.proc.stderr()).toBe(0);
    expect(stopped.exitMs).toBeLessThanOrEqual(EXIT_WITHIN_MS);
    expect(stopped.inFlight.status).toBe(503);
    expect(direct.proc.stdout()).toContain('"msg":"stopped"');
  }, 30_000);
});
