import type { DbOrTx } from './client';

/**
 * A query built once per database handle instead of once per call: drizzle's query building
 * (the SQL text, its parameters, the row mapping's field list) is done the first time and its
 * prepared query reused, with `sql.placeholder` values filled in per call. Whether PostgreSQL
 * prepares the statement is still the driver wrapper's decision (DATABASE_PREPARE). Handles
 * are held weakly, so a transaction's entry goes with the transaction.
 */
export function preparedPerDatabase<Query>(build: (db: DbOrTx) => Query): (db: DbOrTx) => Query {
  const built = new WeakMap<DbOrTx, Query>();
  return (db) => {
    let query = built.get(db);
    if (query === undefined) {
      query = build(db);
      built.set(db, query);
    }
    return query;
  };
}
