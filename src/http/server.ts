/**
 * The HTTP server itself, for callers that are slow or malformed before any route sees them:
 * bounded time for the headers and for the whole request (Node's default lets a stalled upload
 * hold a socket for 300 s), checked every second (Node checks every 30 s by default), and JSON
 * answers in the contract's error shape where Node rejects a request on its own (an
 * over-large header block, a timeout).
 * @module
 */
import { createServer, type RequestListener, type Server } from 'node:http';
import type { Duplex } from 'node:stream';

/** The headers must arrive within this; the whole request (body included) within REQUEST_TIMEOUT_MS. */
export const HEADERS_TIMEOUT_MS = 10_000;
export const REQUEST_TIMEOUT_MS = 30_000;
/** Idle keep-alive connections are closed after this. */
export const KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** How often incomplete requests are checked against the two timeouts. */
const TIMEOUT_CHECK_INTERVAL_MS = 1_000;

const CLIENT_ERRORS: Record<string, [number, string, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'Request Header Fields Too Large', 'The request headers are over 16 KiB'],
  ERR_HTTP_REQUEST_TIMEOUT: [
    408,
    'Request Timeout',
    `The request did not arrive in time (headers within ${HEADERS_TIMEOUT_MS / 1000} s, all of it within ${REQUEST_TIMEOUT_MS / 1000} s)`,
  ],
};

/** The server every process and test serves the app with. */
export function createHttpServer(app: RequestListener): Server {
  const server = createServer(
    {
      headersTimeout: HEADERS_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      connectionsCheckingInterval: TIMEOUT_CHECK_INTERVAL_MS,
    },
    app,
  );
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const [status, reason, message] = CLIENT_ERRORS[error.code ?? ''] ?? [400, 'Bad Request', 'The request is not valid HTTP'];
    const body = JSON.stringify({ code: 'BAD_REQUEST', message });
    socket.end(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n${body}`,
    );
  });
  return server;
}
