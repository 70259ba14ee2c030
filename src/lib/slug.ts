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

/** A LIKE pattern matching `base` with any numeric suffix (and a few false positives the caller can keep). */
export function slugFamilyPattern(base: string): string {
  const stem = base.slice(0, MAX_SLUG - 8).replace(/-+$/, '');
  return `${stem.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}
