import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOpenApiDocument } from '../src/openapi';
import { EXAMPLE_IDS } from '../src/lib/api-schemas';
import { addMember, signup, startTestApp, type SignedUp, type TestApp } from './helpers/app';
import { createOrganization } from './helpers/org-helpers';
import { describeErrors, operationsOf, validatorsFor, type OpenApiDocument, type Operation } from './fuzz/document';

/**
 * Every request example of the document (the ones Swagger UI pre-fills) is sent to the running
 * service, as written, with the example ids replaced by real ones of the caller's, and must get
 * the operation's documented success status and a body of the documented shape: an example the
 * server refuses fails here, so examples cannot rot.
 */
const document = buildOpenApiDocument() as unknown as OpenApiDocument;
const validators = validatorsFor(document);

interface Examples {
  body?: unknown;
  query: Record<string, unknown>;
  headers: Record<string, string>;
}

/** The operation's examples: its JSON body's and its query and header parameters' (path parameters get real ids). */
function examplesOf(op: Operation): Examples {
  const raw = document.paths[op.path]![op.method.toLowerCase()] as {
    parameters?: Array<{ in: string; name: string; example?: unknown; schema?: { example?: unknown } }>;
    requestBody?: { content?: Record<string, { example?: unknown }> };
  };
  const query: Record<string, unknown> = {};
  const headers: Record<string, string> = {};
  for (const p of raw.parameters ?? []) {
    const example = p.example ?? p.schema?.example;
    if (example === undefined) continue;
    if (p.in === 'query') query[p.name] = example;
    if (p.in === 'header') headers[p.name] = typeof example === 'string' ? example : JSON.stringify(example);
  }
  return { body: raw.requestBody?.content?.['application/json']?.example, query, headers };
}

const hasExample = (op: Operation) => {
  const { body, query, headers } = examplesOf(op);
  return body !== undefined || Object.keys(query).length > 0 || Object.keys(headers).length > 0;
};

/** Signup makes the account login's example logs in with: it goes first, login second, the rest in document order. */
const FIRST = ['POST /auth/signup', 'POST /auth/login'];
const rank = (op: Operation) => (FIRST.includes(op.key) ? FIRST.indexOf(op.key) : FIRST.length);
const withExamples = operationsOf(document)
  .filter(hasExample)
  .sort((a, b) => rank(a) - rank(b));

let app: TestApp;
let owner: SignedUp;
let member: SignedUp;
/** Real ids for the document's example ids and path parameters. */
let ids: { organization: string; workspace: string; user: string };

beforeAll(async () => {
  app = await startTestApp();
  [owner, member] = await Promise.all([signup(app, 'Owner'), signup(app, 'Member')]);
  const organization = await createOrganization(app, owner.token, { name: 'Examples' });
  const workspace = await app.request('POST', '/api/v1/workspaces', {
    token: owner.token,
    body: { organization_id: organization.id, name: 'Example fixture' },
  });
  expect(workspace.status, workspace.text).toBe(201);
  await addMember(app, owner.token, organization.id, member.user.email, 'member');
  // The person addMember's example adds must have an account (API.md: members are existing users).
  const { body: addExample } = examplesOf(withExamples.find((op) => op.key === 'POST /organizations/{org_id}/members')!);
  const email = (addExample as { email: string }).email;
  const invitee = await app.request('POST', '/api/v1/auth/signup', { body: { email, password: 'invitee password', name: 'Invitee' } });
  expect(invitee.status, invitee.text).toBe(201);
  ids = { organization: organization.id, workspace: workspace.body.id, user: member.user.id };
});
afterAll(async () => {
  await app?.close();
});

/** The example with each example id replaced by the real one it stands for. */
function withRealIds(value: unknown): unknown {
  const real = new Map<string, string>(Object.entries(EXAMPLE_IDS).map(([what, id]) => [id, ids[what as keyof typeof ids]]));
  return JSON.parse(JSON.stringify(value ?? null), (_key, v: unknown) => (typeof v === 'string' ? (real.get(v) ?? v) : v)) as unknown;
}

interface RawParameter {
  in: string;
  name: string;
  required?: boolean;
  example?: unknown;
  schema?: Record<string, unknown>;
}
const parametersOf = (doc: OpenApiDocument, path: string, method: string): RawParameter[] =>
  (doc.paths[path]![method.toLowerCase()] as { parameters?: RawParameter[] }).parameters ?? [];

/** The path with each parameter's documented example, its example id replaced by the real one (so the id must be of the right kind). */
function urlOf(op: Operation, query: Record<string, unknown>): string {
  const path = op.path.replace(/\{(\w+)\}/g, (_, name: string) => {
    const example = parametersOf(document, op.path, op.method).find((p) => p.in === 'path' && p.name === name)?.example;
    const id = withRealIds(example);
    if (typeof id !== 'string' || id === example) throw new Error(`${op.key}: the path parameter ${name} has no example id (EXAMPLE_IDS)`);
    return id;
  });
  const search = new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)])).toString();
  return `/api/v1${path}${search ? `?${search}` : ''}`;
}

describe('the parameter examples of /openapi.json', () => {
  let served: OpenApiDocument;
  beforeAll(async () => {
    const res = await app.request('GET', '/openapi.json');
    expect(res.status).toBe(200);
    served = res.body as OpenApiDocument;
  });
  const parameters = () =>
    operationsOf(served).flatMap((op) => parametersOf(served, op.path, op.method).map((parameter) => ({ op, parameter })));

  it('give every path parameter, and every required one, an example; a path parameter an example id (EXAMPLE_IDS)', () => {
    const all = parameters();
    expect(all.filter(({ parameter }) => parameter.in === 'path').length).toBeGreaterThanOrEqual(25);
    const missing = all
      .filter(({ parameter }) => (parameter.in === 'path' || parameter.required) && parameter.example === undefined)
      .map(({ op, parameter }) => `${op.key} ${parameter.in} ${parameter.name}`);
    expect(missing).toEqual([]);
    const exampleIds: unknown[] = Object.values(EXAMPLE_IDS);
    const notIds = all
      .filter(({ parameter }) => parameter.in === 'path' && !exampleIds.includes(parameter.example))
      .map(({ op, parameter }) => `${op.key} ${parameter.name}: ${JSON.stringify(parameter.example)}`);
    expect(notIds).toEqual([]);
  });

  it('are valid against their parameter schemas', () => {
    const checked = parameters().filter(({ parameter }) => parameter.example !== undefined);
    expect(checked.length).toBeGreaterThanOrEqual(25);
    const servedValidators = validatorsFor(served);
    const invalid = checked.flatMap(({ op, parameter }) => {
      const validate = servedValidators.compile(parameter.schema ?? {});
      return validate(parameter.example) ? [] : [`${op.key} ${parameter.in} ${parameter.name}: ${describeErrors(validate)}`];
    });
    expect(invalid).toEqual([]);
  });
});

describe('the request examples of /openapi.json', () => {
  it('cover every operation that takes a JSON body', () => {
    const withBody = operationsOf(document).filter((op) => op.bodySchema);
    expect(withBody.length).toBeGreaterThanOrEqual(13);
    expect(withExamples.map((op) => op.key).sort()).toEqual(expect.arrayContaining(withBody.map((op) => op.key).sort()));
  });

  it.each(withExamples.map((op) => [op.key, op] as const))(
    '%s: the example gets the documented success status and a documented body',
    async (_key, op) => {
      const examples = examplesOf(op);
      const body = examples.body === undefined ? undefined : withRealIds(examples.body);
      const res = await app.request(op.method, urlOf(op, examples.query), {
        token: op.secured ? owner.token : undefined,
        body,
        headers: examples.headers,
      });
      expect(res.status, `${op.key} refused its own example ${JSON.stringify(body)}: ${res.text}`).toBe(op.successStatus);
      if (op.successSchema) {
        const validate = validators.compile(op.successSchema);
        expect(validate(res.body), `${op.key}: ${describeErrors(validate)}`).toBe(true);
      }
      // What the example made is there: a Location names a resource the caller can read.
      if (op.successHeaders.Location) {
        const location = res.headers.get('location');
        expect(location, `${op.key}: Location`).toEqual(expect.stringMatching(/^\/api\/v1\//));
        const created = await app.request('GET', location!, { token: owner.token });
        expect(created.status, `${op.key}: GET ${location}`).toBe(200);
        expect(created.body).toEqual(res.body);
      }
    },
  );

  it('left the state the examples describe: renamed, retitled, the invitee a member, the member an admin', async () => {
    const exampleBody = (key: string) => examplesOf(withExamples.find((op) => op.key === key)!).body as Record<string, unknown>;
    const [org] = await app.query<{ name: string }>('select name from organizations where id = $1', [ids.organization]);
    expect(org?.name).toBe(exampleBody('PUT /organizations/{org_id}').name);
    const [workspace] = await app.query<{ name: string }>('select name from workspaces where id = $1', [ids.workspace]);
    expect(workspace?.name).toBe(exampleBody('PUT /workspaces/{workspace_id}').name);
    const roles = await app.query<{ email: string; role: string }>(
      'select u.email, m.role from memberships m join users u on u.id = m.user_id where m.organization_id = $1',
      [ids.organization],
    );
    expect(roles).toEqual(
      expect.arrayContaining([
        {
          email: exampleBody('POST /organizations/{org_id}/members').email,
          role: exampleBody('POST /organizations/{org_id}/members').role,
        },
        { email: member.user.email, role: exampleBody('PUT /organizations/{org_id}/members/{user_id}').role },
      ]),
    );
    const [signedUp] = await app.query<{ n: number }>('select count(*)::int as n from users where email = $1', [
      exampleBody('POST /auth/signup').email,
    ]);
    expect(signedUp?.n).toBe(1);
  });
});
