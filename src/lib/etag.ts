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

/** The longest If-Match value accepted (a longer one is 400). */
export const IF_MATCH_MAX_LENGTH = 1024;
/** Optional whitespace as HTTP defines it (RFC 9110 §5.6.3): spaces and horizontal tabs, nothing else. */
const OWS = '[ \\t]*';
/** A character of an entity tag's opaque part (RFC 9110 §8.8.3, without obs-text): visible ASCII but `"`. */
const ETAGC = '[\\x21\\x23-\\x7E]';
/**
 * The grammar of an If-Match value: `*`, or entity tags (`"3"`, weak `W/"3"`) separated by
 * commas with optional whitespace around them. The server judges a header by exactly this
 * expression, and the document states it as the header's `pattern` (lib/api-schemas.ts), so
 * the two cannot disagree.
 */
export const IF_MATCH_PATTERN = `^${OWS}(\\*|(W/)?"${ETAGC}*"(${OWS},${OWS}(W/)?"${ETAGC}*")*)${OWS}$`;
const IF_MATCH = new RegExp(IF_MATCH_PATTERN);
const ANY = new RegExp(`^${OWS}\\*${OWS}$`);
/** Each tag of a value that matched IF_MATCH, in order (an opaque part holds no `"`, so quotes pair up). */
const EACH_TAG = new RegExp(`(W/)?"(${ETAGC}*)"`, 'g');

/** The versions an If-Match header accepts: `*` → any; weak tags never match (strong comparison). */
function parseIfMatch(header: string): { any: true } | { any: false; versions: Set<number> } {
  if (header.length > IF_MATCH_MAX_LENGTH || !IF_MATCH.test(header)) {
    throw new AppError('BAD_REQUEST', 'If-Match must be * or a list of entity tags such as "3"');
  }
  if (ANY.test(header)) return { any: true };
  const versions = new Set<number>();
  for (const [, weak, opaque] of header.matchAll(EACH_TAG)) {
    if (!weak && /^\d{1,10}$/.test(opaque!)) versions.add(Number(opaque));
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
