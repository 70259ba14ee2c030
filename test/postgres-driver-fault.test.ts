import { randomBytes } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseUrlFor } from './helpers/database-url';

/**
 * The driver (postgres.js 3.4.9) against a backend that dies mid-statement: the connection's
 * own ROLLBACK used to be written from a setImmediate after the socket was nulled, an
 * uncaught TypeError in `nextWrite` that no try/catch reaches (porsager/postgres #1154,
 * #1066, #1208), and the connection's stale write state then wedged the pool. Our fix is
 * patches/postgres+3.4.9.patch (applied by patch-package on install). PostgreSQL only: each
 * attempt terminates its own backend from a second connection.
 */
const serverUrl = process.env.DATABASE_URL;

const POOL_SIZE = 4;
/** Transactions killed in total, CONCURRENCY at a time (the rest of the pool stays usable). */
const ATTEMPTS = 40;
const CONCURRENCY = 2;
/** How long one killed transaction (or one health check) may take to settle. */
const SETTLE_MS = 4_000;
/** Codes that mean "the connection went away": the driver's own, or the server's FATAL. */
const CLOSED_CODES = ['CONNECTION_CLOSED', '57P01'];

type Outcome = { kind: 'resolved' | 'rejected' | 'timeout'; code?: string; error?: unknown; ms: number; killed?: boolean };

/** Settles `promise` into an outcome, or a timeout after `ms`: nothing here may hang the test. */
function settleWithin(promise: Promise<unknown>, ms = SETTLE_MS): Promise<Outcome> {
  const start = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<Outcome>((resolve) => {
    timer = setTimeout(() => resolve({ kind: 'timeout', ms }), ms);
  });
  return Promise.race([
    promise.then(
      (): Outcome => ({ kind: 'resolved', ms: Date.now() - start }),
      (error: unknown): Outcome => ({
        kind: 'rejected',
        code: (error as { code?: string } | undefined)?.code,
        error,
        ms: Date.now() - start,
      }),
    ),
    timeout,
  ]).finally(() => clearTimeout(timer));
}

/** `promise`'s value, or a rejection after `ms`. */
async function within<T>(promise: Promise<T>, what: string, ms = SETTLE_MS): Promise<T> {
  const outcome = await settleWithin(promise, ms);
  if (outcome.kind === 'timeout') throw new Error(`${what}: no answer within ${ms} ms`);
  return promise;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await sleep(5);
  }
  return false;
}

const isClosedError = (outcome: Outcome) => outcome.kind === 'rejected' && CLOSED_CODES.includes(String(outcome.code));

describe.runIf(Boolean(serverUrl))('postgres.js when the backend dies mid-statement', () => {
  const database = `ws_drv_${randomBytes(6).toString('hex')}`;
  const applicationName = `ws_drv_fault_${process.pid}`;
  const uncaught: unknown[] = [];
  const onUncaught = (error: unknown) => void uncaught.push(error);
  let admin: postgres.Sql;
  let sql: postgres.Sql;

  beforeAll(async () => {
    admin = postgres(serverUrl!, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database "${database}"`);
    sql = postgres(databaseUrlFor(serverUrl!, database), {
      max: POOL_SIZE,
      onnotice: () => {},
      connection: { application_name: applicationName },
    });
    await sql`create table drv_probe (attempt int not null)`;
    // The crash is thrown from a setImmediate: only a process listener sees it.
    process.on('uncaughtException', onUncaught);
    process.on('unhandledRejection', onUncaught);
  });

  afterAll(async () => {
    process.off('uncaughtException', onUncaught);
    process.off('unhandledRejection', onUncaught);
    await sql?.end({ timeout: 1 });
    await admin?.unsafe(`drop database if exists "${database}" with (force)`);
    await admin?.end({ timeout: 1 });
  });

  /** Waits until `pid` (a backend of our pool, in our database) sleeps in pg_sleep, then kills it. */
  async function terminateWhileSleeping(pid: number): Promise<void> {
    const sleeping = await until(async () => {
      const rows = await within(
        admin`
        select 1 from pg_stat_activity
        where pid = ${pid} and datname = ${database} and application_name = ${applicationName}
          and wait_event = 'PgSleep'`,
        'pg_stat_activity',
      );
      return rows.length === 1;
    }, SETTLE_MS);
    expect(sleeping, `backend ${pid} never reached pg_sleep`).toBe(true);
    const [row] = await admin<{ terminated: boolean }[]>`select pg_terminate_backend(${pid}) as terminated`;
    expect(row?.terminated).toBe(true);
  }

  /** Asserts that the pool still answers: concurrent queries and a committed transaction. */
  async function expectPoolServes(marker: number): Promise<void> {
    const selects = await settleWithin(Promise.all(Array.from({ length: 8 }, (_, i) => sql`select ${i}::int as n`)));
    expect(selects, 'concurrent selects on the same pool after the kills').toMatchObject({ kind: 'resolved' });
    const commit = await settleWithin(sql.begin(async (t) => t`insert into drv_probe (attempt) values (${marker})`));
    expect(commit, 'a new transaction on the same pool after the kills').toMatchObject({ kind: 'resolved' });
    const [row] = await within(sql<{ n: number }[]>`select count(*)::int as n from drv_probe where attempt = ${marker}`, 'count');
    expect(row?.n).toBe(1);
  }

  /**
   * One transaction whose backend is terminated while it runs `select pg_sleep(5)`; `killed` says
   * it got that far (a transaction that fails before, e.g. with a stale error, is a failure too).
   */
  async function killedTransaction(attempt: number): Promise<Outcome> {
    let pid: number | null = null;
    let settled = false;
    const tx = sql.begin(async (t) => {
      await t`insert into drv_probe (attempt) values (${attempt})`;
      const [row] = await t<{ pid: number }[]>`select pg_backend_pid() as pid`;
      pid = row!.pid;
      await t`select pg_sleep(5)`;
    });
    const outcome = settleWithin(tx).finally(() => (settled = true));
    await until(() => pid !== null || settled, SETTLE_MS);
    const killed = pid !== null && !settled;
    if (killed) await terminateWhileSleeping(pid!);
    return { ...(await outcome), killed };
  }

  it('rejects every killed transaction catchably, never crashes, and the pool recovers', async () => {
    const outcomes: Outcome[] = [];
    for (let done = 0; done < ATTEMPTS; done += CONCURRENCY) {
      const wave = await Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => killedTransaction(done + i)));
      outcomes.push(...wave);
      // A crashed or wedged driver would only make every later attempt wait out its timeout.
      if (uncaught.length > 0 || !wave.every((o) => o.killed && isClosedError(o))) break;
    }

    expect(uncaught, 'uncaught exceptions / unhandled rejections from the driver').toEqual([]);
    const failures = outcomes
      .map((o, attempt) => ({
        attempt,
        killed: o.killed,
        kind: o.kind,
        code: o.code,
        error: o.error instanceof Error ? o.error.message : JSON.stringify(o.error ?? null),
        ms: o.ms,
      }))
      .filter((o) => !o.killed || !isClosedError(outcomes[o.attempt]!));
    expect(failures, 'attempts not killed mid-statement, or not rejected as a closed connection').toEqual([]);
    expect(outcomes).toHaveLength(ATTEMPTS);
    expect(Math.max(...outcomes.map((o) => o.ms))).toBeLessThan(SETTLE_MS);

    // None of the killed transactions committed; the same pool serves again.
    const [row] = await within(sql<{ n: number }[]>`select count(*)::int as n from drv_probe`, 'count');
    expect(row?.n).toBe(0);
    await expectPoolServes(-1);
    expect(uncaught).toEqual([]);
  });

  it('rejects queries on a reserved connection whose backend died, and release() leaves the pool healthy', async () => {
    for (let attempt = 0; attempt < 5; attempt++) {
      const reserved = await within(sql.reserve(), 'reserve()');
      const [row] = await within(reserved<{ pid: number }[]>`select pg_backend_pid() as pid`, 'pg_backend_pid()');
      const inFlight = settleWithin(reserved`select pg_sleep(5)`);
      await terminateWhileSleeping(row!.pid);
      const first = await inFlight;
      expect(isClosedError(first), `in-flight query: ${first.kind} ${String(first.code)}`).toBe(true);
      // The next query on the dead reservation must fail too, not crash or wait forever.
      const next = await settleWithin(reserved`select 1`);
      expect(isClosedError(next), `query after the close: ${next.kind} ${String(next.code)}`).toBe(true);
      reserved.release();
      if (uncaught.length > 0) break;
    }
    expect(uncaught).toEqual([]);
    await expectPoolServes(-2);
    expect(uncaught).toEqual([]);
  });

  it('rejects a query the transaction issues after its connection died, without losing the pool slot', async () => {
    // More attempts than the pool has connections: a dead connection parked in the wrong pool
    // queue by each late query would leave no connection to run the next transaction.
    for (let attempt = 0; attempt < POOL_SIZE + 2; attempt++) {
      let pid: number | null = null;
      let late: Promise<Outcome> | undefined;
      const tx = settleWithin(
        sql.begin(async (t) => {
          const [row] = await t<{ pid: number }[]>`select pg_backend_pid() as pid`;
          pid = row!.pid;
          try {
            await t`select pg_sleep(5)`;
          } catch {
            // A parameterised statement no connection has prepared (so it is described first and
            // not pipelined), sent on the dead connection.
            late = settleWithin(t`select ${attempt}::int as late_query`);
          }
        }),
      );
      const started = await until(() => pid !== null, SETTLE_MS);
      expect(started, `transaction ${attempt} never started`).toBe(true);
      await terminateWhileSleeping(pid!);
      const outcome = await tx;
      expect(isClosedError(outcome), `transaction: ${outcome.kind} ${String(outcome.code)}`).toBe(true);
      await until(() => late !== undefined, SETTLE_MS);
      const lateOutcome = await late!;
      expect(isClosedError(lateOutcome), `late query: ${lateOutcome.kind} ${String(lateOutcome.code)}`).toBe(true);
      if (uncaught.length > 0) break;
    }
    expect(uncaught).toEqual([]);
    await expectPoolServes(-3);
  });

  it('lets end() finish after a backend was killed mid-query', async () => {
    const pool = postgres(databaseUrlFor(serverUrl!, database), {
      max: 1,
      onnotice: () => {},
      connection: { application_name: applicationName },
    });
    let ending = false;
    try {
      const [row] = await within(pool<{ pid: number }[]>`select pg_backend_pid() as pid`, 'pg_backend_pid()');
      const inFlight = settleWithin(pool`select pg_sleep(5)`);
      await terminateWhileSleeping(row!.pid);
      const outcome = await inFlight;
      expect(isClosedError(outcome), `in-flight query: ${outcome.kind} ${String(outcome.code)}`).toBe(true);
      // No timeout given: end() waits for the connection's in-flight query, which is settled.
      ending = true;
      expect(await settleWithin(pool.end()), 'end() after the kill').toMatchObject({ kind: 'resolved' });
    } finally {
      // (A second end() would only return the first one's promise.)
      if (!ending) await pool.end({ timeout: 1 });
    }
    expect(uncaught).toEqual([]);
  });

  it('rejects the query a connection was opened for when the connection resets while it fetches array types', async () => {
    // A loopback proxy that resets the client's connection the moment the driver sends its
    // internal array-types query (the first statement of every new connection), three times.
    const target = new URL(serverUrl!);
    const sockets = new Set<Socket>();
    let resets = 0;
    const proxy = createServer((client) => {
      const upstream = connect(Number(target.port || 5432), target.hostname);
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.on('error', () => {});
        socket.on('close', () => sockets.delete(socket));
      }
      client.on('data', (chunk) => {
        if (resets < 3 && chunk.includes('typarray')) {
          resets++;
          client.resetAndDestroy();
          upstream.destroy();
        } else upstream.write(chunk);
      });
      upstream.pipe(client);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const { port } = proxy.address() as { port: number };
    const proxied = new URL(databaseUrlFor(serverUrl!, database));
    proxied.hostname = '127.0.0.1';
    proxied.port = String(port);
    const pool = postgres(proxied.toString(), { max: 1, onnotice: () => {} });
    try {
      const outcomes: Outcome[] = [];
      for (let i = 0; i < 4; i++) outcomes.push(await settleWithin(pool`select ${i}::int as n`));
      expect(resets).toBe(3);
      expect(outcomes.map((o) => `${o.kind} ${o.code ?? ''}`)).toEqual([
        'rejected ECONNRESET',
        'rejected ECONNRESET',
        'rejected ECONNRESET',
        'resolved ',
      ]);
      await sleep(50); // an unhandled rejection is reported after the microtask queue drains
      expect(uncaught, 'the internal array-types query must not reject unhandled').toEqual([]);
    } finally {
      await pool.end({ timeout: 1 });
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => proxy.close(resolve));
    }
  });
});
