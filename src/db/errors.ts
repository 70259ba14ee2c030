/** Walks an error's `cause` chain (drizzle wraps driver errors) for a PostgreSQL error field. */
function findField(error: unknown, field: string): string | undefined {
  let current: unknown = error;
  for (let depth = 0; current && typeof current === 'object' && depth < 5; depth++) {
    const value = (current as Record<string, unknown>)[field];
    if (typeof value === 'string') return value;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** The SQLSTATE of a database error, e.g. '23505' for a unique violation. */
export const pgErrorCode = (error: unknown) => findField(error, 'code');

/** The constraint a database error names (postgres.js: constraint_name; PGlite: constraint). */
export const pgConstraint = (error: unknown) => findField(error, 'constraint_name') ?? findField(error, 'constraint');

export const isUniqueViolation = (error: unknown, constraint?: string) =>
  pgErrorCode(error) === '23505' && (constraint === undefined || pgConstraint(error) === constraint);

const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECTION_STALLED', // the stall watchdog of db/client.ts
  'DATABASE_DEADLINE', // the request deadline of db/deadline.ts
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '53300', // too_many_connections
  '57014', // query_canceled (statement_timeout)
  // Transient by nature: the same request succeeds when retried. Lock order is uniform
  // (organization, then workspace: modules/workspaces/service.ts), so these are a safety net.
  '40P01', // deadlock_detected
  '40001', // serialization_failure
]);

/** True for errors that mean the database is unreachable, too slow, or asks for a retry (answered with 503). */
export const isDatabaseUnavailable = (error: unknown) => {
  const code = pgErrorCode(error);
  return code !== undefined && UNAVAILABLE_CODES.has(code);
};

/** lock_not_available: a `lock_timeout` ran out. */
export const isLockTimeout = (error: unknown) => pgErrorCode(error) === '55P03';

/** foreign_key_violation: the row referred to was deleted meanwhile (e.g. a create racing its organization's delete). */
export const isForeignKeyViolation = (error: unknown) => pgErrorCode(error) === '23503';
