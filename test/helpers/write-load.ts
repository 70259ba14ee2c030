import { randomBytes, randomUUID } from 'node:crypto';
import type { ApiResponse } from './app';

/**
 * A steady, open-loop write load against a running service: a create every `intervalMs` and
 * an atomic provision of `provisionSize` workspaces every `provisionEveryMs`, each with a unique
 * name (or names) and a unique Idempotency-Key, fired on schedule whatever the earlier ones take
 * (a closed loop would slow down with the service and hide how long it makes callers wait).
 * Every request is recorded: when it started and ended, its answer (or 'network error' /
 * 'timeout'), and what it sent, so a test can check the answers, the database, and retry a lost
 * answer with the same key and body.
 */

/** What a request came back with: an HTTP answer, a broken connection, or no answer within the client timeout. */
export type LoadResult = ApiResponse | 'network error' | 'timeout';

export interface LoadRequest {
  kind: 'create' | 'provision';
  path: string;
  key: string;
  body: Record<string, unknown>;
  /** The names of the workspaces it creates: one for a create, the whole batch for a provision. */
  names: string[];
  /** performance.now() when it was sent and when its answer (or failure) was in. */
  start: number;
  end?: number;
  result?: LoadResult;
}

export interface WriteLoadOptions {
  base: string;
  token: string;
  organizationId: string;
  /** Prefix of every name and key (the scenario), so runs never collide. */
  label: string;
  /** One create every this many ms (default 20). */
  intervalMs?: number;
  /** One atomic provision every this many ms (default 1000); 0 for none. */
  provisionEveryMs?: number;
  /** Workspaces per provision (default 20). */
  provisionSize?: number;
  /** The client gives up on a request after this (default 10 s): 'timeout'. */
  timeoutMs?: number;
}

export interface WriteLoad {
  /** Every request sent so far, in the order sent. */
  readonly requests: LoadRequest[];
  /** Stops sending and resolves once every request sent has its result. */
  stop(): Promise<LoadRequest[]>;
}

export const DEFAULT_CLIENT_TIMEOUT_MS = 10_000;

/** POSTs `body` as JSON with a bearer token and an Idempotency-Key; never throws. */
export async function postWithKey(
  base: string,
  token: string,
  path: string,
  body: unknown,
  key: string,
  timeoutMs = DEFAULT_CLIENT_TIMEOUT_MS,
): Promise<LoadResult> {
  try {
    const response = await fetch(base + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'idempotency-key': key },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // Not JSON: the text is the body.
    }
    return { status: response.status, headers: response.headers, body: parsed as any, text };
  } catch (error) {
    const name = (error as { name?: unknown } | null)?.name;
    return name === 'TimeoutError' || name === 'AbortError' ? 'timeout' : 'network error';
  }
}

/** The HTTP status of a result, or its failure ('network error' / 'timeout'). */
export const statusOf = (result: LoadResult | undefined): number | 'network error' | 'timeout' | 'pending' =>
  result === undefined ? 'pending' : typeof result === 'string' ? result : result.status;

/** The ids a 201 acknowledged: the workspace of a create, every created workspace of a provision. */
export function acknowledgedIds(request: LoadRequest, result: LoadResult | undefined = request.result): string[] {
  if (typeof result !== 'object' || result.status !== 201) return [];
  if (request.kind === 'create') return [(result.body as { id: string }).id];
  return (result.body as { created: Array<{ id: string }> }).created.map((w) => w.id);
}

/** Starts the load at once; see WriteLoad. */
export function startWriteLoad({
  base,
  token,
  organizationId,
  label,
  intervalMs = 20,
  provisionEveryMs = 1000,
  provisionSize = 20,
  timeoutMs = DEFAULT_CLIENT_TIMEOUT_MS,
}: WriteLoadOptions): WriteLoad {
  const requests: LoadRequest[] = [];
  const inFlight = new Set<Promise<void>>();
  const run = randomBytes(3).toString('hex');
  const t0 = performance.now();
  let creates = 0;
  let provisions = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  const fire = (kind: LoadRequest['kind'], path: string, body: Record<string, unknown>, names: string[]) => {
    const request: LoadRequest = { kind, path, key: `${label}-${randomUUID()}`, body, names, start: performance.now() };
    requests.push(request);
    const done = postWithKey(base, token, path, body, request.key, timeoutMs).then((result) => {
      request.end = performance.now();
      request.result = result;
    });
    inFlight.add(done);
    void done.finally(() => inFlight.delete(done));
  };

  const createNext = () => {
    const name = `${label} ${run} c${++creates}`;
    fire('create', '/api/v1/workspaces', { organization_id: organizationId, name }, [name]);
  };
  const provisionNext = () => {
    const batch = `${label} ${run} p${++provisions}`;
    const names = Array.from({ length: provisionSize }, (_, i) => `${batch} #${i + 1}`);
    fire(
      'provision',
      '/api/v1/workspaces/provision',
      { organization_id: organizationId, mode: 'atomic', workspaces: names.map((name) => ({ name })) },
      names,
    );
  };

  // Each tick sends whatever the schedule says is due by now (several, if this process lagged).
  const tick = () => {
    if (stopped) return;
    const elapsed = performance.now() - t0;
    while (creates <= elapsed / intervalMs) createNext();
    // Provisions are due at provisionEveryMs / 2, then every provisionEveryMs.
    if (provisionEveryMs > 0) while (provisions * provisionEveryMs + provisionEveryMs / 2 <= elapsed) provisionNext();
    const nextDue = t0 + creates * intervalMs;
    timer = setTimeout(tick, Math.max(0, nextDue - performance.now()));
  };
  tick();

  return {
    requests,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
      return requests;
    },
  };
}
