import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import postgres from 'postgres';
import pino from 'pino';
import { inject } from 'vitest';
import { createTRPCClient, httpBatchLink, httpLink, splitLink } from '@trpc/client';
import { loadConfig, type Config } from '../../src/config';
import { openPostgres, wrapPglite, type DatabaseHandle } from '../../src/db/client';
import { createDeps } from '../../src/deps';
import { createApp } from '../../src/app';
import { createHttpServer } from '../../src/http/server';
import type { AppRouter } from '../../src/router';
import { databaseUrlFor } from './database-url';

export const TEST_SECRET = 'test-secret-that-is-at-least-32-bytes-long!!';

export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

export interface RequestOptions {
  token?: string;
  body?: unknown;
  /** Sent as is (for malformed JSON, wrong content types, oversized bodies). */
  rawBody?: string | Buffer;
  headers?: Record<string, string>;
}

export interface TestApp {
  url: string;
  config: Config;
  database: DatabaseHandle;
  /** A fresh database of this file's own: PGlite restored from the migrated snapshot, or a copy of the template on PostgreSQL. */
  engine: DatabaseHandle['engine'];
  request<T = any>(method: string, path: string, options?: RequestOptions): Promise<ApiResponse<T>>;
  /** A real @trpc/client; calls given `context: { headers }` go through their own httpLink. */
  trpc(token?: string): ReturnType<typeof createTRPCClient<AppRouter>>;
  /** Rows of a raw SQL query against this app's database. */
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  close(): Promise<void>;
}

/** The pool settings of the configuration (DATABASE_POOL_MAX, DATABASE_IDLE_TIMEOUT_S), as `openDatabase` passes them. */
type PoolSettings = Pick<Config, 'DATABASE_POOL_MAX' | 'DATABASE_IDLE_TIMEOUT_S'>;

/** A fresh database for one test file; on PostgreSQL its pool is sized by `pool`. */
async function openTestDatabase(
  pool: PoolSettings,
): Promise<{ database: DatabaseHandle; url: string | undefined; drop: () => Promise<void> }> {
  const serverUrl = process.env.DATABASE_URL;
  const template = inject('templateDatabase');
  if (serverUrl && template) {
    const name = `ws_test_${randomUUID().replace(/-/g, '')}`;
    const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database "${name}" template "${template}"`);
    const url = databaseUrlFor(serverUrl, name);
    const database = openPostgres({ url, prepare: true, max: pool.DATABASE_POOL_MAX, idleTimeoutS: pool.DATABASE_IDLE_TIMEOUT_S });
    return {
      database,
      url,
      drop: async () => {
        await admin.unsafe(`drop database if exists "${name}" with (force)`);
        await admin.end();
      },
    };
  }
  const snapshot = readFileSync(inject('pgliteSnapshot'));
  const pglite = await PGlite.create({ loadDataDir: new Blob([snapshot]) });
  return { database: wrapPglite(pglite), url: undefined, drop: async () => {} };
}

export interface TestAppOptions {
  /** The clock invitations are created and expire by (deps.now); the real one by default. */
  now?: () => Date;
}

export async function startTestApp(env: Record<string, string> = {}, options: TestAppOptions = {}): Promise<TestApp> {
  // The database is opened before the whole configuration can be read (it names the database's
  // URL): its pool settings are read from `env` first, by the same rules and defaults.
  const pool = loadConfig({ DATABASE_POOL_MAX: env.DATABASE_POOL_MAX, DATABASE_IDLE_TIMEOUT_S: env.DATABASE_IDLE_TIMEOUT_S });
  const { database, url: databaseUrl, drop } = await openTestDatabase(pool);
  const config = loadConfig({
    NODE_ENV: 'test',
    JWT_SECRET: TEST_SECRET,
    DATA_DIR: 'memory://',
    LOG_LEVEL: 'silent',
    // Suites sign up many accounts from one address; the rate-limit suite sets its own limits.
    RATE_LIMIT_PER_MINUTE: '0',
    AUTH_RATE_LIMIT_PER_MINUTE: '0',
    UNAUTHENTICATED_RATE_LIMIT_PER_MINUTE: '0',
    // Many suites share 2 cores with Chromium and tsc: load shedding would refuse their requests
    // at random. The production default keeps it on; test/load-shedding.test.ts tests it.
    SHED_EVENT_LOOP_DELAY_MS: '0',
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    ...env,
  });
  return serveApp(
    config,
    database,
    async () => {
      await database.close();
      await drop();
    },
    undefined,
    options.now,
  );
}

/**
 * Another server on the same database, as a second process would be: its own deps (token
 * cache, in-memory rate limits) and, on PostgreSQL, its own connection pool (PGlite lives in
 * one process, so there it shares the handle). Closing it leaves the first app running.
 */
export async function startReplica(app: TestApp): Promise<TestApp> {
  if (!app.config.DATABASE_URL) return serveApp(app.config, app.database, async () => {});
  const database = openPostgres({
    url: app.config.DATABASE_URL,
    prepare: app.config.DATABASE_PREPARE,
    max: app.config.DATABASE_POOL_MAX,
    idleTimeoutS: app.config.DATABASE_IDLE_TIMEOUT_S,
  });
  return serveApp(app.config, database, () => database.close());
}

/**
 * The app with `config` on a database the caller opened (through a proxy, with a short
 * timeout…), served as the service serves it (logging to `logger`, silent by default);
 * `close()` stops it, then `closeDatabase`.
 */
export async function serveApp(
  config: Config,
  database: DatabaseHandle,
  closeDatabase: () => Promise<void>,
  logger: pino.Logger = pino({ level: 'silent' }),
  now?: () => Date,
): Promise<TestApp> {
  const deps = createDeps(config, database, logger, now);
  deps.loadShedder.start();
  const server = createHttpServer(createApp(deps));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: base,
    config,
    database,
    engine: database.engine,
    async request(method, path, options = {}) {
      const headers: Record<string, string> = { ...options.headers };
      if (options.token) headers.authorization = `Bearer ${options.token}`;
      let body: string | Buffer | undefined;
      if (options.rawBody !== undefined) body = options.rawBody;
      else if (options.body !== undefined) {
        body = JSON.stringify(options.body);
        headers['content-type'] ??= 'application/json';
      }
      const response = await fetch(base + path, { method, headers, body });
      const text = await response.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        // Not JSON: the text is the body.
      }
      return { status: response.status, headers: response.headers, body: parsed as any, text };
    },
    trpc(token) {
      const authHeaders = (): Record<string, string> => (token ? { authorization: `Bearer ${token}` } : {});
      return createTRPCClient<AppRouter>({
        links: [
          splitLink({
            condition: (op) => Boolean((op.context as { headers?: unknown }).headers),
            true: httpLink({
              url: `${base}/trpc`,
              headers: ({ op }) => ({ ...authHeaders(), ...((op.context as { headers?: Record<string, string> }).headers ?? {}) }),
            }),
            false: httpBatchLink({ url: `${base}/trpc`, headers: authHeaders }),
          }),
        ],
      });
    },
    async query(text, params = []) {
      if (database.pglite) return (await database.pglite.query(text, params)).rows as never;
      const rows: unknown = await database.postgresClient!.unsafe(text, params as never[]);
      return rows as never;
    },
    async close() {
      deps.loadShedder.stop();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closeDatabase();
    },
  };
}

let counter = 0;
/** A unique email for this test file. */
export const uniqueEmail = (prefix = 'user') => `${prefix}-${Date.now().toString(36)}-${++counter}@example.com`;

export interface SignedUp {
  token: string;
  user: { id: string; email: string; name: string; created_at: string };
  organization: { id: string; name: string; slug: string; role: string };
  workspace: { id: string; organization_id: string; slug: string; is_default: boolean; version: number };
  password: string;
}

/** Signs up a new user over REST and returns its token, user, organization and default workspace. */
export async function signup(app: TestApp, name = 'Tester'): Promise<SignedUp> {
  const password = 'correct horse battery';
  const res = await app.request('POST', '/api/v1/auth/signup', { body: { email: uniqueEmail(name.toLowerCase()), password, name } });
  if (res.status !== 201) throw new Error(`signup failed: ${res.status} ${res.text}`);
  return {
    token: res.body.access_token,
    user: res.body.user,
    organization: res.body.organization,
    workspace: res.body.workspace,
    password,
  };
}

/**
 * Signs up one account per name, concurrently (each signup hashes a password with scrypt, which
 * is slow); the accounts come back in the order of `names`.
 */
export async function signupMany<const Names extends readonly string[]>(
  app: TestApp,
  names: Names,
): Promise<{ -readonly [K in keyof Names]: SignedUp }> {
  return (await Promise.all(names.map((name) => signup(app, name)))) as { -readonly [K in keyof Names]: SignedUp };
}

/** Someone who can accept an invitation: a token for the account the invitation's email names. */
export interface Invitee {
  token: string;
  user: { email: string };
}

/**
 * Makes `invitee` a member of `organizationId` with `role` as members are made (README,
 * Invitations and guests): `inviterToken` invites their email, they accept with the token.
 * Answers the accept's body `{invitation, membership}`.
 */
export async function addMember(
  app: TestApp,
  inviterToken: string,
  organizationId: string,
  invitee: Invitee,
  role: 'owner' | 'admin' | 'member',
) {
  const invited = await app.request('POST', `/api/v1/organizations/${organizationId}/invitations`, {
    token: inviterToken,
    body: { email: invitee.user.email, role },
  });
  if (invited.status !== 201) throw new Error(`invitation failed: ${invited.status} ${invited.text}`);
  return acceptInvitation(app, invitee, invited.body.token as string);
}

/** Makes `invitee` an explicit member of `workspaceId` (a guest when outside its organization) through an invitation. */
export async function addByInvitation(
  app: TestApp,
  inviterToken: string,
  workspaceId: string,
  invitee: Invitee,
  role: 'admin' | 'member' | 'viewer',
) {
  const invited = await app.request('POST', `/api/v1/workspaces/${workspaceId}/invitations`, {
    token: inviterToken,
    body: { email: invitee.user.email, role },
  });
  if (invited.status !== 201) throw new Error(`workspace invitation failed: ${invited.status} ${invited.text}`);
  return acceptInvitation(app, invitee, invited.body.token as string);
}

async function acceptInvitation(app: TestApp, invitee: Invitee, token: string) {
  const accepted = await app.request('POST', '/api/v1/invitations/accept', { token: invitee.token, body: { token } });
  if (accepted.status !== 200) throw new Error(`accepting the invitation failed: ${accepted.status} ${accepted.text}`);
  return accepted.body as {
    invitation: Record<string, unknown>;
    membership: { organization_id: string; workspace_id: string | null; user_id: string; role: string; guest: boolean };
  };
}
