#!/usr/bin/env node
/** Command-line entry: load the config, start pgmux, stop gracefully on SIGTERM/SIGINT. */
import { ConfigError, HELP_TEXT, loadConfig, parseCli, runImportCommand } from './config/index.js';
import { Pgmux, VERSION } from './pgmux.js';

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
  // Settings of a pgbouncer.ini (or PGBOUNCER_* variables) that pgmux does not support, and the like.
  for (const notice of loaded.notices) pgmux.log[notice.level](notice.fields, notice.message);
  if (Object.keys(loaded.config.databases).length === 0) {
    pgmux.log.warn('no databases configured: set DATABASE_URL or add databases: to the config file');
  }
  try {
    await pgmux.start();
  } catch (err) {
    pgmux.log.fatal({ err: (err as Error).message }, 'could not start listening');
    return 1;
  }

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      pgmux.log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    // SIGTERM (docker stop, systemd, Kubernetes): transactions get up to shutdown_timeout to finish.
    // SIGINT is the fast variant: open transactions are cut now, and PostgreSQL rolls them back.
    const timeoutMs = signal === 'SIGINT' ? 0 : pgmux.config.shutdown_timeout;
    pgmux.log.info({ signal, timeoutMs }, 'signal received: draining');
    void pgmux.stop(timeoutMs).then(() => {
      pgmux.log.flush?.();
      process.exit(0);
    });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // SIGHUP: reload the configuration, as the admin console's RELOAD (errors are logged, the old config kept).
  process.on('SIGHUP', () => {
    pgmux.log.info({ signal: 'SIGHUP' }, 'signal received: reloading the configuration');
    pgmux.reload();
  });
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
