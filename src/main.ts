import { ConfigError, configWarnings, loadConfig } from './config';
import { openDatabase } from './db/open';
import { runMigrations } from './db/migrate';
import { DataDirLockedError } from './db/pglite-lock';
import { createDeps, createLogger } from './deps';
import { createApp } from './app';
import { createHttpServer } from './http/server';
import { startAuditRetention } from './modules/audit/retention';

/**
 * Shutdown: after the request deadline (by which the requests in flight have ended), closing
 * the audit retention and the database gets at most this long, so the process is gone within
 * the deadline + 1 s of the signal whatever the database's state; the other half second is
 * the exit's own margin.
 */
const SHUTDOWN_CLOSE_MS = 500;
/** Closing a healthy pool takes milliseconds: at least this is given even when the requests took all their time. */
const MIN_CLOSE_MS = 100;

/** One clear line and a non-zero exit, never a stack, for problems an operator can fix. */
function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }
  const logger = createLogger(config);
  for (const { variable, message } of configWarnings(config)) logger.warn({ variable }, message);

  let database;
  try {
    database = await openDatabase(config);
    await runMigrations(database);
  } catch (error) {
    if (error instanceof DataDirLockedError) fail(error.message);
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    fail(`Could not open the database (${config.DATABASE_URL ? 'DATABASE_URL' : `DATA_DIR=${config.DATA_DIR}`}): ${reason}`);
  }

  const deps = createDeps(config, database, logger);
  const server = createHttpServer(createApp(deps));
  const onListenError = (error: NodeJS.ErrnoException) =>
    fail(
      error.code === 'EADDRINUSE'
        ? `Port ${config.PORT} on ${config.HOST} is already in use (set PORT to another port)`
        : `Could not listen on ${config.HOST}:${config.PORT}: ${error.message}`,
    );
  server.once('error', onListenError);
  server.listen(config.PORT, config.HOST, () => {
    // Listening: a later server error (a failed accept, such as EMFILE) is logged, not fatal.
    server.off('error', onListenError);
    server.on('error', (error) => logger.error({ err: error }, 'HTTP server error'));
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : config.PORT;
    logger.info({ host: config.HOST, port, database: database.engine }, `listening on http://${config.HOST}:${port}`);
  });
  const retention = startAuditRetention(database.db, config.AUDIT_RETENTION_DAYS, logger);
  deps.loadShedder.start();

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: finishing in-flight requests');
    // The requests in flight end within the request deadline, the database down or not (they
    // answer 503 at it); what is left to close gets the rest of one second beyond it, so a
    // database that is down or silent does not hold the exit until the forced one below.
    const closeBy = Date.now() + config.DATABASE_DEADLINE_MS + SHUTDOWN_CLOSE_MS;
    const remainingMs = () => Math.max(MIN_CLOSE_MS, closeBy - Date.now());
    const forceExit = setTimeout(() => {
      logger.error('in-flight requests did not finish within 10 s; exiting');
      process.exit(1);
    }, 10_000);
    forceExit.unref();
    server.close(() => {
      deps.loadShedder.stop();
      void retention
        .stop(remainingMs())
        .then(() => database.close(remainingMs()))
        .catch((error: unknown) => logger.error({ err: error }, 'closing the database failed'))
        .finally(() => {
          logger.info('stopped');
          process.exit(0);
        });
    });
    server.closeIdleConnections();
    // A keep-alive connection whose in-flight request finishes after this point would
    // otherwise stay open until its keep-alive timeout (5 s) and hold up the exit.
    setInterval(() => server.closeIdleConnections(), 100).unref();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((error: unknown) => {
  process.stderr.write(`Failed to start: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}\n`);
  process.exit(1);
});
