/**
 * The live status page, in headless Chromium (Debian's `chromium` package, driven by playwright-core;
 * .ci/run installs it). Waits for conditions, never fixed sleeps: CI has two slow cores.
 */
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import pg from 'pg';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from './harness/context.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import type { StatusReport } from '../src/metrics/metrics.js';
import { APP_ROLE } from './harness/roles.js';

/** The little of the DOM the functions run in the page use (the project's tsconfig has no DOM lib). */
declare const document: { querySelector(selector: string): { textContent: string | null; getAttribute(name: string): string | null } | null };

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SCREENSHOT = '.tmp/status-page.png';
const SLOW = 30_000;

let px: TestPgmux;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`);
  const db = await createTestDatabase('status_page');
  px = await startPgmux({
    metrics: true,
    settings: { default_pool_size: 3 },
    databases: { app: { dbname: db }, reports: { dbname: db, pool_size: 1 } },
    users: { [APP_ROLE.name]: { password: APP_ROLE.password } },
  });
  // Root in a container has no user namespaces for the sandbox; /dev/shm is small there too.
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, timeout: 60_000, args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'] });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(SLOW);
  page.on('pageerror', (err) => pageErrors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') pageErrors.push(`console: ${msg.text()}`);
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await px?.stop();
});

async function run(database: string, statements: string[]): Promise<void> {
  const client = new pg.Client(px.url(database, APP_ROLE.name, APP_ROLE.password));
  await client.connect();
  for (const sql of statements) await client.query(sql);
  await client.end();
}

async function transactions(pool: string): Promise<number> {
  const text = await page.locator(`tr[data-pool="${pool}"] td[data-field="transactions"]`).textContent();
  return Number((text ?? '').replace(/,/g, ''));
}

describe('status page', () => {
  it('shows the pools, updates in place after traffic, and takes a screenshot', async () => {
    await run('app', ['select 1']);
    await run('reports', ['select 1']);

    const response = await page.goto(`${px.metricsUrl}/`);
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-security-policy']).toContain("default-src 'none'");
    await expect(page.title()).resolves.toBe('pgmux status');

    // Both pools appear (the page polls status.json every second).
    await page.locator('tr[data-pool="app/app"]').waitFor();
    await page.locator('tr[data-pool="reports/app"]').waitFor();
    expect(await page.locator('tr[data-pool="reports/app"] td[data-field="pool-size"]').textContent()).toBe('1');
    expect(await page.locator('tr[data-pool="app/app"] td[data-field="mode"]').textContent()).toBe('transaction');
    expect(await page.locator('#state').textContent()).toBe('running');

    const before = await transactions('app/app');
    expect(before).toBeGreaterThanOrEqual(1);
    await run('app', ['select 1', 'select 2', 'begin', 'select 3', 'commit', 'select 4']);
    await page.waitForFunction(
      (want) => Number(document.querySelector('tr[data-pool="app/app"] td[data-field="transactions"]')?.textContent?.replace(/,/g, '')) >= want,
      before + 4,
      { timeout: SLOW },
    );
    expect(await transactions('app/app')).toBe(before + 4);

    // The rolling charts gain a point per poll.
    await page.waitForFunction(() => Number(document.querySelector('#chart-tps')?.getAttribute('data-points')) >= 3, undefined, { timeout: SLOW });
    await page.waitForFunction(() => (document.querySelector('#chart-tps polyline')?.getAttribute('points') ?? '').split(' ').length >= 3, undefined, { timeout: SLOW });
    expect(await page.locator('#clients').textContent()).toMatch(/^\d+$/);

    mkdirSync('.tmp', { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    const png = readFileSync(SCREENSHOT);
    expect(statSync(SCREENSHOT).size).toBeGreaterThan(5000);
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));

    // Nothing blocked by the Content-Security-Policy, no script errors.
    expect(pageErrors).toEqual([]);
  }, 120_000);

  it('serves the data behind it at /status.json', async () => {
    const res = await fetch(`${px.metricsUrl}/status.json`);
    expect(res.status).toBe(200);
    const status = (await res.json()) as StatusReport;
    expect(status.pools.map((p) => p.database)).toEqual(['app', 'reports']);
    expect(status.totals.transactions).toBeGreaterThanOrEqual(6);
    expect(status.totals.poolSize).toBe(4);
  });
});
