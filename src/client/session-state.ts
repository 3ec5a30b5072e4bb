/**
 * Transaction mode: session state a client creates with SQL, and what pgmux does about it.
 *
 * Settings (SET, RESET, set_config) are not parsed for their values: when a transaction that
 * changed some ends, pgmux asks the server which settings the session now has and remembers
 * them for the client, so SET LOCAL, rollbacks and savepoints come out exactly as PostgreSQL
 * decided. State that cannot move to another server (LISTEN, session advisory locks, temporary
 * tables, WITH HOLD cursors, SQL PREPARE) pins the client to its server, by policy; whether the
 * state still exists is again asked of the server, so the pin ends when the state is gone.
 */
import { PIN_EFFECTS, PIN_KINDS, SqlEffect, type PinKind } from './sql-classifier.js';

export type PinPolicy = 'pin' | 'reject' | 'allow';

/** The session_state_* settings: what to do about each kind of unmovable state (a PgmuxConfig is one). */
export type PinPolicies = { readonly [K in PinKind as `session_state_${K}`]: PinPolicy };

/**
 * Settings this session has set, as the server sees them; and the role and session user, which
 * pg_settings does not show (and RESET ALL does not reset). Not transaction_isolation/_read_only/_deferrable:
 * after `SET TRANSACTION ...` in a committed transaction pg_settings shows them with source 'session', but they are
 * the transaction's, not the session's, and from PostgreSQL 16 on they cannot be RESET (GUC_NO_RESET): carried
 * as a client's setting, pgmux's `RESET transaction_isolation` failed another client's query on that server.
 */
const CAPTURE_SETTINGS_SQL =
  "SELECT name, pg_catalog.current_setting(name) FROM pg_catalog.pg_settings WHERE source = 'session'" +
  " AND name NOT IN ('transaction_isolation', 'transaction_read_only', 'transaction_deferrable')" +
  " UNION ALL SELECT 'session_authorization', pg_catalog.current_setting('session_authorization')" +
  " UNION ALL SELECT 'role', pg_catalog.current_setting('role')";

const NO_CUSTOM_SETTINGS: ReadonlySet<string> = new Set();

/** Custom settings asked for by name, at most (a client inventing names without end must not grow the query forever). */
const MAX_CUSTOM_SETTINGS = 64;

/** The capture query, with the custom settings this session set (placeholders are not in pg_settings). */
export function captureSettingsSql(customSettings: ReadonlySet<string>): string {
  if (customSettings.size === 0) return CAPTURE_SETTINGS_SQL;
  const names = [...customSettings].map((n) => `'${n.replace(/'/g, "''")}'`).join(',');
  return `${CAPTURE_SETTINGS_SQL} UNION ALL SELECT n, pg_catalog.current_setting(n, true) FROM pg_catalog.unnest(ARRAY[${names}]::text[]) AS n`;
}

/** The current role (SET ROLE), for sessions where a function could change it unseen. */
export const ROLE_SQL = "SELECT pg_catalog.current_setting('role')";

/** Whether each kind of unmovable state exists in this session (column order = PIN_KINDS). */
export const PIN_CHECK_SQL =
  'SELECT (SELECT count(*) FROM pg_catalog.pg_listening_channels())::text,' +
  " (SELECT count(*) FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid())::text," +
  // Anything in the temporary schema: tables, but also functions, types, statistics, operators.
  ' ((SELECT count(*) FROM pg_catalog.pg_class WHERE relnamespace = pg_catalog.pg_my_temp_schema())' +
  ' + (SELECT count(*) FROM pg_catalog.pg_proc WHERE pronamespace = pg_catalog.pg_my_temp_schema())' +
  ' + (SELECT count(*) FROM pg_catalog.pg_type WHERE typnamespace = pg_catalog.pg_my_temp_schema())' +
  ' + (SELECT count(*) FROM pg_catalog.pg_statistic_ext WHERE stxnamespace = pg_catalog.pg_my_temp_schema())' +
  ' + (SELECT count(*) FROM pg_catalog.pg_operator WHERE oprnamespace = pg_catalog.pg_my_temp_schema()))::text,' +
  ' (SELECT count(*) FROM pg_catalog.pg_cursors WHERE is_holdable)::text,' +
  ' (SELECT count(*) FROM pg_catalog.pg_prepared_statements WHERE from_sql)::text';

export class SessionState {
  /** A SET/RESET-like statement ran: capture settings when the transaction ends. */
  settingsChanged = false;
  /** Pinning state may have been created or dropped: check when the transaction ends. */
  pinCheckDue = false;
  /** Kinds of unmovable state this session holds (bits of SqlEffect). */
  pins = 0;
  /** A pin check is running on the server (state may change again before its answer is used). */
  checking = false;
  /** The settings capture is running on the server. */
  capturing = false;
  /** A pin check failed: what the session holds is unknown, so it is treated as pinned. */
  unknown = false;
  /** Kinds already logged for this client (each is logged once). */
  private logged = 0;
  /** Custom settings the client's SQL set, made at the first (most sessions set none). */
  private custom: Set<string> | null = null;

  /** `policies`: the configuration the client joined its pool under (read as needed: no closure per client). */
  constructor(private readonly policies: PinPolicies) {}

  private policy(kind: PinKind): PinPolicy {
    return this.policies[`session_state_${kind}`];
  }

  /** Custom settings the client's SQL set (see captureSettingsSql). */
  get customSettings(): ReadonlySet<string> {
    return this.custom ?? NO_CUSTOM_SETTINGS;
  }

  get pinned(): boolean {
    return this.pins !== 0 || this.unknown;
  }

  /**
   * What the server holds for this session is not known yet (a capture or check is due or
   * running). If the client leaves now, its server must be reset before anyone else uses it.
   */
  get unsettled(): boolean {
    return this.settingsChanged || this.pinCheckDue || this.checking || this.capturing;
  }

  get pinReasons(): PinKind[] {
    return PIN_KINDS.filter(([, bit]) => (this.pins & bit) !== 0).map(([kind]) => kind);
  }

  /** Notes what a statement does; returns the kind to refuse when a `reject` policy applies. */
  note(effects: number, customSettings: readonly string[] = []): PinKind | null {
    if (effects === 0) return null;
    for (const name of customSettings) {
      const custom = (this.custom ??= new Set());
      if (custom.size < MAX_CUSTOM_SETTINGS) custom.add(name);
    }
    if ((effects & SqlEffect.SetsParams) !== 0) this.settingsChanged = true;
    if ((effects & PIN_EFFECTS) !== 0) {
      for (const [kind, bit] of PIN_KINDS) {
        if ((effects & bit) === 0) continue;
        const policy = this.policy(kind);
        if (policy === 'reject') return kind;
        if (policy === 'pin') this.pinCheckDue = true;
      }
    }
    if ((effects & SqlEffect.MayDropState) !== 0 && (this.pinned || this.checking)) this.pinCheckDue = true;
    if ((effects & SqlEffect.MayCreateState) !== 0) this.pinCheckDue = true;
    return null;
  }

  /** Applies a PIN_CHECK_SQL row; returns the kinds newly pinned (for logging and metrics, once each). */
  pinsChecked(row: ReadonlyArray<string | null>): PinKind[] {
    let pins = 0;
    PIN_KINDS.forEach(([kind, bit], i) => {
      if (Number(row[i] ?? 0) > 0 && this.policy(kind) === 'pin') pins |= bit;
    });
    this.pins = pins;
    this.checking = false;
    const fresh = pins & ~this.logged;
    this.logged |= pins;
    return PIN_KINDS.filter(([, bit]) => (fresh & bit) !== 0).map(([kind]) => kind);
  }
}
