/**
 * A loose stand-in for the types openapi-typescript generates from /openapi.json, so that
 * `npm run typecheck` and ESLint can read ./rest-client.ts. The real check is
 * test/typed-rest-client.test.ts: it generates the types from the served document and
 * type-checks the client against them with this file left out.
 */
declare module 'workspaces-rest-api' {
  export type paths = any;
  export type components = any;
}
