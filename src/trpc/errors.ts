import { TRPCError } from '@trpc/server';
import type { Logger } from 'pino';
import { isDatabaseUnavailable, isForeignKeyViolation, pgErrorCode, unavailableState } from '../db/errors';
import { AppError, ERROR_STATUS, GENERIC_500_MESSAGE, type ErrorCode, type FailedItem, type Issue } from '../lib/errors';

/** The facts every error answer carries, on both faces. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
  issues?: Issue[];
  failed?: FailedItem[];
}

export interface DescribedError {
  status: number;
  body: ErrorBody;
  retryAfter?: number;
}

type RawIssue = { path?: ReadonlyArray<PropertyKey | { key: PropertyKey }>; message: string; code?: string; keys?: string[] };

function issuePath(path: RawIssue['path']): string {
  return (path ?? []).map((segment) => String(typeof segment === 'object' ? segment.key : segment)).join('.');
}

/** Bounds on what an error answer echoes back, so a body of many odd keys cannot make it larger still. */
const MAX_ISSUES = 100;
const MAX_ISSUE_TEXT = 1024;
const bounded = (text: string) => (text.length > MAX_ISSUE_TEXT ? `${text.slice(0, MAX_ISSUE_TEXT - 1)}…` : text);

function validationIssues(cause: unknown): Issue[] | undefined {
  const issues = (cause as { issues?: unknown } | undefined)?.issues;
  if (!Array.isArray(issues)) return undefined;
  return (issues as RawIssue[])
    .flatMap((i) =>
      // One issue per unknown field, named by its own path.
      i.code === 'unrecognized_keys' && i.keys
        ? i.keys.map((key) => ({ path: issuePath([...(i.path ?? []), key]), message: 'Unknown field' }))
        : [{ path: issuePath(i.path), message: i.message }],
    )
    .slice(0, MAX_ISSUES)
    .map((issue) => ({ path: bounded(issue.path), message: bounded(issue.message) }));
}

/**
 * Turns anything thrown into what is sent: the status, `{ code, message, issues?, failed? }`
 * and Retry-After. Unexpected errors keep a generic message; nothing carries a stack or SQL.
 */
export function describeError(error: unknown): DescribedError {
  const cause = error instanceof TRPCError ? error.cause : error;
  if (cause instanceof AppError) {
    const body: ErrorBody = { code: cause.code, message: cause.message };
    if (cause.details.issues) body.issues = cause.details.issues;
    if (cause.details.failed) body.failed = cause.details.failed;
    return { status: cause.status, body, retryAfter: cause.details.retryAfter };
  }
  if (isForeignKeyViolation(cause)) {
    return { status: 404, body: { code: 'NOT_FOUND', message: 'Something this request refers to no longer exists' } };
  }
  if (isDatabaseUnavailable(cause)) {
    return {
      status: 503,
      body: { code: 'SERVICE_UNAVAILABLE', message: 'The database is unavailable; try again shortly' },
      retryAfter: 1,
    };
  }
  if (error instanceof TRPCError) {
    // tRPC's own codes outside the contract's table: a parse error is the caller's 400, the rest are ours.
    const trpcCode = error.code === 'PARSE_ERROR' ? 'BAD_REQUEST' : error.code;
    const code = (trpcCode in ERROR_STATUS ? trpcCode : 'INTERNAL_SERVER_ERROR') as ErrorCode;
    if (code === 'INTERNAL_SERVER_ERROR') return internal();
    // The tRPC adapter's JSON.parse failure: its message quotes the input back.
    if (cause instanceof SyntaxError) return { status: 400, body: { code: 'BAD_REQUEST', message: 'The input is not valid JSON' } };
    const issues = code === 'BAD_REQUEST' ? validationIssues(cause) : undefined;
    if (issues) {
      const first = issues[0];
      const message = first ? `Invalid input: ${first.path ? `${first.path}: ` : ''}${first.message}` : 'Invalid input';
      return { status: 400, body: { code, message, issues } };
    }
    return { status: ERROR_STATUS[code], body: { code, message: error.message } };
  }
  return internal();
}

const internal = (): DescribedError => ({ status: 500, body: { code: 'INTERNAL_SERVER_ERROR', message: GENERIC_500_MESSAGE } });

/**
 * An unexpected error as it may be logged: names, messages and stacks of the cause chain,
 * without the query parameters drizzle puts into its messages (they may hold user data).
 */
export function errorForLog(error: unknown): Record<string, unknown> {
  const chain: Array<Record<string, unknown>> = [];
  let current: unknown = error;
  for (let depth = 0; current instanceof Error && depth < 5; depth++) {
    // drizzle ends its messages with "\nparams: …", which may itself span lines.
    const message = current.message.replace(/\nparams: [\s\S]*$/, '');
    const frames = current.stack?.split('\n').filter((line) => /^\s+at /.test(line));
    chain.push({ name: current.name, message, code: (current as { code?: unknown }).code, stack: frames });
    current = current.cause;
  }
  return { chain };
}

/**
 * Logs a failed call once: a bug (500) at error level with its stack; the database being
 * unavailable (503) as a warning naming the driver's code or SQLSTATE and what it means, since an outage answers every
 * request with it; the caller's own errors (4xx) not at all, nor a request refused while the
 * service sheds load (the shedder logs when that starts and stops).
 */
export function logFailure(logger: Logger, error: unknown, requestId: unknown): void {
  const { status } = describeError(error);
  const cause = error instanceof TRPCError ? error.cause : error;
  if (status === 500) logger.error({ error: errorForLog(error), requestId }, 'unexpected error');
  else if (status === 503 && isDatabaseUnavailable(cause)) {
    const code = pgErrorCode(cause);
    logger.warn({ code, state: unavailableState(code), requestId }, 'database unavailable');
  }
}
