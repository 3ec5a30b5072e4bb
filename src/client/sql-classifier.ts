/**
 * Finds the statements in SQL text that change session state a transaction-mode pooler must
 * care about. Cheap by construction: a precompiled test rejects ordinary queries before any
 * tokenising; only matching text is split into statements (outside quotes and comments).
 */

export const enum SqlEffect {
  None = 0,
  /** SET / RESET / set_config(): capture the session's settings when the transaction ends. */
  SetsParams = 1 << 0,
  Listen = 1 << 1,
  AdvisoryLock = 1 << 2,
  TempTable = 1 << 3,
  HoldCursor = 1 << 4,
  SqlPrepare = 1 << 5,
  /** UNLISTEN, unlock, DISCARD, DEALLOCATE, DROP, CLOSE: state may be gone, so a pin may end. */
  MayDropState = 1 << 6,
  DiscardAll = 1 << 7,
  DeallocateAll = 1 << 8,
  /** DEALLOCATE of one name (see `deallocateName`). */
  Deallocate = 1 << 9,
  /** DO, CALL: code pgmux cannot read may create unmovable state: check, but never refuse. */
  MayCreateState = 1 << 10,
}

/** State kinds that pin a client to its server, with the names used in config, logs and metrics. */
export const PIN_KINDS = [
  ['listen', SqlEffect.Listen],
  ['advisory_lock', SqlEffect.AdvisoryLock],
  ['temp_table', SqlEffect.TempTable],
  ['cursor_with_hold', SqlEffect.HoldCursor],
  ['prepare', SqlEffect.SqlPrepare],
] as const;

export type PinKind = (typeof PIN_KINDS)[number][0];

export const PIN_EFFECTS = SqlEffect.Listen | SqlEffect.AdvisoryLock | SqlEffect.TempTable | SqlEffect.HoldCursor | SqlEffect.SqlPrepare;

// SET/RESET only count where a statement can start (text start, after ';', a comment or a line
// break): "UPDATE t SET ..." is the commonest write and must not pay for the full split below.
const CANDIDATE = /(?:^|[;\n]|\*\/)\s*(?:set|reset|do|call)\b|set_config|listen|advisory|temp|hold|prepare|discard|dealloc|drop|close/i;

export interface Classification {
  effects: number;
  /**
   * Custom (placeholder) settings the SQL sets, `app.tenant`: pg_settings does not list them, so
   * the settings capture asks for them by name.
   */
  customSettings: readonly string[];
  /** For a lone `DEALLOCATE name` / `DEALLOCATE ALL` / `DISCARD ALL`: the statement, for a local answer. */
  lone: { kind: 'deallocate'; name: string | null } | { kind: 'discard-all' } | null;
}

const NOTHING: Classification = { effects: SqlEffect.None, customSettings: [], lone: null };

/** `set_config('name'` with the name as a literal (the statement split blanks literals, so this reads the raw text). */
const SET_CONFIG_NAME = /set_config\s*\(\s*'((?:[^']|'')+)'/gi;

export function classifySql(sql: string): Classification {
  if (!CANDIDATE.test(sql)) return NOTHING;
  const statements = splitStatements(sql);
  let effects = 0;
  let customSettings: string[] | null = null;
  for (const s of statements) {
    effects |= classifyStatement(s);
    const custom = customSettingOf(s);
    if (custom !== null) (customSettings ??= []).push(custom);
  }
  if ((effects & SqlEffect.SetsParams) !== 0 && /set_config/i.test(sql)) {
    for (const m of sql.matchAll(SET_CONFIG_NAME)) {
      const name = m[1].replace(/''/g, "'").toLowerCase();
      if (name.includes('.')) (customSettings ??= []).push(name);
    }
  }
  let lone: Classification['lone'] = null;
  if (statements.length === 1) {
    const words = statements[0].split(/\s+/);
    const w0 = words[0]?.toLowerCase();
    if (w0 === 'discard' && words[1]?.toLowerCase() === 'all' && words.length === 2) lone = { kind: 'discard-all' };
    if (w0 === 'deallocate') {
      const rest = words.slice(1).filter((w) => w.toLowerCase() !== 'prepare');
      if (rest.length === 1) lone = { kind: 'deallocate', name: rest[0].toLowerCase() === 'all' ? null : unquote(rest[0]) };
    }
  }
  return { effects, customSettings: customSettings ?? [], lone };
}

/** The custom setting a SET/RESET statement names (`SET [SESSION|LOCAL] app.x ...`), if it is one. */
function customSettingOf(statement: string): string | null {
  const words = statement.split(/[\s=]+/, 4);
  const verb = words[0]?.toLowerCase();
  if (verb !== 'set' && verb !== 'reset') return null;
  let name = words[1] ?? '';
  if (name.toLowerCase() === 'session' || name.toLowerCase() === 'local') name = words[2] ?? '';
  if (!name.includes('.')) return null;
  // Quoted parts keep their case; the rest folds to lower case, as PostgreSQL folds identifiers.
  return name.split('.').map((part) => (part.startsWith('"') && part.endsWith('"') ? part.slice(1, -1) : part.toLowerCase())).join('.');
}

/** The name in `DEALLOCATE [PREPARE] name`, as PostgreSQL folds it. */
function unquote(word: string): string {
  return word.startsWith('"') && word.endsWith('"') ? word.slice(1, -1).replace(/""/g, '"') : word.toLowerCase();
}

function classifyStatement(statement: string): number {
  const lower = statement.toLowerCase();
  const words = lower.split(/\s+/, 4);
  let effects = 0;
  switch (words[0]) {
    case 'set':
      // SET LOCAL ends with the transaction; SET TRANSACTION and SET CONSTRAINTS are not settings. (SET SESSION
      // CHARACTERISTICS AS TRANSACTION ... is: it sets default_transaction_isolation and friends, JDBC's
      // setTransactionIsolation.)
      if (words[1] !== 'local' && words[1] !== 'transaction' && words[1] !== 'constraints') {
        effects |= SqlEffect.SetsParams;
      }
      break;
    case 'reset':
      effects |= SqlEffect.SetsParams;
      break;
    case 'listen':
      effects |= SqlEffect.Listen;
      break;
    case 'unlisten':
    case 'drop':
    case 'close':
      effects |= SqlEffect.MayDropState;
      break;
    case 'discard':
      effects |= SqlEffect.MayDropState | SqlEffect.SetsParams;
      if (words[1] === 'all') effects |= SqlEffect.DiscardAll | SqlEffect.DeallocateAll;
      break;
    case 'deallocate':
      effects |= SqlEffect.MayDropState | ((words[1] === 'all' || (words[1] === 'prepare' && words[2] === 'all')) ? SqlEffect.DeallocateAll : SqlEffect.Deallocate);
      break;
    case 'prepare':
      if (words[1] !== 'transaction') effects |= SqlEffect.SqlPrepare;
      break;
    case 'do':
    case 'call':
      // Code pgmux cannot read may SET, LISTEN, lock or create temporary objects: ask the server afterwards.
      effects |= SqlEffect.SetsParams | SqlEffect.MayDropState | SqlEffect.MayCreateState;
      break;
    case 'declare':
      if (/\bwith\s+hold\b/.test(lower)) effects |= SqlEffect.HoldCursor;
      break;
    case 'create':
      if (/^create\s+(?:(?:global|local)\s+)?(?:temp|temporary)\s/.test(lower) || /^create\s+(?:unlogged\s+)?table\s+(?:if\s+not\s+exists\s+)?pg_temp\./.test(lower)) {
        effects |= SqlEffect.TempTable;
      }
      break;
    default:
      break;
  }
  if (/\bselect\b[\s\S]*\binto\s+(?:temp|temporary)\b/.test(lower)) effects |= SqlEffect.TempTable;
  // Any object put in the temporary schema by name (CREATE STATISTICS pg_temp.x, CREATE FUNCTION pg_temp.f ...).
  if (words[0] === 'create' && lower.includes('pg_temp.')) effects |= SqlEffect.TempTable;
  if (lower.includes('set_config')) effects |= SqlEffect.SetsParams;
  if (/pg_(?:try_)?advisory_lock(?:_shared)?\s*\(/.test(lower)) effects |= SqlEffect.AdvisoryLock;
  if (/pg_advisory_unlock/.test(lower)) effects |= SqlEffect.MayDropState;
  return effects;
}

/**
 * Splits SQL into statements at top-level semicolons, dropping comments and the contents of
 * string literals, quoted identifiers and dollar-quoted bodies (replaced by placeholders) so
 * that words inside them are not mistaken for commands.
 */
export function splitStatements(sql: string): string[] {
  return statementsOf(sql).map((s) => s.text);
}

/** A statement of a query string: its text as splitStatements gives it, and where it ends in the string (its `;`, or the end). */
export interface StatementSpan {
  text: string;
  end: number;
}

/** splitStatements, with where each statement ends in `sql`. */
export function statementsOf(sql: string): StatementSpan[] {
  const out: StatementSpan[] = [];
  let current = '';
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i];
    if (c === '-' && sql[i + 1] === '-') {
      const nl = sql.indexOf('\n', i);
      i = nl < 0 ? n : nl;
      current += ' ';
    } else if (c === '/' && sql[i + 1] === '*') {
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (sql[i] === '/' && sql[i + 1] === '*') (depth++, (i += 2));
        else if (sql[i] === '*' && sql[i + 1] === '/') (depth--, (i += 2));
        else i++;
      }
      current += ' ';
    } else if (c === "'" || c === '"') {
      let j = i + 1;
      for (;;) {
        const k = sql.indexOf(c, j);
        if (k < 0) {
          j = n;
          break;
        }
        if (sql[k + 1] === c) j = k + 2;
        else {
          j = k + 1;
          break;
        }
      }
      current += c === "'" ? "''" : sql.slice(i, j); // keep identifiers (statement names), blank literals
      i = j;
    } else if (c === '$') {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 64));
      if (m === null) {
        current += c;
        i++;
      } else {
        const close = sql.indexOf(m[0], i + m[0].length);
        i = close < 0 ? n : close + m[0].length;
        current += "''";
      }
    } else if (c === ';') {
      if (current.trim() !== '') out.push({ text: current.trim(), end: i });
      current = '';
      i++;
    } else {
      current += c;
      i++;
    }
  }
  if (current.trim() !== '') out.push({ text: current.trim(), end: n });
  return out;
}

/**
 * How many parameters PostgreSQL gives a statement it prepared from `sql` with `declaredTypes` types: the
 * highest `$n` referenced, or the number of types declared if more (a Parse that succeeded references no gap
 * it could not type). Literals, comments, quoted identifiers and dollar-quoted bodies do not count.
 */
export function parameterCount(sql: string, declaredTypes: number): number {
  let highest = declaredTypes;
  for (const statement of statementsOf(sql)) {
    const text = statement.text.replace(/"(?:[^"]|"")*"/g, '""');
    for (const m of text.matchAll(/(?<![A-Za-z0-9_$])\$(\d+)/g)) highest = Math.max(highest, Number(m[1]));
  }
  return highest;
}
