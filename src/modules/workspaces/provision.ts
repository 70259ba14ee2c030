import type { Tx } from '../../db/client';
import { workspaces } from '../../db/schema';
import { AppError, type FailedItem } from '../../lib/errors';
import { firstFreeSlug, slugify } from '../../lib/slug';
import { applySettingsPatch } from '../settings/resolve';
import { requireRole } from '../organizations/access';
import { nameKey, toWorkspaceDto, type WorkspaceDto } from './dto';
import type { ProvisionInput } from './schemas';
import { readableWorkspace, takenSlugs, type WorkspaceRow } from './service';

export interface ProvisionResult {
  created: WorkspaceDto[];
  failed: FailedItem[];
}

type Planned = { index: number; values: typeof workspaces.$inferInsert };

/**
 * Creates many workspaces in one organization with a constant number of queries whatever
 * the batch size: one to find taken slugs, one multi-row insert. A template's description,
 * metadata and settings overrides are each item's base. Conflicts (a slug taken in the
 * organization, or repeated within the batch) fail the whole batch in `atomic` mode (409
 * listing every one) and only those items in `partial` mode. Derived slugs never conflict:
 * they skip what is taken, in the organization and earlier in the batch.
 */
export async function provisionWorkspaces(tx: Tx, actorId: string, input: ProvisionInput): Promise<ProvisionResult> {
  const { organization_id: organizationId, mode } = input;
  await requireRole(tx, actorId, organizationId, 'admin');
  const template: Pick<WorkspaceRow, 'description' | 'metadata' | 'settings'> = input.template_workspace_id
    ? await readableWorkspace(tx, actorId, input.template_workspace_id)
    : { description: null, metadata: {}, settings: {} };

  const explicit = input.workspaces.flatMap((item) => (item.slug ? [item.slug] : []));
  const derivedBases = input.workspaces.map((item) => (item.slug ? undefined : slugify(item.name, 'workspace')));
  const taken = await takenSlugs(
    tx,
    organizationId,
    derivedBases.filter((b): b is string => b !== undefined),
    explicit,
  );

  const failed: FailedItem[] = [];
  const firstIndexOfSlug = new Map<string, number>();
  const planned: Planned[] = [];
  input.workspaces.forEach((item, index) => {
    if (!item.slug) return;
    const earlier = firstIndexOfSlug.get(item.slug);
    if (taken.has(item.slug)) {
      failed.push({ index, code: 'CONFLICT', message: `The slug "${item.slug}" is taken in this organization` });
    } else if (earlier !== undefined) {
      failed.push({ index, code: 'CONFLICT', message: `The slug "${item.slug}" is repeated within the batch (first at index ${earlier})` });
    } else {
      firstIndexOfSlug.set(item.slug, index);
    }
  });
  // Derived slugs avoid every explicit slug of the batch as well as the organization's.
  const reserved = new Set([...taken, ...explicit]);
  const failedIndexes = new Set(failed.map((f) => f.index));

  input.workspaces.forEach((item, index) => {
    if (failedIndexes.has(index)) return;
    const base = derivedBases[index];
    planned.push({
      index,
      values: {
        organizationId,
        name: item.name,
        nameKey: nameKey(item.name),
        slug: base === undefined ? item.slug! : firstFreeSlug(base, reserved),
        description: item.description !== undefined ? item.description : template.description,
        metadata: { ...template.metadata, ...item.metadata },
        settings: applySettingsPatch(template.settings, item.settings ?? {}),
      },
    });
  });

  if (mode === 'atomic' && failed.length > 0) throw conflictError(failed);
  if (planned.length === 0) return { created: [], failed };

  const rows = await tx
    .insert(workspaces)
    .values(planned.map((p) => p.values))
    .onConflictDoNothing({ target: [workspaces.organizationId, workspaces.slug] })
    .returning();

  // A slug taken by a concurrent request between the check and the insert.
  const bySlug = new Map(rows.map((row) => [row.slug, row]));
  const created: WorkspaceDto[] = [];
  for (const { index, values } of planned) {
    const row = bySlug.get(values.slug);
    if (row) created.push(toWorkspaceDto(row));
    else failed.push({ index, code: 'CONFLICT', message: `The slug "${values.slug}" was taken while provisioning` });
  }
  failed.sort((a, b) => a.index - b.index);
  if (mode === 'atomic' && failed.length > 0) throw conflictError(failed);
  return { created, failed };
}

function conflictError(failed: FailedItem[]): AppError {
  const sorted = [...failed].sort((a, b) => a.index - b.index);
  return new AppError('CONFLICT', `${sorted.length} item(s) conflict; nothing was created`, { failed: sorted });
}
