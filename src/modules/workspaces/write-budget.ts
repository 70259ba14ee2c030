import type { workspaces } from '../../db/schema';
import { AppError } from '../../lib/errors';
import type { Changes } from '../audit/events';

/** The most one provision or clone may write: its workspaces and their creation events, as JSON. */
export const MAX_WRITE_BYTES = 4 * 1024 * 1024;

/** A workspace about to be inserted, with the changes its creation event will record. */
export interface PlannedWorkspace {
  values: Pick<typeof workspaces.$inferInsert, 'name' | 'description' | 'metadata' | 'settings'>;
  changes: Changes;
}

/**
 * Counts what a provision or clone is about to write and refuses it (413) as soon as it
 * passes MAX_WRITE_BYTES: a small request can ask for much (1,000 copies of a template's
 * settings), and the work it causes is bounded here, not only its body. Items are counted as
 * they are planned, so a batch over the budget is refused once the budget is spent, before
 * the rest of it is worked on, and before any row is written. The events count too: they
 * carry every field again, one path per leaf, which is often more than the row itself.
 */
export class WriteBudget {
  private bytes = 0;

  add({ values, changes }: PlannedWorkspace): void {
    this.bytes += Buffer.byteLength(values.name) + Buffer.byteLength(values.description ?? '');
    this.bytes += Buffer.byteLength(JSON.stringify(values.metadata ?? {})) + Buffer.byteLength(JSON.stringify(values.settings ?? {}));
    this.bytes += Buffer.byteLength(JSON.stringify(changes));
    if (this.bytes > MAX_WRITE_BYTES) {
      throw new AppError(
        'PAYLOAD_TOO_LARGE',
        `This request would write more than ${MAX_WRITE_BYTES} bytes of workspaces and their audit events (names, descriptions, metadata, settings); one provision or clone may write at most ${MAX_WRITE_BYTES} (4 MiB)`,
      );
    }
  }
}
