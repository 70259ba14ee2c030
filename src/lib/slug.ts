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

/**
 * Hands out derived slugs, family by family: `base`, `base-2`, `base-3`… skipping what is
 * taken. Each base's next candidate is remembered, so a batch of many items of one name costs
 * the items plus the family's size, not their product (1,000 items over a family of 50,000
 * would otherwise try 50 million candidates). Every candidate behind a base's position is
 * taken, and `taken` only grows, so handing out from there is still the first free one.
 */
export class SlugAllocator {
  private readonly next = new Map<string, number>();
  constructor(private readonly taken: Set<string>) {}

  /** The first free candidate of `base`, now taken. */
  take(base: string): string {
    for (let n = this.next.get(base) ?? 1; ; n++) {
      const candidate = slugCandidate(base, n);
      if (!this.taken.has(candidate)) {
        this.taken.add(candidate);
        this.next.set(base, n + 1);
        return candidate;
      }
    }
  }

  /** Marks slugs as taken (found taken by another transaction meanwhile). */
  reserve(slugs: Iterable<string>): void {
    for (const slug of slugs) this.taken.add(slug);
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

/**
 * The slugs of a query's rows as one space-separated value (slugs hold no spaces): a family
 * can hold 50,000 slugs, and one value to split costs far less than 50,000 rows to map.
 * Read it back with `slugSet`.
 */
export const joinedSlugs = (column: AnyColumn | SQL) => sql<string | null>`string_agg(${column}, ' ')`;

/** The set of slugs `joinedSlugs` made (null when there were none). */
export const slugSet = (joined: string | null | undefined): Set<string> => new Set(joined ? joined.split(' ') : []);

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
    const row = await request.insert(new SlugAllocator(await request.takenSlugs(request.base)).take(request.base));
    if (row) return row;
  }
  throw new AppError('CONFLICT', `Could not derive a free ${request.what} slug; pass one explicitly`);
}
