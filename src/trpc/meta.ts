import type { ZodObject } from 'zod';
import type { OpenApiMeta, OpenApiMethod } from 'trpc-to-openapi';
import type { AppMeta } from './init';

export type Tag = 'auth' | 'organizations' | 'workspaces' | 'invitations' | 'audit';

interface RestOptions {
  tag: Tag;
  summary: string;
  /** What the operation does, its rules and its errors, for the document (every operation has one). */
  description: string;
  /**
   * A request body the server accepts (with the ids of lib/api-schemas.ts EXAMPLE_IDS standing
   * for real ones): the document's example, so Swagger UI does not pre-fill one from the schema.
   */
  requestExample?: Record<string, unknown>;
  /** 201 for creates, 204 for deletes; 200 otherwise. */
  successStatus?: 201 | 204;
  /** For a 201 that makes several resources and so sends no `Location`. */
  withoutLocation?: boolean;
  /** False for the few public operations (signup, login). */
  protect?: boolean;
  /** Error statuses this operation can answer with, for the document (`rest` adds 400, 429, 500, 503; 401 when protected; 413, 415 with a body). */
  errors: number[];
  /** Headers the operation reads (If-Match, Idempotency-Key) and sends (ETag), for the document. */
  requestHeaders?: ZodObject;
  responseHeaders?: ZodObject;
}

/** The meta of a REST operation: method, path, tag, operationId, summary and success status in one place. */
export function rest(method: OpenApiMethod, path: `/${string}`, operationId: string, options: RestOptions): OpenApiMeta<AppMeta> {
  const protect = options.protect ?? true;
  const errors = new Set(options.errors);
  if (protect) errors.add(401);
  if (method !== 'GET' && method !== 'DELETE') [413, 415].forEach((s) => errors.add(s));
  // Every operation is rate limited (per caller, or per client address for the public ones): 429.
  [400, 429, 500, 503].forEach((s) => errors.add(s));
  return {
    successStatus: options.successStatus,
    withoutLocation: options.withoutLocation,
    requestExample: options.requestExample,
    openapi: {
      method,
      path,
      operationId,
      tags: [options.tag],
      summary: options.summary,
      description: options.description,
      protect,
      errorResponses: [...errors].sort(),
      requestHeaders: options.requestHeaders,
      responseHeaders: options.responseHeaders,
    },
  };
}
