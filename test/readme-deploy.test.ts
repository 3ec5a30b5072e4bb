/**
 * The README's Kubernetes sidecar snippet: valid YAML, its pgmux container's environment is a valid
 * pgmux configuration (what pgmux would run with), and its probes use paths the metrics endpoint serves.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../src/config/index.js';
import { startPgmux } from './harness/pgmux.js';
import { APP_ROLE } from './harness/roles.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8');

interface Container {
  name: string;
  env?: Array<{ name: string; value?: string; valueFrom?: unknown }>;
  livenessProbe?: { httpGet: { path: string; port: number } };
  readinessProbe?: { httpGet: { path: string; port: number } };
  ports?: Array<{ containerPort: number }>;
}

function deployment(): { spec: { template: { spec: { containers: Container[] } } } } {
  const blocks = [...README.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]);
  const k8s = blocks.find((b) => b.includes('kind: Deployment'));
  expect(k8s, 'a Deployment snippet in the README').toBeDefined();
  return parse(k8s as string) as ReturnType<typeof deployment>;
}

/** Kubernetes expands $(VAR) from earlier env entries; secrets get a stand-in value here. */
function environment(c: Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) env[e.name] = e.value === undefined ? 'secret-from-k8s' : e.value.replace(/\$\((\w+)\)/g, (_, v: string) => env[v] ?? '');
  return env;
}

describe('README: Kubernetes sidecar', () => {
  it('gives pgmux an environment that is a valid configuration, listening on the pod loopback', () => {
    const pgmux = deployment().spec.template.spec.containers.find((c) => c.name === 'pgmux');
    expect(pgmux).toBeDefined();
    const { config } = loadConfig({ argv: [], env: environment(pgmux as Container), cwd: ROOT });
    expect(config.listen_addr).toBe('127.0.0.1');
    expect(config.listen_port).toBe(6543);
    expect(config.pool_mode).toBe('transaction');
    expect(config.default_pool_size).toBe(5);
    expect(config.server_tls_sslmode).toBe('require');
    expect(Object.keys(config.databases)).toEqual(['app']);
    expect(config.databases.app).toMatchObject({ host: 'postgres.db.svc', port: 5432, dbname: 'app' });
    const app = deployment().spec.template.spec.containers.find((c) => c.name === 'app');
    expect(environment(app as Container).DATABASE_URL).toMatch(/@127\.0\.0\.1:6543\/app$/);
  });

  it('probes paths the metrics endpoint answers with 200', async () => {
    const pgmux = deployment().spec.template.spec.containers.find((c) => c.name === 'pgmux') as Container;
    expect(pgmux.livenessProbe?.httpGet.port).toBe(9127);
    expect(pgmux.readinessProbe?.httpGet.port).toBe(9127);
    const px = await startPgmux({ databases: { app: { dbname: 'postgres' } }, users: { [APP_ROLE.name]: { password: APP_ROLE.password } }, metrics: true });
    try {
      for (const probe of [pgmux.livenessProbe, pgmux.readinessProbe]) {
        const r = await fetch(`http://127.0.0.1:${px.pgmux.metricsPort}${probe?.httpGet.path}`);
        expect(r.status, probe?.httpGet.path).toBe(200);
      }
    } finally {
      await px.stop();
    }
  });
});
