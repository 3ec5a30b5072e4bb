/**
 * What the admin console needs from the process around it. `Pgmux` implements it; the console
 * never reaches into the listener, signals or the metrics server itself.
 */
import type { PgmuxConfig } from '../config/index.js';
import type { PoolRegistry, ReloadSummary } from '../pool/pool-registry.js';

export type ReloadResult =
  | {
      ok: true;
      summary: ReloadSummary;
      /** Settings whose new value only takes effect after a restart (kept at their running value). */
      restartNeeded: string[];
    }
  | {
      ok: false;
      /** Why, naming the key ("databases.app.port: must be an integer ..."). */
      error: string;
      key?: string;
    };

export interface AdminHost {
  readonly registry: PoolRegistry;
  /** The configuration in effect. */
  readonly config: PgmuxConfig;
  /** Date.now() when the process started. */
  readonly startedAt: number;
  readonly version: string;
  /** The port clients connect to (for SHOW DATABASES' admin row). */
  readonly port: number;
  /** RELOAD / SIGHUP: read the configuration again from where it came from and apply it. */
  reload(): ReloadResult;
  /** SET: apply a configuration derived from the current one. */
  applyConfig(next: PgmuxConfig, reason: string): ReloadResult;
  /** SHUTDOWN: stop gracefully (as SIGTERM does). */
  shutdown(): void;
}

/** Settings a running pgmux cannot change (its listening sockets): SET refuses them, RELOAD reports them. */
export const RESTART_SETTINGS: readonly string[] = ['listen_addr', 'listen_port', 'unix_socket_dir', 'unix_socket_mode', 'unix_socket_group', 'metrics_addr', 'metrics_port'];
