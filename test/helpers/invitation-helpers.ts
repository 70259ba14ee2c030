import { createHash } from 'node:crypto';
import { expect } from 'vitest';
import type { TestApp } from './app';
import { isoSql } from './sql';
import { ISO_MS_PATTERN, UUID_PATTERN } from './values';

/** Invitations as the API answers and the database stores them (README, Invitations and guests). */

export type InvitationStatus = 'pending' | 'accepted' | 'declined' | 'revoked' | 'expired';

/** An invitation as the API answers it: exactly these keys. */
export interface InvitationBody {
  id: string;
  organization_id: string;
  workspace_id: string | null;
  email: string;
  role: string;
  kind: 'member' | 'guest';
  status: InvitationStatus;
  invited_by: string | null;
  expires_at: string;
  created_at: string;
  accepted_at: string | null;
  accepted_user_id: string | null;
}

export const INVITATION_KEYS = [
  'accepted_at',
  'accepted_user_id',
  'created_at',
  'email',
  'expires_at',
  'id',
  'invited_by',
  'kind',
  'organization_id',
  'role',
  'status',
  'workspace_id',
] as const;

/** What preview answers: these five fields and nothing else. */
export const PREVIEW_KEYS = ['expires_at', 'organization_name', 'role', 'status', 'workspace_name'] as const;

/** `{organization_id, workspace_id, user_id, role, guest}`: accept's `membership`. */
export const MEMBERSHIP_KEYS = ['guest', 'organization_id', 'role', 'user_id', 'workspace_id'] as const;

/** The token's form: 256 random bits, base64url, 43 characters. */
export const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/** The one message of every unknown, malformed, used, revoked or declined token on accept and decline. */
export const NOT_FOUND_MESSAGE = 'Invitation not found';
export const OTHER_EMAIL_MESSAGE = 'This invitation is for another email address';
export const pendingMessage = (id: string) => `An invitation to this email is already pending (${id})`;

/** Hex SHA-256, as the service stores a token. */
export const sha256Hex = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

/** Asserts an invitation answer's shape: exactly the contract's keys, ids and timestamps in the API's formats. */
export function expectInvitationShape(invitation: Record<string, unknown>): asserts invitation is InvitationBody & Record<string, unknown> {
  expect(Object.keys(invitation).sort(), JSON.stringify(invitation)).toEqual([...INVITATION_KEYS]);
  expect(invitation.id).toMatch(UUID_PATTERN);
  expect(invitation.organization_id).toMatch(UUID_PATTERN);
  expect(invitation.expires_at).toMatch(ISO_MS_PATTERN);
  expect(invitation.created_at).toMatch(ISO_MS_PATTERN);
  if (invitation.accepted_at !== null) expect(invitation.accepted_at).toMatch(ISO_MS_PATTERN);
  expect(['member', 'guest']).toContain(invitation.kind);
  expect(['pending', 'accepted', 'declined', 'revoked', 'expired']).toContain(invitation.status);
}

/** The invitation's row as stored (timestamps rendered the API's way), or null when there is none. */
export interface InvitationRow {
  id: string;
  organization_id: string;
  workspace_id: string | null;
  email: string;
  role: string;
  kind: string;
  status: string;
  token_hash: string;
  invited_by: string | null;
  expires_at: string;
  created_at: string;
  accepted_at: string | null;
  accepted_user_id: string | null;
}

const ROW_COLUMNS = `id, organization_id, workspace_id, email, role, kind, status, token_hash, invited_by,
  ${isoSql('expires_at')} as expires_at, ${isoSql('created_at')} as created_at,
  case when accepted_at is null then null else ${isoSql('accepted_at')} end as accepted_at, accepted_user_id`;

export async function invitationRow(app: TestApp, id: string): Promise<InvitationRow | null> {
  const [row] = await app.query<InvitationRow>(`select ${ROW_COLUMNS} from invitations where id = $1`, [id]);
  return row ?? null;
}

/** Every invitation of an organization (its workspaces' included), oldest first. */
export const invitationRows = (app: TestApp, organizationId: string) =>
  app.query<InvitationRow>(`select ${ROW_COLUMNS} from invitations where organization_id = $1 order by created_at, id`, [organizationId]);

export async function invitationCount(app: TestApp, organizationId: string): Promise<number> {
  const [row] = await app.query<{ n: number }>('select count(*)::int as n from invitations where organization_id = $1', [organizationId]);
  return row!.n;
}

export interface StoredInvitationEvent {
  action: string;
  actor_id: string;
  workspace_id: string | null;
  target_type: string;
  target_id: string;
  changes: Record<string, { from: unknown; to: unknown }>;
}

/** The events whose target is `targetId` (an invitation or a member), oldest first. */
export const eventsOf = (app: TestApp, organizationId: string, targetId: string) =>
  app.query<StoredInvitationEvent>(
    `select action, actor_id, workspace_id, target_type, target_id, changes from audit_events
      where organization_id = $1 and target_id = $2 order by created_at, action`,
    [organizationId, targetId],
  );

export async function eventCount(app: TestApp, organizationId: string): Promise<number> {
  const [row] = await app.query<{ n: number }>('select count(*)::int as n from audit_events where organization_id = $1', [organizationId]);
  return row!.n;
}

/** The user's organization role there, or null. */
export async function organizationRoleOf(app: TestApp, organizationId: string, userId: string): Promise<string | null> {
  const [row] = await app.query<{ role: string }>('select role from memberships where organization_id = $1 and user_id = $2', [
    organizationId,
    userId,
  ]);
  return row?.role ?? null;
}

/** The user's explicit role in the workspace, or null. */
export async function workspaceRoleOf(app: TestApp, workspaceId: string, userId: string): Promise<string | null> {
  const [row] = await app.query<{ role: string }>('select role from workspace_members where workspace_id = $1 and user_id = $2', [
    workspaceId,
    userId,
  ]);
  return row?.role ?? null;
}

/** What one invitation leaves that a refused request must not change: its row, memberships and events of its organization. */
export async function organizationSnapshot(app: TestApp, organizationId: string) {
  return {
    invitations: await invitationRows(app, organizationId),
    memberships: await app.query('select user_id, role from memberships where organization_id = $1 order by user_id', [organizationId]),
    workspaceMembers: await app.query(
      `select wm.workspace_id, wm.user_id, wm.role from workspace_members wm join workspaces w on w.id = wm.workspace_id
        where w.organization_id = $1 order by wm.workspace_id, wm.user_id`,
      [organizationId],
    ),
    events: await eventCount(app, organizationId),
  };
}

/** The median of some numbers. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Every row of every table of the public schema as JSON text (to search a secret in the whole database). */
export async function wholeDatabaseText(app: TestApp): Promise<string[]> {
  const tables = await app.query<{ table_name: string }>(
    "select table_name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE'",
  );
  const texts: string[] = [];
  for (const { table_name } of tables) {
    const rows = await app.query<{ t: string }>(`select row_to_json(x)::text as t from "${table_name}" x`);
    for (const row of rows) texts.push(`${table_name}: ${row.t}`);
  }
  return texts;
}
