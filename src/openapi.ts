import { STATUS_CODES } from 'node:http';
import { generateOpenApiDocument, type OpenApiMeta, type OpenAPIObject, type OpenApiRouter } from 'trpc-to-openapi';
import { ERROR_STATUS } from './lib/errors';
import { MAX_INT, NO_NUL_PATTERN } from './lib/input';
import type { AppMeta } from './trpc/init';
import { appRouter } from './router';

type Response = { description: string; headers?: Record<string, unknown>; content?: Record<string, unknown> };
type Operation = { operationId?: string; security?: unknown[]; responses: Record<string, Response> };

type SchemaObject = NonNullable<NonNullable<OpenAPIObject['components']>['schemas']>[string];

const int32 = (minimum: number, maximum: number) => ({ type: 'integer', format: 'int32', minimum, maximum }) as const;

/** Bounds of what an error answer carries (the largest provisioning batch is 1000 items). */
const MESSAGE_MAX = 1024;
const BATCH_MAX = 1000;
const errorCode = { type: 'string', enum: Object.keys(ERROR_STATUS), description: 'The tRPC error code name' } as const;

const errorSchema: SchemaObject = {
  type: 'object',
  required: ['code', 'message'],
  properties: {
    code: errorCode,
    message: { type: 'string', maxLength: MESSAGE_MAX },
    issues: {
      type: 'array',
      description: 'Validation problems, one per invalid field',
      maxItems: BATCH_MAX,
      items: {
        type: 'object',
        required: ['path', 'message'],
        properties: {
          path: { type: 'string', maxLength: MESSAGE_MAX, description: 'dotted, like workspaces.2.name' },
          message: { type: 'string', maxLength: MESSAGE_MAX, pattern: NO_NUL_PATTERN },
        },
      },
    },
    failed: {
      type: 'array',
      description: 'Provisioning items that could not be created',
      maxItems: BATCH_MAX,
      items: {
        type: 'object',
        required: ['index', 'code', 'message'],
        properties: {
          index: int32(0, BATCH_MAX - 1),
          code: errorCode,
          message: { type: 'string', maxLength: MESSAGE_MAX, pattern: NO_NUL_PATTERN },
        },
      },
    },
  },
};

/** The rate-limit window is one minute: nothing waits longer than 60 s. */
const WINDOW_SECONDS = 60;
const LIMIT_MAX = 1_000_000;

/**
 * Headers every response may carry, declared once (components.headers) and referenced from
 * each response. The RateLimit-* names are the IETF draft's.
 */
const sharedHeaders = {
  'RateLimit-Limit': {
    description:
      'Requests allowed per minute: RATE_LIMIT_PER_MINUTE per authenticated caller, AUTH_RATE_LIMIT_PER_MINUTE per client address for signup and login. Sent on every answer that counted against a limit: not when that limit is 0 (off), nor on answers given before the call was counted (a missing or invalid token, a body that is too large or not JSON).',
    schema: int32(1, LIMIT_MAX),
  },
  'RateLimit-Remaining': { description: 'Requests left in the current window', schema: int32(0, LIMIT_MAX) },
  'RateLimit-Reset': { description: 'Seconds until the window resets', schema: int32(1, WINDOW_SECONDS) },
  'Access-Control-Allow-Origin': {
    description:
      "The request's Origin, echoed when it is one of CORS_ORIGINS (none by default); absent otherwise, so browsers on other origins cannot read the answer.",
    schema: { type: 'string', format: 'uri', maxLength: 2048 },
  },
  'Retry-After': { description: 'Seconds to wait before retrying', schema: int32(1, WINDOW_SECONDS) },
} as const;
type HeaderName = keyof typeof sharedHeaders;

const ref = (name: HeaderName) => ({ $ref: `#/components/headers/${name}` });
/** On every response: the rate-limit state and CORS (both optional; see their descriptions). */
const everyResponse = {
  'RateLimit-Limit': ref('RateLimit-Limit'),
  'RateLimit-Remaining': ref('RateLimit-Remaining'),
  'RateLimit-Reset': ref('RateLimit-Reset'),
  'Access-Control-Allow-Origin': ref('Access-Control-Allow-Origin'),
};
/** A 429 always says when to retry and how the limit stands. */
const required = (name: HeaderName) => ({ ...sharedHeaders[name], required: true });
const tooManyRequests = {
  'Retry-After': required('Retry-After'),
  'RateLimit-Limit': required('RateLimit-Limit'),
  'RateLimit-Remaining': required('RateLimit-Remaining'),
  'RateLimit-Reset': required('RateLimit-Reset'),
  'Access-Control-Allow-Origin': ref('Access-Control-Allow-Origin'),
};
const location = {
  description: 'Path of the created resource',
  schema: { type: 'string', format: 'uri-reference', maxLength: 255, example: '/api/v1/workspaces/0b6f2c5e-6c1b-4bf0-9a51-3c8f1f2a9d10' },
};

const DESCRIPTION = [
  'Multi-tenant workspace management. Every operation except signup and login needs `Authorization: Bearer <access_token>` (get one from /auth/signup or /auth/login, then use Authorize).',
  '',
  '**Rate limits.** Every operation is limited per minute: per authenticated caller (`RATE_LIMIT_PER_MINUTE`, default 1200), and per client address for signup and login (`AUTH_RATE_LIMIT_PER_MINUTE`, default 20). Over the limit the answer is 429 `TOO_MANY_REQUESTS` with `Retry-After` (seconds); answers that counted against a limit carry `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (seconds until the window resets).',
  '',
  '**CORS.** Browsers may call from the origins listed in `CORS_ORIGINS` (none by default): only their answers carry `Access-Control-Allow-Origin`.',
].join('\n');

const bearerAuth = {
  type: 'http',
  scheme: 'bearer',
  bearerFormat: 'JWT',
  description:
    "A JWS access token, checked as RFC8725 (JWT best current practices) asks: the algorithm is pinned per key (HS256 for this service's own tokens; RS256/ES256 only from the configured identity provider; never `none`), `iss`, `aud`, `sub`, `iat` and `exp` are required and checked, and the lifetime is capped (TOKEN_MAX_LIFETIME).",
} as const;

/**
 * The OpenAPI document of every REST operation, from the router's meta, with what the
 * generator cannot express: the real success status (201/204), `Location` on creates, one
 * error schema `{ code, message, issues?, failed? }` for every error response, the 429 and
 * rate-limit and CORS headers of every operation, open security on the public operations,
 * and integer formats and UUID lengths throughout.
 */
export function buildOpenApiDocument(): OpenAPIObject {
  const document = generateOpenApiDocument(appRouter as unknown as OpenApiRouter, {
    title: 'Workspaces API',
    version: '1.0.0',
    description: DESCRIPTION,
    baseUrl: '/api/v1',
    tags: ['auth', 'organizations', 'workspaces'],
    securitySchemes: { bearerAuth },
  });
  const metaByOperation = new Map<string, OpenApiMeta<AppMeta>>();
  for (const procedure of Object.values(appRouter._def.procedures)) {
    const meta = (procedure as unknown as { _def: { meta?: OpenApiMeta<AppMeta> } })._def.meta;
    if (meta?.openapi?.operationId) metaByOperation.set(meta.openapi.operationId, meta);
  }
  for (const pathItem of Object.values(document.paths ?? {})) {
    for (const operation of Object.values(pathItem as Record<string, Operation>)) {
      const meta = metaByOperation.get(operation.operationId ?? '') ?? {};
      // Signup and login are open: said explicitly, so no global default can make them protected.
      if (meta.openapi?.protect === false) operation.security = [];
      fixResponses(operation, meta);
    }
  }
  // The generator's per-code error schemas are replaced by the one Error schema above.
  const schemas = Object.fromEntries(Object.entries(document.components?.schemas ?? {}).filter(([name]) => !name.startsWith('error.')));
  document.components = { ...document.components, schemas: { ...schemas, Error: errorSchema }, headers: sharedHeaders };
  boundSchemas(document);
  return document;
}

function fixResponses(operation: Operation, { successStatus, withoutLocation }: AppMeta): void {
  const status = successStatus ?? 200;
  const responses: Operation['responses'] = {};
  for (const [code, response] of Object.entries(operation.responses)) {
    if (code === '200') {
      if (status === 204) responses['204'] = { description: 'No content', headers: { ...everyResponse } };
      else if (status === 201) {
        responses['201'] = {
          ...response,
          description: 'Created',
          headers: { ...response.headers, ...(withoutLocation ? {} : { Location: location }), ...everyResponse },
        };
      } else responses['200'] = { ...response, headers: { ...response.headers, ...everyResponse } };
      continue;
    }
    responses[code] = {
      description: STATUS_CODES[Number(code)] ?? 'Error',
      headers:
        code === '429'
          ? tooManyRequests
          : { ...(['409', '503'].includes(code) ? { 'Retry-After': ref('Retry-After') } : {}), ...everyResponse },
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
    };
  }
  operation.responses = responses;
}

/**
 * What the schemas imply but the generator does not write: every integer of this API fits 32
 * bits (inputs are bounded by 2^31 - 1, outputs are database `integer`s), and a UUID is 36
 * characters. Walks the whole document, paths and components.
 */
function boundSchemas(node: unknown): void {
  if (Array.isArray(node)) {
    for (const item of node) boundSchemas(item);
    return;
  }
  if (typeof node !== 'object' || node === null) return;
  const schema = node as Record<string, unknown>;
  const types = Array.isArray(schema.type) ? (schema.type as unknown[]) : [schema.type];
  if (types.includes('integer') && schema.format === undefined) {
    const fits =
      typeof schema.minimum === 'number' &&
      schema.minimum >= -MAX_INT - 1 &&
      typeof schema.maximum === 'number' &&
      schema.maximum <= MAX_INT;
    schema.format = fits ? 'int32' : 'int64';
  }
  if (types.includes('string') && schema.format === 'uuid' && schema.maxLength === undefined) schema.maxLength = 36;
  for (const value of Object.values(schema)) boundSchemas(value);
}
