import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, configWarnings, loadConfig } from '../src/config';

const SECRET = 'a-secret-that-is-at-least-32-bytes-long';
const publicKeyPem = (type: 'rsa' | 'ec') =>
  (type === 'rsa'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: 'P-256' })
  ).publicKey.export({ type: 'spki', format: 'pem' }) as string;

/** The error loadConfig throws for `env` (fails the test when it does not throw). */
function configError(env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('loadConfig defaults', () => {
  it('gives the documented defaults for an empty environment', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      NODE_ENV: 'development',
      PORT: 3000,
      HOST: '127.0.0.1',
      DATA_DIR: './.data',
      ACCESS_TOKEN_TTL: 3600,
      RATE_LIMIT_PER_MINUTE: 1200,
      AUTH_RATE_LIMIT_PER_MINUTE: 20,
      MAX_WORKSPACES_PER_ORGANIZATION: 50_000,
      MAX_ORGANIZATIONS_PER_USER: 100,
      UNAUTHENTICATED_RATE_LIMIT_PER_MINUTE: 60,
      RATE_LIMIT_STORE: 'memory',
      DATABASE_PREPARE: true,
      DATABASE_POOL_MAX: 10,
      DATABASE_IDLE_TIMEOUT_S: 60,
      AUDIT_RETENTION_DAYS: 90,
      SHED_EVENT_LOOP_DELAY_MS: 200,
      SHED_EVENT_LOOP_UTILIZATION: 0,
      LOG_LEVEL: 'info',
      JWT_ISSUER: 'workspaces-api',
      JWT_AUDIENCE: 'workspaces-api',
      CORS_ORIGINS: [],
      TRUST_PROXY: false,
    });
    expect(config.DATABASE_URL).toBeUndefined();
    expect(config.JWT_SECRET).toBeUndefined();
    expect(config.JWT_PUBLIC_KEY).toBeUndefined();
    expect(config.JWT_EXTERNAL_ISSUER).toBeUndefined();
  });

  it('treats empty strings as unset', () => {
    const config = loadConfig({ PORT: '', HOST: '', DATABASE_URL: '', JWT_SECRET: '', LOG_LEVEL: '', CORS_ORIGINS: '' });
    expect(config).toMatchObject({ PORT: 3000, HOST: '127.0.0.1', LOG_LEVEL: 'info', CORS_ORIGINS: [] });
    expect(config.DATABASE_URL).toBeUndefined();
    expect(config.JWT_SECRET).toBeUndefined();
  });

  it('ignores variables it does not know', () => {
    expect(() => loadConfig({ SOMETHING_ELSE: 'x', PATH: '/usr/bin' })).not.toThrow();
  });
});

describe('loadConfig values', () => {
  it('parses numbers, booleans and the database URL', () => {
    const config = loadConfig({
      PORT: '0',
      HOST: '0.0.0.0',
      DATABASE_URL: 'postgresql://user@db:5432/app',
      ACCESS_TOKEN_TTL: '900',
      RATE_LIMIT_PER_MINUTE: '0',
      AUTH_RATE_LIMIT_PER_MINUTE: '5',
      MAX_WORKSPACES_PER_ORGANIZATION: '0',
      MAX_ORGANIZATIONS_PER_USER: '7',
      UNAUTHENTICATED_RATE_LIMIT_PER_MINUTE: '0',
      RATE_LIMIT_STORE: 'postgres',
      DATABASE_PREPARE: 'false',
      LOG_LEVEL: 'warn',
    });
    expect(config).toMatchObject({
      PORT: 0,
      HOST: '0.0.0.0',
      DATABASE_URL: 'postgresql://user@db:5432/app',
      ACCESS_TOKEN_TTL: 900,
      RATE_LIMIT_PER_MINUTE: 0,
      AUTH_RATE_LIMIT_PER_MINUTE: 5,
      MAX_WORKSPACES_PER_ORGANIZATION: 0,
      MAX_ORGANIZATIONS_PER_USER: 7,
      UNAUTHENTICATED_RATE_LIMIT_PER_MINUTE: 0,
      RATE_LIMIT_STORE: 'postgres',
      DATABASE_PREPARE: false,
      LOG_LEVEL: 'warn',
    });
  });

  it('parses the load-shedding limits, 0 turning a check off', () => {
    expect(loadConfig({ SHED_EVENT_LOOP_DELAY_MS: '0', SHED_EVENT_LOOP_UTILIZATION: '0.98' })).toMatchObject({
      SHED_EVENT_LOOP_DELAY_MS: 0,
      SHED_EVENT_LOOP_UTILIZATION: 0.98,
    });
    expect(loadConfig({ SHED_EVENT_LOOP_DELAY_MS: '500', SHED_EVENT_LOOP_UTILIZATION: '1' })).toMatchObject({
      SHED_EVENT_LOOP_DELAY_MS: 500,
      SHED_EVENT_LOOP_UTILIZATION: 1,
    });
  });

  it('parses the pool settings: its size from 1 to 1000, the idle timeout from 0 (never close) to a day', () => {
    expect(loadConfig({ DATABASE_POOL_MAX: '3', DATABASE_IDLE_TIMEOUT_S: '1' })).toMatchObject({
      DATABASE_POOL_MAX: 3,
      DATABASE_IDLE_TIMEOUT_S: 1,
    });
    expect(loadConfig({ DATABASE_POOL_MAX: '1', DATABASE_IDLE_TIMEOUT_S: '0' })).toMatchObject({
      DATABASE_POOL_MAX: 1,
      DATABASE_IDLE_TIMEOUT_S: 0,
    });
    expect(loadConfig({ DATABASE_POOL_MAX: '1000', DATABASE_IDLE_TIMEOUT_S: '86400' })).toMatchObject({
      DATABASE_POOL_MAX: 1000,
      DATABASE_IDLE_TIMEOUT_S: 86_400,
    });
  });

  it('parses CORS_ORIGINS into a list of origins', () => {
    expect(loadConfig({ CORS_ORIGINS: 'https://app.example.com, http://localhost:5173 ,' }).CORS_ORIGINS).toEqual([
      'https://app.example.com',
      'http://localhost:5173',
    ]);
    expect(loadConfig({ CORS_ORIGINS: 'https://one.example' }).CORS_ORIGINS).toEqual(['https://one.example']);
  });

  it('parses TRUST_PROXY as Express takes it', () => {
    expect(loadConfig({ TRUST_PROXY: 'true' }).TRUST_PROXY).toBe(true);
    expect(loadConfig({ TRUST_PROXY: 'false' }).TRUST_PROXY).toBe(false);
    expect(loadConfig({ TRUST_PROXY: '2' }).TRUST_PROXY).toBe(2);
    expect(loadConfig({ TRUST_PROXY: 'loopback' }).TRUST_PROXY).toBe('loopback');
    expect(loadConfig({ TRUST_PROXY: 'loopback, 10.0.0.0/8' }).TRUST_PROXY).toBe('loopback, 10.0.0.0/8');
  });

  it('warns about TRUST_PROXY=true (every X-Forwarded-For hop trusted), not about a hop count or addresses', () => {
    const warnings = configWarnings(loadConfig({ TRUST_PROXY: 'true' }));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ variable: 'TRUST_PROXY' });
    expect(warnings[0]!.message).toMatch(/X-Forwarded-For/);
    expect(warnings[0]!.message).toMatch(/hop count/);
    for (const value of ['false', '1', '2', 'loopback', 'loopback, 10.0.0.0/8']) {
      expect(configWarnings(loadConfig({ TRUST_PROXY: value })), value).toEqual([]);
    }
    expect(configWarnings(loadConfig({}))).toEqual([]);
  });

  it('accepts production with a JWT_SECRET of at least 32 bytes', () => {
    const config = loadConfig({ NODE_ENV: 'production', JWT_SECRET: SECRET });
    expect(config.NODE_ENV).toBe('production');
    expect(config.JWT_SECRET).toBe(SECRET);
  });

  it.each(['rsa', 'ec'] as const)('accepts an %s JWT_PUBLIC_KEY with its JWT_EXTERNAL_ISSUER', (type) => {
    const pem = publicKeyPem(type);
    const config = loadConfig({ JWT_PUBLIC_KEY: pem, JWT_EXTERNAL_ISSUER: 'https://idp.example.com/' });
    expect(config.JWT_PUBLIC_KEY).toBe(pem);
    expect(config.JWT_EXTERNAL_ISSUER).toBe('https://idp.example.com/');
  });
});

describe('loadConfig refuses a bad value with a ConfigError naming the variable', () => {
  const cases: Array<[string, NodeJS.ProcessEnv, string]> = [
    ['a PORT that is not a number', { PORT: 'abc' }, 'PORT'],
    ['a PORT out of range', { PORT: '70000' }, 'PORT'],
    ['a negative PORT', { PORT: '-1' }, 'PORT'],
    ['a DATABASE_URL of another database', { DATABASE_URL: 'mysql://x' }, 'DATABASE_URL'],
    ['a JWT_SECRET shorter than 32 bytes', { JWT_SECRET: 'too-short' }, 'JWT_SECRET'],
    ['an unknown LOG_LEVEL', { LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    ['an unknown RATE_LIMIT_STORE', { RATE_LIMIT_STORE: 'redis' }, 'RATE_LIMIT_STORE'],
    ['a DATABASE_PREPARE that is not true/false', { DATABASE_PREPARE: 'yes' }, 'DATABASE_PREPARE'],
    [
      'a JWT_PUBLIC_KEY that is no PEM key',
      { JWT_PUBLIC_KEY: 'garbage', JWT_EXTERNAL_ISSUER: 'https://idp.example.com/' },
      'JWT_PUBLIC_KEY',
    ],
    ['a JWT_PUBLIC_KEY without JWT_EXTERNAL_ISSUER', { JWT_PUBLIC_KEY: publicKeyPem('ec') }, 'JWT_EXTERNAL_ISSUER'],
    ['a JWT_EXTERNAL_ISSUER without JWT_PUBLIC_KEY', { JWT_EXTERNAL_ISSUER: 'https://idp.example.com/' }, 'JWT_PUBLIC_KEY'],
    ['NODE_ENV=production without JWT_SECRET', { NODE_ENV: 'production' }, 'JWT_SECRET'],
    ['RATE_LIMIT_STORE=postgres without DATABASE_URL', { RATE_LIMIT_STORE: 'postgres' }, 'DATABASE_URL'],
    ['an ACCESS_TOKEN_TTL that is not a number', { ACCESS_TOKEN_TTL: '1h' }, 'ACCESS_TOKEN_TTL'],
    ['a negative RATE_LIMIT_PER_MINUTE', { RATE_LIMIT_PER_MINUTE: '-5' }, 'RATE_LIMIT_PER_MINUTE'],
    ['a fractional AUTH_RATE_LIMIT_PER_MINUTE', { AUTH_RATE_LIMIT_PER_MINUTE: '1.5' }, 'AUTH_RATE_LIMIT_PER_MINUTE'],
    ['a negative MAX_WORKSPACES_PER_ORGANIZATION', { MAX_WORKSPACES_PER_ORGANIZATION: '-1' }, 'MAX_WORKSPACES_PER_ORGANIZATION'],
    ['a word for MAX_ORGANIZATIONS_PER_USER', { MAX_ORGANIZATIONS_PER_USER: 'unlimited' }, 'MAX_ORGANIZATIONS_PER_USER'],
    [
      'an UNAUTHENTICATED_RATE_LIMIT_PER_MINUTE that is not a number',
      { UNAUTHENTICATED_RATE_LIMIT_PER_MINUTE: 'many' },
      'UNAUTHENTICATED_RATE_LIMIT_PER_MINUTE',
    ],
    ['an unknown NODE_ENV', { NODE_ENV: 'staging' }, 'NODE_ENV'],
    ['an AUDIT_RETENTION_DAYS over ten years', { AUDIT_RETENTION_DAYS: '3651' }, 'AUDIT_RETENTION_DAYS'],
    ['an AUDIT_RETENTION_DAYS that is not a number', { AUDIT_RETENTION_DAYS: '90d' }, 'AUDIT_RETENTION_DAYS'],
    ['a SHED_EVENT_LOOP_DELAY_MS that is not a number', { SHED_EVENT_LOOP_DELAY_MS: '200ms' }, 'SHED_EVENT_LOOP_DELAY_MS'],
    ['a SHED_EVENT_LOOP_DELAY_MS over a minute', { SHED_EVENT_LOOP_DELAY_MS: '60001' }, 'SHED_EVENT_LOOP_DELAY_MS'],
    ['a SHED_EVENT_LOOP_UTILIZATION over 1', { SHED_EVENT_LOOP_UTILIZATION: '1.5' }, 'SHED_EVENT_LOOP_UTILIZATION'],
    ['a SHED_EVENT_LOOP_UTILIZATION given as a percentage', { SHED_EVENT_LOOP_UTILIZATION: '98%' }, 'SHED_EVENT_LOOP_UTILIZATION'],
    ['a DATABASE_POOL_MAX of 0 (a pool that can never connect)', { DATABASE_POOL_MAX: '0' }, 'DATABASE_POOL_MAX'],
    ['a negative DATABASE_POOL_MAX', { DATABASE_POOL_MAX: '-1' }, 'DATABASE_POOL_MAX'],
    ['a DATABASE_POOL_MAX that is not a number', { DATABASE_POOL_MAX: 'x' }, 'DATABASE_POOL_MAX'],
    ['a fractional DATABASE_POOL_MAX', { DATABASE_POOL_MAX: '2.5' }, 'DATABASE_POOL_MAX'],
    ['a DATABASE_POOL_MAX over 1000', { DATABASE_POOL_MAX: '1001' }, 'DATABASE_POOL_MAX'],
    ['a negative DATABASE_IDLE_TIMEOUT_S', { DATABASE_IDLE_TIMEOUT_S: '-1' }, 'DATABASE_IDLE_TIMEOUT_S'],
    ['a DATABASE_IDLE_TIMEOUT_S that is not a number', { DATABASE_IDLE_TIMEOUT_S: 'x' }, 'DATABASE_IDLE_TIMEOUT_S'],
    ['a DATABASE_IDLE_TIMEOUT_S with a unit', { DATABASE_IDLE_TIMEOUT_S: '60s' }, 'DATABASE_IDLE_TIMEOUT_S'],
    ['a DATABASE_IDLE_TIMEOUT_S over a day', { DATABASE_IDLE_TIMEOUT_S: '86401' }, 'DATABASE_IDLE_TIMEOUT_S'],
    ['CORS_ORIGINS that are not origins', { CORS_ORIGINS: 'not an origin' }, 'CORS_ORIGINS'],
    ['a TRUST_PROXY Express would refuse at start', { TRUST_PROXY: 'not-an-ip' }, 'TRUST_PROXY'],
  ];

  it.each(cases)('%s', (_what, env, variable) => {
    const error = configError(env);
    expect(error.message).toContain(variable);
    // One line, fit for stderr as it is.
    expect(error.message).not.toContain('\n');
  });

  it('names the variable, not the value, when the value is a secret', () => {
    const error = configError({ JWT_SECRET: 'short-secret-value' });
    expect(error.message).toContain('JWT_SECRET');
    expect(error.message).not.toContain('short-secret-value');
  });
});
