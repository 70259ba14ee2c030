/**
 * The bench's database: created fresh beside the server's maintenance database, migrated by the
 * service's own migrations (the production build's migrate-cli), then seeded in bulk with
 * generate_series so 100,000 rows take seconds, not an API call each. Every column the schema
 * needs is written as the service would write it: name_key is the lower-cased name, slugs are
 * the name's slug (unique per organization), version 1, one default workspace per organization,
 * settings layers in the stored shape of src/db/schema/settings-layer.ts.
 * @module
 */
import jwt from 'jsonwebtoken';
import postgres from 'postgres';
import { hashPassword } from '../src/auth/passwords';
import type { BenchOptions } from './options';
import { baseEnv, runToEnd } from './processes';

export type Sql = postgres.Sql;

export function databaseUrl(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function createDatabase(adminUrl: string, name: string): Promise<void> {
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database "${name}"`);
  } finally {
    await admin.end();
  }
}

/** Drops it even with connections still open (a child killed mid-query, a pool not yet closed). */
export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`drop database if exists "${name}" with (force)`);
  } finally {
    await admin.end();
  }
}

export function migrate(url: string): Promise<void> {
  return runToEnd(process.execPath, ['dist/db/migrate-cli.js'], { ...baseEnv(), DATABASE_URL: url });
}

/** A user the bench calls as, with a token of its own and one carrying another token version (revoked). */
export interface BenchUser {
  id: string;
  token: string;
  revokedToken: string;
}

/** An organization with a sample of its workspaces (spread over its creation order). */
export interface SeededOrganization {
  id: string;
  size: number;
  workspaceIds: string[];
}

export interface Fixture {
  /** Member (admin) of every bench organization: a list across them sees organizations × workspaces. */
  bench: BenchUser;
  benchOrganizations: string[];
  /** Up to 1,000 of the bench user's workspaces, spread over its organizations. */
  benchWorkspaces: string[];
  /** Owner of the scale and provisioning organizations, which the bench user does not see. */
  scale: BenchUser;
  scaleSmall: SeededOrganization;
  scaleLarge: SeededOrganization;
  provisionEmpty: SeededOrganization;
  provisionFull: SeededOrganization;
  /** A workspace of provisionFull with settings overrides, the template of provisioning calls. */
  templateId: string;
  /** A workspace the bench user may not see (404 for it, in the service and the baseline). */
  outsiderWorkspaceId: string;
  /** A token signed with another secret (401 invalid). */
  forgedToken: string;
  /**
   * A plain member (role `member`) of scaleSmall, accessVisible and accessPrivate: what they
   * see is decided by each workspace's visibility and their explicit memberships alone.
   */
  member: BenchUser;
  /** A private workspace of scaleSmall the member has no explicit membership of (404 for them). */
  memberHiddenId: string;
  /** Every workspace visible to the organization (none overrides its visibility). */
  accessVisible: SeededOrganization;
  /**
   * Every workspace private (the organization's visibility); the member holds explicit
   * memberships of `memberOf` (spread over the creation order, viewer and member in turn), and
   * colleagues of other workspaces.
   */
  accessPrivate: SeededOrganization & { memberOf: Array<{ id: string; role: 'viewer' | 'member' }> };
}

/** The plain member's explicit memberships in accessPrivate, and how many colleagues hold as many each. */
export const EXPLICIT_MEMBERSHIPS = 20;
const COLLEAGUES = 49;

const ISSUER = 'workspaces-api';
const AUDIENCE = 'workspaces-api';

function sign(secret: string, userId: string, tokenVersion: number): string {
  return jwt.sign({ tv: tokenVersion }, Buffer.from(secret), {
    algorithm: 'HS256',
    subject: userId,
    issuer: ISSUER,
    audience: AUDIENCE,
    expiresIn: 3600,
  });
}

/** An organization's settings layer: a few permissions, feature flags and two integrations with config. */
const ORGANIZATION_SETTINGS = `jsonb_build_object(
  'permissions', jsonb_build_object(
    'default_role', (array['member', 'viewer', 'admin'])[1 + i % 3],
    'allow_guests', i % 4 = 0,
    'allow_member_invites', i % 3 <> 0),
  'features', jsonb_build_object('beta', i % 2 = 0, 'new_editor', true, 'audit_log', i % 5 = 0, 'ai_assist', i % 7 = 0),
  'integrations', jsonb_build_object(
    'slack', jsonb_build_object('enabled', true,
      'config', jsonb_build_object('channel', format('#org-%s', i), 'notify_on_create', true, 'retries', 3)),
    'github', jsonb_build_object('enabled', i % 2 = 1, 'config', jsonb_build_object('org', format('acme-%s', i)))))`;

/**
 * A workspace's overrides, in four realistic variants (none; features; permissions + an
 * integration's config; a flag + another integration). With `privateQuarter`, the third
 * variant makes the workspace private (a quarter of them); without, no workspace overrides its
 * visibility and the organization's decides.
 */
const workspaceSettings = (privateQuarter: boolean) => `case j % 4
  when 0 then '{}'::jsonb
  when 1 then jsonb_build_object('features', jsonb_build_object('beta', true, 'new_editor', j % 2 = 0))
  when 2 then jsonb_build_object(
    'permissions', jsonb_build_object(${privateQuarter ? "'visibility', 'private', " : ''}'allow_guests', false),
    'integrations', jsonb_build_object('slack', jsonb_build_object('config', jsonb_build_object('channel', format('#ws-%s', j)))))
  else jsonb_build_object(
    'features', jsonb_build_object('audit_log', true),
    'integrations', jsonb_build_object('jira', jsonb_build_object('enabled', true,
      'config', jsonb_build_object('project', format('WS%s', j), 'sync', true))))
  end`;

async function insertOrganizations(sql: Sql, slugs: string[], firstIndex: number): Promise<Map<string, string>> {
  const rows = await sql<{ id: string; slug: string }[]>`
    insert into organizations (name, slug, settings, created_at, updated_at)
    select initcap(replace(s.slug, '-', ' ')), s.slug, ${sql.unsafe(ORGANIZATION_SETTINGS)}, t, t
    from unnest(${slugs}::text[]) with ordinality as s(slug, n)
    cross join lateral (select (${firstIndex}::int + n::int) as i) x
    cross join lateral (select timestamptz '2023-06-01' + i * interval '1 day' as t) y
    returning id, slug`;
  return new Map(rows.map((row) => [row.slug, row.id]));
}

/**
 * One of the derived access columns (`effective_visibility`, `effective_default_role`) as the
 * service writes it (modules/workspaces/access.ts, and migration 0005's backfill): the
 * workspace's override, else the organization's value, else the default; a lock of the key or
 * of all of permissions keeps the organization's value.
 */
const derived = (key: 'visibility' | 'default_role', fallback: string) => `case
  when org.settings_locks ? 'permissions' or org.settings_locks ? 'permissions.${key}'
    then coalesce(org.settings #>> '{permissions,${key}}', '${fallback}')
  else coalesce(s.settings #>> '{permissions,${key}}', org.settings #>> '{permissions,${key}}', '${fallback}') end`;

/**
 * `perOrganization` workspaces in each of the organizations, created over time with the
 * organizations interleaved (workspace j of every organization, then j + 1…), as tenants
 * working side by side would; `epoch` keeps separate groups' timestamps apart. A quarter of
 * them override their visibility to private unless `privateQuarter` is false.
 */
async function insertWorkspaces(
  sql: Sql,
  organizationIds: string[],
  perOrganization: number,
  epoch: string,
  { privateQuarter = true } = {},
): Promise<void> {
  const orgs = organizationIds.length;
  await sql`
    insert into workspaces (organization_id, name, name_key, slug, description, metadata, settings,
      effective_visibility, effective_default_role, is_default, version, created_at, updated_at)
    select o.id, n.name, lower(n.name), lower(replace(n.name, ' ', '-')),
      case when j % 4 = 0 then null else format('Where the %s team works', tm.team) end,
      jsonb_build_object('cost_center', format('cc-%s', j % 40), 'owner', format('team-%s', j % 12)),
      s.settings, ${sql.unsafe(derived('visibility', 'organization'))}, ${sql.unsafe(derived('default_role', 'member'))},
      j = 1, 1, t.at, t.at
    from unnest(${organizationIds}::uuid[]) with ordinality as o(id, oi)
    join organizations org on org.id = o.id
    cross join generate_series(1, ${perOrganization}::int) j
    cross join lateral (select ${sql.unsafe(workspaceSettings(privateQuarter))} as settings) s
    cross join lateral (select (array['Design', 'Platform', 'Marketing', 'Data', 'Mobile', 'Infrastructure', 'Sales', 'Support', 'Research', 'Finance'])[1 + j % 10] as team) tm
    cross join lateral (select format('%s %s', tm.team, j) as name) n
    cross join lateral (
      select ${epoch}::timestamptz + ((j - 1) * ${orgs}::int + (oi - 1)) * interval '61 seconds'
        + ((oi * 7919 + j::bigint * 104729) % 1000) * interval '1 millisecond' as at
    ) t`;
}

/** `count` ids of the organization's workspaces, evenly spread over their creation order. */
async function sampleIds(sql: Sql, organizationIds: string[], count: number): Promise<string[]> {
  const rows = await sql<{ id: string }[]>`
    select id from (
      select id, row_number() over (order by created_at, id) as n, count(*) over () as total
      from workspaces where organization_id = any(${organizationIds}::uuid[])
    ) x
    where (n - 1) % greatest(1, total / ${count}::int) = 0
    order by n limit ${count}`;
  return rows.map((row) => row.id);
}

export async function seed(sql: Sql, options: BenchOptions, secret: string): Promise<Fixture> {
  const passwordHash = await hashPassword('bench password, not a secret');
  const pad = (n: number) => String(n).padStart(3, '0');
  const benchSlugs = Array.from({ length: options.organizations }, (_, i) => `org-${pad(i + 1)}`);
  const benchOrgs = await insertOrganizations(sql, benchSlugs, 0);
  const scaleOrgs = await insertOrganizations(
    sql,
    ['scale-small', 'scale-large', 'provision-empty', 'provision-full', 'access-visible', 'access-private'],
    options.organizations,
  );
  const benchOrganizations = benchSlugs.map((slug) => benchOrgs.get(slug)!);
  const orgId = (slug: string) => scaleOrgs.get(slug)!;
  // An organization whose workspaces are private unless one says otherwise (none does).
  await sql`
    update organizations set settings = jsonb_set(settings, '{permissions,visibility}', '"private"')
    where id = ${orgId('access-private')}`;

  // Each bench organization has an owner, an admin and two members of its own.
  const [benchUser] = await sql<{ id: string }[]>`
    insert into users (email, name, password_hash, created_at)
    values ('bench@bench.example', 'Bench User', ${passwordHash}, timestamptz '2023-05-01') returning id`;
  const [scaleUser] = await sql<{ id: string }[]>`
    insert into users (email, name, password_hash, created_at)
    values ('scale@bench.example', 'Scale User', ${passwordHash}, timestamptz '2023-05-01') returning id`;
  const [memberUser] = await sql<{ id: string }[]>`
    insert into users (email, name, password_hash, created_at)
    values ('member@bench.example', 'Member User', ${passwordHash}, timestamptz '2023-05-01') returning id`;
  const colleagues = await sql<{ id: string }[]>`
    insert into users (email, name, password_hash, created_at)
    select format('colleague-%s@bench.example', k), format('Colleague %s', k), ${passwordHash}, timestamptz '2023-05-01'
    from generate_series(1, ${COLLEAGUES}::int) k
    returning id`;
  await sql`
    insert into users (email, name, password_hash, created_at)
    select format('user-%s-%s@bench.example', o, k), format('User %s-%s', o, k), ${passwordHash}, timestamptz '2023-05-01' + o * interval '1 hour'
    from generate_series(1, ${options.organizations}::int) o cross join generate_series(1, 4) k`;
  await sql`
    insert into memberships (organization_id, user_id, role, created_at)
    select org.id, u.id, case k when 1 then 'owner' when 2 then 'admin' else 'member' end, org.created_at + k * interval '1 minute'
    from unnest(${benchOrganizations}::uuid[]) with ordinality as org_ids(id, o)
    join organizations org on org.id = org_ids.id
    cross join generate_series(1, 4) k
    join users u on u.email = format('user-%s-%s@bench.example', o, k)`;
  await sql`
    insert into memberships (organization_id, user_id, role, created_at)
    select id, ${benchUser!.id}, 'admin', created_at + interval '1 hour' from organizations where id = any(${benchOrganizations}::uuid[])`;
  await sql`
    insert into memberships (organization_id, user_id, role, created_at)
    select id, ${scaleUser!.id}, 'owner', created_at from organizations where id = any(${[...scaleOrgs.values()]}::uuid[])`;
  const memberOrganizations = [orgId('scale-small'), orgId('access-visible'), orgId('access-private')];
  await sql`
    insert into memberships (organization_id, user_id, role, created_at)
    select o.id, u.id, 'member', o.created_at + interval '1 hour'
    from organizations o cross join unnest(${[memberUser!.id, ...colleagues.map((c) => c.id)]}::uuid[]) as u(id)
    where o.id = any(${memberOrganizations}::uuid[])`;

  await insertWorkspaces(sql, benchOrganizations, options.workspacesPerOrganization, '2024-01-01');
  await insertWorkspaces(sql, [orgId('scale-small')], options.scaleSmall, '2024-03-01');
  await insertWorkspaces(sql, [orgId('scale-large')], options.scaleLarge, '2024-04-01');
  await insertWorkspaces(sql, [orgId('provision-full')], options.provisionFullSize, '2024-05-01');
  await insertWorkspaces(sql, [orgId('access-visible')], options.memberListSize, '2024-06-01', { privateQuarter: false });
  await insertWorkspaces(sql, [orgId('access-private')], options.memberListSize, '2024-07-01', { privateQuarter: false });
  // The member's explicit memberships of private workspaces, spread over their creation order;
  // each colleague holds as many of others (so the member's are a fraction of the table).
  const privateIds = await sampleIds(sql, [orgId('access-private')], EXPLICIT_MEMBERSHIPS * (COLLEAGUES + 1));
  const memberOf = privateIds
    .filter((_, i) => i % (COLLEAGUES + 1) === 0)
    .map((id, i) => ({ id, role: i % 2 === 0 ? ('viewer' as const) : ('member' as const) }));
  await sql`
    insert into workspace_members (workspace_id, user_id, role)
    select w.id, u.id, 'member'
    from unnest(${privateIds}::uuid[]) with ordinality as w(id, n)
    join unnest(${[memberUser!.id, ...colleagues.map((c) => c.id)]}::uuid[]) with ordinality as u(id, k)
      on (w.n - 1) % ${COLLEAGUES + 1}::int = u.k - 1
    where u.k > 1`;
  await sql`
    insert into workspace_members (workspace_id, user_id, role)
    select m.id, ${memberUser!.id}, m.role
    from jsonb_to_recordset(${sql.json(memberOf)}::jsonb) as m(id uuid, role text)`;
  // Statistics and the visibility map as a database in service would have them (autovacuum has not run yet).
  await sql`vacuum (analyze) users, organizations, memberships, workspaces, workspace_members`;

  const organization = async (slug: string, size: number): Promise<SeededOrganization> => ({
    id: orgId(slug),
    size,
    workspaceIds: size === 0 ? [] : await sampleIds(sql, [orgId(slug)], 1000),
  });
  const provisionFull = await organization('provision-full', options.provisionFullSize);
  const [template] = await sql<
    { id: string }[]
  >`select id from workspaces where organization_id = ${provisionFull.id} and slug = 'marketing-2'`;
  const [hidden] = await sql<{ id: string }[]>`
    select id from workspaces where organization_id = ${orgId('scale-small')} and effective_visibility = 'private'
    order by created_at limit 1 offset 10`;
  return {
    bench: { id: benchUser!.id, token: sign(secret, benchUser!.id, 0), revokedToken: sign(secret, benchUser!.id, 1) },
    benchOrganizations,
    benchWorkspaces: await sampleIds(sql, benchOrganizations, 1000),
    scale: { id: scaleUser!.id, token: sign(secret, scaleUser!.id, 0), revokedToken: sign(secret, scaleUser!.id, 1) },
    scaleSmall: await organization('scale-small', options.scaleSmall),
    scaleLarge: await organization('scale-large', options.scaleLarge),
    provisionEmpty: await organization('provision-empty', 0),
    provisionFull,
    templateId: template!.id,
    outsiderWorkspaceId: provisionFull.workspaceIds[0]!,
    forgedToken: sign(`${secret}-but-another-one`, benchUser!.id, 0),
    member: { id: memberUser!.id, token: sign(secret, memberUser!.id, 0), revokedToken: sign(secret, memberUser!.id, 1) },
    memberHiddenId: hidden!.id,
    accessVisible: await organization('access-visible', options.memberListSize),
    accessPrivate: { ...(await organization('access-private', options.memberListSize)), memberOf },
  };
}
