/**
 * fast-check arbitraries derived from JSON Schema (the served OpenAPI document's), the invalid
 * variants of a valid value (one edit each: a wrong type, a value out of range, an over-long
 * string, NUL or a lone surrogate, an unknown or `__proto__` key, a missing required field…),
 * and the contract rules the document does not (or cannot) express, which decide, together with
 * the document itself, whether a generated body must be accepted or refused.
 * @module
 */
import fc from 'fast-check';
import { z } from 'zod';
import type { Schema } from './document';

export type Path = Array<string | number>;

export interface Hints {
  resolve: (schema: Schema) => Schema;
  /** A replacement for the arbitrary of the property `name` (ids that must exist, emails…). */
  property?(name: string, schema: Schema, path: Path): fc.Arbitrary<unknown> | undefined;
}

/** The largest number the contract lets any input hold (API.md, Conventions). */
export const MAX_INT = 2 ** 31 - 1;
const MIN_INT = -(2 ** 31);

/** The settings key pattern (API.md, Settings document): its maps reserve `__proto__`, `constructor`, `prototype` (README). */
export const SETTINGS_KEY_PATTERN = '^[a-z][a-z0-9_.-]{0,63}$';
const RESERVED_SETTINGS_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** Per-map key limits (API.md: ≤ 50 metadata keys; 100 flags, 50 integrations, 50 config keys), by the map's field name. */
export const MAP_LIMITS: Record<string, number> = { metadata: 50, features: 100, integrations: 50, config: 50 };

const codePoints = (s: string) => [...s].length;

export const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** JSON's type of a value, as JSON Schema names it (an integral number is both). */
function jsonTypes(value: unknown): string[] {
  if (value === null) return ['null'];
  if (Array.isArray(value)) return ['array'];
  if (typeof value === 'number') return Number.isInteger(value) ? ['integer', 'number'] : ['number'];
  return [typeof value];
}

const typesOf = (schema: Schema): string[] => (Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : []);

/** The branch of `anyOf`/`oneOf` (resolved) that a value's JSON type selects, or the schema itself. */
export function branchFor(schema: Schema, value: unknown, resolve: (s: Schema) => Schema): Schema {
  const s = resolve(schema);
  const branches: Schema[] | undefined = s.anyOf ?? s.oneOf;
  if (!branches) return s;
  const types = jsonTypes(value);
  for (const raw of branches) {
    const b = resolve(raw);
    if (b.anyOf || b.oneOf) {
      const inner = branchFor(b, value, resolve);
      if (inner !== b) return inner;
      continue;
    }
    const allowed = typesOf(b);
    if (allowed.length === 0 || allowed.some((t) => types.includes(t))) return b;
  }
  return s;
}

/**
 * A small fixed pool of keys for each map key pattern, so repeated merges stay under the map
 * limits. Names that `{}` inherits (`toString`, `valueOf`) are in it wherever the pattern
 * allows them: they must be ordinary keys (metadata's once broke the audit trail).
 */
const keyPools = new Map<string, string[]>();
const READABLE_KEYS = ['beta', 'dark_mode', 'cost_center', 'owner', 'slack', 'github', 'channel', 'a', 'x.y-z', 'Team_1'];
const INHERITED_NAMES = ['toString', 'valueOf'];
export function mapKeyPool(schema: Schema): string[] {
  const pattern: string | undefined = schema.propertyNames?.pattern;
  const cacheKey = pattern ?? '';
  let pool = keyPools.get(cacheKey);
  if (!pool) {
    const re = pattern ? new RegExp(pattern) : /^[a-z]{1,8}$/;
    const sampled = fc.sample(fc.stringMatching(re, { size: 'xsmall' }), { numRuns: 12, seed: 4242 });
    pool = [...new Set([...[...READABLE_KEYS, ...INHERITED_NAMES].filter((k) => re.test(k)), ...sampled])]
      .filter((k) => k.length > 0 && !RESERVED_SETTINGS_KEYS.has(k))
      .slice(0, 12);
    keyPools.set(cacheKey, pool);
  }
  return pool;
}

function stringArb(schema: Schema): fc.Arbitrary<string> {
  if (schema.format === 'uuid') return fc.uuid();
  const min: number = schema.minLength ?? 0;
  const max: number = schema.maxLength ?? 200;
  if (schema.pattern) {
    const re = new RegExp(schema.pattern);
    return fc.stringMatching(re, { size: 'small' }).filter((s) => codePoints(s) >= min && codePoints(s) <= max);
  }
  const short = Math.min(max, Math.max(min, 16));
  return fc.oneof(
    { weight: 6, arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: min, maxLength: short }) },
    { weight: 3, arbitrary: fc.string({ unit: 'grapheme', minLength: min, maxLength: short }).filter((s) => codePoints(s) <= max) },
    // Boundaries: exactly the documented maximum and minimum; the maximum in characters outside
    // the BMP too (JSON Schema counts code points: each of these is one character, two UTF-16 units).
    { weight: 1, arbitrary: fc.constant('x'.repeat(max)) },
    { weight: 1, arbitrary: fc.constant('\u{1F600}'.repeat(Math.min(max, 1000))) },
    { weight: 1, arbitrary: fc.constant('m'.repeat(min)) },
  );
}

function integerArb(schema: Schema): fc.Arbitrary<number> {
  const min = Math.max(schema.minimum ?? MIN_INT, MIN_INT);
  const max = Math.min(schema.maximum ?? MAX_INT, MAX_INT);
  return fc.oneof({ weight: 4, arbitrary: fc.integer({ min, max }) }, { weight: 1, arbitrary: fc.constantFrom(min, max) });
}

function numberArb(schema: Schema): fc.Arbitrary<number> {
  const min = Math.max(schema.minimum ?? MIN_INT, MIN_INT);
  const max = Math.min(schema.maximum ?? MAX_INT, MAX_INT);
  return fc.oneof(
    { weight: 3, arbitrary: fc.integer({ min, max }) },
    { weight: 2, arbitrary: fc.double({ min, max, noNaN: true, noDefaultInfinity: true }).map((n) => (Object.is(n, -0) ? 0 : n)) },
    { weight: 1, arbitrary: fc.constantFrom(min, max) },
  );
}

/** A value valid against `schema` as far as the document says (the contract's own rules may still refuse it). */
export function validArb(schema: Schema, hints: Hints, path: Path = []): fc.Arbitrary<unknown> {
  const s = hints.resolve(schema);
  if ('const' in s) return fc.constant(s.const);
  if (Array.isArray(s.enum)) return fc.constantFrom(...(s.enum as unknown[]));
  const branches: Schema[] | undefined = s.anyOf ?? s.oneOf;
  if (branches) return fc.oneof(...branches.map((b) => validArb(b, hints, path)));
  const types = typesOf(s);
  if (types.length > 1) return fc.oneof(...types.map((type) => validArb({ ...s, type }, hints, path)));
  switch (types[0]) {
    case 'null':
      return fc.constant(null);
    case 'boolean':
      return fc.boolean();
    case 'integer':
      return integerArb(s);
    case 'number':
      return numberArb(s);
    case 'string':
      return stringArb(s);
    case 'array': {
      const minLength: number = s.minItems ?? 0;
      // Small batches: provisioning allows 1000 items, and each one is a row.
      const maxLength = Math.max(minLength, Math.min(s.maxItems ?? 3, 3));
      return fc.array(validArb(s.items ?? {}, hints, [...path, 0]), { minLength, maxLength });
    }
    case 'object':
    default: {
      if (s.properties) {
        const shape: Record<string, fc.Arbitrary<unknown>> = {};
        for (const [key, child] of Object.entries(s.properties as Record<string, Schema>)) {
          shape[key] = hints.property?.(key, child, [...path, key]) ?? validArb(child, hints, [...path, key]);
        }
        return fc.record(shape, { requiredKeys: s.required ?? [] });
      }
      if (isPlainObject(s.additionalProperties)) {
        return fc.dictionary(fc.constantFrom(...mapKeyPool(s)), validArb(s.additionalProperties, hints, [...path, '*']), {
          maxKeys: 3,
          noNullPrototype: true,
        });
      }
      return fc.constant({});
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Invalid variants: one edit of a valid value.

export type Edit =
  | { op: 'set'; path: Path; value: unknown; label: string }
  | { op: 'delete'; path: Path; label: string }
  | { op: 'define'; path: Path; key: string; value: unknown; label: string }
  | { op: 'defineMany'; path: Path; entries: Array<[string, unknown]>; label: string };

/** Sets a key without ever invoking the `__proto__` setter. */
export function defineKey(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, configurable: true, writable: true });
}

const clone = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

function at(root: unknown, path: Path): any {
  let node: any = root;
  for (const key of path) node = node?.[key];
  return node;
}

export function applyEdit(root: unknown, edit: Edit): unknown {
  const copy = clone(root);
  if (edit.op === 'set' && edit.path.length === 0) return edit.value;
  if (edit.op === 'set' || edit.op === 'delete') {
    const parent = at(copy, edit.path.slice(0, -1));
    const key = edit.path[edit.path.length - 1]!;
    if (edit.op === 'delete') delete parent[key];
    else if (Array.isArray(parent)) parent[key as number] = edit.value;
    else defineKey(parent, String(key), edit.value);
    return copy;
  }
  const target = at(copy, edit.path);
  if (edit.op === 'define') defineKey(target, edit.key, edit.value);
  else for (const [key, value] of edit.entries) defineKey(target, key, value);
  return copy;
}

interface Slot {
  path: Path;
  schema: Schema;
  value: unknown;
}

function collectSlots(value: unknown, schema: Schema, resolve: (s: Schema) => Schema, path: Path = [], out: Slot[] = []): Slot[] {
  const s = branchFor(schema, value, resolve);
  out.push({ path, schema: s, value });
  if (isPlainObject(value)) {
    for (const [key, child] of Object.entries(value)) {
      const childSchema: Schema | undefined =
        ownProperty(s, key) ?? (isPlainObject(s.additionalProperties) ? s.additionalProperties : undefined);
      if (childSchema) collectSlots(child, childSchema, resolve, [...path, key], out);
    }
  } else if (Array.isArray(value) && s.items) {
    value.forEach((item, i) => collectSlots(item, s.items, resolve, [...path, i], out));
  }
  return out;
}

/** A declared property's schema: own keys only, so `__proto__` is never mistaken for one. */
export const ownProperty = (schema: Schema, key: string): Schema | undefined =>
  isPlainObject(schema.properties) && Object.hasOwn(schema.properties, key) ? (schema.properties[key] as Schema) : undefined;

const where = (path: Path) => (path.length ? path.join('.') : '(root)');

/** Values of the wrong JSON type, for a slot whose schema allows `types`. */
function wrongTypes(types: string[], value: unknown): unknown[] {
  const out: unknown[] = [null];
  if (types.includes('string')) out.push(7, true, [String(value)], { value: String(value) });
  if (types.includes('boolean')) out.push('true', 'false', 1, 0, 'yes');
  if (types.includes('integer') || types.includes('number'))
    out.push(typeof value === 'number' ? String(value) : '12', '1', '1e3', true, [1], {});
  if (types.includes('object')) out.push('{}', [], 1, true);
  if (types.includes('array')) out.push({}, '[]', 1);
  return out;
}

function uuidMangles(value: string): string[] {
  return [
    'not-a-uuid',
    '',
    value.replace(/-/g, ''),
    `${value}0`,
    `{${value}}`,
    ` ${value}`,
    `g${value.slice(1)}`,
    '00000000-0000-0000-0000-000000000001',
    '12345678-1234-1234-1234-1234567890ab',
  ];
}

const PATTERN_MANGLES = ['', ' ', 'UPPER', '-lead', 'trail-', 'sp ace', 'ü', 'under_score', 'x'.repeat(65)];
const BAD_MAP_KEYS = ['', 'Bad Key', '9lives', 'x'.repeat(70), 'ü', '-a', 'a/b'];
const UNKNOWN_FIELDS = ['id', 'version', 'role', 'created_at', 'is_admin', 'owner_id', 'user_id', 'Name', 'extra'];
const LONE_SURROGATES = ['\uD800', '\uDC00', '\uDBFF'];

/** Every single edit that could make `slot` invalid (the classifier decides whether it did). */
function editsFor(slot: Slot, rootRequired: boolean): Array<fc.Arbitrary<Edit>> {
  const { path, schema, value } = slot;
  const edits: Array<fc.Arbitrary<Edit>> = [];
  const set = (values: unknown[], label: string) => {
    if (values.length)
      edits.push(fc.constantFrom(...values).map((v): Edit => ({ op: 'set', path, value: v, label: `${label} at ${where(path)}` })));
  };
  if (path.length > 0) {
    const types = typesOf(schema).length ? typesOf(schema) : jsonTypes(value);
    set(wrongTypes(types, value), 'wrong type');
    if ('const' in schema) set([!schema.const, String(schema.const), 1], 'not the const');
    if (Array.isArray(schema.enum))
      set(['', 'INVALID', ...schema.enum.map((v: unknown) => `${String(v).toUpperCase()} `)], 'not in the enum');
    if (typeof value === 'string') {
      const max: number = schema.maxLength ?? 1000;
      set(
        ['x'.repeat(max + 1), 'é'.repeat(max + 1), `${value}${'z'.repeat(Math.max(1, max + 1 - codePoints(value)))}`],
        'over-long string',
      );
      edits.push(
        fc.tuple(fc.nat({ max: value.length }), fc.constantFrom('\u0000', ...LONE_SURROGATES)).map(([i, bad]): Edit => ({
          op: 'set',
          path,
          value: value.slice(0, i) + bad + value.slice(i),
          label: `${bad === '\u0000' ? 'NUL' : 'lone surrogate'} in string at ${where(path)}`,
        })),
      );
      if (schema.pattern) set(PATTERN_MANGLES, 'pattern violated');
      if (schema.format === 'uuid') set(uuidMangles(value), 'not a uuid');
      set(['', '   ', '\t\n'], 'blank string');
    }
    if (typeof value === 'number') {
      const min: number = schema.minimum ?? MIN_INT;
      const max: number = schema.maximum ?? MAX_INT;
      set([min - 1, max + 1, 2 ** 31, MIN_INT - 1, 1e21, -1e308, Number.MAX_SAFE_INTEGER + 2, -1, 0, 1.5], 'number out of range');
    }
    if (Array.isArray(value)) {
      const minItems: number = schema.minItems ?? 0;
      if (minItems > 0) set([[]], 'too few items');
      if (typeof schema.maxItems === 'number' && value.length > 0)
        set([Array.from({ length: schema.maxItems + 1 }, () => value[0])], 'too many items');
    }
  }
  if (isPlainObject(value)) {
    const isMap = !schema.properties && isPlainObject(schema.additionalProperties);
    const known = Object.keys(schema.properties ?? {});
    const unknownNames = isMap ? BAD_MAP_KEYS : UNKNOWN_FIELDS.filter((k) => !known.includes(k));
    edits.push(
      fc.tuple(fc.constantFrom(...unknownNames), fc.jsonValue({ maxDepth: 2 })).map(([key, v]): Edit => ({
        op: 'define',
        path,
        key,
        value: v,
        label: `unknown ${isMap ? 'key' : 'field'} "${key}" at ${where(path)}`,
      })),
    );
    edits.push(
      fc
        .constantFrom<unknown>({}, { polluted: true }, 'x', null)
        .map((v): Edit => ({ op: 'define', path, key: '__proto__', value: v, label: `__proto__ key at ${where(path)}` })),
    );
    if (isMap) {
      const sample = Object.values(value)[0] ?? (schema.additionalProperties.type === 'boolean' ? true : 'v');
      edits.push(
        fc
          .constantFrom('constructor', 'prototype')
          .map((key): Edit => ({ op: 'define', path, key, value: sample, label: `reserved key "${key}" at ${where(path)}` })),
      );
      const limit = MAP_LIMITS[String(path[path.length - 1])];
      if (limit !== undefined) {
        const entries = Array.from({ length: limit + 1 }, (_, i): [string, unknown] => [`k${i}`, sample]);
        edits.push(fc.constant<Edit>({ op: 'defineMany', path, entries, label: `${limit + 1} keys at ${where(path)}` }));
      }
    }
    const required: string[] = schema.required ?? [];
    const present = required.filter((k) => Object.hasOwn(value, k));
    if (present.length && (path.length > 0 || rootRequired)) {
      edits.push(fc.constantFrom(...present).map((k): Edit => ({ op: 'delete', path: [...path, k], label: `missing required "${k}"` })));
    }
  }
  return edits;
}

/** One invalid-leaning edit of a valid value (the label says which). */
export function editedArb(schema: Schema, hints: Hints, base: fc.Arbitrary<unknown>): fc.Arbitrary<{ value: unknown; label: string }> {
  return base.chain((valid) => {
    const edits = collectSlots(valid, schema, (x) => hints.resolve(x)).flatMap((slot) => editsFor(slot, true));
    if (edits.length === 0) return fc.constant({ value: valid, label: 'no edit possible' });
    return fc.oneof(...edits).map((edit) => ({ value: applyEdit(valid, edit), label: edit.label }));
  });
}

// ---------------------------------------------------------------------------------------------
// The contract's rules beyond the document.

/** Zod's email check (what the server uses); ajv's `format: email` differs from it at the edges. */
const emailSchema = z.email();

/**
 * Where a body breaks a rule of the contract (API.md, README) that the document does not state:
 * - strings with NUL or lone UTF-16 surrogates are refused (API.md, Conventions; JSON Schema cannot say it);
 * - unknown fields are refused even where the document omits `additionalProperties: false`
 *   (API.md: "Unknown body fields are rejected"; the PUT bodies of organizations and workspaces);
 * - `name` takes 1–100 characters *after trimming* (its description says so; the length keywords
 *   read the raw string), so a blank or over-long name once trimmed is refused (and the
 *   document's own length errors on `name` are set aside by the caller, see runCase);
 * - `email` must be an email address, as the server's validator (zod) reads it after trimming
 *   (its description says so; `format: email` is ajv's reading, which differs at the edges);
 * - map keys: `__proto__` is reserved everywhere, `constructor`/`prototype` in settings maps (README);
 * - map sizes: ≤ 50 metadata keys, 100 feature flags, 50 integrations, 50 config keys (API.md).
 */
export function contractViolations(value: unknown, schema: Schema, resolve: (s: Schema) => Schema, path: Path = []): string[] {
  const out: string[] = [];
  const s = branchFor(schema, value, resolve);
  if (typeof value === 'string') {
    if (value.includes('\u0000')) out.push(`NUL at ${where(path)}`);
    if (!value.isWellFormed()) out.push(`lone surrogate at ${where(path)}`);
    return out;
  }
  if (Array.isArray(value)) {
    if (s.items) value.forEach((item, i) => out.push(...contractViolations(item, s.items, resolve, [...path, i])));
    return out;
  }
  if (!isPlainObject(value)) return out;
  const isMap = !s.properties && isPlainObject(s.additionalProperties);
  for (const [key, child] of Object.entries(value)) {
    if (!key.isWellFormed() || key.includes('\u0000')) out.push(`bad key at ${where(path)}`);
    if (isMap) {
      if (key === '__proto__') out.push(`reserved key __proto__ at ${where(path)}`);
      if (s.propertyNames?.pattern === SETTINGS_KEY_PATTERN && RESERVED_SETTINGS_KEYS.has(key))
        out.push(`reserved key ${key} at ${where(path)}`);
      out.push(...contractViolations(child, s.additionalProperties, resolve, [...path, key]));
      continue;
    }
    const childSchema = ownProperty(s, key);
    if (!childSchema) {
      if (s.properties && !isPlainObject(s.additionalProperties)) out.push(`unknown field ${key} at ${where(path)}`);
      continue;
    }
    if (key === 'name' && typeof child === 'string') {
      const trimmed = codePoints(child.trim());
      if (trimmed < 1 || trimmed > 100) out.push(`name is ${trimmed} characters after trimming (the server takes 1-100)`);
    }
    if (key === 'email' && typeof child === 'string' && !emailSchema.safeParse(child.trim()).success) {
      out.push(`email ${JSON.stringify(child)} is not an email address`);
    }
    out.push(...contractViolations(child, childSchema, resolve, [...path, key]));
  }
  if (isMap) {
    const limit = MAP_LIMITS[String(path[path.length - 1])];
    if (limit !== undefined && Object.keys(value).length > limit)
      out.push(`${Object.keys(value).length} keys at ${where(path)} (at most ${limit})`);
  }
  return out;
}
