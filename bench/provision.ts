/**
 * Provisioning: sequential atomic calls of 1,000 items, alternating between an empty
 * organization and one that already holds many workspaces, timed per call. After every call
 * the bench deletes what it created (by id, on its own connection, outside the timing), so
 * each call meets the organization exactly as seeded: empty, or full.
 * @module
 */
import { median, roundTripsPerRequest, send, type Workload } from './measure';
import type { Server } from './processes';
import type { CountingProxy } from './proxy';
import type { Sql } from './seed';

export interface ProvisionTarget {
  label: string;
  organizationId: string;
}

export interface ProvisionResult {
  label: string;
  msPerCall: number[];
  p50: number;
  /** Round trips per call of 1,000 items, and of 10 (a fixed number of queries whatever the batch size). */
  roundTrips: number;
  roundTripsSmallBatch: number;
}

const path = '/api/v1/workspaces/provision';

function body(organizationId: string, templateId: string, items: number): string {
  return JSON.stringify({
    organization_id: organizationId,
    template_workspace_id: templateId,
    mode: 'atomic',
    workspaces: Array.from({ length: items }, (_, i) => ({ name: `Classroom ${i + 1}` })),
  });
}

/** Checks the answer and removes the created workspaces, so the next call sees the organization as seeded. */
async function checkAndUndo(sql: Sql, status: number, text: string, items: number): Promise<void> {
  if (status !== 201) throw new Error(`provision answered ${status} (expected 201): ${text.slice(0, 300)}`);
  const created = (JSON.parse(text) as { created: Array<{ id: string }> }).created.map((w) => w.id);
  if (created.length !== items) throw new Error(`provision created ${created.length} workspaces (expected ${items})`);
  await sql`delete from workspaces where id = any(${created}::uuid[])`;
}

export async function measureProvisioning(options: {
  sql: Sql;
  server: Server;
  counter: { server: Server; proxy: CountingProxy };
  token: string;
  templateId: string;
  targets: ProvisionTarget[];
  calls: number;
}): Promise<ProvisionResult[]> {
  const { sql, server, counter, token, templateId, targets, calls } = options;
  const times = new Map<string, number[]>(targets.map((t) => [t.label, []]));
  // One unmeasured call each first (JIT, the statements' plans), then alternate.
  for (let call = -1; call < calls; call++) {
    for (const target of targets) {
      const answer = await send(server, 'POST', path, token, body(target.organizationId, templateId, 1000));
      await checkAndUndo(sql, answer.status, answer.text, 1000);
      if (call >= 0) times.get(target.label)!.push(answer.ms);
    }
  }

  const results: ProvisionResult[] = [];
  for (const target of targets) {
    const countCalls = async (items: number) => {
      // A workload of one repeated request; each answer is checked and undone before the next.
      const requestBody = body(target.organizationId, templateId, items);
      const workload: Workload = { method: 'POST', token, expectStatus: 201, next: () => ({ path, body: requestBody }) };
      let total = 0;
      const counted = Math.min(2, calls);
      for (let i = 0; i < counted + 1; i++) {
        const trips = await roundTripsPerRequest(counter.server, counter.proxy, workload, 1, 0);
        if (i > 0) total += trips;
        // Undo through the bench's own connection (the proxy's count for this call is already read).
        await sql`delete from workspaces where organization_id = ${target.organizationId} and name like 'Classroom %'`;
      }
      return total / counted;
    };
    const msPerCall = times.get(target.label)!;
    results.push({
      label: target.label,
      msPerCall,
      p50: median(msPerCall),
      roundTrips: await countCalls(1000),
      roundTripsSmallBatch: await countCalls(10),
    });
  }
  return results;
}
