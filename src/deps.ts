import pino, { type Logger } from 'pino';
import type { Config } from './config';
import type { DatabaseHandle } from './db/client';
import { loadJwtSecret } from './auth/secret';
import { createTokenService, type TokenService } from './auth/tokens';
import { createCursorCodec, type CursorCodec } from './lib/cursor';
import { createRateLimits, type RateLimits } from './lib/rate-limits';
import { LoadShedder } from './http/load-shedding';
import { resolveActor } from './modules/auth/service';

/** What the app is built from; tests build it with their own database. */
export interface AppDeps {
  config: Config;
  database: DatabaseHandle;
  tokens: TokenService;
  cursors: CursorCodec;
  logger: Logger;
  rateLimits: RateLimits;
  /** Refuses new API requests while the event loop is saturated; its sampler runs until `stop()`. */
  loadShedder: LoadShedder;
  /** The user a verified token speaks for (401 otherwise), for the auth middleware. */
  resolveActor: typeof resolveActor;
  /** The time invitations are created, resent and expire by (tests move it). */
  now: () => Date;
}

export function createLogger(config: Config): Logger {
  return pino({
    level: config.LOG_LEVEL,
    // Belt and braces: nothing should log these, and if something does, they are hidden.
    redact: ['req.headers.authorization', '*.password', 'password', 'authorization', '*.authorization'],
  });
}

/** Everything the app needs beside the database, derived from the configuration. */
export function createDeps(
  config: Config,
  database: DatabaseHandle,
  logger: Logger = createLogger(config),
  now: () => Date = () => new Date(),
): AppDeps {
  const secret = loadJwtSecret(config);
  const tokens = createTokenService({
    secret,
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE,
    ttlSeconds: config.ACCESS_TOKEN_TTL,
    maxLifetimeSeconds: config.TOKEN_MAX_LIFETIME,
    external:
      config.JWT_PUBLIC_KEY && config.JWT_EXTERNAL_ISSUER
        ? { issuer: config.JWT_EXTERNAL_ISSUER, publicKeyPem: config.JWT_PUBLIC_KEY }
        : undefined,
  });
  const rateLimits = createRateLimits(config, database);
  const loadShedder = new LoadShedder(
    { maxEventLoopDelayMs: config.SHED_EVENT_LOOP_DELAY_MS, maxEventLoopUtilization: config.SHED_EVENT_LOOP_UTILIZATION },
    logger,
  );
  return { config, database, tokens, cursors: createCursorCodec(secret), logger, rateLimits, loadShedder, resolveActor, now };
}
