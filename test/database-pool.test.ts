import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config';
import { openDatabase } from '../src/db/open';
import { signup, startTestApp, type SignedUp, type TestApp } from './helpers/app';

/**
 * The pool is sized by configuration (DATABASE_POOL_MAX, DATABASE_IDLE_TIMEOUT_S): the
 * service's sessions on its database, counted by PostgreSQL itself in `pg_stat_activity`,
 * never exceed the pool's size however many requests arrive at once, and a pool left idle
 * gives its connections back. PostgreSQL only (the embedded database has no connections).
 */

const onPostgres = Boolean(process.env.DATABASE_URL);

const POOL_MAX = 3;
const IDLE_TIMEOUT_S = 1;
/** Concurrent reads in one burst, and bursts in all. */
const BURST = 20;
const BURSTS = 5;
/** What the service's pool connections call themselves (src/db/client.ts). */
const SERVICE_APPLICATION_NAME = 'workspaces-api';

describe.runIf(onPostgres)(`DATABASE_POOL_MAX=${POOL_MAX}, DATABASE_IDLE_TIMEOUT_S=${IDLE_TIMEOUT_S}`, () => {
  let app: TestApp;
  let owner: SignedUp;
  /** A session of the test's own on the app's database (another application_name): it is not counted. */
  let observer: postgres.Sql;

  beforeAll(async () => {
    app = await startTestApp({ DATABASE_POOL_MAX: String(POOL_MAX), DATABASE_IDLE_TIMEOUT_S: String(IDLE_TIMEOUT_S) });
    observer = postgres(app.config.DATABASE_URL!, { max: 1, onnotice: () => {}, connection: { application_name: 'pool-test-observer' } });
    owner = await signup(app, 'Pool');
  });

  afterAll(async () => {
    await observer?.end({ timeout: 1 });
    await app?.close();
  });

  /** The service's sessions on its database now. */
  async function serviceSessions(): Promise<number> {
    const [row] = await observer<[{ count: number }]>`
      select count(*)::int as count from pg_stat_activity
       where application_name = ${SERVICE_APPLICATION_NAME} and datname = current_database()`;
    return row.count;
  }

  const read = async () => (await app.request('GET', `/api/v1/workspaces/${owner.workspace.id}`, { token: owner.token })).status;

  it(`holds at most ${POOL_MAX} sessions while ${BURST} reads run at once`, async () => {
    const counts: number[] = [];
    let reading = true;
    const sampling = (async () => {
      while (reading) {
        counts.push(await serviceSessions());
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    const statuses: number[] = [];
    try {
      for (let burst = 0; burst < BURSTS; burst++) statuses.push(...(await Promise.all(Array.from({ length: BURST }, read))));
    } finally {
      reading = false;
      await sampling;
    }
    console.log(`sessions sampled ${counts.length} times during ${BURSTS} bursts of ${BURST}: max ${Math.max(...counts)}`);
    // The pool waits for a free connection; nobody is turned away.
    expect(statuses).toEqual(Array.from({ length: BURST * BURSTS }, () => 200));
    expect(counts.length).toBeGreaterThan(0);
    expect(Math.max(...counts), `sessions seen: ${counts.join(',')}`).toBeLessThanOrEqual(POOL_MAX);
    // The burst did need the whole pool (a limit that was never reached would prove nothing).
    expect(Math.max(...counts), `sessions seen: ${counts.join(',')}`).toBe(POOL_MAX);
  });

  it(`closes idle connections after ${IDLE_TIMEOUT_S} s`, async () => {
    await Promise.all(Array.from({ length: BURST }, read));
    expect(await serviceSessions()).toBeGreaterThan(0);
    const idleFrom = Date.now();
    await expect.poll(serviceSessions, { timeout: 3000, interval: 100 }).toBe(0);
    console.log(`every idle session closed ${Date.now() - idleFrom} ms after the burst`);
    // And the pool opens connections again for the next request.
    expect(await read()).toBe(200);
  });
});

describe('the pool settings reach the driver (src/db/open.ts)', () => {
  it('opens the PostgreSQL pool with DATABASE_POOL_MAX and DATABASE_IDLE_TIMEOUT_S, and the defaults without them', async () => {
    // Opening connects nothing yet (postgres.js connects on the first query): no server is needed.
    const url = 'postgres://nobody@127.0.0.1:1/none';
    const configured = await openDatabase(loadConfig({ DATABASE_URL: url, DATABASE_POOL_MAX: '7', DATABASE_IDLE_TIMEOUT_S: '0' }));
    const defaults = await openDatabase(loadConfig({ DATABASE_URL: url }));
    try {
      expect(configured.postgresClient!.options).toMatchObject({ max: 7, idle_timeout: 0 });
      expect(defaults.postgresClient!.options).toMatchObject({ max: 10, idle_timeout: 60 });
    } finally {
      await configured.close();
      await defaults.close();
    }
  });
});
