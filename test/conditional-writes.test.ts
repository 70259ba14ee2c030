import { connect } from 'node:net';
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

/**
 * PUT /api/v1/workspaces/{id} with `If-Match: <value>` written byte for byte (latin1) on a raw
 * socket, so values a client library would refuse or clean up (a NBSP, a vertical tab) reach
 * the server as sent. Resolves with the status and the JSON body.
 */
function putWithRawIfMatch(id: string, value: string): Promise<{ status: number; body: unknown }> {
  const body = JSON.stringify({ description: 'set under a raw If-Match' });
  const request =
    `PUT /api/v1/workspaces/${id} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${team.owner.token}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nIf-Match: ${value}\r\nConnection: close\r\n\r\n${body}`;
  return new Promise((resolve, reject) => {
    const socket = connect(Number(new URL(app.url).port), '127.0.0.1', () => socket.write(Buffer.from(request, 'latin1')));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const answer = Buffer.concat(chunks).toString('utf8');
      const [head = '', ...rest] = answer.split('\r\n\r\n');
      let text = rest.join('\r\n\r\n');
      if (/^transfer-encoding: *chunked/im.test(head)) {
        let decoded = '';
        for (let at = 0; ;) {
          const end = text.indexOf('\r\n', at);
          const size = parseInt(text.slice(at, end), 16);
          if (!size) break;
          decoded += text.slice(end + 2, end + 2 + size);
          at = end + 2 + size + 2;
        }
        text = decoded;
      }
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]), body: text ? (JSON.parse(text) as unknown) : undefined });
    });
  });
}

describe('If-Match: the documented pattern is the rule the server applies', () => {
  /** A list of exactly `length` characters whose first tag is "1". */
  const listOfLength = (length: number) => `"1", "${'x'.repeat(length - 7)}"`;
  const NBSP = '\u00a0';
  /** The If-Match parameter's schema in the served document. */
  let schema: { pattern: string; maxLength: number };
  beforeAll(async () => {
    const res = await app.request('GET', '/openapi.json');
    expect(res.status).toBe(200);
    const put = (res.body as { paths: Record<string, Record<string, { parameters: Array<{ name: string; schema: typeof schema }> }>> })
      .paths['/workspaces/{workspace_id}']!.put!;
    schema = put.parameters.find((p) => p.name === 'If-Match')!.schema;
  });
  // [value, the status a workspace at version 1 answers]: 200 applied, 412 a valid header naming no
  // current version, 400 a header outside the grammar (nothing reaches the write).
  const cases: Array<[string, number]> = [
    ['"1"', 200],
    ['"1", W/"2"', 200],
    ['*', 200],
    ['"7",\t"1"', 200],
    ['"7"\t ,  "1"', 200],
    [' \t"1"\t ', 200],
    // A comma or a star inside a tag is part of the tag: not a separator, not the wildcard.
    ['"a,b", "1"', 200],
    ['"a*b"', 412],
    ['W/"1"', 412],
    [listOfLength(1024), 200],
    [listOfLength(1025), 400],
    // Whitespace that is not HTTP's optional whitespace (spaces and horizontal tabs).
    [`"1"${NBSP}`, 400],
    [`"7",${NBSP}"1"`, 400],
    [`${NBSP}"1"`, 400],
    // Control characters never reach the service: Node's HTTP parser refuses them (400 as well).
    ['"1"\v', 400],
    ['"1"\f', 400],
    ['"7",\r"1"', 400],
    ['"1", , "2"', 400],
    ['W/ "1"', 400],
    ['"1" "2"', 400],
    ['1', 400],
  ];

  /** The value as a test title: JSON, with every character outside printable ASCII escaped. */
  const label = (value: string) =>
    JSON.stringify(value)
      .replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
      .slice(0, 40);

  it.each(cases.map(([value, status]) => [label(value), value, status] as const))(
    '%s: the pattern and the server agree (%#)',
    async (_label, value, status) => {
      // JSON Schema patterns are ECMA-262 expressions, as ajv runs them (with the u flag).
      const documented = value.length <= schema.maxLength && new RegExp(schema.pattern, 'u').test(value);
      expect(documented, 'the documented pattern').toBe(status !== 400);

      const ws = await freshWorkspace();
      const res = await putWithRawIfMatch(ws.id, value);
      expect(res.status, JSON.stringify(res.body)).toBe(status);
      const row = (await workspaceRow(app, ws.id))!;
      if (status === 200) {
        expect(res.body).toMatchObject({ id: ws.id, version: 2, description: 'set under a raw If-Match' });
        expect(row).toMatchObject({ version: 2, description: 'set under a raw If-Match' });
      } else {
        const message =
          status === 412
            ? 'The workspace is at version 1; read it again and retry'
            : /[\v\f\r]/.test(value)
              ? 'The request is not valid HTTP'
              : 'If-Match must be * or a list of entity tags such as "3"';
        expect(res.body).toEqual({ code: status === 400 ? 'BAD_REQUEST' : 'PRECONDITION_FAILED', message });
        expect(row).toMatchObject({ version: 1, description: null });
      }
    },
  );
});
