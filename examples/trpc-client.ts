/**
 * A typed tRPC client for the Workspaces service, and a short session that shows its habits:
 *
 *   npx tsx examples/trpc-client.ts http://127.0.0.1:3000 you@example.com 'your password'
 *   npx tsx examples/trpc-client.ts http://127.0.0.1:3000      # signs up a throwaway account
 *
 * (or WORKSPACES_URL, WORKSPACES_EMAIL, WORKSPACES_PASSWORD in the environment). Every step
 * checks its answer; anything unexpected ends the run with exit code 1, so CI runs this file
 * against the service (test/trpc-example.test.ts) and a change that breaks tRPC callers fails.
 *
 * - Calls share one HTTP request through httpBatchLink; a call that needs its own headers
 *   (Idempotency-Key) passes them in its context and goes through an httpLink of its own.
 * - Conditional writes pass `expected_version` in the input (If-Match is REST's way).
 * - Errors are TRPCClientError<AppRouter>: `error.data` carries the contract's `code`,
 *   `httpStatus`, `issues` and `failed`, typed from the router.
 */
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { createTRPCClient, httpBatchLink, httpLink, splitLink, TRPCClientError } from '@trpc/client';
import type { AppRouter } from '../src/router';

type CallContext = { headers?: Record<string, string> };

export interface WorkspacesClientOptions {
  /** Called for every HTTP request the client sends (to show batching). */
  onRequest?: (url: string) => void;
}

export function createWorkspacesClient(baseUrl: string, getToken: () => string | undefined, options: WorkspacesClientOptions = {}) {
  const auth = (): Record<string, string> => {
    const token = getToken();
    return token ? { authorization: `Bearer ${token}` } : {};
  };
  const fetchCounted: typeof fetch = (input, init) => {
    options.onRequest?.(input instanceof Request ? input.url : String(input));
    return fetch(input, init);
  };
  return createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (op) => Boolean((op.context as CallContext).headers),
        true: httpLink({
          url: `${baseUrl}/trpc`,
          fetch: fetchCounted,
          headers: ({ op }) => ({ ...auth(), ...(op.context as CallContext).headers }),
        }),
        false: httpBatchLink({ url: `${baseUrl}/trpc`, fetch: fetchCounted, headers: auth }),
      }),
    ],
  });
}

/** The error a call failed with, typed from the router; anything else is not an API answer. */
export function apiError(error: unknown): TRPCClientError<AppRouter> {
  if (error instanceof TRPCClientError) return error as TRPCClientError<AppRouter>;
  throw error;
}

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`unexpected: ${message}`);
}

/** Runs the session; resolves when every step answered as expected, rejects otherwise. */
export async function runExample(baseUrl: string, credentials?: { email: string; password: string }): Promise<void> {
  const session: { token?: string } = {};
  let httpRequests = 0;
  const client = createWorkspacesClient(baseUrl, () => session.token, { onRequest: () => httpRequests++ });

  // 1. Sign in (or sign up a throwaway account); the token goes into every later request's Authorization header.
  if (credentials) {
    session.token = (await client.auth.login.mutate(credentials)).access_token;
  } else {
    const email = `trpc-example-${randomUUID()}@example.com`;
    const signedUp = await client.auth.signup.mutate({ email, password: 'a long example password', name: 'tRPC Example' });
    check(signedUp.token_type === 'Bearer', 'signup answers a Bearer token');
    session.token = signedUp.access_token;
  }
  console.log('signed in');

  // 2. Batching: three calls, one HTTP request.
  const before = httpRequests;
  const [me, organizations, everything] = await Promise.all([
    client.auth.me.query(),
    client.organizations.list.query({ limit: 100 }),
    client.workspaces.list.query({ limit: 100 }),
  ]);
  const batchRequests = httpRequests - before;
  check(batchRequests === 1, `three batched calls took ${batchRequests} HTTP requests`);
  const organization = organizations.items.find((o) => o.role === 'owner' || o.role === 'admin');
  check(organization, 'the caller administers an organization');
  check(
    me.memberships.some((m) => m.organization_id === organization.id),
    'me lists the organization',
  );
  console.log(`batched: 3 calls in ${batchRequests} HTTP request (${everything.items.length} workspaces visible)`);

  // 3. A create that is safe to retry: the same Idempotency-Key replays the first answer.
  const key = randomUUID();
  const input = { organization_id: organization.id, name: `tRPC example ${key.slice(0, 8)}` };
  const created = await client.workspaces.create.mutate(input, { context: { headers: { 'Idempotency-Key': key } } });
  const again = await client.workspaces.create.mutate(input, { context: { headers: { 'Idempotency-Key': key } } });
  check(again.id === created.id, 'the retried create replays the first one');
  check(created.version === 1, 'a new workspace starts at version 1');
  console.log('created', created.id, 'replayed', again.id === created.id);

  // 4. A conditional update on the version just read.
  const renamed = await client.workspaces.update.mutate({
    workspace_id: created.id,
    name: `${input.name} (renamed)`,
    expected_version: created.version,
  });
  check(renamed.version === created.version + 1, 'the update bumps the version');
  console.log('renamed to', renamed.name, 'version', renamed.version);

  // 5. The same condition again is stale now: PRECONDITION_FAILED (412), typed on error.data, and nothing changes.
  try {
    await client.workspaces.updateSettings.mutate({
      workspace_id: created.id,
      features: { beta: true },
      expected_version: created.version,
    });
    check(false, 'a stale expected_version was accepted');
  } catch (error) {
    const { data } = apiError(error);
    check(data?.code === 'PRECONDITION_FAILED' && data.httpStatus === 412, `stale write answered ${data?.code} ${data?.httpStatus}`);
    console.log('stale write refused:', data.code, data.httpStatus);
  }
  const settings = await client.workspaces.getSettings.query({ workspace_id: created.id });
  check(settings.version === renamed.version, 'the refused write left the version alone');
  check(settings.overrides.features?.beta === undefined, 'the refused write left the overrides alone');

  // 6. A provisioning conflict reports each failed item on error.data.failed.
  try {
    await client.workspaces.provision.mutate({
      organization_id: organization.id,
      mode: 'atomic',
      workspaces: [
        { name: 'Twin', slug: `twin-${key.slice(0, 8)}` },
        { name: 'Twin', slug: `twin-${key.slice(0, 8)}` },
      ],
    });
    check(false, 'an atomic batch with a repeated slug was accepted');
  } catch (error) {
    const { data } = apiError(error);
    check(data?.code === 'CONFLICT' && data.httpStatus === 409, `conflicting batch answered ${data?.code} ${data?.httpStatus}`);
    const failed = data.failed ?? [];
    check(failed.length > 0, 'the conflict lists the failed items');
    console.log('batch refused:', data.code, 'failed items', failed.map((f) => f.index).join(','));
  }

  // 7. A page of the organization's workspaces, sorted by name.
  const page = await client.workspaces.list.query({ organization_id: organization.id, sort: 'name', limit: 10 });
  check(
    page.items.some((w) => w.id === created.id),
    'the list shows the new workspace',
  );
  console.log('listed', page.items.map((w) => w.slug).join(' '));
  console.log('example finished');
}

async function main() {
  const [argUrl, argEmail, argPassword] = process.argv.slice(2);
  const baseUrl = argUrl ?? process.env.WORKSPACES_URL ?? 'http://127.0.0.1:3000';
  const email = argEmail ?? process.env.WORKSPACES_EMAIL;
  const password = argPassword ?? process.env.WORKSPACES_PASSWORD;
  if (Boolean(email) !== Boolean(password)) throw new Error('usage: examples/trpc-client.ts [BASE_URL [EMAIL PASSWORD]]');
  await runExample(baseUrl.replace(/\/+$/, ''), email && password ? { email, password } : undefined);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    const data = error instanceof TRPCClientError ? (error as TRPCClientError<AppRouter>).data : undefined;
    console.error(error instanceof Error ? error.message : error, data ? `(${data.code} ${data.httpStatus})` : '');
    process.exit(1);
  });
}
