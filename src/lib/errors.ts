/**
 * The one error path. Services throw `AppError`; the tRPC layer turns it into a TRPCError
 * with the same code; both faces format it with `describeError`. Codes are tRPC code names,
 * plus a few of our own (OWN_CODES) that travel as a tRPC code of the same status.
 */
export const ERROR_STATUS = {
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_SUPPORTED: 405,
  CONFLICT: 409,
  QUOTA_EXCEEDED: 409,
  GONE: 410,
  PRECONDITION_FAILED: 412,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  UNPROCESSABLE_CONTENT: 422,
  TOO_MANY_REQUESTS: 429,
  INTERNAL_SERVER_ERROR: 500,
  SERVICE_UNAVAILABLE: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

/** Our own codes, and the tRPC code (of the same HTTP status) each is carried by. */
/** (tRPC has no 410: GONE travels as NOT_FOUND, with `data.code` GONE and `data.httpStatus` 410.) */
export const OWN_CODES = { QUOTA_EXCEEDED: 'CONFLICT', GONE: 'NOT_FOUND' } as const satisfies Partial<Record<ErrorCode, ErrorCode>>;
export type TrpcErrorCode = Exclude<ErrorCode, keyof typeof OWN_CODES>;

/** The tRPC code an error of `code` travels as. */
export const trpcCodeOf = (code: ErrorCode): TrpcErrorCode =>
  code in OWN_CODES ? OWN_CODES[code as keyof typeof OWN_CODES] : (code as TrpcErrorCode);

/** One failed item of a provisioning batch. */
export interface FailedItem {
  index: number;
  code: ErrorCode;
  message: string;
}

export interface Issue {
  path: string;
  message: string;
}

export interface ErrorDetails {
  issues?: Issue[];
  failed?: FailedItem[];
  /** Seconds, sent as `Retry-After`. */
  retryAfter?: number;
}

export class AppError extends Error {
  override name = 'AppError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: ErrorDetails = {},
  ) {
    super(message);
  }

  get status(): number {
    return ERROR_STATUS[this.code];
  }
}

/** 400 for one input a schema cannot judge, in the shape of a validation failure (`issues` names its path). */
export const invalidInput = (path: string, message: string) =>
  new AppError('BAD_REQUEST', `Invalid input: ${path}: ${message}`, { issues: [{ path, message }] });

export const notFound = (what: string) => new AppError('NOT_FOUND', `${what} not found`);

/** 401: the caller could not be identified (missing, bad, expired or revoked token; unknown user). */
export const unauthorized = (message: string) => new AppError('UNAUTHORIZED', message);

export const GENERIC_500_MESSAGE = 'Internal server error';
