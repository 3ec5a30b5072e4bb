#!/usr/bin/env node
/** Command-line entry: load the config, start pgmux, stop gracefully on SIGTERM/SIGINT. */
import { ConfigError, describeSources, HELP_TEXT, loadConfig, parseCli, runImportCommand } from './config/index.js';
import { Pgmux, VERSION } from './pgmux.js';

/** Signals closer together than this are one request to stop (see onSignal). */
const DUPLICATE_SIGNAL_MS = 300;

async function main(): Promise<number> {
  let loaded;
  // `pgmux import pgbouncer.ini [-o out.yaml]` converts a PgBouncer configuration and exits.
  if (process.argv[2] === 'import') return runImportCommand(process.argv.slice(3));
  try {
    const cli = parseCli(process.argv.slice(2));
    if (cli.help) {
      process.stdout.write(HELP_TEXT);
      return 0;
    }
    if (cli.version) {
      process.stdout.write(`pgmux ${VERSION}\n`);
      return 0;
    }
    loaded = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`pgmux: invalid configuration: ${err.message}\n`);
      return 2;
    }
    throw err;
  }

  let pgmux: Pgmux;
  try {
    pgmux = new Pgmux(loaded.config, undefined, {
      // RELOAD and SIGHUP read the same file, environment and flags again.
      reloadConfig: () => loadConfig().config,
      onShutdown: () => {
        pgmux.log.flush?.();
        process.exit(0);
      },
    });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`pgmux: invalid configuration: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  // Names only: which file, variables and flags configured this process (never their values).
  pgmux.log.info({ configFile: loaded.sources.file, env: loaded.sources.env, flags: loaded.sources.flags }, describeSources(loaded.sources));
  // Settings of a pgbouncer.ini (or PGBOUNCER_* variables) that pgmux does not support, and the like.
  for (const notice of loaded.notices) pgmux.log[notice.level](notice.fields, notice.message);
  if (Object.keys(loaded.config.databases).length === 0) {
    pgmux.log.warn('no databases configured: set DATABASE_URL or add databases: to the config file');
  }
  let firstSignalAt = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    const now = Date.now();
    // Under `npm start` a Ctrl-C reaches pgmux twice at once (from the terminal, and forwarded by npm): that is
    // one request to stop. A second signal a moment later means "now".
    if (firstSignalAt !== 0 && now - firstSignalAt < DUPLICATE_SIGNAL_MS) return;
    if (firstSignalAt !== 0) {
      pgmux.log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    // SIGTERM (docker stop, systemd, Kubernetes): transactions get up to shutdown_timeout to finish.
    // SIGINT is the fast variant: open transactions are cut now, and PostgreSQL rolls them back.
    firstSignalAt = now;
    const timeoutMs = signal === 'SIGINT' ? 0 : pgmux.config.shutdown_timeout;
    pgmux.log.info({ signal, timeoutMs }, 'signal received: draining');
    void pgmux.stop(timeoutMs).then(() => {
      pgmux.log.flush?.();
      process.exit(0);
    });
  };
  // Before start(): the client port accepts connections before the other listeners are up, and a SIGTERM in that
  // moment must drain as any other (it killed the process before the handlers were there). stop() ends with exit.
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // Started by `npm start`: if npm goes away without passing a signal on (SIGKILL, a closed terminal), the
  // process must not live on as an orphan holding the port. Stop as on SIGTERM once the parent has changed.
  if (process.env.npm_lifecycle_event !== undefined) {
    const parent = process.ppid;
    setInterval(() => {
      if (process.ppid !== parent && firstSignalAt === 0) {
        pgmux.log.warn({ parent }, 'npm, which started pgmux, has exited: stopping');
        onSignal('SIGTERM');
      }
    }, 500).unref();
  }
  // SIGHUP: reload the configuration, as the admin console's RELOAD (errors are logged, the old config kept).
  process.on('SIGHUP', () => {
    pgmux.log.info({ signal: 'SIGHUP' }, 'signal received: reloading the configuration');
    pgmux.reload();
  });

  try {
    await pgmux.start();
  } catch (err) {
    pgmux.log.fatal({ err: (err as Error).message }, 'could not start listening');
    return 1;
  }
  return -1; // keep running
}

main().then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`pgmux: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
