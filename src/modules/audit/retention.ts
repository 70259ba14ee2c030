/**
 * Retention of the audit trail (AUDIT_RETENTION_DAYS): older events are deleted in bounded
 * batches, each its own short statement with a pause between them, so no request waits
 * behind one long delete.
 * @module
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { asc, inArray, lt } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { DbOrTx } from '../../db/client';
import { auditEvents } from '../../db/schema';

const DAY_MS = 24 * 60 * 60 * 1000;
export const PRUNE_BATCH = 1000;

export interface PruneOptions {
  /** Days to keep; 0 keeps everything. */
  retentionDays: number;
  batchSize?: number;
  now?: Date;
  /** Milliseconds between two batches. */
  pauseMs?: number;
  /** Stops between two batches once aborted (at shutdown). */
  signal?: AbortSignal;
}

/** Deletes the events older than the retention, oldest first, `batchSize` per statement; returns how many went. */
export async function pruneAuditEvents(
  db: DbOrTx,
  { retentionDays, batchSize = PRUNE_BATCH, now = new Date(), pauseMs = 50, signal }: PruneOptions,
): Promise<number> {
  if (retentionDays <= 0) return 0;
  const cutoff = new Date(now.getTime() - retentionDays * DAY_MS);
  let total = 0;
  for (;;) {
    const oldest = db
      .select({ id: auditEvents.id })
      .from(auditEvents)
      .where(lt(auditEvents.createdAt, cutoff))
      .orderBy(asc(auditEvents.createdAt))
      .limit(batchSize);
    const deleted = await db.delete(auditEvents).where(inArray(auditEvents.id, oldest)).returning({ id: auditEvents.id });
    total += deleted.length;
    if (deleted.length < batchSize || signal?.aborted) return total;
    await sleep(pauseMs);
  }
}

export interface RetentionTask {
  /**
   * Stops the schedule and resolves once a run in progress has ended (it stops after its
   * current batch), or after `waitMs` if given: a batch whose database does not answer is
   * left behind (closing the database ends it).
   */
  stop(waitMs?: number): Promise<void>;
}

/**
 * Prunes a minute after start, then hourly, in this process. A failed run (the database
 * away) is one warning; the next run tries again.
 */
export function startAuditRetention(
  db: DbOrTx,
  retentionDays: number,
  logger: Logger,
  { firstRunMs = 60_000, everyMs = 60 * 60_000 } = {},
): RetentionTask {
  let running: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  const stopping = new AbortController();
  const run = () => {
    running = pruneAuditEvents(db, { retentionDays, signal: stopping.signal })
      .then((deleted) => {
        if (deleted > 0) logger.info({ deleted, retentionDays }, 'pruned audit events past their retention');
      })
      .catch((error: unknown) => logger.warn({ err: error }, 'pruning audit events failed'))
      .finally(() => {
        running = undefined;
      });
  };
  if (retentionDays > 0) {
    timer = setTimeout(function tick() {
      run();
      timer = setTimeout(tick, everyMs).unref();
    }, firstRunMs).unref();
  }
  return {
    async stop(waitMs?: number) {
      clearTimeout(timer);
      stopping.abort();
      if (!running || waitMs === undefined) {
        await running;
        return;
      }
      await Promise.race([running, sleep(waitMs, undefined, { ref: false })]);
    },
  };
}
