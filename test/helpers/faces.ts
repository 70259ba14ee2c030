import { expect } from 'vitest';
import { TRPCClientError } from '@trpc/client';
import type { AppRouter } from '../../src/router';
import type { ApiResponse, RequestOptions, TestApp } from './app';
import { expectApiError, expectTrpcError } from './errors';

/**
 * The two faces of an operation, REST and the real tRPC client, answered alike: a status and a
 * body, a failure in the REST error shape on either face (its shape checked on the way). Each
 * suite wraps these in an outcome of its own (with the `Location` header, the headers, a text
 * for failure messages).
 */

/** One answer, whatever the face: a tRPC success is reported with the REST status of its operation. */
export interface FaceOutcome {
  status: number;
  body: any;
}

/** Query parameters; an undefined value is left out. */
export type Query = Record<string, string | number | undefined>;

/** `path` with `query`'s defined entries as its query string (`path` alone when there are none). */
export function withQuery(path: string, query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined) params.set(key, String(value));
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

/** A REST request to `/api/v1${path}`; an error answer (400 and above) is checked against the contract's shape. */
export async function restRequest(app: TestApp, method: string, path: string, options: RequestOptions = {}): Promise<ApiResponse> {
  const res = await app.request(method, `/api/v1${path}`, options);
  if (res.status >= 400) {
    expect(typeof res.body?.code, res.text).toBe('string');
    expectApiError(res, res.status, res.body.code);
  }
  return res;
}

/**
 * A tRPC call's outcome: on success `successStatus` (the REST status of that operation) and the
 * answer; on failure the error is checked (data.code, data.httpStatus, a message, no stack) and
 * answered in the REST error shape, `{code, message, issues}`. Anything but a TRPCClientError is
 * rethrown.
 */
export async function trpcOutcome(successStatus: number, call: () => Promise<unknown>): Promise<FaceOutcome> {
  try {
    return { status: successStatus, body: await call() };
  } catch (error) {
    if (!(error instanceof TRPCClientError)) throw error;
    const failure = error as TRPCClientError<AppRouter>;
    expect(failure.data, failure.message).toBeTruthy();
    expectTrpcError(failure, failure.data!.httpStatus, failure.data!.code);
    return {
      status: failure.data!.httpStatus,
      body: { code: failure.data!.code, message: failure.message, issues: failure.data!.issues },
    };
  }
}

/** The outcome's body as JSON, after `what` when given: the message of a failed assertion on it. */
const explain = (outcome: FaceOutcome, what?: string) => (what ? `${what} ${JSON.stringify(outcome.body)}` : JSON.stringify(outcome.body));

/** Fails unless the outcome's status is `status`. */
export function expectOk(outcome: FaceOutcome, status: number, what?: string): void {
  expect(outcome.status, explain(outcome, what)).toBe(status);
}

/** A failure of `status` with `code`, and, when `message` is given, that message (equal to a string, or matching a RegExp). */
export function expectFailure(outcome: FaceOutcome, status: number, code: string, message?: string | RegExp, what?: string): void {
  expect({ status: outcome.status, code: outcome.body?.code }, explain(outcome, what)).toEqual({ status, code });
  if (typeof message === 'string') expect(outcome.body.message, what).toBe(message);
  else if (message !== undefined) expect(outcome.body.message, what).toMatch(message);
}
