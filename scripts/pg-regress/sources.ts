/**
 * PostgreSQL's regression sources matching the installed server, from the Debian source package
 * (`apt-get source --download-only postgresql-N=<installed version>` through a scratch apt configuration that
 * only adds deb-src entries and leaves the system's apt state alone). Only src/test/regress and contrib/spi are
 * extracted. Everything lives under the cache directory and is reused by later runs.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { mustRun, runCommand } from './proc.js';

export interface RegressSources {
  /** Installed Debian version of postgresql-N, e.g. 15.18-0+deb12u1. */
  readonly installedVersion: string;
  /** The source package version downloaded (the installed one, or one with the same upstream version). */
  readonly sourceVersion: string;
  /** Per-version cache directory (also holds the built libraries). */
  readonly versionDir: string;
  /** src/test/regress: sql/, expected/, data/, parallel_schedule, resultmap, regress.c. */
  readonly regressDir: string;
  /** contrib/spi: autoinc.c, refint.c. */
  readonly spiDir: string;
}

interface Stamp {
  installedVersion: string;
  sourceVersion: string;
  tarball: string;
}

const STAMP = 'sources.json';

async function installedVersion(major: string): Promise<string> {
  const out = await mustRun('dpkg-query', ['-W', '-f=${Version}', `postgresql-${major}`]);
  return out.trim();
}

/** `15.18-0+deb12u1` → `15.18` (no epoch, no Debian revision). */
function upstreamOf(version: string): string {
  return version.replace(/^\d+:/, '').replace(/-[^-]*$/, '');
}

// ---------------------------------------------------------------------------------------------------------------
// Scratch apt configuration

interface AptEntry {
  uri: string;
  suite: string;
  components: string[];
  signedBy?: string;
}

function osCodename(): string {
  try {
    const text = fs.readFileSync('/etc/os-release', 'utf8');
    return /^VERSION_CODENAME=(.*)$/m.exec(text)?.[1]?.replace(/"/g, '') ?? 'bookworm';
  } catch {
    return 'bookworm';
  }
}

function parseOneLine(text: string): AptEntry[] {
  const entries: AptEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    const m = /^deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s+(.*)$/.exec(line);
    if (m === null) continue;
    const signedBy = /(?:^|\s)signed-by=(\S+)/.exec(m[1] ?? '')?.[1];
    entries.push({ uri: m[2], suite: m[3], components: m[4].split(/\s+/), ...(signedBy === undefined ? {} : { signedBy }) });
  }
  return entries;
}

function parseDeb822(text: string): AptEntry[] {
  const entries: AptEntry[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last = '';
    for (const raw of stanza.split('\n')) {
      if (raw.startsWith('#')) continue;
      if (/^\s/.test(raw) && last !== '') {
        fields.set(last, `${fields.get(last) ?? ''} ${raw.trim()}`);
        continue;
      }
      const m = /^([A-Za-z-]+):\s*(.*)$/.exec(raw);
      if (m === null) continue;
      last = m[1].toLowerCase();
      fields.set(last, m[2].trim());
    }
    if (!(fields.get('types') ?? '').split(/\s+/).includes('deb')) continue;
    if ((fields.get('enabled') ?? 'yes').toLowerCase() === 'no') continue;
    const signedBy = fields.get('signed-by');
    const components = (fields.get('components') ?? '').split(/\s+/).filter((c) => c !== '');
    for (const uri of (fields.get('uris') ?? '').split(/\s+/).filter((u) => u !== '')) {
      for (const suite of (fields.get('suites') ?? '').split(/\s+/).filter((s) => s !== '')) {
        // An inline key block (starts with -----BEGIN) cannot be carried as a path; let apt use its keyrings.
        entries.push({ uri, suite, components, ...(signedBy === undefined || signedBy.includes('BEGIN') ? {} : { signedBy }) });
      }
    }
  }
  return entries;
}

/** The system's Debian archive entries (suites of this release), as deb-src; the Debian defaults if none. */
function debSrcEntries(): AptEntry[] {
  const codename = osCodename();
  const found: AptEntry[] = [];
  const read = (file: string): string => {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch {
      return '';
    }
  };
  found.push(...parseOneLine(read('/etc/apt/sources.list')));
  let parts: string[] = [];
  try {
    parts = fs.readdirSync('/etc/apt/sources.list.d').sort();
  } catch {
    // none
  }
  for (const name of parts) {
    const file = path.join('/etc/apt/sources.list.d', name);
    if (name.endsWith('.list')) found.push(...parseOneLine(read(file)));
    else if (name.endsWith('.sources')) found.push(...parseDeb822(read(file)));
  }
  const ours = found.filter((e) => e.suite === codename || e.suite.startsWith(`${codename}-`) || e.suite.startsWith(`${codename}/`));
  if (ours.length > 0) return ours;
  const keyring = '/usr/share/keyrings/debian-archive-keyring.gpg';
  return [
    { uri: 'http://deb.debian.org/debian', suite: codename, components: ['main'], signedBy: keyring },
    { uri: 'http://deb.debian.org/debian', suite: `${codename}-updates`, components: ['main'], signedBy: keyring },
    { uri: 'http://deb.debian.org/debian-security', suite: `${codename}-security`, components: ['main'], signedBy: keyring },
  ];
}

function deb822(entries: AptEntry[]): string {
  return entries
    .map((e) =>
      [
        'Types: deb-src',
        `URIs: ${e.uri}`,
        `Suites: ${e.suite}`,
        `Components: ${e.components.join(' ')}`,
        ...(e.signedBy === undefined ? [] : [`Signed-By: ${e.signedBy}`]),
      ].join('\n'),
    )
    .join('\n\n')
    .concat('\n');
}

/** apt-get/apt-cache options that point every list, cache and source file at `scratch`. */
async function scratchApt(scratch: string): Promise<string[]> {
  for (const dir of ['lists/partial', 'cache/archives/partial', 'sources.list.d']) {
    await fsp.mkdir(path.join(scratch, dir), { recursive: true });
  }
  await fsp.writeFile(path.join(scratch, 'sources.list'), '# empty: see sources.list.d\n');
  await fsp.writeFile(path.join(scratch, 'sources.list.d', 'pg-regress.sources'), deb822(debSrcEntries()));
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  return [
    '-o', `Dir::Etc::sourcelist=${path.join(scratch, 'sources.list')}`,
    '-o', `Dir::Etc::sourceparts=${path.join(scratch, 'sources.list.d')}`,
    '-o', `Dir::State::Lists=${path.join(scratch, 'lists')}`,
    '-o', `Dir::Cache=${path.join(scratch, 'cache')}`,
    // The scratch dirs belong to root; apt's _apt sandbox user could not write the downloads there.
    ...(root ? ['-o', 'APT::Sandbox::User=root'] : []),
  ];
}

async function availableVersions(aptOpts: string[], pkg: string): Promise<string[]> {
  const res = await runCommand('apt-cache', [...aptOpts, 'showsrc', pkg]);
  if (res.code !== 0) return [];
  const versions: string[] = [];
  for (const stanza of res.output.split(/\n\s*\n/)) {
    if (!new RegExp(`^Package: ${pkg.replace(/[.+]/g, '\\$&')}$`, 'm').test(stanza)) continue;
    const v = /^Version: (\S+)$/m.exec(stanza)?.[1];
    if (v !== undefined) versions.push(v);
  }
  return versions;
}

async function download(cacheDir: string, major: string, installed: string, downloadDir: string, log: (line: string) => void): Promise<string> {
  const pkg = `postgresql-${major}`;
  const aptOpts = await scratchApt(path.join(cacheDir, 'apt'));
  log('apt-get update (scratch configuration with deb-src entries)');
  const update = await runCommand('apt-get', [...aptOpts, '-q', 'update']);
  if (update.code !== 0) log(`apt-get update reported errors (continuing):\n${update.output.split('\n').slice(-8).join('\n')}`);
  await fsp.mkdir(downloadDir, { recursive: true });
  // The installed version first, then others of the same upstream release (same tarball, other Debian
  // revision), and last whatever the archive has (the installed point release may have been superseded: then
  // some expected outputs may not match the server, which the direct run shows).
  const available = await availableVersions(aptOpts, pkg);
  const candidates = [installed];
  for (const v of available) if (!candidates.includes(v) && upstreamOf(v) === upstreamOf(installed)) candidates.push(v);
  for (const v of available) if (!candidates.includes(v)) candidates.push(v);
  const failures: string[] = [];
  for (const version of candidates) {
    log(`apt-get source --download-only ${pkg}=${version}`);
    const res = await runCommand('apt-get', [...aptOpts, '-q', 'source', '--download-only', `${pkg}=${version}`], { cwd: downloadDir });
    if (res.code === 0) {
      if (upstreamOf(version) !== upstreamOf(installed)) log(`warning: the server is ${installed} but the archive only had the source of ${version}`);
      return version;
    }
    failures.push(`${version}: ${res.output.split('\n').slice(-4).join(' | ')}`);
  }
  throw new Error(`could not download the source of ${pkg} ${installed} (or the same upstream version):\n  ${failures.join('\n  ')}`);
}

async function readStamp(versionDir: string): Promise<Stamp | undefined> {
  try {
    return JSON.parse(await fsp.readFile(path.join(versionDir, STAMP), 'utf8')) as Stamp;
  } catch {
    return undefined;
  }
}

function sourcesAt(versionDir: string, stamp: Stamp): RegressSources {
  const src = path.join(versionDir, 'src');
  return {
    installedVersion: stamp.installedVersion,
    sourceVersion: stamp.sourceVersion,
    versionDir,
    regressDir: path.join(src, 'src', 'test', 'regress'),
    spiDir: path.join(src, 'contrib', 'spi'),
  };
}

/** Debian patches (debian/patches/series) that touch what we extract: they are not applied, only reported. */
async function patchesTouchingTests(downloadDir: string): Promise<string[]> {
  const debianTar = (await fsp.readdir(downloadDir)).find((n) => /\.debian\.tar\.\w+$/.test(n));
  if (debianTar === undefined) return [];
  const list = await runCommand('tar', ['-xOf', path.join(downloadDir, debianTar), '--wildcards', 'debian/patches/*']);
  if (list.code !== 0) return [];
  const touched = new Set<string>();
  for (const m of list.output.matchAll(/^\+\+\+ (?:b\/)?(\S+)/gm)) {
    if (m[1].startsWith('src/test/regress/') || m[1].startsWith('contrib/spi/')) touched.add(m[1]);
  }
  return [...touched];
}

export async function ensureRegressSources(cacheDir: string, major: string, log: (line: string) => void): Promise<RegressSources> {
  const installed = await installedVersion(major);
  const versionDir = path.join(cacheDir, installed.replace(/[^A-Za-z0-9.+~-]/g, '_'));
  const cached = await readStamp(versionDir);
  if (cached !== undefined && fs.existsSync(path.join(versionDir, 'src', 'src', 'test', 'regress', 'parallel_schedule'))) {
    return sourcesAt(versionDir, cached);
  }

  const downloadDir = path.join(versionDir, 'download');
  await fsp.rm(versionDir, { recursive: true, force: true });
  const sourceVersion = await download(cacheDir, major, installed, downloadDir, log);
  const upstream = upstreamOf(sourceVersion);
  const tarball = (await fsp.readdir(downloadDir)).find((n) => n.startsWith(`postgresql-${major}_${upstream}.orig.tar.`));
  if (tarball === undefined) throw new Error(`no orig tarball for ${upstream} in ${downloadDir}`);

  const src = path.join(versionDir, 'src');
  await fsp.mkdir(src, { recursive: true });
  log(`extracting src/test/regress and contrib/spi from ${tarball}`);
  const top = `postgresql-${upstream}`;
  // GNU tar detects the compression (bzip2/xz/gzip) of a file by itself.
  await mustRun('tar', ['-xf', path.join(downloadDir, tarball), '-C', src, '--strip-components=1', `${top}/src/test/regress`, `${top}/contrib/spi`]);
  for (const file of await patchesTouchingTests(downloadDir)) log(`warning: a Debian patch changes ${file}; it is not applied`);

  const stamp: Stamp = { installedVersion: installed, sourceVersion, tarball };
  await fsp.writeFile(path.join(versionDir, STAMP), `${JSON.stringify(stamp, null, 2)}\n`);
  return sourcesAt(versionDir, stamp);
}
