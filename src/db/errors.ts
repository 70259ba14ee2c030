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

/**
 * Database states that are not bugs: each is answered 503 with `Retry-After` and logged as one
 * `warn` line naming its code (trpc/errors.ts), never as an error with a stack. A SQLSTATE
 * matches by its code, or by its class (the first two characters) where the table names the
 * class. README, Reliability, lists the same table.
 */
export const UNAVAILABLE_STATES: Readonly<Record<string, string>> = {
  // The connection: the driver's and the socket's codes, and SQLSTATE class 08.
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'connection timed out',
  CONNECT_TIMEOUT: 'connection timed out',
  CONNECTION_CLOSED: 'connection closed',
  CONNECTION_ENDED: 'connection ended',
  CONNECTION_DESTROYED: 'connection destroyed',
  CONNECTION_STALLED: 'no answer on the connection (the stall watchdog of db/client.ts)',
  DATABASE_DEADLINE: 'the request deadline passed (db/deadline.ts)',
  '08': 'connection exception',
  // Writes refused: a hot standby, or a primary made read-only.
  '25006': 'read-only transaction',
  // Insufficient resources.
  '53100': 'disk full',
  '53200': 'out of memory',
  '53300': 'too many connections',
  // Operator intervention.
  '57P01': 'admin shutdown',
  '57P02': 'crash shutdown',
  '57P03': 'cannot connect now',
  '57014': 'query canceled (statement timeout)',
  // Transient by nature: the same request succeeds when retried. Lock order is uniform
  // (organization, then workspace: modules/workspaces/service.ts), so these are a safety net.
  '40001': 'serialization failure',
  '40P01': 'deadlock detected',
  '55P03': 'lock not available (lock timeout)',
};

const SQLSTATE = /^[0-9A-Z]{5}$/;

/** The table's entry for a code: its own, or (for a SQLSTATE) its class's. */
export function unavailableState(code: string | undefined): string | undefined {
  if (code === undefined) return undefined;
  return UNAVAILABLE_STATES[code] ?? (SQLSTATE.test(code) ? UNAVAILABLE_STATES[code.slice(0, 2)] : undefined);
}

/** True for errors that mean the database is unreachable, unable to write now, too slow, or asks for a retry (answered with 503). */
export const isDatabaseUnavailable = (error: unknown) => unavailableState(pgErrorCode(error)) !== undefined;

/** lock_not_available: a `lock_timeout` ran out. */
export const isLockTimeout = (error: unknown) => pgErrorCode(error) === '55P03';

/** foreign_key_violation: the row referred to was deleted meanwhile (e.g. a create racing its organization's delete). */
export const isForeignKeyViolation = (error: unknown) => pgErrorCode(error) === '23503';
