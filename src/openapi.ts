import { STATUS_CODES } from 'node:http';
import { generateOpenApiDocument, type OpenApiMeta, type OpenAPIObject, type OpenApiRouter } from 'trpc-to-openapi';
import { ERROR_STATUS } from './lib/errors';
import type { AppMeta } from './trpc/init';
import { appRouter } from './router';

type Operation = {
  operationId?: string;
  responses: Record<string, { description: string; headers?: Record<string, unknown>; content?: Record<string, unknown> }>;
};

type SchemaObject = NonNullable<NonNullable<OpenAPIObject['components']>['schemas']>[string];

const errorSchema: SchemaObject = {
  type: 'object',
  required: ['code', 'message'],
  properties: {
    code: { type: 'string', enum: Object.keys(ERROR_STATUS), description: 'The tRPC error code name' },
    message: { type: 'string' },
    issues: {
      type: 'array',
      description: 'Validation problems, one per invalid field',
      items: { type: 'object', required: ['path', 'message'], properties: { path: { type: 'string' }, message: { type: 'string' } } },
    },
    failed: {
      type: 'array',
      description: 'Provisioning items that could not be created',
      items: {
        type: 'object',
        required: ['index', 'code', 'message'],
        properties: { index: { type: 'integer' }, code: { type: 'string' }, message: { type: 'string' } },
      },
    },
  },
};

const retryAfter = { description: 'Seconds to wait before retrying', schema: { type: 'integer' } };
const location = { description: 'Path of the created resource', schema: { type: 'string' } };

/**
 * The OpenAPI document of every REST operation, from the router's meta, with what the
 * generator cannot express: the real success status (201/204), `Location` on creates, and
 * one error schema `{ code, message, issues?, failed? }` for every error response.
 */
export function buildOpenApiDocument(): OpenAPIObject {
  const document = generateOpenApiDocument(appRouter as unknown as OpenApiRouter, {
    title: 'Workspaces API',
    version: '1.0.0',
    description:
      'Multi-tenant workspace management. Every operation except signup and login needs `Authorization: Bearer <access_token>` (get one from /auth/signup or /auth/login, then use Authorize).',
    baseUrl: '/api/v1',
    tags: ['auth', 'organizations', 'workspaces'],
    securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
  });
  const metaByOperation = new Map<string, AppMeta>();
  for (const procedure of Object.values(appRouter._def.procedures)) {
    const meta = (procedure as unknown as { _def: { meta?: OpenApiMeta<AppMeta> } })._def.meta;
    if (meta?.openapi?.operationId) metaByOperation.set(meta.openapi.operationId, meta);
  }
  for (const pathItem of Object.values(document.paths ?? {})) {
    for (const operation of Object.values(pathItem as Record<string, Operation>)) {
      fixResponses(operation, metaByOperation.get(operation.operationId ?? '') ?? {});
    }
  }
  // The generator's per-code error schemas are replaced by the one Error schema above.
  const schemas = Object.fromEntries(Object.entries(document.components?.schemas ?? {}).filter(([name]) => !name.startsWith('error.')));
  document.components = { ...document.components, schemas: { ...schemas, Error: errorSchema } };
  return document;
}

function fixResponses(operation: Operation, { successStatus, withoutLocation }: AppMeta): void {
  const status = successStatus ?? 200;
  const responses: Operation['responses'] = {};
  for (const [code, response] of Object.entries(operation.responses)) {
    if (code === '200') {
      if (status === 204) responses['204'] = { description: 'No content' };
      else if (status === 201) {
        responses['201'] = {
          ...response,
          description: 'Created',
          headers: withoutLocation ? response.headers : { ...response.headers, Location: location },
        };
      } else responses['200'] = response;
      continue;
    }
    responses[code] = {
      description: STATUS_CODES[Number(code)] ?? 'Error',
      ...(['409', '429', '503'].includes(code) ? { headers: { 'Retry-After': retryAfter } } : {}),
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
    };
  }
  operation.responses = responses;
}
