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
 * - Workspace access (step 9): a workspace made private, a member of the organization given a
 *   role in it, the access answer (`workspaces.access`: role and source), the member list, and
 *   the removal. The member is a plain member of an organization the caller administers; when
 *   there is none (a fresh account), it signs up a throwaway teammate, invites it to the
 *   organization and accepts as it (members join by invitation), and removes it again at the end.
 *   Then an invitation to the workspace: what its invitee would see (`invitations.preview`, which
 *   takes the invitation's token and no access token), and revoking it.
 * - It leaves the account as it found it: every workspace it creates is deleted at the end,
 *   also when a step fails (step 10), governance (step 8) puts the organization's locks back,
 *   an invitation it made and did not revoke yet is revoked, and a teammate it added to an
 *   organization is removed from it. Signed-up throwaway accounts themselves stay.
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

type WorkspacesClient = ReturnType<typeof createWorkspacesClient>;

/**
 * Runs the session; resolves when every step answered as expected and everything it created is
 * deleted again, rejects otherwise (after deleting what it can: the step's error is the one
 * reported).
 */
export async function runExample(baseUrl: string, credentials?: { email: string; password: string }): Promise<void> {
  const session: Session = { baseUrl, httpRequests: 0, created: new Set(), invitations: new Set(), addedMembers: [] };
  const client = createWorkspacesClient(baseUrl, () => session.token, { onRequest: () => session.httpRequests++ });
  try {
    await runSteps(client, session, credentials);
  } catch (error) {
    await cleanUp(client, session).catch((cleanupError: unknown) => {
      console.error('clean-up failed too:', cleanupError instanceof Error ? cleanupError.message : cleanupError);
    });
    throw error;
  }
  // 10. Clean up: a failure here fails the run, since the example must leave nothing behind.
  await cleanUp(client, session);
  console.log(`cleaned up: ${session.created.size} workspaces deleted`);
  console.log('example finished');
}

/** Revokes the session's pending invitations, deletes its workspaces, then takes the teammates it added out of their organizations. */
async function cleanUp(client: WorkspacesClient, session: Session): Promise<void> {
  for (const invitation_id of session.invitations) {
    try {
      await client.invitations.revoke.mutate({ invitation_id });
    } catch (error) {
      // Gone with its workspace, or no longer pending (revoked before the failure): nothing to do.
      const code = error instanceof TRPCClientError ? (error as TRPCClientError<AppRouter>).data?.code : undefined;
      if (code !== 'NOT_FOUND' && code !== 'CONFLICT') throw error;
    }
  }
  await deleteWorkspaces(client, session.created);
  for (const { org_id, user_id } of session.addedMembers) {
    try {
      await client.organizations.removeMember.mutate({ org_id, user_id });
    } catch (error) {
      if (!(error instanceof TRPCClientError && (error as TRPCClientError<AppRouter>).data?.code === 'NOT_FOUND')) throw error;
    }
  }
}

/** Deletes the workspaces (one already gone is fine); tries every one, then throws the first error. */
async function deleteWorkspaces(client: WorkspacesClient, ids: Set<string>): Promise<void> {
  let firstError: Error | undefined;
  for (const id of [...ids].reverse()) {
    try {
      await client.workspaces.delete.mutate({ workspace_id: id });
    } catch (error) {
      if (error instanceof TRPCClientError && (error as TRPCClientError<AppRouter>).data?.code === 'NOT_FOUND') continue;
      firstError ??= error instanceof Error ? error : new Error(String(error));
    }
  }
  if (firstError) throw firstError;
}

interface Session {
  baseUrl: string;
  token?: string;
  /** HTTP requests sent so far (to show batching). */
  httpRequests: number;
  /** Every workspace the session created, by id, recorded as soon as its id is known (deleted in step 10). */
  created: Set<string>;
  /** Invitations the session made and has not revoked yet (revoked in step 10). */
  invitations: Set<string>;
  /** Teammates the session added to an organization (removed in step 10). */
  addedMembers: Array<{ org_id: string; user_id: string }>;
}

/** Steps 1–9. */
async function runSteps(client: WorkspacesClient, session: Session, credentials?: { email: string; password: string }): Promise<void> {
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
  const before = session.httpRequests;
  const [me, organizations, everything] = await Promise.all([
    client.auth.me.query(),
    client.organizations.list.query({ limit: 100 }),
    client.workspaces.list.query({ limit: 100 }),
  ]);
  const batchRequests = session.httpRequests - before;
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
  session.created.add(created.id);
  const again = await client.workspaces.create.mutate(input, { context: { headers: { 'Idempotency-Key': key } } });
  session.created.add(again.id);
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
    const provisioned = await client.workspaces.provision.mutate({
      organization_id: organization.id,
      mode: 'atomic',
      workspaces: [
        { name: 'Twin', slug: `twin-${key.slice(0, 8)}` },
        { name: 'Twin', slug: `twin-${key.slice(0, 8)}` },
      ],
    });
    for (const workspace of provisioned.created) session.created.add(workspace.id);
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

  // 8. Governance: lock a setting, archive and restore a workspace, read the audit trail.
  await governance(client, session, organization.id, me.user.id);

  // 9. Workspace access: a private workspace, a member given a role in it, and why it can see it.
  const administered = organizations.items.filter((o) => o.role === 'owner' || o.role === 'admin');
  await workspaceAccess(client, session, administered, me.user.id);
}

/**
 * A plain member of one of the organizations the caller administers, to give a role in a
 * private workspace; when there is none, a throwaway teammate signed up, invited to the first of
 * them and accepting as itself (removed from it again in step 10).
 */
async function findTeammate(
  client: WorkspacesClient,
  session: Session,
  administered: Array<{ id: string }>,
): Promise<{ organizationId: string; userId: string; email: string }> {
  for (const organization of administered) {
    const { items } = await client.organizations.listMembers.query({ org_id: organization.id, limit: 100 });
    const plain = items.find((m) => m.role === 'member');
    if (plain) return { organizationId: organization.id, userId: plain.user_id, email: plain.email };
  }
  const organizationId = administered[0]!.id;
  const email = `trpc-teammate-${randomUUID()}@example.com`;
  // Its own clients: the teammate signs up without the caller's token, then accepts the invitation with its own.
  const anonymous = createWorkspacesClient(session.baseUrl, () => undefined);
  const signedUp = await anonymous.auth.signup.mutate({ email, password: 'a long teammate password', name: 'tRPC Teammate' });
  const teammate = createWorkspacesClient(session.baseUrl, () => signedUp.access_token);
  const { token } = await client.organizations.invitations.create.mutate({ org_id: organizationId, email, role: 'member' });
  const { membership } = await teammate.invitations.accept.mutate({ token });
  check(membership.organization_id === organizationId && membership.role === 'member', 'the accepted invitation makes a member');
  session.addedMembers.push({ org_id: organizationId, user_id: membership.user_id });
  console.log('signed up a teammate, invited it to the organization, and it accepted');
  return { organizationId, userId: membership.user_id, email };
}

/** Step 9, on a workspace of its own (deleted in step 10, its memberships with it). */
async function workspaceAccess(
  client: WorkspacesClient,
  session: Session,
  administered: Array<{ id: string }>,
  userId: string,
): Promise<void> {
  const teammate = await findTeammate(client, session, administered);
  const scratch = await client.workspaces.create.mutate({
    organization_id: teammate.organizationId,
    name: `tRPC access ${randomUUID().slice(0, 8)}`,
  });
  session.created.add(scratch.id);
  const workspace_id = scratch.id;

  // 9a. Make it private: only the organization's owners and admins, and its explicit members, see it.
  const settings = await client.workspaces.updateSettings.mutate({ workspace_id, permissions: { visibility: 'private' } });
  check(settings.effective.permissions.visibility === 'private', 'the workspace is private');
  const before = await client.workspaces.access.query({ workspace_id, user_id: teammate.userId });
  check(before.role === null && before.source === null, `a plain member has no access to a private workspace (${before.role})`);
  console.log('private workspace: a plain member has no access');

  // 9b. Give the teammate a role in it: an explicit membership.
  const added = await client.workspaces.members.add.mutate({ workspace_id, user_id: teammate.userId, role: 'viewer' });
  check(added.role === 'viewer' && added.user_id === teammate.userId, 'the member is added as a viewer');
  console.log('added', added.email, 'as', added.role);

  // 9c. The access answer: the teammate's role and why (two calls, one HTTP request), and the caller's own.
  const [theirs, mine] = await Promise.all([
    client.workspaces.access.query({ workspace_id, user_id: teammate.userId }),
    client.workspaces.access.query({ workspace_id }),
  ]);
  check(theirs.role === 'viewer' && theirs.source === 'workspace_member', `the member's access: ${theirs.role} ${theirs.source}`);
  check(mine.user_id === userId && mine.role === 'admin' && mine.source === 'organization_role', `my access: ${mine.role} ${mine.source}`);
  console.log(`access: member ${theirs.role} via ${theirs.source}; mine ${mine.role} via ${mine.source}`);

  // 9d. The workspace's explicit members (the organization's admins hold access without being listed).
  const members = await client.workspaces.members.list.query({ workspace_id });
  check(members.items.length === 1 && members.items[0]!.user_id === teammate.userId, 'the list shows the one explicit member');
  console.log('members:', members.items.map((m) => `${m.email} (${m.role})`).join(', '));

  // 9e. Remove the membership: the private workspace is closed to the teammate again.
  await client.workspaces.members.remove.mutate({ workspace_id, user_id: teammate.userId });
  const [after, remaining] = await Promise.all([
    client.workspaces.access.query({ workspace_id, user_id: teammate.userId }),
    client.workspaces.members.list.query({ workspace_id }),
  ]);
  check(after.role === null && remaining.items.length === 0, 'the removal ends the access');
  console.log('removed the member: no access again');

  // 9f. An invitation to the workspace: the token comes back once; its invitee may preview it
  // without logging in (what they would join, as what); revoked, its token previews as revoked.
  const { invitation, token } = await client.workspaces.invitations.create.mutate({ workspace_id, email: teammate.email, role: 'viewer' });
  session.invitations.add(invitation.id);
  check(invitation.status === 'pending' && invitation.kind === 'member', `the invitation: ${invitation.status} ${invitation.kind}`);
  const anonymous = createWorkspacesClient(session.baseUrl, () => undefined);
  const preview = await anonymous.invitations.preview.mutate({ token });
  check(
    preview.workspace_name === scratch.name && preview.role === 'viewer' && preview.status === 'pending',
    `the preview: ${preview.workspace_name} ${preview.role} ${preview.status}`,
  );
  console.log(`invited ${invitation.email}: the preview shows ${preview.workspace_name} (${preview.organization_name}) as ${preview.role}`);
  await client.invitations.revoke.mutate({ invitation_id: invitation.id });
  session.invitations.delete(invitation.id);
  const revoked = await anonymous.invitations.preview.mutate({ token });
  check(revoked.status === 'revoked', `the revoked invitation previews as ${revoked.status}`);
  console.log('revoked the invitation: its preview says', revoked.status);
}

/** Governance, on a workspace of its own (deleted in step 9); the organization's locks are put back as they were. */
async function governance(client: WorkspacesClient, session: Session, organizationId: string, userId: string): Promise<void> {
  const scratch = await client.workspaces.create.mutate({
    organization_id: organizationId,
    name: `tRPC governance ${randomUUID().slice(0, 8)}`,
  });
  session.created.add(scratch.id);
  const { locks: locksBefore } = await client.organizations.getSettings.query({ org_id: organizationId });
  try {
    // 8a. Lock a setting: every workspace takes the organization's value (or the default) for it.
    const LOCK = 'permissions.allow_guests';
    const locked = await client.organizations.updateSettings.mutate({ org_id: organizationId, locks: [...locksBefore, LOCK] });
    check(locked.locks.includes(LOCK), 'the organization reports the lock');
    const settings = await client.workspaces.getSettings.query({ workspace_id: scratch.id });
    check(settings.locked.includes(LOCK), 'the workspace settings list the lock');
    check(settings.sources.permissions.allow_guests === 'organization', 'a locked leaf comes from the organization');
    console.log('locked:', settings.locked.join(','));

    // 8b. A workspace write under the lock is CONFLICT (409), naming the path in error.data.issues; nothing changes.
    try {
      await client.workspaces.updateSettings.mutate({ workspace_id: scratch.id, permissions: { allow_guests: true } });
      check(false, 'a write under a lock was accepted');
    } catch (error) {
      const { data } = apiError(error);
      check(data?.code === 'CONFLICT' && data.httpStatus === 409, `locked write answered ${data?.code} ${data?.httpStatus}`);
      check(
        data.issues?.some((i) => i.path === LOCK),
        'the conflict names the locked path',
      );
      console.log('locked write refused:', data.code, data.httpStatus, data.issues?.map((i) => i.path).join(','));
    }
    const unchanged = await client.workspaces.getSettings.query({ workspace_id: scratch.id });
    check(unchanged.version === settings.version, 'the refused write left the version alone');

    // 8c. Archive (conditional on the version): read-only, left out of lists unless asked for.
    const archived = await client.workspaces.archive.mutate({ workspace_id: scratch.id, expected_version: scratch.version });
    check(archived.archived_at !== null && archived.version === scratch.version + 1, 'archive sets archived_at and bumps the version');
    const [active, onlyArchived] = await Promise.all([
      client.workspaces.list.query({ organization_id: organizationId, q: scratch.slug }),
      client.workspaces.list.query({ organization_id: organizationId, q: scratch.slug, archived: 'true' }),
    ]);
    check(!active.items.some((w) => w.id === scratch.id), 'the default list leaves the archived workspace out');
    check(
      onlyArchived.items.some((w) => w.id === scratch.id),
      'archived: true lists it',
    );
    console.log('archived', scratch.slug, 'listed with archived=true only');

    // 8d. Restore: active and writable again, with the slug it kept.
    const restored = await client.workspaces.restore.mutate({ workspace_id: scratch.id, expected_version: archived.version });
    check(restored.archived_at === null && restored.slug === scratch.slug, 'restore clears archived_at and keeps the slug');
    console.log('restored version', restored.version);

    // 8e. The audit trail: the workspace's own events (members), and the organization's (admins), filtered.
    const own = await client.audit.listWorkspaceEvents.query({ workspace_id: scratch.id });
    const ownActions = own.items.map((e) => e.action);
    check(
      (['workspace.restored', 'workspace.archived', 'workspace.created'] as const).every((a) => ownActions.includes(a)),
      `workspace events: ${ownActions.join(',')}`,
    );
    const mine = await client.audit.listOrganizationEvents.query({
      org_id: organizationId,
      actor_id: userId,
      action: 'organization.settings_updated',
      limit: 1,
    });
    const lockChange = mine.items[0]?.changes.locks;
    check(Array.isArray(lockChange?.to) && lockChange.to.includes(LOCK), 'the organization events show the lock change');
    console.log('workspace events:', ownActions.join(' '));
    console.log('organization event: organization.settings_updated locks', JSON.stringify(lockChange));
  } finally {
    // Leave the organization as it was: its locks back (the workspace goes in step 9).
    await client.organizations.updateSettings.mutate({ org_id: organizationId, locks: locksBefore });
  }
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
