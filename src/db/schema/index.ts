export * from './users';
export * from './organizations';
export * from './memberships';
export * from './workspaces';
export * from './idempotency-keys';
export * from './revoked-external-identities';
export * from './rate-limits';
export * from './audit-events';
