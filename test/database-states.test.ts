/**
 * Database states that are not bugs (README, Reliability: database states): one table in
 * src/db/errors.ts answers each with 503 and `Retry-After`, and one `warn` line naming the
 * code; everything else stays a 500 logged with its stack. Then a primary made read-only under
 * the running service (a disposable cluster: `ALTER SYSTEM` must never touch the machine's
 * shared server): writes 503, `/readyz` says why, no error-level line, and recovery at once
 * when writes are allowed again. And a full disk under the data files (a small tmpfs, where the
 * test may mount one): 503, not 500, and writes again once there is room.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Writable } from 'node:stream';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UNAVAILABLE_STATES, isDatabaseUnavailable, unavailableState } from '../src/db/errors';
import { describeError, logFailure } from '../src/trpc/errors';
import { startDisposableCluster, type DisposableCluster } from './helpers/pg-cluster';
import { chownToPostgres } from './helpers/postgres-user';
import { sleep, startServerProcess, type ServerProcess } from './helpers/process-helpers';

/** A driver error as postgres.js throws it, wrapped as drizzle wraps it. */
const databaseError = (code: string) =>
  Object.assign(new Error('Failed query'), { cause: Object.assign(new Error(`state ${code}`), { code }) });

/** A pino logger whose lines land in `lines`. */
function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

/** The service as a process on `url` (info logs, no rate limits), with a new account signed up on it. */
async function serveSignedUp(url: string, name: string) {
  const service = startServerProcess({
    DATABASE_URL: url,
    PORT: '0',
    JWT_SECRET: randomBytes(32).toString('hex'),
    NODE_ENV: 'test',
    LOG_LEVEL: 'info',
    RATE_LIMIT_PER_MINUTE: '0',
    AUTH_RATE_LIMIT_PER_MINUTE: '0',
  });
  const base = await service.ready();
  const res = await fetch(`${base}/api/v1/auth/signup`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: `${name.toLowerCase()}-${randomUUID()}@example.com`, password: 'correct horse battery', name }),
  });
  const body = (await res.json()) as { access_token: string; organization: { id: string } };
  expect(res.status, JSON.stringify(body)).toBe(201);
  return { service, base, token: body.access_token, organizationId: body.organization.id };
}

/** The service's JSON log lines written after `from` (a length of its stdout). */
const logLinesSince = (service: ServerProcess, from: number) =>
  service
    .stdout()
    .slice(from)
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { level: number; msg: string; code?: string; state?: string });

describe('the table of database states', () => {
  const NAMED = ['25006', '53100', '53200', '53300', '57P01', '57P02', '57P03', '57014', '40001', '40P01', '55P03'];
  const CONNECTION_CLASS = ['08000', '08001', '08003', '08004', '08006', '08P01'];
  const BUGS = ['23505', '23503', '42P01', '42703', '22001', 'XX000', '0A000', '25P02', '53'];

  it('answers every named state, and every connection exception (class 08), with 503 and Retry-After 1', () => {
    for (const code of [...NAMED, ...CONNECTION_CLASS, 'ECONNREFUSED', 'CONNECTION_CLOSED', 'CONNECTION_STALLED', 'DATABASE_DEADLINE']) {
      expect(isDatabaseUnavailable(databaseError(code)), code).toBe(true);
      expect(describeError(databaseError(code)), code).toEqual({
        status: 503,
        body: { code: 'SERVICE_UNAVAILABLE', message: 'The database is unavailable; try again shortly' },
        retryAfter: 1,
      });
    }
    expect(unavailableState('08006')).toBe('connection exception');
    expect(unavailableState('25006')).toBe('read-only transaction');
  });

  it('leaves every other state a 500 (a bug), with the generic message', () => {
    for (const code of BUGS) {
      if (code === '23503') continue; // a foreign key violation is its own answer (404)
      expect(isDatabaseUnavailable(databaseError(code)), code).toBe(false);
      expect(describeError(databaseError(code)).status, code).toBe(500);
    }
  });

  it('logs a state as one warn line naming its code and meaning, a bug as an error with its stack', () => {
    const { logger, lines } = capturingLogger();
    logFailure(logger, databaseError('53100'), 'r1');
    logFailure(logger, databaseError('XX000'), 'r2');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ level: 40, code: '53100', state: 'disk full', requestId: 'r1', msg: 'database unavailable' });
    expect(lines[0]).not.toHaveProperty('error');
    expect(lines[1]).toMatchObject({ level: 50, requestId: 'r2', msg: 'unexpected error' });
    expect(JSON.stringify(lines[1])).toContain('stack');
  });

  it('is the README table: the same codes, in Reliability', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const start = readme.indexOf('### Database states');
    expect(start, 'the README has the section').toBeGreaterThan(-1);
    const section = readme.slice(start, readme.indexOf('\n### ', start + 1));
    const documented = [...section.matchAll(/^\| `([0-9A-Z_]+)`/gm)].map((m) => m[1]);
    expect(documented.sort()).toEqual(Object.keys(UNAVAILABLE_STATES).sort());
  });
});

describe.runIf(Boolean(process.env.DATABASE_URL))('a primary made read-only under the running service (PostgreSQL)', () => {
  let cluster: DisposableCluster;
  let admin: postgres.Sql;
  let service: ServerProcess;
  let base: string;
  let token: string;
  let organizationId: string;

  beforeAll(async () => {
    cluster = await startDisposableCluster();
    admin = postgres(cluster.url, { max: 1, onnotice: () => {}, connect_timeout: 5 });
    ({ service, base, token, organizationId } = await serveSignedUp(cluster.url, 'States'));
  }, 120_000);

  afterAll(async () => {
    await service?.kill();
    await admin?.end({ timeout: 1 });
    await cluster?.destroy();
  });

  const create = (name: string) =>
    fetch(`${base}/api/v1/workspaces`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ organization_id: organizationId, name }),
    });
  const setReadOnly = async (on: boolean) => {
    await admin.unsafe(on ? 'alter system set default_transaction_read_only = on' : 'alter system reset default_transaction_read_only');
    await admin.unsafe('select pg_reload_conf()');
  };

  it('answers writes 503 with Retry-After, reads 200, /readyz 503 naming it; no error-level line; writes again at once when lifted', async () => {
    const before = await create('Before');
    expect(before.status).toBe(201);
    const logFrom = service.stdout().length;

    await setReadOnly(true);
    // Every session rereads the setting between statements once the reload reaches it.
    let refused: Response | undefined;
    for (let i = 0; i < 50 && !refused; i++) {
      const res = await create(`During ${i}`);
      if (res.status === 503) refused = res;
      else await sleep(20);
    }
    expect(refused, 'a write was refused while read-only').toBeDefined();
    expect(refused!.headers.get('retry-after')).toBe('1');
    expect(await refused!.json()).toEqual({ code: 'SERVICE_UNAVAILABLE', message: 'The database is unavailable; try again shortly' });
    for (let i = 0; i < 3; i++) expect((await create(`Still ${i}`)).status).toBe(503);
    const read = await fetch(`${base}/api/v1/workspaces?organization_id=${organizationId}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(read.status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.headers.get('retry-after')).toBe('1');
    expect(((await ready.json()) as { message: string }).message).toMatch(/read-only/);

    await setReadOnly(false);
    const lifted = Date.now();
    let recoveredAfter: number | undefined;
    while (Date.now() - lifted < 5000) {
      if ((await create(`After ${Date.now()}`)).status === 201) {
        recoveredAfter = Date.now() - lifted;
        break;
      }
      await sleep(20);
    }
    expect(recoveredAfter, 'writes came back').toBeDefined();
    expect(recoveredAfter!).toBeLessThanOrEqual(1000);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);

    const lines = logLinesSince(service, logFrom);
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
    const warnings = lines.filter((l) => l.msg === 'database unavailable');
    expect(warnings.length).toBeGreaterThanOrEqual(4);
    for (const warning of warnings) expect(warning).toMatchObject({ level: 40, code: '25006', state: 'read-only transaction' });
    // Nothing was written while refused.
    const [{ n }] = await admin<
      [{ n: number }]
    >`select count(*)::int as n from workspaces where name like 'During %' or name like 'Still %'`;
    expect(n).toBe(0);
  }, 60_000);
});

/** Writes zeros to `path` until the file system has no room left (ENOSPC). */
function fillUp(path: string): void {
  const fd = openSync(path, 'w');
  const zeros = Buffer.alloc(1 << 20);
  try {
    for (;;) writeSync(fd, zeros);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    closeSync(fd);
  }
}

describe.runIf(Boolean(process.env.DATABASE_URL))('the disk of the data files full under the running service (PostgreSQL)', () => {
  /** Why the block cannot run here (mounting a tmpfs needs root, or CAP_SYS_ADMIN). */
  let cannotMount: string | undefined;
  let mountPoint: string | undefined;
  let mounted = false;
  let walParent: string | undefined;
  let cluster: DisposableCluster | undefined;
  let service: ServerProcess | undefined;
  let base: string;
  let token: string;
  let organizationId: string;

  beforeAll(async () => {
    // The data files on a small tmpfs, the WAL elsewhere: a full data disk refuses the writes
    // that must extend a file (SQLSTATE 53100), where a full WAL disk would stop the server.
    mountPoint = mkdtempSync(join(tmpdir(), 'pg-diskfull-'));
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=96m', 'tmpfs', mountPoint], { stdio: 'pipe', timeout: 10_000 });
      mounted = true;
    } catch (error) {
      const e = error as { stderr?: Buffer; message: string };
      cannotMount = `cannot mount a tmpfs here (it needs root or CAP_SYS_ADMIN): ${(e.stderr?.toString() || e.message).trim()}`;
      return;
    }
    chownToPostgres(mountPoint);
    walParent = mkdtempSync(join(tmpdir(), 'pg-diskfull-wal-'));
    chownToPostgres(walParent);
    cluster = await startDisposableCluster({ dataDir: join(mountPoint, 'data'), walDir: join(walParent, 'wal') });
    ({ service, base, token, organizationId } = await serveSignedUp(cluster.url, 'Disk'));
  }, 120_000);

  afterAll(async () => {
    await service?.kill();
    await cluster?.destroy();
    if (mounted && mountPoint) {
      try {
        execFileSync('umount', [mountPoint], { stdio: 'pipe', timeout: 10_000 });
      } catch {
        execFileSync('umount', ['-l', mountPoint], { stdio: 'ignore', timeout: 10_000 });
      }
    }
    if (mountPoint) rmSync(mountPoint, { recursive: true, force: true });
    if (walParent) rmSync(walParent, { recursive: true, force: true });
  });

  /** A create whose row (50 incompressible 500-character metadata values, ~25 kB TOASTed) needs new pages soon. */
  const create = (name: string) => {
    const metadata = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, randomBytes(250).toString('hex')]));
    return fetch(`${base}/api/v1/workspaces`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ organization_id: organizationId, name, metadata }),
    });
  };

  it('answers creates 503 with Retry-After (never 500) while no room is left, one warn line each naming 53100; 201 again once there is room', async (ctx) => {
    if (cannotMount) ctx.skip(cannotMount);
    expect((await create('Before')).status).toBe(201);
    const logFrom = service!.stdout().length;
    const filler = join(mountPoint!, 'filler');
    fillUp(filler);

    // Rows may still fit in free space of the pages the files have: create until one needs a new page.
    const statuses: number[] = [];
    let refused: Response | undefined;
    for (let i = 0; i < 50 && !refused; i++) {
      const res = await create(`During ${i}`);
      statuses.push(res.status);
      if (res.status === 503) refused = res;
      else await res.arrayBuffer();
    }
    expect(refused, `a create was refused while the disk was full (answers: ${statuses.join(' ')})`).toBeDefined();
    expect(statuses.filter((status) => status !== 201 && status !== 503)).toEqual([]);
    expect(refused!.headers.get('retry-after')).toBe('1');
    expect(await refused!.json()).toEqual({ code: 'SERVICE_UNAVAILABLE', message: 'The database is unavailable; try again shortly' });
    for (let i = 0; i < 2; i++) {
      const res = await create(`Still ${i}`);
      expect(res.status).toBe(503);
      await res.arrayBuffer();
    }

    unlinkSync(filler);
    const freed = Date.now();
    let recoveredAfter: number | undefined;
    while (Date.now() - freed < 5000) {
      const res = await create(`After ${Date.now()}`);
      await res.arrayBuffer();
      if (res.status === 201) {
        recoveredAfter = Date.now() - freed;
        break;
      }
      expect(res.status).toBe(503);
      await sleep(50);
    }
    expect(recoveredAfter, 'creates came back once there was room').toBeDefined();

    const lines = logLinesSince(service!, logFrom);
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
    const warnings = lines.filter((l) => l.msg === 'database unavailable');
    expect(warnings.length).toBeGreaterThanOrEqual(3);
    for (const warning of warnings) expect(warning).toMatchObject({ level: 40, code: '53100', state: 'disk full' });
  }, 60_000);
});
