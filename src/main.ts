#!/usr/bin/env node
/** Command-line entry: load the config, start pgmux, stop gracefully on SIGTERM/SIGINT. */
import { ConfigError, HELP_TEXT, loadConfig, parseCli } from './config/index.js';
import { Pgmux, VERSION } from './pgmux.js';

async function main(): Promise<number> {
  let loaded;
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
    pgmux = new Pgmux(loaded.config);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`pgmux: invalid configuration: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
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
    const timeoutMs = signal === 'SIGINT' ? 0 : pgmux.config.shutdown_timeout;
    pgmux.log.info({ signal, timeoutMs }, 'signal received: draining');
    void pgmux.stop(timeoutMs).then(() => {
      pgmux.log.flush?.();
      process.exit(0);
    });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
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
