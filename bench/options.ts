/**
 * What one `npm run bench` does, from the environment. Everything has a default; the smoke
 * mode (BENCH_SMOKE=1, for CI) shrinks rounds, warm-ups and the scale seed so the whole run
 * checks that nothing is broken in about a minute, and leaves BENCHMARKS.md alone.
 * @module
 */

export interface BenchOptions {
  smoke: boolean;
  /** Alternating rounds per side (S B S B …). */
  rounds: number;
  /** Seconds per round. */
  seconds: number;
  /** Seconds of unrecorded load per side before a scenario's rounds (the request path's JIT, pool connections, plans). */
  warmupSeconds: number;
  /** The same for a scenario whose processes have served nothing yet (the first one, the embedded database): the whole process warms up. */
  firstWarmupSeconds: number;
  /** Fixed autocannon connections. */
  connections: number;
  /** Sequential requests through the counting proxy, per scenario and side. */
  roundTripRequests: number;
  /** Measured provision calls per organization (plus one unmeasured warm-up call each). */
  provisionCalls: number;
  /** The bench user's organizations and the workspaces in each. */
  organizations: number;
  workspacesPerOrganization: number;
  /** Scale rows: a small and a large organization of the scale user. */
  scaleSmall: number;
  scaleLarge: number;
  /** The already-full organization provisioning is measured into. */
  provisionFullSize: number;
  /** How deep the deep list page is. */
  deepOffset: number;
  /** A plain member's lists: the organization of workspaces all visible to it, and the one of private ones. */
  memberListSize: number;
  /** How deep the plain member's deep page is in the organization of visible workspaces. */
  memberListDeepOffset: number;
  /** The PostgreSQL server's maintenance database; the bench creates and drops its own database beside it. */
  adminUrl: string;
  /** Where the raw numbers go (JSON); default: one file in the OS temp dir, overwritten by every run. */
  resultsPath: string | undefined;
  writeReport: boolean;
  /** Profile the service (`node --cpu-prof`) under the scenarios whose targets are ratios to the baseline (BENCH_PROFILE; on in full runs). */
  profile: boolean;
}

function positive(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number (got ${JSON.stringify(raw)})`);
  return value;
}

/** Only a loopback server: the bench creates and drops databases, which has no place on a shared or remote host. */
function loopbackUrl(raw: string): string {
  const url = new URL(raw);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) {
    throw new Error(`BENCH_POSTGRES_URL must point at 127.0.0.1, localhost or [::1], not ${url.hostname}`);
  }
  return raw;
}

export function loadOptions(): BenchOptions {
  const smoke = process.env.BENCH_SMOKE === '1' || process.env.BENCH_SMOKE === 'true';
  return {
    smoke,
    rounds: Math.round(positive('BENCH_ROUNDS', smoke ? 1 : 3)),
    seconds: positive('BENCH_SECONDS', smoke ? 1 : 5),
    warmupSeconds: smoke ? 0.3 : 1,
    firstWarmupSeconds: smoke ? 0.5 : 3,
    connections: 10,
    roundTripRequests: smoke ? 20 : 200,
    provisionCalls: smoke ? 2 : 7,
    organizations: 100,
    workspacesPerOrganization: 100,
    scaleSmall: 1_000,
    scaleLarge: smoke ? 2_000 : 100_000,
    provisionFullSize: smoke ? 2_000 : 10_000,
    deepOffset: 9_000,
    memberListSize: smoke ? 2_000 : 10_000,
    memberListDeepOffset: smoke ? 1_800 : 9_000,
    adminUrl: loopbackUrl(process.env.BENCH_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/postgres'),
    resultsPath: process.env.BENCH_RESULTS || undefined,
    writeReport: !smoke,
    profile: process.env.BENCH_PROFILE === undefined || process.env.BENCH_PROFILE === '' ? !smoke : process.env.BENCH_PROFILE === '1',
  };
}
