/**
 * Load and measurement: autocannon rounds alternating between sides (S B S B …) so drift of a
 * shared machine falls on both, the server's CPU time per request from /proc, exact latency
 * percentiles, and round trips to PostgreSQL per request through the counting proxy.
 * @module
 */
import autocannon, { type Request } from 'autocannon';
import { performance } from 'node:perf_hooks';
import { cpuMicros, type Server } from './processes';
import type { CountingProxy } from './proxy';

/** One kind of request a scenario sends, with the one status every answer must have. */
export interface Workload {
  method: 'GET' | 'POST' | 'PUT';
  token: string;
  expectStatus: number;
  /** Reads: fixed paths, cycled; autocannon builds them once, so choosing costs nothing per request. */
  paths?: string[];
  /** Writes: a fresh request each time (unique names, rotating rows), from a sequence shared by every phase. */
  next?: () => { path: string; body: string };
}

/** One side of a scenario: a server and what it is sent. */
export interface Side {
  label: string;
  server: Server;
  workload: Workload;
}

export interface RoundResult {
  requests: number;
  seconds: number;
  rps: number;
  p50: number;
  p99: number;
  cpuUsPerRequest: number;
}

export interface SideResult {
  label: string;
  rounds: RoundResult[];
  /** Medians over the rounds. */
  rps: number;
  p50: number;
  p99: number;
  cpuUsPerRequest: number;
  /** What was wrong (other statuses, connection errors); empty when every answer was as expected. */
  failures: string[];
}

export interface LoadSettings {
  rounds: number;
  seconds: number;
  warmupSeconds: number;
  connections: number;
}

export const median = (values: number[]): number => {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** Nearest-rank percentile of sorted samples. */
function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function headersOf(workload: Workload): Record<string, string> {
  const headers: Record<string, string> = { authorization: `Bearer ${workload.token}` };
  if (workload.next) headers['content-type'] = 'application/json';
  return headers;
}

function requestsOf(workload: Workload): Request[] {
  if (workload.paths) return workload.paths.map((path) => ({ method: workload.method, path }));
  const next = workload.next!;
  return [{ method: workload.method, setupRequest: (request) => ({ ...request, ...next() }) }];
}

/**
 * One timed autocannon run. Latencies come from autocannon's per-response event (its own
 * histogram keeps whole milliseconds, too coarse for a 3 ms answer); CPU is the server's
 * utime + stime over the run.
 */
async function oneRun(side: Side, seconds: number, connections: number, failures: string[]): Promise<RoundResult> {
  const latencies: number[] = [];
  const statuses = new Map<number, number>();
  const cpuBefore = cpuMicros(side.server.pid);
  const started = performance.now();
  const instance = autocannon({
    url: side.server.url,
    connections,
    duration: seconds,
    timeout: 10,
    headers: headersOf(side.workload),
    requests: requestsOf(side.workload),
  });
  instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
    latencies.push(ms);
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
  });
  const result = await instance;
  const elapsed = (performance.now() - started) / 1000;
  const cpuUsed = cpuMicros(side.server.pid) - cpuBefore;

  for (const [status, count] of statuses) {
    if (status !== side.workload.expectStatus) failures.push(`${count} × status ${status} (expected ${side.workload.expectStatus})`);
  }
  if (result.errors > 0 || result.timeouts > 0) failures.push(`${result.errors} connection errors, ${result.timeouts} timeouts`);
  if (latencies.length === 0) failures.push('no answers at all');
  const sorted = Float64Array.from(latencies).sort();
  return {
    requests: latencies.length,
    seconds: result.duration || elapsed,
    rps: latencies.length / (result.duration || elapsed),
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    cpuUsPerRequest: latencies.length ? cpuUsed / latencies.length : NaN,
  };
}

/**
 * Warm-up of every side (unrecorded), then `rounds` × (each side in turn). Every answer of
 * every phase, warm-up included, must have the workload's status.
 */
export async function alternate(
  sides: Side[],
  settings: LoadSettings,
  onRound?: (side: string, round: RoundResult) => void,
): Promise<SideResult[]> {
  const results = sides.map((side) => ({ side, rounds: [] as RoundResult[], failures: [] as string[] }));
  for (const entry of results) await oneRun(entry.side, settings.warmupSeconds, settings.connections, entry.failures);
  for (let round = 0; round < settings.rounds; round++) {
    for (const entry of results) {
      const result = await oneRun(entry.side, settings.seconds, settings.connections, entry.failures);
      entry.rounds.push(result);
      onRound?.(entry.side.label, result);
    }
  }
  return results.map(({ side, rounds, failures }) => ({
    label: side.label,
    rounds,
    rps: median(rounds.map((r) => r.rps)),
    p50: median(rounds.map((r) => r.p50)),
    p99: median(rounds.map((r) => r.p99)),
    cpuUsPerRequest: median(rounds.map((r) => r.cpuUsPerRequest)),
    failures: [...new Set(failures)],
  }));
}

/** One request, as the bench's own sequential phases send it; the answer's status, body and headers. */
export async function send(
  server: Server,
  method: string,
  path: string,
  token: string,
  body?: string,
): Promise<{ status: number; text: string; headers: Headers; ms: number }> {
  const started = performance.now();
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body,
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  return { status: response.status, text, headers: response.headers, ms: performance.now() - started };
}

/** Request i of a workload's sequence, for the sequential phases. */
function nth(workload: Workload, i: number): { path: string; body?: string } {
  if (workload.paths) return { path: workload.paths[i % workload.paths.length]! };
  return workload.next!();
}

/**
 * Round trips to PostgreSQL per request: `warm` unmeasured requests first (the pool's
 * connection, its prepared statements), then `count` sequential requests counted by the
 * proxy in front of this server's database connection.
 */
export async function roundTripsPerRequest(
  server: Server,
  proxy: CountingProxy,
  workload: Workload,
  count: number,
  warm = 20,
): Promise<number> {
  const run = async (from: number, n: number) => {
    for (let i = from; i < from + n; i++) {
      const { path, body } = nth(workload, i);
      const answer = await send(server, workload.method, path, workload.token, body);
      if (answer.status !== workload.expectStatus) {
        throw new Error(
          `${server.name}: ${workload.method} ${path} answered ${answer.status} (expected ${workload.expectStatus}): ${answer.text.slice(0, 300)}`,
        );
      }
    }
  };
  await run(0, warm);
  proxy.reset();
  await run(warm, count);
  return proxy.roundTrips() / count;
}
