/**
 * Property-based fuzzing of every REST operation, driven by the served /openapi.json.
 *
 * For each operation, FUZZ_RUNS (default 300) generated requests: valid-shaped ones (bodies,
 * queries, path parameters and headers derived from the document's schemas, with real ids),
 * boundary values, and invalid ones (one edit each: wrong types, "true"/"1" for booleans and
 * numbers, out-of-range numbers, over-long strings, NUL and lone surrogates, unknown and
 * `__proto__` keys, missing required fields, malformed JSON, wrong content types and encodings,
 * bad UUIDs in paths, garbage and foreign cursors, bad If-Match and Idempotency-Key headers,
 * missing or forged tokens, other tenants' and unknown ids). Every answer must be:
 * - never 5xx, and a status the document lists for the operation;
 * - the status the contract gives that request (400 for invalid input, 401, 403, 404 for
 *   another tenant's or an unknown id, 412 for a stale version, 415, 422, …);
 * - a 4xx: the documented error shape `{code, message, issues?, failed?}`, no stack;
 * - a 2xx: a body valid (ajv) against the operation's documented response schema, the
 *   documented headers (Location, ETag), 204 with no body;
 * and afterwards no workspace (or organization) row, no workspace membership and no invitation
 * exists that no response acknowledged, and no invitation token is in the audit trail. A refused
 * membership change leaves the workspace's members as they were; a refused resend, revoke, accept
 * or decline leaves the invitation as it was.
 * Who may do what to a workspace (404 without access, 403 below the role the operation needs) is
 * decided for each request from the README's rules (Workspace access), computed here from the
 * stored settings layers and memberships, so fixtures made private or given another default role
 * by generated settings writes are judged as they stand.
 * At least a fifth of each operation's requests must succeed (counted, asserted).
 *
 * `FUZZ_RUNS=10000 npm run test:fuzz` runs a long version; `FUZZ_SEED=<n>` replays a run.
 */
import { createHash, randomUUID } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSettingsPath } from '../../src/modules/settings/locks';
import { startTestApp, type TestApp } from '../helpers/app';
import { nowSeconds, signLocalToken, unsignedToken } from '../helpers/auth-helpers';
import { expectNoStack } from '../helpers/errors';
import { SYSTEM_DEFAULT_PERMISSIONS } from '../helpers/org-helpers';
import { isoSql } from '../helpers/sql';
import {
  applyEdit,
  contractViolations,
  defineKey,
  editedArb,
  isPlainObject,
  validArb,
  type Edit,
  type Hints,
  type Path,
} from './arbitraries';
import {
  describeErrors,
  operationsOf,
  resolverFor,
  validatorsFor,
  type OpenApiDocument,
  type Operation,
  type Schema,
  type Validators,
} from './document';
import { createClient, type RawResponse } from './http';

const RUNS = Math.max(1, Number(process.env.FUZZ_RUNS ?? 300));
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
/** Per operation: generous, since the long run scales with FUZZ_RUNS. */
const TIMEOUT_MS = 60_000 + RUNS * 400;
const API = '/api/v1';
const PASSWORD = 'fuzz fixture password';
/** INVITATION_TTL_HOURS as configured (the default): the expired fixture is made this long ago, and an hour more. */
const INVITATION_TTL_HOURS = 168;
/** FUZZ_LOG=<file>: one line per request (operation, variant, status, expected, why invalid, path). */
const LOG = process.env.FUZZ_LOG;

// ---------------------------------------------------------------------------------------------
// State: the app, the document, fixtures, and what responses acknowledged.

let app: TestApp;
let client: ReturnType<typeof createClient>;
let doc: OpenApiDocument;
let operations: Map<string, Operation>;
let validators: Validators;
let resolve: (schema: Schema) => Schema;

interface Account {
  id: string;
  email: string;
  password: string;
  token: string;
  org: string;
  workspace: string;
}

type Fixed = 'A' | 'B' | 'C' | 'D' | 'E';
/**
 * A owns; B is admin and C member of A's organizations; D is an outsider; E owns an organization
 * it cannot leave; P is a throwaway account (and the invitee who accepts and declines). (The
 * workspace-member accounts W0–W2 are plain members of A's first organization that the workspace
 * member operations add, change and remove; they never send a request.)
 */
type ActorName = Fixed | 'P';

interface World {
  accounts: Record<Fixed, Account>;
  /** Spare accounts added to and removed from organizations by the member operations. */
  spares: Account[];
  orgA: string;
  orgA2: string;
  /** Where PUT member changes the spares' roles; where DELETE member removes them. */
  orgRole: string;
  orgDel: string;
  orgD: string;
  wsA: string[];
  wsD: string;
  /** Plain members of orgA that the workspace member operations add, change and remove. */
  wsUsers: Account[];
  /** In orgA: private, W2 its explicit viewer (C has no access to it). */
  wsPrivate: string;
  /**
   * In orgA, visible to it with default role member by their own overrides (which no generated
   * write touches), one for each member write: POST adds W0 and W1 to wsAdd (A is a member of it
   * from the start: 409), PUT changes the roles of A and W2 in wsRole (W1 is none: 404), DELETE
   * removes W0 from wsDel (and C leaves it).
   */
  wsAdd: string;
  wsRole: string;
  wsDel: string;
  /**
   * Invitations (README, Invitations and guests), where no generated settings write reaches: A
   * owns orgInvite, B is its admin, C a member of it who may not invite (its
   * allow_member_invites is false).
   */
  orgInvite: string;
  /** In orgInvite: visible to it with default role member (C: member, so 403), guests allowed, members may not invite. */
  wsInvite: string;
  /** In orgInvite, archived: it takes no invitation (409). */
  wsInviteArchived: string;
  /** A's pending invitations to orgInvite and to wsInvite, which stay pending: what the reads read, and a create's 409 by email. */
  invOrg: Invited;
  invWs: Invited;
  /** B's pending invitation to orgInvite that resend renews again and again (its token: the latest). */
  invResend: Invited;
  /** Revoked: resend and revoke refuse it (409); its token is spent (accept, decline: 404; preview: revoked). */
  invRevoked: Invited;
  /** D's invitation in D's organization: another tenant's id. */
  invD: string;
  /** Where accept and decline join (and are undone): an organization, and a workspace of it that allows guests. */
  orgJoin: string;
  wsJoin: string;
  /** A guest invitation for E's email to a workspace of orgJoin that no longer allows guests: accepting it is 409, and it stays pending. */
  invRule: Invited;
  /** An invitation of orgJoin made with the clock an expiry and an hour back: expired (410; preview: expired). */
  invExpired: Invited;
  /** The invitation C accepted to join orgInvite (its token: preview says accepted). */
  invAccepted: Invited;
}
/** An invitation a fixture made: its id, the email invited, and its token. */
interface Invited {
  id: string;
  email: string;
  token: string;
}
const world = {} as World;

/** Ids of rows some 2xx response acknowledged (or the fixtures made). */
const acknowledged = {
  workspaces: new Set<string>(),
  organizations: new Set<string>(),
  workspaceMembers: new Set<string>(),
  invitations: new Set<string>(),
};
/** Every invitation token an answer carried: none may be in the audit trail (README). */
const tokensSeen = new Set<string>();
/** The clock the service runs invitations by (deps.now) is this many milliseconds off the real one (moved only while a fixture is made). */
let clockShift = 0;
/** Every account that exists, by email lower-cased: login's expected answer, signup's duplicates. */
const accounts = new Map<string, Account>();
/** Tokens that must no longer work: logged out or deleted. */
const deadTokens: string[] = [];

/** Throwaway accounts for logout and DELETE /auth/me (each valid call uses one up). */
const pool = {
  live: [] as Account[],
  async current(): Promise<Account> {
    if (this.live.length === 0) {
      const fresh = await Promise.all(Array.from({ length: 8 }, (_, i) => signupAccount(`pool${i}`)));
      this.live.push(...fresh);
    }
    return this.live[0]!;
  },
  consume(account: Account) {
    this.live = this.live.filter((a) => a.id !== account.id);
  },
};

// ---------------------------------------------------------------------------------------------
// Plain calls for fixtures and preparation (not counted as fuzz requests, but held to the same
// "no 5xx" rule and acknowledged like any other).

async function api(key: string, path: string, options: { token?: string; body?: unknown } = {}): Promise<RawResponse> {
  const [method] = key.split(' ');
  const headers: Record<string, string> = {};
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] = 'application/json';
  }
  const res = await client.send({ method: method!, path: API + path, headers, body });
  if (res.status >= 500) throw new Error(`setup ${method} ${path} answered ${res.status}: ${res.text}`);
  await acknowledge(key, res);
  return res;
}

async function signupAccount(label: string): Promise<Account> {
  const email = `${label}-${randomUUID()}@fixture.example.com`;
  const res = await api('POST /auth/signup', '/auth/signup', { body: { email, password: PASSWORD, name: label } });
  if (res.status !== 201) throw new Error(`signup failed: ${res.status} ${res.text}`);
  const account: Account = {
    id: res.body.user.id,
    email,
    password: PASSWORD,
    token: res.body.access_token,
    org: res.body.organization.id,
    workspace: res.body.workspace.id,
  };
  accounts.set(email.toLowerCase(), account);
  return account;
}

async function createOrganization(token: string, name: string): Promise<string> {
  const res = await api('POST /organizations', '/organizations', { token, body: { name } });
  if (res.status !== 201) throw new Error(`create organization failed: ${res.status} ${res.text}`);
  return res.body.id;
}

const fixtureEmail = (label: string) => `${label}-${randomUUID()}@fixture.example.com`;

/** `inviter` invites `email` to the organization or the workspace, with `role`; fails unless 201. */
async function invite(inviter: Account, target: { org: string } | { workspace: string }, email: string, role: string): Promise<Invited> {
  const res =
    'org' in target
      ? await api('POST /organizations/{org_id}/invitations', `/organizations/${target.org}/invitations`, {
          token: inviter.token,
          body: { email, role },
        })
      : await api('POST /workspaces/{workspace_id}/invitations', `/workspaces/${target.workspace}/invitations`, {
          token: inviter.token,
          body: { email, role },
        });
  if (res.status !== 201) throw new Error(`invitation failed: ${res.status} ${res.text}`);
  return { id: res.body.invitation.id, email, token: res.body.token };
}

/** `invitee` accepts the token; fails unless 200. */
async function accept(invitee: Account, token: string): Promise<void> {
  const res = await api('POST /invitations/accept', '/invitations/accept', { token: invitee.token, body: { token } });
  if (res.status !== 200) throw new Error(`accepting failed: ${res.status} ${res.text}`);
}

/** Makes `invitee` a member of `org` as members are made: `inviter` invites its email, it accepts. */
async function addMember(inviter: Account, org: string, invitee: Account, role: string): Promise<void> {
  await accept(invitee, (await invite(inviter, { org }, invitee.email, role)).token);
}

async function createWorkspace(token: string, org: string, name: string, settings?: unknown): Promise<string> {
  const res = await api('POST /workspaces', '/workspaces', { token, body: { organization_id: org, name, settings } });
  if (res.status !== 201) throw new Error(`create workspace failed: ${res.status} ${res.text}`);
  return res.body.id;
}

/** Records the rows a 2xx response acknowledges. */
async function acknowledge(key: string, res: RawResponse): Promise<void> {
  if (res.status < 200 || res.status >= 300 || !isPlainObject(res.body)) return;
  const body = res.body as Record<string, any>;
  switch (key) {
    case 'POST /auth/signup':
      acknowledged.organizations.add(body.organization.id);
      acknowledged.workspaces.add(body.workspace.id);
      break;
    case 'POST /organizations': {
      acknowledged.organizations.add(body.id);
      // An organization comes with its default workspace: the one row in it right now.
      const rows = await app.query<{ id: string }>('select id from workspaces where organization_id = $1', [body.id]);
      for (const row of rows) acknowledged.workspaces.add(row.id);
      break;
    }
    case 'POST /workspaces':
    case 'POST /organizations/{org_id}/workspaces':
    case 'POST /workspaces/{workspace_id}/clone':
      acknowledged.workspaces.add(body.id);
      break;
    case 'POST /workspaces/provision':
      for (const workspace of body.created ?? []) acknowledged.workspaces.add(workspace.id);
      break;
    case 'POST /workspaces/{workspace_id}/members': {
      // The membership the Location names (the workspace as the path had it).
      const named = /\/workspaces\/([^/]+)\/members\/([^/]+)$/.exec(String(res.headers.location));
      if (named) acknowledged.workspaceMembers.add(`${named[1]!.toLowerCase()} ${named[2]!.toLowerCase()}`);
      break;
    }
    case 'POST /organizations/{org_id}/invitations':
    case 'POST /workspaces/{workspace_id}/invitations':
    case 'POST /invitations/{invitation_id}/resend':
      if (typeof body.invitation?.id === 'string') acknowledged.invitations.add(body.invitation.id);
      if (typeof body.token === 'string') tokensSeen.add(body.token);
      break;
    case 'POST /invitations/accept':
      // A workspace invitation's membership (a guest's, here).
      if (body.membership?.workspace_id) acknowledged.workspaceMembers.add(`${body.membership.workspace_id} ${body.membership.user_id}`);
      break;
  }
}

// ---------------------------------------------------------------------------------------------
// Generated cases.

type AuthMode =
  'token' | 'none' | 'garbage' | 'basic' | 'forged' | 'expired' | 'alg-none' | 'unknown-user' | 'revoked' | 'tampered' | 'huge';
const BAD_AUTH: AuthMode[] = ['none', 'garbage', 'basic', 'forged', 'expired', 'alg-none', 'unknown-user', 'revoked', 'tampered', 'huge'];

type ParamPick = { mode: 'real' | 'upper'; pick: number } | { mode: 'unknown' | 'bad' | 'raw'; value: string };

interface QueryPick {
  pairs: Array<[string, string]>;
  cursor?: 'captured' | 'cross' | 'tampered' | { garbage: string };
  pick: number;
}

type BodyPick =
  | { kind: 'none' }
  | { kind: 'json'; value: unknown; label: string; contentType?: string; encoding?: 'gzip' | 'bad-gzip' | 'compress' }
  | { kind: 'raw'; text: string; label: string; contentType?: string }
  | { kind: 'oversize' }
  | { kind: 'deep' }
  | { kind: 'empty' };

type IdemPick = { mode: 'none' } | { mode: 'fresh' | 'bad'; key: string } | { mode: 'replay' | 'mismatch'; pick: number };
type IfMatchPick = { mode: 'none' | 'current' | 'star' | 'list' | 'stale' | 'weak' } | { mode: 'malformed'; template: string };

interface Case {
  variant: string;
  actor: ActorName;
  auth: AuthMode;
  /** outsider: D sends it; foreign-id: A's ids swapped for D's; unknown-id: an id in the body or query names nothing. */
  tenant: 'own' | 'outsider' | 'foreign-id' | 'unknown-id';
  unknownId: string;
  special?: string;
  params: Record<string, ParamPick>;
  query?: QueryPick;
  body: BodyPick;
  idem?: IdemPick;
  ifMatch?: IfMatchPick;
}

/** Placeholders the runner replaces with the target workspace's version (or a stale one). */
const EV_CURRENT = -900_001;
const EV_STALE = -900_002;

/** Body and query fields holding a tenant's ids. */
const TENANT_FIELDS = ['organization_id', 'template_workspace_id'];

interface RunContext {
  c: Case;
  /** The query as sent. */
  query?: Array<[string, string]>;
  account?: Account;
  params: Record<string, string>;
  body?: unknown;
  /** The target workspace's explicit members before the request (the member writes: a refusal must leave them). */
  membersBefore?: string;
  /** The invitation a resend, revoke, accept or decline names, as stored before the request (a refusal must leave it). */
  invitationBefore?: string;
}

interface Spec {
  /** Who sends the valid requests. */
  actors: ActorName[];
  /** A member of the target organization without the needed role: its valid request is 403. */
  forbidden?: ActorName;
  /** The answers a valid request may get (default: the success status). */
  statuses?: number[];
  /** Requests in flight at once (default 1): for the operations that hash passwords, which run off the main thread. */
  concurrency?: number;
  /** The valid share of generated requests (default 0.4). */
  validShare?: number;
  /** Real ids for path parameters (default: the fixtures of organization A). */
  real?: Record<string, (run: RunContext) => Promise<string> | string>;
  /** Arbitraries for body or query properties by name, beyond the global ones. */
  hints?: Record<string, () => fc.Arbitrary<unknown>>;
  /** Extra variants: `special` labels the runner and `semantic` understand. */
  extras?: Array<{ weight: number; special: string; actor?: ActorName }>;
  /**
   * For an operation on one workspace (`workspace_id` in the path): the refusal the caller's
   * access to it gives (404 none, 403 too low a role; undefined: allowed), from accessFacts.
   * Replaces the fixed 403 of the `forbidden` variant, since a generated settings write may
   * have given C another role, or no access.
   */
  refusal?(run: RunContext, access: AccessFacts): number | undefined | Promise<number | undefined>;
  /** The answer a valid request must get, when the request decides it (a wrong password: 401). */
  semantic?(run: RunContext): number[] | undefined | Promise<number[] | undefined>;
  /** A rule for the body the document does not state. */
  bodyRule?(body: Record<string, unknown>): string | undefined;
  /** A rule for the query parameters the document does not state (each given once). */
  queryRule?(query: Record<string, string>): string | undefined;
  /**
   * For a body string that is a placeholder (`token:…`): the value of the live state it stands
   * for (an invitation's token, made for the case when need be), or undefined to send it as is.
   */
  swap?(run: RunContext, placeholder: string): Promise<string | undefined>;
  prepare?(run: RunContext): Promise<void>;
  after?(run: RunContext, res: RawResponse): Promise<void>;
}

const pickOf = <T>(items: readonly T[], n: number): T => items[n % items.length]!;
const upperMaybe = (id: string, upper: boolean) => (upper ? id.toUpperCase() : id);

let emailCounter = 0;
/** Unique emails, sometimes upper-cased, sometimes with surrounding spaces (which the server trims, as documented). */
const freshEmail = () =>
  fc.tuple(fc.stringMatching(/^[a-z0-9]{1,10}$/), fc.uuid(), fc.constantFrom('', '', '', 'upper', ' ')).map(([local, id, style]) => {
    // The counter keeps them unique where fast-check repeats a value (its uuids lean to a few).
    const email = `${local}-${id.slice(0, 8)}-${++emailCounter}@fuzz.example.com`;
    return style === 'upper' ? email.toUpperCase() : `${style}${email}${style}`;
  });

/** Names at the documented bounds, which count once surrounding whitespace is trimmed (see contractViolations). */
const nameArb = (schema: Schema) =>
  fc.oneof(
    { weight: 8, arbitrary: validArb(schema, { resolve: (s) => s }) },
    { weight: 1, arbitrary: fc.constantFrom('n'.repeat(100), 'n'.repeat(101), `  ${'p'.repeat(100)}  `, '   ', ' a ') },
  );

function globalHints(spec: Spec, hintsFor: (name: string) => fc.Arbitrary<unknown> | undefined): Hints {
  return {
    resolve,
    property(name, schema) {
      const own = spec.hints?.[name]?.() ?? hintsFor(name);
      if (own) return own;
      if (name === 'name' && schema.type === 'string') return nameArb(schema);
      return undefined;
    },
  };
}

/** Ids the actor can use in bodies and queries. */
function tenantHints(name: string): fc.Arbitrary<unknown> | undefined {
  if (name === 'organization_id')
    return fc.oneof(
      { weight: 9, arbitrary: fc.constantFrom(world.orgA, world.orgA2) },
      // Upper-case hex is a UUID too (the document's pattern allows it).
      { weight: 1, arbitrary: fc.constantFrom(world.orgA.toUpperCase(), world.orgA2.toUpperCase()) },
    );
  if (name === 'template_workspace_id') return fc.constantFrom(...world.wsA, world.accounts.A.workspace);
  if (name === 'expected_version') return fc.constant(EV_CURRENT);
  return undefined;
}

const INT_JUNK = ['0', '-1', '1.0', '1e3', '0x1', 'true', '', ' 1', '99999999999', '1,2', '+5', '٣', 'NaN', '2147483648'];
const UUID_JUNK = [
  'a'.repeat(3000),
  'not-a-uuid',
  '123',
  '00000000-0000-0000-0000-000000000001',
  '12345678-1234-1234-1234-1234567890ab',
  'null',
  'undefined',
  '0',
];

function junkForParam(schema: Schema): string[] {
  if (schema.type === 'integer') return [...INT_JUNK, String((schema.maximum ?? 2 ** 31 - 1) + 1)];
  if (Array.isArray(schema.enum))
    return ['', 'INVALID', String(schema.enum[0]).toUpperCase(), `${String(schema.enum[0])} `, schema.enum.join(',')];
  if (schema.format === 'uuid') return UUID_JUNK;
  return ['q'.repeat((schema.maxLength ?? 100) + 1), 'a\u0000b', '\u0000'];
}

function caseArbitrary(op: Operation, spec: Spec): fc.Arbitrary<Case> {
  const hints = globalHints(spec, tenantHints);
  const hasBody = op.bodySchema !== undefined;
  const readsQuery = (op.method === 'GET' || op.method === 'DELETE') && op.pathParams.length + op.queryParams.length > 0;
  const idemHeader = op.headerParams.some((p) => p.name === 'Idempotency-Key');
  const ifMatchHeader = op.headerParams.some((p) => p.name === 'If-Match');
  const bodyProps = hasBody ? Object.keys(resolve(op.bodySchema!).properties ?? {}) : [];
  const queryNames = op.queryParams.map((p) => p.name);
  const tenantBound = op.pathParams.length > 0 || [...bodyProps, ...queryNames].some((n) => TENANT_FIELDS.includes(n));
  const hasCursor = queryNames.includes('cursor');
  const hasEv = bodyProps.includes('expected_version') || queryNames.includes('expected_version');

  const queryArb: fc.Arbitrary<QueryPick | undefined> = readsQuery
    ? fc
        .tuple(
          fc.record(
            Object.fromEntries(
              op.queryParams
                .filter((p) => p.name !== 'cursor')
                .map((p) => {
                  const hinted = p.name === 'expected_version' ? fc.constant(String(EV_CURRENT)) : undefined;
                  return [p.name, (hinted ?? hints.property?.(p.name, p.schema, [p.name]) ?? validArb(p.schema, hints)).map(String)];
                }),
            ),
            { requiredKeys: op.queryParams.filter((p) => p.required).map((p) => p.name) },
          ),
          hasCursor
            ? fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 2, arbitrary: fc.constant('captured' as const) })
            : fc.constant(undefined),
          fc.nat(),
        )
        .map(([record, cursor, pick]) => ({ pairs: Object.entries(record), cursor, pick }))
    : fc.constant(undefined);

  const validBody = hasBody ? validArb(op.bodySchema!, hints) : fc.constant(undefined);
  const bodyArb: fc.Arbitrary<BodyPick> = hasBody
    ? fc.oneof(
        { weight: 12, arbitrary: validBody.map((value): BodyPick => ({ kind: 'json', value, label: 'valid' })) },
        { weight: 1, arbitrary: validBody.map((value): BodyPick => ({ kind: 'json', value, label: 'gzip', encoding: 'gzip' })) },
        {
          weight: 1,
          arbitrary: fc
            .tuple(validBody, fc.constantFrom('application/json; charset=utf-8', 'Application/JSON', 'application/json ; charset=UTF-8'))
            .map(([value, contentType]): BodyPick => ({ kind: 'json', value, label: 'content type variant', contentType })),
        },
      )
    : fc.constant<BodyPick>({ kind: 'none' });

  const idemArb: fc.Arbitrary<IdemPick | undefined> = idemHeader
    ? fc.oneof(
        { weight: 3, arbitrary: fc.constant<IdemPick>({ mode: 'none' }) },
        {
          weight: 4,
          arbitrary: fc.tuple(fc.stringMatching(/^[\x21-\x7e]{0,40}$/), fc.uuid(), fc.boolean()).map(([prefix, id, long]): IdemPick => ({
            mode: 'fresh',
            key: long ? `${id}${'k'.repeat(255 - id.length)}` : `${prefix}${id}`,
          })),
        },
        { weight: 2, arbitrary: fc.nat().map((pick): IdemPick => ({ mode: 'replay', pick })) },
      )
    : fc.constant(undefined);

  const ifMatchArb: fc.Arbitrary<IfMatchPick | undefined> = ifMatchHeader
    ? fc.constantFrom<IfMatchPick>({ mode: 'none' }, { mode: 'none' }, { mode: 'current' }, { mode: 'star' }, { mode: 'list' })
    : fc.constant(undefined);

  const base: fc.Arbitrary<Case> = fc
    .record({
      actor: fc.constantFrom(...spec.actors),
      params: fc.record(
        Object.fromEntries(
          op.pathParams.map((p) => [
            p.name,
            fc.oneof(
              { weight: 9, arbitrary: fc.nat().map((pick): ParamPick => ({ mode: 'real', pick })) },
              { weight: 1, arbitrary: fc.nat().map((pick): ParamPick => ({ mode: 'upper', pick })) },
            ),
          ]),
        ),
      ),
      query: queryArb,
      body: bodyArb,
      idem: idemArb,
      ifMatch: ifMatchArb,
      unknownId: fc.uuid(),
    })
    .map((b) => ({ ...b, variant: 'valid', auth: 'token', tenant: 'own' as const }));

  const deviations: Array<{ weight: number; arbitrary: fc.Arbitrary<Case> }> = [];
  const dev = (weight: number, make: (b: Case) => fc.Arbitrary<Case>) => deviations.push({ weight, arbitrary: base.chain(make) });

  if (op.secured) dev(6, (b) => fc.constantFrom(...BAD_AUTH).map((auth) => ({ ...b, auth, variant: `auth:${auth}` })));
  if (tenantBound) {
    dev(4, (b) => fc.constant({ ...b, tenant: 'outsider' as const, variant: 'outsider' }));
    dev(3, (b) => fc.constant({ ...b, tenant: 'foreign-id' as const, variant: 'foreign-id' }));
  }
  if ([...bodyProps, ...queryNames].some((n) => TENANT_FIELDS.includes(n)))
    dev(2, (b) => fc.constant({ ...b, tenant: 'unknown-id' as const, variant: 'unknown-id' }));
  if (spec.forbidden) dev(3, (b) => fc.constant({ ...b, actor: spec.forbidden!, variant: 'forbidden' }));
  for (const p of op.pathParams) {
    dev(2, (b) =>
      fc.uuid().map((value) => ({
        ...b,
        params: { ...b.params, [p.name]: { mode: 'unknown' as const, value } },
        variant: `path:unknown ${p.name}`,
      })),
    );
    dev(3, (b) =>
      fc
        .oneof(
          { weight: 3, arbitrary: fc.constantFrom(...UUID_JUNK) },
          { weight: 2, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }).filter((s) => s !== '.' && s !== '..') },
          { weight: 1, arbitrary: fc.uuid().map((u) => `${u}\u0000`) },
        )
        .map((value) => ({ ...b, params: { ...b.params, [p.name]: { mode: 'bad' as const, value } }, variant: `path:bad ${p.name}` })),
    );
    dev(1, (b) =>
      fc.constantFrom('%ZZ', '%E0%A4%A', '%').map((value) => ({
        ...b,
        params: { ...b.params, [p.name]: { mode: 'raw' as const, value } },
        variant: `path:bad-encoding ${p.name}`,
      })),
    );
  }
  if (readsQuery) {
    dev(8, (b) => {
      // One edit each: a captured cursor would bring its own filters back, so none unless the edit is the cursor.
      const q: QueryPick = { pairs: b.query?.pairs ?? [], pick: b.query?.pick ?? 0 };
      const edits: Array<fc.Arbitrary<QueryPick>> = [];
      for (const p of op.queryParams.filter((qp) => qp.name !== 'cursor')) {
        edits.push(
          fc.constantFrom(...junkForParam(p.schema)).map((v) => ({ ...q, pairs: [...q.pairs.filter(([n]) => n !== p.name), [p.name, v]] })),
        );
      }
      const anyName = queryNames.find((n) => n !== 'cursor');
      if (anyName)
        edits.push(
          fc.constant({
            ...q,
            pairs: [...q.pairs.filter(([n]) => n !== anyName), [anyName, '1'], [anyName, '2']] as Array<[string, string]>,
          }),
        );
      const extras: Array<[string, string]> = [
        ['foo', '1'],
        ['limit', '5'],
        ['organization_id', randomUUID()],
        ['expected_version', '1'],
        ['q', 'x'],
        ['', 'x'],
        ['limit[]', '1'],
        ['__proto__', '1'],
        ['constructor', 'x'],
      ];
      const unknownExtras = extras.filter(([name]) => !queryNames.includes(name));
      edits.push(fc.constantFrom(...unknownExtras).map((extra) => ({ ...q, pairs: [...q.pairs, extra] })));
      for (const p of op.pathParams) edits.push(fc.constant({ ...q, pairs: [...q.pairs, [p.name, 'x'] as [string, string]] }));
      if (hasCursor) {
        edits.push(fc.constantFrom<QueryPick['cursor']>('cross', 'tampered').map((cursor) => ({ ...q, cursor })));
        edits.push(
          fc
            .oneof(fc.string({ minLength: 1, maxLength: 60 }), fc.constantFrom('', 'a.b', 'a.b.c', 'x'.repeat(2049), 'eyJwIjpbXX0.'))
            .map((garbage) => ({ ...q, cursor: { garbage } })),
        );
      }
      return fc.oneof(...edits).map((query) => ({ ...b, query, variant: 'query:invalid' }));
    });
  }
  if (hasBody) {
    dev(16, (b) =>
      editedArb(op.bodySchema!, hints, validBody).map(({ value, label }) => ({
        ...b,
        body: { kind: 'json' as const, value, label },
        variant: `body:${label}`,
      })),
    );
    dev(6, (b) =>
      fc
        .oneof(
          validBody.chain((v) => {
            const text = JSON.stringify(v);
            return fc
              .constantFrom(
                text.slice(0, -1),
                `${text},`,
                `{${text}`,
                text.replace('{', '['),
                "{'a': 1}",
                '{"a":}',
                'nul',
                '{"a" 1}',
                `${text}}`,
                '\u00ff\u00fe',
              )
              .filter((t) => !parsesAsJson(t))
              .map((t): BodyPick => ({ kind: 'raw', text: t, label: 'malformed JSON' }));
          }),
          validBody.chain((v) =>
            fc
              .constantFrom('[]', '[{}]', '"text"', '1', 'true', 'null', JSON.stringify([v]))
              .map((t): BodyPick => ({ kind: 'raw', text: t, label: 'non-object JSON' })),
          ),
          fc
            .tuple(
              validBody,
              fc.constantFrom(
                'text/plain',
                'application/x-www-form-urlencoded',
                'multipart/form-data; boundary=x',
                'application/jsonx',
                'application/json-patch+json',
                'text/json',
                '',
                'application/json; charset=iso-8859-1',
                'application/json; charset=utf-16',
              ),
            )
            .map(([v, contentType]): BodyPick => ({ kind: 'json', value: v, label: `content type "${contentType}"`, contentType })),
          fc
            .tuple(validBody, fc.constantFrom<'bad-gzip' | 'compress'>('bad-gzip', 'compress'))
            .map(([v, encoding]): BodyPick => ({ kind: 'json', value: v, label: `encoding ${encoding}`, encoding })),
          fc.constantFrom<BodyPick>({ kind: 'oversize' }, { kind: 'deep' }, { kind: 'none' }, { kind: 'empty' }),
        )
        .map((body) => ({ ...b, body, variant: `body:${body.kind === 'json' || body.kind === 'raw' ? body.label : body.kind}` })),
    );
  } else {
    dev(5, (b) =>
      fc
        .oneof(
          fc
            .dictionary(fc.string({ minLength: 1, maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { minKeys: 1, maxKeys: 3 })
            .map((value): BodyPick => ({ kind: 'json', value, label: 'unexpected body' })),
          fc.constantFrom<BodyPick>(
            { kind: 'raw', text: '[]', label: 'unexpected body' },
            { kind: 'raw', text: '1', label: 'unexpected body' },
            { kind: 'json', value: {}, label: 'empty object' },
          ),
        )
        .map((body) => ({ ...b, body, variant: `body:${body.kind === 'raw' || body.kind === 'json' ? body.label : body.kind}` })),
    );
  }
  if (idemHeader) {
    dev(3, (b) =>
      fc
        .constantFrom('', 'x'.repeat(256), 'has space', 'tab\there', 'caf\u00e9', 'a\u00a0b', '\u00ff')
        .map((key) => ({ ...b, idem: { mode: 'bad' as const, key }, variant: 'header:bad Idempotency-Key' })),
    );
    dev(2, (b) => fc.nat().map((pick) => ({ ...b, idem: { mode: 'mismatch' as const, pick }, variant: 'header:Idempotency-Key reused' })));
  }
  if (ifMatchHeader) {
    const malformed = fc.constantFrom('V', '"V', 'W/V', '"a b"', '"V",', 'W/', '**', '"V" "V"', "'V'");
    dev(3, (b) =>
      malformed.map((template) => ({ ...b, ifMatch: { mode: 'malformed' as const, template }, variant: 'header:malformed If-Match' })),
    );
    dev(1, (b) =>
      malformed.map((template) => ({
        ...b,
        ifMatch: { mode: 'malformed' as const, template },
        tenant: 'outsider' as const,
        variant: 'header:malformed If-Match, outsider',
      })),
    );
    dev(3, (b) =>
      fc
        .constantFrom<IfMatchPick>({ mode: 'stale' }, { mode: 'weak' })
        .map((ifMatch) => ({ ...b, ifMatch, variant: `header:If-Match ${ifMatch.mode}` })),
    );
  }
  if (hasEv)
    dev(2, (b) => fc.constant({ ...b, ifMatch: { mode: 'none' as const }, special: 'ev-stale', variant: 'stale expected_version' }));
  if (hasEv)
    dev(2, (b) =>
      fc.constant({
        ...b,
        ifMatch: { mode: 'current' as const },
        special: 'ev-disagree',
        variant: 'If-Match and expected_version disagree',
      }),
    );
  for (const extra of spec.extras ?? []) {
    dev(extra.weight, (b) => fc.constant({ ...b, special: extra.special, actor: extra.actor ?? b.actor, variant: extra.special }));
  }

  const share = spec.validShare ?? 0.4;
  const deviationWeight = deviations.reduce((sum, d) => sum + d.weight, 0);
  const validWeight = Math.max(1, Math.round((deviationWeight * share) / (1 - share)));
  return fc.oneof({ weight: validWeight, arbitrary: base }, ...deviations);
}

/** A failure's kind: its first line without ids, numbers and quoted values (so one defect counts once). */
const failureKind = (message: string) =>
  (message.split('\n')[0] ?? message)
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, '<id>')
    .replace(/"[^"]*"/g, '"…"');

function parsesAsJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Running one case: resolve it against the live state, decide the expected answer, send, check.

interface Stats {
  requests: number;
  ok: number;
  valid: number;
  statuses: Map<number, number>;
  /** Requests refused only because `name` is blank or over 100 characters once trimmed (see contractViolations). */
  trimmedName: number;
  /** Requests the document accepts but the contract refuses, by reason (for the report). */
  docLooser: Map<string, number>;
  ms: number;
}
const stats = new Map<string, Stats>();

/** Captured next_cursor values: by operation and caller, with the filters they were issued for. */
const cursors: Array<{ op: string; actor: string; filters: string; pairs: Array<[string, string]>; cursor: string }> = [];
/** The workspace lists, whose cursors README says are bound to the caller too. */
const WORKSPACE_LISTS = ['GET /workspaces', 'GET /organizations/{org_id}/workspaces'];
/** Idempotency keys whose first use succeeded: by operation and caller. */
interface IdemEntry {
  op: string;
  /** The input as the fingerprint sees it (path parameters and body). */
  input: string;
  key: string;
  path: string;
  bodyText: string;
  body: any;
  status: number;
  response: any;
  location?: string;
}
const idemHistory = new Map<string, IdemEntry[]>();
/** Operations sharing one idempotency scope (README: the organization-scoped create and POST /workspaces). */
const IDEMPOTENCY_SCOPE: Record<string, string> = {
  'POST /workspaces': 'workspaces.create',
  'POST /organizations/{org_id}/workspaces': 'workspaces.create',
};

/** The input an idempotency fingerprint is taken of: path parameters and body, the organization named alike on both creates. */
function idempotencyInput(op: Operation, params: Record<string, string>, body: unknown): string {
  const input: Record<string, unknown> = isPlainObject(body) ? { ...body } : {};
  for (const [name, value] of Object.entries(params)) input[name === 'org_id' ? 'organization_id' : name] = value.toLowerCase();
  if (typeof input.organization_id === 'string') input.organization_id = input.organization_id.toLowerCase();
  return `${IDEMPOTENCY_SCOPE[op.key] ?? op.key} ${canonical(input)}`;
}

function tokenFor(auth: AuthMode, account: Account | undefined): string | undefined {
  const sub = account?.id ?? randomUUID();
  switch (auth) {
    case 'token':
      return account ? `Bearer ${account.token}` : undefined;
    case 'none':
      return undefined;
    case 'garbage':
      return 'Bearer not-a-token';
    case 'basic':
      return 'Basic dXNlcjpwYXNzd29yZA==';
    case 'forged':
      return `Bearer ${signLocalToken({ sub }, { secret: 'another-secret-that-is-at-least-32-bytes-long' })}`;
    case 'expired':
      return `Bearer ${signLocalToken({ sub, iat: nowSeconds() - 7200, exp: nowSeconds() - 3600 })}`;
    case 'alg-none':
      return `Bearer ${unsignedToken({ sub, iss: 'workspaces-api', aud: 'workspaces-api', iat: nowSeconds(), exp: nowSeconds() + 600, tv: 0 })}`;
    case 'unknown-user':
      return `Bearer ${signLocalToken({ sub: randomUUID() })}`;
    case 'revoked':
      return `Bearer ${deadTokens.length ? deadTokens[deadTokens.length - 1] : signLocalToken({ sub }, { secret: 'yet-another-secret-at-least-32-bytes-long!' })}`;
    case 'huge':
      return `Bearer ${'a.'.repeat(4000)}b`;
    case 'tampered':
      return account ? `Bearer ${account.token.slice(0, -2)}${account.token.endsWith('AA') ? 'BB' : 'AA'}` : 'Bearer x.y.z';
  }
}

const defaultReal: Record<string, (run: RunContext) => string> = {
  org_id: (run) => pickOf([world.orgA, world.orgA2], (run.c.params.org_id as { pick?: number }).pick ?? 0),
  workspace_id: (run) => pickOf(world.wsA, (run.c.params.workspace_id as { pick?: number }).pick ?? 0),
  user_id: (run) =>
    pickOf([world.accounts.A.id, world.accounts.B.id, world.accounts.C.id], (run.c.params.user_id as { pick?: number }).pick ?? 0),
  invitation_id: (run) => pickOf([world.invOrg.id, world.invWs.id], (run.c.params.invitation_id as { pick?: number }).pick ?? 0),
};
const foreignIds = (): Record<string, string> => ({
  org_id: world.orgD,
  workspace_id: world.wsD,
  user_id: world.accounts.D.id,
  invitation_id: world.invD,
  organization_id: world.orgD,
  template_workspace_id: world.wsD,
});

async function versionOf(workspaceId: string | undefined): Promise<number | undefined> {
  if (!workspaceId || !/^[0-9a-f-]{36}$/i.test(workspaceId)) return undefined;
  const rows = await app.query<{ version: number }>('select version from workspaces where id = $1', [workspaceId.toLowerCase()]);
  return rows[0] ? Number(rows[0].version) : undefined;
}

/** If-Match as the README reads it: `*`, or a list of entity tags; the strong numeric tags are the versions named. */
function parseIfMatch(header: string): 'malformed' | { any: boolean; versions: Set<number> } {
  const value = header.trim();
  if (value === '*') return { any: true, versions: new Set() };
  const versions = new Set<number>();
  for (const part of value.split(',')) {
    const tag = /^(W\/)?"([\x21\x23-\x7e]*)"$/.exec(part.trim());
    if (!tag) return 'malformed';
    if (!tag[1] && /^\d{1,10}$/.test(tag[2]!)) versions.add(Number(tag[2]));
  }
  return { any: false, versions };
}

const canonical = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    isPlainObject(v)
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, v[k]]),
        )
      : v,
  );

/** Every string in a JSON value (values, not keys). */
function stringLeaves(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(stringLeaves);
  if (isPlainObject(value)) return Object.values(value).flatMap(stringLeaves);
  return [];
}

function substitute(value: unknown, replace: (key: string, v: unknown) => unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => substitute(v, replace));
  if (!isPlainObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) defineKey(out, key, replace(key, substitute(v, replace)));
  return out;
}

const STATUS_CODES: Record<number, string> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_SUPPORTED',
  409: 'CONFLICT',
  410: 'GONE',
  412: 'PRECONDITION_FAILED',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  422: 'UNPROCESSABLE_CONTENT',
};

const truncate = (text: string, max = 1500) => (text.length > max ? `${text.slice(0, max)}… (${text.length} chars)` : text);

async function runCase(op: Operation, spec: Spec, c: Case, stat: Stats): Promise<void> {
  const run: RunContext = { c, params: {} };
  // The caller.
  // The outsider sends it; or the caller points at the outsider's ids (which D itself could see, so never D then).
  const actor: ActorName = c.tenant === 'outsider' ? 'D' : c.tenant === 'foreign-id' && c.actor === 'D' ? 'A' : c.actor;
  const account = actor === 'P' ? await pool.current() : world.accounts[actor];
  run.account = account;
  const authorization = op.secured ? tokenFor(c.auth, account) : undefined;

  // Path parameters.
  const foreign = foreignIds();
  const segments: Record<string, string> = {};
  for (const p of op.pathParams) {
    const pick = c.params[p.name]!;
    let value: string;
    if (!('value' in pick)) {
      value = c.tenant === 'foreign-id' ? foreign[p.name]! : await (spec.real?.[p.name] ?? defaultReal[p.name]!)(run);
      value = upperMaybe(value, pick.mode === 'upper');
      segments[p.name] = encodeURIComponent(value);
    } else if (pick.mode === 'raw') {
      value = pick.value;
      segments[p.name] = pick.value;
    } else {
      value = pick.value;
      segments[p.name] = encodeURIComponent(value);
    }
    run.params[p.name] = value;
  }
  let path = API + op.path.replace(/\{(\w+)\}/g, (_m, name: string) => segments[name]!);

  // The workspace's version, for If-Match and expected_version.
  const conditional = op.headerParams.some((p) => p.name === 'If-Match');
  const version = (conditional ? await versionOf(run.params.workspace_id) : undefined) ?? 1;
  const stale = version + 1000;
  const evValue = (v: unknown) => (v === EV_CURRENT ? version : v === EV_STALE ? stale : v);
  const tenantValue = (key: string, v: unknown) => {
    if (!TENANT_FIELDS.includes(key) || typeof v !== 'string') return v;
    if (c.tenant === 'foreign-id') return foreign[key];
    if (c.tenant === 'unknown-id') return c.unknownId;
    return v;
  };

  // The query.
  let queryPairs: Array<[string, string]> = [];
  let cursorValid = true;
  if (c.query) {
    queryPairs = c.query.pairs.map(([k, v]): [string, string] => [
      k,
      k === 'expected_version' ? String(evValue(Number(v))) : String(tenantValue(k, v)),
    ]);
    if ((c.special === 'ev-disagree' || c.special === 'ev-stale') && op.queryParams.some((p) => p.name === 'expected_version')) {
      queryPairs = [...queryPairs.filter(([k]) => k !== 'expected_version'), ['expected_version', String(stale)]];
    }
    const cursorMode = c.query.cursor;
    if (cursorMode === 'captured' && c.tenant === 'own') {
      const here = filtersOf([], run.params);
      const mine = cursors.filter((e) => e.op === op.key && e.actor === account?.id && sameParams(e.filters, here));
      if (mine.length) {
        const entry = pickOf(mine, c.query.pick);
        const limit = queryPairs.filter(([k]) => k === 'limit');
        queryPairs = [...entry.pairs, ...limit, ['cursor', entry.cursor]];
      }
    } else if (cursorMode === 'tampered' || cursorMode === 'cross') {
      const filters = filtersOf(queryPairs, run.params);
      const candidates =
        cursorMode === 'tampered'
          ? cursors
          : cursors.filter(
              (e) =>
                (e.op !== op.key && !twinLists(e.op, op.key)) ||
                (e.op === op.key && differsMaterially(e.filters, filters)) ||
                (e.op === op.key && WORKSPACE_LISTS.includes(op.key) && e.actor !== account?.id),
            );
      cursorValid = false;
      if (candidates.length) {
        const cursor = pickOf(candidates, c.query.pick).cursor;
        const at = c.query.pick % cursor.length;
        const flipped = cursorMode === 'tampered' ? cursor.slice(0, at) + (cursor[at] === 'A' ? 'B' : 'A') + cursor.slice(at + 1) : cursor;
        queryPairs.push(['cursor', flipped]);
      } else queryPairs.push(['cursor', 'no-cursor-captured-yet']);
    } else if (cursorMode && typeof cursorMode === 'object') {
      cursorValid = false;
      queryPairs.push(['cursor', cursorMode.garbage]);
    }
    if (queryPairs.length) path += `?${new URLSearchParams(queryPairs).toString()}`;
    run.query = queryPairs;
  }

  // The body.
  const headers: Record<string, string> = {};
  if (authorization) headers.authorization = authorization;
  let bodyBytes: Buffer | undefined;
  let bodyValue: unknown;
  let adapter: number[] | undefined;
  const b = c.body;
  // Placeholders the spec swaps for the live state's values (an invitation's token).
  const swaps = new Map<string, string>();
  if (spec.swap && b.kind === 'json') {
    for (const leaf of stringLeaves(b.value)) {
      if (!leaf.startsWith('token:') || swaps.has(leaf)) continue;
      const value = await spec.swap(run, leaf);
      if (value !== undefined) swaps.set(leaf, value);
    }
  }
  if (b.kind === 'json') {
    bodyValue = substitute(b.value, (key, v) =>
      typeof v === 'string' && swaps.has(v) ? swaps.get(v) : key === 'expected_version' ? evValue(v) : tenantValue(key, v),
    );
    if ((c.special === 'ev-disagree' || c.special === 'ev-stale') && isPlainObject(bodyValue) && op.bodySchema)
      defineKey(bodyValue, 'expected_version', stale);
    const text = JSON.stringify(bodyValue);
    bodyBytes = Buffer.from(text);
    const contentType = b.contentType ?? 'application/json';
    if (contentType) headers['content-type'] = contentType;
    if (b.encoding === 'gzip') {
      bodyBytes = gzipSync(bodyBytes);
      headers['content-encoding'] = 'gzip';
    } else if (b.encoding === 'bad-gzip') {
      headers['content-encoding'] = 'gzip';
      adapter = [400];
    } else if (b.encoding === 'compress') {
      headers['content-encoding'] = 'compress';
      adapter = [415];
    }
    if (!/^application\/json\s*(;|$)/i.test(contentType.trim())) adapter ??= op.bodySchema ? [415] : undefined;
    else if (/charset=iso-8859-1/i.test(contentType)) adapter ??= [415];
    else if (/charset=utf-16/i.test(contentType)) adapter ??= [400, 415];
  } else if (b.kind === 'raw') {
    bodyBytes = Buffer.from(b.text, 'utf8');
    headers['content-type'] = b.contentType ?? 'application/json';
    adapter = [400];
  } else if (b.kind === 'oversize') {
    bodyBytes = Buffer.from(JSON.stringify({ name: 'x'.repeat(1024 * 1024 + 16) }));
    headers['content-type'] = 'application/json';
    adapter = [413];
  } else if (b.kind === 'deep') {
    const depth = 20_000;
    const field = ['metadata', 'features', 'workspaces'].find((k) => Object.hasOwn(resolve(op.bodySchema!).properties ?? {}, k)) ?? 'extra';
    bodyBytes = Buffer.from(`{"${field}":${'['.repeat(depth)}${']'.repeat(depth)}}`);
    headers['content-type'] = 'application/json';
    adapter = [400];
  } else if (b.kind === 'none') {
    // No body at all (no Content-Type either, as `curl -X POST` sends): read as {} (README, Errors).
    if (op.bodySchema) bodyValue = {};
  } else if (b.kind === 'empty') {
    headers['content-type'] = 'application/json';
    bodyValue = {};
    bodyBytes = Buffer.alloc(0);
  }
  if (!op.bodySchema && bodyValue !== undefined) {
    // Operations without a body refuse a non-empty one (README); `{}` is no content.
    if (!(isPlainObject(bodyValue) && Object.keys(bodyValue).length === 0)) adapter = [400];
  }
  run.body = bodyValue;

  // Idempotency-Key.
  // Keys are scoped to the caller and the operation; the two creates of a workspace are one operation.
  const historyKey = `${IDEMPOTENCY_SCOPE[op.key] ?? op.key}|${account?.id}`;
  const history = idemHistory.get(historyKey) ?? [];
  let replayOf: IdemEntry | undefined;
  let mismatch = false;
  let keyReused = false;
  let idemKey: string | undefined;
  let idemBad = false;
  if (c.idem && c.idem.mode !== 'none') {
    const own = history.filter((e) => e.op === op.key);
    if ('key' in c.idem) {
      idemKey = c.idem.key;
      idemBad = !/^[\x21-\x7e]{1,255}$/.test(idemKey.trim());
      // A key generated again (fast-check repeats values, and shrinking resends them): a replay, or a reuse.
      const prior = history.find((e) => e.key === idemKey!.trim());
      if (prior && !idemBad) {
        if (prior.input === idempotencyInput(op, run.params, bodyValue)) replayOf = prior;
        else keyReused = true;
      }
    } else if ('pick' in c.idem && own.length && (c.variant === 'valid' || c.variant === 'header:Idempotency-Key reused')) {
      // Replays resend a stored request as it was: only on cases without another deviation.
      const entry = pickOf(own, c.idem.pick);
      idemKey = entry.key;
      if (c.idem.mode === 'replay') {
        replayOf = entry;
        path = entry.path;
        bodyValue = entry.body;
        run.body = bodyValue;
        bodyBytes = Buffer.from(entry.bodyText);
        headers['content-type'] = 'application/json';
        delete headers['content-encoding'];
        adapter = undefined;
      } else {
        // The stored request with its name changed: the same key with a different input.
        const changed = renamed(entry.body);
        bodyValue = changed;
        run.body = changed;
        path = entry.path;
        bodyBytes = Buffer.from(JSON.stringify(changed));
        headers['content-type'] = 'application/json';
        delete headers['content-encoding'];
        adapter = undefined;
        mismatch = true;
      }
    }
    if (idemKey !== undefined) headers['idempotency-key'] = idemKey;
  }

  // If-Match.
  let ifMatchFacts: { malformed: boolean; stale: boolean; disagree: boolean } = { malformed: false, stale: false, disagree: false };
  if (c.ifMatch && c.ifMatch.mode !== 'none') {
    const m = c.ifMatch;
    const header =
      m.mode === 'current'
        ? `"${version}"`
        : m.mode === 'star'
          ? '*'
          : m.mode === 'list'
            ? `"${version + 7}", "${version}"`
            : m.mode === 'stale'
              ? `"${stale}"`
              : m.mode === 'weak'
                ? `W/"${version}"`
                : 'template' in m
                  ? m.template.replace(/V/g, String(version))
                  : '';
    headers['if-match'] = header;
    const parsed = parseIfMatch(header);
    if (parsed === 'malformed') ifMatchFacts = { ...ifMatchFacts, malformed: true };
    else {
      const ev = expectedVersionOf(bodyValue, queryPairs);
      ifMatchFacts = {
        malformed: false,
        disagree: !parsed.any && ev !== undefined && parsed.versions.size === 1 && !parsed.versions.has(ev),
        stale: !parsed.any && !parsed.versions.has(version),
      };
    }
  }
  const ev = expectedVersionOf(bodyValue, queryPairs);
  if (typeof ev === 'number' && ev !== version) ifMatchFacts.stale = true;

  await spec.prepare?.(run);

  // What the contract says this request must get.
  const invalid: string[] = [];
  let trimmedNameOnly = false;
  let badCursor = false;
  /** A query the service refuses by a rule of its own (queryRule), judged after authorization like a cursor. */
  let badQueryRule = false;
  let docBadCursor = false;
  if (!adapter) {
    const dupes = queryPairs.map(([k]) => k).filter((k, i, all) => all.indexOf(k) !== i);
    if (dupes.length || queryPairs.some(([k]) => op.pathParams.some((p) => p.name === k))) adapter = [400];
  }
  for (const p of op.pathParams) {
    const pick = c.params[p.name]!;
    if (pick.mode === 'raw') adapter ??= [400];
    else if (!validators.compile(p.schema)(run.params[p.name]))
      invalid.push(`path ${p.name} ${describeErrors(validators.compile(p.schema))}`);
  }
  if (c.query) {
    for (const [k, v] of queryPairs) {
      const param = op.queryParams.find((p) => p.name === k);
      if (!param) {
        if (!op.pathParams.some((p) => p.name === k)) invalid.push(`unknown query parameter ${k}`);
        continue;
      }
      if (k === 'cursor') {
        // A well-formed cursor the server did not issue for this query is judged after authorization.
        // The document's pattern too: the server reads it when it decodes the cursor, after authorization.
        if (!validators.compile(param.schema)(v)) docBadCursor = true;
        else if (!cursorValid) badCursor = true;
        continue;
      }
      if (param.schema.type === 'integer') {
        if (!/^\d{1,10}$/.test(v) || Number(v) < (param.schema.minimum ?? 0) || Number(v) > (param.schema.maximum ?? 2 ** 31 - 1))
          invalid.push(`query ${k}=${v}`);
      } else if (!validators.compile(param.schema)(v) || v.includes('\u0000')) invalid.push(`query ${k}=${JSON.stringify(v)}`);
    }
    if (spec.queryRule?.(Object.fromEntries(queryPairs))) badQueryRule = true;
  }
  if (op.bodySchema && bodyValue !== undefined && !adapter) {
    const validate = validators.compile(op.bodySchema);
    validate(bodyValue);
    // Documented trims: `name` takes 1-100 characters and `email` is an email address once
    // surrounding whitespace is trimmed (each schema's description says so), which JSON Schema's
    // keywords on the raw string cannot say; those errors are left to contractViolations' trimmed rules.
    const docErrors = (validate.errors ?? []).filter(
      (e) =>
        !(/\/name$/.test(e.instancePath) && (e.keyword === 'minLength' || e.keyword === 'maxLength')) &&
        !(/\/email$/.test(e.instancePath) && e.keyword === 'format'),
    );
    const docValid = docErrors.length === 0;
    if (!docValid) invalid.push(`body: ${docErrors.map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`).join('; ')}`);
    const contract = isPlainObject(bodyValue) ? contractViolations(bodyValue, op.bodySchema, resolve) : [];
    const rule = isPlainObject(bodyValue) ? spec.bodyRule?.(bodyValue) : undefined;
    if (rule) contract.push(rule);
    if (docValid && contract.length) {
      for (const reason of contract) {
        const bucket = reason.replace(/".*"|\d+/g, '…');
        stat.docLooser.set(bucket, (stat.docLooser.get(bucket) ?? 0) + 1);
      }
      trimmedNameOnly = contract.every((r) => r.includes('after trimming'));
    }
    invalid.push(...contract);
  }
  const referencesTenant =
    op.pathParams.some((p) => ['real', 'upper'].includes(c.params[p.name]!.mode)) ||
    (isPlainObject(bodyValue) && TENANT_FIELDS.some((k) => Object.hasOwn(bodyValue, k))) ||
    queryPairs.some(([k]) => TENANT_FIELDS.includes(k));
  const hidden =
    ((actor === 'D' || c.tenant === 'foreign-id') && referencesTenant) ||
    op.pathParams.some((p) => c.params[p.name]!.mode === 'unknown') ||
    (c.tenant === 'unknown-id' &&
      ((isPlainObject(bodyValue) && TENANT_FIELDS.some((k) => bodyValue[k] === c.unknownId)) ||
        queryPairs.some(([, v]) => v === c.unknownId)));
  const unauth = op.secured && c.auth !== 'token';
  // The caller's access to the workspace, where the answer can still turn on it.
  let refusal: number | undefined;
  const decidedBefore = adapter || unauth || invalid.length > 0 || idemBad || mismatch || keyReused || replayOf;
  if (spec.refusal && !decidedBefore && !hidden && account && isUuid(run.params.workspace_id)) {
    const workspaceId = run.params.workspace_id;
    const facts = await accessFacts(account.id, [workspaceId]);
    refusal = await spec.refusal(run, facts.get(workspaceId.toLowerCase()) ?? NO_WORKSPACE);
  }
  const valid =
    !adapter &&
    invalid.length === 0 &&
    !idemBad &&
    !ifMatchFacts.malformed &&
    !ifMatchFacts.disagree &&
    !badCursor &&
    !docBadCursor &&
    !badQueryRule;

  let expected: number[];
  if (adapter) expected = adapter;
  else if (unauth) expected = [401];
  else if (invalid.length) expected = [400];
  else if (idemBad) expected = [400];
  else if (mismatch) expected = [422];
  // The same key with a different raw input: 422, unless the server's parsed input is the same (a replay).
  else if (keyReused) expected = [422, 201, 404];
  else if (replayOf) expected = [replayOf.status, 404];
  else if (docBadCursor) expected = hidden || refusal ? [400, refusal ?? 404] : [400];
  else if (hidden || refusal === 404) expected = [404];
  else if (refusal === 403) expected = [403];
  else if (c.variant === 'forbidden' && !spec.refusal) expected = [403];
  else if (ifMatchFacts.malformed || ifMatchFacts.disagree) expected = [400];
  else if (ifMatchFacts.stale) expected = [412];
  else if (badCursor || badQueryRule) expected = [400];
  else expected = (await spec.semantic?.(run)) ?? spec.statuses ?? [op.successStatus];

  // Send.
  const started = performance.now();
  const res = await client.send({ method: op.method, path, headers, body: bodyBytes });
  stat.ms += performance.now() - started;
  stat.requests++;
  stat.statuses.set(res.status, (stat.statuses.get(res.status) ?? 0) + 1);
  if (valid) stat.valid++;
  if (trimmedNameOnly) stat.trimmedName++;
  const ok = res.status >= 200 && res.status < 300;
  if (ok) stat.ok++;
  if (LOG)
    appendFileSync(LOG, `${op.key}\t${c.variant}\t${res.status}\t${expected.join('|')}\t${invalid.join('; ')}\t${truncate(path, 200)}\n`);

  // Bookkeeping from the answer.
  if (ok) {
    await acknowledge(op.key, res);
    if (idemKey !== undefined && !replayOf && !mismatch && !keyReused && res.status === 201) {
      const list = idemHistory.get(historyKey) ?? [];
      list.push({
        op: op.key,
        input: idempotencyInput(op, run.params, bodyValue),
        key: idemKey.trim(),
        path,
        bodyText: JSON.stringify(bodyValue),
        body: bodyValue,
        status: res.status,
        response: res.body,
        location: res.headers.location,
      });
      idemHistory.set(historyKey, list);
    }
    if (typeof res.body?.next_cursor === 'string' && account) {
      const pairs = queryPairs.filter(([k]) => k !== 'cursor' && k !== 'limit');
      cursors.push({ op: op.key, actor: account.id, filters: filtersOf(pairs, run.params), pairs, cursor: res.body.next_cursor });
      if (cursors.length > 200) cursors.shift();
    }
  }
  // (Before the checks, so a failing answer still counts for what it acknowledged; the
  // operation's own checks in `after` are reported once the answer's are.)
  let afterError: Error | undefined;
  try {
    await spec.after?.(run, res);
  } catch (error) {
    afterError = error instanceof Error ? error : new Error(String(error));
  }

  const sentBody =
    bodyBytes === undefined ? '(none)' : bodyBytes.length > 4000 ? `(${bodyBytes.length} bytes)` : bodyBytes.toString('utf8');
  const shownHeaders = { ...headers, ...(headers.authorization ? { authorization: `${headers.authorization.slice(0, 16)}…` } : {}) };
  const fail = (why: string): never => {
    throw new Error(
      [
        `${op.key}: ${why}${why.startsWith('status') && invalid.length ? ` (refused by the document or contract: ${invalid.map((r) => failureKind(r).replace(/\d+/g, 'N')).join('; ')})` : ''}`,
        `variant: ${c.variant}`,
        `request: ${op.method} ${truncate(path, 400)}`,
        `headers: ${JSON.stringify(shownHeaders)}`,
        `body: ${truncate(sentBody)}`,
        `expected: ${expected.join(' or ')}${invalid.length ? ` (invalid: ${invalid.join('; ')})` : ''}`,
        `response: ${res.status} ${truncate(res.text)}`,
      ].join('\n'),
    );
  };

  if (res.status >= 500) fail('server error');
  if (!op.statuses.has(res.status)) fail(`status ${res.status} is not documented for the operation`);
  if (!expected.includes(res.status)) {
    if (ok && !valid) fail('invalid input accepted');
    fail(`status ${res.status}, expected ${expected.join(' or ')}`);
  }

  if (ok) {
    if (res.status === 204) {
      if (res.text !== '') fail('204 with a body');
    } else {
      if (!res.json) fail('2xx without a JSON body');
      if (!/^application\/json/.test(String(res.headers['content-type']))) fail(`content-type ${res.headers['content-type']}`);
      if (op.successSchema) {
        const validate = validators.compile(op.successSchema);
        if (!validate(res.body)) fail(`response does not match the documented schema: ${describeErrors(validate)}`);
      }
      for (const [name, header] of Object.entries(op.successHeaders)) {
        const value = res.headers[name.toLowerCase()];
        if (
          name === 'Location' &&
          (typeof value !== 'string' ||
            !value.startsWith(`${API}/`) ||
            (res.body?.id && !value.endsWith(`/${res.body.id}`)) ||
            // A membership: the member's id, under the path's organization or workspace.
            (!res.body?.id && res.body?.user_id && !value.endsWith(`/members/${res.body.user_id}`)) ||
            // An invitation (the create answers it with its token).
            (res.body?.invitation?.id && value !== `${API}/invitations/${res.body.invitation.id}`))
        ) {
          fail(`Location ${String(value)} does not name the created resource`);
        }
        if (header.required && value === undefined) fail(`documented header ${name} missing`);
        if (name === 'ETag' && typeof res.body?.version === 'number' && value !== `"${res.body.version}"`)
          fail(`ETag ${String(value)} is not the version`);
      }
    }
    if (!replayOf && account) {
      const problem = await answerProblem(op, run, account, res.body);
      if (problem) fail(problem);
    }
    if (replayOf) {
      if (res.headers['idempotent-replayed'] !== 'true') fail('a replay without Idempotent-Replayed: true');
      if (canonical(res.body) !== canonical(replayOf.response))
        fail(`the replay's body differs from the first answer: ${JSON.stringify(replayOf.response)}`);
      if (replayOf.location !== undefined && res.headers.location !== replayOf.location)
        fail(`the replay's Location differs: ${replayOf.location}`);
    }
  } else {
    if (!res.json || !isPlainObject(res.body)) fail('error without a JSON body');
    if (!validators.error(res.body)) fail(`error body does not match the documented Error: ${describeErrors(validators.error)}`);
    for (const key of Object.keys(res.body)) if (!['code', 'message', 'issues', 'failed'].includes(key)) fail(`error body has "${key}"`);
    if (typeof res.body.message !== 'string' || res.body.message.length === 0) fail('error without a message');
    if (STATUS_CODES[res.status] && res.body.code !== STATUS_CODES[res.status]) fail(`code ${res.body.code} for status ${res.status}`);
    // An atomic provisioning conflict lists every conflicting item (API.md).
    if (op.key === 'POST /workspaces/provision' && res.status === 409 && !mismatch && !keyReused && !replayOf && isPlainObject(run.body)) {
      const items = Array.isArray(run.body.workspaces) ? run.body.workspaces.length : 0;
      const failed: unknown = res.body.failed;
      if (
        !Array.isArray(failed) ||
        failed.length === 0 ||
        failed.some((f: any) => !Number.isInteger(f?.index) || f.index < 0 || f.index >= items)
      ) {
        fail('a provisioning conflict without the failed items');
      }
    }
    try {
      expectNoStack(res.body, 'body');
    } catch (error) {
      fail(`a stack in the error: ${String(error)}`);
    }
    if (/"stack"|\bat [\w.<>]+ \(/.test(res.text)) fail('a stack in the error text');
  }
  if (afterError !== undefined) throw afterError;
}

/** The organizations `account` belongs to, with its role, as the database has them. */
async function membershipsOf(account: Account): Promise<Map<string, string>> {
  const rows = await app.query<{ organization_id: string; role: string }>(
    'select organization_id, role from memberships where user_id = $1',
    [account.id],
  );
  return new Map(rows.map((r) => [r.organization_id, r.role]));
}

// ---------------------------------------------------------------------------------------------
// Workspace access as the README states it (Workspace access), computed from the stored layers
// and memberships: not from the service's role expression, nor from the two columns it derives.

type WorkspaceRole = 'admin' | 'member' | 'viewer';
type AccessSource = 'organization_role' | 'workspace_member' | 'organization_visibility';
const WORKSPACE_RANK: Record<WorkspaceRole, number> = { viewer: 1, member: 2, admin: 3 };

interface AccessFacts {
  exists: boolean;
  organizationId: string | null;
  /** The user's role in the workspace's organization, or null. */
  organizationRole: string | null;
  /** Their explicit membership's role, or null. */
  explicit: WorkspaceRole | null;
  /** The workspace's effective permissions.visibility, default_role and allow_guests (defaults ← organization ← workspace, locks winning). */
  visibility: string;
  defaultRole: WorkspaceRole;
  allowGuests: boolean;
  /** The effective role (null: no access) and the first source that gives it. */
  role: WorkspaceRole | null;
  source: AccessSource | null;
}

const NO_WORKSPACE: AccessFacts = {
  exists: false,
  organizationId: null,
  organizationRole: null,
  explicit: null,
  visibility: 'organization',
  defaultRole: 'member',
  allowGuests: false,
  role: null,
  source: null,
};

const UUID_TEXT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const isUuid = (value: string | undefined): value is string => typeof value === 'string' && UUID_TEXT.test(value);

type Layer = { permissions?: Record<string, unknown> } | null;

/** One permission as GET …/settings resolves it: the organization's lock keeps its value (or the default). */
function effectivePermission(
  key: 'visibility' | 'default_role' | 'allow_guests',
  organization: Layer,
  locks: string[],
  overrides: Layer,
): string | boolean {
  const inherited = (organization?.permissions?.[key] ?? SYSTEM_DEFAULT_PERMISSIONS[key]) as string | boolean;
  if (locks.includes('permissions') || locks.includes(`permissions.${key}`)) return inherited;
  return (overrides?.permissions?.[key] as string | boolean | undefined) ?? inherited;
}

/** The user's access to each of the workspaces (by lower-case id; absent: no such workspace). */
async function accessFacts(userId: string, workspaceIds: string[]): Promise<Map<string, AccessFacts>> {
  const rows = await app.query<{
    id: string;
    organization_id: string;
    overrides: Layer;
    organization_settings: Layer;
    locks: string[] | null;
    organization_role: string | null;
    explicit: WorkspaceRole | null;
  }>(
    `select w.id, w.organization_id, w.settings as overrides, o.settings as organization_settings, o.settings_locks as locks,
            m.role as organization_role, wm.role as explicit
       from workspaces w
       join organizations o on o.id = w.organization_id
       left join memberships m on m.organization_id = w.organization_id and m.user_id = $1
       left join workspace_members wm on wm.workspace_id = w.id and wm.user_id = $1
      where w.id = any($2::uuid[])`,
    [userId, workspaceIds.filter(isUuid).map((id) => id.toLowerCase())],
  );
  const facts = new Map<string, AccessFacts>();
  for (const row of rows) {
    const locks = row.locks ?? [];
    const visibility = effectivePermission('visibility', row.organization_settings, locks, row.overrides) as string;
    const defaultRole = effectivePermission('default_role', row.organization_settings, locks, row.overrides) as WorkspaceRole;
    const allowGuests = effectivePermission('allow_guests', row.organization_settings, locks, row.overrides) === true;
    const sources: Array<[AccessSource, WorkspaceRole]> = [];
    if (row.organization_role === 'owner' || row.organization_role === 'admin') sources.push(['organization_role', 'admin']);
    // A guest's explicit membership (outside the organization) counts while the workspace allows guests (README).
    if (row.explicit && (row.organization_role || allowGuests)) sources.push(['workspace_member', row.explicit]);
    if (row.organization_role && visibility === 'organization') sources.push(['organization_visibility', defaultRole]);
    const best = Math.max(0, ...sources.map(([, role]) => WORKSPACE_RANK[role]));
    const winner = sources.find(([, role]) => WORKSPACE_RANK[role] === best);
    facts.set(row.id, {
      exists: true,
      organizationId: row.organization_id,
      organizationRole: row.organization_role,
      explicit: row.explicit,
      visibility,
      defaultRole,
      allowGuests,
      role: winner?.[1] ?? null,
      source: winner?.[0] ?? null,
    });
  }
  return facts;
}

const isOrganizationAdmin = (role: string | null | undefined) => role === 'owner' || role === 'admin';

/** README, Workspace access: no access is 404; a role below the one needed (or not the organization's admin), 403. */
function refusalFor(access: AccessFacts, need: WorkspaceRole | 'organizationAdmin'): number | undefined {
  if (!access.role) return 404;
  if (need === 'organizationAdmin') return isOrganizationAdmin(access.organizationRole) ? undefined : 403;
  return WORKSPACE_RANK[access.role] >= WORKSPACE_RANK[need] ? undefined : 403;
}
const needs = (need: WorkspaceRole | 'organizationAdmin') => (_run: RunContext, access: AccessFacts) => refusalFor(access, need);

/** The workspace's explicit members, oldest first (as the list orders them). */
async function workspaceMembersOf(workspaceId: string | undefined) {
  if (!isUuid(workspaceId)) return [];
  return app.query<{ user_id: string; email: string; role: WorkspaceRole }>(
    `select wm.user_id, u.email, wm.role from workspace_members wm join users u on u.id = wm.user_id
      where wm.workspace_id = $1 order by wm.created_at, wm.user_id`,
    [workspaceId.toLowerCase()],
  );
}
const membersText = async (workspaceId: string | undefined) => JSON.stringify(await workspaceMembersOf(workspaceId));

/**
 * What a 2xx answer says beyond its schema: lists show only the caller's tenants (and the
 * organization asked for), creates and updates echo what was asked.
 */
async function answerProblem(op: Operation, run: RunContext, account: Account, body: any): Promise<string | undefined> {
  const asked = isPlainObject(run.body) ? run.body : {};
  const orgParam = run.params.org_id?.toLowerCase();
  switch (op.key) {
    case 'GET /workspaces':
    case 'GET /organizations/{org_id}/workspaces': {
      const mine = await membershipsOf(account);
      const filter = orgParam ?? run.query?.find(([k]) => k === 'organization_id')?.[1]?.toLowerCase();
      const items = body.items as Array<{ id: string; organization_id: string; name: string; slug: string }>;
      const access = await accessFacts(
        account.id,
        items.map((item) => item.id),
      );
      for (const item of items) {
        if (!mine.has(item.organization_id))
          return `lists workspace ${item.id} of organization ${item.organization_id}, which the caller is not in`;
        if (filter && item.organization_id !== filter)
          return `lists workspace ${item.id} of ${item.organization_id}, outside the organization asked for`;
        // A list never shows what a read would refuse (README, Workspace access).
        if (!access.get(item.id)?.role) return `lists workspace ${item.id}, to which the caller has no access`;
      }
      return undefined;
    }
    case 'GET /auth/me': {
      const rows = await app.query<{ workspace_id: string; organization_id: string; role: string }>(
        `select wm.workspace_id, w.organization_id, wm.role from workspace_members wm join workspaces w on w.id = wm.workspace_id
          where wm.user_id = $1 order by wm.created_at, wm.workspace_id`,
        [account.id],
      );
      if (canonical(body.workspace_memberships) !== canonical(rows))
        return `workspace_memberships ${JSON.stringify(body.workspace_memberships)}; stored: ${JSON.stringify(rows)}`;
      return undefined;
    }
    case 'GET /workspaces/{workspace_id}/members': {
      const stored = await workspaceMembersOf(run.params.workspace_id);
      const items = body.items as Array<{ user_id: string; email: string; role: string }>;
      const shown = items.map(({ user_id, email, role }) => ({ user_id, email, role }));
      const hasCursor = run.query?.some(([k]) => k === 'cursor');
      const limit = Number(run.query?.find(([k]) => k === 'limit')?.[1] ?? 20);
      const at = shown.length ? stored.findIndex((m) => m.user_id === shown[0]!.user_id) : 0;
      // Oldest first, a contiguous run of the stored members: from the first one when no cursor was sent.
      if ((!hasCursor && at !== 0) || at < 0 || canonical(shown) !== canonical(stored.slice(at, at + shown.length)))
        return `lists ${JSON.stringify(shown)}; stored, oldest first: ${JSON.stringify(stored)}`;
      if (shown.length > limit) return `${shown.length} members on a page of ${limit}`;
      if (!hasCursor && shown.length < Math.min(limit, stored.length)) return `${shown.length} of ${stored.length} members on a first page`;
      return undefined;
    }
    case 'GET /workspaces/{workspace_id}/members/{user_id}':
    case 'PUT /workspaces/{workspace_id}/members/{user_id}':
    case 'POST /workspaces/{workspace_id}/members': {
      const userId = (run.params.user_id ?? String(asked.user_id)).toLowerCase();
      const stored = (await workspaceMembersOf(run.params.workspace_id)).find((m) => m.user_id === userId);
      if (body.user_id !== userId) return `answers member ${body.user_id}, asked ${userId}`;
      if (!stored || stored.role !== body.role || stored.email !== body.email)
        return `answers ${JSON.stringify(body)}; stored: ${JSON.stringify(stored ?? null)}`;
      if (op.method === 'PUT' && body.role !== asked.role) return `role ${body.role}, asked ${String(asked.role)}`;
      if (op.method === 'POST') {
        // No role: the workspace's effective default role (README).
        const facts = (await accessFacts(userId, [run.params.workspace_id!])).get(run.params.workspace_id!.toLowerCase());
        const role = asked.role ?? facts?.defaultRole;
        if (body.role !== role) return `added as ${body.role}, expected ${JSON.stringify(role)}`;
      }
      return undefined;
    }
    case 'GET /workspaces/{workspace_id}/access': {
      const workspaceId = run.params.workspace_id!.toLowerCase();
      const userId = (run.query?.find(([k]) => k === 'user_id')?.[1] ?? account.id).toLowerCase();
      const facts = (await accessFacts(userId, [workspaceId])).get(workspaceId) ?? NO_WORKSPACE;
      // A guest: explicitly in the workspace without being in its organization (README).
      const guest = facts.organizationRole === null && facts.explicit !== null;
      const expected = { workspace_id: workspaceId, user_id: userId, role: facts.role, source: facts.source, guest };
      if (canonical(body) !== canonical(expected))
        return `answers ${JSON.stringify(body)}; the README's rules give ${JSON.stringify(expected)}`;
      return undefined;
    }
    case 'GET /organizations': {
      const mine = await membershipsOf(account);
      for (const item of body.items as Array<{ id: string; role: string }>) {
        if (mine.get(item.id) !== item.role)
          return `lists organization ${item.id} as ${item.role}; the caller's role there is ${mine.get(item.id) ?? 'none'}`;
      }
      return undefined;
    }
    case 'GET /organizations/{org_id}/members': {
      const rows = await app.query<{ user_id: string }>('select user_id from memberships where organization_id = $1', [orgParam]);
      const members = new Set(rows.map((r) => r.user_id));
      for (const item of body.items as Array<{ user_id: string }>) {
        if (!members.has(item.user_id)) return `lists ${item.user_id}, who is not a member of ${orgParam}`;
      }
      return undefined;
    }
    case 'POST /workspaces':
    case 'POST /organizations/{org_id}/workspaces':
    case 'POST /workspaces/{workspace_id}/clone':
    case 'PUT /workspaces/{workspace_id}': {
      const org = orgParam ?? (typeof asked.organization_id === 'string' ? asked.organization_id.toLowerCase() : undefined);
      if (org && body.organization_id !== org) return `created in ${body.organization_id}, not in ${org}`;
      if (typeof asked.name === 'string' && body.name !== asked.name.trim())
        return `name ${JSON.stringify(body.name)}, asked ${JSON.stringify(asked.name)}`;
      if (typeof asked.slug === 'string' && body.slug !== asked.slug)
        return `slug ${JSON.stringify(body.slug)}, asked ${JSON.stringify(asked.slug)}`;
      if (
        op.key.endsWith('/clone') &&
        (body.cloned_from_id !== run.params.workspace_id?.toLowerCase() || body.is_default !== false || body.version !== 1)
      ) {
        return `a clone with cloned_from_id ${body.cloned_from_id}, is_default ${body.is_default}, version ${body.version}`;
      }
      return undefined;
    }
    case 'POST /workspaces/provision': {
      const items = Array.isArray(asked.workspaces) ? asked.workspaces.length : 0;
      if (body.created.length + body.failed.length !== items)
        return `${body.created.length} created + ${body.failed.length} failed for ${items} items`;
      if (asked.mode !== 'partial' && body.failed.length) return 'atomic provisioning answered 201 with failed items';
      const org = typeof asked.organization_id === 'string' ? asked.organization_id.toLowerCase() : undefined;
      for (const w of body.created as Array<{ organization_id: string }>)
        if (w.organization_id !== org) return `provisioned into ${w.organization_id}, not ${org}`;
      return undefined;
    }
    case 'POST /organizations/{org_id}/invitations':
    case 'POST /workspaces/{workspace_id}/invitations': {
      const invitation = body.invitation as Record<string, unknown>;
      const workspaceId = run.params.workspace_id?.toLowerCase() ?? null;
      const [stored] = await app.query<{ token_hash: string }>('select token_hash from invitations where id = $1', [invitation.id]);
      if (!stored) return `answers invitation ${String(invitation.id)}, which is not stored`;
      if (stored.token_hash !== sha256(String(body.token))) return 'the token answered is not the one stored';
      if (!/^[A-Za-z0-9_-]{43}$/.test(String(body.token))) return `a token of another shape: ${String(body.token).length} characters`;
      if (canonical(invitation) !== canonical(await invitationById(String(invitation.id))))
        return `answers ${JSON.stringify(invitation)}; stored: ${JSON.stringify(await invitationById(String(invitation.id)))}`;
      const organizationId =
        orgParam ??
        (await app.query<{ organization_id: string }>('select organization_id from workspaces where id = $1', [workspaceId]))[0]
          ?.organization_id;
      // A workspace invitation is a guest's when the email is not an organization member's (README).
      const member = await app.query(
        'select 1 from memberships m join users u on u.id = m.user_id where m.organization_id = $1 and lower(u.email) = $2',
        [organizationId, lower(asked.email)],
      );
      const expected = {
        organization_id: organizationId,
        workspace_id: workspaceId,
        email: String(asked.email).trim(),
        role: asked.role,
        kind: workspaceId && member.length === 0 ? 'guest' : 'member',
        status: 'pending',
        invited_by: account.id,
        accepted_at: null,
        accepted_user_id: null,
      };
      const answered = Object.fromEntries(Object.keys(expected).map((k) => [k, invitation[k]]));
      if (canonical(answered) !== canonical(expected)) return `answers ${JSON.stringify(answered)}; asked for ${JSON.stringify(expected)}`;
      const ttl = Date.parse(String(invitation.expires_at)) - Date.parse(String(invitation.created_at));
      if (ttl !== INVITATION_TTL_HOURS * 3600 * 1000) return `expires ${ttl} ms after it was made`;
      return undefined;
    }
    case 'GET /organizations/{org_id}/invitations':
    case 'GET /workspaces/{workspace_id}/invitations': {
      const workspaceId = run.params.workspace_id?.toLowerCase();
      const status = run.query?.find(([k]) => k === 'status')?.[1];
      const items = body.items as Array<{
        id: string;
        organization_id: string;
        workspace_id: string | null;
        status: string;
        created_at: string;
      }>;
      for (const [i, item] of items.entries()) {
        if ('token' in item) return `lists invitation ${item.id} with its token`;
        if (orgParam && item.organization_id !== orgParam) return `lists invitation ${item.id} of ${item.organization_id}`;
        if (workspaceId && item.workspace_id !== workspaceId) return `lists invitation ${item.id} of workspace ${item.workspace_id}`;
        if (status && item.status !== status) return `lists a ${item.status} invitation when asked for ${status}`;
        const previous = items[i - 1];
        if (previous && (previous.created_at < item.created_at || (previous.created_at === item.created_at && previous.id < item.id)))
          return `lists ${previous.id} before the newer ${item.id}`;
        const stored = await invitationById(item.id);
        if (!stored || canonical(item) !== canonical(stored)) return `lists ${JSON.stringify(item)}; stored: ${JSON.stringify(stored)}`;
      }
      return undefined;
    }
    case 'GET /invitations/{invitation_id}': {
      const stored = await invitationById(run.params.invitation_id!.toLowerCase());
      if (canonical(body) !== canonical(stored)) return `answers ${JSON.stringify(body)}; stored: ${JSON.stringify(stored)}`;
      return undefined;
    }
    case 'POST /invitations/{invitation_id}/resend': {
      const stored = await invitationById(run.params.invitation_id!.toLowerCase());
      if (canonical(body.invitation) !== canonical(stored))
        return `answers ${JSON.stringify(body.invitation)}; stored: ${JSON.stringify(stored)}`;
      if (body.invitation.status !== 'pending') return `a resent invitation is ${body.invitation.status}`;
      return undefined;
    }
    case 'POST /invitations/preview': {
      const row = await invitationByToken(asked.token);
      if (!row) return 'previews a token no invitation has';
      const [names] = await app.query<{ organization_name: string; workspace_name: string | null }>(
        `select o.name as organization_name, w.name as workspace_name from organizations o left join workspaces w on w.id = $2
          where o.id = $1`,
        [row.organization_id, row.workspace_id],
      );
      const expected = { ...names, role: row.role, expires_at: row.expires_at, status: statusNow(row) };
      if (canonical(body) !== canonical(expected)) return `previews ${JSON.stringify(body)}; stored: ${JSON.stringify(expected)}`;
      return undefined;
    }
    case 'POST /invitations/accept':
    case 'POST /invitations/decline': {
      const stored = await invitationById(body.invitation.id);
      if (canonical(body.invitation) !== canonical(stored))
        return `answers ${JSON.stringify(body.invitation)}; stored: ${JSON.stringify(stored)}`;
      if (op.key.endsWith('/decline')) return body.invitation.status === 'declined' ? undefined : `declined: ${body.invitation.status}`;
      const invitation = body.invitation as { organization_id: string; workspace_id: string | null; role: string };
      // P is in no organization it is invited to: a workspace invitation makes it a guest.
      const expected = {
        organization_id: invitation.organization_id,
        workspace_id: invitation.workspace_id,
        user_id: account.id,
        role: invitation.role,
        guest: invitation.workspace_id !== null,
      };
      if (canonical(body.membership) !== canonical(expected))
        return `membership ${JSON.stringify(body.membership)}, expected ${JSON.stringify(expected)}`;
      if (body.invitation.accepted_user_id !== account.id) return `accepted_user_id ${body.invitation.accepted_user_id}`;
      return undefined;
    }
    default:
      return undefined;
  }
}

/** An invitation as the API shows it, from the stored row (status computed), or undefined. */
async function invitationById(id: string) {
  if (!isUuid(id)) return undefined;
  const [row] = await app.query<Record<string, unknown> & { status: string; expired: boolean }>(
    `select id, organization_id, workspace_id, email, role, kind, status, invited_by, ${isoSql('expires_at')} as expires_at,
            ${isoSql('created_at')} as created_at,
            case when accepted_at is null then null else ${isoSql('accepted_at')} end as accepted_at, accepted_user_id,
            expires_at <= $2::timestamptz as expired
       from invitations where id = $1`,
    [id.toLowerCase(), new Date().toISOString()],
  );
  if (!row) return undefined;
  const { expired, ...invitation } = row;
  return { ...invitation, status: statusNow({ status: row.status, expired }) };
}

/** The list filters a cursor is bound to (defaults filled in, so `sort=created_at` equals no sort). */
function filtersOf(pairs: Array<[string, string]>, params: Record<string, string>): string {
  const filters: Record<string, string> = { sort: 'created_at', order: 'asc' };
  for (const [k, v] of pairs) if (k !== 'cursor' && k !== 'limit') filters[k] = v;
  // As sent: the server binds a cursor to the id's text, so an upper-cased id is another query.
  for (const [k, v] of Object.entries(params)) filters[`path:${k}`] = v;
  return canonical(filters);
}

/** The same path parameters (a list's organization). */
function sameParams(a: string, b: string): boolean {
  const x = JSON.parse(a) as Record<string, string>;
  const y = JSON.parse(b) as Record<string, string>;
  const keys = new Set([...Object.keys(x), ...Object.keys(y)].filter((k) => k.startsWith('path:')));
  return [...keys].every((k) => x[k] === y[k]);
}

/** Differs in a filter whose every value is a different query (not only `q`, where "" may equal none). */
function differsMaterially(a: string, b: string): boolean {
  const x = JSON.parse(a) as Record<string, string>;
  const y = JSON.parse(b) as Record<string, string>;
  return ['sort', 'order', 'organization_id', 'path:org_id', 'path:workspace_id'].some(
    (k) => (x[k] ?? '').toLowerCase() !== (y[k] ?? '').toLowerCase(),
  );
}

/** The two workspace lists are one query (API.md): a cursor may well pass between them. */
const twinLists = (a: string, b: string) => [a, b].every((k) => k === 'GET /workspaces' || k === 'GET /organizations/{org_id}/workspaces');

function expectedVersionOf(body: unknown, query: Array<[string, string]>): number | undefined {
  if (isPlainObject(body) && typeof body.expected_version === 'number') return body.expected_version;
  const pair = query.find(([k]) => k === 'expected_version');
  return pair && /^\d{1,10}$/.test(pair[1]) ? Number(pair[1]) : undefined;
}

let renameCounter = 0;
/** The same request with a materially different name (top-level, or the first provisioning item's). */
function renamed(body: any): unknown {
  const name = `Other ${++renameCounter}`;
  if (Array.isArray(body?.workspaces))
    return applyEdit(body, { op: 'set', path: ['workspaces', 0, 'name'], value: name, label: 'rename' } satisfies Edit);
  return applyEdit(body, { op: 'set', path: ['name'] as Path, value: name, label: 'rename' });
}

// ---------------------------------------------------------------------------------------------
// The operations: who may call them, which ids they take, what a valid call must answer.

const READERS: ActorName[] = ['A', 'B', 'C'];
const WRITERS: ActorName[] = ['A', 'B'];
const EVERYONE: ActorName[] = ['A', 'B', 'C', 'D'];

let sacrificialOrg: string | undefined;
let sacrificialWorkspace: string | undefined;
let archivableWorkspace: string | undefined;
let s2InOrgDel = false;

const lower = (s: unknown) => (typeof s === 'string' ? s.trim().toLowerCase() : '');
const bodyOf = (run: RunContext) => (isPlainObject(run.body) ? run.body : {});

async function exists(table: 'organizations' | 'workspaces' | 'users', id: string): Promise<boolean> {
  return (await app.query(`select 1 from ${table} where id = $1`, [id.toLowerCase()])).length > 0;
}

/** Fails when a refused delete removed its target (an existing row the case named) anyway. */
async function stillThere(run: RunContext, res: RawResponse, table: 'organizations' | 'workspaces', param: string) {
  const id = run.params[param];
  const named = run.c.params[param];
  if (!id || !named || 'value' in named) return;
  if (res.status !== 204 && !(await exists(table, id))) {
    throw new Error(`${run.c.variant}: answered ${res.status} but ${table} ${id} is gone`);
  }
}

/** After a logout or account deletion: the token must stop working. */
async function tokenDead(account: Account) {
  deadTokens.push(account.token);
  const me = await client.send({ method: 'GET', path: `${API}/auth/me`, headers: { authorization: `Bearer ${account.token}` } });
  if (me.status !== 401) throw new Error(`the token still answers ${me.status} after logout/deletion`);
}

const SPECS: Record<string, Spec> = {
  'POST /auth/signup': {
    actors: ['A'],
    // Each valid signup hashes a password (scrypt, ~50 ms, on libuv's threads): a few at once.
    validShare: 0.35,
    concurrency: 4,
    hints: {
      email: () =>
        fc.oneof(
          { weight: 9, arbitrary: freshEmail() },
          { weight: 1, arbitrary: fc.constantFrom(...Object.values(world.accounts).map((a) => a.email.toUpperCase())) },
        ),
    },
    semantic: (run) => (accounts.has(lower(bodyOf(run).email)) ? [409] : [201]),
    after(run, res) {
      if (res.status !== 201) return Promise.resolve();
      const body = bodyOf(run);
      const account: Account = {
        id: res.body.user.id,
        email: String(body.email).trim(),
        password: String(body.password),
        token: res.body.access_token,
        org: res.body.organization.id,
        workspace: res.body.workspace.id,
      };
      accounts.set(account.email.toLowerCase(), account);
      if (pool.live.length < 400) pool.live.push(account);
      return Promise.resolve();
    },
  },
  'POST /auth/login': {
    actors: ['A'],
    // A valid login hashes a password (as do wrong passwords and unknown emails): a few at once.
    validShare: 0.4,
    concurrency: 4,
    hints: {
      email: () =>
        fc.oneof(
          { weight: 6, arbitrary: fc.constantFrom(...Object.values(world.accounts).map((a) => a.email)) },
          { weight: 1, arbitrary: fc.constantFrom(...Object.values(world.accounts).map((a) => ` ${a.email.toUpperCase()} `)) },
          { weight: 1, arbitrary: freshEmail() },
        ),
      password: () => fc.oneof({ weight: 6, arbitrary: fc.constant(PASSWORD) }, { weight: 1, arbitrary: fc.string({ maxLength: 20 }) }),
    },
    semantic(run) {
      const body = bodyOf(run);
      const account = accounts.get(lower(body.email));
      return account && account.password === body.password ? [200] : [401];
    },
  },
  'POST /auth/logout': {
    actors: ['P'],
    async after(run, res) {
      if (res.status === 204 && run.account) {
        await tokenDead(run.account);
        // The account lives on: a token of its new version (what a login would issue, minus the
        // password hash a login costs) lets the next logout use it again.
        const [row] = await app.query<{ token_version: number }>('select token_version from users where id = $1', [run.account.id]);
        run.account.token = signLocalToken({ sub: run.account.id, tv: Number(row!.token_version) });
      }
    },
  },
  'GET /auth/me': { actors: EVERYONE },
  'DELETE /auth/me': {
    actors: ['P'],
    // Each valid call uses up an account: the signups' (or new ones, eight at a time).
    validShare: 0.3,
    // E owns an organization with another member: deleting E must be refused.
    extras: [{ weight: 4, special: 'blocked', actor: 'E' }],
    semantic: (run) => (run.c.special === 'blocked' ? [409] : undefined),
    async after(run, res) {
      if (!run.account) return;
      if (res.status === 204) {
        pool.consume(run.account);
        accounts.delete(run.account.email.toLowerCase());
        await tokenDead(run.account);
      } else if (!(await exists('users', run.account.id))) {
        throw new Error(`${run.c.variant}: answered ${res.status} but the account is gone`);
      }
    },
  },
  'GET /organizations': { actors: EVERYONE },
  'POST /organizations': { actors: EVERYONE, statuses: [201, 409] },
  'GET /organizations/{org_id}': { actors: READERS },
  'PUT /organizations/{org_id}': {
    actors: WRITERS,
    forbidden: 'C',
    statuses: [200, 409],
    // Organization slugs are unique service-wide: random ones collide (409), so more valid requests.
    validShare: 0.5,
    // README: at least one of name, slug (the document's schema has no `required`/`minProperties`).
    bodyRule: (body) => (body.name === undefined && body.slug === undefined ? 'no name or slug (README: at least one)' : undefined),
  },
  'DELETE /organizations/{org_id}': {
    actors: ['A'],
    // B is an admin of A's second organization, not an owner: 403 (and it stays).
    forbidden: 'B',
    real: {
      async org_id(run) {
        if (run.c.variant === 'forbidden') return world.orgA2;
        sacrificialOrg ??= await createOrganization(world.accounts.A.token, `Doomed ${randomUUID().slice(0, 8)}`);
        return sacrificialOrg;
      },
    },
    async after(run, res) {
      const target = run.params.org_id?.toLowerCase();
      if (res.status === 204 && target === sacrificialOrg) sacrificialOrg = undefined;
      await stillThere(run, res, 'organizations', 'org_id');
    },
  },
  'GET /organizations/{org_id}/settings': { actors: READERS },
  'PUT /organizations/{org_id}/settings': {
    actors: WRITERS,
    forbidden: 'C',
    // Locks on paths no other generated write uses, so the fixtures stay writable, and paths that name nothing.
    hints: {
      locks: () =>
        fc.oneof(
          { weight: 3, arbitrary: fc.subarray(['features.fuzz_locked', 'integrations.fuzz-locked.config', 'integrations.fuzz-locked']) },
          { weight: 1, arbitrary: fc.constant(null) },
          { weight: 1, arbitrary: fc.array(fc.string({ maxLength: 30 }), { minLength: 1, maxLength: 3 }) },
        ),
    },
    // README, Locked settings: each path must name a part of the settings document.
    bodyRule: (body) =>
      Array.isArray(body.locks) && body.locks.some((path) => typeof path !== 'string' || !parseSettingsPath(path))
        ? 'a lock path that names nothing in the settings document'
        : undefined,
  },
  'GET /organizations/{org_id}/members': { actors: READERS },
  'GET /organizations/{org_id}/members/{user_id}': { actors: READERS, real: { org_id: () => world.orgA } },
  'PUT /organizations/{org_id}/members/{user_id}': {
    actors: ['A'],
    forbidden: 'C',
    real: {
      org_id: () => world.orgRole,
      user_id: (run) => pickOf([world.spares[0]!.id, world.spares[1]!.id], (run.c.params.user_id as { pick?: number }).pick ?? 0),
    },
  },
  'DELETE /organizations/{org_id}/members/{user_id}': {
    actors: ['A'],
    forbidden: 'C',
    // A is the only owner of that organization: removing A must be refused.
    extras: [{ weight: 3, special: 'last-owner' }],
    real: {
      org_id: () => world.orgDel,
      async user_id(run) {
        if (run.c.special === 'last-owner') return world.accounts.A.id;
        if (!s2InOrgDel) {
          await addMember(world.accounts.A, world.orgDel, world.spares[2]!, 'member');
          s2InOrgDel = true;
        }
        return world.spares[2]!.id;
      },
    },
    semantic: (run) => (run.c.special === 'last-owner' ? [409] : undefined),
    async after(run, res) {
      const org = run.params.org_id?.toLowerCase();
      const user = run.params.user_id?.toLowerCase();
      if (org !== world.orgDel) return;
      if (res.status === 204 && user === world.spares[2]!.id) s2InOrgDel = false;
      // A refused removal leaves the membership in place.
      if (res.status !== 204 && (user === world.accounts.A.id || (user === world.spares[2]!.id && s2InOrgDel))) {
        const rows = await app.query('select 1 from memberships where organization_id = $1 and user_id = $2', [org, user]);
        if (rows.length === 0) throw new Error(`${run.c.variant}: answered ${res.status} but the membership is gone`);
      }
    },
  },
  'GET /organizations/{org_id}/workspaces': { actors: READERS },
  'POST /organizations/{org_id}/workspaces': { actors: WRITERS, forbidden: 'C', statuses: [201, 409] },
  'POST /workspaces': { actors: WRITERS, forbidden: 'C', statuses: [201, 409] },
  'GET /workspaces': { actors: EVERYONE },
  'POST /workspaces/provision': { actors: WRITERS, forbidden: 'C', statuses: [201, 409] },
  'GET /workspaces/{workspace_id}': { actors: READERS, refusal: needs('viewer') },
  'PUT /workspaces/{workspace_id}': {
    actors: WRITERS,
    forbidden: 'C',
    statuses: [200, 409],
    // Moving is_default is the organization's admins' (README, Workspace access).
    refusal: (run, access) => refusalFor(access, bodyOf(run).is_default === true ? 'organizationAdmin' : 'admin'),
    // Random slugs collide often among a handful of workspaces (409), so more valid requests.
    validShare: 0.5,
    // README: at least one of name, slug, description, metadata, is_default.
    bodyRule: (body) =>
      ['name', 'slug', 'description', 'metadata', 'is_default'].some((k) => body[k] !== undefined)
        ? undefined
        : 'no field to change (README: at least one)',
  },
  'DELETE /workspaces/{workspace_id}': {
    actors: WRITERS,
    forbidden: 'C',
    refusal: needs('organizationAdmin'),
    // The default workspace cannot be deleted.
    extras: [{ weight: 3, special: 'default' }],
    real: {
      async workspace_id(run) {
        if (run.c.special === 'default') return defaultWorkspaceOfA();
        sacrificialWorkspace ??= await createWorkspace(world.accounts.A.token, world.orgA, `Doomed ${randomUUID().slice(0, 8)}`);
        return sacrificialWorkspace;
      },
    },
    semantic: (run) => (run.c.special === 'default' ? [409] : undefined),
    async after(run, res) {
      const target = run.params.workspace_id?.toLowerCase();
      if (res.status === 204 && target === sacrificialWorkspace) sacrificialWorkspace = undefined;
      await stillThere(run, res, 'workspaces', 'workspace_id');
    },
  },
  'POST /workspaces/{workspace_id}/clone': {
    actors: WRITERS,
    forbidden: 'C',
    statuses: [201, 409],
    // Read access to the source, then the admin role in the target organization (its own, or the one named).
    async refusal(run, access) {
      if (!access.role) return 404;
      const target = lower(bodyOf(run).organization_id) || access.organizationId!;
      const role = (await membershipsOf(run.account!)).get(target);
      return role === undefined ? 404 : isOrganizationAdmin(role) ? undefined : 403;
    },
  },
  'GET /workspaces/{workspace_id}/settings': { actors: READERS, refusal: needs('viewer') },
  // 409: a write under one of the organization's locks, which PUT organization settings may set.
  'PUT /workspaces/{workspace_id}/settings': { actors: WRITERS, forbidden: 'C', statuses: [200, 409], refusal: needs('admin') },
  'POST /workspaces/{workspace_id}/archive': {
    actors: WRITERS,
    forbidden: 'C',
    refusal: needs('admin'),
    // The default workspace cannot be archived. The others archive a workspace of their own, so the
    // fixtures other operations write to stay writable.
    extras: [{ weight: 3, special: 'default' }],
    real: {
      async workspace_id(run) {
        if (run.c.special === 'default') return defaultWorkspaceOfA();
        return archivable();
      },
    },
    semantic: (run) => (run.c.special === 'default' ? [409] : undefined),
  },
  'POST /workspaces/{workspace_id}/restore': {
    actors: WRITERS,
    forbidden: 'C',
    refusal: needs('admin'),
    real: { workspace_id: () => archivable() },
  },
  'GET /organizations/{org_id}/events': { actors: WRITERS, forbidden: 'C', queryRule: eventWindowRule },
  'GET /workspaces/{workspace_id}/events': {
    actors: READERS,
    refusal: needs('viewer'),
    queryRule: eventWindowRule,
    // Generated settings writes leave some of the fixtures private (C: 404), and about half of
    // the generated windows have `since` after `until` (400): more valid requests.
    validShare: 0.5,
  },

  // Workspace members and access (README, Workspace access). Each write has a workspace of its
  // own, visible to the organization with default role member by its own overrides (so C stays
  // a plain member there, whatever the organization's generated settings say).
  'GET /workspaces/{workspace_id}/members': {
    actors: READERS,
    refusal: needs('viewer'),
    real: { workspace_id: (run) => pickOf(memberWorkspaces(), pickIn(run, 'workspace_id')) },
  },
  'POST /workspaces/{workspace_id}/members': {
    actors: WRITERS,
    forbidden: 'C',
    // A third of the valid ones name someone outside the organization (404) or a member (409).
    validShare: 0.5,
    refusal: needs('admin'),
    real: { workspace_id: () => world.wsAdd },
    hints: {
      user_id: () =>
        fc.oneof(
          { weight: 6, arbitrary: fc.constantFrom(world.wsUsers[0]!.id, world.wsUsers[1]!.id) },
          { weight: 1, arbitrary: fc.constantFrom(world.wsUsers[0]!.id.toUpperCase(), world.wsUsers[1]!.id.toUpperCase()) },
          // A member from the start (409); not a member of the organization, or no account at all (404).
          { weight: 1, arbitrary: fc.constant(world.accounts.A.id) },
          { weight: 1, arbitrary: fc.constantFrom(world.accounts.D.id, world.spares[0]!.id) },
          { weight: 1, arbitrary: fc.uuid() },
        ),
    },
    async prepare(run) {
      // W0 or W1 about to be added leaves first, so the add can succeed.
      const userId = lower(bodyOf(run).user_id);
      if (
        lower(run.params.workspace_id) === world.wsAdd &&
        world.wsUsers.slice(0, 2).some((w) => w.id === userId) &&
        (await isWorkspaceMember(world.wsAdd, userId))
      ) {
        await removeWorkspaceMember(world.wsAdd, userId);
      }
      run.membersBefore = await membersText(run.params.workspace_id);
    },
    semantic: (run) => memberAddAnswer(run.params.workspace_id!, lower(bodyOf(run).user_id)),
    after: (run, res) => membersUnchangedUnless(run, res, 201),
  },
  'GET /workspaces/{workspace_id}/members/{user_id}': {
    actors: READERS,
    refusal: needs('viewer'),
    real: {
      workspace_id: (run) => pickOf(memberWorkspaces(), pickIn(run, 'workspace_id')),
      // Mostly one of the workspace's members (as the fixtures and the writes before leave them); C, mostly none (404).
      user_id(run) {
        const members: Record<string, string[]> = {
          [world.wsPrivate]: [world.wsUsers[2]!.id],
          [world.wsAdd]: [world.accounts.A.id, world.wsUsers[0]!.id, world.wsUsers[1]!.id],
          [world.wsRole]: [world.accounts.A.id, world.wsUsers[2]!.id],
          [world.wsDel]: [world.wsUsers[0]!.id],
        };
        const candidates = members[lower(run.params.workspace_id)] ?? [world.accounts.A.id];
        return pickOf([...candidates, ...candidates, ...candidates, world.accounts.C.id], pickIn(run, 'user_id'));
      },
    },
    validShare: 0.5,
    semantic: async (run) => ((await isWorkspaceMember(run.params.workspace_id!, run.params.user_id!)) ? [200] : [404]),
  },
  'PUT /workspaces/{workspace_id}/members/{user_id}': {
    actors: WRITERS,
    forbidden: 'C',
    refusal: needs('admin'),
    real: {
      workspace_id: () => world.wsRole,
      // A and W2 are members of it from the start; W1 never is (404).
      user_id: (run) =>
        pickOf([world.wsUsers[2]!.id, world.accounts.A.id, world.wsUsers[2]!.id, world.wsUsers[1]!.id], pickIn(run, 'user_id')),
    },
    async prepare(run) {
      run.membersBefore = await membersText(run.params.workspace_id);
    },
    semantic: async (run) => ((await isWorkspaceMember(run.params.workspace_id!, run.params.user_id!)) ? [200] : [404]),
    after: (run, res) => membersUnchangedUnless(run, res, 200),
  },
  'DELETE /workspaces/{workspace_id}/members/{user_id}': {
    actors: WRITERS,
    forbidden: 'C',
    // C removes its own membership: leaving, which any role may (README).
    extras: [{ weight: 4, special: 'leave', actor: 'C' }],
    refusal: (run, access) => refusalFor(access, lower(run.params.user_id) === run.account!.id ? 'viewer' : 'admin'),
    real: {
      workspace_id: () => world.wsDel,
      async user_id(run) {
        // The one about to be removed is a member first (C joins as a viewer to leave); W1 never is (404).
        const userId =
          run.c.special === 'leave'
            ? world.accounts.C.id
            : pickOf([world.wsUsers[0]!.id, world.wsUsers[0]!.id, world.wsUsers[0]!.id, world.wsUsers[1]!.id], pickIn(run, 'user_id'));
        if (userId !== world.wsUsers[1]!.id && !(await isWorkspaceMember(world.wsDel, userId))) {
          await addWorkspaceMember(world.wsDel, userId, run.c.special === 'leave' ? 'viewer' : 'member');
        }
        return userId;
      },
    },
    async prepare(run) {
      run.membersBefore = await membersText(run.params.workspace_id);
    },
    semantic: async (run) => ((await isWorkspaceMember(run.params.workspace_id!, run.params.user_id!)) ? [204] : [404]),
    async after(run, res) {
      await membersUnchangedUnless(run, res, 204);
      if (res.status === 204 && (await isWorkspaceMember(run.params.workspace_id!, run.params.user_id!)))
        throw new Error(`${run.c.variant}: answered 204 but ${run.params.user_id} is still a member`);
    },
  },
  'GET /workspaces/{workspace_id}/access': {
    actors: READERS,
    // C asking about others (403) and users outside the organization (404): more valid requests.
    validShare: 0.5,
    // Another user's access is a workspace admin's question (README).
    refusal: (run, access) => {
      const asked = run.query?.find(([k]) => k === 'user_id')?.[1];
      return refusalFor(access, asked !== undefined && asked.toLowerCase() !== run.account!.id ? 'admin' : 'viewer');
    },
    real: { workspace_id: (run) => pickOf([...memberWorkspaces(), ...world.wsA], pickIn(run, 'workspace_id')) },
    hints: {
      user_id: () =>
        fc.oneof(
          {
            weight: 4,
            arbitrary: fc.constantFrom(world.accounts.A.id, world.accounts.B.id, world.accounts.C.id, ...world.wsUsers.map((w) => w.id)),
          },
          { weight: 1, arbitrary: fc.constantFrom(world.accounts.C.id.toUpperCase(), world.wsUsers[2]!.id.toUpperCase()) },
          // Neither in the organization nor a member: 404.
          { weight: 1, arbitrary: fc.constantFrom(world.accounts.D.id, world.spares[1]!.id) },
          { weight: 1, arbitrary: fc.uuid() },
        ),
    },
    // A user neither in the organization nor an explicit member is 404 (README).
    async semantic(run) {
      const asked = run.query?.find(([k]) => k === 'user_id')?.[1];
      if (asked === undefined) return undefined;
      const facts = (await accessFacts(asked.toLowerCase(), [run.params.workspace_id!])).get(run.params.workspace_id!.toLowerCase());
      return facts && (facts.organizationRole || facts.explicit) ? [200] : [404];
    },
  },

  // Invitations (README, Invitations and guests), on fixtures no generated settings write reaches:
  // who may invite there stays as invitationFixtures set it (admins may; C, a member, may not).
  'POST /organizations/{org_id}/invitations': {
    actors: WRITERS,
    forbidden: 'C',
    // A share of the valid ones are 409 (a member's email, a pending invitation's) or 403 (an admin inviting an owner).
    validShare: 0.5,
    real: { org_id: () => world.orgInvite },
    hints: { email: () => inviteeEmails(world.invOrg.email) },
    semantic: (run) => invitationCreateAnswer(run),
  },
  'GET /organizations/{org_id}/invitations': { actors: WRITERS, forbidden: 'C', real: { org_id: () => world.orgInvite } },
  'POST /workspaces/{workspace_id}/invitations': {
    actors: WRITERS,
    forbidden: 'C',
    // A share of the valid ones are 403 (a guest given admin) or 409 (a pending invitation's email).
    validShare: 0.6,
    refusal: needs('admin'),
    // An archived workspace takes no invitation (409).
    extras: [{ weight: 2, special: 'archived', actor: 'A' }],
    real: { workspace_id: (run) => (run.c.special === 'archived' ? world.wsInviteArchived : world.wsInvite) },
    hints: { email: () => inviteeEmails(world.invWs.email) },
    semantic: (run) => invitationCreateAnswer(run),
  },
  'GET /workspaces/{workspace_id}/invitations': {
    actors: WRITERS,
    forbidden: 'C',
    refusal: needs('admin'),
    real: { workspace_id: () => world.wsInvite },
  },
  'GET /invitations/{invitation_id}': { actors: WRITERS, forbidden: 'C' },
  'POST /invitations/{invitation_id}/resend': {
    actors: WRITERS,
    forbidden: 'C',
    // A revoked invitation cannot be resent (409).
    extras: [{ weight: 3, special: 'settled' }],
    real: { invitation_id: (run) => (run.c.special === 'settled' ? world.invRevoked.id : world.invResend.id) },
    semantic: (run) => (run.c.special === 'settled' ? [409] : undefined),
    async prepare(run) {
      run.invitationBefore = await storedInvitation(run.params.invitation_id);
    },
    async after(run, res) {
      if (res.status !== 200) return invitationUnchangedUnless(run, res, 200);
      // The new token is the one stored; the old one stops working at once.
      const [row] = await app.query<{ token_hash: string; status: string }>('select token_hash, status from invitations where id = $1', [
        res.body.invitation.id,
      ]);
      if (row?.token_hash !== sha256(res.body.token) || row.status !== 'pending')
        throw new Error(`${run.c.variant}: resent, but stored ${JSON.stringify(row)}`);
      if (res.body.invitation.id === world.invResend.id) {
        const old = await preview(world.invResend.token);
        if (old.status !== 404) throw new Error(`${run.c.variant}: the token before the resend still previews (${old.status})`);
        world.invResend.token = res.body.token;
      }
    },
  },
  'DELETE /invitations/{invitation_id}': {
    actors: WRITERS,
    forbidden: 'C',
    // A revoked invitation cannot be revoked again (409).
    extras: [{ weight: 3, special: 'settled' }],
    real: {
      async invitation_id(run) {
        if (run.c.special === 'settled') return world.invRevoked.id;
        // B's, so A revokes as an admin of the target and B as its inviter.
        revocable ??= (await invite(world.accounts.B, { org: world.orgInvite }, fixtureEmail('revocable'), 'member')).id;
        return revocable;
      },
    },
    semantic: (run) => (run.c.special === 'settled' ? [409] : undefined),
    async prepare(run) {
      run.invitationBefore = await storedInvitation(run.params.invitation_id);
    },
    async after(run, res) {
      if (res.status !== 204) return invitationUnchangedUnless(run, res, 204);
      const id = run.params.invitation_id!.toLowerCase();
      const [row] = await app.query<{ status: string }>('select status from invitations where id = $1', [id]);
      if (row?.status !== 'revoked') throw new Error(`${run.c.variant}: answered 204 but the invitation is ${row?.status}`);
      if (id === revocable) revocable = undefined;
    },
  },
  'POST /invitations/preview': {
    actors: ['A'],
    hints: {
      token: () =>
        fc.oneof(
          { weight: 6, arbitrary: fc.constantFrom('token:pending', 'token:expired', 'token:spent', 'token:accepted') },
          // Unknown: 404.
          { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9_-]{43}$/) },
          { weight: 1, arbitrary: fc.string({ maxLength: 60 }) },
        ),
    },
    swap: (_run, placeholder) => Promise.resolve(fixtureToken(placeholder)),
    semantic: async (run) => ((await invitationByToken(bodyOf(run).token)) ? [200] : [404]),
  },
  'POST /invitations/accept': {
    actors: ['P'],
    // Each valid request makes an invitation for the caller's email and accepts it (undone after).
    validShare: 0.5,
    // D answering an invitation to another email (403); E one whose rule no longer holds (409: it stays pending).
    extras: [
      { weight: 3, special: 'not-mine', actor: 'D' },
      { weight: 2, special: 'rule', actor: 'E' },
    ],
    hints: { token: tokenHint },
    swap: answerToken,
    semantic: (run) => answerByToken(run, 'accept'),
    async prepare(run) {
      run.invitationBefore = await storedInvitation((await invitationByToken(bodyOf(run).token))?.id);
    },
    async after(run, res) {
      if (res.status !== 200) return invitationUnchangedUnless(run, res, 200);
      const { invitation, membership } = res.body as {
        invitation: { id: string; status: string };
        membership: { organization_id: string; workspace_id: string | null; user_id: string; role: string };
      };
      const [row] = await app.query<{ status: string; accepted_user_id: string }>(
        'select status, accepted_user_id from invitations where id = $1',
        [invitation.id],
      );
      if (row?.status !== 'accepted' || row.accepted_user_id !== run.account!.id)
        throw new Error(`${run.c.variant}: accepted, but the invitation is stored as ${JSON.stringify(row)}`);
      // The membership is there, in the role answered; then undone, so the account can accept again.
      if (membership.workspace_id) {
        const [explicit] = await workspaceMembersOf(membership.workspace_id).then((m) => m.filter((x) => x.user_id === membership.user_id));
        if (explicit?.role !== membership.role)
          throw new Error(`${run.c.variant}: accepted, but the workspace membership is ${JSON.stringify(explicit)}`);
        await removeWorkspaceMember(membership.workspace_id, membership.user_id);
      } else {
        const role = (await membershipsOf(run.account!)).get(membership.organization_id);
        if (role !== membership.role) throw new Error(`${run.c.variant}: accepted, but the membership is ${String(role)}`);
        const removed = await api(
          'DELETE /organizations/{org_id}/members/{user_id}',
          `/organizations/${membership.organization_id}/members/${membership.user_id}`,
          { token: world.accounts.A.token },
        );
        if (removed.status !== 204) throw new Error(`removing the accepter failed: ${removed.status} ${removed.text}`);
      }
    },
  },
  'POST /invitations/decline': {
    actors: ['P'],
    validShare: 0.5,
    // D answering an invitation to another email (403).
    extras: [{ weight: 3, special: 'not-mine', actor: 'D' }],
    hints: { token: tokenHint },
    swap: answerToken,
    semantic: (run) => answerByToken(run, 'decline'),
    async prepare(run) {
      run.invitationBefore = await storedInvitation((await invitationByToken(bodyOf(run).token))?.id);
    },
    async after(run, res) {
      if (res.status !== 200) return invitationUnchangedUnless(run, res, 200);
      const [row] = await app.query<{ status: string; organization_id: string }>(
        'select status, organization_id from invitations where id = $1',
        [res.body.invitation.id],
      );
      if (row?.status !== 'declined') throw new Error(`${run.c.variant}: declined, but the invitation is ${row?.status}`);
      if ((await membershipsOf(run.account!)).has(row.organization_id)) throw new Error(`${run.c.variant}: declined, but a member`);
    },
  },
};

/** The workspaces the member reads take turns on: the private one (C: 404), and the three the writes use. */
const memberWorkspaces = () => [world.wsPrivate, world.wsAdd, world.wsRole, world.wsDel];

/** The case's pick for a real path parameter. */
const pickIn = (run: RunContext, name: string) => (run.c.params[name] as { pick?: number } | undefined)?.pick ?? 0;

async function isWorkspaceMember(workspaceId: string, userId: string): Promise<boolean> {
  if (!isUuid(workspaceId) || !isUuid(userId)) return false;
  const rows = await app.query('select 1 from workspace_members where workspace_id = $1 and user_id = $2', [
    workspaceId.toLowerCase(),
    userId.toLowerCase(),
  ]);
  return rows.length > 0;
}

/** POST members, valid and allowed: 404 for a user outside the organization, 409 for a member, else 201. */
async function memberAddAnswer(workspaceId: string, userId: string): Promise<number[]> {
  if (!isUuid(userId)) return [404];
  const facts = (await accessFacts(userId, [workspaceId])).get(workspaceId.toLowerCase());
  if (!facts?.organizationRole) return [404];
  return facts.explicit ? [409] : [201];
}

async function addWorkspaceMember(workspaceId: string, userId: string, role: WorkspaceRole): Promise<void> {
  const res = await api('POST /workspaces/{workspace_id}/members', `/workspaces/${workspaceId}/members`, {
    token: world.accounts.A.token,
    body: { user_id: userId, role },
  });
  if (res.status !== 201) throw new Error(`adding a workspace member failed: ${res.status} ${res.text}`);
}

async function removeWorkspaceMember(workspaceId: string, userId: string): Promise<void> {
  const res = await api('DELETE /workspaces/{workspace_id}/members/{user_id}', `/workspaces/${workspaceId}/members/${userId}`, {
    token: world.accounts.A.token,
  });
  if (res.status !== 204) throw new Error(`removing a workspace member failed: ${res.status} ${res.text}`);
}

/** A member write answered anything but its success leaves the workspace's members (and roles) as they were. */
async function membersUnchangedUnless(run: RunContext, res: RawResponse, success: number): Promise<void> {
  if (res.status === success || run.membersBefore === undefined) return;
  const now = await membersText(run.params.workspace_id);
  if (now !== run.membersBefore)
    throw new Error(`${run.c.variant}: answered ${res.status} but the members changed: ${run.membersBefore} → ${now}`);
}

/** README, Audit events: `since` and `until` are instants of the years 1 to 9999 (UTC), `since` not after `until`. */
function eventWindowRule(query: Record<string, string>): string | undefined {
  const [since, until] = [query.since, query.until].map((v) => (v === undefined ? undefined : new Date(v)));
  for (const date of [since, until]) {
    if (date && !(date.getUTCFullYear() >= 1 && date.getUTCFullYear() <= 9999)) return 'an instant outside the years 1 to 9999';
  }
  return since && until && since > until ? 'since after until' : undefined;
}

/** Organization A's default workspace (which can be neither deleted nor archived). */
async function defaultWorkspaceOfA(): Promise<string> {
  const rows = await app.query<{ id: string }>('select id from workspaces where organization_id = $1 and is_default', [world.orgA]);
  return rows[0]!.id;
}

/** The workspace archive and restore take turns on (made on first use). */
async function archivable(): Promise<string> {
  archivableWorkspace ??= await createWorkspace(world.accounts.A.token, world.orgA, `Archivable ${randomUUID().slice(0, 8)}`);
  return archivableWorkspace;
}

// ---------------------------------------------------------------------------------------------
// Invitations.

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** The invitation revoke takes turns on (made on first use, again once revoked). */
let revocable: string | undefined;

/** Emails to invite: mostly fresh ones; a pending invitation's (409); the members' A and C (409 to the organization) and D (none). */
const inviteeEmails = (pending: string) =>
  fc.oneof(
    { weight: 8, arbitrary: freshEmail() },
    { weight: 1, arbitrary: fc.constantFrom(pending, pending.toUpperCase(), ` ${pending} `) },
    { weight: 1, arbitrary: fc.constantFrom(world.accounts.A.email, world.accounts.C.email, world.accounts.D.email) },
  );

/**
 * A valid, allowed create's answer by the README's rules and the stored state: 403 for what the
 * inviter may not give (an owner by a non-owner; admin to a guest), 409 for an email that is
 * a member (of the organization; of the workspace, explicitly) or has a pending, unexpired
 * invitation to the target, 409 for an archived workspace, else 201.
 */
async function invitationCreateAnswer(run: RunContext): Promise<number[]> {
  if (run.c.special === 'archived') return [409];
  const body = bodyOf(run);
  const email = lower(body.email);
  const workspaceId = run.params.workspace_id?.toLowerCase() ?? null;
  const organizationId = workspaceId
    ? (await app.query<{ organization_id: string }>('select organization_id from workspaces where id = $1', [workspaceId]))[0]!
        .organization_id
    : run.params.org_id!.toLowerCase();
  const member = await app.query<{ user_id: string }>(
    'select m.user_id from memberships m join users u on u.id = m.user_id where m.organization_id = $1 and lower(u.email) = $2',
    [organizationId, email],
  );
  const refused = workspaceId
    ? member.length === 0 && body.role === 'admin'
    : body.role === 'owner' && (await membershipsOf(run.account!)).get(organizationId) !== 'owner';
  if (refused) return [403];
  if (workspaceId) {
    const explicit = await app.query(
      'select 1 from workspace_members wm join users u on u.id = wm.user_id where wm.workspace_id = $1 and lower(u.email) = $2',
      [workspaceId, email],
    );
    if (explicit.length) return [409];
  } else if (member.length) return [409];
  const pending = await app.query(
    `select 1 from invitations where organization_id = $1 and workspace_id is not distinct from $2::uuid and lower(email) = $3
        and status = 'pending' and expires_at > $4::timestamptz`,
    [organizationId, workspaceId, email, new Date().toISOString()],
  );
  return pending.length ? [409] : [201];
}

/** The invitation a token names (by its hash, as stored), or undefined. */
async function invitationByToken(token: unknown) {
  if (typeof token !== 'string') return undefined;
  const [row] = await app.query<{
    id: string;
    organization_id: string;
    workspace_id: string | null;
    email: string;
    role: string;
    status: string;
    expired: boolean;
    expires_at: string;
  }>(
    `select id, organization_id, workspace_id, email, role, status, expires_at <= $2::timestamptz as expired,
            ${isoSql('expires_at')} as expires_at
       from invitations where token_hash = $1`,
    [sha256(token), new Date().toISOString()],
  );
  return row;
}

/** Its status as the API computes it: `expired` once `expires_at` has passed. */
const statusNow = (row: { status: string; expired: boolean }) => (row.status === 'pending' && row.expired ? 'expired' : row.status);

/** Accept's and decline's answer (README): unknown or spent 404, expired 410, another email 403, a rule that no longer holds 409. */
async function answerByToken(run: RunContext, answer: 'accept' | 'decline'): Promise<number[]> {
  const row = await invitationByToken(bodyOf(run).token);
  if (!row || !['pending', 'expired'].includes(statusNow(row))) return [404];
  if (statusNow(row) === 'expired') return [410];
  if (row.email.toLowerCase() !== run.account!.email.toLowerCase()) return [403];
  if (answer === 'accept' && row.id === world.invRule.id) return [409];
  return [200];
}

/** The invitation as stored, as text (undefined when none is named). */
async function storedInvitation(id: string | undefined): Promise<string | undefined> {
  if (!isUuid(id)) return undefined;
  const rows = await app.query(
    'select status, token_hash, expires_at::text as expires_at, accepted_user_id from invitations where id = $1',
    [id.toLowerCase()],
  );
  return JSON.stringify(rows);
}

/** A refused resend, revoke, accept or decline leaves the invitation as it was. */
async function invitationUnchangedUnless(run: RunContext, res: RawResponse, success: number): Promise<void> {
  if (res.status === success || run.invitationBefore === undefined) return;
  const id = run.c.params.invitation_id ? run.params.invitation_id : (await invitationByToken(bodyOf(run).token))?.id;
  const now = await storedInvitation(id);
  if (now !== run.invitationBefore)
    throw new Error(`${run.c.variant}: answered ${res.status} but the invitation changed: ${run.invitationBefore} → ${now}`);
}

/** POST /invitations/preview with a token, outside the generated requests. */
const preview = (token: string) => api('POST /invitations/preview', '/invitations/preview', { body: { token } });

/** The fixtures' tokens a placeholder stands for. */
function fixtureToken(placeholder: string): string | undefined {
  switch (placeholder) {
    case 'token:pending':
      return world.invOrg.token;
    case 'token:expired':
      return world.invExpired.token;
    case 'token:spent':
      return world.invRevoked.token;
    case 'token:accepted':
      return world.invAccepted.token;
    default:
      return undefined;
  }
}

/** Accept's and decline's tokens: mostly the case's own invitation; an expired one (410), a spent one (404), unknown ones (404). */
function tokenHint(): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 12, arbitrary: fc.constant('token:mine') },
    { weight: 1, arbitrary: fc.constantFrom('token:expired', 'token:spent') },
    { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9_-]{43}$/) },
  );
}

/** The pending invitations made for each account to accept or decline, by account and target kind (one made is used until spent). */
const ownInvitations = new Map<string, Invited>();

/**
 * `token:mine`: the case's own invitation. For P, one for its email (to orgJoin, or as a guest to
 * wsJoin), reused while pending; for `not-mine`, one for an email without an account; for `rule`,
 * E's to the workspace that no longer allows guests.
 */
async function answerToken(run: RunContext, placeholder: string): Promise<string | undefined> {
  if (placeholder !== 'token:mine') return fixtureToken(placeholder);
  if (run.c.special === 'rule') return world.invRule.token;
  const A = world.accounts.A;
  if (run.c.special === 'not-mine') return (await invite(A, { org: world.orgJoin }, fixtureEmail('someone-else'), 'member')).token;
  const account = run.account!;
  const toWorkspace = parseInt(run.c.unknownId[0]!, 16) % 2 === 1;
  const key = `${account.id} ${toWorkspace ? 'workspace' : 'organization'}`;
  const own = ownInvitations.get(key);
  if (own) {
    const row = await invitationByToken(own.token);
    if (row && statusNow(row) === 'pending') return own.token;
  }
  const made = toWorkspace
    ? await invite(A, { workspace: world.wsJoin }, account.email, pickOf(['member', 'viewer'], run.c.unknownId.charCodeAt(1)))
    : await invite(A, { org: world.orgJoin }, account.email, pickOf(['member', 'admin'], run.c.unknownId.charCodeAt(1)));
  ownInvitations.set(key, made);
  return made.token;
}

/** The invitations' fixtures (see World). */
async function invitationFixtures(A: Account, B: Account, C: Account, D: Account, E: Account): Promise<void> {
  world.orgInvite = await createOrganization(A.token, 'Invitations');
  await addMember(A, world.orgInvite, B, 'admin');
  const joinedC = await invite(A, { org: world.orgInvite }, C.email, 'member');
  await accept(C, joinedC.token);
  world.invAccepted = joinedC;
  const settings = await api('PUT /organizations/{org_id}/settings', `/organizations/${world.orgInvite}/settings`, {
    token: A.token,
    body: { permissions: { allow_member_invites: false } },
  });
  if (settings.status !== 200) throw new Error(`organization settings failed: ${settings.status} ${settings.text}`);
  const open = { permissions: { visibility: 'organization', default_role: 'member', allow_guests: true, allow_member_invites: false } };
  world.wsInvite = await createWorkspace(A.token, world.orgInvite, 'Invited', open);
  world.wsInviteArchived = await createWorkspace(A.token, world.orgInvite, 'Invitations archived', open);
  const archived = await api('POST /workspaces/{workspace_id}/archive', `/workspaces/${world.wsInviteArchived}/archive`, {
    token: A.token,
    body: {},
  });
  if (archived.status !== 200) throw new Error(`archive failed: ${archived.status} ${archived.text}`);
  world.invOrg = await invite(A, { org: world.orgInvite }, fixtureEmail('invited-org'), 'member');
  world.invWs = await invite(A, { workspace: world.wsInvite }, fixtureEmail('invited-ws'), 'viewer');
  world.invResend = await invite(B, { org: world.orgInvite }, fixtureEmail('resent'), 'member');
  world.invRevoked = await invite(A, { org: world.orgInvite }, fixtureEmail('revoked'), 'member');
  const revoked = await api('DELETE /invitations/{invitation_id}', `/invitations/${world.invRevoked.id}`, { token: A.token });
  if (revoked.status !== 204) throw new Error(`revoke failed: ${revoked.status} ${revoked.text}`);
  world.invD = (await invite(D, { org: world.orgD }, fixtureEmail('of-d'), 'member')).id;

  world.orgJoin = await createOrganization(A.token, 'Joined by invitation');
  world.wsJoin = await createWorkspace(A.token, world.orgJoin, 'Guests welcome', { permissions: { allow_guests: true } });
  const closed = await createWorkspace(A.token, world.orgJoin, 'Guests no more', { permissions: { allow_guests: true } });
  world.invRule = await invite(A, { workspace: closed }, E.email, 'member');
  const closing = await api('PUT /workspaces/{workspace_id}/settings', `/workspaces/${closed}/settings`, {
    token: A.token,
    body: { permissions: { allow_guests: false } },
  });
  if (closing.status !== 200) throw new Error(`workspace settings failed: ${closing.status} ${closing.text}`);
  clockShift = -(INVITATION_TTL_HOURS + 1) * 60 * 60 * 1000;
  try {
    world.invExpired = await invite(A, { org: world.orgJoin }, fixtureEmail('expired'), 'member');
  } finally {
    clockShift = 0;
  }
}

// ---------------------------------------------------------------------------------------------

beforeAll(async () => {
  // No invitation budget or pending cap: hundreds of generated creates go to one organization.
  app = await startTestApp(
    {
      RATE_LIMIT_PER_MINUTE: '0',
      AUTH_RATE_LIMIT_PER_MINUTE: '0',
      INVITATION_TTL_HOURS: String(INVITATION_TTL_HOURS),
      INVITATIONS_PER_DAY: '0',
      INVITATIONS_PENDING_MAX: '0',
    },
    { now: () => new Date(Date.now() + clockShift) },
  );
  client = createClient(app.url);
  const served = await client.send({ method: 'GET', path: '/openapi.json', headers: {} });
  expect(served.status).toBe(200);
  doc = served.body as OpenApiDocument;
  operations = new Map(operationsOf(doc).map((op) => [op.key, op]));
  resolve = resolverFor(doc);
  validators = validatorsFor(doc);

  // Three signups at a time: a dozen at once (each a password hash, then a transaction) outlast
  // the embedded database's deadline on a busy machine (503).
  const labels = [
    'owner',
    'admin',
    'member',
    'outsider',
    'blocked',
    'spare0',
    'spare1',
    'spare2',
    'spare3',
    'wsmember0',
    'wsmember1',
    'wsmember2',
  ];
  const signedUp: Account[] = [];
  for (let i = 0; i < labels.length; i += 3)
    signedUp.push(...(await Promise.all(labels.slice(i, i + 3).map((label) => signupAccount(label)))));
  const [A, B, C, D, E, ...others] = signedUp;
  world.accounts = { A: A!, B: B!, C: C!, D: D!, E: E! };
  world.spares = others.slice(0, 4);
  world.wsUsers = others.slice(4);
  const spares = world.spares;
  world.orgA = A!.org;
  world.orgD = D!.org;
  world.orgA2 = await createOrganization(A!.token, 'Second of A');
  world.orgRole = await createOrganization(A!.token, 'Roles changed');
  world.orgDel = await createOrganization(A!.token, 'Members removed');
  for (const org of [world.orgA, world.orgA2]) {
    await addMember(A!, org, B!, 'admin');
    await addMember(A!, org, C!, 'member');
  }
  for (const org of [world.orgRole, world.orgDel]) await addMember(A!, org, C!, 'member');
  await addMember(A!, world.orgRole, spares[0]!, 'member');
  await addMember(A!, world.orgRole, spares[1]!, 'member');
  await addMember(E!, E!.org, spares[3]!, 'member');
  world.wsA = [
    await createWorkspace(A!.token, world.orgA, 'Alpha'),
    await createWorkspace(A!.token, world.orgA, 'Beta'),
    await createWorkspace(A!.token, world.orgA, 'Gamma'),
    A!.workspace,
    await createWorkspace(A!.token, world.orgA2, 'Delta'),
  ];
  world.wsD = await createWorkspace(D!.token, world.orgD, 'Outsider workspace');
  for (const w of world.wsUsers) await addMember(A!, world.orgA, w, 'member');
  const shared = { permissions: { visibility: 'organization', default_role: 'member' } };
  world.wsPrivate = await createWorkspace(A!.token, world.orgA, 'Private', { permissions: { visibility: 'private' } });
  world.wsAdd = await createWorkspace(A!.token, world.orgA, 'Members added', shared);
  world.wsRole = await createWorkspace(A!.token, world.orgA, 'Member roles', shared);
  world.wsDel = await createWorkspace(A!.token, world.orgA, 'Members removed', shared);
  await addWorkspaceMember(world.wsPrivate, world.wsUsers[2]!.id, 'viewer');
  await addWorkspaceMember(world.wsAdd, A!.id, 'viewer');
  await addWorkspaceMember(world.wsRole, A!.id, 'member');
  await addWorkspaceMember(world.wsRole, world.wsUsers[2]!.id, 'member');
  await addWorkspaceMember(world.wsDel, world.wsUsers[0]!.id, 'member');
  await invitationFixtures(A!, B!, C!, D!, E!);
  for (const row of await app.query<{ id: string }>('select id from workspaces')) acknowledged.workspaces.add(row.id);
  for (const row of await app.query<{ id: string }>('select id from organizations')) acknowledged.organizations.add(row.id);
});

afterAll(async () => {
  if (stats.size) {
    const rows = [...stats.entries()].map(([key, s]) => ({
      operation: key,
      requests: s.requests,
      '2xx': s.ok,
      valid: s.valid,
      'name>100/blank': s.trimmedName,
      'avg ms': Math.round((s.ms / Math.max(1, s.requests)) * 10) / 10,
      statuses: [...s.statuses.entries()]
        .sort(([a], [b]) => a - b)
        .map(([status, n]) => `${status}:${n}`)
        .join(' '),
    }));
    console.log(`OpenAPI fuzz (${app?.engine}, FUZZ_RUNS=${RUNS})`);
    console.table(rows);
    const looser = new Map<string, number>();
    for (const s of stats.values()) for (const [reason, n] of s.docLooser) looser.set(reason, (looser.get(reason) ?? 0) + n);
    if (looser.size) console.log('document-valid bodies the contract refuses:', Object.fromEntries(looser));
  }
  client?.close();
  await app?.close();
});

describe('OpenAPI fuzz', () => {
  it('has a fuzz spec for every documented operation, and an operation for every spec', () => {
    expect([...operations.keys()].sort()).toEqual(Object.keys(SPECS).sort());
  });

  for (const [key, spec] of Object.entries(SPECS)) {
    it(
      key,
      async () => {
        const op = operations.get(key);
        expect(op, `${key} is not in the served document`).toBeDefined();
        const stat: Stats = { requests: 0, ok: 0, valid: 0, statuses: new Map(), trimmedName: 0, docLooser: new Map(), ms: 0 };
        stats.set(key, stat);
        // Every distinct failure is collected (one example each) and the run goes on: one
        // defect must not hide another, and against a live, stateful server shrinking would
        // resend requests in a state the failure no longer had.
        const failures = new Map<string, { count: number; example: string }>();
        const record = (error: unknown) => {
          const message = error instanceof Error ? error.message : String(error);
          const kind = failureKind(message);
          const seen = failures.get(kind);
          if (seen) seen.count++;
          else failures.set(kind, { count: 1, example: message });
        };
        const inFlight = new Set<Promise<void>>();
        await fc.assert(
          fc.asyncProperty(caseArbitrary(op!, spec), async (c) => {
            const running = runCase(op!, spec, c, stat).catch(record);
            inFlight.add(running);
            void running.finally(() => inFlight.delete(running));
            if (inFlight.size >= (spec.concurrency ?? 1)) await Promise.race(inFlight);
          }),
          { numRuns: RUNS, seed: SEED },
        );
        await Promise.all(inFlight);
        if (failures.size) {
          const report = [...failures.entries()].map(([kind, f]) => `■ ${kind} — ${f.count}×, for example:\n${f.example}`);
          throw new Error(`${key}: ${failures.size} kind(s) of failure\n\n${report.join('\n\n')}`);
        }
        expect(stat.requests).toBeGreaterThanOrEqual(RUNS);
        // At least a fifth of the requests succeed, so the success paths (and their schemas) are exercised.
        expect(stat.ok, `${key}: ${stat.ok} of ${stat.requests} requests succeeded`).toBeGreaterThanOrEqual(RUNS / 5);
      },
      TIMEOUT_MS,
    );
  }

  it('leaves no workspace or organization that no response acknowledged', async () => {
    const workspaces = await app.query<{ id: string; organization_id: string; name: string }>(
      'select id, organization_id, name from workspaces',
    );
    const organizations = await app.query<{ id: string; name: string }>('select id, name from organizations');
    expect(workspaces.filter((w) => !acknowledged.workspaces.has(w.id))).toEqual([]);
    expect(organizations.filter((o) => !acknowledged.organizations.has(o.id))).toEqual([]);
    const members = await app.query<{ workspace_id: string; user_id: string }>('select workspace_id, user_id from workspace_members');
    expect(members.length).toBeGreaterThan(0);
    expect(members.filter((m) => !acknowledged.workspaceMembers.has(`${m.workspace_id} ${m.user_id}`))).toEqual([]);
    const invitations = await app.query<{ id: string; email: string; status: string }>('select id, email, status from invitations');
    expect(invitations.length).toBeGreaterThan(0);
    expect(invitations.filter((i) => !acknowledged.invitations.has(i.id))).toEqual([]);
  });

  // README: a token is returned only by create and resend, and is never put in an event.
  it('puts no invitation token in the audit trail', async () => {
    expect(tokensSeen.size).toBeGreaterThan(0);
    const events = await app.query<{ id: string; action: string; changes: string }>(
      "select id, action, changes::text as changes from audit_events where target_type = 'invitation'",
    );
    expect(events.length).toBeGreaterThan(0);
    expect(events.filter((e) => [...tokensSeen].some((token) => e.changes.includes(token)))).toEqual([]);
  });

  // Each workspace row carries its resolved visibility and default role for the access checks
  // (README): after all the run's settings writes, they must still be what the layers resolve to.
  it("keeps every workspace's derived access columns equal to its resolved settings", async () => {
    const rows = await app.query<{
      id: string;
      effective_visibility: string;
      effective_default_role: string;
      effective_allow_guests: boolean;
    }>('select id, effective_visibility, effective_default_role, effective_allow_guests from workspaces');
    const facts = await accessFacts(
      world.accounts.A.id,
      rows.map((r) => r.id),
    );
    const wrong = rows.filter((r) => {
      const f = facts.get(r.id)!;
      return (
        r.effective_visibility !== f.visibility || r.effective_default_role !== f.defaultRole || r.effective_allow_guests !== f.allowGuests
      );
    });
    expect(wrong).toEqual([]);
  });

  // The event specs read only the newest pages; an event the run wrote earlier must read back
  // too (a metadata key named `constructor` once made every page holding its event a 500).
  it("reads back every page of the audit trail of A's organizations, each 200 and valid", async () => {
    const op = operations.get('GET /organizations/{org_id}/events')!;
    const validate = validators.compile(op.successSchema!);
    const orgs = await app.query<{ organization_id: string }>(
      "select organization_id from memberships where user_id = $1 and role in ('owner', 'admin')",
      [world.accounts.A.id],
    );
    expect(orgs.length).toBeGreaterThan(0);
    let events = 0;
    for (const { organization_id } of orgs) {
      let cursor: string | null = null;
      do {
        const query: string = cursor ? `limit=100&cursor=${encodeURIComponent(cursor)}` : 'limit=100';
        const res: RawResponse = await client.send({
          method: 'GET',
          path: `${API}/organizations/${organization_id}/events?${query}`,
          headers: { authorization: `Bearer ${world.accounts.A.token}` },
        });
        expect(res.status, res.text).toBe(200);
        expect(validate(res.body), describeErrors(validate)).toBe(true);
        events += res.body.items.length;
        cursor = res.body.next_cursor;
      } while (cursor);
    }
    const [stored] = await app.query<{ count: number }>(
      'select count(*)::int as count from audit_events where organization_id = any($1::uuid[])',
      [orgs.map((o) => o.organization_id)],
    );
    expect(events).toBe(stored!.count);
  });
});
