import { AppError } from './errors';

/** A workspace's strong ETag: its version, quoted. */
export const etagFor = (version: number) => `"${version}"`;

/**
 * The precondition of a conditional write, from `If-Match` (REST) and `expected_version`
 * (the input; tRPC callers' only way, since batched calls share one request's headers).
 * Built without judging it: a malformed header is only reported by `checkVersion`, after
 * authorization, so a caller who may not see the workspace learns nothing from it.
 */
export interface VersionCondition {
  ifMatch: string | undefined;
  expectedVersion: number | undefined;
}

const ENTITY_TAG = /^(W\/)?"([\x21\x23-\x7e]*)"$/;

/** The versions an If-Match header accepts: `*` → any; weak tags never match (strong comparison). */
function parseIfMatch(header: string): { any: true } | { any: false; versions: Set<number> } {
  const value = header.trim();
  if (value === '*') return { any: true };
  const versions = new Set<number>();
  for (const part of value.split(',')) {
    const tag = ENTITY_TAG.exec(part.trim());
    if (!tag) throw new AppError('BAD_REQUEST', 'If-Match must be * or a list of entity tags such as "3"');
    if (!tag[1] && /^\d{1,10}$/.test(tag[2]!)) versions.add(Number(tag[2]));
  }
  return { any: false, versions };
}

/**
 * 400 for a malformed `If-Match`, or one that names a single version other than
 * `expected_version`; 412 when the current version does not satisfy the condition.
 * No condition at all (or `*`) accepts any version.
 */
export function checkVersion(current: number, condition: VersionCondition): void {
  const { ifMatch, expectedVersion } = condition;
  const header = ifMatch === undefined ? undefined : parseIfMatch(ifMatch);
  if (header && !header.any && expectedVersion !== undefined && header.versions.size === 1 && !header.versions.has(expectedVersion)) {
    throw new AppError('BAD_REQUEST', 'If-Match and expected_version disagree');
  }
  const headerHolds = !header || header.any || header.versions.has(current);
  const inputHolds = expectedVersion === undefined || expectedVersion === current;
  if (!headerHolds || !inputHolds) {
    throw new AppError('PRECONDITION_FAILED', `The workspace is at version ${current}; read it again and retry`);
  }
}
