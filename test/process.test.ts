import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseUrlFor } from './helpers/database-url';
import { exitWithin, holdPort, REPO_ROOT, sleep, startServerProcess, stderrLines, type ServerProcess } from './helpers/process-helpers';

/**
 * The real entry (`node --import tsx src/main.ts`) as an operator starts it. These runs use the
 * embedded database and are skipped when DATABASE_URL is set, except the one that starts two
 * processes on one fresh PostgreSQL database at the same moment.
 */
const serverUrl = process.env.DATABASE_URL;
const onPostgres = Boolean(serverUrl);
const PROCESS_TEST_TIMEOUT = 180_000;
const STACK_FRAME = /^\s+at /m;

const started: ServerProcess[] = [];
function start(env: Record<string, string>): ServerProcess {
  const proc = startServerProcess({ LOG_LEVEL: 'info', PORT: '0', ...env });
  started.push(proc);
  return proc;
}
afterAll(async () => {
  // Whatever a failed assertion left running.
  await Promise.all(started.map((p) => p.kill()));
});

const isRunning = (proc: ServerProcess) => proc.child.exitCode === null && proc.child.signalCode === null;

async function post(url: string, path: string, body: unknown, token?: string) {
  const response = await fetch(url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as any };
}
async function get(url: string, path: string, token?: string) {
  const response = await fetch(url + path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { status: response.status, body: (await response.json()) as any };
}

/** Asserts the process refused to start: non-zero exit, one stderr line matching `pattern`, no stack. */
async function expectRefusal(proc: ServerProcess, pattern: RegExp, timeoutMs = 30_000) {
  const code = await exitWithin(proc, timeoutMs);
  expect(code, proc.stderr()).not.toBe(0);
  expect(typeof code).toBe('number');
  const lines = stderrLines(proc);
  expect(lines, proc.stderr()).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(proc.stderr()).not.toMatch(STACK_FRAME);
  expect(proc.stdout()).not.toMatch(STACK_FRAME);
  return lines[0]!;
}

describe.skipIf(onPostgres)('a bad configuration', () => {
  it(
    'stops the process with one stderr line naming the variable, a non-zero exit and no stack',
    async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'ws-proc-config-'));
      try {
        // All at once: each one compiles the entry with tsx (seconds on a busy machine).
        const cases: Array<[Record<string, string>, RegExp]> = [
          [{ PORT: 'abc' }, /\bPORT\b/],
          [{ NODE_ENV: 'production' }, /\bJWT_SECRET\b.*production|production.*\bJWT_SECRET\b/],
          // The embedded database has no shared rate-limit store.
          [{ RATE_LIMIT_STORE: 'postgres' }, /\bRATE_LIMIT_STORE\b.*DATABASE_URL/],
        ];
        const procs = cases.map(([env]) => start({ DATA_DIR: dataDir, ...env }));
        for (const [i, proc] of procs.entries()) await expectRefusal(proc, cases[i]![1], 60_000);
        // Refused before anything was opened or generated.
        expect(existsSync(join(dataDir, 'jwt-secret'))).toBe(false);
        expect(existsSync(join(dataDir, 'pglite'))).toBe(false);
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
    PROCESS_TEST_TIMEOUT,
  );
});

/** The JSON log lines a process wrote to stdout so far. */
const logLines = (proc: ServerProcess) =>
  proc
    .stdout()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { level: number; msg: string; variable?: string });

// On an in-memory embedded database, with DATABASE_URL set or not: it needs no server.
describe('TRUST_PROXY=true at start', () => {
  it(
    'logs one warn line naming TRUST_PROXY and serves; a hop count logs none',
    async () => {
      const [trusting, counted] = [
        start({ DATA_DIR: 'memory://', TRUST_PROXY: 'true' }),
        start({ DATA_DIR: 'memory://', TRUST_PROXY: '1' }),
      ];
      const urls = await Promise.all([trusting.ready(), counted.ready()]);
      for (const url of urls) expect((await get(url, '/healthz')).status).toBe(200);

      const warnings = (proc: ServerProcess) => logLines(proc).filter((line) => line.level >= 40);
      expect(warnings(trusting), trusting.stdout()).toEqual([
        expect.objectContaining({ level: 40, variable: 'TRUST_PROXY', msg: expect.stringMatching(/X-Forwarded-For/) }),
      ]);
      expect(warnings(counted), counted.stdout()).toEqual([]);
      expect(trusting.stderr()).toBe('');

      for (const proc of [trusting, counted]) proc.child.kill('SIGTERM');
      for (const proc of [trusting, counted]) expect(await exitWithin(proc, 15_000)).toBe(0);
    },
    PROCESS_TEST_TIMEOUT,
  );
});

describe.skipIf(onPostgres)('the embedded database across processes', () => {
  let dataDir: string;
  const lockPath = () => join(dataDir, 'pglite.lock');
  const secretPath = () => join(dataDir, 'jwt-secret');
  const lockOwner = () => (JSON.parse(readFileSync(lockPath(), 'utf8')) as { pid: number }).pid;

  let first: ServerProcess;
  let firstUrl: string;
  let secret: string;
  const ann = { email: `ann-${randomUUID()}@example.com`, password: 'correct horse battery', name: 'Ann' };
  const bob = { email: `bob-${randomUUID()}@example.com`, password: 'correct horse battery', name: 'Bob' };
  let annToken: string;
  let annId: string;

  beforeAll(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'ws-proc-data-'));
  });
  afterAll(() => {
    rmSync(dataDir, { recursive: true, force: true });
  });

  it(
    'serves with no configuration: /healthz, /readyz, signup, and a development secret kept in DATA_DIR',
    async () => {
      first = start({ DATA_DIR: dataDir });
      firstUrl = await first.ready();
      expect((await get(firstUrl, '/healthz')).status).toBe(200);
      expect((await get(firstUrl, '/readyz')).status).toBe(200);

      const signedUp = await post(firstUrl, '/api/v1/auth/signup', ann);
      expect(signedUp.status).toBe(201);
      expect(signedUp.body).toMatchObject({ token_type: 'Bearer', user: { email: ann.email, name: 'Ann' } });
      annToken = signedUp.body.access_token;
      annId = signedUp.body.user.id;
      const me = await get(firstUrl, '/api/v1/auth/me', annToken);
      expect(me.status).toBe(200);
      expect(me.body.user.id).toBe(annId);

      expect(existsSync(secretPath())).toBe(true);
      secret = readFileSync(secretPath(), 'utf8');
      expect(Buffer.from(secret.trim(), 'base64').length).toBeGreaterThanOrEqual(32);
      expect(statSync(secretPath()).mode & 0o077).toBe(0);
      expect(lockOwner()).toBe(first.pid);
      // Nothing of the data lands outside DATA_DIR (./.data is the default, not ours).
      expect(existsSync(join(dataDir, 'pglite'))).toBe(true);
      expect(first.stderr()).toBe('');
    },
    PROCESS_TEST_TIMEOUT,
  );

  it(
    'refuses a second process on the same DATA_DIR with one clear line while the first runs',
    async () => {
      expect(firstUrl).toBeDefined();
      const second = start({ DATA_DIR: dataDir });
      const line = await expectRefusal(second, /in use by another process/);
      expect(line).toContain(String(first.pid));
      expect(line).toContain('DATA_DIR');

      // The first one is untouched: still serving, still the lock's owner.
      expect(isRunning(first)).toBe(true);
      expect(lockOwner()).toBe(first.pid);
      const me = await get(firstUrl, '/api/v1/auth/me', annToken);
      expect(me.status).toBe(200);
    },
    PROCESS_TEST_TIMEOUT,
  );

  it(
    'lets an in-flight request finish on SIGTERM, then exits 0 and releases the lock',
    async () => {
      expect(firstUrl).toBeDefined();
      const body = JSON.stringify(bob);
      const url = new URL('/api/v1/auth/signup', firstUrl);
      const req = httpRequest(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      });
      const answered = new Promise<{ status: number; text: string }>((resolve, reject) => {
        req.on('response', (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode!, text }));
          res.on('error', reject);
        });
        req.on('error', reject);
      });
      // Half the body: the request is in flight (headers read, body pending) when the signal comes.
      req.write(body.slice(0, 20));
      // Time for the server to read the headers even on a busy machine: a connection with no
      // request read yet is idle, and shutdown closes idle connections.
      await sleep(1000);
      first.child.kill('SIGTERM');
      await sleep(700);
      expect(isRunning(first), 'the process waits for the in-flight request').toBe(true);
      req.end(body.slice(20));

      const res = await answered;
      const answeredAt = Date.now();
      expect(res.status, res.text).toBe(201);
      expect(JSON.parse(res.text)).toMatchObject({ user: { email: bob.email } });

      expect(await exitWithin(first, 15_000)).toBe(0);
      // Promptly: the finished request's keep-alive connection does not hold the exit up (5 s).
      expect(Date.now() - answeredAt).toBeLessThan(3000);
      expect(existsSync(lockPath()), 'a clean stop releases the lock').toBe(false);
      expect(first.stderr()).toBe('');
    },
    PROCESS_TEST_TIMEOUT,
  );

  it(
    'exits non-zero with one clear line when the port is taken',
    async () => {
      const held = await holdPort();
      try {
        // DATA_DIR is free now and already initialised: opening it is quick. The process
        // fails after opening the database, like a crash: its lock is left behind, stale.
        const proc = start({ DATA_DIR: dataDir, PORT: String(held.port) });
        const line = await expectRefusal(proc, new RegExp(`\\b${held.port}\\b`), 90_000);
        expect(line).toMatch(/in use/);
        expect(line).toContain('PORT');
        expect(lockOwner(), 'the lock of a process that is gone').toBe(proc.pid);
      } finally {
        await held.release();
      }
    },
    PROCESS_TEST_TIMEOUT,
  );

  let restarted: ServerProcess;
  it(
    'restarts on the same DATA_DIR with the data and the secret: a token from before still works',
    async () => {
      expect(secret).toBeDefined();
      restarted = start({ DATA_DIR: dataDir });
      const url = await restarted.ready();
      expect(lockOwner(), 'the stale lock of the process that failed on the port is taken over').toBe(restarted.pid);
      expect(readFileSync(secretPath(), 'utf8')).toBe(secret);

      const me = await get(url, '/api/v1/auth/me', annToken);
      expect(me.status).toBe(200);
      expect(me.body.user).toMatchObject({ id: annId, email: ann.email });
      // The signup that was in flight at SIGTERM was committed.
      const login = await post(url, '/api/v1/auth/login', { email: bob.email, password: bob.password });
      expect(login.status).toBe(200);

      // Written by this process, which is then killed without a chance to close anything.
      const created = await post(url, '/api/v1/organizations', { name: 'Before the crash' }, annToken);
      expect(created.status).toBe(201);
      expect(lockOwner()).toBe(restarted.pid);
    },
    PROCESS_TEST_TIMEOUT,
  );

  it(
    'after kill -9, a new process takes the stale lock and serves with the data intact',
    async () => {
      expect(restarted).toBeDefined();
      restarted.child.kill('SIGKILL');
      expect(await exitWithin(restarted, 10_000)).toBe('SIGKILL');
      expect(lockOwner(), 'a killed process leaves its lock behind').toBe(restarted.pid);

      const next = start({ DATA_DIR: dataDir });
      const nextUrl = await next.ready();
      expect(lockOwner(), 'the stale lock is taken over').toBe(next.pid);
      const list = await get(nextUrl, '/api/v1/organizations?limit=100', annToken);
      expect(list.status).toBe(200);
      expect(list.body.items.map((o: { name: string }) => o.name)).toEqual(
        expect.arrayContaining(["Ann's organization", 'Before the crash']),
      );
      expect((await post(nextUrl, '/api/v1/auth/login', { email: bob.email, password: bob.password })).status).toBe(200);
      expect((await get(nextUrl, '/readyz')).status).toBe(200);

      next.child.kill('SIGTERM');
      expect(await exitWithin(next, 15_000)).toBe(0);
      expect(existsSync(lockPath())).toBe(false);
    },
    PROCESS_TEST_TIMEOUT,
  );
});

describe.runIf(onPostgres)('two processes starting together on one fresh PostgreSQL database', () => {
  const database = `ws_proc_${randomUUID().replace(/-/g, '')}`;
  let admin: postgres.Sql;
  let dataDir: string;

  beforeAll(async () => {
    admin = postgres(serverUrl!, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database "${database}"`);
    dataDir = mkdtempSync(join(tmpdir(), 'ws-proc-pg-'));
  });
  afterAll(async () => {
    await Promise.all(started.map((p) => p.kill()));
    await admin?.unsafe(`drop database if exists "${database}" with (force)`);
    await admin?.end();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it(
    'both apply the migrations without racing (advisory lock) and are ready',
    async () => {
      const env = {
        DATABASE_URL: databaseUrlFor(serverUrl!, database),
        JWT_SECRET: 'a-shared-secret-that-is-at-least-32-bytes',
        DATA_DIR: dataDir,
      };
      const procs = [start(env), start(env)];
      const urls = await Promise.all(procs.map((p) => p.ready()));
      for (const [i, url] of urls.entries()) {
        const ready = await get(url, '/readyz');
        expect(ready.status, procs[i]!.stderr()).toBe(200);
        expect(procs[i]!.stderr()).toBe('');
      }

      const journal = JSON.parse(readFileSync(join(REPO_ROOT, 'drizzle/meta/_journal.json'), 'utf8')) as { entries: unknown[] };
      const db = postgres(databaseUrlFor(serverUrl!, database), { max: 1, onnotice: () => {} });
      try {
        const applied = await db`select count(*)::int as count from drizzle.__drizzle_migrations`;
        expect(applied[0]!.count).toBe(journal.entries.length);
        const tables = await db`select table_name from information_schema.tables where table_schema = 'public'`;
        expect(tables.map((t) => t.table_name)).toEqual(expect.arrayContaining(['users', 'organizations', 'memberships', 'workspaces']));

        // One database, one secret: a token from one process works on the other.
        const signedUp = await post(urls[0]!, '/api/v1/auth/signup', {
          email: `pg-${randomUUID()}@example.com`,
          password: 'correct horse battery',
          name: 'Pat',
        });
        expect(signedUp.status).toBe(201);
        const me = await get(urls[1]!, '/api/v1/auth/me', signedUp.body.access_token);
        expect(me.status).toBe(200);
        const users = await db`select id from users where id = ${signedUp.body.user.id}`;
        expect(users).toHaveLength(1);
      } finally {
        await db.end();
      }

      for (const proc of procs) proc.child.kill('SIGTERM');
      for (const proc of procs) expect(await exitWithin(proc, 15_000)).toBe(0);
      // An external DATABASE_URL needs no development secret in DATA_DIR.
      expect(existsSync(join(dataDir, 'jwt-secret'))).toBe(false);
    },
    PROCESS_TEST_TIMEOUT,
  );
});
