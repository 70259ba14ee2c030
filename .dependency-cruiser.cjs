/**
 * The layers of src/ point one way: http → trpc → modules → lib → db → config
 * (the process entry, app, deps and router at the top compose them). See docs/ARCHITECTURE.md.
 * Module routers (src/modules/<name>/router.ts) are procedures: they sit with trpc.
 */
const ROOT = '^src/(main|app|deps|router|openapi)\\.ts$';
const SERVICES = '^src/modules/[^/]+/(?![^/]*router\\.ts$)[^/]+\\.ts$';

module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'Import cycles make the layers meaningless.', from: {}, to: { circular: true } },
    {
      name: 'no-test-code-in-src',
      severity: 'error',
      comment: 'The service never depends on its tests.',
      from: { path: '^src/' },
      to: { path: '^test/' },
    },
    {
      name: 'trpc-not-to-modules',
      severity: 'error',
      comment: 'tRPC plumbing knows no module: modules plug into it (the actor resolver arrives through the deps).',
      from: { path: '^src/trpc/' },
      to: { path: '^src/(modules|http)/' },
    },
    {
      name: 'trpc-not-to-root',
      severity: 'error',
      comment: 'tRPC plumbing may name the AppDeps type, never import the composition root itself.',
      from: { path: '^src/trpc/' },
      to: { path: ROOT, dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'services-not-to-transport',
      severity: 'error',
      comment:
        'Services, schemas and rules know nothing of HTTP or tRPC; only a module router.ts (or a sub-router, *-router.ts) holds procedures.',
      from: { path: SERVICES },
      to: { path: ['^src/(trpc|http)/', ROOT] },
    },
    {
      name: 'modules-not-to-root',
      severity: 'error',
      comment: 'Modules are composed by the root, never the other way.',
      from: { path: '^src/modules/' },
      to: { path: ROOT },
    },
    {
      name: 'lib-and-auth-below-modules',
      severity: 'error',
      comment: 'lib/ and auth/ are shared pieces below the modules.',
      from: { path: '^src/(lib|auth)/' },
      to: { path: ['^src/(modules|trpc|http)/', ROOT] },
    },
    {
      name: 'db-below-lib',
      severity: 'error',
      comment: 'db/ holds the schema and the client; it knows no rule above it.',
      from: { path: '^src/db/' },
      to: { path: ['^src/(modules|trpc|http|lib|auth)/', ROOT] },
    },
    {
      name: 'config-at-the-bottom',
      severity: 'error',
      comment: 'The configuration is parsed from the environment alone.',
      from: { path: '^src/config\\.ts$' },
      to: { path: '^src/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] },
  },
};
