/**
 * The live status page, in headless Chromium (Debian's `chromium` package, driven by playwright-core;
 * .ci/run installs it). Waits for conditions, never fixed sleeps: CI has two slow cores.
 */
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import pg from 'pg';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, createTestDatabase } from './harness/context.js';
import { startPgmux, type TestPgmux } from './harness/pgmux.js';
import type { StatusReport } from '../src/metrics/metrics.js';
import { APP_ROLE } from './harness/roles.js';
import { decodePng, pixel } from './harness/png.js';

/** The little of the DOM the functions run in the page use (the project's tsconfig has no DOM lib). */
declare const document: {
  querySelector(selector: string): { textContent: string | null; getAttribute(name: string): string | null } | null;
  body: { getAttribute(name: string): string | null };
};

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SCREENSHOT = '.tmp/status-page.png';
const HISTORY_SCREENSHOT = '.tmp/status-page-history.png';
const DRILLDOWN_SCREENSHOT = '.tmp/status-page-drilldown.png';
const EVENTS_SCREENSHOT = '.tmp/status-page-events.png';
const SLOW = 30_000;

let px: TestPgmux;
let dbName: string;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`);
  const db = await createTestDatabase('status_page');
  dbName = db;
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
  watch(page);
}, 120_000);

/** Script errors and console errors (a CSP violation is one) of a page, into pageErrors. */
function watch(p: Page): void {
  p.on('pageerror', (err) => pageErrors.push(`pageerror: ${err.message}`));
  p.on('console', (msg) => {
    if (msg.type() === 'error') pageErrors.push(`console: ${msg.text()}`);
  });
}

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
    expect(await page.locator('#state').textContent()).toBe('ready');

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

  it('draws the history kept by pgmux: traffic that ran before the page was opened is on its charts', async () => {
    // About four seconds of load before any page polls: three clients on a pool of one (so they
    // wait), query time, errors (22: division by zero) and a pin (LISTEN).
    const started = Date.now();
    await Promise.all(
      [0, 1, 2].map(async (n) => {
        const client = new pg.Client(px.url('reports', APP_ROLE.name, APP_ROLE.password));
        await client.connect();
        if (n === 0) {
          await client.query('listen status_page_history');
          await client.query('unlisten status_page_history');
        }
        while (Date.now() - started < 4000) {
          await client.query('select pg_sleep(0.002)');
          if (n === 1) await client.query('select 1/0').catch(() => undefined);
        }
        await client.end();
      }),
    );
    // One more sample so the last second of the load is in.
    await new Promise((r) => setTimeout(r, 1100));

    const fresh = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
    try {
      watch(fresh);
      await fresh.goto(`${px.metricsUrl}/`);
      // The first poll (status.json?history=1) draws everything: no waiting for points to accumulate.
      await fresh.waitForFunction(() => document.body.getAttribute('data-state') === 'live', undefined, { timeout: SLOW });
      const attr = async (selector: string, name: string) => Number(await fresh.locator(selector).getAttribute(name));
      expect(await attr('#chart-tps', 'data-points')).toBeGreaterThanOrEqual(5);
      expect(await attr('#chart-tps', 'data-max')).toBeGreaterThan(0);
      expect(await attr('#chart-query', 'data-max')).toBeGreaterThan(0);
      expect(await attr('#chart-xact', 'data-max')).toBeGreaterThan(0);
      expect(await attr('#chart-wait', 'data-max')).toBeGreaterThan(0);
      expect(await fresh.locator('#errors-legend [data-key="22"]').textContent()).toMatch(/^class 22 \(\d+\)$/);
      expect(await fresh.locator('#pins-legend [data-key="listen"]').textContent()).toBe('listen (1)');

      mkdirSync('.tmp', { recursive: true });
      await fresh.screenshot({ path: HISTORY_SCREENSHOT, fullPage: true });
      const png = readFileSync(HISTORY_SCREENSHOT);
      expect(png.length).toBeGreaterThan(20_000);
      expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));

      // In the TPS chart's box, the line's colour (--accent, #2f6fde) stands well above the baseline in
      // the columns of the load, and lies on the baseline in the quiet ones before it.
      const image = decodePng(png);
      const box = await fresh.locator('#chart-tps').boundingBox();
      if (box === null) throw new Error('no TPS chart');
      const bottom = Math.floor(box.y + box.height - 16); // the chart's x axis (16 px margin for labels)
      let raised = 0;
      let flat = 0;
      for (let x = Math.ceil(box.x) + 46; x < Math.floor(box.x + box.width); x++) {
        let top = Number.POSITIVE_INFINITY;
        for (let y = Math.ceil(box.y); y <= bottom + 2; y++) {
          const [r, g, b] = pixel(image, x, y);
          if (Math.abs(r - 47) + Math.abs(g - 111) + Math.abs(b - 222) < 60) {
            top = y;
            break;
          }
        }
        if (top === Number.POSITIVE_INFINITY) continue;
        if (top < bottom - 20) raised++;
        else flat++;
      }
      expect(raised).toBeGreaterThanOrEqual(10);
      expect(flat).toBeGreaterThanOrEqual(1);
    } finally {
      await fresh.close();
    }
    expect(pageErrors).toEqual([]);
  }, 60_000);

  it('drills down into a pool on a click: its clients (application, state, transaction age) and servers', async () => {
    // A client holding a transaction open, with an application_name that is markup (it must show as text).
    const holder = new pg.Client({ connectionString: px.url('app', APP_ROLE.name, APP_ROLE.password), application_name: '<b>drill</b>' });
    await holder.connect();
    await holder.query('begin');
    await holder.query('select 1');
    const other = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
    try {
      watch(other);
      await other.goto(`${px.metricsUrl}/`);
      await other.locator('tr[data-pool="app/app"]').click();
      const row = other.locator('tr.detail [data-part="clients"] tbody tr', { hasText: '<b>drill</b>' });
      await row.waitFor();
      expect(await row.locator('td[data-field="state"]').textContent()).toBe('active');
      expect(await row.locator('td[data-field="transaction"]').textContent()).toMatch(/\d( ms| s)$/);
      expect(await row.locator('td[data-field="server"]').textContent()).toMatch(/^s\d+$/);
      expect(await other.locator('tr.detail b').count()).toBe(0); // rendered as text, never as markup
      const servers = other.locator('tr.detail [data-part="servers"] tbody tr', { hasText: '<b>drill</b>' });
      expect(await servers.locator('td[data-field="state"]').textContent()).toBe('active');
      expect(await servers.locator('td[data-field="client"]').textContent()).toMatch(/^c\d+$/);
      // It stays open across polls, and closes on a second click.
      await other.waitForTimeout(1200);
      expect(await other.locator('tr.detail').count()).toBe(1);
      mkdirSync('.tmp', { recursive: true });
      await other.screenshot({ path: DRILLDOWN_SCREENSHOT, fullPage: true });
      expect(readFileSync(DRILLDOWN_SCREENSHOT).subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
      await other.locator('tr[data-pool="app/app"]').click();
      expect(await other.locator('tr.detail').count()).toBe(0);
    } finally {
      await other.close();
      await holder.query('commit');
      await holder.end();
    }
    const detail = await fetch(`${px.metricsUrl}/status/pool.json?database=app&user=${APP_ROLE.name}`);
    expect(detail.status).toBe(200);
    expect((await fetch(`${px.metricsUrl}/status/pool.json?database=nope&user=x`)).status).toBe(404);
    expect(pageErrors).toEqual([]);
  }, 60_000);

  it('lists events: an upstream that closed every server connection, PAUSE and RESUME, a reload', async () => {
    await run('reports', ['select 1']); // the pool has a logged-in server connection
    await new Promise((r) => setTimeout(r, 1100)); // ...that a sample has seen
    // What an upstream restart does to pgmux: PostgreSQL ends every backend.
    const direct = await adminClient();
    try {
      await direct.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and usename = $2', [dbName, APP_ROLE.name]);
    } finally {
      await direct.end();
    }
    const statusNow = async () => (await (await fetch(`${px.metricsUrl}/status.json`)).json()) as StatusReport;
    for (let deadline = Date.now() + SLOW; ; ) {
      const status = await statusNow();
      if (status.events.some((e) => e.kind === 'upstream-lost' && e.scope === 'reports/app')) break;
      if (Date.now() > deadline) throw new Error(`no upstream-lost event: ${JSON.stringify(status.events)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    px.pgmux.registry.pause('reports');
    px.pgmux.registry.resume('reports');
    expect(px.pgmux.reload().ok).toBe(true);
    const events = (await statusNow()).events;
    expect(events.slice(0, 3).map((e) => e.kind)).toEqual(['reload', 'resume', 'pause']); // newest first
    expect(events[0].message).toContain('configuration applied');

    const other = await browser.newPage({ viewport: { width: 1280, height: 1300 } });
    try {
      watch(other);
      await other.goto(`${px.metricsUrl}/`);
      const lost = other.locator('#events li[data-kind="upstream-lost"]', { hasText: 'reports/app' });
      await lost.waitFor();
      expect(await lost.locator('.message').textContent()).toMatch(/^all 1 server connection\(s\) lost/);
      expect(await other.locator('#events li[data-kind="pause"] .message').textContent()).toBe('PAUSE reports');
      expect(await other.locator('#events li[data-kind="resume"] .message').textContent()).toBe('RESUME reports');
      expect(await other.locator('#events li[data-kind="reload"] .message').textContent()).toContain('reload: configuration applied');
      mkdirSync('.tmp', { recursive: true });
      await other.screenshot({ path: EVENTS_SCREENSHOT, fullPage: true });
      expect(readFileSync(EVENTS_SCREENSHOT).subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    } finally {
      await other.close();
    }
    expect(pageErrors).toEqual([]);
  }, 60_000);

  it('serves the data behind it at /status.json', async () => {
    const res = await fetch(`${px.metricsUrl}/status.json`);
    expect(res.status).toBe(200);
    const status = (await res.json()) as StatusReport;
    expect(status.pools.map((p) => p.database)).toEqual(['app', 'reports']);
    expect(status.totals.transactions).toBeGreaterThanOrEqual(6);
    expect(status.totals.poolSize).toBe(4);
    expect(status.readiness).toEqual({ ready: true, reasons: [] });
    expect(status.history).toBeUndefined();
    expect(Object.keys(status.percentiles)).toEqual(['wait', 'query', 'transaction']);

    // ?history=1: the samples so far (one a second since pgmux started); ?since=: only newer ones.
    const full = (await (await fetch(`${px.metricsUrl}/status.json?history=1`)).json()) as StatusReport;
    const history = full.history;
    if (history === undefined) throw new Error('no history');
    expect(history.capacity).toBe(900);
    expect(history.t.length).toBeGreaterThanOrEqual(5);
    expect(history.series.tps).toHaveLength(history.t.length);
    expect(Math.max(...history.series.tps.map((v) => v ?? 0))).toBeGreaterThan(0);
    expect(Math.max(...history.series.queryP99.map((v) => v ?? 0))).toBeGreaterThan(0.001); // pg_sleep(0.002)
    expect(history.errorsByClass['22'].reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(1);
    expect(history.pinsByReason.listen.reduce((a, b) => a + b, 0)).toBe(1);
    const lastT = history.t[history.t.length - 1];
    const later = (await (await fetch(`${px.metricsUrl}/status.json?since=${lastT}`)).json()) as StatusReport;
    expect(later.history?.t.every((t) => t > lastT)).toBe(true);
    expect(later.history?.t.length).toBeLessThanOrEqual(2);
  });

  it("turns its badge red with /readyz's reason while an upstream is unreachable", async () => {
    // A port nothing listens on: bind one, note it, close it.
    const free = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, '127.0.0.1', () => {
        const port = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(port));
      });
    });
    const down = await startPgmux({ metrics: true, settings: { auth_type: 'trust' }, databases: { gone: { host: '127.0.0.1', port: free } } });
    try {
      expect((await fetch(`${down.metricsUrl}/readyz`)).status).toBe(503);
      const other = await browser.newPage();
      try {
        await other.goto(`${down.metricsUrl}/`);
        await other.waitForFunction(() => document.querySelector('#state')?.textContent === 'not ready', undefined, { timeout: SLOW });
        expect(await other.locator('#state').getAttribute('class')).toBe('pill bad');
        expect(await other.locator('#not-ready').textContent()).toContain(`database "gone" (127.0.0.1:${free})`);
      } finally {
        await other.close();
      }
    } finally {
      await down.stop();
    }
  }, 60_000);
});
