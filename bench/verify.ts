/**
 * Before anything is timed: the baseline must answer exactly as the service does, or the
 * ratio compares different work. For each read route — successes, and the 401s and 404s in
 * the service's order — status, JSON body (deep-equal), ETag and Cache-Control must match.
 * @module
 */
import { isDeepStrictEqual } from 'node:util';
import { send } from './measure';
import type { Server } from './processes';

export interface Check {
  what: string;
  path: string;
  token: string;
  status: number;
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The first place two JSON values differ, for a message a person can act on. */
function firstDifference(a: unknown, b: unknown, path = '$'): string {
  if (isDeepStrictEqual(a, b)) return '';
  if (typeof a === 'object' && typeof b === 'object' && a !== null && b !== null) {
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const d = firstDifference((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key], `${path}.${key}`);
      if (d) return d;
    }
  }
  return `${path}: service ${JSON.stringify(a)?.slice(0, 300)} vs baseline ${JSON.stringify(b)?.slice(0, 300)}`;
}

/** Throws listing every check where the baseline's answer differs from the service's (or from the expected status). */
export async function verifyBaseline(service: Server, baseline: Server, checks: Check[]): Promise<void> {
  const problems: string[] = [];
  for (const check of checks) {
    const [s, b] = await Promise.all([send(service, 'GET', check.path, check.token), send(baseline, 'GET', check.path, check.token)]);
    const where = `${check.what} (GET ${check.path.slice(0, 120)})`;
    if (s.status !== check.status)
      problems.push(`${where}: the service answered ${s.status}, the bench expected ${check.status}: ${s.text.slice(0, 300)}`);
    if (s.status !== b.status) problems.push(`${where}: status ${s.status} from the service, ${b.status} from the baseline`);
    const difference = firstDifference(parse(s.text), parse(b.text));
    if (difference) problems.push(`${where}: bodies differ at ${difference}`);
    for (const header of ['etag', 'cache-control', 'www-authenticate']) {
      if (s.headers.get(header) !== b.headers.get(header)) {
        problems.push(
          `${where}: ${header} is ${JSON.stringify(s.headers.get(header))} from the service, ${JSON.stringify(b.headers.get(header))} from the baseline`,
        );
      }
    }
    if (!/no-store/.test(s.headers.get('cache-control') ?? '')) problems.push(`${where}: the service sent no Cache-Control: no-store`);
  }
  if (problems.length > 0) {
    throw new Error(`the baseline does not answer as the service does (${problems.length} problem(s)):\n  ${problems.join('\n  ')}`);
  }
}
