/**
 * The baseline: the least a server must do to answer the service's read routes correctly. Plain
 * `node:http`, no framework; the same checks as the service (an HS256 JWT verified with a
 * pinned algorithm and a KeyObject, iss/aud/exp/iat, the user and its token version, the
 * caller's access to the workspace by README's Workspace access rules) and the same answers
 * (bodies, ETag, Cache-Control: no-store, 401 before 404), with **one** hand-written prepared
 * statement per request. The ratio service/baseline is then what the service's layers cost over
 * that floor on this machine, today.
 *
 * Access, as the service decides it: a user's effective role in a workspace is the highest of
 * what their organization role gives (owner/admin → admin), their explicit workspace_members
 * row, and — for any member of the organization in a workspace whose effective_visibility is
 * `organization` — its effective_default_role; with none, the workspace does not exist for
 * them (404). `roleRank` is that rule in SQL; the lists select exactly the rows it admits.
 *
 * It answers only what the bench sends: GET /api/v1/workspaces/{id}, …/{id}/settings,
 * /api/v1/workspaces (active workspaces in created_at order, optional organization_id, limit, cursor) and tRPC
 * `workspaces.get` in httpBatchLink's wire format. Anything else it refuses plainly.
 *
 * Env: BASELINE_PORT, BASELINE_DATABASE_URL, BASELINE_JWT_SECRET (the service's JWT_SECRET:
 * the cursor codec derives its key from it as the service does, so a cursor means the same).
 * @module
 */
import { createSecretKey } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import jwt from 'jsonwebtoken';
import postgres from 'postgres';
import type { SettingsLayer } from '../src/db/schema/settings-layer';
import { createCursorCodec } from '../src/lib/cursor';
import { resolveEffectiveSettings } from '../src/modules/settings/resolve';

const port = Number(process.env.BASELINE_PORT);
const databaseUrl = process.env.BASELINE_DATABASE_URL;
const secret = process.env.BASELINE_JWT_SECRET;
if (!port || !databaseUrl || !secret) throw new Error('BASELINE_PORT, BASELINE_DATABASE_URL and BASELINE_JWT_SECRET are required');

/** As the service's defaults (JWT_ISSUER, JWT_AUDIENCE, TOKEN_MAX_LIFETIME). */
const ISSUER = 'workspaces-api';
const AUDIENCE = 'workspaces-api';
const MAX_LIFETIME_SECONDS = 86_400;
const CLOCK_SKEW_SECONDS = 60;

const key = createSecretKey(Buffer.from(secret));
const cursors = createCursorCodec(Buffer.from(secret));
// The service's pool size; prepared statements, as the service uses by default.
const sql = postgres(databaseUrl, { max: 10, prepare: true, onnotice: () => {} });

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const BEARER = /^Bearer +([A-Za-z0-9\-_]+\.[A-Za-z0-9\-_]+\.[A-Za-z0-9\-_]*)$/i;

type Code = 'BAD_REQUEST' | 'UNAUTHORIZED' | 'NOT_FOUND' | 'METHOD_NOT_SUPPORTED';
const STATUS: Record<Code, number> = { BAD_REQUEST: 400, UNAUTHORIZED: 401, NOT_FOUND: 404, METHOD_NOT_SUPPORTED: 405 };
/** tRPC's JSON-RPC error numbers for these codes. */
const RPC_CODE: Record<Code, number> = { BAD_REQUEST: -32600, UNAUTHORIZED: -32001, NOT_FOUND: -32004, METHOD_NOT_SUPPORTED: -32005 };

class Refusal extends Error {
  constructor(
    readonly code: Code,
    message: string,
  ) {
    super(message);
  }
}

interface Caller {
  userId: string;
  tokenVersion: number;
}

/** The service's checks of one of its own tokens, in its order, with its messages. */
function authenticate(authorization: string | undefined): Caller {
  if (!authorization) throw new Refusal('UNAUTHORIZED', 'Missing Authorization header (expected "Bearer <access_token>")');
  const match = BEARER.exec(authorization.trim());
  if (!match) throw new Refusal('UNAUTHORIZED', 'Malformed Authorization header (expected "Bearer <access_token>")');
  let payload: string | jwt.JwtPayload;
  try {
    payload = jwt.verify(match[1]!, key, { algorithms: ['HS256'], issuer: ISSUER, audience: AUDIENCE });
  } catch (error) {
    if (error instanceof jwt.TokenExpiredError) throw new Refusal('UNAUTHORIZED', 'The access token has expired');
    // jsonwebtoken says "invalid token" when the token does not decode, which the service reports as malformed.
    if (error instanceof jwt.JsonWebTokenError && error.message === 'invalid token') {
      throw new Refusal('UNAUTHORIZED', 'The access token is malformed');
    }
    throw new Refusal('UNAUTHORIZED', 'The access token is invalid');
  }
  if (typeof payload === 'string') throw new Refusal('UNAUTHORIZED', 'The access token is malformed');
  const { sub, iat, exp, tv } = payload;
  if (typeof exp !== 'number' || typeof iat !== 'number' || typeof sub !== 'string' || sub === '') {
    throw new Refusal('UNAUTHORIZED', 'The access token is missing required claims (sub, iat, exp)');
  }
  if (iat > Date.now() / 1000 + CLOCK_SKEW_SECONDS) throw new Refusal('UNAUTHORIZED', 'The access token is issued in the future (iat)');
  if (exp - iat > MAX_LIFETIME_SECONDS) {
    throw new Refusal('UNAUTHORIZED', `The access token claims a lifetime over ${MAX_LIFETIME_SECONDS} s (exp - iat)`);
  }
  if (sub.length > 255 || sub.includes('\u0000') || !sub.isWellFormed()) {
    throw new Refusal('UNAUTHORIZED', 'The access token has an unusable subject (sub)');
  }
  if (!Number.isInteger(tv)) throw new Refusal('UNAUTHORIZED', 'The access token is missing required claims (tv)');
  if (!UUID.test(sub)) throw new Refusal('UNAUTHORIZED', 'The access token is invalid');
  return { userId: sub, tokenVersion: tv as number };
}

/** The user check every query starts with: no row is an unknown user, another version a revoked token (both 401, before any 404). */
function checkUser(row: { tv: number | null } | undefined, caller: Caller): void {
  if (!row) throw new Refusal('UNAUTHORIZED', 'The account no longer exists');
  if (row.tv !== caller.tokenVersion) throw new Refusal('UNAUTHORIZED', 'The access token has been revoked');
}

/** The service validates its input after authenticating (a deleted user's bad request is 401): so does this. */
async function refuseInput(caller: Caller, message: string): Promise<never> {
  const rows = await sql<{ tv: number }[]>`select token_version as tv from users where id = ${caller.userId}`;
  checkUser(rows[0], caller);
  throw new Refusal('BAD_REQUEST', message);
}

interface WorkspaceRow {
  id: string;
  organization_id: string;
  name: string;
  slug: string;
  description: string | null;
  metadata: Record<string, string>;
  is_default: boolean;
  cloned_from_id: string | null;
  archived_at: Date | null;
  version: number;
  created_at: Date;
  updated_at: Date;
}

const toWorkspace = (row: WorkspaceRow) => ({
  id: row.id,
  organization_id: row.organization_id,
  name: row.name,
  slug: row.slug,
  description: row.description,
  metadata: row.metadata,
  is_default: row.is_default,
  cloned_from_id: row.cloned_from_id,
  archived_at: row.archived_at ? row.archived_at.toISOString() : null,
  version: row.version,
  created_at: row.created_at.toISOString(),
  updated_at: row.updated_at.toISOString(),
});

/**
 * The caller's effective role in workspace `w` as a rank (3 admin, 2 member, 1 viewer; null: no
 * access), from their membership `m` of its organization and their workspace_members row `wm`
 * (which counts for a guest, outside the organization, only while the workspace allows guests).
 */
const roleRank = sql`greatest(
      case when m.role in ('owner', 'admin') then 3 end,
      case when m.role is not null or w.effective_allow_guests then case wm.role when 'admin' then 3 when 'member' then 2 when 'viewer' then 1 end end,
      case when m.role is not null and w.effective_visibility = 'organization'
        then case w.effective_default_role when 'admin' then 3 when 'member' then 2 when 'viewer' then 1 end end)`;

type UserAndRank = { tv: number | null; rank: number | null };

/** One query: the user's token version, the workspace, and the caller's effective role in it. */
async function getWorkspace(caller: Caller, workspaceId: string) {
  if (!UUID.test(workspaceId)) return refuseInput(caller, 'Invalid input: workspace_id: Invalid UUID');
  const [row] = await sql<(UserAndRank & WorkspaceRow)[]>`
    select u.token_version as tv, ${roleRank} as rank, w.id, w.organization_id, w.name, w.slug, w.description,
           w.metadata, w.is_default, w.cloned_from_id, w.archived_at, w.version, w.created_at, w.updated_at
    from users u
    left join workspaces w on w.id = ${workspaceId}
    left join memberships m on m.organization_id = w.organization_id and m.user_id = u.id
    left join workspace_members wm on wm.workspace_id = w.id and wm.user_id = u.id
    where u.id = ${caller.userId}`;
  checkUser(row, caller);
  if (!row!.rank) throw new Refusal('NOT_FOUND', 'Workspace not found');
  return toWorkspace(row!);
}

/** One query: as getWorkspace, plus the organization's settings layer; resolved by the service's own pure function. */
async function getSettings(caller: Caller, workspaceId: string) {
  if (!UUID.test(workspaceId)) return refuseInput(caller, 'Invalid input: workspace_id: Invalid UUID');
  type Row = UserAndRank & {
    id: string | null;
    version: number;
    settings: SettingsLayer;
    organization_settings: SettingsLayer | null;
    organization_locks: string[] | null;
  };
  const [row] = await sql<Row[]>`
    select u.token_version as tv, ${roleRank} as rank, w.id, w.version, w.settings, o.settings as organization_settings,
           o.settings_locks as organization_locks
    from users u
    left join workspaces w on w.id = ${workspaceId}
    left join memberships m on m.organization_id = w.organization_id and m.user_id = u.id
    left join workspace_members wm on wm.workspace_id = w.id and wm.user_id = u.id
    left join organizations o on o.id = w.organization_id
    where u.id = ${caller.userId}`;
  checkUser(row, caller);
  if (!row!.rank) throw new Refusal('NOT_FOUND', 'Workspace not found');
  const { effective, sources, locked, shadowed } = resolveEffectiveSettings(
    row!.organization_settings ?? {},
    row!.settings,
    row!.organization_locks ?? [],
  );
  return { workspace_id: row!.id, version: row!.version, effective, overrides: row!.settings, sources, locked, shadowed };
}

const WORKSPACE_COLUMNS = sql`w.id, w.organization_id, w.name, w.slug, w.description, w.metadata, w.is_default,
  w.cloned_from_id, w.archived_at, w.version, w.created_at, w.updated_at`;

/**
 * One query: the user, (with organization_id) the caller's role in it, and one keyset page in
 * the service's order (created_at, id) ascending, limit + 1 rows to know whether more follow.
 * The cursor codec is the service's, with the same filters, so cursors are interchangeable.
 *
 * Which rows: in one organization, all of them for its owners and admins; for a plain member,
 * the workspaces visible to the organization and the private ones they hold an explicit
 * membership of — two keyset scans, each stopped at the page's size, merged. Across
 * organizations, the workspaces of the caller's organizations their role admits, and those of
 * other organizations they are a guest in (README, Invitations and guests). The row count
 * is written into the statement, not bound: a prepared statement's generic plan cannot see a
 * bound LIMIT and would walk a whole organization to find a member's few private workspaces.
 */
async function listWorkspaces(caller: Caller, query: URLSearchParams) {
  for (const name of query.keys()) {
    if (!['organization_id', 'limit', 'cursor'].includes(name)) return refuseInput(caller, `The baseline does not take "${name}"`);
  }
  const organizationId = query.get('organization_id') ?? undefined;
  const limitText = query.get('limit') ?? '20';
  const cursor = query.get('cursor') ?? undefined;
  if (organizationId !== undefined && !UUID.test(organizationId))
    return refuseInput(caller, 'Invalid input: organization_id: Invalid UUID');
  if (!/^\d{1,3}$/.test(limitText) || Number(limitText) < 1 || Number(limitText) > 100) {
    return refuseInput(caller, 'Invalid input: limit: 1-100');
  }
  const limit = Number(limitText);
  const filters = {
    list: 'workspaces',
    actorId: caller.userId,
    organization_id: organizationId ?? null,
    q: null,
    sort: 'created_at',
    order: 'asc',
    archived: 'false',
  };
  let after: [string, string] | undefined;
  if (cursor !== undefined) {
    try {
      const [at, id] = cursors.decode(cursor, filters);
      after = [new Date(String(at)).toISOString(), String(id)];
    } catch {
      return refuseInput(caller, 'The cursor is invalid or was issued for a different query');
    }
  }
  const keyset = after ? sql`and (w.created_at, w.id) > (${after[0]}::timestamptz, ${after[1]}::uuid)` : sql``;
  const take = sql.unsafe(String(limit + 1));
  type Row = { tv: number | null; role: string | null } & { [K in keyof WorkspaceRow]: WorkspaceRow[K] | null };
  // The user and role checks ride along in the same statement; a role's branches run only for that role.
  const rows = organizationId
    ? await sql<Row[]>`
        select u.token_version as tv, m.role, ${WORKSPACE_COLUMNS}
        from users u
        left join memberships m on m.organization_id = ${organizationId} and m.user_id = u.id
        left join lateral (
          select * from (
            (select w.* from workspaces w
              where m.role in ('owner', 'admin') and w.organization_id = ${organizationId} and w.archived_at is null ${keyset}
              order by w.created_at, w.id limit ${take})
            union all
            (select w.* from workspaces w
              where m.role = 'member' and w.organization_id = ${organizationId} and w.effective_visibility = 'organization'
                and w.archived_at is null ${keyset}
              order by w.created_at, w.id limit ${take})
            union all
            (select w.* from workspace_members wm join workspaces w on w.id = wm.workspace_id
              where m.role = 'member' and wm.user_id = u.id and w.organization_id = ${organizationId}
                and w.effective_visibility <> 'organization' and w.archived_at is null ${keyset}
              order by w.created_at, w.id limit ${take})
          ) page
          order by page.created_at, page.id limit ${take}
        ) w on true
        where u.id = ${caller.userId}
        order by w.created_at, w.id`
    : await sql<Row[]>`
        select u.token_version as tv, null as role, ${WORKSPACE_COLUMNS}
        from users u
        left join lateral (
          select * from (
            (select w.* from workspaces w
              join memberships m on m.organization_id = w.organization_id and m.user_id = ${caller.userId}
              left join workspace_members wm on wm.workspace_id = w.id and wm.user_id = ${caller.userId}
              where w.archived_at is null ${keyset} and ${roleRank} is not null
              order by w.created_at, w.id limit ${take})
            union all
            (select w.* from workspace_members wm join workspaces w on w.id = wm.workspace_id
              left join memberships m on m.organization_id = w.organization_id and m.user_id = ${caller.userId}
              where wm.user_id = ${caller.userId} and m.user_id is null and w.effective_allow_guests
                and w.archived_at is null ${keyset}
              order by w.created_at, w.id limit ${take})
          ) page
          order by page.created_at, page.id limit ${take}
        ) w on true
        where u.id = ${caller.userId}
        order by w.created_at, w.id`;
  checkUser(rows[0], caller);
  if (organizationId && !rows[0]!.role) throw new Refusal('NOT_FOUND', 'Organization not found');
  const found = rows.filter((row) => row.id !== null) as unknown as WorkspaceRow[];
  const page = found.slice(0, limit);
  const last = page.at(-1);
  return {
    items: page.map(toWorkspace),
    next_cursor: found.length > limit && last ? cursors.encode([last.created_at.toISOString(), last.id], filters) : null,
  };
}

const REST_HEADERS = { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' };

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string>): void {
  res.writeHead(status, headers);
  res.end(JSON.stringify(body));
}

function sendRestError(res: ServerResponse, error: unknown): void {
  const refusal = error instanceof Refusal ? error : undefined;
  if (!refusal) process.stderr.write(`baseline: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  const code = refusal?.code;
  const status = code ? STATUS[code] : 500;
  const body = { code: code ?? 'INTERNAL_SERVER_ERROR', message: refusal?.message ?? 'Internal server error' };
  send(res, status, body, status === 401 ? { ...REST_HEADERS, 'WWW-Authenticate': 'Bearer' } : REST_HEADERS);
}

/** `GET /trpc/workspaces.get?batch=1&input={"0":{"workspace_id":"…"}}`, answered as @trpc/server does for httpBatchLink. */
async function trpcGet(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
  const headers = { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' };
  try {
    const caller = authenticate(req.headers.authorization);
    let workspaceId: unknown;
    try {
      workspaceId = (JSON.parse(query.get('input') ?? 'null') as Record<string, { workspace_id?: unknown }> | null)?.['0']?.workspace_id;
    } catch {
      workspaceId = undefined;
    }
    if (query.get('batch') !== '1' || typeof workspaceId !== 'string')
      return await refuseInput(caller, 'The baseline takes one batched call');
    send(res, 200, [{ result: { data: await getWorkspace(caller, workspaceId) } }], headers);
  } catch (error) {
    if (!(error instanceof Refusal)) {
      process.stderr.write(`baseline: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      send(res, 500, [{ error: { code: -32603, message: 'Internal server error' } }], headers);
      return;
    }
    const status = STATUS[error.code];
    const body = [
      {
        error: {
          code: RPC_CODE[error.code],
          message: error.message,
          data: { code: error.code, httpStatus: status, path: 'workspaces.get' },
        },
      },
    ];
    send(res, status, body, status === 401 ? { ...headers, 'WWW-Authenticate': 'Bearer' } : headers);
  }
}

const ITEM = /^\/api\/v1\/workspaces\/([^/]+)(\/settings)?\/?$/;

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
  if (path === '/healthz') return send(res, 200, { status: 'ok' }, REST_HEADERS);
  if (path === '/trpc/workspaces.get' && req.method === 'GET') return trpcGet(req, res, query);
  try {
    if (req.method !== 'GET') throw new Refusal('METHOD_NOT_SUPPORTED', `${req.method} is not supported by the baseline`);
    if (path === '/api/v1/workspaces' || path === '/api/v1/workspaces/') {
      return send(res, 200, await listWorkspaces(authenticate(req.headers.authorization), query), REST_HEADERS);
    }
    const item = ITEM.exec(path);
    if (!item) throw new Refusal('NOT_FOUND', `No endpoint at ${req.method} ${path}`);
    const caller = authenticate(req.headers.authorization);
    const id = decodeURIComponent(item[1]!);
    if (item[2]) {
      const settings = await getSettings(caller, id);
      return send(res, 200, settings, { ...REST_HEADERS, ETag: `"${settings.version}"` });
    }
    const workspace = await getWorkspace(caller, id);
    send(res, 200, workspace, { ...REST_HEADERS, ETag: `"${workspace.version}"` });
  } catch (error) {
    sendRestError(res, error);
  }
}

const server = createServer((req, res) => {
  // GET requests only: any body is drained so the connection stays usable.
  req.resume();
  handle(req, res).catch((error: unknown) => sendRestError(res, error));
});
server.listen(port, '127.0.0.1');

const shutdown = () => {
  server.close();
  server.closeAllConnections();
  void sql.end({ timeout: 1 }).finally(() => process.exit(0));
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
