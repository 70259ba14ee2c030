import { createTRPCClient, httpBatchLink } from '@trpc/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgres } from '../src/db/client';
import type { AppRouter } from '../src/router';
import { serveApp, signup, startTestApp, type SignedUp, type TestApp } from './helpers/app';
import { expectTrpcFailure } from './helpers/errors';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy';
import { sleep } from './helpers/process-helpers';

/**
 * The request deadline on both faces: while the network path to the database is silent, REST
 * and tRPC calls answer 503 SERVICE_UNAVAILABLE with Retry-After within DATABASE_DEADLINE_MS
 * (+ 1 s), a write started in the silence changes nothing, and both faces serve again once it
 * ends. (The same under load, for every kind of fault, is test/database-faults.test.ts.)
 */
const onPostgres = Boolean(process.env.DATABASE_URL);
const DEADLINE_MS = 1000;

describe.runIf(onPostgres)('a database that goes silent', () => {
  let app: TestApp;
  let owner: SignedUp;
  let proxy: FaultProxy;
  let proxied: TestApp;
  let url: string;

  beforeAll(async () => {
    app = await startTestApp();
    owner = await signup(app, 'Owner');
    const direct = new URL(app.config.DATABASE_URL!);
    proxy = await startFaultProxy({ targetHost: direct.hostname, targetPort: Number(direct.port || 5432) });
    const throughProxy = new URL(direct);
    throughProxy.host = `127.0.0.1:${proxy.port}`;
    // A second app on the same database, through the proxy, with a short deadline.
    const database = openPostgres({ url: throughProxy.toString(), prepare: true, max: 4, deadlineMs: DEADLINE_MS });
    proxied = await serveApp({ ...app.config, DATABASE_DEADLINE_MS: DEADLINE_MS }, database, () => database.close());
    url = proxied.url;
  });
  afterAll(async () => {
    await proxy?.close();
    await proxied?.close();
    await app?.close();
  });

  const trpc = () =>
    createTRPCClient<AppRouter>({ links: [httpBatchLink({ url: `${url}/trpc`, headers: { authorization: `Bearer ${owner.token}` } })] });
  const me = () => fetch(`${url}/api/v1/auth/me`, { headers: { authorization: `Bearer ${owner.token}` } });

  it('answers REST and tRPC with 503 and Retry-After by the deadline, commits nothing, and serves again afterwards', async () => {
    expect((await me()).status).toBe(200);
    proxy.goSilent();
    try {
      const started = Date.now();
      const [rest, create, rpc] = await Promise.all([
        me(),
        fetch(`${url}/api/v1/workspaces`, {
          method: 'POST',
          headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ organization_id: owner.organization.id, name: 'Written in the silence' }),
        }),
        expectTrpcFailure(trpc().auth.me.query(), 503, 'SERVICE_UNAVAILABLE'),
      ]);
      const elapsed = Date.now() - started;
      expect(elapsed).toBeLessThan(DEADLINE_MS + 1000);
      for (const res of [rest, create]) {
        expect(res.status).toBe(503);
        expect(res.headers.get('retry-after')).toBe('1');
        expect(await res.json()).toEqual({ code: 'SERVICE_UNAVAILABLE', message: expect.any(String) });
      }
      expect(rpc.data?.code).toBe('SERVICE_UNAVAILABLE');
    } finally {
      proxy.resume();
    }

    // Recovery by itself, within 5 s, on both faces.
    const resumed = Date.now();
    let status = 0;
    while (status !== 200 && Date.now() - resumed < 5000) {
      status = (await me()).status;
      if (status !== 200) await sleep(100);
    }
    expect(status).toBe(200);
    expect((await trpc().auth.me.query()).user.id).toBe(owner.user.id);
    // The create that timed out never committed, not even after the path came back.
    await sleep(DEADLINE_MS);
    expect(await app.query('select id from workspaces where name = $1', ['Written in the silence'])).toEqual([]);
  });
});
