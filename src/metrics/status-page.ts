/**
 * The live status page served at `/`: one self-contained HTML document (inline CSS and script, no
 * external resources, no build step) that polls `status.json` every second and redraws in place.
 *
 * It is a TypeScript string module rather than an .html file so `tsc` carries it into dist/ with
 * nothing to copy and no path to resolve at run time. The Content-Security-Policy allows exactly
 * this inline script and style (by hash), requests to the same origin, and nothing else.
 */
import { createHash } from 'node:crypto';

const STYLE = `
:root {
  --bg: #f6f7f9; --panel: #fff; --ink: #1d2430; --muted: #677285; --line: #e2e6ec;
  --accent: #2f6fde; --accent-soft: rgba(47, 111, 222, .12); --warn: #c9811a; --warn-soft: rgba(201, 129, 26, .14);
  --bad: #c2413b; --good: #2d8a57;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", "DejaVu Sans", sans-serif;
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); font-size: 14px; }
header { display: flex; align-items: baseline; gap: 12px; padding: 16px 24px; background: var(--panel); border-bottom: 1px solid var(--line); }
header h1 { margin: 0; font-size: 20px; letter-spacing: .02em; }
header .meta { color: var(--muted); }
header .spacer { flex: 1; }
.pill { display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: 12px; font-weight: 600; }
.pill.ok { background: rgba(45, 138, 87, .14); color: var(--good); }
.pill.warn { background: var(--warn-soft); color: var(--warn); }
.pill.bad { background: rgba(194, 65, 59, .14); color: var(--bad); }
main { padding: 20px 24px; display: grid; gap: 20px; max-width: 1400px; }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px; }
.tile, .panel { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; }
.tile { padding: 12px 14px; }
.tile .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .05em; }
.tile .value { font-size: 24px; font-weight: 600; margin-top: 4px; font-variant-numeric: tabular-nums; }
.tile .sub { color: var(--muted); font-size: 12px; margin-top: 2px; }
.panel { padding: 14px 16px; }
.panel h2 { margin: 0 0 10px; font-size: 14px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 16px; }
.chart { width: 100%; height: 140px; display: block; }
.chart .grid { stroke: var(--line); stroke-width: 1; }
.chart .axis { fill: var(--muted); font-size: 10px; }
.chart .line { fill: none; stroke-width: 1.8; }
.chart .tps .line { stroke: var(--accent); }
.chart .tps .area { fill: var(--accent-soft); }
.chart .wait .line { stroke: var(--warn); }
.chart .wait .area { fill: var(--warn-soft); }
.chart .wait .line2 { fill: none; stroke: var(--bad); stroke-width: 1.5; stroke-dasharray: 4 3; }
.legend { display: inline-block; width: 14px; height: 0; vertical-align: middle; margin: 0 4px 0 10px; border-top: 2px solid var(--warn); }
.legend.oldest { border-top: 2px dashed var(--bad); }
.chart-head { display: flex; justify-content: space-between; color: var(--muted); font-size: 12px; margin-bottom: 4px; }
.chart-head b { color: var(--ink); font-size: 13px; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 7px 10px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th { color: var(--muted); font-weight: 600; font-size: 12px; }
thead tr:first-child th { border-bottom: none; padding-bottom: 0; }
th.group { text-align: center; }
td.name, th.name { text-align: left; }
tbody tr:hover { background: #f0f4fb; }
.bar { display: inline-block; width: 70px; height: 8px; background: var(--line); border-radius: 4px; vertical-align: middle; margin-right: 6px; overflow: hidden; }
.bar i { display: block; height: 100%; background: var(--accent); }
.bar.hot i { background: var(--bad); }
.bar.warm i { background: var(--warn); }
.empty { color: var(--muted); text-align: center; padding: 24px; }
.mode { color: var(--muted); }
`;

const SCRIPT = `
(function () {
  'use strict';
  var HISTORY = 120;
  var tps = [];
  var wait = [];
  var oldest = [];
  var previous = null;
  var poolPrevious = {};

  function $(id) { return document.getElementById(id); }
  function text(id, value) { $(id).textContent = value; }
  function fmt(n) { return Math.round(n).toLocaleString('en-US'); }
  function fmtRate(n) { return n >= 100 ? fmt(n) : n.toFixed(1); }
  function fmtMs(seconds) {
    var ms = seconds * 1000;
    if (ms >= 10000) return fmt(seconds) + ' s';
    if (ms >= 1000) return seconds.toFixed(1) + ' s';
    return ms >= 100 ? fmt(ms) + ' ms' : ms.toFixed(1) + ' ms';
  }
  function fmtDuration(s) {
    var d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    if (d > 0) return d + 'd ' + h + 'h';
    if (h > 0) return h + 'h ' + m + 'm';
    return m + 'm ' + (s % 60) + 's';
  }
  function push(series, value) { series.push(value); if (series.length > HISTORY) series.shift(); }
  function el(tag, cls, content) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (content !== undefined) e.textContent = content;
    return e;
  }

  // lines: [{ values: [...], cls: 'line' | 'line2', area: true | false }], all on one scale.
  function drawChart(svg, lines, kind, unit) {
    var w = svg.clientWidth || 400, h = svg.clientHeight || 140, left = 40, bottom = 16, top = 8;
    var max = 0;
    lines.forEach(function (l) { for (var i = 0; i < l.values.length; i++) max = Math.max(max, l.values[i]); });
    max = niceCeil(max);
    var series = lines[0].values;
    var ns = 'http://www.w3.org/2000/svg';
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h);
    svg.setAttribute('data-points', String(series.length));
    var g = document.createElementNS(ns, 'g');
    g.setAttribute('class', kind);
    svg.appendChild(g);
    for (var k = 0; k <= 2; k++) {
      var y = top + (h - top - bottom) * k / 2;
      var line = document.createElementNS(ns, 'line');
      line.setAttribute('class', 'grid');
      line.setAttribute('x1', left); line.setAttribute('x2', w); line.setAttribute('y1', y); line.setAttribute('y2', y);
      g.appendChild(line);
      var label = document.createElementNS(ns, 'text');
      label.setAttribute('class', 'axis');
      label.setAttribute('x', left - 6); label.setAttribute('y', y + 3); label.setAttribute('text-anchor', 'end');
      label.textContent = fmtAxis(max * (2 - k) / 2, unit);
      g.appendChild(label);
    }
    var ago = document.createElementNS(ns, 'text');
    ago.setAttribute('class', 'axis'); ago.setAttribute('x', left); ago.setAttribute('y', h - 3);
    ago.textContent = HISTORY + ' s ago';
    g.appendChild(ago);
    var now = document.createElementNS(ns, 'text');
    now.setAttribute('class', 'axis'); now.setAttribute('x', w); now.setAttribute('y', h - 3); now.setAttribute('text-anchor', 'end');
    now.textContent = 'now';
    g.appendChild(now);
    if (series.length < 2) return;
    var step = (w - left) / (HISTORY - 1);
    lines.forEach(function (l) {
      var values = l.values;
      var x0 = w - (values.length - 1) * step;
      var pts = [];
      for (var j = 0; j < values.length; j++) {
        var px = x0 + j * step;
        var py = top + (h - top - bottom) * (1 - (max > 0 ? values[j] / max : 0));
        pts.push(px.toFixed(1) + ',' + py.toFixed(1));
      }
      if (l.area) {
        var area = document.createElementNS(ns, 'polygon');
        area.setAttribute('class', 'area');
        area.setAttribute('points', x0.toFixed(1) + ',' + (h - bottom) + ' ' + pts.join(' ') + ' ' + w + ',' + (h - bottom));
        g.appendChild(area);
      }
      var poly = document.createElementNS(ns, 'polyline');
      poly.setAttribute('class', l.cls);
      poly.setAttribute('points', pts.join(' '));
      g.appendChild(poly);
    });
  }
  function niceCeil(v) {
    if (v <= 0) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v))), m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }
  function fmtAxis(v, unit) {
    if (unit === ' ms' && v >= 1000) return fmtAxis(v / 1000, '') + ' s';
    return (v >= 1000 ? (v / 1000) + 'k' : (v < 10 ? String(Math.round(v * 10) / 10) : String(Math.round(v)))) + unit;
  }

  function render(s) {
    var t = s.totals;
    var dt = previous ? (s.time - previous.time) / 1000 : 0;
    var rate = 0, avgWait = 0;
    if (previous && dt > 0) {
      rate = Math.max(0, t.transactions - previous.totals.transactions) / dt;
      var dn = t.waitCount - previous.totals.waitCount;
      avgWait = dn > 0 ? (t.waitSeconds - previous.totals.waitSeconds) / dn : 0;
      push(tps, rate);
      push(wait, avgWait * 1000);
      push(oldest, t.oldestWaitSeconds * 1000);
    }
    previous = s;

    text('version', 'v' + s.version);
    text('uptime', 'up ' + fmtDuration(s.uptimeSeconds));
    var state = $('state');
    state.textContent = s.draining ? 'draining' : 'running';
    state.className = 'pill ' + (s.draining ? 'warn' : 'ok');
    text('updated', 'updated ' + new Date(s.time).toLocaleTimeString('en-GB'));

    text('clients', fmt(t.clients));
    text('clients-sub', 'of ' + fmt(t.maxClientConn) + ' max \\u00b7 ' + fmt(t.clientsActive) + ' active, ' + fmt(t.clientsIdle) + ' idle');
    text('waiting', fmt(t.clientsWaiting));
    text('waiting-sub', t.oldestWaitSeconds > 0 ? 'oldest ' + fmtMs(t.oldestWaitSeconds) : 'nobody waiting');
    text('servers', fmt(t.serversActive + t.serversIdle + t.serversConnecting + t.serversResetting));
    text('servers-sub', fmt(t.serversActive) + ' active, ' + fmt(t.serversIdle) + ' idle, ' + fmt(t.serversConnecting) + ' connecting');
    text('tps', fmtRate(rate));
    text('tps-sub', fmt(t.transactions) + ' since start');
    text('avgwait', fmtMs(avgWait));
    text('avgwait-sub', fmt(t.waitCount) + ' waits since start');
    text('tps-now', fmtRate(rate) + ' /s');
    text('wait-now', fmtMs(avgWait));

    drawChart($('chart-tps'), [{ values: tps, cls: 'line', area: true }], 'tps', '');
    drawChart($('chart-wait'), [{ values: wait, cls: 'line', area: true }, { values: oldest, cls: 'line2', area: false }], 'wait', ' ms');
    renderPools(s.pools, dt);
  }

  function renderPools(pools, dt) {
    var body = $('pools');
    while (body.firstChild) body.removeChild(body.firstChild);
    if (pools.length === 0) {
      var row = el('tr');
      var cell = el('td', 'empty', 'No pools yet: a pool appears when the first client logs in to a database.');
      cell.colSpan = 13;
      row.appendChild(cell);
      body.appendChild(row);
      return;
    }
    var next = {};
    pools.forEach(function (p) {
      var key = p.database + '/' + p.user;
      var before = poolPrevious[key];
      var rate = before !== undefined && dt > 0 ? Math.max(0, p.transactions - before) / dt : 0;
      next[key] = p.transactions;
      var tr = el('tr');
      tr.setAttribute('data-pool', key);
      function cell(field, value, cls) {
        var td = el('td', cls, value);
        td.setAttribute('data-field', field);
        tr.appendChild(td);
        return td;
      }
      cell('database', p.database, 'name');
      cell('user', p.user, 'name');
      cell('mode', p.mode, 'name mode');
      cell('clients-active', fmt(p.clients.active));
      cell('clients-waiting', fmt(p.clients.waiting));
      cell('clients-idle', fmt(p.clients.idle));
      cell('servers-active', fmt(p.servers.active));
      cell('servers-idle', fmt(p.servers.idle));
      cell('servers-connecting', fmt(p.servers.connecting));
      cell('pool-size', fmt(p.poolSize));
      var sat = cell('saturation', '');
      var bar = el('span', 'bar' + (p.saturation >= 1 ? ' hot' : p.saturation >= 0.75 ? ' warm' : ''));
      var fill = el('i');
      fill.style.width = Math.min(100, p.saturation * 100).toFixed(0) + '%';
      bar.appendChild(fill);
      sat.appendChild(bar);
      sat.appendChild(document.createTextNode(Math.round(p.saturation * 100) + '%'));
      cell('transactions', fmt(p.transactions));
      cell('tps', fmtRate(rate));
      body.appendChild(tr);
    });
    poolPrevious = next;
  }

  function poll() {
    fetch('status.json', { cache: 'no-store' })
      .then(function (r) { if (!r.ok) throw new Error('HTTP ' + r.status); return r.json(); })
      .then(function (s) { render(s); document.body.setAttribute('data-state', 'live'); })
      .catch(function (e) {
        var state = $('state');
        state.textContent = 'unreachable';
        state.className = 'pill bad';
        state.title = String(e);
        document.body.setAttribute('data-state', 'error');
      })
      .then(function () { setTimeout(poll, 1000); });
  }
  poll();
})();
`;

function sha256(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

/** Exactly this page's inline script and style may run; data comes from the same origin only. */
export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  `script-src ${sha256(SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export const STATUS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pgmux status</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body data-state="loading">
<header>
  <h1>pgmux</h1>
  <span class="meta" id="version"></span>
  <span class="pill ok" id="state">loading</span>
  <span class="spacer"></span>
  <span class="meta" id="uptime"></span>
  <span class="meta" id="updated"></span>
</header>
<main>
  <section class="tiles">
    <div class="tile"><div class="label">Clients</div><div class="value" id="clients">–</div><div class="sub" id="clients-sub"></div></div>
    <div class="tile"><div class="label">Waiting</div><div class="value" id="waiting">–</div><div class="sub" id="waiting-sub"></div></div>
    <div class="tile"><div class="label">Server connections</div><div class="value" id="servers">–</div><div class="sub" id="servers-sub"></div></div>
    <div class="tile"><div class="label">Transactions / s</div><div class="value" id="tps">–</div><div class="sub" id="tps-sub"></div></div>
    <div class="tile"><div class="label">Average wait</div><div class="value" id="avgwait">–</div><div class="sub" id="avgwait-sub"></div></div>
  </section>
  <section class="panel charts">
    <div>
      <div class="chart-head"><b>Transactions per second</b><span id="tps-now"></span></div>
      <svg class="chart" id="chart-tps" data-points="0" role="img" aria-label="Transactions per second over the last two minutes"></svg>
    </div>
    <div>
      <div class="chart-head"><span><b>Wait for a server</b><i class="legend"></i>average served<i class="legend oldest"></i>oldest waiting</span><span id="wait-now"></span></div>
      <svg class="chart" id="chart-wait" data-points="0" role="img" aria-label="Average wait time over the last two minutes"></svg>
    </div>
  </section>
  <section class="panel">
    <h2>Pools</h2>
    <table>
      <thead>
        <tr><th class="name" colspan="3"></th><th class="group" colspan="3">Clients</th><th class="group" colspan="3">Servers</th><th colspan="4"></th></tr>
        <tr>
          <th class="name">Database</th><th class="name">User</th><th class="name">Mode</th>
          <th>active</th><th>waiting</th><th>idle</th>
          <th>active</th><th>idle</th><th>connecting</th>
          <th>Pool size</th><th>Saturation</th><th>Transactions</th><th>per s</th>
        </tr>
      </thead>
      <tbody id="pools"><tr><td class="empty" colspan="13">Loading…</td></tr></tbody>
    </table>
  </section>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
