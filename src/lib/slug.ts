/**
 * Slugs: derived from names, with a numeric suffix when taken, unique per scope (workspaces
 * per organization, organizations across the service).
 * @module
 */
import { sql, type AnyColumn, type SQL } from 'drizzle-orm';
import { AppError } from './errors';

const MAX_SLUG = 64;

/**
 * How often an insert with a derived slug is retried. A retry happens only when another
 * transaction committed the candidate meanwhile, so this bounds how many concurrent creates
 * of the same name are absorbed before giving up with 409.
 */
export const DERIVED_SLUG_ATTEMPTS = 25;

/** A slug derived from free text: ASCII letters and digits joined by single hyphens. */
export function slugify(text: string, fallback: string): string {
  const slug = text
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .slice(0, MAX_SLUG)
    .replace(/^-+|-+$/g, '');
  return slug || fallback;
}

/** `base`, `base-2`, `base-3`…, trimmed so the suffix always fits in 64 characters. */
export function slugCandidate(base: string, n: number): string {
  if (n <= 1) return base;
  const suffix = `-${n}`;
  return `${base.slice(0, MAX_SLUG - suffix.length).replace(/-+$/, '')}${suffix}`;
}

/** The first candidate of `base` that is not in `taken`; adds it to `taken`. */
export function firstFreeSlug(base: string, taken: Set<string>): string {
  for (let n = 1; ; n++) {
    const candidate = slugCandidate(base, n);
    if (!taken.has(candidate)) {
      taken.add(candidate);
      return candidate;
    }
  }
}

/**
 * The stem every slug of `base`'s family starts with: `base` itself, or trimmed where a long
 * suffix shortens it. Slug columns are in the "C" collation (drizzle/0002), so the family is
 * the index range [stem, stem + '~'): every slug character sorts below '~'.
 */
export function slugFamilyStem(base: string): string {
  return base.slice(0, MAX_SLUG - 8).replace(/-+$/, '');
}

/** `column` is in the family of `stem` (a string, or a text SQL expression): one index range scan. */
export function inSlugFamily(column: AnyColumn, stem: string | SQL): SQL {
  const end = typeof stem === 'string' ? sql`${`${stem}~`}` : sql`${stem} || '~'`;
  return sql`(${column} >= ${stem} and ${column} < ${end})`;
}

/** How one kind of row is inserted under a slug unique in its scope. */
export interface SlugInsert<Row> {
  /** The slug the caller asked for; without one, a slug is derived from `base`. */
  slug: string | undefined;
  base: string;
  /**
   * Inserts the row under `slug`, or returns undefined when the slug is taken (ON CONFLICT
   * DO NOTHING, so a slug taken meanwhile does not abort the transaction).
   */
  insert(slug: string): Promise<Row | undefined>;
  /** The slugs of the scope that a derived slug from `base` could collide with. */
  takenSlugs(base: string): Promise<Set<string>>;
  /** The 409 for an explicit slug that is taken. */
  slugTaken(slug: string): AppError;
  /** What the row is, for the 409 when no derived slug could be had ("workspace"). */
  what: string;
}

/**
 * Inserts a row with the explicit slug (409 when taken), or with the first free slug
 * derived from the name: `base`, `base-2`, `base-3`…, moving on when a concurrent insert
 * took the candidate, up to DERIVED_SLUG_ATTEMPTS times.
 */
export async function insertWithSlug<Row>(request: SlugInsert<Row>): Promise<Row> {
  if (request.slug) {
    const row = await request.insert(request.slug);
    if (!row) throw request.slugTaken(request.slug);
    return row;
  }
  for (let attempt = 0; attempt < DERIVED_SLUG_ATTEMPTS; attempt++) {
    const row = await request.insert(firstFreeSlug(request.base, await request.takenSlugs(request.base)));
    if (row) return row;
  }
  throw new AppError('CONFLICT', `Could not derive a free ${request.what} slug; pass one explicitly`);
}
