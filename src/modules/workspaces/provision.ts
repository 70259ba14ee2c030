import type { Tx } from '../../db/client';
import { sql } from 'drizzle-orm';
import { workspaces } from '../../db/schema';
import type { DefaultRole, SettingsLayer, Visibility } from '../../db/schema/settings-layer';
import { AppError, invalidInput, type FailedItem } from '../../lib/errors';
import { forEachInSlices, yieldToEventLoop } from '../../lib/slices';
import { DERIVED_SLUG_ATTEMPTS, SlugAllocator, slugify } from '../../lib/slug';
import { applySettingsPatch } from '../settings/resolve';
import { LockIndex, lockedError, lockViolations, type LockViolation } from '../settings/locks';
import { requireRole } from '../organizations/access';
import { changesBetween, organizationEvent, recordEvents, workspaceEvent, type Author, type Changes } from '../audit/events';
import { creationChanges, nameKey, toWorkspace, type WorkspaceRow } from './rows';
import type { ProvisionInput, ProvisionResult } from './schemas';
import { mergeMetadata, organizationRules, readableWorkspace, takenSlugs, type OrganizationRules } from './service';
import { effectiveAccessSql } from './access';
import { quotaMessage, workspaceRoom, type WorkspaceQuota } from './quota';
import { WriteBudget } from './write-budget';

/** An item to insert; `base` is set when its slug is derived from the name (and may move on). */
type Planned = { index: number; base: string | undefined; values: typeof workspaces.$inferInsert & { slug: string } };

/**
 * Creates many workspaces in one organization with a constant number of queries whatever
 * the batch size: one to find taken slugs, one multi-row insert (another round only when a
 * concurrent request took a slug meanwhile). A template's description,
 * metadata and settings overrides are each item's base. Conflicts (a slug taken in the
 * organization, or repeated within the batch) fail the whole batch in `atomic` mode (409
 * listing every one) and only those items in `partial` mode; so do items past the
 * organization's workspace quota. Derived slugs never conflict: they skip what is taken, in
 * the organization and earlier in the batch.
 *
 * The batch is planned in one pass over its items, in slices with the event loop served
 * between them, and its cost follows the items plus the slug families they touch: each
 * family's next free suffix is found once and handed out in order (SlugAllocator), locks are
 * looked up by path (LockIndex), and the write budget is counted item by item, so a batch
 * over it stops there.
 */
export async function provisionWorkspaces(tx: Tx, author: Author, input: ProvisionInput, quota: WorkspaceQuota): Promise<ProvisionResult> {
  const { organization_id: organizationId, mode } = input;
  await requireRole(tx, author.id, organizationId, 'admin');
  const template: Pick<WorkspaceRow, 'description' | 'metadata' | 'settings'> = input.template_workspace_id
    ? await readableWorkspace(tx, author.id, input.template_workspace_id)
    : { description: null, metadata: {}, settings: {} };
  const rules = await organizationRules(tx, { organizationId });
  const locks = new LockIndex(rules.locks);

  const explicit = input.workspaces.flatMap((item) => (item.slug ? [item.slug] : []));
  const derivedBases = input.workspaces.map((item) => (item.slug ? undefined : slugify(item.name, 'workspace')));
  const taken = await takenSlugs(
    tx,
    organizationId,
    derivedBases.filter((b): b is string => b !== undefined),
    explicit,
  );
  // Derived slugs avoid every explicit slug of the batch as well as the organization's.
  const slugs = new SlugAllocator(new Set([...taken, ...explicit]));
  // Reading a family of 50,000 slugs took its milliseconds; the first item may scan all of it.
  await yieldToEventLoop();

  const failed: FailedItem[] = [];
  const locked: LockViolation[] = [];
  const budget = new WriteBudget();
  const firstIndexOfSlug = new Map<string, number>();
  let pending: Planned[] = [];
  // Each workspace's creation event, computed once: the budget counts it, and it is recorded.
  const creations = new Map<number, Changes>();
  await forEachInSlices(input.workspaces, (item, index) => {
    if (item.slug) {
      const earlier = firstIndexOfSlug.get(item.slug);
      if (taken.has(item.slug)) {
        failed.push({ index, code: 'CONFLICT', message: `The slug "${item.slug}" is taken in this organization` });
        return;
      }
      if (earlier !== undefined) {
        failed.push({
          index,
          code: 'CONFLICT',
          message: `The slug "${item.slug}" is repeated within the batch (first at index ${earlier})`,
        });
        return;
      }
      firstIndexOfSlug.set(item.slug, index);
    }
    const base = derivedBases[index];
    const values = {
      organizationId,
      name: item.name,
      nameKey: nameKey(item.name),
      slug: base === undefined ? item.slug! : slugs.take(base),
      description: item.description !== undefined ? item.description : template.description,
      metadata: itemField(index, 'metadata', () => mergeMetadata(template.metadata, item.metadata ?? {})),
      settings: itemField(index, 'settings', () => applySettingsPatch(template.settings, item.settings ?? {})),
    };
    locked.push(...lockViolations(values.settings, locks, `workspaces.${index}.settings`));
    const changes = creationChanges({ ...values, isDefault: false });
    budget.add({ values, changes });
    creations.set(index, changes);
    pending.push({ index, base, values });
  });

  // A lock refuses the whole call in either mode: it is a rule of the organization, not one item's conflict.
  if (locked.length > 0) throw lockedError(locked);
  // The quota is counted last, under the organization's row lock that concurrent creates wait
  // for, so the planning above runs outside it. The items past the room are the last ones.
  const room = await workspaceRoom(tx, organizationId, quota);
  for (const p of pending.slice(room)) failed.push({ index: p.index, code: 'QUOTA_EXCEEDED', message: quotaMessage(quota) });
  pending = pending.slice(0, room);
  if (mode === 'atomic' && failed.length > 0) throw batchError(failed);

  // One multi-row insert. Only a concurrent request taking a slug between the check and the
  // insert causes another round: derived slugs move on to the next free candidate, explicit
  // ones have become conflicts.
  const createdByIndex = new Map<number, WorkspaceRow>();
  for (let round = 0; pending.length > 0; round++) {
    if (round > 0) {
      const derived = pending.filter((p) => p.base !== undefined);
      slugs.reserve(
        await takenSlugs(
          tx,
          organizationId,
          derived.map((p) => p.base!),
        ),
      );
      for (const p of derived) p.values.slug = slugs.take(p.base!);
    }
    const rows = await insertBatch(
      tx,
      organizationId,
      rules,
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
  if (mode === 'atomic' && failed.length > 0) throw batchError(failed);
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
function insertBatch(tx: Tx, organizationId: string, rules: OrganizationRules, batch: Array<Planned['values']>) {
  const access = effectiveAccessSql(rules, sql`r.settings`);
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
          effectiveVisibility: sql<Visibility>`${access.effectiveVisibility}`.as('effective_visibility'),
          effectiveDefaultRole: sql<DefaultRole>`${access.effectiveDefaultRole}`.as('effective_default_role'),
          effectiveAllowGuests: sql<boolean>`${access.effectiveAllowGuests}`.as('effective_allow_guests'),
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

/** An atomic batch's refusal, listing every failed item: 409 CONFLICT, or QUOTA_EXCEEDED when the quota is all that failed it. */
function batchError(failed: FailedItem[]): AppError {
  const sorted = [...failed].sort((a, b) => a.index - b.index);
  const overQuota = sorted.filter((f) => f.code === 'QUOTA_EXCEEDED').length;
  if (overQuota === sorted.length) {
    return new AppError('QUOTA_EXCEEDED', `${overQuota} item(s) over the quota; nothing was created. ${sorted[0]!.message}`, {
      failed: sorted,
    });
  }
  return new AppError('CONFLICT', `${sorted.length} item(s) conflict; nothing was created`, { failed: sorted });
}
