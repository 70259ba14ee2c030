import { execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exitWithin, REPO_ROOT, sleep, startServerProcess, type ServerProcess, type StartCommand } from './helpers/process-helpers';

/**
 * Graceful shutdown through the documented start commands: SIGTERM sent to the process a
 * container runtime would signal — npm itself for `npm start`, node for the production build —
 * drains the requests in flight, exits 0, and leaves nothing serving on the port.
 */

const onPostgres = Boolean(process.env.DATABASE_URL);
const TEST_TIMEOUT = 120_000;

interface Outcome {
  startedAt: number;
  endedAt: number;
  status: number | 'network error';
}

/** Whether anything accepts connections on the port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A steady load until `stop` resolves: `width` loops, each signing up (scrypt makes it slow
 * enough to be in flight when the signal comes) or reading `/auth/me`, one after another.
 */
function loadUntil(url: string, token: string, width: number, stop: Promise<void>): Promise<Outcome[]> {
  const outcomes: Outcome[] = [];
  let stopped = false;
  void stop.then(() => (stopped = true));
  let n = 0;
  const one = async (i: number): Promise<void> => {
    const startedAt = Date.now();
    const signup = i % 2 === 0;
    try {
      const res = await fetch(`${url}/api/v1/auth/${signup ? 'signup' : 'me'}`, {
        method: signup ? 'POST' : 'GET',
        headers: signup ? { 'content-type': 'application/json' } : { authorization: `Bearer ${token}` },
        body: signup
          ? JSON.stringify({ email: `load-${Date.now()}-${++n}@example.com`, password: 'a long password', name: 'Load' })
          : undefined,
        signal: AbortSignal.timeout(15_000),
      });
      await res.arrayBuffer();
      outcomes.push({ startedAt, endedAt: Date.now(), status: res.status });
    } catch {
      outcomes.push({ startedAt, endedAt: Date.now(), status: 'network error' });
    }
  };
  const loop = async (i: number) => {
    while (!stopped) await one(i);
  };
  return Promise.all(Array.from({ length: width }, (_, i) => loop(i))).then(() => outcomes);
}

describe.skipIf(onPostgres).each<StartCommand>(['npm-start', 'production'])('SIGTERM to the process started by %s', (command) => {
  let proc: ServerProcess;
  let url: string;

  beforeAll(() => {
    if (command === 'production') execFileSync('npm', ['run', 'build', '--silent'], { cwd: REPO_ROOT, stdio: 'ignore' });
    proc = startServerProcess(
      { PORT: '0', DATA_DIR: 'memory://', LOG_LEVEL: 'info', RATE_LIMIT_PER_MINUTE: '0', AUTH_RATE_LIMIT_PER_MINUTE: '0' },
      command,
    );
  }, TEST_TIMEOUT);
  afterAll(async () => {
    await proc?.kill();
  });

  it(
    'finishes the requests in flight, exits 0 and leaves nothing listening',
    async () => {
      url = await proc.ready();
      const port = Number(new URL(url).port);
      const serverPid = proc.serverPid()!;
      if (command === 'npm-start') expect(serverPid, 'npm runs the server as its child').not.toBe(proc.pid);
      const signup = await fetch(`${url}/api/v1/auth/signup`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: `owner-${Date.now()}@example.com`, password: 'a long password', name: 'Owner' }),
      });
      expect(signup.status).toBe(201);
      const { access_token: token } = (await signup.json()) as { access_token: string };

      let stop!: () => void;
      const stopped = new Promise<void>((resolve) => (stop = resolve));
      const load = loadUntil(url, token, 8, stopped);
      await sleep(1500);
      const signalledAt = Date.now();
      proc.child.kill('SIGTERM');
      const code = await exitWithin(proc, 20_000);
      stop();
      const outcomes = await load;

      expect(code, proc.stderr()).toBe(0);
      expect(alive(serverPid), 'no orphaned server').toBe(false);
      expect(await listening(port), 'nothing listens on the port').toBe(false);

      // Requests sent well before the signal were in flight or done: every one answered 2xx.
      const before = outcomes.filter((o) => o.startedAt < signalledAt - 100);
      expect(before.length).toBeGreaterThan(10);
      expect(before.filter((o) => o.status !== 200 && o.status !== 201)).toEqual([]);
      // And some were in flight when it came, and still answered 2xx.
      const inFlight = outcomes.filter(
        (o) => o.startedAt < signalledAt && o.endedAt > signalledAt && (o.status === 200 || o.status === 201),
      );
      expect(inFlight.length, 'some requests were in flight at the signal').toBeGreaterThan(0);
      // Later ones found the server closing: refused, never a 5xx.
      for (const o of outcomes) expect(typeof o.status === 'number' && o.status >= 500).toBe(false);
      expect(proc.stderr()).toBe('');
    },
    TEST_TIMEOUT,
  );
});
