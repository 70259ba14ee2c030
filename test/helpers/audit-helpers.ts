import type { TestApp } from './app';
import { isoSql } from './sql';

/** Audit events as the database stores them, read back in the shape the API answers them in (README, Audit events). */

/** One field's change in an event's `changes`. */
export interface Change {
  from: unknown;
  to: unknown;
}
export type Changes = Record<string, Change>;

/** An event as the API answers it. */
export interface ApiEvent {
  id: string;
  organization_id: string;
  workspace_id: string | null;
  actor: { id: string; email: string };
  action: string;
  target_type: string;
  target_id: string;
  changes: Changes;
  request_id: string;
  client_request_id: string | null;
  created_at: string;
}

/** An `audit_events` row as stored (timestamps rendered the API's way): the actor in two columns. */
type EventRow = Omit<ApiEvent, 'actor'> & { actor_id: string; actor_email: string };

const EVENT_COLUMNS = `id, organization_id, workspace_id, actor_id, actor_email, action, target_type, target_id, changes, request_id,
  client_request_id, ${isoSql('created_at')} as created_at`;

/** A stored row in the API's shape. */
const asApi = (r: EventRow): ApiEvent => ({
  id: r.id,
  organization_id: r.organization_id,
  workspace_id: r.workspace_id,
  actor: { id: r.actor_id, email: r.actor_email },
  action: r.action,
  target_type: r.target_type,
  target_id: r.target_id,
  changes: r.changes,
  request_id: r.request_id,
  client_request_id: r.client_request_id,
  created_at: r.created_at,
});

/** `newest first` is the lists' order (created_at, then id, descending); `oldest first` the reverse. */
export type EventOrder = 'newest first' | 'oldest first';

const ORDER_BY: Record<EventOrder, string> = {
  'newest first': 'created_at desc, id desc',
  'oldest first': 'created_at, id',
};

/** The stored events matching a SQL condition (`where`, with `params` as $1, $2, …) in the API's shape, in `order` (the lists' by default). */
export async function storedEvents(
  app: TestApp,
  where: string,
  params: unknown[],
  order: EventOrder = 'newest first',
): Promise<ApiEvent[]> {
  const rows = await app.query<EventRow>(`select ${EVENT_COLUMNS} from audit_events where ${where} order by ${ORDER_BY[order]}`, params);
  return rows.map(asApi);
}
