/**
 * Serves the router's REST operations (those with `meta.openapi`) under /api/v1.
 *
 * Why our own adapter rather than trpc-to-openapi's: that one coerces every input, bodies
 * included and permanently (`"false"` becomes `true`), overwrites statuses, and shapes
 * errors with tRPC's `data` block. This one passes inputs through untouched (query numbers
 * use `z.coerce` on purpose), answers the meta's success status, and formats errors with
 * the same `describeError` as the tRPC face. trpc-to-openapi still generates the document
 * from the same meta, so routes and document cannot drift apart.
 * @module
 */
import type { Request, Response } from 'express';
import {
  forEachOpenApiProcedure,
  getInputOutputParsers,
  instanceofZodTypeLikeVoid,
  type OpenApiMeta,
  type OpenApiMethod,
} from 'trpc-to-openapi';
import { AppError } from '../lib/errors';
import type { AppDeps } from '../deps';
import { createContext, rateLimitHeaders, type Context } from '../trpc/context';
import { describeError, logFailure } from '../trpc/errors';
import type { AppMeta } from '../trpc/init';
import type { AppRouter } from '../router';

/** One REST operation: its method and path template, and the procedure it calls. */
interface Route {
  method: OpenApiMethod;
  template: string;
  pattern: RegExp;
  params: string[];
  procedurePath: string;
  successStatus: number;
  takesInput: boolean;
}

const BODY_METHODS = new Set<string>(['POST', 'PUT', 'PATCH']);

function compileRoute(template: string): { pattern: RegExp; params: string[] } {
  const params: string[] = [];
  const source = template
    .split('/')
    .map((segment) => {
      const param = /^\{(\w+)\}$/.exec(segment);
      if (!param) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      params.push(param[1]!);
      return '([^/]+)';
    })
    .join('/');
  return { pattern: new RegExp(`^${source}/?$`), params };
}

function collectRoutes(appRouter: AppRouter): Route[] {
  const routes: Route[] = [];
  forEachOpenApiProcedure(appRouter._def.procedures, ({ path, procedure, meta }) => {
    const { openapi, successStatus } = meta as OpenApiMeta<AppMeta>;
    if (!openapi) return;
    const { inputParser, hasInputsDefined } = getInputOutputParsers(procedure);
    routes.push({
      method: openapi.method,
      template: openapi.path,
      ...compileRoute(openapi.path),
      procedurePath: path,
      successStatus: successStatus ?? 200,
      takesInput: hasInputsDefined && !instanceofZodTypeLikeVoid(inputParser),
    });
  });
  // Fixed segments beat parameters (`/workspaces/provision` before `/workspaces/{id}`).
  return routes.sort((a, b) => a.params.length - b.params.length);
}

function queryInput(url: URL): Record<string, string> {
  const input: Record<string, string> = {};
  for (const [key, value] of url.searchParams) {
    if (Object.hasOwn(input, key)) throw new AppError('BAD_REQUEST', `Query parameter "${key}" is given more than once`);
    // Defined, not assigned: `input.__proto__ = v` would set the prototype and drop the key,
    // where an own key reaches validation and is refused as the unknown parameter it is.
    Object.defineProperty(input, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return input;
}

function decodePathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new AppError('BAD_REQUEST', 'The path is not valid percent-encoding');
  }
}

/** A parsed JSON body other than nothing or `{}`. */
const hasContent = (body: unknown) =>
  body !== undefined && !(typeof body === 'object' && body !== null && !Array.isArray(body) && Object.keys(body).length === 0);

export const isJsonContentType = (value: string | undefined) => !!value && /^application\/json\s*(;|$)/i.test(value.trim());

/** A request that carries no body at all (no Content-Length, or 0, and no chunked transfer). */
const isBodyless = (req: Request) => !req.headers['transfer-encoding'] && (req.headers['content-length'] ?? '0') === '0';

/** The JSON object a body method was sent; no body at all is `{}` (archive, restore), whatever its Content-Type. */
function bodyInput(req: Request): Record<string, unknown> {
  if (isBodyless(req)) return {};
  if (!isJsonContentType(req.headers['content-type'])) {
    throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'The request body must be JSON (Content-Type: application/json)');
  }
  const body: unknown = req.body;
  if (body === undefined) return {};
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new AppError('BAD_REQUEST', 'The request body must be a JSON object');
  }
  return body as Record<string, unknown>;
}

export function createRestHandler(appRouter: AppRouter, deps: AppDeps) {
  const routes = collectRoutes(appRouter);
  const createCaller = appRouter.createCaller;

  return async function restHandler(req: Request, res: Response): Promise<void> {
    const headers = new Map<string, string>();
    let ctx: Context | undefined;
    try {
      const url = new URL(req.originalUrl, 'http://localhost');
      const path = url.pathname.replace(/^\/api\/v1/, '') || '/';
      const candidates = routes.filter((r) => r.pattern.test(path));
      if (candidates.length === 0) throw new AppError('NOT_FOUND', `No endpoint at ${req.method} ${url.pathname}`);
      const route = candidates.find((r) => r.method === req.method);
      if (!route) {
        res.setHeader('Allow', [...new Set(candidates.map((r) => r.method))].join(', '));
        throw new AppError('METHOD_NOT_SUPPORTED', `${req.method} is not supported on ${url.pathname}`);
      }

      const takesBody = route.takesInput && BODY_METHODS.has(route.method);
      if (!takesBody && hasContent(req.body)) {
        throw new AppError('BAD_REQUEST', `${route.method} ${route.template} takes no request body`);
      }
      let input: Record<string, unknown> | undefined;
      if (route.takesInput) {
        input = takesBody ? { ...bodyInput(req) } : queryInput(url);
        const values = route.pattern.exec(path)!.slice(1);
        route.params.forEach((name, i) => {
          if (Object.hasOwn(input!, name)) throw new AppError('BAD_REQUEST', `"${name}" belongs in the path, not in the request`);
          input![name] = decodePathSegment(values[i]!);
        });
      }

      ctx = createContext({
        deps,
        face: 'rest',
        requestId: res.locals.requestId as string,
        clientRequestId: res.locals.clientRequestId as string | undefined,
        clientIp: req.ip,
        headers: req.headers,
        setHeader: (name, value) => headers.set(name, value),
      });
      const caller = createCaller(ctx) as unknown as Record<string, unknown>;
      const procedure = route.procedurePath.split('.').reduce<unknown>((node, key) => (node as Record<string, unknown>)[key], caller) as (
        input: unknown,
      ) => Promise<unknown>;
      const data = await procedure(input);

      for (const [name, value] of headers) res.setHeader(name, value);
      res.set(rateLimitHeaders(ctx));
      res.status(route.successStatus);
      if (route.successStatus === 204) res.end();
      else res.json(data);
    } catch (error) {
      res.set(rateLimitHeaders(ctx));
      sendError(res, error, deps);
    }
  };
}

/** Sends any error in the contract's shape; logs the unexpected ones with their stack. */
export function sendError(res: Response, error: unknown, deps: Pick<AppDeps, 'logger'>): void {
  const { status, body, retryAfter } = describeError(error);
  logFailure(deps.logger, error, res.locals.requestId);
  if (retryAfter !== undefined) res.setHeader('Retry-After', String(retryAfter));
  if (status === 401) res.setHeader('WWW-Authenticate', 'Bearer');
  res.status(status).json(body);
}
