import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signupMany, startTestApp, uniqueEmail, type SignedUp, type TestApp } from './helpers/app';
import { AUDIENCE, nowSeconds, signLocalToken, signToken } from './helpers/auth-helpers';
import { expectApiError, expectTrpcFailure } from './helpers/errors';
import { createWorkspace, workspaceCount, workspaceRow } from './helpers/workspace-helpers';
import { HEADERS_TIMEOUT_MS, REQUEST_TIMEOUT_MS } from '../src/http/server';

/**
 * Defects found by trying the service as an attacker would, each fixed at its root: bodies
 * that do not decompress, settings writes of only nulls, the docs page's third-party
 * validator and framing, unusable token subjects and lifetimes, work amplified through
 * templates, and header blocks Node refuses on its own.
 */

const EXTERNAL_ISSUER = 'https://idp.example.test/';
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const pem = (key: import('node:crypto').KeyObject) => key.export({ type: 'spki', format: 'pem' }).toString();

let app: TestApp;
let owner: SignedUp;

beforeAll(async () => {
  app = await startTestApp({
    JWT_PUBLIC_KEY: pem(rsa.publicKey),
    JWT_EXTERNAL_ISSUER: EXTERNAL_ISSUER,
    RATE_LIMIT_PER_MINUTE: '0',
    AUTH_RATE_LIMIT_PER_MINUTE: '0',
  });
  [owner] = await signupMany(app, ['Owner']);
});
afterAll(async () => {
  await app?.close();
});

const loginBody = () => JSON.stringify({ email: owner.user.email, password: owner.password });

describe('a compressed request body', () => {
  it.each([
    ['gzip', gzipSync],
    ['deflate', deflateSync],
    ['br', brotliCompressSync],
  ])('is read when it is valid %s', async (encoding, compress) => {
    const res = await app.request('POST', '/api/v1/auth/login', {
      rawBody: compress(Buffer.from(loginBody())),
      headers: { 'content-type': 'application/json', 'content-encoding': encoding },
    });
    expect(res.status, res.text).toBe(200);
    expect(res.body.user.id).toBe(owner.user.id);
  });

  it.each(['gzip', 'deflate', 'br'])('is the caller’s 400 when it does not decompress as %s says', async (encoding) => {
    const res = await app.request('POST', '/api/v1/auth/login', {
      rawBody: 'this is not compressed at all',
      headers: { 'content-type': 'application/json', 'content-encoding': encoding },
    });
    expectApiError(res, 400, 'BAD_REQUEST');
    expect(res.body.message).toMatch(/Content-Encoding/);
  });

  it('is 415 in an encoding the service does not accept', async () => {
    const res = await app.request('POST', '/api/v1/auth/login', {
      rawBody: loginBody(),
      headers: { 'content-type': 'application/json', 'content-encoding': 'compress' },
    });
    expectApiError(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
    expect(res.body.message).toMatch(/gzip, deflate, br or identity/);
  });

  it('is 415 on the tRPC face, which takes no compressed bodies', async () => {
    for (const rawBody of [gzipSync(Buffer.from(loginBody())), Buffer.from('garbage')]) {
      const res = await app.request('POST', '/trpc/auth.login', {
        rawBody,
        headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      });
      expectApiError(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
    }
  });
});

describe('a settings write of only nulls', () => {
  const nullWrites = [
    { integrations: { ghost: { enabled: null } } },
    { integrations: { ghost: { config: null } } },
    { integrations: { ghost: { config: { key: null } } } },
    { integrations: { ghost: { enabled: null, config: { key: null } } } },
    { features: { ghost: null } },
    { permissions: { allow_guests: null } },
  ];

  it('changes nothing in a workspace and does not bump its version, on both faces', async () => {
    const ws = await createWorkspace(app, owner.token, owner.organization.id);
    const client = app.trpc(owner.token);
    for (const body of nullWrites) {
      const res = await app.request('PUT', `/api/v1/workspaces/${ws.id}/settings`, { token: owner.token, body });
      expect(res.status, JSON.stringify(body)).toBe(200);
      expect(res.body.overrides, JSON.stringify(body)).toEqual({});
      expect(res.body.effective.integrations).toEqual({});
      expect(res.body.version).toBe(1);
      const viaTrpc = await client.workspaces.updateSettings.mutate({ workspace_id: ws.id, ...body });
      expect(viaTrpc.overrides).toEqual({});
    }
    expect(await workspaceRow(app, ws.id)).toMatchObject({ settings: {}, version: 1 });
  });

  it('changes nothing in an organization', async () => {
    const orgId = owner.organization.id;
    const [before] = await app.query<{ settings: unknown; updated_at: string }>(
      'select settings, updated_at::text from organizations where id = $1',
      [orgId],
    );
    for (const body of nullWrites) {
      const res = await app.request('PUT', `/api/v1/organizations/${orgId}/settings`, { token: owner.token, body });
      expect(res.status, JSON.stringify(body)).toBe(200);
      expect(res.body.settings).toEqual(before!.settings);
      expect(res.body.effective.integrations).toEqual({});
    }
    expect(await app.query('select settings, updated_at::text from organizations where id = $1', [orgId])).toEqual([before]);
  });

  it('removes an integration emptied by its removals, and keeps one declared with {}', async () => {
    const ws = await createWorkspace(app, owner.token, owner.organization.id, {
      settings: { integrations: { slack: { enabled: true }, jira: {} } },
    });
    const path = `/api/v1/workspaces/${ws.id}/settings`;
    const res = await app.request('PUT', path, { token: owner.token, body: { integrations: { slack: { enabled: null } } } });
    expect(res.status).toBe(200);
    expect(res.body.overrides).toEqual({ integrations: { jira: {} } });
    expect(res.body.version).toBe(2);
    expect((await workspaceRow(app, ws.id))!.settings).toEqual({ integrations: { jira: {} } });
  });
});

describe('the docs page', () => {
  it('turns the third-party validator off and forbids framing and other origins', async () => {
    const page = await app.request('GET', '/docs/');
    expect(page.status).toBe(200);
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toMatch(/https?:|\*/);
    const init = await app.request('GET', '/docs/swagger-ui-init.js');
    expect(init.status).toBe(200);
    expect(init.text).toMatch(/"validatorUrl":\s*null/);
  });
});

describe('an identity provider token', () => {
  const external = (claims: Record<string, unknown>) => {
    const now = nowSeconds();
    return signToken(
      { iss: EXTERNAL_ISSUER, aud: AUDIENCE, iat: now, exp: now + 600, email: uniqueEmail('ext'), name: 'Ext', ...claims },
      rsa.privateKey,
      'RS256',
    );
  };
  const usersWithSubject = async () =>
    (await app.query<{ n: number }>('select count(*)::int as n from users where external_subject is not null'))[0]!.n;

  it.each([
    ['a NUL', 'idp|a\u0000b'],
    ['a lone surrogate', 'idp|\ud800x'],
    ['300 characters', `idp|${'x'.repeat(300)}`],
  ])('is refused (401) when its sub holds %s, on both faces, and creates nobody', async (_what, sub) => {
    const before = await usersWithSubject();
    const token = external({ sub });
    const res = await app.request('GET', '/api/v1/auth/me', { token });
    expectApiError(res, 401, 'UNAUTHORIZED');
    expect(res.body.message).toMatch(/subject/);
    expect(res.headers.get('www-authenticate')).toBe('Bearer');
    await expectTrpcFailure(app.trpc(token).auth.me.query(), 401, 'UNAUTHORIZED');
    expect(await usersWithSubject()).toBe(before);
  });

  it('with a well-formed sub is still accepted', async () => {
    const res = await app.request('GET', '/api/v1/auth/me', { token: external({ sub: `idp|${randomUUID()}` }) });
    expect(res.status, res.text).toBe(200);
  });
});

describe('token lifetimes', () => {
  const now = nowSeconds();
  it.each([
    ['issued two minutes in the future', { iat: now + 120, exp: now + 3600 }, /future/],
    ['claiming a lifetime of ten years', { iat: now, exp: now + 10 * 365 * 86_400 }, /lifetime/],
    ['claiming a lifetime one second over the maximum (24 h)', { iat: now - 10, exp: now - 10 + 86_401 }, /lifetime/],
  ])('refuses a token %s', async (_what, claims, message) => {
    const token = signLocalToken({ sub: owner.user.id, ...claims });
    const res = await app.request('GET', '/api/v1/auth/me', { token });
    expectApiError(res, 401, 'UNAUTHORIZED');
    expect(res.body.message).toMatch(message);
  });

  it('accepts one issued a little ahead (clock skew up to 60 s) within the maximum lifetime', async () => {
    const token = signLocalToken({ sub: owner.user.id, iat: now + 30, exp: now + 86_400 });
    expect((await app.request('GET', '/api/v1/auth/me', { token })).status).toBe(200);
  });

  it('also refuses an identity provider token over the maximum lifetime', async () => {
    const token = jwt.sign(
      { iss: EXTERNAL_ISSUER, aud: AUDIENCE, sub: `idp|${randomUUID()}`, email: uniqueEmail('ext'), iat: now, exp: now + 30 * 86_400 },
      rsa.privateKey,
      // No noTimestamp: jsonwebtoken would delete the iat given here, and the token would be refused as missing claims.
      { algorithm: 'RS256' },
    );
    const res = await app.request('GET', '/api/v1/auth/me', { token });
    expectApiError(res, 401, 'UNAUTHORIZED');
    expect(res.body.message).toMatch(/lifetime/);
  });
});

describe('the work one request may cause', () => {
  /** Settings of about `kib` KiB: 50 integrations of config strings. */
  const bigSettings = (perValue: number) => ({
    integrations: Object.fromEntries(
      Array.from({ length: 50 }, (_, i) => [
        `int${i}`,
        { config: Object.fromEntries(Array.from({ length: 50 }, (_, k) => [`k${k}`, 'v'.repeat(perValue)])) },
      ]),
    ),
  });

  it('refuses (400) a stored settings layer over 64 KiB, in a workspace and an organization, and stores nothing', async () => {
    const ws = await createWorkspace(app, owner.token, owner.organization.id);
    const res = await app.request('PUT', `/api/v1/workspaces/${ws.id}/settings`, { token: owner.token, body: bigSettings(40) });
    expectApiError(res, 400, 'BAD_REQUEST');
    expect(res.body.message).toMatch(/64 KiB/);
    expect(await workspaceRow(app, ws.id)).toMatchObject({ settings: {}, version: 1 });
    const org = await app.request('PUT', `/api/v1/organizations/${owner.organization.id}/settings`, {
      token: owner.token,
      body: bigSettings(40),
    });
    expectApiError(org, 400, 'BAD_REQUEST');
    const created = await app.request('POST', '/api/v1/workspaces', {
      token: owner.token,
      body: { organization_id: owner.organization.id, name: 'Too big', settings: bigSettings(40) },
    });
    expectApiError(created, 400, 'BAD_REQUEST');
  });

  it('accepts settings just under the cap', async () => {
    const ws = await createWorkspace(app, owner.token, owner.organization.id);
    const res = await app.request('PUT', `/api/v1/workspaces/${ws.id}/settings`, { token: owner.token, body: bigSettings(15) });
    expect(res.status, res.text.slice(0, 200)).toBe(200);
  });

  it('refuses (413) a provision from a large template that would write over 4 MiB, before writing any row', async () => {
    const template = await createWorkspace(app, owner.token, owner.organization.id, { settings: bigSettings(15) });
    const before = await workspaceCount(app, owner.organization.id);
    const body = {
      organization_id: owner.organization.id,
      template_workspace_id: template.id,
      workspaces: Array.from({ length: 200 }, (_, i) => ({ name: `Amplified ${i}` })),
    };
    const res = await app.request('POST', '/api/v1/workspaces/provision', { token: owner.token, body });
    expect(JSON.stringify(body).length).toBeLessThan(8 * 1024);
    expectApiError(res, 413, 'PAYLOAD_TOO_LARGE');
    expect(res.body.message).toMatch(/4 MiB/);
    expect(await workspaceCount(app, owner.organization.id)).toBe(before);
    // The same template for a few workspaces is fine.
    const small = await app.request('POST', '/api/v1/workspaces/provision', {
      token: owner.token,
      body: { ...body, workspaces: body.workspaces.slice(0, 3) },
    });
    expect(small.status, small.text.slice(0, 200)).toBe(201);
    expect(small.body.created).toHaveLength(3);
  });

  it('counts the audit events in that budget: rows under 4 MiB whose events carry it over are 413, and nothing is written', async () => {
    // 2,500 one-character config values: about 27 KB a row, and about six times that in the
    // creation event, which names each leaf by its full path.
    const template = await createWorkspace(app, owner.token, owner.organization.id, { settings: bigSettings(1) });
    const before = await workspaceCount(app, owner.organization.id);
    const eventCount = async () => (await app.query<{ count: number }>('select count(*)::int as count from audit_events'))[0]!.count;
    const eventsBefore = await eventCount();
    const body = {
      organization_id: owner.organization.id,
      template_workspace_id: template.id,
      workspaces: Array.from({ length: 100 }, (_, i) => ({ name: `Audited ${i}` })),
    };
    const rowBytes = body.workspaces.length * Buffer.byteLength(JSON.stringify(bigSettings(1)));
    expect(rowBytes).toBeLessThan(4 * 1024 * 1024);
    const res = await app.request('POST', '/api/v1/workspaces/provision', { token: owner.token, body });
    expectApiError(res, 413, 'PAYLOAD_TOO_LARGE');
    expect(res.body.message).toMatch(/audit events.*4 MiB/);
    expect(await workspaceCount(app, owner.organization.id)).toBe(before);
    expect(await eventCount()).toBe(eventsBefore);
  });
});

/**
 * Writes `sent` on a raw socket and nothing more; resolves once the server closes it, with
 * what it answered and after how long.
 */
function rawExchange(sent: string): Promise<{ answer: string; afterMs: number }> {
  const port = Number(new URL(app.url).port);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(sent));
    let answer = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (answer += chunk));
    socket.on('close', () => resolve({ answer, afterMs: Date.now() - started }));
    socket.on('error', reject);
  });
}
/** The JSON body of a raw HTTP answer. */
const rawBody = (answer: string): unknown => JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4));

describe('a header block over Node’s limit', () => {
  it('answers 431 in the JSON error shape', async () => {
    const { answer } = await rawExchange(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 431 /);
    expect(rawBody(answer)).toEqual({ code: 'BAD_REQUEST', message: expect.stringMatching(/headers/) });
  });
});

describe('a client that stalls', () => {
  it(
    `is cut off with a JSON 408: headers after ${HEADERS_TIMEOUT_MS / 1000} s, a body after ${REQUEST_TIMEOUT_MS / 1000} s`,
    async () => {
      const [headers, body] = await Promise.all([
        rawExchange('POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'),
        rawExchange(
          `POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"email":`,
        ),
      ]);
      for (const [{ answer, afterMs }, limit] of [
        [headers, HEADERS_TIMEOUT_MS],
        [body, REQUEST_TIMEOUT_MS],
      ] as const) {
        expect(answer).toMatch(/^HTTP\/1\.1 408 /);
        expect(rawBody(answer)).toEqual({
          code: 'BAD_REQUEST',
          message: expect.stringMatching(/in time/),
        });
        // Cut off at the limit, checked every second (Node's own check would take up to 30 s more).
        expect(afterMs).toBeGreaterThanOrEqual(limit - 100);
        expect(afterMs).toBeLessThan(limit + 5_000);
      }
    },
    REQUEST_TIMEOUT_MS + 20_000,
  );
});

describe('a query string naming __proto__', () => {
  it('is refused as an unknown parameter, not silently dropped (found by the fuzz suite)', async () => {
    const query = `organization_id=${owner.organization.id}&__proto__=x`;
    const res = await app.request('GET', `/api/v1/workspaces?${query}`, { token: owner.token });
    expectApiError(res, 400, 'BAD_REQUEST');
    expect(res.text).toContain('__proto__');
    const plain = await app.request('GET', `/api/v1/workspaces?organization_id=${owner.organization.id}`, { token: owner.token });
    expect(plain.status).toBe(200);
  });
});

describe('an email with surrounding whitespace', () => {
  it('is read trimmed, as the document says', async () => {
    const res = await app.request('POST', '/api/v1/auth/login', { body: { email: `  ${owner.user.email} `, password: owner.password } });
    expect(res.status, res.text).toBe(200);
    expect(res.body.user.id).toBe(owner.user.id);
    const doc = await app.request('GET', '/openapi.json');
    const login = doc.body.paths['/auth/login'].post.requestBody.content['application/json'].schema;
    expect(login.properties.email).toMatchObject({ format: 'email', description: expect.stringMatching(/whitespace trimmed/) });
  });
});
