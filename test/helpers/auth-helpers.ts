import jwt from 'jsonwebtoken';
import { TEST_SECRET, type TestApp } from './app';

/** What this service's tokens carry (the config defaults the harness runs with). */
export const ISSUER = 'workspaces-api';
export const AUDIENCE = 'workspaces-api';

export const nowSeconds = () => Math.floor(Date.now() / 1000);

/** How far ahead of the service's clock an `iat` may be (README, Security: "iat at most 60 s ahead"). */
export const CLOCK_SKEW_SECONDS = 60;

/** Waits until this clock has reached the whole second `second` (Unix time). */
export async function untilSecond(second: number): Promise<void> {
  while (Date.now() < second * 1000) await new Promise((resolve) => setTimeout(resolve, Math.min(100, second * 1000 - Date.now())));
}

export const base64url = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** Drops the keys whose value is `undefined`, so a test can leave a claim out by naming it. */
const defined = (claims: Record<string, unknown>) => Object.fromEntries(Object.entries(claims).filter(([, value]) => value !== undefined));

/**
 * Signs `claims` as they are; `undefined` leaves a claim out (jsonwebtoken would otherwise
 * add `iat` on its own).
 */
export function signToken(claims: Record<string, unknown>, key: jwt.Secret, algorithm: jwt.Algorithm): string {
  const omitIat = 'iat' in claims && claims.iat === undefined;
  return jwt.sign(defined(claims), key, { algorithm, noTimestamp: omitIat });
}

/**
 * A token signed the way the service signs its own (HS256, TEST_SECRET, iss/aud, iat, exp
 * an hour ahead, `tv`), with `claims` laid over it; `undefined` leaves a claim out.
 */
export function signLocalToken(
  claims: Record<string, unknown>,
  { secret = TEST_SECRET, algorithm = 'HS256' }: { secret?: string; algorithm?: jwt.Algorithm } = {},
): string {
  const now = nowSeconds();
  return signToken({ iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + 3600, tv: 0, ...claims }, secret, algorithm);
}

/** A hand-built token with `alg: "none"` and an empty signature. */
export const unsignedToken = (claims: Record<string, unknown>) => `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url(claims)}.`;

export const decodeClaims = (token: string) => jwt.decode(token) as jwt.JwtPayload;

/** The user row as stored (`logged_out_at` as a Date on both engines, whose drivers differ). */
export async function userRow(app: TestApp, id: string) {
  const [row] = await app.query<{
    id: string;
    email: string;
    name: string;
    password_hash: string | null;
    external_issuer: string | null;
    external_subject: string | null;
    token_version: number;
    logged_out_ms: number | null;
  }>(
    `select id, email, name, password_hash, external_issuer, external_subject, token_version,
            (extract(epoch from logged_out_at) * 1000)::float8 as logged_out_ms
       from users where id = $1`,
    [id],
  );
  if (!row) return undefined;
  const { logged_out_ms, ...rest } = row;
  return { ...rest, logged_out_at: logged_out_ms === null ? null : new Date(logged_out_ms) };
}

/** A user's memberships as stored, sorted by organization id. */
export const membershipRows = (app: TestApp, userId: string) =>
  app.query<{ organization_id: string; role: string }>(
    'select organization_id, role from memberships where user_id = $1 order by organization_id',
    [userId],
  );

export const byOrganizationId = (a: { organization_id: string }, b: { organization_id: string }) =>
  a.organization_id < b.organization_id ? -1 : a.organization_id > b.organization_id ? 1 : 0;
