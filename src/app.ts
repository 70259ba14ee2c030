import { randomUUID } from 'node:crypto';
import cors from 'cors';
import express, { type NextFunction, type Request, type Response } from 'express';
import helmet from 'helmet';
import swaggerUi from 'swagger-ui-express';
import { TRPCError } from '@trpc/server';
import { createExpressMiddleware } from '@trpc/server/adapters/express';
import { AppError, trpcCodeOf } from './lib/errors';
import { appRouter } from './router';
import { buildOpenApiDocument } from './openapi';
import type { AppDeps } from './deps';
import { createContext, rateLimitHeaders } from './trpc/context';
import { describeError, logFailure } from './trpc/errors';
import { createRestHandler, isJsonContentType, sendError } from './http/rest-adapter';
import { SHED_RETRY_AFTER_SECONDS } from './http/load-shedding';

export const BODY_LIMIT_BYTES = 1024 * 1024;
/** Calls one tRPC HTTP request may batch. */
export const MAX_BATCH_SIZE = 20;

const REQUEST_ID_PATTERN = /^[\x21-\x7e]{1,128}$/;

/**
 * The HTTP application: REST under /api/v1, tRPC under /trpc, the OpenAPI document, its
 * Swagger UI, and health checks. Listening and shutdown are main.ts's business.
 */
export function createApp(deps: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  // Express's automatic weak ETags would contradict ours (a workspace's version).
  app.set('etag', false);
  if (deps.config.TRUST_PROXY !== false) app.set('trust proxy', deps.config.TRUST_PROXY);

  // Request ids and one structured log line per request (never headers or bodies). The
  // service's own id names the request in the audit trail and the logs: a caller's
  // X-Request-Id could be anything, another's included, so it is kept beside ours, never as it.
  app.use((req, res, next) => {
    const given = req.headers['x-request-id'];
    const clientRequestId = typeof given === 'string' && REQUEST_ID_PATTERN.test(given) ? given : undefined;
    const requestId = randomUUID();
    res.locals.requestId = requestId;
    res.locals.clientRequestId = clientRequestId;
    // X-Request-Id echoes the caller's (so its own tracing keeps working), ours when it sent none.
    res.setHeader('X-Request-Id', clientRequestId ?? requestId);
    res.setHeader('X-Service-Request-Id', requestId);
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      deps.logger.info(
        {
          requestId,
          ...(clientRequestId === undefined ? {} : { clientRequestId }),
          method: req.method,
          // The full path: req.path is relative to the mount point (/workspaces under /api/v1).
          path: req.originalUrl.split('?')[0],
          status: res.statusCode,
          ms: Number(process.hrtime.bigint() - started) / 1e6,
        },
        'request',
      );
    });
    next();
  });

  // Security headers on every response (helmet): nosniff, no framing, and a Content-Security-
  // Policy that lets /docs load only from this origin (Swagger UI needs inline styles and
  // data: images). No upgrade-insecure-requests: the service may be served over plain HTTP.
  app.use(
    helmet({
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          defaultSrc: ["'self'"],
          scriptSrc: ["'self'"],
          styleSrc: ["'self'", "'unsafe-inline'"],
          imgSrc: ["'self'", 'data:'],
          connectSrc: ["'self'"],
          fontSrc: ["'self'"],
          objectSrc: ["'none'"],
          baseUri: ["'self'"],
          formAction: ["'self'"],
          frameAncestors: ["'none'"],
        },
      },
      xFrameOptions: { action: 'deny' },
    }),
  );

  // CORS for the configured origins only; with none configured, no CORS headers at all.
  if (deps.config.CORS_ORIGINS.length > 0) {
    const corsForApi = cors({
      origin: true,
      methods: ['GET', 'POST', 'PUT', 'DELETE'],
      allowedHeaders: ['Authorization', 'Content-Type', 'Idempotency-Key', 'If-Match', 'X-Request-Id'],
      exposedHeaders: [
        'ETag',
        'Location',
        'Retry-After',
        'RateLimit-Limit',
        'RateLimit-Remaining',
        'RateLimit-Reset',
        'X-Request-Id',
        'X-Service-Request-Id',
        'Idempotent-Replayed',
      ],
      maxAge: 600,
    });
    // As browsers send them: scheme, host and port, no path or trailing slash.
    const allowed = new Set(deps.config.CORS_ORIGINS.map((origin) => new URL(origin).origin));
    // The cors package sends its other Access-Control-* headers to any origin; other origins
    // (and requests without one) get none at all.
    app.use(['/api/v1', '/trpc'], (req, res, next) => {
      res.vary('Origin');
      if (req.headers.origin !== undefined && allowed.has(req.headers.origin)) corsForApi(req, res, next);
      else next();
    });
  }

  // API answers carry tokens and tenants' data: never stored by a browser or a proxy.
  app.use(['/api/v1', '/trpc'], (_req, res, next) => {
    res.setHeader('Cache-Control', 'no-store');
    next();
  });

  // Load shedding: while the event loop is saturated, a new API request (a whole tRPC batch
  // included) is refused before any work — no body parsing, token, rate-limit count or query.
  // REST answers here; tRPC's refusal is thrown from its context (below), so its adapter sends
  // it in its own envelope through the same formatter.
  app.use('/api/v1', (_req, res, next) => {
    const refusal = deps.loadShedder.refusal();
    if (refusal) sendError(res, refusal, deps);
    else next();
  });
  app.use('/trpc', (_req, res, next) => {
    res.locals.refusal = deps.loadShedder.refusal();
    next();
  });

  // Liveness: the process answers. Never shed: a saturated process is alive, and restarting
  // it would throw away the work it is finishing.
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  // Readiness: not shedding load, and the database answers within 1 s.
  app.get('/readyz', async (_req, res) => {
    const overload = deps.loadShedder.current();
    if (overload) {
      sendError(
        res,
        new AppError('SERVICE_UNAVAILABLE', `Shedding load: ${overload.reason}`, { retryAfter: SHED_RETRY_AFTER_SECONDS }),
        deps,
      );
      return;
    }
    const readiness = await deps.database.readiness(1000);
    if (readiness === 'ready') {
      res.json({ status: 'ready' });
      return;
    }
    const why =
      readiness === 'read-only'
        ? 'The database is read-only (a standby, or a primary that refuses writes)'
        : 'The database did not answer within 1 s';
    sendError(res, new AppError('SERVICE_UNAVAILABLE', why, { retryAfter: 1 }), deps);
  });

  const document = buildOpenApiDocument();
  app.get('/openapi.json', (_req, res) => {
    res.json(document);
  });
  app.use(
    '/docs',
    swaggerUi.serve,
    swaggerUi.setup(undefined, {
      customSiteTitle: 'Workspaces API',
      // validatorUrl null: Swagger UI would otherwise send the document's URL to validator.swagger.io.
      swaggerOptions: { url: '/openapi.json', deepLinking: true, persistAuthorization: true, tryItOutEnabled: true, validatorUrl: null },
    }),
  );

  app.use(
    '/api/v1',
    express.json({ limit: BODY_LIMIT_BYTES, type: (req) => isJsonContentType(req.headers['content-type']) }),
    createRestHandler(appRouter, deps),
  );

  app.use(
    '/trpc',
    refuseEncodedBodies,
    createExpressMiddleware({
      router: appRouter,
      maxBodySize: BODY_LIMIT_BYTES,
      // tRPC counts the calls on the decoded path: a count of our own on the raw path missed
      // percent-encoded commas (`a%2Cb`), which tRPC splits as well.
      maxBatchSize: MAX_BATCH_SIZE,
      createContext: ({ req, res }) => {
        const refusal = (res.locals as { refusal?: AppError }).refusal;
        if (refusal) throw new TRPCError({ code: trpcCodeOf(refusal.code), message: refusal.message, cause: refusal });
        return createContext({
          deps,
          face: 'trpc',
          requestId: res.locals.requestId as string,
          clientRequestId: res.locals.clientRequestId as string | undefined,
          clientIp: req.ip,
          headers: req.headers,
          setHeader: () => {},
        });
      },
      onError: ({ error, ctx }) => logFailure(deps.logger, error, ctx?.requestId),
      // Calls of a batch share one response: it carries the headers any of them needs.
      responseMeta: ({ errors, ctx }) => {
        const headers: Record<string, string> = rateLimitHeaders(ctx);
        const described = errors.map((e) => describeError(e));
        const retryAfter = described.map((d) => d.retryAfter).find((seconds) => seconds !== undefined);
        if (retryAfter !== undefined) headers['Retry-After'] = String(retryAfter);
        if (described.some((d) => d.status === 401)) headers['WWW-Authenticate'] = 'Bearer';
        return { headers };
      },
    }),
  );

  app.use((req, res) => {
    sendError(res, new AppError('NOT_FOUND', `No endpoint at ${req.method} ${req.path}`), deps);
  });

  // Body-parser failures (malformed JSON, too large) and anything else thrown outside a procedure.
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    sendError(res, bodyParserError(error) ?? error, deps);
  });

  return app;
}

/** The Content-Encodings a REST body may arrive in (decompressed by the body parser, within the same 1 MiB limit). */
const ACCEPTED_ENCODINGS = 'gzip, deflate, br or identity';

/** What the body parser's failures (http-errors with a `type` and a 4xx `status`) are answered with. */
function bodyParserError(error: unknown): AppError | undefined {
  const { type, status } = (error ?? {}) as { type?: unknown; status?: unknown };
  if (type === 'entity.too.large') return new AppError('PAYLOAD_TOO_LARGE', `The request body is over ${BODY_LIMIT_BYTES} bytes (1 MiB)`);
  if (type === 'entity.parse.failed') return new AppError('BAD_REQUEST', 'The request body is not valid JSON');
  if (type === 'charset.unsupported') return new AppError('UNSUPPORTED_MEDIA_TYPE', 'The request body must be UTF-8 JSON');
  if (type === 'encoding.unsupported') {
    return new AppError('UNSUPPORTED_MEDIA_TYPE', `The request body's Content-Encoding must be ${ACCEPTED_ENCODINGS}`);
  }
  if (typeof type === 'string' && type.startsWith('request.')) return new AppError('BAD_REQUEST', 'The request body could not be read');
  // Any other failure while reading the body, such as bytes that do not decompress as their
  // Content-Encoding says: the caller's request, not a bug.
  if (status === 400)
    return new AppError('BAD_REQUEST', 'The request body could not be read (is it encoded as its Content-Encoding says?)');
  return undefined;
}

/**
 * tRPC's adapter reads bodies itself and knows no Content-Encoding: a compressed body would
 * reach it as bytes that are not JSON. Refuse it plainly instead.
 */
function refuseEncodedBodies(req: Request, res: Response, next: NextFunction): void {
  const encoding = req.headers['content-encoding'];
  if (encoding === undefined || encoding.trim().toLowerCase() === 'identity') return next();
  next(new AppError('UNSUPPORTED_MEDIA_TYPE', 'Request bodies to /trpc must not be compressed (Content-Encoding: identity)'));
}
