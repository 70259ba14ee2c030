import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTRPCClient, httpBatchLink, TRPCClientError } from '@trpc/client';
import type { AppRouter } from '../src/router';
import { signup, startTestApp, uniqueEmail, type ApiResponse, type SignedUp, type TestApp } from './helpers/app';

const MIB = 1024 * 1024;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

let app: TestApp;
let owner: SignedUp;

beforeAll(async () => {
  app = await startTestApp();
  owner = await signup(app, 'Owner');
});
afterAll(async () => {
  await app?.close();
});

const countOrganizations = async () => (await app.query<{ count: number }>('select count(*)::int as count from organizations'))[0]!.count;
const organizationsNamed = async (name: string) =>
  (await app.query<{ count: number }>('select count(*)::int as count from organizations where name = $1', [name]))[0]!.count;
const organizationSettings = async (id: string) =>
  (await app.query<{ settings: unknown }>('select settings from organizations where id = $1', [id]))[0]!.settings;

/** A request with a body given as raw bytes and an explicit (or no) content type. */
function sendRaw(method: string, path: string, body: string | Buffer, contentType: string | undefined, token = owner.token) {
  const headers: Record<string, string> = {};
  if (contentType !== undefined) headers['content-type'] = contentType;
  // A Buffer makes fetch send no content type of its own.
  return app.request(method, path, { token, rawBody: typeof body === 'string' ? Buffer.from(body) : body, headers });
}

function expectErrorBody(res: ApiResponse, status: number, code: string) {
  expect(res.status, res.text).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  expect(res.body).toMatchObject({ code, message: expect.any(String) });
  expect(res.body.message.length).toBeGreaterThan(0);
}

describe('request bodies', () => {
  it('answers 400 BAD_REQUEST to malformed JSON and writes nothing', async () => {
    const before = await countOrganizations();
    const res = await sendRaw('POST', '/api/v1/organizations', '{"name": "Broken",', 'application/json');
    expectErrorBody(res, 400, 'BAD_REQUEST');
    expect(Object.keys(res.body).sort()).toEqual(['code', 'message']);
    expect(await countOrganizations()).toBe(before);
  });

  it('answers 415 to a text/plain body and writes nothing', async () => {
    const before = await countOrganizations();
    const res = await sendRaw('POST', '/api/v1/organizations', '{"name":"Plain"}', 'text/plain');
    expectErrorBody(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
    expect(await countOrganizations()).toBe(before);
    expect(await organizationsNamed('Plain')).toBe(0);
  });

  it('answers 415 to a body without a content type and writes nothing', async () => {
    const before = await countOrganizations();
    const res = await sendRaw('POST', '/api/v1/organizations', '{"name":"Untyped"}', undefined);
    expectErrorBody(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
    expect(await countOrganizations()).toBe(before);
    expect(await organizationsNamed('Untyped')).toBe(0);
  });

  it('answers 415 to a form-encoded body on a PUT', async () => {
    const res = await sendRaw('PUT', `/api/v1/organizations/${owner.organization.id}`, 'name=Form', 'application/x-www-form-urlencoded');
    expectErrorBody(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
    const rows = await app.query<{ name: string }>('select name from organizations where id = $1', [owner.organization.id]);
    expect(rows[0]!.name).toBe(owner.organization.name);
  });

  it.each(['application/json; charset=utf-8', 'Application/JSON', 'application/json;charset=UTF-8'])(
    'accepts Content-Type: %s',
    async (contentType) => {
      const name = `Typed ${randomUUID().slice(0, 8)}`;
      const res = await sendRaw('POST', '/api/v1/organizations', JSON.stringify({ name }), contentType);
      expect(res.status, res.text).toBe(201);
      expect(res.body).toMatchObject({ name, role: 'owner' });
      const rows = await app.query<{ name: string }>('select name from organizations where id = $1', [res.body.id]);
      expect(rows).toEqual([{ name }]);
    },
  );

  it('reads a charset=utf-8 body on a PUT (not an empty input)', async () => {
    const created = await app.request('POST', '/api/v1/organizations', { token: owner.token, body: { name: 'Before rename' } });
    expect(created.status).toBe(201);
    const res = await sendRaw(
      'PUT',
      `/api/v1/organizations/${created.body.id}`,
      JSON.stringify({ name: 'After rename' }),
      'application/json; charset=utf-8',
    );
    expect(res.status, res.text).toBe(200);
    expect(res.body.name).toBe('After rename');
    const rows = await app.query<{ name: string }>('select name from organizations where id = $1', [created.body.id]);
    expect(rows[0]!.name).toBe('After rename');
  });

  it('answers 413 PAYLOAD_TOO_LARGE in JSON to a body over 1 MiB and writes nothing', async () => {
    const before = await countOrganizations();
    const body = JSON.stringify({ name: 'Too large', padding: 'x'.repeat(MIB + 16) });
    const res = await sendRaw('POST', '/api/v1/organizations', body, 'application/json');
    expectErrorBody(res, 413, 'PAYLOAD_TOO_LARGE');
    expect(await countOrganizations()).toBe(before);
    expect(await organizationsNamed('Too large')).toBe(0);
  });

  it('answers 413 to a body over 1 MiB without a content length (chunked)', async () => {
    const before = await countOrganizations();
    const chunk = new TextEncoder().encode('x'.repeat(64 * 1024));
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"name":"Chunked","padding":"'));
      },
      pull(controller) {
        if (sent > MIB + chunk.length) {
          controller.enqueue(new TextEncoder().encode('"}'));
          controller.close();
          return;
        }
        sent += chunk.length;
        controller.enqueue(chunk);
      },
    });
    const response = await fetch(`${app.url}/api/v1/organizations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${owner.token}` },
      body: stream,
      duplex: 'half',
    });
    expect(response.status).toBe(413);
    expect(await response.json()).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', message: expect.any(String) });
    expect(await countOrganizations()).toBe(before);
  });

  it('answers 413 over tRPC to a body over 1 MiB and writes nothing', async () => {
    const before = await countOrganizations();
    const body = JSON.stringify({ name: 'Too large over tRPC', padding: 'x'.repeat(MIB + 16) });
    const res = await sendRaw('POST', '/trpc/organizations.create', body, 'application/json');
    expect(res.status).toBe(413);
    expect(res.body.error.data).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', httpStatus: 413 });
    expect(await countOrganizations()).toBe(before);
  });

  it('accepts a body just under 1 MiB (and judges its content, not its size)', async () => {
    const body = JSON.stringify({ name: 'Big but fine', padding: 'x'.repeat(MIB - 100) });
    expect(Buffer.byteLength(body)).toBeLessThan(MIB);
    const res = await sendRaw('POST', '/api/v1/organizations', body, 'application/json');
    // The unknown field is refused: 400, not 413.
    expectErrorBody(res, 400, 'BAD_REQUEST');
    expect(res.body.issues).toEqual(expect.arrayContaining([expect.objectContaining({ path: 'padding' })]));
    expect(await organizationsNamed('Big but fine')).toBe(0);
  });

  it.each([
    ['a JSON array', '[{"name":"In an array"}]'],
    ['JSON null', 'null'],
    ['a JSON string', '"In a string"'],
    ['a JSON number', '42'],
  ])('answers 400 to %s as the body and writes nothing', async (_what, body) => {
    const before = await countOrganizations();
    const res = await sendRaw('POST', '/api/v1/organizations', body, 'application/json');
    expectErrorBody(res, 400, 'BAD_REQUEST');
    expect(await countOrganizations()).toBe(before);
  });

  it('answers 400 naming the field to an unknown body field', async () => {
    const res = await app.request('POST', '/api/v1/organizations', { token: owner.token, body: { name: 'Sneaky', id: randomUUID() } });
    expectErrorBody(res, 400, 'BAD_REQUEST');
    expect(res.body.issues).toEqual([{ path: 'id', message: expect.any(String) }]);
    expect(await organizationsNamed('Sneaky')).toBe(0);
  });
});

describe('routing', () => {
  it('answers 404 JSON to an unknown path under /api/v1', async () => {
    for (const path of ['/api/v1/nope', '/api/v1', '/api/v1/organizations/x/y/z/w']) {
      const res = await app.request('GET', path, { token: owner.token });
      expectErrorBody(res, 404, 'NOT_FOUND');
    }
  });

  it('answers 404 JSON to an unknown path outside the API', async () => {
    const res = await app.request('GET', '/nope');
    expectErrorBody(res, 404, 'NOT_FOUND');
  });

  it('answers 405 with Allow to a wrong method on a known path', async () => {
    const collection = await app.request('DELETE', '/api/v1/organizations', { token: owner.token });
    expectErrorBody(collection, 405, 'METHOD_NOT_SUPPORTED');
    expect(collection.headers.get('allow')!.split(/,\s*/).sort()).toEqual(['GET', 'POST']);

    const item = await app.request('PATCH', `/api/v1/organizations/${owner.organization.id}`, {
      token: owner.token,
      body: { name: 'Patched' },
    });
    expectErrorBody(item, 405, 'METHOD_NOT_SUPPORTED');
    expect(item.headers.get('allow')!.split(/,\s*/).sort()).toEqual(['DELETE', 'GET', 'PUT']);
    const rows = await app.query<{ name: string }>('select name from organizations where id = $1', [owner.organization.id]);
    expect(rows[0]!.name).toBe(owner.organization.name);

    const signupGet = await app.request('GET', '/api/v1/auth/signup');
    expectErrorBody(signupGet, 405, 'METHOD_NOT_SUPPORTED');
    expect(signupGet.headers.get('allow')).toBe('POST');
  });
});

describe('response headers', () => {
  it('never sends X-Powered-By', async () => {
    const responses = await Promise.all([
      app.request('GET', '/healthz'),
      app.request('GET', '/readyz'),
      app.request('GET', '/openapi.json'),
      app.request('GET', '/docs/'),
      app.request('GET', '/api/v1/auth/me', { token: owner.token }),
      app.request('GET', '/api/v1/auth/me'),
      app.request('GET', '/api/v1/nope'),
      app.request('GET', '/nope'),
      app.request('GET', '/trpc/auth.me', { token: owner.token }),
      sendRaw('POST', '/api/v1/organizations', '{', 'application/json'),
    ]);
    for (const res of responses) expect(res.headers.get('x-powered-by')).toBeNull();
  });

  it('echoes a sane X-Request-Id', async () => {
    for (const path of ['/healthz', '/api/v1/auth/me', '/api/v1/nope', '/trpc/auth.me']) {
      const res = await app.request('GET', path, { headers: { 'x-request-id': 'req-123_abc.DEF:42' } });
      expect(res.headers.get('x-request-id')).toBe('req-123_abc.DEF:42');
    }
  });

  it('generates an X-Request-Id when none is given', async () => {
    const first = await app.request('GET', '/healthz');
    const second = await app.request('GET', '/api/v1/auth/me', { token: owner.token });
    expect(first.headers.get('x-request-id')).toMatch(UUID);
    expect(second.headers.get('x-request-id')).toMatch(UUID);
    expect(first.headers.get('x-request-id')).not.toBe(second.headers.get('x-request-id'));
  });

  it('replaces an X-Request-Id that is not sane (spaces, too long, control characters)', async () => {
    for (const given of ['has spaces', 'x'.repeat(200), 'tab\there', '<script>']) {
      const res = await app.request('GET', '/healthz', { headers: { 'x-request-id': given } });
      const sent = res.headers.get('x-request-id');
      if (given === '<script>') {
        // Visible ASCII is allowed; it is only ever a header value.
        expect(sent).toBe(given);
      } else {
        expect(sent).toMatch(UUID);
      }
    }
  });
});

describe('error bodies', () => {
  const LEAKS: Array<[string, RegExp]> = [
    ['a stack', /stack/i],
    ['a stack frame', /\bat \/|\n\s+at |node:internal|\.ts:\d+/],
    ['SQL', /\b(select\s.+\sfrom|insert\s+into|update\s+\S+\s+set|delete\s+from|returning)\b/i],
    ['a database error', /duplicate key|violates|constraint|sqlstate|relation "|Failed query|drizzle|postgres|pglite/i],
  ];

  function expectNoLeak(res: { status: number; text: string }, what: string) {
    for (const [name, pattern] of LEAKS) {
      expect(pattern.test(res.text), `${what} (${res.status}) carries ${name}: ${res.text}`).toBe(false);
    }
  }

  it('carries no stack, file path or SQL, on either face', async () => {
    const taken = `taken-${randomUUID().slice(0, 8)}`;
    expect((await app.request('POST', '/api/v1/organizations', { token: owner.token, body: { name: 'Taken', slug: taken } })).status).toBe(
      201,
    );
    const countBefore = await countOrganizations();

    const cases: Array<[string, Promise<ApiResponse>, number]> = [
      ['malformed JSON', sendRaw('POST', '/api/v1/organizations', '{"name":', 'application/json'), 400],
      ['failed validation', app.request('POST', '/api/v1/organizations', { token: owner.token, body: { name: 42 } }), 400],
      ['a bad path id', app.request('GET', '/api/v1/organizations/not-a-uuid', { token: owner.token }), 400],
      ['a bad query', app.request('GET', '/api/v1/organizations?limit=100000', { token: owner.token }), 400],
      ['a bad cursor', app.request('GET', '/api/v1/organizations?cursor=abc', { token: owner.token }), 400],
      ['no token', app.request('GET', '/api/v1/organizations'), 401],
      ['a bad token', app.request('GET', '/api/v1/organizations', { token: 'a.b.c' }), 401],
      ['an unknown organization', app.request('GET', `/api/v1/organizations/${randomUUID()}`, { token: owner.token }), 404],
      ['an unknown path', app.request('GET', '/api/v1/organizations/x/y/z/w', { token: owner.token }), 404],
      ['a wrong method', app.request('PATCH', '/api/v1/organizations', { token: owner.token, body: {} }), 405],
      ['a taken slug', app.request('POST', '/api/v1/organizations', { token: owner.token, body: { name: 'Again', slug: taken } }), 409],
      [
        'a taken slug on update',
        app.request('PUT', `/api/v1/organizations/${owner.organization.id}`, { token: owner.token, body: { slug: taken } }),
        409,
      ],
      [
        'a taken email',
        app.request('POST', '/api/v1/auth/signup', {
          body: { email: owner.user.email.toUpperCase(), password: 'long enough password', name: 'Dup' },
        }),
        409,
      ],
      ['a large body', sendRaw('POST', '/api/v1/organizations', JSON.stringify({ name: 'x'.repeat(MIB + 1) }), 'application/json'), 413],
      ['a text body', sendRaw('POST', '/api/v1/organizations', 'hello', 'text/plain'), 415],
      ['tRPC: failed validation', app.request('POST', '/trpc/organizations.create', { token: owner.token, body: { name: 42 } }), 400],
      ['tRPC: malformed JSON', sendRaw('POST', '/trpc/organizations.create', '{"name":', 'application/json'), 400],
      [
        'tRPC: a taken slug',
        app.request('POST', '/trpc/organizations.create', { token: owner.token, body: { name: 'Again', slug: taken } }),
        409,
      ],
      [
        'tRPC: an unknown organization',
        app.request('GET', `/trpc/organizations.get?input=${encodeURIComponent(JSON.stringify({ org_id: randomUUID() }))}`, {
          token: owner.token,
        }),
        404,
      ],
      ['tRPC: an unknown procedure', app.request('GET', '/trpc/nope.nothing', { token: owner.token }), 404],
      ['tRPC: no token', app.request('GET', '/trpc/auth.me'), 401],
    ];
    for (const [what, pending, status] of cases) {
      const res = await pending;
      expect(res.status, `${what}: ${res.text}`).toBe(status);
      expectNoLeak(res, what);
      if (!what.startsWith('tRPC')) expect(res.body, what).toMatchObject({ code: expect.any(String), message: expect.any(String) });
    }
    expect(await countOrganizations()).toBe(countBefore);
    const slugRows = await app.query<{ count: number }>('select count(*)::int as count from organizations where slug = $1', [taken]);
    expect(slugRows[0]!.count).toBe(1);
  });
});

describe('tRPC error messages', () => {
  it('does not quote malformed JSON input back (body or query)', async () => {
    const body = await sendRaw('POST', '/trpc/organizations.create', '{"name": secret-value-1}', 'application/json');
    expect(body.status).toBe(400);
    expect(body.body.error).toMatchObject({ message: expect.any(String), data: { code: 'BAD_REQUEST', httpStatus: 400 } });
    expect(body.text).not.toContain('secret-value-1');

    const query = await app.request('GET', `/trpc/organizations.get?input=${encodeURIComponent('{"org_id": secret-value-2')}`, {
      token: owner.token,
    });
    expect(query.status).toBe(400);
    expect(query.body.error.data).toMatchObject({ code: 'BAD_REQUEST', httpStatus: 400 });
    expect(query.text).not.toContain('secret-value-2');
  });
});

describe('health', () => {
  it('answers /healthz with 200', async () => {
    const res = await app.request('GET', '/healthz');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
  });

  it('answers /readyz with 200 while the database answers', async () => {
    const res = await app.request('GET', '/readyz');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ready' });
  });

  describe('with the database gone', () => {
    let lonely: TestApp;
    beforeAll(async () => {
      lonely = await startTestApp();
    });
    afterAll(async () => {
      await lonely?.close();
    });

    it('answers /readyz with 503 and Retry-After, while /healthz stays 200', async () => {
      expect((await lonely.request('GET', '/readyz')).status).toBe(200);
      await lonely.database.close();
      // The app is closed below with the rest; its database is closed already.
      lonely.database.close = async () => {};

      const started = Date.now();
      const res = await lonely.request('GET', '/readyz');
      expect(Date.now() - started).toBeLessThan(3000);
      expectErrorBody(res, 503, 'SERVICE_UNAVAILABLE');
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);

      const health = await lonely.request('GET', '/healthz');
      expect(health.status).toBe(200);
    });
  });
});

describe('tRPC batches', () => {
  const batchPath = (procedure: string, calls: number) => `/trpc/${Array.from({ length: calls }, () => procedure).join(',')}?batch=1`;

  it('rejects a batch of more than 20 calls with 400 and runs none of them', async () => {
    const before = await countOrganizations();
    const calls = 21;
    const body = Object.fromEntries(Array.from({ length: calls }, (_, i) => [String(i), { name: `Batched ${i}` }]));
    const res = await app.request('POST', batchPath('organizations.create', calls), { token: owner.token, body });
    expect(res.status, res.text).toBe(400);
    expect(res.body.error).toMatchObject({ message: expect.any(String), data: { code: 'BAD_REQUEST', httpStatus: 400 } });
    expect(await countOrganizations()).toBe(before);
    expect(await organizationsNamed('Batched 0')).toBe(0);

    const query = await app.request('GET', batchPath('auth.me', calls), { token: owner.token });
    expect(query.status).toBe(400);
  });

  it('counts percent-encoded commas as call separators too', async () => {
    const path = `/trpc/${Array.from({ length: 25 }, () => 'auth.me').join('%2C')}?batch=1`;
    const res = await app.request('GET', path, { token: owner.token });
    expect(res.status, res.text.slice(0, 200)).toBe(400);
    expect(res.body.error.data).toMatchObject({ code: 'BAD_REQUEST', httpStatus: 400 });
  });

  it('gives a real client that batches 21 calls a 400 on each (data.httpStatus)', async () => {
    const client = app.trpc(owner.token);
    const results = await Promise.allSettled(Array.from({ length: 21 }, () => client.auth.me.query()));
    for (const result of results) {
      expect(result.status).toBe('rejected');
      const error = (result as PromiseRejectedResult).reason as TRPCClientError<AppRouter>;
      expect(error).toBeInstanceOf(TRPCClientError);
      expect(error.data).toMatchObject({ code: 'BAD_REQUEST', httpStatus: 400 });
    }
  });

  it('runs a batch of 20 calls', async () => {
    const res = await app.request('GET', batchPath('auth.me', 20), { token: owner.token });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toHaveLength(20);
    for (const item of res.body) expect(item.result.data.user.id).toBe(owner.user.id);
  });

  it('runs two calls in one HTTP request through httpBatchLink', async () => {
    const requested: string[] = [];
    const client = createTRPCClient<AppRouter>({
      links: [
        httpBatchLink({
          url: `${app.url}/trpc`,
          headers: { authorization: `Bearer ${owner.token}` },
          fetch: (url, init) => {
            requested.push(String(url));
            return fetch(url, init);
          },
        }),
      ],
    });
    const [me, organizations] = await Promise.all([client.auth.me.query(), client.organizations.list.query({ limit: 100 })]);
    expect(requested).toHaveLength(1);
    expect(new URL(requested[0]!).pathname).toBe('/trpc/auth.me,organizations.list');
    expect(me.user.id).toBe(owner.user.id);
    expect(organizations.items.map((o) => o.id)).toContain(owner.organization.id);
    const rows = await app.query<{ organization_id: string }>('select organization_id from memberships where user_id = $1', [
      owner.user.id,
    ]);
    expect(organizations.items.map((o) => o.id).sort()).toEqual(rows.map((r) => r.organization_id).sort());
  });
});

describe('body booleans are JSON booleans only', () => {
  let account: SignedUp;
  beforeAll(async () => {
    account = await signup(app, 'Booleans');
  });

  const settingsPath = () => `/api/v1/organizations/${account.organization.id}/settings`;

  it('answers 400 over REST to "false" as a boolean, and stores nothing', async () => {
    expect(await organizationSettings(account.organization.id)).toEqual({});
    const res = await app.request('PUT', settingsPath(), { token: account.token, body: { permissions: { allow_guests: 'false' } } });
    expectErrorBody(res, 400, 'BAD_REQUEST');
    expect(res.body.issues).toEqual(expect.arrayContaining([expect.objectContaining({ path: 'permissions.allow_guests' })]));
    expect(await organizationSettings(account.organization.id)).toEqual({});
  });

  it('answers 400 over REST to "true" in a feature flag and an integration, and stores nothing', async () => {
    const flag = await app.request('PUT', settingsPath(), { token: account.token, body: { features: { beta: 'true' } } });
    expectErrorBody(flag, 400, 'BAD_REQUEST');
    const integration = await app.request('PUT', settingsPath(), {
      token: account.token,
      body: { integrations: { slack: { enabled: 'true' } } },
    });
    expectErrorBody(integration, 400, 'BAD_REQUEST');
    const numeric = await app.request('PUT', settingsPath(), { token: account.token, body: { permissions: { allow_guests: 0 } } });
    expectErrorBody(numeric, 400, 'BAD_REQUEST');
    expect(await organizationSettings(account.organization.id)).toEqual({});
  });

  it('answers 400 over tRPC (data.httpStatus 400) to "true" as a boolean, and stores nothing', async () => {
    // A real false first: a string coerced with Boolean() would turn it into true.
    const set = await app.request('PUT', settingsPath(), { token: account.token, body: { permissions: { allow_guests: false } } });
    expect(set.status, set.text).toBe(200);
    expect(await organizationSettings(account.organization.id)).toEqual({ permissions: { allow_guests: false } });

    const client = app.trpc(account.token);
    for (const value of ['true', 'false', 1]) {
      const error = await client.organizations.updateSettings
        .mutate({ org_id: account.organization.id, permissions: { allow_guests: value as unknown as boolean } })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(error, `allow_guests: ${JSON.stringify(value)}`).toBeInstanceOf(TRPCClientError);
      const data = (error as TRPCClientError<AppRouter>).data as { httpStatus: number; code: string; issues?: Array<{ path: string }> };
      expect(data.httpStatus).toBe(400);
      expect(data.code).toBe('BAD_REQUEST');
      expect(data.issues).toEqual(expect.arrayContaining([expect.objectContaining({ path: 'permissions.allow_guests' })]));
    }
    expect(await organizationSettings(account.organization.id)).toEqual({ permissions: { allow_guests: false } });
  });

  it('still answers 400 over REST after tRPC calls, and real booleans still work on both faces', async () => {
    const res = await app.request('PUT', settingsPath(), { token: account.token, body: { permissions: { allow_guests: 'true' } } });
    expectErrorBody(res, 400, 'BAD_REQUEST');
    expect(await organizationSettings(account.organization.id)).toEqual({ permissions: { allow_guests: false } });

    const viaTrpc = await app
      .trpc(account.token)
      .organizations.updateSettings.mutate({ org_id: account.organization.id, permissions: { allow_guests: true } });
    expect(viaTrpc.effective.permissions.allow_guests).toBe(true);
    expect(await organizationSettings(account.organization.id)).toEqual({ permissions: { allow_guests: true } });
  });
});

describe('signup over REST', () => {
  it('keeps the account an unknown-field signup would have made out of the database', async () => {
    const email = uniqueEmail('sneaky');
    const res = await app.request('POST', '/api/v1/auth/signup', {
      body: { email, password: 'long enough password', name: 'S', role: 'owner' },
    });
    expectErrorBody(res, 400, 'BAD_REQUEST');
    const rows = await app.query('select id from users where lower(email) = lower($1)', [email]);
    expect(rows).toEqual([]);
  });
});
