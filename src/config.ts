import { createPublicKey } from 'node:crypto';
import express from 'express';
import { z } from 'zod';

/** Thrown for a bad environment; `main.ts` prints its message as one line and exits non-zero. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

const integer = (min: number, max: number) =>
  z.string().regex(/^\d+$/, 'must be a whole number').transform(Number).pipe(z.number().int().min(min).max(max));

function isPublicKey(pem: string): boolean {
  try {
    const type = createPublicKey(pem).asymmetricKeyType;
    return type === 'rsa' || type === 'ec';
  } catch {
    return false;
  }
}

/** Whatever Express's `trust proxy` setting accepts (it throws on anything else). */
function isTrustProxyValue(value: boolean | number | string): boolean {
  try {
    express().set('trust proxy', value);
    return true;
  } catch {
    return false;
  }
}

/** See README (Configuration): measured, normal load on 2 cores stays far below it. */
export const DEFAULT_SHED_EVENT_LOOP_DELAY_MS = 200;

const booleanString = z.enum(['true', 'false']).transform((v) => v === 'true');

const envSchema = z.object({
  /** Only `production` changes behaviour; an unknown value (a typo of it) is refused, not run as development. */
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: integer(0, 65535).default(3000),
  HOST: z.string().min(1).default('127.0.0.1'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
    .optional(),
  /** Where migrations run, when DATABASE_URL goes through a pooler in transaction mode (their advisory lock needs a session). */
  DATABASE_MIGRATION_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
    .optional(),
  DATA_DIR: z.string().min(1).default('./.data'),
  JWT_SECRET: z
    .string()
    .refine((s) => Buffer.byteLength(s) >= 32, 'must be at least 32 bytes')
    .optional(),
  JWT_ISSUER: z.string().min(1).default('workspaces-api'),
  JWT_AUDIENCE: z.string().min(1).default('workspaces-api'),
  JWT_PUBLIC_KEY: z.string().refine(isPublicKey, 'must be a PEM-encoded RSA or EC public key').optional(),
  JWT_EXTERNAL_ISSUER: z.string().min(1).optional(),
  ACCESS_TOKEN_TTL: integer(60, 60 * 60 * 24 * 30).default(3600),
  /** The longest lifetime (exp − iat) a token may claim, ours or an identity provider's. */
  TOKEN_MAX_LIFETIME: integer(60, 60 * 60 * 24 * 30).default(60 * 60 * 24),
  CORS_ORIGINS: z
    .string()
    .transform((s) =>
      s
        .split(',')
        .map((o) => o.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.url({ message: 'must be a comma-separated list of origins' })))
    .default([]),
  TRUST_PROXY: z
    .string()
    .transform((s): boolean | number | string => {
      if (s === 'true') return true;
      if (s === 'false' || s === 'off' || s === '') return false;
      if (/^\d+$/.test(s)) return Number(s);
      return s;
    })
    .refine(isTrustProxyValue, 'must be true, false, a hop count, or addresses/subnets Express accepts (e.g. loopback, 10.0.0.0/8)')
    .default(false),
  RATE_LIMIT_PER_MINUTE: integer(0, 1_000_000).default(1200),
  /** Workspaces one organization may hold, archived ones included; 0 for no limit. */
  MAX_WORKSPACES_PER_ORGANIZATION: integer(0, 10_000_000).default(50_000),
  /** Organizations one user may create (signup's first one included); 0 for no limit. */
  MAX_ORGANIZATIONS_PER_USER: integer(0, 1_000_000).default(100),
  /** Signup and login attempts per client address per minute; invitation previews have a budget of their own of the same size. */
  AUTH_RATE_LIMIT_PER_MINUTE: integer(0, 1_000_000).default(20),
  /** How long an invitation's token stays valid (modules/invitations). */
  INVITATION_TTL_HOURS: integer(1, 720).default(168),
  /** Pending, unexpired invitations one organization may hold; 0 for no limit. */
  INVITATIONS_PENDING_MAX: integer(0, 1_000_000).default(1000),
  /** Invitations one organization may create or resend per 24-hour window; 0 for no limit. */
  INVITATIONS_PER_DAY: integer(0, 1_000_000).default(200),
  /** 401s per client address per minute on the operations that need a token; past it, 429 (trpc/init.ts). */
  UNAUTHENTICATED_RATE_LIMIT_PER_MINUTE: integer(0, 1_000_000).default(60),
  RATE_LIMIT_STORE: z.enum(['memory', 'postgres']).default('memory'),
  DATABASE_PREPARE: booleanString.default(true),
  /** The budget of one request's database work: past it the request answers 503 (see db/deadline.ts). */
  DATABASE_DEADLINE_MS: integer(100, 60_000).default(2000),
  /** Connections the request pool may hold open at once, per process (db/client.ts); README (Deploying) sizes it. */
  DATABASE_POOL_MAX: integer(1, 1000).default(10),
  /** Seconds a pool connection may sit idle before it is closed; 0 keeps idle connections open. */
  DATABASE_IDLE_TIMEOUT_S: integer(0, 86_400).default(60),
  /**
   * Load shedding (http/load-shedding.ts): new API requests are refused with 503 while the mean
   * event-loop delay, or its utilization, over the last second is above these; 0 turns a check off.
   */
  SHED_EVENT_LOOP_DELAY_MS: integer(0, 60_000).default(DEFAULT_SHED_EVENT_LOOP_DELAY_MS),
  SHED_EVENT_LOOP_UTILIZATION: z
    .string()
    .regex(/^(0(\.\d{1,3})?|1(\.0{1,3})?)$/, 'must be a number from 0 to 1 (at most 3 decimals; 0 turns the check off)')
    .transform(Number)
    .default(0),
  /** Days audit events are kept; 0 keeps them forever (modules/audit/retention.ts). */
  AUDIT_RETENTION_DAYS: integer(0, 3650).default(90),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type Config = z.infer<typeof envSchema>;

/** Parses the environment once. Empty strings count as unset. Throws ConfigError naming the first bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const present = Object.fromEntries(
    Object.entries(env).filter(([key, value]) => key in envSchema.shape && value !== undefined && value !== ''),
  );
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name = String(issue.path[0] ?? 'environment');
    throw new ConfigError(`Invalid configuration: ${name} ${issue.message}`);
  }
  const config = parsed.data;
  if (config.NODE_ENV === 'production' && !config.JWT_SECRET) {
    throw new ConfigError('Invalid configuration: JWT_SECRET is required when NODE_ENV=production (at least 32 bytes)');
  }
  if (Boolean(config.JWT_PUBLIC_KEY) !== Boolean(config.JWT_EXTERNAL_ISSUER)) {
    throw new ConfigError('Invalid configuration: JWT_PUBLIC_KEY and JWT_EXTERNAL_ISSUER must be set together');
  }
  if (config.ACCESS_TOKEN_TTL > config.TOKEN_MAX_LIFETIME) {
    throw new ConfigError('Invalid configuration: ACCESS_TOKEN_TTL must not exceed TOKEN_MAX_LIFETIME');
  }
  if (config.DATABASE_MIGRATION_URL && !config.DATABASE_URL) {
    throw new ConfigError('Invalid configuration: DATABASE_MIGRATION_URL needs DATABASE_URL (the embedded database migrates itself)');
  }
  if (config.RATE_LIMIT_STORE === 'postgres' && !config.DATABASE_URL) {
    throw new ConfigError('Invalid configuration: RATE_LIMIT_STORE=postgres needs DATABASE_URL (not available on the embedded database)');
  }
  return config;
}

/** A setting that starts the service but weakens it: main.ts logs each as one `warn` line. */
export interface ConfigWarning {
  variable: keyof Config;
  message: string;
}

export function configWarnings(config: Config): ConfigWarning[] {
  const warnings: ConfigWarning[] = [];
  if (config.TRUST_PROXY === true) {
    // Express then takes the left-most X-Forwarded-For address, which the client writes itself
    // unless a proxy in front replaces the header.
    warnings.push({
      variable: 'TRUST_PROXY',
      message:
        'TRUST_PROXY=true trusts every X-Forwarded-For hop: unless a proxy in front replaces that header, a client names its own address and rotates past the per-address limits (login, signup, 401s). Set the hop count of your proxies (e.g. 1) or their addresses (e.g. loopback, 10.0.0.0/8) instead',
    });
  }
  return warnings;
}
