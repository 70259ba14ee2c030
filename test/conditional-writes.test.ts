import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './helpers/app';
import { createWorkspace, teamOf, workspaceRow, type Team, type WorkspaceBody } from './helpers/workspace-helpers';
import { expectApiError } from './helpers/errors';

/** If-Match beyond one strong tag: lists, weak tags, and what a non-member learns from a bad header. */
let app: TestApp;
let team: Team;

beforeAll(async () => {
  app = await startTestApp();
  team = await teamOf(app);
});
afterAll(async () => {
  await app?.close();
});

async function freshWorkspace(): Promise<WorkspaceBody> {
  return createWorkspace(app, team.owner.token, team.organizationId);
}

const rename = (id: string, ifMatch: string, token = team.owner.token) =>
  app.request('PUT', `/api/v1/workspaces/${id}`, {
    token,
    headers: { 'If-Match': ifMatch },
    body: { description: `set under ${ifMatch}` },
  });

describe('PUT /api/v1/workspaces/{id} with If-Match', () => {
  it('applies when a list of tags holds the current version', async () => {
    const ws = await freshWorkspace();
    const res = await rename(ws.id, '"7", "1"');
    expect(res.status, res.text).toBe(200);
    expect(res.body.version).toBe(2);
    expect(res.headers.get('etag')).toBe('"2"');
    expect((await workspaceRow(app, ws.id))!.description).toBe('set under "7", "1"');
  });

  it('answers 412 when no tag of the list is current, and changes nothing', async () => {
    const ws = await freshWorkspace();
    const res = await rename(ws.id, '"2", "3"');
    expectApiError(res, 412, 'PRECONDITION_FAILED');
    expect((await workspaceRow(app, ws.id))!.version).toBe(1);
    expect((await workspaceRow(app, ws.id))!.description).toBeNull();
  });

  it('never matches a weak tag (If-Match compares strongly): 412', async () => {
    const ws = await freshWorkspace();
    const res = await rename(ws.id, 'W/"1"');
    expectApiError(res, 412, 'PRECONDITION_FAILED');
    expect((await workspaceRow(app, ws.id))!.version).toBe(1);
  });

  it('answers 400 to a malformed header from a member who may write', async () => {
    const ws = await freshWorkspace();
    for (const header of ['1', '"1', 'abc', '"1",,']) {
      const res = await rename(ws.id, header);
      expectApiError(res, 400, 'BAD_REQUEST');
    }
    expect((await workspaceRow(app, ws.id))!.version).toBe(1);
  });

  it('answers 404 to a non-member whatever the header says, malformed included', async () => {
    const ws = await freshWorkspace();
    for (const header of ['"1"', '"9"', 'garbage', '*']) {
      const res = await rename(ws.id, header, team.outsider.token);
      expectApiError(res, 404, 'NOT_FOUND');
    }
    expect((await workspaceRow(app, ws.id))!.version).toBe(1);
  });

  it('answers 400 when If-Match names one version and expected_version another', async () => {
    const ws = await freshWorkspace();
    const res = await app.request('PUT', `/api/v1/workspaces/${ws.id}`, {
      token: team.owner.token,
      headers: { 'If-Match': '"1"' },
      body: { name: 'Both given', expected_version: 2 },
    });
    expectApiError(res, 400, 'BAD_REQUEST');
    expect((await workspaceRow(app, ws.id))!.name).toBe(ws.name);
  });
});

describe('DELETE /api/v1/workspaces/{id} with If-Match', () => {
  it('deletes under a list holding the current version', async () => {
    const ws = await freshWorkspace();
    const res = await app.request('DELETE', `/api/v1/workspaces/${ws.id}`, {
      token: team.admin.token,
      headers: { 'If-Match': '"3", "1"' },
    });
    expect(res.status, res.text).toBe(204);
    expect(await workspaceRow(app, ws.id)).toBeNull();
  });
});
