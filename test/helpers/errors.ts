import { expect } from 'vitest';
import { TRPCClientError } from '@trpc/client';
import type { AppRouter } from '../../src/router';
import type { ApiResponse } from './app';

/** The error assertions every suite shares: the REST error shape, validation issues, tRPC failures, and no stacks anywhere. */

/** Stack-frame text in a string: V8's "\n    at " lines, or a lone "at fn (file:1:2)". */
const STACK_FRAME = /\n\s+at |\bat [\w.<>]+ \(.*:\d+:\d+\)/;
/** Over serialized JSON: a `"stack"` key (or value), or anything like "at fn (". */
const STACK_IN_JSON = /"stack"|\bat [\w.<>]+ \(/;

/** The only keys a REST error body may have. */
const ERROR_KEYS = ['code', 'message', 'issues', 'failed'];

/** Fails when anything in `value` looks like a stack trace: a `stack` key at any depth, or stack-frame text in any string. */
export function expectNoStack(value: unknown, where = 'value'): void {
  if (typeof value === 'string') {
    expect(value, `${where} carries a stack frame`).not.toMatch(STACK_FRAME);
    return;
  }
  if (!value || typeof value !== 'object') return;
  for (const [key, inner] of Object.entries(value)) {
    expect(key, `${where} has a stack`).not.toBe('stack');
    expectNoStack(inner, `${where}.${key}`);
  }
}

/**
 * A REST error in the contract's shape: the status, `{ code, message, issues?, failed? }` with a
 * non-empty message and nothing else, and no stack (neither in the parsed body nor in the raw text).
 */
export function expectApiError(res: ApiResponse, status: number, code: string): void {
  expect({ status: res.status, code: res.body?.code }, res.text).toEqual({ status, code });
  expect(typeof res.body.message).toBe('string');
  expect(res.body.message.length).toBeGreaterThan(0);
  for (const key of Object.keys(res.body)) expect(ERROR_KEYS).toContain(key);
  expectNoStack(res.body, 'body');
  expect(res.text).not.toMatch(STACK_IN_JSON);
}

/**
 * A 400 BAD_REQUEST (see expectApiError) whose `issues` hold a path equal to `path` (given as
 * `a.b.c`), or, with `prefix`, equal to it or starting with `path.`; every issue has a string message.
 */
export function expectIssueAt(res: ApiResponse, path: string, { prefix = false }: { prefix?: boolean } = {}): void {
  expectApiError(res, 400, 'BAD_REQUEST');
  expect(Array.isArray(res.body.issues), res.text).toBe(true);
  const issues = res.body.issues as Array<{ path: string; message: unknown }>;
  const paths = issues.map((i) => i.path);
  if (prefix)
    expect(
      paths.some((p) => p === path || p.startsWith(`${path}.`)),
      res.text,
    ).toBe(true);
  else expect(paths, res.text).toContain(path);
  for (const issue of issues) expect(typeof issue.message).toBe('string');
}

/** The TRPCClientError `call` fails with (fails the test if it succeeds; rethrows anything else it throws). */
export async function trpcFailure(call: Promise<unknown>): Promise<TRPCClientError<AppRouter>> {
  let answer: unknown;
  try {
    answer = await call;
  } catch (error) {
    if (error instanceof TRPCClientError) return error as TRPCClientError<AppRouter>;
    throw error;
  }
  throw new Error(`expected the tRPC call to fail, it answered ${JSON.stringify(answer)}`);
}

/** Asserts a tRPC error's `data.code` and `data.httpStatus`, a non-empty message, and that no stack reaches the client. */
export function expectTrpcError(error: TRPCClientError<AppRouter>, httpStatus: number, code: string): void {
  expect({ code: error.data?.code, httpStatus: error.data?.httpStatus }, error.message).toEqual({ code, httpStatus });
  expect(error.message.length).toBeGreaterThan(0);
  expect(error.data).not.toHaveProperty('stack');
  expectNoStack(error.data, 'data');
  expectNoStack(error.shape, 'shape');
  expect(JSON.stringify(error.shape)).not.toMatch(STACK_IN_JSON);
}

/** trpcFailure and expectTrpcError in one: the error `call` fails with, asserted; returns it for further checks. */
export async function expectTrpcFailure(call: Promise<unknown>, httpStatus: number, code: string): Promise<TRPCClientError<AppRouter>> {
  const error = await trpcFailure(call);
  expectTrpcError(error, httpStatus, code);
  return error;
}
