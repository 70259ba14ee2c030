import { randomBytes, randomUUID } from 'node:crypto';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ApiResponse } from './helpers/app';
import { databaseUrlFor } from './helpers/database-url';
import { expectApiError } from './helpers/errors';
import { startPgBouncer, type PgBouncer } from './helpers/pgbouncer';
import { startServerProcess, type ServerProcess } from './helpers/process-helpers';

/**
 * The documented scale-out path: two stateless service processes (the real entry, as
 * `npm start` runs it) behind one PgBouncer in transaction mode (DATABASE_PREPARE=false), in
 * front of one PostgreSQL. The races the service settles in the database (unique slugs,
 * Idempotency-Key claims, the one default workspace) must hold when requests alternate
 * between the two processes and every transaction may run on another server connection.
 *
 * The database is a copy of the migrated template, so the processes find no migration to
 * apply: the migration lock (src/db/migrate.ts) is a session-level advisory lock on a reserved
 * connection, which PgBouncer's transaction mode does not keep on one server connection.
 * Migrations are to be run against PostgreSQL directly, not through the pooler.
 */

const serverUrl = process.env.DATABASE_URL;

/** What one test sends at once, alternating between the two processes. */
const RACERS = 50;

describe.runIf(Boolean(serverUrl))('two service processes behind PgBouncer (transaction mode)', () => {
  const databaseName = `ws_bouncer_${randomUUID().replace(/-/g, '')}`;
  let admin: postgres.Sql | undefined;
  /** The database itself (not the bouncer): what the checks of "what is stored" read. */
  let db: postgres.Sql | undefined;
  let bouncer: PgBouncer | undefined;
  const processes: ServerProcess[] = [];
  let bases: string[] = [];
  let token: string;
  let userId: string;
  let organizationId: string;

  beforeAll(async () => {
    admin = postgres(serverUrl!, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database "${databaseName}" template "${inject('templateDatabase')!}"`);
    db = postgres(databaseUrlFor(serverUrl!, databaseName), { max: 2, onnotice: () => {} });
    bouncer = await startPgBouncer({ targetUrl: serverUrl! });
    const env = {
      DATABASE_URL: bouncer.url(databaseName),
      DATABASE_PREPARE: 'false',
      PORT: '0',
      // One secret for both, so a token issued by one process is accepted by the other.
      JWT_SECRET: randomBytes(32).toString('hex'),
      NODE_ENV: 'test',
      // `info`, not quieter: ready() finds the port in the "listening" line, logged at info.
      LOG_LEVEL: 'info',
      RATE_LIMIT_PER_MINUTE: '0',
      AUTH_RATE_LIMIT_PER_MINUTE: '0',
    };
    processes.push(startServerProcess(env), startServerProcess(env));
    bases = await Promise.all(processes.map((proc) => proc.ready(45_000)));

    const signup = await send(bases[0]!, 'POST', '/api/v1/auth/signup', {
      body: { email: `bouncer-${randomUUID()}@example.com`, password: 'correct horse battery', name: 'Bouncer' },
    });
    expect(signup.status, signup.text).toBe(201);
    token = signup.body.access_token;
    userId = signup.body.user.id;
    organizationId = signup.body.organization.id;
    // The token of one process works on the other.
    const me = await send(bases[1]!, 'GET', '/api/v1/auth/me', { token });
    expect(me.status, me.text).toBe(200);
  });

  afterAll(async () => {
    await Promise.all(processes.map((proc) => proc.kill()));
    await bouncer?.stop();
    await db?.end();
    await admin?.unsafe(`drop database if exists "${databaseName}" with (force)`);
    await admin?.end();
  });

  /** The base URL of request `i`: even ones go to the first process, odd ones to the second. */
  const baseFor = (i: number) => bases[i % bases.length]!;

  /** `count` requests at once, request `i` sent to baseFor(i). */
  const race = (count: number, request: (base: string, i: number) => Promise<ApiResponse>) =>
    Promise.all(Array.from({ length: count }, (_, i) => request(baseFor(i), i)));

  const statusesOf = (answers: ApiResponse[]) => answers.map((a) => a.status);
  const textsOf = (answers: ApiResponse[]) => answers.map((a) => `${a.status} ${a.text}`).join('\n');

  /** Neither process logged an error (pino level 50 and above) or wrote to stderr. */
  const expectNoErrorsLogged = () => {
    for (const proc of processes) {
      const errors = proc
        .stdout()
        .split('\n')
        .filter((line) => line.startsWith('{') && (JSON.parse(line) as { level?: number }).level! >= 50);
      expect(errors).toEqual([]);
      expect(proc.stderr()).toBe('');
    }
  };

  const idempotentPost = (base: string, path: string, body: unknown, key: string) =>
    send(base, 'POST', path, { token, body, headers: { 'Idempotency-Key': key } });

  /**
   * The answers to one key's racing duplicates: each is the stored 201 or a 409 "still in
   * progress" with Retry-After: 1; exactly one 201 is the original (no Idempotent-Replayed),
   * the other 201s are replays of it, byte for byte. Returns the original.
   */
  const expectOneOutcome = (answers: ApiResponse[]): ApiResponse => {
    expect(
      answers.every((a) => a.status === 201 || a.status === 409),
      textsOf(answers),
    ).toBe(true);
    for (const waited of answers.filter((a) => a.status === 409)) {
      expectApiError(waited, 409, 'CONFLICT');
      expect(waited.headers.get('retry-after')).toBe('1');
    }
    const created = answers.filter((a) => a.status === 201);
    const originals = created.filter((a) => a.headers.get('idempotent-replayed') === null);
    expect(originals, textsOf(answers)).toHaveLength(1);
    const original = originals[0]!;
    for (const replay of created.filter((a) => a !== original)) {
      expect(replay.headers.get('idempotent-replayed')).toBe('true');
      expect(replay.body).toEqual(original.body);
      expect(replay.headers.get('location')).toBe(original.headers.get('location'));
    }
    return original;
  };

  const storedKey = async (key: string) =>
    db!<{ operation: string; status_code: number | null }[]>`
      select operation, status_code from idempotency_keys where user_id = ${userId} and key = ${key}`;

  describe('50 concurrent creates of one explicit slug', () => {
    it('answers exactly one 201 and 49 409 CONFLICT, and stores one workspace with that slug', async () => {
      const slug = `race-${randomBytes(4).toString('hex')}`;
      const answers = await race(RACERS, (base, i) =>
        send(base, 'POST', '/api/v1/workspaces', { token, body: { organization_id: organizationId, name: `Slug race ${i}`, slug } }),
      );

      const created = answers.filter((a) => a.status === 201);
      expect(created, textsOf(answers)).toHaveLength(1);
      expect(created[0]!.body).toMatchObject({ organization_id: organizationId, slug, is_default: false, version: 1 });
      expect(created[0]!.headers.get('location')).toBe(`/api/v1/workspaces/${created[0]!.body.id}`);
      const refused = answers.filter((a) => a.status !== 201);
      expect(refused).toHaveLength(RACERS - 1);
      for (const answer of refused) expectApiError(answer, 409, 'CONFLICT');

      const rows = await db!`select id, name from workspaces where organization_id = ${organizationId} and slug = ${slug}`;
      expect(rows).toEqual([{ id: created[0]!.body.id, name: created[0]!.body.name }]);
      expectNoErrorsLogged();
    });
  });

  describe('50 concurrent POST /api/v1/workspaces with one Idempotency-Key', () => {
    it('creates one workspace; every answer is that 201 (or 409 still in progress), and a later retry replays it', async () => {
      const key = `bouncer-${randomUUID()}`;
      const body = { organization_id: organizationId, name: `Idempotent ${randomBytes(4).toString('hex')}`, metadata: { racers: '50' } };
      const answers = await race(RACERS, (base) => idempotentPost(base, '/api/v1/workspaces', body, key));

      const original = expectOneOutcome(answers);
      expect(original.body).toMatchObject({ organization_id: organizationId, name: body.name, metadata: body.metadata, version: 1 });
      expect(original.headers.get('location')).toBe(`/api/v1/workspaces/${original.body.id}`);

      const rows = await db!`select id from workspaces where name = ${body.name}`;
      expect(rows).toEqual([{ id: original.body.id }]);
      expect(await storedKey(key)).toEqual([{ operation: 'workspaces.create', status_code: 201 }]);

      const retry = await idempotentPost(baseFor(1), '/api/v1/workspaces', body, key);
      expect(retry.status, retry.text).toBe(201);
      expect(retry.headers.get('idempotent-replayed')).toBe('true');
      expect(retry.body).toEqual(original.body);
      expect(await db!`select id from workspaces where name = ${body.name}`).toEqual([{ id: original.body.id }]);
      expectNoErrorsLogged();
    });
  });

  describe('50 concurrent POST /api/v1/workspaces/provision (atomic, 5 items) with one Idempotency-Key', () => {
    it('creates one batch of 5; every answer is that 201 (or 409 still in progress), and a later retry replays it', async () => {
      const prefix = `Batch ${randomBytes(4).toString('hex')}`;
      const body = {
        organization_id: organizationId,
        mode: 'atomic',
        workspaces: [1, 2, 3, 4, 5].map((n) => ({ name: `${prefix} ${n}` })),
      };
      const key = `bouncer-${randomUUID()}`;
      const answers = await race(RACERS, (base) => idempotentPost(base, '/api/v1/workspaces/provision', body, key));

      const original = expectOneOutcome(answers);
      expect(original.body.failed).toEqual([]);
      expect(original.body.created.map((w: { name: string }) => w.name)).toEqual(body.workspaces.map((w) => w.name));

      const rows = await db!<{ id: string }[]>`select id from workspaces where name like ${`${prefix} %`} order by name`;
      expect(rows.map((r) => r.id)).toEqual(original.body.created.map((w: { id: string }) => w.id));
      expect(await storedKey(key)).toEqual([{ operation: 'workspaces.provision', status_code: 201 }]);

      const retry = await idempotentPost(baseFor(1), '/api/v1/workspaces/provision', body, key);
      expect(retry.status, retry.text).toBe(201);
      expect(retry.headers.get('idempotent-replayed')).toBe('true');
      expect(retry.body).toEqual(original.body);
      expect(await db!`select count(*)::int as n from workspaces where name like ${`${prefix} %`}`).toEqual([{ n: 5 }]);
      expectNoErrorsLogged();
    });
  });

  describe('20 concurrent PUT /api/v1/workspaces/{id} {is_default: true} over 20 workspaces of one organization', () => {
    it('answers 200 to each and leaves exactly one default, the flag having moved 20 times one after another', async () => {
      const organization = await send(baseFor(0), 'POST', '/api/v1/organizations', {
        token,
        body: { name: `Defaults ${randomBytes(4).toString('hex')}` },
      });
      expect(organization.status, organization.text).toBe(201);
      const org: string = organization.body.id;
      const [originalDefault] = await db!<{ id: string }[]>`select id from workspaces where organization_id = ${org} and is_default`;
      const candidates = await race(20, (base, i) =>
        send(base, 'POST', '/api/v1/workspaces', { token, body: { organization_id: org, name: `Candidate ${i}` } }),
      );
      expect(statusesOf(candidates), textsOf(candidates)).toEqual(Array(20).fill(201));
      const ids = candidates.map((c) => c.body.id as string);

      const answers = await race(20, (base, i) => send(base, 'PUT', `/api/v1/workspaces/${ids[i]}`, { token, body: { is_default: true } }));
      expect(statusesOf(answers), textsOf(answers)).toEqual(Array(20).fill(200));
      answers.forEach((answer, i) => expect(answer.body).toMatchObject({ id: ids[i], is_default: true, version: 2 }));

      const defaults = await db!<{ id: string; version: number }[]>`
        select id, version from workspaces where organization_id = ${org} and is_default`;
      expect(defaults).toHaveLength(1);
      expect(ids).toContain(defaults[0]!.id);
      // Each move set its target (version 2) and, but for the last, was undone by a later one (3).
      const versions = await db!<{ id: string; version: number }[]>`
        select id, version from workspaces where organization_id = ${org} and id <> ${originalDefault!.id}`;
      expect(Object.fromEntries(versions.map((r) => [r.id, r.version]))).toEqual(
        Object.fromEntries(ids.map((id) => [id, id === defaults[0]!.id ? 2 : 3])),
      );
      expect(await db!`select is_default, version from workspaces where id = ${originalDefault!.id}`).toEqual([
        { is_default: false, version: 2 },
      ]);
      expectNoErrorsLogged();
    });
  });
});

interface SendOptions {
  token?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

/** One HTTP request to `base` (a service process), the answer parsed like TestApp.request's. */
async function send(base: string, method: string, path: string, options: SendOptions = {}): Promise<ApiResponse> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(base + path, {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    // Not JSON: the text is the body.
  }
  return { status: response.status, headers: response.headers, body: body as any, text };
}
