// `pgmux import pgbouncer.ini [-o out.yaml]`: writes the pgmux YAML equivalent of a PgBouncer configuration.
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { stringify } from 'yaml';
import { ConfigError } from './errors.js';
import { readPgbouncerIni } from './file.js';
import { loadConfig } from './load.js';
import { formatIniNote, PGBOUNCER_DEFAULTS, type PgbouncerImport } from './pgbouncer-ini.js';

export const IMPORT_HELP = `Usage: pgmux import PGBOUNCER_INI [-o OUT.yaml]

Converts a PgBouncer configuration (pgbouncer.ini with its %include files; auth_file is referenced, not copied)
into pgmux's YAML and writes it to OUT.yaml (mode 0600: it may hold passwords) or to stdout. Settings pgmux does
not support, and settings meaningless for pgmux, are listed on stderr and at the top of the YAML.
The result behaves as \`pgmux --pgbouncer-ini PGBOUNCER_INI\` does.
`;

export interface ImportIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly cwd: string;
}

const defaultIo: ImportIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  cwd: process.cwd(),
};

/** Runs the command with the arguments after `import`; returns the exit code. */
export function runImportCommand(argv: readonly string[], io: ImportIo = defaultIo): number {
  let input: string | undefined;
  let output: string | undefined;
  try {
    for (let i = 0; i < argv.length; i++) {
      const arg = argv[i];
      if (arg === '-h' || arg === '--help') {
        io.stdout(IMPORT_HELP);
        return 0;
      }
      if (arg === '-o' || arg === '--output') {
        output = argv[++i];
        if (output === undefined) throw new ConfigError(arg, 'needs a file name');
      } else if (arg.startsWith('--output=')) {
        output = arg.slice('--output='.length);
      } else if (arg.startsWith('-')) {
        throw new ConfigError(arg, 'is not an option of pgmux import (see pgmux import --help)');
      } else if (input === undefined) {
        input = arg;
      } else {
        throw new ConfigError(arg, 'is one file too many: pgmux import converts one pgbouncer.ini');
      }
    }
    if (input === undefined) {
      io.stderr(`pgmux import: which pgbouncer.ini?\n\n${IMPORT_HELP}`);
      return 2;
    }

    const ini = readPgbouncerIni(input, io.cwd);
    // Everything a start would check (cross-setting checks too), without the environment of this shell.
    loadConfig({ argv: ['--pgbouncer-ini', ini.path], env: {}, cwd: io.cwd });
    const yaml = renderImport(ini);
    if (output === undefined) {
      io.stdout(yaml);
    } else {
      writeFileSync(resolve(io.cwd, output), yaml, { mode: 0o600 });
    }
    io.stderr(renderReport(ini, output === undefined ? null : resolve(io.cwd, output)));
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr(`pgmux import: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

/** The YAML document, with what was not carried over listed in comments at the top. */
export function renderImport(ini: PgbouncerImport): string {
  const lines = [
    `# pgmux configuration converted by \`pgmux import\` from ${ini.files.join(', ')}.`,
    `# PgBouncer defaults that differ from pgmux's are written out when the file did not set them:`,
    `# ${Object.keys(PGBOUNCER_DEFAULTS).join(', ')}.`,
  ];
  if (ini.unsupported.length > 0) {
    lines.push('#', '# Not supported by pgmux (these have no effect):');
    for (const note of ini.unsupported) lines.push(`#   ${formatIniNote(note)}`);
  }
  if (ini.ignored.length > 0) {
    lines.push('#', '# Ignored as meaningless for pgmux:');
    for (const note of ini.ignored) lines.push(`#   ${formatIniNote(note)}`);
  }
  return `${lines.join('\n')}\n${stringify(ini.document)}`;
}

function renderReport(ini: PgbouncerImport, output: string | null): string {
  const databases = Object.keys(ini.document.databases as object).length;
  const users = Object.keys(ini.document.users as object).length;
  const lines = [`pgmux import: converted ${ini.files.length} file(s), ${databases} database(s), ${users} user(s)${output === null ? '' : ` into ${output}`}`];
  if (ini.unsupported.length > 0) {
    lines.push(`not supported by pgmux (no effect): ${ini.unsupported.length}`);
    for (const note of ini.unsupported) lines.push(`  ${formatIniNote(note)}`);
  }
  if (ini.ignored.length > 0) {
    lines.push(`ignored (meaningless for pgmux): ${ini.ignored.length}`);
    for (const note of ini.ignored) lines.push(`  ${formatIniNote(note)}`);
  }
  return `${lines.join('\n')}\n`;
}
