/**
 * `npm run seed`: demo data in the configured database (DATABASE_URL, or the embedded one in
 * DATA_DIR, as `npm start` would open it), so that a person opening /docs has something to
 * look at: a demo user, two organizations with settings of their own (one with a locked
 * setting), 13 workspaces that inherit some settings and override others (a clone and an
 * archived workspace among them), two teammates in Globex with explicit roles in its private
 * Finance workspace (a member and a viewer), a guest in Acme's Support workspace, a pending
 * invitation to Acme, and the audit events all of that wrote.
 *
 * Everything goes through the service's own procedures (appRouter.createCaller), so the rules,
 * transactions and validation are the API's: the teammates and the guest join as anyone
 * joins, by an invitation they accept. Idempotent: each piece is looked up by its slug (or the
 * account by its email, a membership by its user, an invitation by its email) and made only
 * when missing; settings are written only onto a layer that is still empty, so a second run
 * adds and changes nothing, and a run after a partial one completes it. Prints the demo user's
 * email, password and a fresh token, and the teammates' and the guest's emails (same password).
 */
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { TRPCError, type inferRouterInputs, type inferRouterOutputs } from '@trpc/server';
import { ConfigError, loadConfig } from '../src/config';
import { openDatabase } from '../src/db/open';
import { runMigrations } from '../src/db/migrate';
import { DataDirLockedError } from '../src/db/pglite-lock';
import { createDeps, createLogger, type AppDeps } from '../src/deps';
import { createContext } from '../src/trpc/context';
import { appRouter, type AppRouter } from '../src/router';

type Inputs = inferRouterInputs<AppRouter>;
type Outputs = inferRouterOutputs<AppRouter>;
type Workspace = Outputs['workspaces']['get'];
type WorkspaceSpec = Omit<Inputs['workspaces']['create'], 'organization_id'> & { slug: string };
type OrganizationSettings = Omit<Inputs['organizations']['updateSettings'], 'org_id'>;
type Invitation = Outputs['invitations']['get'];

export const DEMO_USER = { email: 'demo@example.com', password: 'demo password', name: 'Demo User' } as const;

/**
 * Two plain members of Globex, each with an explicit role in its private Finance workspace (they
 * see it; Legal, private too, stays hidden from them, and Acme is not theirs at all).
 */
export const DEMO_TEAMMATES = [
  { email: 'demo-member@example.com', password: 'demo password', name: 'Demo Member', role: 'member' },
  { email: 'demo-viewer@example.com', password: 'demo password', name: 'Demo Viewer', role: 'viewer' },
] as const;
/** The private workspace (Globex's) the teammates are explicit members of. */
export const TEAM_WORKSPACE_SLUG = 'finance';

/**
 * Someone outside both organizations, a guest `member` of Acme's Support (whose own override
 * allows guests): it sees that workspace and nothing else of Acme's.
 */
export const DEMO_GUEST = { email: 'demo-guest@example.com', password: 'demo password', name: 'Demo Guest', role: 'member' } as const;
/** The Acme workspace the guest is in. */
export const GUEST_WORKSPACE_SLUG = 'support';

/** An invitation to Acme nobody has accepted: an email without an account. */
export const PENDING_INVITATION = { email: 'invitee@example.com', role: 'member' } as const;

interface OrganizationSpec {
  name: string;
  slug: string;
  settings: OrganizationSettings;
  workspaces: WorkspaceSpec[];
}

/** Acme is the organization the account is created with (renamed); Globex is made beside it. */
const ACME: OrganizationSpec = {
  name: 'Acme Corp',
  slug: 'acme-demo',
  settings: {
    permissions: { default_role: 'member', allow_guests: false },
    features: { beta: true, audit_log: true },
    integrations: { slack: { enabled: true, config: { channel: '#general' } } },
    // Every Acme workspace keeps the audit log on: a workspace cannot override it.
    locks: ['features.audit_log'],
  },
  workspaces: [
    {
      name: 'Platform',
      slug: 'platform',
      description: 'Build, deploy and run: the services everyone else relies on',
      metadata: { team: 'platform', cost_center: '1001' },
      settings: {
        features: { beta: false, 'ci.fast_lane': true },
        integrations: { github: { enabled: true, config: { org: 'acme', required_reviews: 2 } } },
      },
    },
    {
      name: 'Design',
      slug: 'design',
      description: 'Product design and research',
      metadata: { team: 'design' },
      settings: {
        permissions: { visibility: 'private' },
        integrations: { figma: { enabled: true, config: { team: 'acme-design' } } },
      },
    },
    { name: 'Marketing', slug: 'marketing', description: 'Inherits every setting from Acme Corp', metadata: { team: 'marketing' } },
    {
      name: 'Sales',
      slug: 'sales',
      description: 'Pipeline and accounts',
      metadata: { team: 'sales', region: 'emea' },
      settings: { features: { crm: true }, integrations: { slack: { config: { channel: '#sales' } } } },
    },
    {
      name: 'Support',
      slug: 'support',
      description: 'Customer support, with guests allowed',
      settings: {
        permissions: { allow_guests: true },
        integrations: { zendesk: { enabled: true, config: { subdomain: 'acme' } } },
      },
    },
    {
      name: 'Research',
      slug: 'research',
      description: 'Experiments; new members join as viewers',
      settings: { permissions: { default_role: 'viewer' }, features: { experiments: true } },
    },
  ],
};

const GLOBEX: OrganizationSpec = {
  name: 'Globex',
  slug: 'globex-demo',
  settings: {
    permissions: { default_role: 'viewer', allow_member_invites: false },
    features: { audit_log: true },
  },
  workspaces: [
    { name: 'Operations', slug: 'operations', description: 'Inherits every setting from Globex' },
    {
      name: 'Finance',
      slug: 'finance',
      description: 'Private to its members',
      metadata: { cost_center: '2001' },
      settings: { permissions: { visibility: 'private' }, features: { exports: false } },
    },
    {
      name: 'Legal',
      slug: 'legal',
      description: 'Private, no guests, no invites by members',
      settings: { permissions: { visibility: 'private', allow_guests: false } },
    },
    { name: 'Legacy CRM', slug: 'legacy-crm', description: 'Archived: read-only, kept for its history' },
  ],
};

/** Globex's workspace that is archived once made (lists show it with archived=true or all). */
const ARCHIVED_SLUG = 'legacy-crm';

/** The clone: Acme's Platform copied into a staging workspace, whose settings then diverge. */
const CLONE = {
  source: 'platform',
  name: 'Platform (staging)',
  slug: 'platform-staging',
  description: 'A clone of Platform for the staging environment',
  settings: { features: { beta: true }, integrations: { github: { config: { branch: 'staging' } } } },
} as const;

export interface SeedResult {
  email: string;
  password: string;
  /** The teammates' emails (their password is the demo user's). */
  teammates: string[];
  /** The guest's email (same password). */
  guest: string;
  /** The email of the invitation left pending. */
  invited: string;
  token: string;
  expiresIn: number;
  organizations: Array<{ id: string; name: string; slug: string; workspaces: number }>;
  /** What this run made (all zero on a second run). */
  added: { users: number; organizations: number; workspaces: number; invitations: number };
}

/** A caller of the service's procedures, as a request with this token would be. */
function callerFor(deps: AppDeps, token?: string) {
  return appRouter.createCaller(
    createContext({
      deps,
      face: 'trpc',
      requestId: `seed-${randomUUID()}`,
      clientIp: '127.0.0.1',
      headers: token ? { authorization: `Bearer ${token}` } : {},
      setHeader: () => {},
    }),
  );
}

type Caller = ReturnType<typeof callerFor>;

const isCode = (error: unknown, code: TRPCError['code']) => error instanceof TRPCError && error.code === code;

async function allWorkspaces(api: Caller, organizationId: string): Promise<Workspace[]> {
  const items: Workspace[] = [];
  let cursor: string | undefined;
  do {
    const page = await api.workspaces.list({ organization_id: organizationId, archived: 'all', limit: 100, cursor });
    items.push(...page.items);
    cursor = page.next_cursor ?? undefined;
  } while (cursor);
  return items;
}

async function allOrganizations(api: Caller) {
  const items: Outputs['organizations']['list']['items'] = [];
  let cursor: string | undefined;
  do {
    const page = await api.organizations.list({ limit: 100, cursor });
    items.push(...page.items);
    cursor = page.next_cursor ?? undefined;
  } while (cursor);
  return items;
}

/** Writes the organization's settings only while its own layer is empty (the seed never overwrites a change). */
async function seedOrganizationSettings(api: Caller, organizationId: string, settings: OrganizationSettings) {
  const current = await api.organizations.getSettings({ org_id: organizationId });
  if (Object.keys(current.settings).length === 0) await api.organizations.updateSettings({ org_id: organizationId, ...settings });
}

function slugTakenError(slug: string, cause: unknown): Error {
  return new Error(`The organization slug "${slug}" belongs to another account in this database; seed an empty database instead`, {
    cause,
  });
}

/**
 * A teammate's (or the guest's) account, made once: signed up (which gives it an organization of
 * its own, deleted at once: the demo data keeps its two organizations) or found by logging in.
 * Returns its id and a token.
 */
async function seedAccount(
  deps: AppDeps,
  account: { email: string; password: string; name: string },
  keep: string | undefined,
  added: SeedResult['added'],
): Promise<{ userId: string; token: string }> {
  const anonymous = callerFor(deps);
  try {
    await anonymous.auth.signup({ email: account.email, password: account.password, name: account.name });
    added.users++;
  } catch (error) {
    if (!isCode(error, 'CONFLICT')) throw error;
  }
  let session;
  try {
    session = await anonymous.auth.login({ email: account.email, password: account.password });
  } catch (error) {
    if (isCode(error, 'UNAUTHORIZED')) {
      throw new Error(`${account.email} exists with another password; delete that account or seed an empty database`, { cause: error });
    }
    throw error;
  }
  // The organization its signup came with (also after a partial run): every one it owns but `keep`.
  const api = callerFor(deps, session.access_token);
  for (const organization of await allOrganizations(api)) {
    if (organization.role === 'owner' && organization.id !== keep) await api.organizations.delete({ org_id: organization.id });
  }
  return { userId: session.user.id, token: session.access_token };
}

/** Every invitation of the organization (its workspaces' included) to `email`, newest first. */
async function invitationsTo(api: Caller, organizationId: string, email: string): Promise<Invitation[]> {
  const found: Invitation[] = [];
  let cursor: string | undefined;
  do {
    const page = await api.organizations.invitations.list({ org_id: organizationId, limit: 100, cursor });
    found.push(...page.items.filter((i) => i.email.toLowerCase() === email.toLowerCase()));
    cursor = page.next_cursor ?? undefined;
  } while (cursor);
  return found;
}

/**
 * Has `invitee` join a target of the organization as a person does: the demo user invites its
 * email (`invite`), it accepts the token. A pending invitation a partial run left (to the same
 * target: the workspace, or null for the organization) is resent for a token of its own (the
 * first went with that run).
 */
async function joinByInvitation(
  api: Caller,
  deps: AppDeps,
  target: { organizationId: string; workspaceId: string | null },
  invitee: { email: string; token: string },
  invite: () => Promise<{ token: string }>,
  added: SeedResult['added'],
): Promise<void> {
  const left = (await invitationsTo(api, target.organizationId, invitee.email)).find(
    (i) => i.workspace_id === target.workspaceId && (i.status === 'pending' || i.status === 'expired'),
  );
  let token: string;
  if (left) {
    token = (await api.invitations.resend({ invitation_id: left.id })).token;
  } else {
    token = (await invite()).token;
    added.invitations++;
  }
  await callerFor(deps, invitee.token).invitations.accept({ token });
}

/** Fills the database behind `deps` with the demo data, adding only what is missing. */
export async function seedDemoData(deps: AppDeps): Promise<SeedResult> {
  const added = { users: 0, organizations: 0, workspaces: 0, invitations: 0 };
  const anonymous = callerFor(deps);

  // The account: signed up once, logged in afterwards (which also gives a fresh token).
  try {
    await anonymous.auth.signup(DEMO_USER);
    // The account comes with its organization and that organization's default workspace.
    added.users++;
    added.organizations++;
    added.workspaces++;
  } catch (error) {
    if (!isCode(error, 'CONFLICT')) throw error;
  }
  let session;
  try {
    session = await anonymous.auth.login({ email: DEMO_USER.email, password: DEMO_USER.password });
  } catch (error) {
    if (isCode(error, 'UNAUTHORIZED')) {
      throw new Error(`${DEMO_USER.email} exists with another password; delete that account or seed an empty database`, {
        cause: error,
      });
    }
    throw error;
  }
  const api = callerFor(deps, session.access_token);

  // Acme: the organization created with the account (its oldest), renamed.
  let organizations = await allOrganizations(api);
  let acme = organizations.find((o) => o.slug === ACME.slug) ?? organizations.find((o) => o.role === 'owner');
  if (!acme) throw new Error(`${DEMO_USER.email} owns no organization; delete that account or seed an empty database`);
  if (acme.slug !== ACME.slug || acme.name !== ACME.name) {
    try {
      acme = await api.organizations.update({ org_id: acme.id, name: ACME.name, slug: ACME.slug });
    } catch (error) {
      if (isCode(error, 'CONFLICT')) throw slugTakenError(ACME.slug, error);
      throw error;
    }
  }

  // Globex: made beside it, with its default workspace.
  let globex = organizations.find((o) => o.slug === GLOBEX.slug);
  if (!globex) {
    try {
      globex = await api.organizations.create({ name: GLOBEX.name, slug: GLOBEX.slug });
      added.organizations++;
      added.workspaces++;
    } catch (error) {
      if (isCode(error, 'CONFLICT')) throw slugTakenError(GLOBEX.slug, error);
      throw error;
    }
  }

  await seedOrganizationSettings(api, acme.id, ACME.settings);
  await seedOrganizationSettings(api, globex.id, GLOBEX.settings);

  // Acme's workspaces one by one (POST /workspaces), each with its own overrides.
  const acmeSlugs = new Set((await allWorkspaces(api, acme.id)).map((w) => w.slug));
  for (const spec of ACME.workspaces) {
    if (acmeSlugs.has(spec.slug)) continue;
    await api.workspaces.create({ organization_id: acme.id, ...spec });
    added.workspaces++;
  }

  // The clone, whose settings then part from its source's.
  const acmeWorkspaces = await allWorkspaces(api, acme.id);
  if (!acmeWorkspaces.some((w) => w.slug === CLONE.slug)) {
    const source = acmeWorkspaces.find((w) => w.slug === CLONE.source);
    if (source) {
      const clone = await api.workspaces.clone({
        workspace_id: source.id,
        name: CLONE.name,
        slug: CLONE.slug,
        description: CLONE.description,
      });
      added.workspaces++;
      await api.workspaces.updateSettings({ workspace_id: clone.id, expected_version: clone.version, ...CLONE.settings });
    }
  }

  // Globex's workspaces in one atomic provisioning call (POST /workspaces/provision).
  const globexSlugs = new Set((await allWorkspaces(api, globex.id)).map((w) => w.slug));
  const missing = GLOBEX.workspaces.filter((spec) => !globexSlugs.has(spec.slug));
  if (missing.length > 0) {
    const { created } = await api.workspaces.provision({ organization_id: globex.id, mode: 'atomic', workspaces: missing });
    added.workspaces += created.length;
  }
  const legacy = (await allWorkspaces(api, globex.id)).find((w) => w.slug === ARCHIVED_SLUG);
  if (legacy && !legacy.archived_at) await api.workspaces.archive({ workspace_id: legacy.id, expected_version: legacy.version });

  // The teammates: plain members of Globex (by an invitation each accepts), each with an explicit role in its private Finance.
  const finance = (await allWorkspaces(api, globex.id)).find((w) => w.slug === TEAM_WORKSPACE_SLUG);
  for (const teammate of DEMO_TEAMMATES) {
    const account = await seedAccount(deps, teammate, globex.id, added);
    try {
      await api.organizations.getMember({ org_id: globex.id, user_id: account.userId });
    } catch (error) {
      if (!isCode(error, 'NOT_FOUND')) throw error;
      await joinByInvitation(
        api,
        deps,
        { organizationId: globex.id, workspaceId: null },
        { email: teammate.email, token: account.token },
        () => api.organizations.invitations.create({ org_id: globex.id, email: teammate.email, role: 'member' }),
        added,
      );
    }
    if (!finance) continue;
    try {
      await api.workspaces.members.get({ workspace_id: finance.id, user_id: account.userId });
    } catch (error) {
      if (!isCode(error, 'NOT_FOUND')) throw error;
      await api.workspaces.members.add({ workspace_id: finance.id, user_id: account.userId, role: teammate.role });
    }
  }

  // The guest: in Acme's Support (which allows guests) by a workspace invitation, and in no organization.
  const support = (await allWorkspaces(api, acme.id)).find((w) => w.slug === GUEST_WORKSPACE_SLUG);
  if (support) {
    const guest = await seedAccount(deps, DEMO_GUEST, undefined, added);
    try {
      await api.workspaces.members.get({ workspace_id: support.id, user_id: guest.userId });
    } catch (error) {
      if (!isCode(error, 'NOT_FOUND')) throw error;
      await joinByInvitation(
        api,
        deps,
        { organizationId: acme.id, workspaceId: support.id },
        { email: DEMO_GUEST.email, token: guest.token },
        () => api.workspaces.invitations.create({ workspace_id: support.id, email: DEMO_GUEST.email, role: DEMO_GUEST.role }),
        added,
      );
    }
  }

  // An invitation to Acme left pending: made once (an expired one is renewed; one accepted, declined or revoked since is left as it is).
  const invited = await invitationsTo(api, acme.id, PENDING_INVITATION.email);
  if (invited.length === 0) {
    await api.organizations.invitations.create({ org_id: acme.id, ...PENDING_INVITATION });
    added.invitations++;
  } else if (invited[0]!.status === 'expired') {
    await api.invitations.resend({ invitation_id: invited[0]!.id });
  }

  organizations = await allOrganizations(api);
  const summary = [];
  for (const organization of [acme, globex]) {
    const current = organizations.find((o) => o.id === organization.id) ?? organization;
    summary.push({
      id: current.id,
      name: current.name,
      slug: current.slug,
      workspaces: (await allWorkspaces(api, current.id)).length,
    });
  }
  return {
    email: DEMO_USER.email,
    password: DEMO_USER.password,
    teammates: DEMO_TEAMMATES.map((t) => t.email),
    guest: DEMO_GUEST.email,
    invited: PENDING_INVITATION.email,
    token: session.access_token,
    expiresIn: session.expires_in,
    organizations: summary,
    added,
  };
}

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }
  // The service's own log level would print nothing useful here; warnings and errors only, unless asked.
  const logger = createLogger(process.env.LOG_LEVEL ? config : { ...config, LOG_LEVEL: 'warn' });
  const where = config.DATABASE_URL ? 'PostgreSQL (DATABASE_URL)' : `the embedded database (DATA_DIR=${config.DATA_DIR})`;

  let database;
  try {
    database = await openDatabase(config);
  } catch (error) {
    if (error instanceof DataDirLockedError) {
      fail(`npm run seed: ${error.message}. Stop the server (npm start) first, seed, then start it again.`);
    }
    fail(`npm run seed: could not open ${where}: ${firstLine(error)}`);
  }
  let result: SeedResult;
  try {
    await runMigrations(database);
    result = await seedDemoData(createDeps(config, database, logger));
  } catch (error) {
    await database.close().catch(() => {});
    fail(`npm run seed: ${firstLine(error)}`);
  }
  await database.close();

  const total = result.organizations.reduce((sum, o) => sum + o.workspaces, 0);
  const docs = `http://${config.HOST}:${config.PORT}/docs`;
  process.stdout.write(
    [
      `Demo data ready in ${where}.`,
      `  organizations: ${result.organizations.map((o) => `${o.name} (${o.slug}, ${o.workspaces} workspaces)`).join(', ')}`,
      `  workspaces:    ${total} in all`,
      `  added now:     ${result.added.users} users, ${result.added.organizations} organizations, ${result.added.workspaces} workspaces, ${result.added.invitations} invitations`,
      '',
      `  email:    ${result.email}`,
      `  password: ${result.password}`,
      `  token:    ${result.token}`,
      `            (valid ${result.expiresIn} s; log in again for another)`,
      `  teammates: ${result.teammates.join(', ')} (same password; members of Globex, in its private Finance workspace)`,
      `  guest:     ${result.guest} (same password; a guest in Acme Corp's Support workspace, outside both organizations)`,
      `  pending:   an invitation to Acme Corp for ${result.invited} (no account)`,
      '',
      `Start the service (npm start), open ${docs}, choose Authorize and paste the token.`,
      '',
    ].join('\n'),
  );
}

function firstLine(error: unknown): string {
  return error instanceof Error ? (error.message.split('\n')[0] ?? error.name) : String(error);
}

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => fail(`npm run seed: ${firstLine(error)}`));
}
