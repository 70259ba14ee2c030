import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OpenApiMeta } from 'trpc-to-openapi';
import { appRouter } from '../src/router';
import { buildOpenApiDocument } from '../src/openapi';
import { ERROR_STATUS } from '../src/lib/errors';
import type { AppMeta } from '../src/trpc/init';
import { signup, startTestApp, type TestApp } from './helpers/app';

const TAGS = ['auth', 'organizations', 'workspaces', 'invitations', 'audit'];
const METHODS = ['get', 'put', 'post', 'delete', 'patch'];
/** Creates that make several resources answer 201 without a Location (API.md, Conventions). */
const CREATES_WITHOUT_LOCATION = new Set(['POST /auth/signup', 'POST /workspaces/provision']);
/** The only operations callable without a bearer token. */
const PUBLIC_OPERATIONS = new Set(['POST /auth/signup', 'POST /auth/login', 'POST /invitations/preview']);

interface Response {
  description?: string;
  headers?: Record<string, unknown>;
  content?: Record<string, { schema?: { $ref?: string }; example?: { code?: string; message?: string } }>;
}
interface Operation {
  operationId?: string;
  summary?: string;
  description?: string;
  tags?: string[];
  security?: Array<Record<string, string[]>>;
  parameters?: Array<{ in: string; name: string; required?: boolean }>;
  requestBody?: { content?: Record<string, { example?: unknown }> };
  responses: Record<string, Response>;
}
interface Document {
  openapi: string;
  info: { title: string; version: string; license?: { name: string; identifier?: string; url?: string } };
  servers?: Array<{ url: string }>;
  security?: unknown;
  tags?: Array<{ name: string; description?: string }>;
  paths: Record<string, Record<string, Operation>>;
  components: {
    securitySchemes: Record<string, { type: string; scheme?: string; bearerFormat?: string }>;
    schemas: Record<string, { type?: string; required?: string[]; properties?: Record<string, { enum?: string[] }> }>;
  };
}

interface RestProcedure {
  procedure: string;
  method: string;
  path: string;
  operationId: string;
  successStatus: number;
  key: string;
}

/** Every procedure with `meta.openapi`, walked from the router itself. */
const restProcedures: RestProcedure[] = Object.entries(appRouter._def.procedures).flatMap(([name, procedure]) => {
  const meta = (procedure as unknown as { _def: { meta?: OpenApiMeta<AppMeta> } })._def.meta;
  if (!meta?.openapi) return [];
  const { method, path, operationId } = meta.openapi;
  return [{ procedure: name, method, path, operationId: operationId!, successStatus: meta.successStatus ?? 200, key: `${method} ${path}` }];
});

let app: TestApp;
let document: Document;

beforeAll(async () => {
  app = await startTestApp();
  const res = await app.request('GET', '/openapi.json');
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  document = res.body as Document;
});
afterAll(async () => {
  await app?.close();
});

const operationOf = (rest: RestProcedure): Operation | undefined => document.paths[rest.path]?.[rest.method.toLowerCase()];
const allOperations = (): Array<[string, Operation]> =>
  Object.entries(document.paths).flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([method]) => METHODS.includes(method))
      .map(([method, operation]): [string, Operation] => [`${method.toUpperCase()} ${path}`, operation]),
  );

describe('GET /openapi.json', () => {
  it('is an OpenAPI 3.x document served under /api/v1', () => {
    expect(document.openapi).toMatch(/^3\.\d+\.\d+$/);
    expect(document.info.title).toEqual(expect.any(String));
    expect(document.info.version).toEqual(expect.any(String));
    expect(document.servers).toEqual([{ url: '/api/v1' }]);
    expect(document.tags?.map((t) => t.name).sort()).toEqual([...TAGS].sort());
  });

  it('is the document the app builds at start (generation does not fail)', () => {
    expect(JSON.parse(JSON.stringify(buildOpenApiDocument()))).toEqual(document);
  });

  it('is the committed openapi.json (after an API change: npm run openapi:write, and commit it)', () => {
    const committed: unknown = JSON.parse(readFileSync(new URL('../openapi.json', import.meta.url), 'utf8'));
    expect(committed, 'openapi.json is stale: run npm run openapi:write').toEqual(document);
  });

  it('has a license, and a description on every tag', () => {
    expect(document.info.license?.name).toEqual(expect.any(String));
    expect(document.info.license?.identifier ?? document.info.license?.url).toEqual(expect.any(String));
    for (const tag of document.tags ?? []) expect(tag.description?.trim().length, `tag ${tag.name}`).toBeGreaterThan(0);
  });

  it('finds REST procedures in the router (the walk is not empty)', () => {
    expect(restProcedures.length).toBeGreaterThanOrEqual(17);
    expect(restProcedures.map((r) => r.key)).toEqual(
      expect.arrayContaining(['POST /auth/signup', 'GET /organizations', 'DELETE /organizations/{org_id}']),
    );
  });
});

describe('components', () => {
  it('resolves every $ref, and keeps one Error schema instead of one per code', () => {
    const refs = [...JSON.stringify(document).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map((m) => m[1]!);
    const schemas = (document as unknown as { components: { schemas: Record<string, unknown> } }).components.schemas;
    expect(refs.length).toBeGreaterThan(10);
    for (const name of refs) expect(schemas[name], name).toBeDefined();
    expect(Object.keys(schemas).filter((name) => name.startsWith('error.'))).toEqual([]);
    expect(schemas.Error).toMatchObject({ required: ['code', 'message'] });
  });
});

describe('operations', () => {
  it('lists every REST procedure with its method, path, operationId, summary and one known tag', () => {
    for (const rest of restProcedures) {
      const operation = operationOf(rest);
      expect(operation, `${rest.key} (${rest.procedure}) is missing from the document`).toBeDefined();
      expect(operation!.operationId, rest.key).toBe(rest.operationId);
      expect(operation!.summary?.trim().length, `${rest.key} has no summary`).toBeGreaterThan(0);
      expect(operation!.description?.trim().length, `${rest.key} has no description`).toBeGreaterThan(0);
      expect(operation!.tags, rest.key).toHaveLength(1);
      expect(TAGS, rest.key).toContain(operation!.tags![0]);
    }
  });

  it('lists nothing that is not a REST procedure, and each operationId once', () => {
    const documented = allOperations()
      .map(([key]) => key)
      .sort();
    expect(documented).toEqual(restProcedures.map((r) => r.key).sort());
    const ids = allOperations().map(([, operation]) => operation.operationId);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('marks a body optional only where the operation takes none at all (archive, restore, the settings writes)', () => {
    const optional = allOperations()
      .filter(([, operation]) => operation.requestBody && (operation.requestBody as { required?: boolean }).required === false)
      .map(([key]) => key)
      .sort();
    expect(optional).toEqual([
      'POST /workspaces/{workspace_id}/archive',
      'POST /workspaces/{workspace_id}/restore',
      'PUT /organizations/{org_id}/settings',
      'PUT /workspaces/{workspace_id}/settings',
    ]);
  });

  it("tags every operation of the contract's sections", () => {
    const tagOf = (key: string) => allOperations().find(([k]) => k === key)?.[1].tags?.[0];
    expect(tagOf('POST /auth/signup')).toBe('auth');
    expect(tagOf('GET /organizations')).toBe('organizations');
    expect(tagOf('GET /organizations/{org_id}/events')).toBe('audit');
    for (const [key, operation] of allOperations()) {
      // The audit trail is its own section (README, Audit events), whichever resource its path hangs from.
      if (key.endsWith('/events')) {
        expect(operation.tags, key).toEqual(['audit']);
        continue;
      }
      // So are invitations (README, Invitations and guests), to an organization or to a workspace.
      if (/\/invitations(\/|$)/.test(key)) {
        expect(operation.tags, key).toEqual(['invitations']);
        continue;
      }
      if (key.includes(' /auth/')) expect(operation.tags, key).toEqual(['auth']);
      if (/ \/workspaces(\/|$)/.test(key)) expect(operation.tags, key).toEqual(['workspaces']);
      if (/ \/organizations(\/|$)/.test(key)) expect(operation.tags, key).toEqual(['organizations']);
    }
  });

  it('documents each path parameter as a required path parameter', () => {
    for (const [key, operation] of allOperations()) {
      const names = [...key.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
      for (const name of names) {
        const parameter = operation.parameters?.find((p) => p.in === 'path' && p.name === name);
        expect(parameter, `${key}: path parameter ${name}`).toBeDefined();
        expect(parameter!.required, `${key}: ${name}`).toBe(true);
      }
    }
  });

  it('documents a JSON request body for every POST and PUT that takes one', () => {
    for (const rest of restProcedures) {
      if (rest.method !== 'POST' && rest.method !== 'PUT') continue;
      // These take no input but their path.
      if (rest.key === 'POST /auth/logout' || rest.key === 'POST /invitations/{invitation_id}/resend') continue;
      expect(operationOf(rest)!.requestBody?.content?.['application/json'], rest.key).toBeDefined();
    }
  });

  it('gives every JSON request body an explicit example (test/openapi-examples.test.ts sends each one)', () => {
    for (const [key, operation] of allOperations()) {
      const media = operation.requestBody?.content?.['application/json'];
      if (media) expect(media.example, `${key}: request example`).toEqual(expect.any(Object));
    }
  });
});

describe('success responses', () => {
  it('answers each operation with exactly its success status', () => {
    for (const rest of restProcedures) {
      const statuses = Object.keys(operationOf(rest)!.responses).filter((s) => s.startsWith('2'));
      expect(statuses, rest.key).toEqual([String(rest.successStatus)]);
    }
  });

  it('gives creates a 201 with a Location header (signup and provisioning, which make several, without one)', () => {
    const creates = restProcedures.filter((r) => r.successStatus === 201);
    expect(creates.map((r) => r.key)).toEqual(expect.arrayContaining(['POST /organizations', 'POST /auth/signup']));
    for (const rest of creates) {
      expect(rest.method, rest.key).toBe('POST');
      const created = operationOf(rest)!.responses['201']!;
      expect(created.content?.['application/json'], rest.key).toBeDefined();
      if (CREATES_WITHOUT_LOCATION.has(rest.key)) {
        expect(created.headers?.Location, `${rest.key} sends no Location, so its document must not promise one`).toBeUndefined();
      } else {
        expect(created.headers?.Location, `${rest.key}: Location`).toMatchObject({ required: true });
      }
    }
  });

  it('gives deletes a 204 without content', () => {
    const deletes = restProcedures.filter((r) => r.method === 'DELETE');
    expect(deletes.length).toBeGreaterThan(0);
    for (const rest of deletes) {
      expect(rest.successStatus, rest.key).toBe(204);
      const noContent = operationOf(rest)!.responses['204'];
      expect(noContent, rest.key).toBeDefined();
      expect(noContent!.content, rest.key).toBeUndefined();
    }
  });

  it('sends ETag on the reads and writes of a workspace and its settings', () => {
    for (const key of ['GET /workspaces/{workspace_id}', 'GET /workspaces/{workspace_id}/settings']) {
      const operation = allOperations().find(([k]) => k === key)?.[1];
      expect(operation, key).toBeDefined();
      expect(operation!.responses['200']?.headers?.ETag, `${key}: ETag`).toBeDefined();
    }
  });

  it('matches what the service sends: 201 with Location (none on signup), 204 with no body', async () => {
    const account = await signup(app, 'Doc');
    const signedUp = await app.request('POST', '/api/v1/auth/signup', {
      body: { email: `doc-${Date.now()}@example.com`, password: 'long enough password', name: 'Doc two' },
    });
    expect(signedUp.status).toBe(201);
    expect(signedUp.headers.get('location')).toBeNull();
    const created = await app.request('POST', '/api/v1/organizations', { token: account.token, body: { name: 'Documented' } });
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toBe(`/api/v1/organizations/${created.body.id}`);
    const deleted = await app.request('DELETE', `/api/v1/organizations/${created.body.id}`, { token: account.token });
    expect(deleted.status).toBe(204);
    expect(deleted.text).toBe('');
    expect(await app.query('select id from organizations where id = $1', [created.body.id])).toEqual([]);
  });

  it('declares X-Request-Id and X-Service-Request-Id on every response, and the service sends them as declared', async () => {
    for (const [key, operation] of allOperations()) {
      for (const [status, response] of Object.entries(operation.responses)) {
        expect(Object.keys(response.headers ?? {}), `${key} ${status}`).toEqual(
          expect.arrayContaining(['X-Request-Id', 'X-Service-Request-Id']),
        );
      }
    }
    const declared = (document.components as unknown as { headers: Record<string, { schema: { pattern?: string; format?: string } }> })
      .headers;
    const account = await signup(app, 'Ids');
    const asSent: Array<Record<string, string>> = [{}, { 'x-request-id': 'caller-trace-42' }];
    for (const sent of asSent) {
      for (const res of [
        await app.request('GET', '/api/v1/auth/me', { token: account.token, headers: sent }),
        await app.request('GET', `/api/v1/workspaces/${randomUUID()}`, { token: account.token, headers: sent }),
      ]) {
        const ours = res.headers.get('x-service-request-id');
        const echoed = res.headers.get('x-request-id');
        expect(declared['X-Service-Request-Id']!.schema.format).toBe('uuid');
        expect(ours).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
        expect(echoed).toMatch(new RegExp(declared['X-Request-Id']!.schema.pattern!));
        expect(echoed).toBe(sent['x-request-id'] ?? ours);
      }
    }
  });
});

describe('errors', () => {
  it('defines the Error schema with code and message (and issues, failed)', () => {
    const error = document.components.schemas.Error!;
    expect(error.type).toBe('object');
    expect(error.required).toEqual(expect.arrayContaining(['code', 'message']));
    expect(Object.keys(error.properties!)).toEqual(expect.arrayContaining(['code', 'message', 'issues', 'failed']));
    expect(error.properties!.code!.enum).toEqual(
      expect.arrayContaining([
        'BAD_REQUEST',
        'UNAUTHORIZED',
        'FORBIDDEN',
        'NOT_FOUND',
        'CONFLICT',
        'PRECONDITION_FAILED',
        'PAYLOAD_TOO_LARGE',
        'UNSUPPORTED_MEDIA_TYPE',
        'UNPROCESSABLE_CONTENT',
        'TOO_MANY_REQUESTS',
        'INTERNAL_SERVER_ERROR',
        'SERVICE_UNAVAILABLE',
      ]),
    );
  });

  it('has every error response reference the Error schema', () => {
    for (const [key, operation] of allOperations()) {
      const errors = Object.entries(operation.responses).filter(([status]) => /^[45]/.test(status));
      expect(
        errors.map(([s]) => s),
        key,
      ).toEqual(expect.arrayContaining(['400', '500']));
      for (const [status, response] of errors) {
        expect(response.content?.['application/json']?.schema?.$ref, `${key} ${status}`).toBe('#/components/schemas/Error');
        expect(response.description?.length, `${key} ${status}: description`).toBeGreaterThan(0);
        // Its own code, not the first of the enum (Swagger UI would show BAD_REQUEST under every status).
        const example = response.content?.['application/json']?.example;
        expect(example?.code, `${key} ${status}: example code`).toBeDefined();
        expect(ERROR_STATUS[example!.code as keyof typeof ERROR_STATUS], `${key} ${status}: example code`).toBe(Number(status));
        expect(example?.message, `${key} ${status}: example message`).toEqual(expect.any(String));
      }
    }
  });

  it('names QUOTA_EXCEEDED in the 409 of every operation a quota can refuse, and in the enum of error codes', () => {
    const operations = Object.fromEntries([...allOperations()].map(([, operation]) => [operation.operationId, operation]));
    for (const id of ['createWorkspace', 'createOrganizationWorkspace', 'cloneWorkspace', 'provisionWorkspaces', 'createOrganization']) {
      expect(operations[id]?.responses['409']?.description, id).toMatch(
        /QUOTA_EXCEEDED.*MAX_(WORKSPACES_PER_ORGANIZATION|ORGANIZATIONS_PER_USER)/,
      );
    }
    expect(operations.updateWorkspace?.responses['409']?.description).not.toMatch(/QUOTA_EXCEEDED/);
    expect(JSON.stringify(document.components?.schemas?.Error)).toContain('QUOTA_EXCEEDED');
  });

  it('documents 413 and 415 on every operation that takes a body', () => {
    for (const [key, operation] of allOperations()) {
      if (!operation.requestBody) continue;
      expect(Object.keys(operation.responses), key).toEqual(expect.arrayContaining(['413', '415']));
    }
  });
});

describe('security', () => {
  it('has the bearer security scheme', () => {
    const schemes = Object.values(document.components.securitySchemes);
    expect(schemes).toContainEqual(expect.objectContaining({ type: 'http', scheme: 'bearer' }));
  });

  it('protects every operation but signup, login and the invitation preview, which are open', () => {
    const [bearerName] = Object.entries(document.components.securitySchemes).find(([, s]) => s.type === 'http' && s.scheme === 'bearer')!;
    expect(document.security ?? []).toEqual([]);
    for (const [key, operation] of allOperations()) {
      if (PUBLIC_OPERATIONS.has(key)) {
        expect(operation.security ?? [], `${key} must be open`).toEqual([]);
      } else {
        expect(operation.security, `${key} must need the bearer token`).toEqual([{ [bearerName]: [] }]);
        expect(operation.responses['401'], `${key}: 401`).toBeDefined();
      }
    }
  });
});
