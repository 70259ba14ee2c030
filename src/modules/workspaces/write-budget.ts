import type { workspaces } from '../../db/schema';
import { AppError } from '../../lib/errors';

/** The most one provision or clone may write: its rows' names, descriptions, metadata and settings as JSON. */
export const MAX_WRITE_BYTES = 4 * 1024 * 1024;

/**
 * 413 before any row is written when the rows would exceed MAX_WRITE_BYTES: a small request
 * can ask for much (1,000 copies of a template's settings), and the work it causes is bounded
 * here, not only its body.
 */
export function assertWriteWithinBudget(
  rows: Array<Pick<typeof workspaces.$inferInsert, 'name' | 'description' | 'metadata' | 'settings'>>,
): void {
  let bytes = 0;
  for (const row of rows) {
    bytes += Buffer.byteLength(row.name) + Buffer.byteLength(row.description ?? '');
    bytes += Buffer.byteLength(JSON.stringify(row.metadata ?? {})) + Buffer.byteLength(JSON.stringify(row.settings ?? {}));
  }
  if (bytes > MAX_WRITE_BYTES) {
    throw new AppError(
      'PAYLOAD_TOO_LARGE',
      `This request would write ${bytes} bytes of workspaces (names, descriptions, metadata, settings); one provision or clone may write at most ${MAX_WRITE_BYTES} (4 MiB)`,
    );
  }
}
