import { createServer } from 'node:net';

/**
 * A port on 127.0.0.1 that nobody listens on right now (the kernel's pick), for servers a test
 * starts itself (a disposable PostgreSQL, PgBouncer) that take a port number, not port 0.
 * Another process may still take it before the server binds: callers that can, retry.
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address === 'string') throw new Error('no TCP address for a free port');
  return address.port;
}
