import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signup, startTestApp, type TestApp } from './helpers/app';

let app: TestApp;
beforeAll(async () => {
  app = await startTestApp();
});
afterAll(async () => {
  await app?.close();
});

describe('harness', () => {
  it('signs up over REST and reads me over tRPC', async () => {
    const account = await signup(app, 'Ann');
    const me = await app.trpc(account.token).auth.me.query();
    expect(me.user.id).toBe(account.user.id);
    const rows = await app.query<{ count: number }>('select count(*)::int as count from workspaces where organization_id = $1', [account.organization.id]);
    expect(rows[0]!.count).toBe(1);
  });
});
