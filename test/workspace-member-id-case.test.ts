import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addMember, startTestApp, type TestApp } from './helpers/app';
import { createWorkspace, teamOf, type Team } from './helpers/workspace-helpers';

/**
 * A user id in a path or query is a UUID, and a UUID in upper-case hex is the same UUID (the
 * document's pattern allows it; every lookup treats it so). The checks that ask "is this the
 * caller itself?" must read it the same way: the caller's own id in upper case is still the
 * caller (found while writing the fuzz specs: leaving a workspace or reading one's own access with it was
 * 403 for a member, and the access answer echoed the id as sent).
 */
let app: TestApp;
let team: Team;
beforeAll(async () => {
  app = await startTestApp();
  team = await teamOf(app);
});
afterAll(async () => {
  await app?.close();
});

const api = (path: string) => `/api/v1${path}`;

describe('the caller named by its own id in upper case', () => {
  it('may read its own access (200, ids answered in lower case), as with the id in lower case', async () => {
    const { member } = team;
    const workspace = await createWorkspace(app, team.owner.token, team.organizationId);
    for (const id of [member.user.id, member.user.id.toUpperCase()]) {
      const res = await app.request('GET', api(`/workspaces/${workspace.id.toUpperCase()}/access?user_id=${id}`), { token: member.token });
      expect(res.status, res.text).toBe(200);
      expect(res.body).toEqual({
        workspace_id: workspace.id,
        user_id: member.user.id,
        role: 'member',
        source: 'organization_visibility',
        guest: false,
      });
    }
  });

  it('may leave a workspace (204), removing its own membership', async () => {
    const { member } = team;
    const workspace = await createWorkspace(app, team.owner.token, team.organizationId);
    const added = await app.request('POST', api(`/workspaces/${workspace.id}/members`), {
      token: team.owner.token,
      body: { user_id: member.user.id, role: 'viewer' },
    });
    expect(added.status, added.text).toBe(201);
    const left = await app.request('DELETE', api(`/workspaces/${workspace.id}/members/${member.user.id.toUpperCase()}`), {
      token: member.token,
    });
    expect(left.status, left.text).toBe(204);
    expect(await app.query('select 1 from workspace_members where workspace_id = $1', [workspace.id])).toEqual([]);
  });

  it('may leave an organization (204), as its own id in lower case does', async () => {
    const { owner, outsider } = team;
    const org = await app.request('POST', api('/organizations'), { token: owner.token, body: { name: 'Case Team' } });
    expect(org.status, org.text).toBe(201);
    await addMember(app, owner.token, org.body.id, outsider, 'member');
    const left = await app.request('DELETE', api(`/organizations/${org.body.id}/members/${outsider.user.id.toUpperCase()}`), {
      token: outsider.token,
    });
    expect(left.status, left.text).toBe(204);
  });
});
