/**
 * The request deadline on database work. postgres.js has no acquire or query timeout, so a
 * request that cannot get a connection, or whose statements never answer (a database that
 * is down, or a network path gone silent), would wait without bound. Each request's database
 * work runs inside `withDatabaseDeadline`: when its budget runs out it fails with
 * `DatabaseDeadlineError` (answered 503 with Retry-After), its queries still waiting for a
 * connection are taken out of the driver's queue (so nothing stale runs after recovery), and
 * no later query of it is sent. The connection a timed-out statement sits on is destroyed by
 * the stall watchdog of `db/client.ts`, never handed to another request.
 * @module
 */
import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * The longest one statement of a request may wait for a lock on purpose: a duplicate
 * idempotent create waiting for the first attempt's key. The request's budget grows by the
 * time it waits (see allowLockWait).
 */
export const LOCK_WAIT_MS = 2000;

/** The request's database work did not finish within its deadline. */
export class DatabaseDeadlineError extends Error {
  override name = 'DatabaseDeadlineError';
  /** Read by `isDatabaseUnavailable` like the driver's own connection error codes. */
  readonly code = 'DATABASE_DEADLINE';
}

/** A driver query that can be withdrawn while it still waits for a connection (postgres.js `Query`). */
export interface PendingQuery {
  /** Set by postgres.js once the query is sent on a connection. */
  state?: unknown;
  cancel(): unknown;
}

class Deadline {
  expired = false;
  readonly expiry: Promise<never>;
  private fail!: (error: DatabaseDeadlineError) => void;
  private timer: NodeJS.Timeout;
  private expiresAt: number;
  private readonly pending = new Set<PendingQuery>();

  constructor(private readonly budgetMs: number) {
    this.expiry = new Promise<never>((_, reject) => (this.fail = reject));
    // Observed by the race in withDatabaseDeadline; a deadline that ends unused must not warn.
    this.expiry.catch(() => {});
    this.expiresAt = Date.now() + budgetMs;
    this.timer = setTimeout(() => this.expire(), budgetMs);
  }

  /** Moves the deadline `ms` later for a wait; the returned function keeps only the time actually waited. */
  allowWait(ms: number): () => void {
    const started = Date.now();
    this.reschedule(this.expiresAt + ms);
    return () => this.reschedule(this.expiresAt - ms + (Date.now() - started));
  }

  private reschedule(at: number): void {
    if (this.expired) return;
    clearTimeout(this.timer);
    this.expiresAt = at;
    this.timer = setTimeout(() => this.expire(), Math.max(0, at - Date.now()));
  }

  track(query: PendingQuery): void {
    this.pending.add(query);
    if (this.pending.size > 64) {
      // Only queries not sent yet can be withdrawn; forget the rest as the set grows.
      for (const q of this.pending) if (q.state) this.pending.delete(q);
    }
  }

  error(): DatabaseDeadlineError {
    return new DatabaseDeadlineError(`The database did not answer within ${this.budgetMs} ms`);
  }

  finish(): void {
    clearTimeout(this.timer);
    this.pending.clear();
  }

  private expire(): void {
    this.expired = true;
    for (const query of this.pending) {
      // Not yet on a connection: take it out of the driver's queue. A query already sent is
      // left to the stall watchdog (a CancelRequest could hit a statement pipelined behind it).
      if (!query.state) void Promise.resolve(query.cancel()).catch(() => {});
    }
    this.pending.clear();
    this.fail(this.error());
  }
}

const current = new AsyncLocalStorage<Deadline>();

/**
 * Runs `work` (a request's database work) under a deadline of `budgetMs`: resolves or
 * rejects with it, or rejects with `DatabaseDeadlineError` when the budget runs out first.
 * The work is not interrupted (JavaScript cannot), but its later queries fail at once.
 */
export async function withDatabaseDeadline<T>(budgetMs: number, work: () => Promise<T>): Promise<T> {
  const deadline = new Deadline(budgetMs);
  const running = current.run(deadline, work);
  // If the deadline wins, the work's own later failure has nobody to report to.
  running.catch(() => {});
  try {
    return await Promise.race([running, deadline.expiry]);
  } finally {
    deadline.finish();
  }
}

/** Throws `DatabaseDeadlineError` when the current request's deadline has passed (so a late transaction rolls back). */
export function throwIfDeadlinePassed(): void {
  const deadline = current.getStore();
  if (deadline?.expired) throw deadline.error();
}

/**
 * Lets the current request's next statement wait for a lock on purpose, up to `ms` beyond its
 * budget; call the returned function when the statement has answered (the budget then keeps
 * the time actually waited).
 */
export function allowLockWait(ms: number): () => void {
  return current.getStore()?.allowWait(ms) ?? (() => {});
}

/** Called by the driver wrapper for each query: refuses it after the deadline, else tracks it until it is sent. */
export function admitQuery<Q extends PendingQuery>(create: () => Q): Q {
  const deadline = current.getStore();
  if (deadline?.expired) throw deadline.error();
  const query = create();
  deadline?.track(query);
  return query;
}
