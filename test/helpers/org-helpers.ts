import { expect } from 'vitest';
import { addMember, type ApiResponse, type SignedUp, type TestApp } from './app';
import { isoSql } from './sql';

/** Shared by the organization, member and settings suites: small steps and assertions over REST and the database. */

export type Role = 'owner' | 'admin' | 'member';

export const SYSTEM_DEFAULT_PERMISSIONS = {
  default_role: 'member',
  allow_guests: false,
  allow_member_invites: true,
  visibility: 'organization',
} as const;

export const DEFAULT_EFFECTIVE = { permissions: SYSTEM_DEFAULT_PERMISSIONS, features: {}, integrations: {} };

/** POST /organizations as `token`; fails the test unless 201. */
export async function createOrganization(app: TestApp, token: string, body: { name: string; slug?: string }) {
  const res = await app.request('POST', '/api/v1/organizations', { token, body });
  expect(res.status, res.text).toBe(201);
  return res.body as { id: string; name: string; slug: string; created_at: string; updated_at: string; role: Role };
}

/** Adds each of `others` to `organizationId` in its role, one after another, as `owner`. */
export async function addMembers(app: TestApp, owner: SignedUp, organizationId: string, others: Array<[SignedUp, Role]>): Promise<void> {
  for (const [account, role] of others) await addMember(app, owner.token, organizationId, account, role);
}

let teamCounter = 0;
/**
 * A fresh organization owned by `owner`, with the given accounts added in the given roles
 * (so each test starts from a state of its own without new signups).
 */
export async function createTeam(app: TestApp, owner: SignedUp, others: Array<[SignedUp, Role]> = []): Promise<string> {
  const org = await createOrganization(app, owner.token, { name: `Team ${Date.now().toString(36)} ${++teamCounter}` });
  await addMembers(app, owner, org.id, others);
  return org.id;
}

/** Every membership of an organization as `{ user_id: role }`. */
export async function rolesIn(app: TestApp, organizationId: string): Promise<Record<string, Role>> {
  const rows = await app.query<{ user_id: string; role: Role }>('select user_id, role from memberships where organization_id = $1', [
    organizationId,
  ]);
  return Object.fromEntries(rows.map((r) => [r.user_id, r.role]));
}

/** The organization's row as stored (null when gone). */
export async function organizationRow(app: TestApp, organizationId: string) {
  const [row] = await app.query<{ id: string; name: string; slug: string; settings: unknown; created_at: string; updated_at: string }>(
    `select id, name, slug, settings, ${isoSql('created_at')} as created_at, ${isoSql('updated_at')} as updated_at from organizations where id = $1`,
    [organizationId],
  );
  return row ?? null;
}

/** Follows `next_cursor` from the first page to the last; returns every page. */
export async function walkPages<T>(
  fetchPage: (cursor: string | undefined) => Promise<ApiResponse<{ items: T[]; next_cursor: string | null }>>,
) {
  const pages: Array<{ items: T[]; next_cursor: string | null }> = [];
  let cursor: string | undefined;
  for (let i = 0; i < 100; i++) {
    const res = await fetchPage(cursor);
    expect(res.status, res.text).toBe(200);
    pages.push(res.body);
    if (res.body.next_cursor === null) return pages;
    cursor = res.body.next_cursor;
  }
  throw new Error('pagination did not end within 100 pages');
}

/** The same cursor with its signed payload changed (the signature left as it was). */
export function tamperCursor(cursor: string): string {
  const [payload, signature] = cursor.split('.');
  const decoded = JSON.parse(Buffer.from(payload!, 'base64url').toString('utf8')) as { p: unknown[]; f: string };
  decoded.p[0] = '1970-01-01T00:00:00.000Z';
  return `${Buffer.from(JSON.stringify(decoded)).toString('base64url')}.${signature}`;
}
