/**
 * Rate limits, with rate-limiter-flexible: a window of one minute per authenticated caller
 * (RATE_LIMIT_PER_MINUTE, keyed by user id once the token is verified), per client address
 * for signup and login (AUTH_RATE_LIMIT_PER_MINUTE; invitation previews have their own counter of that
 * size), and per client address for the 401s of
 * every other operation (UNAUTHENTICATED_RATE_LIMIT_PER_MINUTE: missing, malformed, forged,
 * expired or revoked tokens, deleted users). Every procedure call counts, so each call of a
 * tRPC batch does. The counters live in this process (`memory`) or in PostgreSQL (`postgres`),
 * where every replica on the database shares them. `0` turns a limit off.
 * @module
 */
import { RateLimiterDrizzle, RateLimiterMemory, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Config } from '../config';
import type { DatabaseHandle } from '../db/client';
import { rateLimits } from '../db/schema';
import { AppError } from './errors';

/** What a limited response tells the caller (the RateLimit-* headers). */
export interface RateLimitState {
  limit: number;
  remaining: number;
  /** Seconds until the window resets. */
  resetSeconds: number;
}

export type LimitedBy = 'caller' | 'address' | 'unauthenticated' | 'invitationPreview';

export interface RateLimits {
  /**
   * Counts one call for `key`: the state to send (undefined when that limit is off), and the
   * 429 to throw when the call is over the limit (after the state is recorded for the answer).
   */
  consume(by: LimitedBy, key: string): Promise<{ state?: RateLimitState; refusal?: AppError }>;
}

const WINDOW_SECONDS = 60;

/** What each limit counts, for the 429's message. */
const WHAT: Record<LimitedBy, string> = {
  caller: 'requests per minute for this account',
  address: 'sign-up and log-in attempts per minute from this address',
  unauthenticated: 'requests with a missing or invalid token (401) per minute from this address',
  invitationPreview: 'invitation previews per minute from this address',
};

export function createRateLimits(config: Config, database: DatabaseHandle): RateLimits {
  const limiter = (points: number, keyPrefix: string): RateLimiterAbstract | undefined => {
    if (points === 0) return undefined;
    const options = { points, duration: WINDOW_SECONDS, keyPrefix };
    return config.RATE_LIMIT_STORE === 'postgres'
      ? new RateLimiterDrizzle({ ...options, storeClient: database.db, schema: rateLimits })
      : new RateLimiterMemory(options);
  };
  const limiters: Record<LimitedBy, RateLimiterAbstract | undefined> = {
    caller: limiter(config.RATE_LIMIT_PER_MINUTE, 'caller'),
    address: limiter(config.AUTH_RATE_LIMIT_PER_MINUTE, 'address'),
    unauthenticated: limiter(config.UNAUTHENTICATED_RATE_LIMIT_PER_MINUTE, 'unauthenticated'),
    // Like login, per address: a preview needs no account, so nothing else limits it.
    invitationPreview: limiter(config.AUTH_RATE_LIMIT_PER_MINUTE, 'invitation_preview'),
  };

  return {
    async consume(by, key) {
      const active = limiters[by];
      if (!active) return {};
      const state = (res: RateLimiterRes): RateLimitState => ({
        limit: active.points,
        remaining: res.remainingPoints,
        resetSeconds: Math.max(1, Math.ceil(res.msBeforeNext / 1000)),
      });
      try {
        return { state: state(await active.consume(key)) };
      } catch (rejection) {
        // Over the limit the library rejects with its result; anything else is the store failing.
        if (!(rejection instanceof RateLimiterRes)) throw rejection;
        const over = state(rejection);
        const message = `Rate limit exceeded: at most ${active.points} ${WHAT[by]}; retry in ${over.resetSeconds} s`;
        return { state: over, refusal: new AppError('TOO_MANY_REQUESTS', message, { retryAfter: over.resetSeconds }) };
      }
    },
  };
}
