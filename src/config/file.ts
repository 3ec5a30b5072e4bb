// Finding and reading the YAML config file.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { ConfigError } from './errors.js';
import { parsePgbouncerIni, type PgbouncerImport } from './pgbouncer-ini.js';

/** Used when neither --config nor PGMUX_CONFIG is given, and only if it exists. */
export const DEFAULT_CONFIG_FILE = 'config/pgmux.yaml';

export interface ConfigFile {
  /** Absolute path. */
  readonly path: string;
  /** The parsed YAML (null for an empty file). */
  readonly document: unknown;
}

/**
 * Reads the config file named by `--config`, else by PGMUX_CONFIG, else config/pgmux.yaml under `cwd`.
 * Returns null only when the default file is absent; a file that was asked for must exist.
 */
export function readConfigFile(cliPath: string | undefined, env: NodeJS.ProcessEnv, cwd: string): ConfigFile | null {
  let key = DEFAULT_CONFIG_FILE;
  let file = DEFAULT_CONFIG_FILE;
  if (cliPath !== undefined) [key, file] = ['--config', cliPath];
  else if (env.PGMUX_CONFIG) [key, file] = ['PGMUX_CONFIG', env.PGMUX_CONFIG];
  if (file.trim() === '') throw new ConfigError(key, 'must name a file (got "")');
  const path = resolve(cwd, file);
  const text = readConfigText(key, path, key !== DEFAULT_CONFIG_FILE);
  return text === null ? null : { path, document: parseYaml(text, path) };
}

/** The file's text; null when it is absent and was not asked for. Errors name the key that named the file. */
function readConfigText(key: string, path: string, required: boolean): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const code = err instanceof Error && 'code' in err ? String(err.code) : 'unknown error';
    if (code === 'ENOENT' && !required) return null;
    throw new ConfigError(key, code === 'ENOENT' ? `file not found: ${path}` : `cannot read ${path} (${code})`);
  }
}

/**
 * Parses YAML, refusing duplicate keys. Errors give the line and column but not the source line, which could hold
 * a password.
 */
export function parseYaml(text: string, path: string): unknown {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false, lineCounter });
  const [error] = doc.errors;
  if (error !== undefined) {
    const { line, col } = lineCounter.linePos(error.pos[0]);
    throw new ConfigError(path, `is not valid YAML: ${error.message} at line ${line}, column ${col}`);
  }
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError(path, `is not valid YAML: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * Reads a PgBouncer configuration (--pgbouncer-ini) and converts it; relative `%include`s are looked for next to
 * the including file, then in `cwd`.
 */
export function readPgbouncerIni(file: string, cwd: string): PgbouncerImport & { readonly path: string } {
  const key = '--pgbouncer-ini';
  if (file.trim() === '') throw new ConfigError(key, 'must name a file (got "")');
  const path = resolve(cwd, file);
  const text = readConfigText(key, path, true) as string;
  return { path, ...parsePgbouncerIni(text, path, { readFile: (p) => readFileSync(p, 'utf8'), cwd }) };
}
