/**
 * A REST caller written the way a TypeScript team would write one: openapi-fetch over the
 * types openapi-typescript generates from the service's /openapi.json.
 *
 * `workspaces-rest-api` is the generated `.d.ts`. test/typed-rest-client.test.ts generates it
 * from the served document, points the module name at it, type-checks this file with
 * `--strict` (a renamed field, path, parameter or status breaks the check), then imports and
 * runs `runRestSession` against the service. Under `npm run typecheck` the module name
 * resolves to the loose stand-in in ./workspaces-rest-api.d.ts, which only keeps the repository's own check
 * (and ESLint) going.
 */
import createClient from 'openapi-fetch';
import type { components, paths } from 'workspaces-rest-api';

type Workspace = components['schemas']['Workspace'];
type ApiError = components['schemas']['Error'];

/** What the session saw, for the test to assert. */
export interface RestSession {
  token: string;
  organizationId: string;
  signupStatus: number;
  created: { status: number; location: string | null; workspace: Workspace; replayedStatus: number; replayedId: string };
  provisioned: { status: number; slugs: string[] };
  /** Every workspace the cursor walk returned, in order, and how many pages it took. */
  walk: { slugs: string[]; pages: number };
  clone: { status: number; workspace: Workspace };
  settingsUpdate: { status: number; etagBefore: string; etagAfter: string | null; version: number; slackEnabled: boolean };
  stale: { status: number; code: ApiError['code']; message: string };
  /** The settings as a GET shows them after the refused write. */
  afterStale: { version: number; etag: string | null; slackChannel: string | number | boolean | undefined };
}

function fail(step: string, status: number, error: unknown): never {
  throw new Error(`${step}: unexpected ${status} ${JSON.stringify(error)}`);
}

export async function runRestSession(baseUrl: string, email: string): Promise<RestSession> {
  const client = createClient<paths>({ baseUrl: `${baseUrl}/api/v1` });

  // Sign up: no token needed; 201 with the token, the organization and its default workspace.
  const signup = await client.POST('/auth/signup', { body: { email, password: 'a typed client password', name: 'Typed Client' } });
  if (!signup.data) fail('signup', signup.response.status, signup.error);
  const token = signup.data.access_token;
  const organizationId = signup.data.organization.id;
  client.use({
    onRequest({ request }) {
      request.headers.set('Authorization', `Bearer ${token}`);
      return request;
    },
  });

  // Create, with an Idempotency-Key: a retry with the same key replays the first answer.
  const key = `typed-client-${Date.now()}`;
  const body = {
    organization_id: organizationId,
    name: 'Platform',
    description: 'Created by the typed REST client',
    metadata: { team: 'platform' },
    settings: { features: { beta: true } },
  };
  const create = await client.POST('/workspaces', { params: { header: { 'Idempotency-Key': key } }, body });
  if (!create.data) fail('create', create.response.status, create.error);
  const replay = await client.POST('/workspaces', { params: { header: { 'Idempotency-Key': key } }, body });
  if (!replay.data) fail('create (replay)', replay.response.status, replay.error);

  // Provision a batch, so that the list below has several pages.
  const provision = await client.POST('/workspaces/provision', {
    body: {
      organization_id: organizationId,
      mode: 'atomic',
      workspaces: ['Alpha', 'Bravo', 'Charlie', 'Delta'].map((name) => ({ name })),
    },
  });
  if (!provision.data) fail('provision', provision.response.status, provision.error);

  // List two at a time, following next_cursor until it is null.
  const slugs: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const page = await client.GET('/workspaces', {
      params: { query: { organization_id: organizationId, sort: 'name', order: 'asc', limit: 2, cursor } },
    });
    if (!page.data) fail('list', page.response.status, page.error);
    pages++;
    slugs.push(...page.data.items.map((w: Workspace) => w.slug));
    cursor = page.data.next_cursor ?? undefined;
  } while (cursor && pages < 20);

  // Clone the created workspace.
  const clone = await client.POST('/workspaces/{workspace_id}/clone', {
    params: { path: { workspace_id: create.data.id } },
    body: { name: 'Platform (copy)' },
  });
  if (!clone.data) fail('clone', clone.response.status, clone.error);

  // Update the settings conditionally on the ETag just read.
  const read = await client.GET('/workspaces/{workspace_id}/settings', { params: { path: { workspace_id: create.data.id } } });
  if (!read.data) fail('settings', read.response.status, read.error);
  const etagBefore = read.response.headers.get('ETag') ?? fail('settings ETag', read.response.status, null);
  const update = await client.PUT('/workspaces/{workspace_id}/settings', {
    params: { path: { workspace_id: create.data.id }, header: { 'If-Match': etagBefore } },
    body: { integrations: { slack: { enabled: true, config: { channel: '#platform' } } } },
  });
  if (!update.data) fail('settings update', update.response.status, update.error);

  // The same If-Match again is stale now: 412, typed as the contract's error body.
  const stale = await client.PUT('/workspaces/{workspace_id}/settings', {
    params: { path: { workspace_id: create.data.id }, header: { 'If-Match': etagBefore } },
    body: { integrations: { slack: { config: { channel: '#elsewhere' } } } },
  });
  if (stale.data || !stale.error) throw new Error('settings update with a stale If-Match was accepted');
  // Compile-time: 412's code is one the document names.
  const precondition: ApiError['code'] = 'PRECONDITION_FAILED';
  if (stale.error.code !== precondition) fail('stale update', stale.response.status, stale.error);

  const after = await client.GET('/workspaces/{workspace_id}/settings', { params: { path: { workspace_id: create.data.id } } });
  if (!after.data) fail('settings after the 412', after.response.status, after.error);

  return {
    token,
    organizationId,
    signupStatus: signup.response.status,
    created: {
      status: create.response.status,
      location: create.response.headers.get('Location'),
      workspace: create.data,
      replayedStatus: replay.response.status,
      replayedId: replay.data.id,
    },
    provisioned: { status: provision.response.status, slugs: provision.data.created.map((w: Workspace) => w.slug) },
    walk: { slugs, pages },
    clone: { status: clone.response.status, workspace: clone.data },
    settingsUpdate: {
      status: update.response.status,
      etagBefore,
      etagAfter: update.response.headers.get('ETag'),
      version: update.data.version,
      slackEnabled: update.data.effective.integrations.slack?.enabled === true,
    },
    stale: { status: stale.response.status, code: stale.error.code, message: stale.error.message },
    afterStale: {
      version: after.data.version,
      etag: after.response.headers.get('ETag'),
      slackChannel: after.data.effective.integrations.slack?.config.channel,
    },
  };
}
