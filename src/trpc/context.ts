import type { IncomingHttpHeaders } from 'node:http';
import type { Logger } from 'pino';
import type { Config } from '../config';
import type { DatabaseHandle } from '../db/client';
import type { TokenService } from '../auth/tokens';
import type { CursorCodec } from '../lib/cursor';

/** What the app is built from; tests build it with their own database. */
export interface AppDeps {
  config: Config;
  database: DatabaseHandle;
  tokens: TokenService;
  cursors: CursorCodec;
  logger: Logger;
}

export type Face = 'rest' | 'trpc';

/** Per-request data shared by both faces. */
export interface Context {
  deps: AppDeps;
  face: Face;
  requestId: string;
  authorization: string | undefined;
  idempotencyKey: string | undefined;
  /** The raw `If-Match` header (REST); tRPC callers pass `expected_version` instead. */
  ifMatch: string | undefined;
  /** Sets a response header. REST sends them; over tRPC, whose calls may share one response, they are dropped. */
  setHeader(name: string, value: string): void;
}

const single = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);

export function createContext(
  deps: AppDeps,
  face: Face,
  requestId: string,
  headers: IncomingHttpHeaders,
  setHeader: Context['setHeader'],
): Context {
  return {
    deps,
    face,
    requestId,
    authorization: single(headers.authorization),
    idempotencyKey: single(headers['idempotency-key']),
    ifMatch: single(headers['if-match']),
    setHeader,
  };
}
