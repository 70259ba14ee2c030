import { createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { LRUCache } from 'lru-cache';
import { unauthorized } from '../lib/errors';
import { uuidString } from '../lib/input';

export interface TokenSettings {
  secret: Buffer;
  issuer: string;
  audience: string;
  ttlSeconds: number;
  /** The longest lifetime (`exp` − `iat`) a token may claim, ours or the identity provider's. */
  maxLifetimeSeconds: number;
  external?: { issuer: string; publicKeyPem: string };
  /** How many verified tokens to remember (default VERIFIED_TOKEN_CACHE_ENTRIES). */
  verifiedTokenCacheEntries?: number;
}

/** What a verified token says about its bearer. */
export type TokenClaims =
  | { kind: 'local'; userId: string; tokenVersion: number }
  | { kind: 'external'; issuer: string; subject: string; email: unknown; name: unknown; issuedAt: number };

export interface IssuedToken {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
}

export interface TokenService {
  issue(userId: string, tokenVersion: number): IssuedToken;
  verify(token: string): TokenClaims;
}

/**
 * Verified tokens remembered, by their exact text, until their `exp`: a signature is checked
 * once per token, not once per request. Only what the signature proves is kept (the claims);
 * whether the user exists, its token version, its memberships are read on every request, so
 * logout and account deletion still take effect on the next one, in every process.
 */
const VERIFIED_TOKEN_CACHE_ENTRIES = 10_000;

/**
 * How far ahead of this clock an `iat` may be (clocks of issuers drift). Revocation of an
 * identity provider's tokens covers it too (modules/auth/service.ts `revokedBy`).
 */
export const CLOCK_SKEW_SECONDS = 60;
const MAX_SUBJECT_LENGTH = 255;

/**
 * Issues and checks this service's HS256 tokens (algorithm pinned, iss/aud/exp/iat
 * required, checked with a KeyObject), and, when configured, an external identity
 * provider's RS256/ES256 tokens.
 */
export function createTokenService(settings: TokenSettings): TokenService {
  const key: KeyObject = createSecretKey(settings.secret);
  const externalKey = settings.external ? createPublicKey(settings.external.publicKeyPem) : undefined;
  const verified = new LRUCache<string, { claims: TokenClaims; expiresAt: number }>({
    max: settings.verifiedTokenCacheEntries ?? VERIFIED_TOKEN_CACHE_ENTRIES,
  });

  function verifyWith(token: string, verifyKey: KeyObject, algorithms: jwt.Algorithm[], issuer: string): jwt.JwtPayload {
    let payload: string | jwt.JwtPayload;
    try {
      payload = jwt.verify(token, verifyKey, { algorithms, issuer, audience: settings.audience });
    } catch (error) {
      if (error instanceof jwt.TokenExpiredError) throw unauthorized('The access token has expired');
      throw unauthorized('The access token is invalid');
    }
    if (
      typeof payload === 'string' ||
      typeof payload.exp !== 'number' ||
      typeof payload.iat !== 'number' ||
      typeof payload.sub !== 'string' ||
      payload.sub === ''
    ) {
      throw unauthorized('The access token is missing required claims (sub, iat, exp)');
    }
    if (payload.iat > Date.now() / 1000 + CLOCK_SKEW_SECONDS) throw unauthorized('The access token is issued in the future (iat)');
    if (payload.exp - payload.iat > settings.maxLifetimeSeconds) {
      throw unauthorized(`The access token claims a lifetime over ${settings.maxLifetimeSeconds} s (exp - iat)`);
    }
    // A subject is stored and compared as it is: one that is not a plain string (NUL, lone
    // surrogates, very long) is refused, never altered into another identity.
    if (payload.sub.length > MAX_SUBJECT_LENGTH || payload.sub.includes('\u0000') || !payload.sub.isWellFormed()) {
      throw unauthorized('The access token has an unusable subject (sub)');
    }
    return payload;
  }

  /** The claims of a token whose signature and claims check out (401 otherwise), and its `exp`. */
  function verifyUncached(token: string): { claims: TokenClaims; exp: number } {
    const decoded = jwt.decode(token, { complete: true });
    if (!decoded || typeof decoded.payload === 'string') throw unauthorized('The access token is malformed');
    if (settings.external && externalKey && decoded.payload.iss === settings.external.issuer) {
      const payload = verifyWith(token, externalKey, ['RS256', 'ES256'], settings.external.issuer);
      const claims: TokenClaims = {
        kind: 'external',
        issuer: settings.external.issuer,
        subject: payload.sub!,
        email: payload.email,
        name: payload.name,
        issuedAt: payload.iat!,
      };
      return { claims, exp: payload.exp! };
    }
    const payload = verifyWith(token, key, ['HS256'], settings.issuer);
    if (!Number.isInteger(payload.tv)) throw unauthorized('The access token is missing required claims (tv)');
    // This service's tokens name a user by id; anything else would reach the uuid column and fail there (a 500).
    if (!uuidString.safeParse(payload.sub).success) throw unauthorized('The access token is invalid');
    return { claims: { kind: 'local', userId: payload.sub!, tokenVersion: payload.tv as number }, exp: payload.exp! };
  }

  return {
    issue(userId, tokenVersion) {
      const access_token = jwt.sign({ tv: tokenVersion }, key, {
        algorithm: 'HS256',
        subject: userId,
        issuer: settings.issuer,
        audience: settings.audience,
        expiresIn: settings.ttlSeconds,
      });
      return { access_token, token_type: 'Bearer', expires_in: settings.ttlSeconds };
    },

    verify(token) {
      const cached = verified.get(token);
      if (cached && Date.now() < cached.expiresAt) return cached.claims;
      const { claims, exp } = verifyUncached(token);
      verified.set(token, { claims, expiresAt: exp * 1000 });
      return claims;
    },
  };
}
