/**
 * A typed tRPC client for the Workspaces service.
 *
 *   npx tsx examples/trpc-client.ts http://127.0.0.1:3000 you@example.com 'your password'
 *
 * Calls share one HTTP request through httpBatchLink; a call that needs its own headers
 * (Idempotency-Key) passes them in its context and goes through an httpLink of its own.
 * Conditional writes pass `expected_version` in the input (If-Match is REST's way).
 */
import { randomUUID } from 'node:crypto';
import { createTRPCClient, httpBatchLink, httpLink, splitLink } from '@trpc/client';
import type { AppRouter } from '../src/router';

type CallContext = { headers?: Record<string, string> };

export function createWorkspacesClient(baseUrl: string, getToken: () => string | undefined) {
  const auth = (): Record<string, string> => {
    const token = getToken();
    return token ? { authorization: `Bearer ${token}` } : {};
  };
  return createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (op) => Boolean((op.context as CallContext).headers),
        true: httpLink({ url: `${baseUrl}/trpc`, headers: ({ op }) => ({ ...auth(), ...(op.context as CallContext).headers }) }),
        false: httpBatchLink({ url: `${baseUrl}/trpc`, headers: auth }),
      }),
    ],
  });
}

async function main() {
  const [baseUrl = 'http://127.0.0.1:3000', email, password] = process.argv.slice(2);
  if (!email || !password) throw new Error('usage: examples/trpc-client.ts BASE_URL EMAIL PASSWORD');
  const session: { token?: string } = {};
  const client = createWorkspacesClient(baseUrl, () => session.token);

  session.token = (await client.auth.login.mutate({ email, password })).access_token;
  const me = await client.auth.me.query();
  const organizationId = me.memberships[0]!.organization_id;

  // A create that is safe to retry: the same key replays the first answer.
  const key = randomUUID();
  const created = await client.workspaces.create.mutate(
    { organization_id: organizationId, name: 'Created from the tRPC example' },
    { context: { headers: { 'Idempotency-Key': key } } },
  );
  const again = await client.workspaces.create.mutate(
    { organization_id: organizationId, name: 'Created from the tRPC example' },
    { context: { headers: { 'Idempotency-Key': key } } },
  );
  console.log('created', created.id, 'replayed', again.id === created.id);

  // A conditional update: fails with PRECONDITION_FAILED (412) if someone changed it meanwhile.
  const renamed = await client.workspaces.update.mutate({
    workspace_id: created.id,
    name: 'Renamed from the tRPC example',
    expected_version: created.version,
  });
  console.log('renamed to', renamed.name, 'version', renamed.version);

  const page = await client.workspaces.list.query({ organization_id: organizationId, sort: 'name', limit: 10 });
  console.log(page.items.map((w) => w.slug));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
