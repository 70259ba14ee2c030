import { connect } from 'node:net';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy';
import { freePort } from './helpers/free-port';
import { startDisposableCluster, type DisposableCluster } from './helpers/pg-cluster';
import { startPgBouncer, type PgBouncer } from './helpers/pgbouncer';

/**
 * Proves the fault-injection helpers do what they say, against the machine's server (through the
 * proxy and PgBouncer) and a disposable cluster, so a fault test that fails is about the app.
 */

const serverUrl = process.env.DATABASE_URL;

/** Codes postgres.js (or node:net under it) fails a query with when the connection is gone. */
const CONNECTION_ERRORS = [
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
];

/** The error code `promise` rejects with (fails the test if it resolves). */
async function failureCode(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return String((error as { code?: unknown }).code);
  }
  throw new Error('expected the query to fail, it answered');
}

/** 'answered' or 'no answer' within `ms`; a late rejection of `promise` is swallowed. */
async function answersWithin(promise: Promise<unknown>, ms: number): Promise<'answered' | 'no answer'> {
  promise.catch(() => {});
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'no answer'>((resolve) => (timer = setTimeout(() => resolve('no answer'), ms)));
  try {
    return await Promise.race([promise.then(() => 'answered' as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe.runIf(Boolean(serverUrl))('fault-injection helpers', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  /** A postgres.js client that afterAll closes (quickly: a held or dead connection must not stall it). */
  const client = (url: string, options: postgres.Options<Record<string, never>> = {}) => {
    const sql = postgres(url, { max: 1, prepare: false, connect_timeout: 2, idle_timeout: 0, onnotice: () => {}, ...options });
    cleanups.push(() => sql.end({ timeout: 0.2 }));
    return sql;
  };

  afterAll(async () => {
    const failures: unknown[] = [];
    for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => failures.push(error));
    if (failures.length > 0) throw new AggregateError(failures, 'cleanup failed');
  });

  describe('fault proxy', () => {
    let proxy: FaultProxy;
    const proxyUrl = () => {
      const url = new URL(serverUrl!);
      url.hostname = proxy.host;
      url.port = String(proxy.port);
      return url.toString();
    };

    it('forwards queries to the server', async () => {
      const target = new URL(serverUrl!);
      proxy = await startFaultProxy({ targetHost: target.hostname, targetPort: Number(target.port || 5432) });
      cleanups.push(() => proxy.close());
      const sql = client(proxyUrl());
      expect(await sql`select 1 + 1 as two`).toEqual([{ two: 2 }]);
      expect(proxy.connections()).toBe(1);
    });

    it('resetAll() fails an open connection, and a new one works', async () => {
      const sql = client(proxyUrl());
      await sql`select 1`;
      const inFlight = sql`select pg_sleep(5)`.execute();
      await new Promise((resolve) => setTimeout(resolve, 100));
      proxy.resetAll();
      expect(CONNECTION_ERRORS).toContain(await failureCode(inFlight));
      // postgres.js sees the reset's 'error' before the socket's 'close': a query sent in between
      // fails too (CONNECTION_CLOSED). Once the close is in, the pool reconnects through the proxy.
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(await sql`select 2 as n`).toEqual([{ n: 2 }]);
      const fresh = client(proxyUrl());
      expect(await fresh`select 3 as n`).toEqual([{ n: 3 }]);
    });

    it('goSilent() leaves open and new connections unanswered; resume() drops them and works again', async () => {
      const before = client(proxyUrl());
      await before`select 1`;
      proxy.goSilent();
      const onHeld = before`select 1`.execute();
      expect(await answersWithin(onHeld, 1000)).toBe('no answer');
      const during = client(proxyUrl());
      expect(await answersWithin(during`select 1`.execute(), 1000)).toBe('no answer');
      expect(proxy.connections()).toBeGreaterThanOrEqual(2); // held open, not closed

      proxy.resume();
      expect(CONNECTION_ERRORS).toContain(await failureCode(onHeld)); // its connection was dropped on resume
      expect(await client(proxyUrl())`select 4 as n`).toEqual([{ n: 4 }]);
      expect(await before`select 5 as n`).toEqual([{ n: 5 }]);
    });

    it('setLatency(ms) delays each direction by about ms', async () => {
      const sql = client(proxyUrl());
      await sql`select 1`;
      proxy.setLatency(200);
      let start = performance.now();
      await sql`select 1`;
      const slow = performance.now() - start;
      proxy.setLatency(0);
      start = performance.now();
      await sql`select 1`;
      const fast = performance.now() - start;
      expect(slow).toBeGreaterThanOrEqual(380); // request and answer, 200 ms each
      expect(slow).toBeLessThan(1500);
      expect(fast).toBeLessThan(slow / 2); // latency 0 forwards at once again
    });

    it('closes a client whose upstream refuses, without an unhandled error', async () => {
      const dead = await startFaultProxy({ targetHost: '127.0.0.1', targetPort: await freePort() });
      cleanups.push(() => dead.close());
      const socket = connect({ host: dead.host, port: dead.port });
      socket.on('error', () => {});
      await new Promise((resolve) => socket.once('close', resolve));
      expect(dead.connections()).toBe(0);
    });

    it('close() leaves no timer behind, even with delayed chunks queued', async () => {
      const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
      const baseline = timers();
      const slow = await startFaultProxy({ targetHost: '127.0.0.1', targetPort: proxy.port });
      slow.setLatency(10_000);
      const socket = connect({ host: slow.host, port: slow.port });
      socket.on('error', () => {});
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write('queued for 10 s');
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(timers()).toBeGreaterThan(baseline);
      await slow.close();
      socket.destroy();
      expect(timers()).toBeLessThanOrEqual(baseline);
    });
  });

  describe('disposable cluster', () => {
    let cluster: DisposableCluster;

    it('starts, and stop(immediate) / start() take it down and back', async () => {
      cluster = await startDisposableCluster();
      cleanups.push(() => cluster.destroy());
      expect(cluster.url).toBe(`postgres://postgres@127.0.0.1:${cluster.port}/postgres`);
      const sql = client(cluster.url);
      expect(await sql`select current_setting('fsync') as fsync`).toEqual([{ fsync: 'off' }]);

      await cluster.stop('immediate');
      expect(CONNECTION_ERRORS).toContain(await failureCode(sql`select 1`.execute()));
      await cluster.start();
      expect(await sql`select 6 as n`).toEqual([{ n: 6 }]);
    });
  });

  describe('pgbouncer', () => {
    let bouncer: PgBouncer;

    it('forwards a query and a transaction in transaction pool mode', async () => {
      bouncer = await startPgBouncer({ targetUrl: serverUrl! });
      cleanups.push(() => bouncer.stop());
      // The app's own startup parameters (application_name, statement_timeout) are accepted.
      const sql = client(bouncer.url('postgres'), { connection: { application_name: 'fault-infra', statement_timeout: 10_000 } });
      expect(await sql`select current_database() as db, ${7}::int as n`).toEqual([{ db: 'postgres', n: 7 }]);
      const rows = await sql.begin(async (tx) => {
        await tx`create temp table fault_infra_tx (n int) on commit drop`;
        await tx`insert into fault_infra_tx values (8)`;
        return tx`select n from fault_infra_tx`;
      });
      expect([...rows]).toEqual([{ n: 8 }]);
    }, 120_000); // the first start may apt-get install pgbouncer

    it('shares one server connection between clients (transaction pooling)', async () => {
      const single = await startPgBouncer({ targetUrl: serverUrl!, defaultPoolSize: 1 });
      cleanups.push(() => single.stop());
      const a = client(single.url());
      const b = client(single.url());
      const [first] = await a`select pg_backend_pid() as pid`;
      const [second] = await b`select pg_backend_pid() as pid`;
      expect(second!.pid).toBe(first!.pid);
    });
  });
});
