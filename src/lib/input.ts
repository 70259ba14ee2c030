import { z } from 'zod';

/** The largest number any input accepts. */
export const MAX_INT = 2 ** 31 - 1;

/** The NUL rule of safeString as a JSON Schema pattern, for the document (lone surrogates cannot be written as one). */
export const NO_NUL_PATTERN = '^[^\\u0000]*$';

/**
 * A string input: bounded, without NUL characters or lone UTF-16 surrogates.
 * Every string the API accepts is built from this.
 */
export const safeString = (max: number, min = 0) =>
  z
    .string()
    .min(min)
    .max(max)
    .refine((s) => !s.includes('\u0000'), 'must not contain NUL characters')
    .refine((s) => s.isWellFormed(), 'must not contain lone UTF-16 surrogates')
    .meta({ pattern: NO_NUL_PATTERN });

/** A human-readable name: trimmed, 1..max characters after trimming. */
export const nameString = (max: number) =>
  safeString(max * 4)
    // Documented as the contract states it: the bound counts once surrounding whitespace is trimmed.
    .meta({ minLength: 1, maxLength: max, description: `1-${max} characters, surrounding whitespace trimmed` })
    .transform((s) => s.trim())
    .pipe(z.string().min(1, 'must not be blank').max(max));

export const SLUG_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/;
export const slugString = z.string().max(64).regex(SLUG_PATTERN, 'must be lowercase letters, digits and inner hyphens, 1-64 characters');

/**
 * A UUID, answered and compared as stored: lower-case hex. `9A0D…` and `9a0d…` name the same
 * row, and a service comparing ids as text (is this the caller's own id?) must not see two.
 */
export const uuidString = z.uuid({ message: 'must be a UUID' }).transform((s) => s.toLowerCase());

export const emailString = safeString(254)
  // Documented as the contract reads it: an email address once surrounding whitespace is trimmed.
  .meta({ format: 'email', description: 'An email address, surrounding whitespace trimmed' })
  .transform((s) => s.trim())
  .pipe(z.email({ message: 'must be an email address' }));

/**
 * A query-string integer: decimal digits as REST sends them, or a JSON integer from the tRPC
 * face; never `true`, `"0x1"` or `"1e3"` (no blanket coercion).
 */
export const queryInt = (min: number, max: number) =>
  z
    .union([
      z.int(),
      z
        .string()
        .regex(/^\d{1,10}$/, 'must be a whole number')
        .transform(Number),
    ])
    // Documented as what it is to a REST caller: an integer parameter.
    .meta({
      override: ({ jsonSchema }: { jsonSchema: Record<string, unknown> }) => {
        delete jsonSchema.anyOf;
        Object.assign(jsonSchema, { type: 'integer', minimum: min, maximum: max });
      },
    })
    .pipe(z.number().int().min(min).max(max));

/** `expected_version`: the tRPC face's If-Match. A JSON number only. */
export const expectedVersion = z.number().int().min(1).max(MAX_INT).optional();

/**
 * A record whose keys are all checked. zod's record silently drops an own `__proto__` key
 * (JSON.parse creates one) instead of checking it, so `{"__proto__": …}` would pass as `{}`;
 * this rejects it as the key rules say. Typed as the record's input so clients keep the type.
 */
export const checkedRecord = <T extends z.ZodType>(record: T) =>
  z.preprocess((value: z.input<T>, ctx) => {
    if (typeof value === 'object' && value !== null && Object.hasOwn(value, '__proto__')) {
      ctx.addIssue({ code: 'custom', message: 'this key is reserved', input: value, path: ['__proto__'] });
    }
    return value;
  }, record);
