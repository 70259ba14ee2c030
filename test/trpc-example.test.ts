import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

describe('examples/trpc-client.ts', () => {
  it('runs its session against the service with an existing account and exits 0', async () => {
    const account = await signup(app, 'Example');
    const result = await runScript('examples/trpc-client.ts', [app.url, account.user.email, account.password], {});

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
    expect(result.stdout).toContain('example finished');

    // One workspace for the two creates with one Idempotency-Key, renamed once; nothing provisioned.
    const rows = await app.query<{ name: string; version: number; settings: unknown }>(
      'select name, version, settings from workspaces where organization_id = $1 and not is_default',
      [account.organization.id],
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ version: 2, settings: {} });
    expect(rows[0]!.name).toMatch(/^tRPC example [0-9a-f]{8} \(renamed\)$/);
  });

  it('signs up an account of its own when given only the URL (from WORKSPACES_URL)', async () => {
    const result = await runScript('examples/trpc-client.ts', [], { WORKSPACES_URL: app.url });
    expect(result.stderr, result.stdout).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('example finished');
    const [user] = await app.query<{ count: number }>("select count(*)::int as count from users where email like 'trpc-example-%'");
    expect(user!.count).toBe(1);
  });

  it('exits 1 with one line when the service refuses it', async () => {
    const account = await signup(app, 'Wrong');
    const result = await runScript('examples/trpc-client.ts', [app.url, account.user.email, 'not the password'], {});
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/\(UNAUTHORIZED 401\)/);
  });
});
