import type { Tx } from '../../db/client';
import { sql } from 'drizzle-orm';
import { workspaces } from '../../db/schema';
import type { SettingsLayer } from '../../db/schema/settings-layer';
import { AppError, invalidInput, type FailedItem } from '../../lib/errors';
import { DERIVED_SLUG_ATTEMPTS, firstFreeSlug, slugify } from '../../lib/slug';
import { applySettingsPatch } from '../settings/resolve';
import { lockedError, lockViolations } from '../settings/locks';
import { requireRole } from '../organizations/access';
import { changesBetween, organizationEvent, recordEvents, workspaceEvent, type Author } from '../audit/events';
import { creationChanges, nameKey, toWorkspace, type WorkspaceRow } from './rows';
import type { ProvisionInput, ProvisionResult } from './schemas';
import { mergeMetadata, organizationRules, readableWorkspace, takenSlugs } from './service';
import { assertWriteWithinBudget } from './write-budget';

/** An item to insert; `base` is set when its slug is derived from the name (and may move on). */
type Planned = { index: number; base: string | undefined; values: typeof workspaces.$inferInsert & { slug: string } };

/**
 * Creates many workspaces in one organization with a constant number of queries whatever
 * the batch size: one to find taken slugs, one multi-row insert (another round only when a
 * concurrent request took a slug meanwhile). A template's description,
 * metadata and settings overrides are each item's base. Conflicts (a slug taken in the
 * organization, or repeated within the batch) fail the whole batch in `atomic` mode (409
 * listing every one) and only those items in `partial` mode. Derived slugs never conflict:
 * they skip what is taken, in the organization and earlier in the batch.
 */
export async function provisionWorkspaces(tx: Tx, author: Author, input: ProvisionInput): Promise<ProvisionResult> {
  const { organization_id: organizationId, mode } = input;
  await requireRole(tx, author.id, organizationId, 'admin');
  const template: Pick<WorkspaceRow, 'description' | 'metadata' | 'settings'> = input.template_workspace_id
    ? await readableWorkspace(tx, author.id, input.template_workspace_id)
    : { description: null, metadata: {}, settings: {} };
  const { locks } = await organizationRules(tx, { organizationId });

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

  let pending: Planned[] = [];
  input.workspaces.forEach((item, index) => {
    if (failedIndexes.has(index)) return;
    const base = derivedBases[index];
    pending.push({
      index,
      base,
      values: {
        organizationId,
        name: item.name,
        nameKey: nameKey(item.name),
        slug: base === undefined ? item.slug! : firstFreeSlug(base, reserved),
        description: item.description !== undefined ? item.description : template.description,
        metadata: itemField(index, 'metadata', () => mergeMetadata(template.metadata, item.metadata ?? {})),
        settings: itemField(index, 'settings', () => applySettingsPatch(template.settings, item.settings ?? {})),
      },
    });
  });

  // A lock refuses the whole call in either mode: it is a rule of the organization, not one item's conflict.
  const locked = pending.flatMap((p) => lockViolations(p.values.settings ?? {}, locks, `workspaces.${p.index}.settings`));
  if (locked.length > 0) throw lockedError(locked);
  if (mode === 'atomic' && failed.length > 0) throw conflictError(failed);
  // Each workspace's creation event, computed once: the budget counts it, and it is recorded.
  const creations = new Map(pending.map((p) => [p.index, creationChanges({ ...p.values, isDefault: false })]));
  assertWriteWithinBudget(pending.map((p) => ({ values: p.values, changes: creations.get(p.index)! })));

  // One multi-row insert. Only a concurrent request taking a slug between the check and the
  // insert causes another round: derived slugs move on to the next free candidate, explicit
  // ones have become conflicts.
  const createdByIndex = new Map<number, WorkspaceRow>();
  for (let round = 0; pending.length > 0; round++) {
    if (round > 0) {
      const derived = pending.filter((p) => p.base !== undefined);
      for (const slug of await takenSlugs(
        tx,
        organizationId,
        derived.map((p) => p.base!),
      ))
        reserved.add(slug);
      for (const p of derived) p.values.slug = firstFreeSlug(p.base!, reserved);
    }
    const rows = await insertBatch(
      tx,
      organizationId,
      pending.map((p) => p.values),
    );
    const bySlug = new Map(rows.map((row) => [row.slug, row]));
    const retry: Planned[] = [];
    for (const p of pending) {
      const row = bySlug.get(p.values.slug);
      if (row) createdByIndex.set(p.index, row);
      else if (p.base !== undefined && round + 1 < DERIVED_SLUG_ATTEMPTS) retry.push(p);
      else failed.push({ index: p.index, code: 'CONFLICT', message: `The slug "${p.values.slug}" was taken while provisioning` });
    }
    pending = retry;
  }

  failed.sort((a, b) => a.index - b.index);
  if (mode === 'atomic' && failed.length > 0) throw conflictError(failed);
  const created = [...createdByIndex.entries()].sort(([a], [b]) => a - b);
  const rows = created.map(([, row]) => row);
  // A partial batch that created nothing changed nothing: no event.
  if (rows.length > 0)
    await recordEvents(tx, author, [
      // With the slug as inserted: a retry round may have moved a derived one on.
      ...created.map(([index, row]) =>
        workspaceEvent('workspace.created', row, { ...creations.get(index)!, slug: { from: null, to: row.slug } }),
      ),
      organizationEvent(
        'workspaces.provisioned',
        organizationId,
        changesBetween(null, { created: rows.length, failed: failed.length, template_workspace_id: input.template_workspace_id }),
      ),
    ]);
  return { created: rows.map(toWorkspace), failed };
}

/**
 * Inserts a batch in one statement whatever its size: the rows travel as one JSON parameter,
 * expanded by jsonb_to_recordset, so neither drizzle nor the server handles thousands of bound
 * parameters (a 1,000-row VALUES list spent half the call building and parsing them). A slug
 * taken meanwhile skips its row (ON CONFLICT DO NOTHING). The columns the batch does not set
 * take their schema defaults, written out here because INSERT … SELECT names every column.
 */
function insertBatch(tx: Tx, organizationId: string, batch: Array<Planned['values']>) {
  const rows = JSON.stringify(
    batch.map((v) => ({
      name: v.name,
      name_key: v.nameKey,
      slug: v.slug,
      description: v.description ?? null,
      metadata: v.metadata ?? {},
      settings: v.settings ?? {},
    })),
  );
  return tx
    .insert(workspaces)
    .select((qb) =>
      qb
        .select({
          id: sql<string>`gen_random_uuid()`.as('id'),
          organizationId: sql<string>`${organizationId}::uuid`.as('organization_id'),
          name: sql<string>`r.name`.as('name'),
          nameKey: sql<string>`r.name_key`.as('name_key'),
          slug: sql<string>`r.slug`.as('slug'),
          description: sql<string | null>`r.description`.as('description'),
          metadata: sql<Record<string, string>>`r.metadata`.as('metadata'),
          settings: sql<SettingsLayer>`r.settings`.as('settings'),
          isDefault: sql<boolean>`false`.as('is_default'),
          clonedFromId: sql<string | null>`null::uuid`.as('cloned_from_id'),
          archivedAt: sql<Date | null>`null::timestamptz`.as('archived_at'),
          version: sql<number>`1`.as('version'),
          createdAt: sql<Date>`now()`.as('created_at'),
          updatedAt: sql<Date>`now()`.as('updated_at'),
        })
        .from(
          sql`jsonb_to_recordset(${rows}::jsonb) as r(name text, name_key text, slug text, description text, metadata jsonb, settings jsonb)`,
        ),
    )
    .onConflictDoNothing({ target: [workspaces.organizationId, workspaces.slug] })
    .returning();
}

/** Runs a per-item computation; a 400 it throws names the item, like a validation issue would. */
function itemField<T>(index: number, field: string, compute: () => T): T {
  try {
    return compute();
  } catch (error) {
    if (error instanceof AppError && error.code === 'BAD_REQUEST') {
      throw invalidInput(`workspaces.${index}.${field}`, error.message);
    }
    throw error;
  }
}

function conflictError(failed: FailedItem[]): AppError {
  const sorted = [...failed].sort((a, b) => a.index - b.index);
  return new AppError('CONFLICT', `${sorted.length} item(s) conflict; nothing was created`, { failed: sorted });
}
