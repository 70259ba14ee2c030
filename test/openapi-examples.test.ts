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

/**
 * Signup makes the account login's example logs in with: it goes first, login second, the rest in
 * document order, deletes last (a delete with an example would take away the invitation or the
 * workspace the others' examples name).
 */
const FIRST = ['POST /auth/signup', 'POST /auth/login'];
const rank = (op: Operation) => (FIRST.includes(op.key) ? FIRST.indexOf(op.key) : op.method === 'DELETE' ? FIRST.length + 1 : FIRST.length);
const withExamples = operationsOf(document)
  .filter(hasExample)
  .sort((a, b) => rank(a) - rank(b));

/** The operations whose example body carries an invitation's token: each gets a real one of its own (accept and decline spend theirs). */
const TOKEN_OPERATIONS = ['POST /invitations/preview', 'POST /invitations/accept', 'POST /invitations/decline'] as const;
/** The ones only the invitee may call: its account's email is the invitation's. */
const INVITEE_OPERATIONS: readonly string[] = ['POST /invitations/accept', 'POST /invitations/decline'];

let app: TestApp;
let owner: SignedUp;
let member: SignedUp;
/** The account of the email the invitation examples invite (the invitee accepts and declines as itself). */
let invitee: SignedUp;
/** Real ids for the document's example ids and path parameters. */
let ids: Record<keyof typeof EXAMPLE_IDS, string>;
/** A real token (of an invitation to `invitee`'s email) for each operation that takes one, and the invitation it is of. */
const tokens = new Map<string, { token: string; invitationId: string; organizationId: string }>();

const exampleBody = (key: string) => {
  const op = withExamples.find((o) => o.key === key);
  if (!op) throw new Error(`${key} has no request example`);
  return examplesOf(op).body as Record<string, unknown>;
};

/** Invites `email` to a fresh organization of the owner's, as the owner: the answer's token and invitation. */
async function invitationIn(name: string, email: string) {
  const organization = await createOrganization(app, owner.token, { name });
  const invited = await app.request('POST', `/api/v1/organizations/${organization.id}/invitations`, {
    token: owner.token,
    body: { email, role: 'member' },
  });
  expect(invited.status, invited.text).toBe(201);
  return { token: invited.body.token as string, invitationId: invited.body.invitation.id as string, organizationId: organization.id };
}

beforeAll(async () => {
  app = await startTestApp();
  // The invitation examples' invitee must have an account to accept or decline as (README: accepting needs it logged in).
  const email = exampleBody('POST /organizations/{org_id}/invitations').email as string;
  expect(exampleBody('POST /workspaces/{workspace_id}/invitations').email).toBe(email);
  const [signedUpOwner, signedUpMember, signedUpInvitee] = await Promise.all([
    signup(app, 'Owner'),
    signup(app, 'Member'),
    app.request('POST', '/api/v1/auth/signup', { body: { email, password: 'invitee password', name: 'Invitee' } }),
  ]);
  [owner, member] = [signedUpOwner, signedUpMember];
  expect(signedUpInvitee.status, signedUpInvitee.text).toBe(201);
  invitee = {
    token: signedUpInvitee.body.access_token,
    user: signedUpInvitee.body.user,
    organization: signedUpInvitee.body.organization,
    workspace: signedUpInvitee.body.workspace,
    password: 'invitee password',
  };
  const organization = await createOrganization(app, owner.token, { name: 'Examples' });
  // Guests allowed in the fixture workspace, so its invitation example (to someone outside the
  // organization) is one the service takes whatever the order of the examples.
  const workspace = await app.request('POST', '/api/v1/workspaces', {
    token: owner.token,
    body: { organization_id: organization.id, name: 'Example fixture', settings: { permissions: { allow_guests: true } } },
  });
  expect(workspace.status, workspace.text).toBe(201);
  await addMember(app, owner.token, organization.id, member, 'member');
  // Each token operation its own invitation (in an organization of its own: one pending invitation per target and email).
  for (const key of TOKEN_OPERATIONS) tokens.set(key, await invitationIn(`Invitation to ${key.split('/').pop()!}`, email));
  // The invitation the by-id examples read, resend and revoke: pending, to an email with no account.
  const pending = await app.request('POST', `/api/v1/organizations/${organization.id}/invitations`, {
    token: owner.token,
    body: { email: 'pending-invitee@example.com', role: 'member' },
  });
  expect(pending.status, pending.text).toBe(201);
  ids = { organization: organization.id, workspace: workspace.body.id, user: member.user.id, invitation: pending.body.invitation.id };
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
      let body = examples.body === undefined ? undefined : withRealIds(examples.body);
      const invitation = tokens.get(op.key);
      if (invitation) {
        expect(body, `${op.key}: the example body names a token`).toEqual({ token: expect.any(String) });
        body = { token: invitation.token };
      }
      const caller = INVITEE_OPERATIONS.includes(op.key) ? invitee : owner;
      const res = await app.request(op.method, urlOf(op, examples.query), {
        token: op.secured ? caller.token : undefined,
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
        // An invitation's create answers it with its token, which a GET never shows.
        expect(created.body).toEqual(op.key.endsWith('/invitations') ? res.body.invitation : res.body);
      }
    },
  );

  it('left the state the examples describe: renamed, retitled, the member an admin, the invitee invited, joined and declined', async () => {
    const [org] = await app.query<{ name: string }>('select name from organizations where id = $1', [ids.organization]);
    expect(org?.name).toBe(exampleBody('PUT /organizations/{org_id}').name);
    const [workspace] = await app.query<{ name: string }>('select name from workspaces where id = $1', [ids.workspace]);
    expect(workspace?.name).toBe(exampleBody('PUT /workspaces/{workspace_id}').name);
    const roles = await app.query<{ email: string; role: string }>(
      'select u.email, m.role from memberships m join users u on u.id = m.user_id where m.organization_id = $1',
      [ids.organization],
    );
    expect(roles).toEqual(
      expect.arrayContaining([{ email: member.user.email, role: exampleBody('PUT /organizations/{org_id}/members/{user_id}').role }]),
    );
    // The creates' examples invited the invitee (not a member: invited only) to the organization and, as a guest, to the workspace.
    expect(roles.map((r) => r.email)).not.toContain(invitee.user.email);
    const invitationsTo = (organizationId: string) =>
      app.query<{ workspace_id: string | null; email: string; role: string; kind: string; status: string }>(
        `select workspace_id, email, role, kind, status from invitations where organization_id = $1 and lower(email) = lower($2)
          order by workspace_id nulls first`,
        [organizationId, invitee.user.email],
      );
    const orgExample = exampleBody('POST /organizations/{org_id}/invitations');
    const workspaceExample = exampleBody('POST /workspaces/{workspace_id}/invitations');
    expect(await invitationsTo(ids.organization)).toEqual([
      { workspace_id: null, email: orgExample.email, role: orgExample.role, kind: 'member', status: 'pending' },
      { workspace_id: ids.workspace, email: workspaceExample.email, role: workspaceExample.role, kind: 'guest', status: 'pending' },
    ]);
    // Accept made the membership; decline and preview left theirs declined and pending.
    const statusOf = async (key: (typeof TOKEN_OPERATIONS)[number]) => {
      const [row] = await app.query<{ status: string }>('select status from invitations where id = $1', [tokens.get(key)!.invitationId]);
      return row?.status;
    };
    expect(await statusOf('POST /invitations/accept')).toBe('accepted');
    expect(await statusOf('POST /invitations/decline')).toBe('declined');
    expect(await statusOf('POST /invitations/preview')).toBe('pending');
    const joined = await app.query<{ organization_id: string; role: string }>(
      'select organization_id, role from memberships where user_id = $1 and organization_id <> $2',
      [invitee.user.id, invitee.organization.id],
    );
    expect(joined).toEqual([{ organization_id: tokens.get('POST /invitations/accept')!.organizationId, role: 'member' }]);
    const [signedUp] = await app.query<{ n: number }>('select count(*)::int as n from users where email = $1', [
      exampleBody('POST /auth/signup').email,
    ]);
    expect(signedUp?.n).toBe(1);
  });
});
