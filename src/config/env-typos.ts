/**
 * Environment variables that look like a misspelt pgmux variable. pgmux's names are not prefixed (DEFAULT_POOL_SIZE,
 * DATABASE_URL), so it cannot refuse unknown variables as it refuses unknown keys of a file: the environment is full
 * of others'. It warns about an upper-case name one or two edits from one of its own instead ("DEFAULT_POOLSIZE is
 * ignored; did you mean DEFAULT_POOL_SIZE?"): close enough to be a typo, far from PATH, HOME, NODE_ENV and the like.
 */
import { CONTAINER_VARIABLES } from './container-env.js';
import { SETTINGS } from './schema.js';
import { closest } from './suggest.js';

/** Variables pgmux reads besides the settings' upper-case names. */
export const OWN_VARIABLES: readonly string[] = ['DATABASE_URL', 'PGMUX_CONFIG'];

/** At most this many edits (and 1 for names of up to 6 characters) count as a typo. */
const MAX_EDITS = 2;

export interface EnvTypo {
  readonly name: string;
  readonly suggestion: string;
}

/** Upper-case variables close to, but not, a name pgmux reads; sorted by name. Values are never looked at. */
export function envTypos(env: NodeJS.ProcessEnv): EnvTypo[] {
  const targets = [...SETTINGS.map((s) => s.name.toUpperCase()), ...OWN_VARIABLES];
  const known = new Set([...targets, ...CONTAINER_VARIABLES]);
  const typos: EnvTypo[] = [];
  for (const name of Object.keys(env).sort()) {
    // Lower- and mixed-case names (npm_config_*, Kubernetes' own) are nobody's attempt at a pgmux variable.
    if (!/^[A-Z][A-Z0-9_]*$/.test(name) || known.has(name) || name.startsWith('PGBOUNCER_')) continue;
    const suggestion = closest(name, targets, name.length <= 6 ? 1 : MAX_EDITS);
    if (suggestion !== undefined) typos.push({ name, suggestion });
  }
  return typos;
}
