import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTRPCClient, httpBatchLink, TRPCClientError } from '@trpc/client';
import { ConfigError, loadConfig } from '../src/config';
import type { AppRouter } from '../src/router';
import { signupMany, startTestApp, uniqueEmail, type ApiResponse, type SignedUp, type TestApp } from './helpers/app';
import { nowSeconds, signLocalToken } from './helpers/auth-helpers';
import { expectApiError, expectTrpcError, expectTrpcFailure } from './helpers/errors';
import { startServerProcess, START_TIMEOUT_MS, type ServerProcess } from './helpers/process-helpers';
import { uniqueWorkspaceName } from './helpers/workspace-helpers';

/**
 * Rate limits (per verified caller, per client address for signup and login, shared through
 * PostgreSQL), CORS for configured origins only, and the headers every response carries.
 */

const onPostgres = Boolean(process.env.DATABASE_URL);
const PASSWORD = 'correct horse battery';

/** Anything answering with headers: our ApiResponse and fetch's Response alike. */
type WithHeaders = { headers: Headers };

/** Whole seconds within the one-minute window, as Retry-After and RateLimit-Reset carry them. */
function expectSecondsWithinWindow(value: string | null, name: string): void {
  expect(value, name).toMatch(/^\d+$/);
  expect(Number(value), name).toBeGreaterThanOrEqual(1);
  expect(Number(value), name).toBeLessThanOrEqual(60);
}

/** RateLimit-Limit and RateLimit-Remaining as given, and a RateLimit-Reset within the window. */
function expectRateLimitHeaders(res: WithHeaders, limit: number, remaining: number): void {
  expect({ limit: res.headers.get('ratelimit-limit'), remaining: res.headers.get('ratelimit-remaining') }).toEqual({
    limit: String(limit),
    remaining: String(remaining),
  });
  expectSecondsWithinWindow(res.headers.get('ratelimit-reset'), 'RateLimit-Reset');
}

/** A REST answer refused by a rate limit: 429 TOO_MANY_REQUESTS in the error shape, Retry-After, and the budget spent. */
function expectRateLimited(res: ApiResponse, limit: number): void {
  expectApiError(res, 429, 'TOO_MANY_REQUESTS');
  expectSecondsWithinWindow(res.headers.get('retry-after'), 'Retry-After');
  expectRateLimitHeaders(res, limit, 0);
}

/** The names of the Access-Control-* headers of an answer. */
const accessControlHeaders = (res: WithHeaders) => [...res.headers.keys()].filter((name) => name.startsWith('access-control-'));

/** A comma-separated header as a lower-cased list. */
const headerList = (value: string | null) =>
  (value ?? '')
    .split(',')
    .map((item) => item.trim().toLowerCase())
    .filter(Boolean);

/** `/trpc/auth.me,auth.me?batch=1…`: one HTTP request of `calls` auth.me calls, sent with raw fetch to read its headers. */
const batchedMePath = (calls: number) => `/trpc/${Array(calls).fill('auth.me').join(',')}?batch=1&input=${encodeURIComponent('{}')}`;

const userRows = (app: TestApp, email: string) => app.query<{ id: string }>('select id from users where email = $1', [email]);

describe('per authenticated caller (RATE_LIMIT_PER_MINUTE=5)', () => {
  let app: TestApp;
  let ann: SignedUp, bob: SignedUp, gus: SignedUp, cat: SignedUp, dan: SignedUp, eve: SignedUp, fay: SignedUp;

  beforeAll(async () => {
    app = await startTestApp({ RATE_LIMIT_PER_MINUTE: '5' });
    [ann, bob, gus, cat, dan, eve, fay] = await signupMany(app, ['Ann', 'Bob', 'Gus', 'Cat', 'Dan', 'Eve', 'Fay']);
  });
  afterAll(async () => {
    await app?.close();
  });

  const me = (token: string) => app.request('GET', '/api/v1/auth/me', { token });

  /** `calls` successful GET /auth/me, asserting RateLimit-Remaining counts down from `firstRemaining`. */
  async function spend(user: SignedUp, calls: number, firstRemaining = 4): Promise<void> {
    for (let i = 0; i < calls; i++) {
      const res = await me(user.token);
      expect(res.status, res.text).toBe(200);
      expectRateLimitHeaders(res, 5, firstRemaining - i);
    }
  }

  it('counts RateLimit-Remaining down 4, 3, 2, 1, 0 and answers the 6th call 429 TOO_MANY_REQUESTS with Retry-After', async () => {
    for (const remaining of [4, 3, 2, 1, 0]) {
      const res = await me(ann.token);
      expect(res.status, res.text).toBe(200);
      expect(res.body.user.id).toBe(ann.user.id);
      expectRateLimitHeaders(res, 5, remaining);
    }
    const refused = await me(ann.token);
    expectRateLimited(refused, 5);
    expect(refused.body).not.toHaveProperty('user');
  });

  it('keeps a budget per user: another user still gets its own 5 calls after one is refused', async () => {
    await spend(bob, 5);
    expectRateLimited(await me(bob.token), 5);

    await spend(gus, 5);
    expectRateLimited(await me(gus.token), 5);
    expectRateLimited(await me(bob.token), 5);
  });

  it('counts each call of a tRPC batch: after 3 REST calls, one batched request of 3 auth.me has 2 answers and one 429', async () => {
    await spend(cat, 3);

    const responses: Response[] = [];
    const client = createTRPCClient<AppRouter>({
      links: [
        httpBatchLink({
          url: `${app.url}/trpc`,
          headers: { authorization: `Bearer ${cat.token}` },
          fetch: async (input, init) => {
            const response = await fetch(input, init);
            responses.push(response);
            return response;
          },
        }),
      ],
    });
    const results = await Promise.allSettled([client.auth.me.query(), client.auth.me.query(), client.auth.me.query()]);

    expect(responses, 'the three calls go as one HTTP request').toHaveLength(1);
    const answered = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const refused = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    expect(answered.map((a) => a.user.id)).toEqual([cat.user.id, cat.user.id]);
    expect(refused).toHaveLength(1);
    expect(refused[0]).toBeInstanceOf(TRPCClientError);
    expectTrpcError(refused[0] as TRPCClientError<AppRouter>, 429, 'TOO_MANY_REQUESTS');

    const [response] = responses;
    expectRateLimitHeaders(response!, 5, 0);
    expectSecondsWithinWindow(response!.headers.get('retry-after'), 'Retry-After');
    expectRateLimited(await me(cat.token), 5);
  });

  it('sends RateLimit-* headers on a tRPC response, both calls of the batch counted', async () => {
    const res = await fetch(app.url + batchedMePath(2), { headers: { authorization: `Bearer ${dan.token}` } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Array<{ result?: { data?: { user?: { id?: string } } } }>;
    expect(body.map((call) => call.result?.data?.user?.id)).toEqual([dan.user.id, dan.user.id]);
    expectRateLimitHeaders(res, 5, 3);

    await spend(dan, 3, 2);
    expectRateLimited(await me(dan.token), 5);
  });

  it('changes nothing when a write is refused: POST /api/v1/workspaces over the limit creates no workspace', async () => {
    await spend(eve, 4);
    const allowedName = uniqueWorkspaceName('Allowed');
    const allowed = await app.request('POST', '/api/v1/workspaces', {
      token: eve.token,
      body: { organization_id: eve.organization.id, name: allowedName },
    });
    expect(allowed.status, allowed.text).toBe(201);
    expectRateLimitHeaders(allowed, 5, 0);

    const refusedName = uniqueWorkspaceName('Refused');
    const refused = await app.request('POST', '/api/v1/workspaces', {
      token: eve.token,
      body: { organization_id: eve.organization.id, name: refusedName },
    });
    expectRateLimited(refused, 5);
    expect(refused.headers.get('location')).toBeNull();

    const named = (name: string) => app.query('select id from workspaces where name = $1', [name]);
    expect(await named(allowedName)).toHaveLength(1);
    expect(await named(refusedName)).toHaveLength(0);
  });

  it('keys the limit only once the token is verified: 10 requests with bad tokens for a user (401) leave it its 5 calls', async () => {
    const badTokens = [
      signLocalToken({ sub: fay.user.id }, { secret: 'another-secret-that-is-at-least-32-bytes-long' }),
      signLocalToken({ sub: fay.user.id, iat: nowSeconds() - 7200, exp: nowSeconds() - 3600 }),
      signLocalToken({ sub: fay.user.id, tv: 7 }),
      signLocalToken({ sub: fay.user.id, aud: 'another-service' }),
      'not-a-jwt',
    ];
    for (let i = 0; i < 10; i++) {
      const res = await me(badTokens[i % badTokens.length]!);
      expectApiError(res, 401, 'UNAUTHORIZED');
    }

    await spend(fay, 5);
    expectRateLimited(await me(fay.token), 5);
  });
});

describe('per client address for signup and login (AUTH_RATE_LIMIT_PER_MINUTE=3)', () => {
  let app: TestApp;

  beforeAll(async () => {
    app = await startTestApp({ AUTH_RATE_LIMIT_PER_MINUTE: '3' });
  });
  afterAll(async () => {
    await app?.close();
  });

  it('counts signups and logins from one address together: the 4th attempt is 429, even with the right password', async () => {
    const email = uniqueEmail('ann');
    const created = await app.request('POST', '/api/v1/auth/signup', { body: { email, password: PASSWORD, name: 'Ann' } });
    expect(created.status, created.text).toBe(201);
    expectRateLimitHeaders(created, 3, 2);

    const wrongPassword = await app.request('POST', '/api/v1/auth/login', { body: { email, password: 'not the password' } });
    expectApiError(wrongPassword, 401, 'UNAUTHORIZED');
    expectRateLimitHeaders(wrongPassword, 3, 1);

    const unknownEmail = await app.request('POST', '/api/v1/auth/login', { body: { email: uniqueEmail('nobody'), password: PASSWORD } });
    expectApiError(unknownEmail, 401, 'UNAUTHORIZED');
    expectRateLimitHeaders(unknownEmail, 3, 0);

    const rightPassword = await app.request('POST', '/api/v1/auth/login', { body: { email, password: PASSWORD } });
    expectRateLimited(rightPassword, 3);
    expect(rightPassword.body).not.toHaveProperty('access_token');
  });

  it('refuses a signup over the limit and creates no account', async () => {
    // The budget of this address was spent by the test above (one window of one minute).
    const email = uniqueEmail('bob');
    const refused = await app.request('POST', '/api/v1/auth/signup', { body: { email, password: PASSWORD, name: 'Bob' } });
    expectRateLimited(refused, 3);
    expect(await userRows(app, email)).toHaveLength(0);
  });
});

/**
 * Every 401 of an operation that needs a token counts against the client address's budget
 * (UNAUTHENTICATED_RATE_LIMIT_PER_MINUTE); once it is spent the answer is 429, so nobody tries
 * tokens or hammers an endpoint without one at speed. Valid callers never count there.
 * TRUST_PROXY=loopback gives each test a client address of its own (X-Forwarded-For).
 */
describe('401s per client address (UNAUTHENTICATED_RATE_LIMIT_PER_MINUTE=4)', () => {
  let app: TestApp;
  let ann: SignedUp, rex: SignedUp, dee: SignedUp;
  const forged = () => signLocalToken({ sub: ann.user.id }, { secret: 'another-secret-that-is-at-least-32-bytes-long' });
  const expired = () => signLocalToken({ sub: ann.user.id, iat: nowSeconds() - 7200, exp: nowSeconds() - 3600 });

  beforeAll(async () => {
    app = await startTestApp({ UNAUTHENTICATED_RATE_LIMIT_PER_MINUTE: '4', TRUST_PROXY: 'loopback' });
    [ann, rex, dee] = await signupMany(app, ['Ann', 'Rex', 'Dee']);
    // Rex's token is revoked by his logout, Dee's account is deleted.
    expect((await app.request('POST', '/api/v1/auth/logout', { token: rex.token })).status).toBe(204);
    expect((await app.request('DELETE', '/api/v1/auth/me', { token: dee.token })).status).toBe(204);
  });
  afterAll(async () => {
    await app?.close();
  });

  /** POST /api/v1/workspaces from `address` (X-Forwarded-For), as `token` (none when undefined). */
  const create = (address: string, token: string | undefined, name = uniqueWorkspaceName('Probe')) =>
    app.request('POST', '/api/v1/workspaces', {
      token,
      body: { organization_id: ann.organization.id, name },
      headers: { 'x-forwarded-for': address },
    });
  const workspacesNamed = (name: string) => app.query('select id from workspaces where name = $1', [name]);

  it('counts revoked, deleted-user, forged and expired tokens on a write (401, RateLimit-Remaining 3 … 0), then answers 429', async () => {
    const address = '10.1.0.1';
    const before = await app.query<{ n: number }>('select count(*)::int as n from workspaces');
    for (const [i, token] of [rex.token, dee.token, forged(), expired()].entries()) {
      const res = await create(address, token);
      expectApiError(res, 401, 'UNAUTHORIZED');
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
      expectRateLimitHeaders(res, 4, 3 - i);
    }
    // Spent: a missing token, and each kind again, is 429 from now on.
    for (const token of [undefined, rex.token, dee.token, forged(), expired()]) {
      const refused = await create(address, token);
      expectRateLimited(refused, 4);
      expect(refused.body.message).toMatch(/at most 4 .*per minute from this address/);
    }
    expect(await app.query<{ n: number }>('select count(*)::int as n from workspaces')).toEqual(before);
  });

  it('leaves a valid caller from a spent address alone: its write is 201 and its read 200', async () => {
    const address = '10.1.0.2';
    for (let i = 0; i < 4; i++) expectApiError(await create(address, undefined), 401, 'UNAUTHORIZED');
    expectRateLimited(await create(address, forged()), 4);

    const name = uniqueWorkspaceName('Valid');
    const created = await create(address, ann.token, name);
    expect(created.status, created.text).toBe(201);
    expect(await workspacesNamed(name)).toEqual([{ id: created.body.id }]);
    const read = await app.request('GET', `/api/v1/workspaces/${created.body.id}`, {
      token: ann.token,
      headers: { 'x-forwarded-for': address },
    });
    expect(read.status, read.text).toBe(200);
    expect(read.body.id).toBe(created.body.id);
    expectRateLimited(await create(address, undefined), 4);
  });

  it('keeps a budget per address: another address still gets its 401s after one is spent', async () => {
    for (let i = 0; i < 5; i++) await create('10.1.0.3', undefined);
    expectRateLimited(await create('10.1.0.3', undefined), 4);
    const other = await create('10.1.0.4', undefined);
    expectApiError(other, 401, 'UNAUTHORIZED');
    expectRateLimitHeaders(other, 4, 3);
  });

  it('counts each call of a tRPC batch, a hot read with a revoked token included: 4 answers 401, the other 2 429', async () => {
    const input = encodeURIComponent(
      JSON.stringify(Object.fromEntries([0, 1, 2, 3, 4, 5].map((i) => [i, { workspace_id: ann.workspace.id }]))),
    );
    const res = await fetch(`${app.url}/trpc/${Array(6).fill('workspaces.get').join(',')}?batch=1&input=${input}`, {
      headers: { authorization: `Bearer ${rex.token}`, 'x-forwarded-for': '10.1.0.5' },
    });
    const body = (await res.json()) as Array<{ error?: { data?: { httpStatus?: number; code?: string } } }>;
    // The calls of a batch run concurrently: which four are counted first is not fixed.
    expect(body.map((call) => call.error?.data?.httpStatus).sort()).toEqual([401, 401, 401, 401, 429, 429]);
    expectRateLimitHeaders(res, 4, 0);
    expectSecondsWithinWindow(res.headers.get('retry-after'), 'Retry-After');

    // A write over the tRPC client from the same address: 429 too, and nothing created.
    const name = uniqueWorkspaceName('Trpc');
    await expectTrpcFailure(
      app
        .trpc(forged())
        .workspaces.create.mutate(
          { organization_id: ann.organization.id, name },
          { context: { headers: { 'x-forwarded-for': '10.1.0.5' } } },
        ),
      429,
      'TOO_MANY_REQUESTS',
    );
    expect(await workspacesNamed(name)).toEqual([]);
  });

  it('leaves signup and login to their own limit: failed logins spend nothing of this budget', async () => {
    const address = '10.1.0.6';
    for (let i = 0; i < 5; i++) {
      const login = await app.request('POST', '/api/v1/auth/login', {
        body: { email: ann.user.email, password: 'not the password' },
        headers: { 'x-forwarded-for': address },
      });
      expectApiError(login, 401, 'UNAUTHORIZED');
    }
    const first = await create(address, expired());
    expectApiError(first, 401, 'UNAUTHORIZED');
    expectRateLimitHeaders(first, 4, 3);
  });
});

describe('TRUST_PROXY unset: X-Forwarded-For is ignored', () => {
  let app: TestApp;

  beforeAll(async () => {
    app = await startTestApp({ AUTH_RATE_LIMIT_PER_MINUTE: '3' });
  });
  afterAll(async () => {
    await app?.close();
  });

  it('keeps counting the connecting address when X-Forwarded-For rotates', async () => {
    const login = (forwardedFor: string) =>
      app.request('POST', '/api/v1/auth/login', {
        body: { email: uniqueEmail('nobody'), password: PASSWORD },
        headers: { 'x-forwarded-for': forwardedFor },
      });
    for (const [i, address] of ['10.0.0.1', '10.0.0.2', '10.0.0.3'].entries()) {
      const res = await login(address);
      expectApiError(res, 401, 'UNAUTHORIZED');
      expectRateLimitHeaders(res, 3, 2 - i);
    }
    expectRateLimited(await login('10.0.0.4'), 3);
    expectRateLimited(await login('10.0.0.5, 10.0.0.6'), 3);
  });
});

/**
 * Why the service warns at start about TRUST_PROXY=true (README, Configuration and Security):
 * every X-Forwarded-For hop is trusted, so with no proxy in front replacing the header a
 * client names its own address and starts a fresh budget with each one.
 */
describe('TRUST_PROXY=true with no proxy in front: X-Forwarded-For rotates past the login limit', () => {
  let app: TestApp;

  beforeAll(async () => {
    app = await startTestApp({ AUTH_RATE_LIMIT_PER_MINUTE: '3', TRUST_PROXY: 'true' });
  });
  afterAll(async () => {
    await app?.close();
  });

  it('counts each made-up address apart: a 4th, 5th and 6th login get 401, not 429', async () => {
    const login = (forwardedFor: string) =>
      app.request('POST', '/api/v1/auth/login', {
        body: { email: uniqueEmail('nobody'), password: PASSWORD },
        headers: { 'x-forwarded-for': forwardedFor },
      });
    for (let i = 0; i < 3; i++) expectApiError(await login('10.9.0.1'), 401, 'UNAUTHORIZED');
    expectRateLimited(await login('10.9.0.1'), 3);
    // The left-most address is the one taken: whatever the client puts first.
    for (const address of ['10.9.0.2', '10.9.0.3', '10.9.0.4, 10.9.0.1']) {
      const res = await login(address);
      expectApiError(res, 401, 'UNAUTHORIZED');
      expectRateLimitHeaders(res, 3, 2);
    }
  });
});

describe('TRUST_PROXY=loopback: each forwarded client address has its own budget', () => {
  let app: TestApp;

  beforeAll(async () => {
    app = await startTestApp({ AUTH_RATE_LIMIT_PER_MINUTE: '3', TRUST_PROXY: 'loopback' });
  });
  afterAll(async () => {
    await app?.close();
  });

  const login = (forwardedFor: string) =>
    app.request('POST', '/api/v1/auth/login', {
      body: { email: uniqueEmail('nobody'), password: PASSWORD },
      headers: { 'x-forwarded-for': forwardedFor },
    });

  it('answers the 4th login from 10.0.0.1 with 429 while 10.0.0.2 is still allowed', async () => {
    for (const remaining of [2, 1, 0]) {
      const res = await login('10.0.0.1');
      expectApiError(res, 401, 'UNAUTHORIZED');
      expectRateLimitHeaders(res, 3, remaining);
    }
    expectRateLimited(await login('10.0.0.1'), 3);

    const other = await login('10.0.0.2');
    expectApiError(other, 401, 'UNAUTHORIZED');
    expectRateLimitHeaders(other, 3, 2);
    expectRateLimited(await login('10.0.0.1'), 3);
  });

  it('limits auth.login over tRPC per forwarded address too', async () => {
    const client = app.trpc();
    const attempt = () =>
      client.auth.login.mutate(
        { email: uniqueEmail('nobody'), password: PASSWORD },
        { context: { headers: { 'x-forwarded-for': '10.0.0.3' } } },
      );
    for (let i = 0; i < 3; i++) await expectTrpcFailure(attempt(), 401, 'UNAUTHORIZED');
    await expectTrpcFailure(attempt(), 429, 'TOO_MANY_REQUESTS');
  });
});

describe('RATE_LIMIT_STORE configuration', () => {
  it('refuses RATE_LIMIT_STORE=postgres without DATABASE_URL with a ConfigError naming RATE_LIMIT_STORE', () => {
    const load = () => loadConfig({ RATE_LIMIT_STORE: 'postgres' });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(/RATE_LIMIT_STORE/);
  });

  it('refuses an unknown store with a ConfigError naming RATE_LIMIT_STORE', () => {
    const load = () => loadConfig({ RATE_LIMIT_STORE: 'redis' });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(/RATE_LIMIT_STORE/);
  });
});

describe.runIf(onPostgres)('RATE_LIMIT_STORE=postgres: two service processes on one database share the count', () => {
  let app: TestApp;
  const processes: ServerProcess[] = [];
  let bases: string[] = [];
  let ann: SignedUp;

  beforeAll(async () => {
    // The test app holds the database (and the secret the processes verify its tokens with);
    // the calls go to two real service processes, as two replicas would run.
    app = await startTestApp({ RATE_LIMIT_STORE: 'postgres', RATE_LIMIT_PER_MINUTE: '4' });
    const env = {
      DATABASE_URL: app.config.DATABASE_URL!,
      JWT_SECRET: app.config.JWT_SECRET!,
      NODE_ENV: 'test',
      PORT: '0',
      // `info`: ready() finds the port in the "listening" line.
      LOG_LEVEL: 'info',
      RATE_LIMIT_STORE: 'postgres',
      RATE_LIMIT_PER_MINUTE: '4',
      AUTH_RATE_LIMIT_PER_MINUTE: '0',
    };
    processes.push(startServerProcess(env), startServerProcess(env));
    bases = await Promise.all(processes.map((proc) => proc.ready()));
    [ann] = await signupMany(app, ['Ann']);
  }, START_TIMEOUT_MS + 30_000);
  afterAll(async () => {
    await Promise.all(processes.map((proc) => proc.kill()));
    await app?.close();
  });

  const meAt = async (base: string): Promise<ApiResponse> => {
    const res = await fetch(`${base}/api/v1/auth/me`, { headers: { authorization: `Bearer ${ann.token}` } });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: JSON.parse(text), text };
  };

  it('answers the 5th call of one user, alternating between the two processes, 429; rate_limits holds the counter', async () => {
    for (const [i, remaining] of [3, 2, 1, 0].entries()) {
      const res = await meAt(bases[i % 2]!);
      expect(res.status, res.text).toBe(200);
      expectRateLimitHeaders(res, 4, remaining);
    }
    expectRateLimited(await meAt(bases[0]!), 4);
    expectRateLimited(await meAt(bases[1]!), 4);

    const rows = await app.query<{ key: string; points: number; live: boolean }>(
      `select key, points, (expire > now() and expire <= now() + interval '60 seconds') as live
         from rate_limits where key like 'caller%'`,
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]!.key).toMatch(/^caller/);
    expect(rows[0]!.key).toContain(ann.user.id);
    expect(rows[0]!.points).toBeGreaterThanOrEqual(4);
    expect(rows[0]!.live, 'the counter expires within the one-minute window').toBe(true);
  });
});

const ALLOWED_ORIGIN = 'https://app.example.test';
const OTHER_ORIGIN = 'https://evil.example.test';
const PREFLIGHT_PATHS = ['/api/v1/workspaces', '/trpc/workspaces.update'];
const preflight = (app: TestApp, path: string, origin: string) =>
  app.request('OPTIONS', path, {
    headers: {
      origin,
      'access-control-request-method': 'PUT',
      'access-control-request-headers': 'authorization,content-type,idempotency-key,if-match',
    },
  });

describe(`CORS with CORS_ORIGINS=${ALLOWED_ORIGIN}`, () => {
  let app: TestApp;
  let ann: SignedUp;

  beforeAll(async () => {
    app = await startTestApp({ CORS_ORIGINS: ALLOWED_ORIGIN });
    [ann] = await signupMany(app, ['Ann']);
  });
  afterAll(async () => {
    await app?.close();
  });

  it.each(PREFLIGHT_PATHS)('answers a preflight to %s from the allowed origin with its methods and headers', async (path) => {
    const res = await preflight(app, path, ALLOWED_ORIGIN);
    expect(res.status, res.text).toBeGreaterThanOrEqual(200);
    expect(res.status, res.text).toBeLessThan(300);
    expect(res.headers.get('access-control-allow-origin')).toBe(ALLOWED_ORIGIN);
    expect(headerList(res.headers.get('access-control-allow-methods'))).toContain('put');
    expect(headerList(res.headers.get('access-control-allow-headers'))).toEqual(
      expect.arrayContaining(['authorization', 'content-type', 'idempotency-key', 'if-match']),
    );
  });

  it('lets the allowed origin read ETag, Location, Retry-After and the RateLimit-* headers of a GET', async () => {
    const res = await app.request('GET', `/api/v1/workspaces/${ann.workspace.id}`, {
      token: ann.token,
      headers: { origin: ALLOWED_ORIGIN },
    });
    expect(res.status, res.text).toBe(200);
    expect(res.headers.get('etag')).toBe(`"${ann.workspace.version}"`);
    expect(res.headers.get('access-control-allow-origin')).toBe(ALLOWED_ORIGIN);
    expect(headerList(res.headers.get('access-control-expose-headers'))).toEqual(
      expect.arrayContaining(['etag', 'location', 'retry-after', 'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset']),
    );
  });

  it.each(PREFLIGHT_PATHS)(`sends no Access-Control-* header to a preflight to %s from ${OTHER_ORIGIN}`, async (path) => {
    const res = await preflight(app, path, OTHER_ORIGIN);
    expect(accessControlHeaders(res), JSON.stringify(Object.fromEntries(res.headers))).toEqual([]);
  });

  it(`sends no Access-Control-* header to a GET from ${OTHER_ORIGIN}`, async () => {
    const res = await app.request('GET', `/api/v1/workspaces/${ann.workspace.id}`, { token: ann.token, headers: { origin: OTHER_ORIGIN } });
    expect(res.status, res.text).toBe(200);
    expect(accessControlHeaders(res), JSON.stringify(Object.fromEntries(res.headers))).toEqual([]);
  });
});

describe('CORS with CORS_ORIGINS unset (the default)', () => {
  let app: TestApp;
  let ann: SignedUp;

  beforeAll(async () => {
    app = await startTestApp();
    [ann] = await signupMany(app, ['Ann']);
  });
  afterAll(async () => {
    await app?.close();
  });

  it.each(PREFLIGHT_PATHS)('sends no Access-Control-* header to a preflight to %s', async (path) => {
    const res = await preflight(app, path, ALLOWED_ORIGIN);
    expect(accessControlHeaders(res), JSON.stringify(Object.fromEntries(res.headers))).toEqual([]);
  });

  it('sends no Access-Control-* header to a GET with an Origin, over REST and tRPC', async () => {
    const rest = await app.request('GET', `/api/v1/workspaces/${ann.workspace.id}`, {
      token: ann.token,
      headers: { origin: ALLOWED_ORIGIN },
    });
    expect(rest.status, rest.text).toBe(200);
    expect(accessControlHeaders(rest)).toEqual([]);
    const trpc = await app.request('GET', batchedMePath(1), { token: ann.token, headers: { origin: ALLOWED_ORIGIN } });
    expect(trpc.status, trpc.text).toBe(200);
    expect(accessControlHeaders(trpc)).toEqual([]);
  });
});

describe('headers on every response', () => {
  let app: TestApp;
  let ann: SignedUp;

  beforeAll(async () => {
    app = await startTestApp();
    [ann] = await signupMany(app, ['Ann']);
  });
  afterAll(async () => {
    await app?.close();
  });

  it.each([
    ['/api/v1/auth/me', 200],
    [batchedMePath(1), 200],
    ['/healthz', 200],
    ['/openapi.json', 200],
    ['/no-such-path', 404],
    ['/api/v1/no-such-path', 404],
  ])('sends X-Content-Type-Options: nosniff on GET %s', async (path, status) => {
    const res = await app.request('GET', path, { token: ann.token });
    expect(res.status, res.text).toBe(status);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('sends Cache-Control: no-store on authenticated answers and on errors', async () => {
    const workspace = await app.request('GET', `/api/v1/workspaces/${ann.workspace.id}`, { token: ann.token });
    expect(workspace.status, workspace.text).toBe(200);
    expect(workspace.headers.get('cache-control')).toBe('no-store');

    const missing = await app.request('GET', '/api/v1/workspaces/3b9c1f0e-7a4d-4e2b-9c8f-5d6e7f8a9b0c', { token: ann.token });
    expectApiError(missing, 404, 'NOT_FOUND');
    expect(missing.headers.get('cache-control')).toBe('no-store');

    const anonymous = await app.request('GET', '/api/v1/auth/me');
    expectApiError(anonymous, 401, 'UNAUTHORIZED');
    expect(anonymous.headers.get('cache-control')).toBe('no-store');

    const trpc = await app.request('GET', batchedMePath(1), { token: ann.token });
    expect(trpc.status, trpc.text).toBe(200);
    expect(trpc.headers.get('cache-control')).toBe('no-store');
  });

  it('sends Cache-Control: no-store on signup and login answers (they carry tokens)', async () => {
    const email = uniqueEmail('cache');
    const created = await app.request('POST', '/api/v1/auth/signup', { body: { email, password: PASSWORD, name: 'Cache' } });
    expect(created.status, created.text).toBe(201);
    expect(created.headers.get('cache-control')).toBe('no-store');

    const loggedIn = await app.request('POST', '/api/v1/auth/login', { body: { email, password: PASSWORD } });
    expect(loggedIn.status, loggedIn.text).toBe(200);
    expect(typeof loggedIn.body.access_token).toBe('string');
    expect(loggedIn.headers.get('cache-control')).toBe('no-store');

    const failed = await app.request('POST', '/api/v1/auth/login', { body: { email, password: 'not the password' } });
    expectApiError(failed, 401, 'UNAUTHORIZED');
    expect(failed.headers.get('cache-control')).toBe('no-store');
  });

  it('sends WWW-Authenticate: Bearer on 401s over REST', async () => {
    const answers = [
      await app.request('GET', '/api/v1/auth/me'),
      await app.request('GET', '/api/v1/auth/me', { headers: { authorization: 'Basic dXNlcjpwYXNz' } }),
      await app.request('GET', `/api/v1/workspaces/${ann.workspace.id}`, {
        token: signLocalToken({ sub: ann.user.id }, { secret: 'another-secret-that-is-at-least-32-bytes-long' }),
      }),
    ];
    for (const res of answers) {
      expectApiError(res, 401, 'UNAUTHORIZED');
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
    }
  });

  it('sends WWW-Authenticate: Bearer on 401s over tRPC', async () => {
    const anonymous = await app.request('GET', batchedMePath(1));
    expect(anonymous.status, anonymous.text).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toBe('Bearer');
    expect(anonymous.body).toMatchObject([{ error: { data: { code: 'UNAUTHORIZED', httpStatus: 401 } } }]);

    const badToken = await app.request('GET', '/trpc/auth.me', { token: 'not.a.jwt' });
    expect(badToken.status, badToken.text).toBe(401);
    expect(badToken.headers.get('www-authenticate')).toBe('Bearer');

    await expectTrpcFailure(app.trpc().auth.me.query(), 401, 'UNAUTHORIZED');
  });
});
