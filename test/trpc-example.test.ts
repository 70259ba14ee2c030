import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_USER, seedDemoData } from '../scripts/seed';
import { createDeps } from '../src/deps';
import { signup, startTestApp, type TestApp } from './helpers/app';
import { runScript } from './helpers/run-script';

/**
 * examples/trpc-client.ts is documentation that runs: `npm run typecheck` type-checks it
 * against AppRouter, and this suite runs it as a reader would, against a live service.
 */
let app: TestApp;
beforeAll(async () => {
  app = await startTestApp();
});
afterAll(async () => {
  await app?.close();
});

interface WorkspaceRow {
  id: string;
  name: string;
  version: number;
  archived_at: string | null;
}

/** Every workspace of every organization the user belongs to, as the database holds it. */
const workspacesOf = (userId: string) =>
  app.query<WorkspaceRow>(
    `select w.id, w.name, w.version, w.archived_at::text as archived_at
       from workspaces w join memberships m on m.organization_id = w.organization_id
      where m.user_id = $1 order by w.id`,
    [userId],
  );

/** The ids of the workspaces the user created and deleted, from the audit trail. */
async function createdAndDeletedBy(userId: string) {
  const events = await app.query<{ action: string; target_id: string }>(
    `select action, target_id from audit_events
      where actor_id = $1 and action in ('workspace.created', 'workspace.deleted') order by created_at, id`,
    [userId],
  );
  const ids = (action: string) => events.filter((e) => e.action === action).map((e) => e.target_id);
  return { created: ids('workspace.created'), deleted: ids('workspace.deleted') };
}

const locksOf = async (userId: string) =>
  app.query<{ slug: string; locks: unknown }>(
    `select o.slug, o.settings_locks as locks from organizations o join memberships m on m.organization_id = o.id
      where m.user_id = $1 order by o.slug`,
    [userId],
  );

const HOP_HEADERS = new Set(['host', 'connection', 'keep-alive', 'content-length', 'transfer-encoding']);

/**
 * A pass-through HTTP proxy to the app that answers every tRPC request whose path starts with
 * `failing` with a tRPC batch error (500), as a service failing mid-session would.
 */
async function failingProxy(failing: string): Promise<{ url: string; close: () => Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.url?.startsWith(`/trpc/${failing}`)) {
        const error = { message: 'injected failure', code: -32603, data: { code: 'INTERNAL_SERVER_ERROR', httpStatus: 500 } };
        res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify([{ error }]));
        return;
      }
      const headers = Object.fromEntries(
        Object.entries(req.headers).filter(
          (entry): entry is [string, string] => typeof entry[1] === 'string' && !HOP_HEADERS.has(entry[0]),
        ),
      );
      fetch(app.url + req.url, { method: req.method, headers, body: chunks.length > 0 ? Buffer.concat(chunks) : undefined })
        .then(async (answer) => {
          const body = Buffer.from(await answer.arrayBuffer());
          res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' }).end(body);
        })
        .catch(() => res.writeHead(502).end());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('examples/trpc-client.ts', () => {
  it('runs its session with the demo login, exits 0, and leaves the demo organizations as it found them', async () => {
    await seedDemoData(createDeps(app.config, app.database));
    const [demo] = await app.query<{ id: string }>('select id from users where email = $1', [DEMO_USER.email]);
    const before = await workspacesOf(demo!.id);
    const locksBefore = await locksOf(demo!.id);
    expect(before).toHaveLength(13);
    const eventsBefore = await createdAndDeletedBy(demo!.id);

    const result = await runScript('examples/trpc-client.ts', [app.url, DEMO_USER.email, DEMO_USER.password], {});

    expect(result.stderr, result.stdout).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('signed in');
    expect(result.stdout).toContain('batched: 3 calls in 1 HTTP request');
    expect(result.stdout).toMatch(/created \S+ replayed true/);
    expect(result.stdout).toContain('version 2');
    expect(result.stdout).toContain('stale write refused: PRECONDITION_FAILED 412');
    expect(result.stdout).toContain('batch refused: CONFLICT failed items 1');
    // Governance: a locked setting refuses the workspace's write; archive and restore; the trail.
    expect(result.stdout).toContain('locked write refused: CONFLICT 409 permissions.allow_guests');
    expect(result.stdout).toMatch(/archived \S+ listed with archived=true only/);
    expect(result.stdout).toContain('restored version 3');
    expect(result.stdout).toMatch(/workspace events: workspace\.restored workspace\.archived/);
    expect(result.stdout).toContain('cleaned up: 2 workspaces deleted');
    expect(result.stdout).toContain('example finished');

    // The demo organizations hold exactly the workspaces they held, unchanged, and their locks.
    expect(await workspacesOf(demo!.id)).toEqual(before);
    expect(await locksOf(demo!.id)).toEqual(locksBefore);
    // It did create its two workspaces (the replayed create made none), and deleted both.
    const events = await createdAndDeletedBy(demo!.id);
    const made = events.created.filter((id) => !eventsBefore.created.includes(id));
    expect(made).toHaveLength(2);
    expect(events.deleted.filter((id) => !eventsBefore.deleted.includes(id)).sort()).toEqual(made.sort());
  });

  it('deletes what it created when a step fails, and exits 1 naming the failure', async () => {
    const account = await signup(app, 'Failing');
    const before = await workspacesOf(account.user.id);
    const locksBefore = await locksOf(account.user.id);
    // 8e reads the workspace's events: by then both of its workspaces exist and a lock is set.
    const proxy = await failingProxy('audit.listWorkspaceEvents');
    try {
      const result = await runScript('examples/trpc-client.ts', [proxy.url, account.user.email, account.password], {});
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('injected failure (INTERNAL_SERVER_ERROR 500)');
      expect(result.stderr).not.toContain('clean-up failed');
      expect(result.stdout).toContain('restored version 3');
      expect(result.stdout).not.toContain('example finished');
    } finally {
      await proxy.close();
    }
    expect(await workspacesOf(account.user.id)).toEqual(before);
    expect(await locksOf(account.user.id)).toEqual(locksBefore);
    const events = await createdAndDeletedBy(account.user.id);
    // The default workspace (created at signup) and the example's two; the two are deleted.
    expect(events.created).toHaveLength(3);
    expect(events.deleted.sort()).toEqual(events.created.filter((id) => id !== account.workspace.id).sort());
  });

  it('signs up an account of its own when given only the URL (from WORKSPACES_URL), and leaves only its default workspace', async () => {
    const result = await runScript('examples/trpc-client.ts', [], { WORKSPACES_URL: app.url });
    expect(result.stderr, result.stdout).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('example finished');
    const users = await app.query<{ id: string }>("select id from users where email like 'trpc-example-%'");
    expect(users).toHaveLength(1);
    const left = await app.query<{ is_default: boolean }>(
      'select w.is_default from workspaces w join memberships m on m.organization_id = w.organization_id where m.user_id = $1',
      [users[0]!.id],
    );
    expect(left).toEqual([{ is_default: true }]);
  });

  it('exits 1 with one line when the service refuses it', async () => {
    const account = await signup(app, 'Wrong');
    const result = await runScript('examples/trpc-client.ts', [app.url, account.user.email, 'not the password'], {});
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/\(UNAUTHORIZED 401\)/);
  });
});
