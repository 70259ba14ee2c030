import { AppError } from './errors';

/** A workspace's strong ETag: its version, quoted. */
export const etagFor = (version: number) => `"${version}"`;

/**
 * The version a conditional write expects, from `If-Match` (REST) and/or `expected_version`
 * (the input; tRPC callers' only way, since batched calls share one request's headers).
 * `*` and no condition both mean "any version". Both given and different is a 400.
 */
export function expectedVersion(ifMatch: string | undefined, fromInput: number | undefined): number | undefined {
  let fromHeader: number | undefined;
  if (ifMatch !== undefined && ifMatch.trim() !== '*') {
    const match = /^"(\d{1,10})"$/.exec(ifMatch.trim());
    if (!match) throw new AppError('BAD_REQUEST', 'If-Match must be one strong ETag such as "3", or *');
    fromHeader = Number(match[1]);
  }
  if (fromHeader !== undefined && fromInput !== undefined && fromHeader !== fromInput) {
    throw new AppError('BAD_REQUEST', 'If-Match and expected_version disagree');
  }
  return fromInput ?? fromHeader;
}

/** 412 when a conditional write's expected version is not the current one. */
export function assertVersion(current: number, expected: number | undefined): void {
  if (expected !== undefined && expected !== current) {
    throw new AppError('PRECONDITION_FAILED', `The workspace is at version ${current}, not ${expected}; read it again and retry`);
  }
}
