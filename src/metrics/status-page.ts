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
.chart.tps .line { stroke: var(--accent); }
.chart.tps .area { fill: var(--accent-soft); }
.chart.wait .line { stroke: var(--warn); }
.chart.wait .area { fill: var(--warn-soft); }
.chart.wait .line2 { fill: none; stroke: var(--bad); stroke-width: 1.5; stroke-dasharray: 4 3; }
.chart.query .line { stroke: var(--accent); }
.chart.query .area { fill: var(--accent-soft); }
.chart.xact .line { stroke: var(--good); }
.chart.xact .area { fill: rgba(45, 138, 87, .12); }
.chart .line.p50 { stroke-width: 1.2; stroke-dasharray: 2 2; }
.chart.keyed .line { stroke-width: 1.5; }
.legend { display: inline-block; width: 14px; height: 0; vertical-align: middle; margin: 0 4px 0 10px; border-top: 2px solid var(--warn); }
.legend.p50 { border-top-style: dotted; }
.legend.q { border-top-color: var(--accent); }
.legend.x { border-top-color: var(--good); }
.legend.oldest { border-top: 2px dashed var(--bad); }
.keys { color: var(--muted); font-size: 12px; margin-top: 4px; min-height: 16px; }
.keys .key { margin-right: 12px; white-space: nowrap; }
.keys .swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; vertical-align: -1px; }
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
tr.pool-row { cursor: pointer; }
tr.pool-row.open { background: #e8effb; }
tr.pool-row:focus { outline: 2px solid var(--accent-soft); }
tr.detail > td { background: #fafbfc; padding: 10px 14px 14px; text-align: left; white-space: normal; }
.detail-part { display: inline-block; vertical-align: top; margin-right: 28px; }
.detail-part h3 { margin: 4px 0 6px; font-size: 13px; }
.detail-table { width: auto; }
.detail-table th, .detail-table td { padding: 4px 10px; font-size: 12px; }
.mode { color: var(--muted); }
.events { list-style: none; margin: 0; padding: 0; max-height: 220px; overflow-y: auto; font-size: 13px; }
.events li { padding: 4px 0; border-bottom: 1px solid var(--line); }
.events li.muted { color: var(--muted); border: none; }
.events time { color: var(--muted); font-variant-numeric: tabular-nums; margin-right: 10px; }
.events .kind { display: inline-block; min-width: 110px; font-weight: 600; font-size: 12px; }
.events .scope { color: var(--muted); margin-right: 8px; }
.events .reload-failed .kind, .events .upstream-lost .kind, .events .login-failing .kind, .events .kill .kind { color: var(--bad); }
.events .pause .kind, .events .kill-client .kind { color: var(--warn); }
.events .resume .kind, .events .login-recovered .kind, .events .reload .kind { color: var(--good); }
.hint { color: var(--muted); font-weight: normal; font-size: 12px; margin-left: 8px; }
`;

const SCRIPT = `
(function () {
  'use strict';
  // The history comes from pgmux (status.json?history=1, then ?since=<last sample>): 15 minutes at
  // one sample a second, so the charts are full on first load.
  var FIELDS = ['tps', 'qps', 'clients', 'clientsActive', 'clientsWaiting', 'serversActive', 'serversIdle', 'serversConnecting',
    'waitAvg', 'waitOldest', 'waitP50', 'waitP99', 'queryP50', 'queryP99', 'xactP50', 'xactP99',
    'serverLoginFailures', 'clientLoginFailures', 'errors'];
  var PALETTE = ['#c2413b', '#2f6fde', '#c9811a', '#2d8a57', '#8a4fd0', '#d04f9a', '#3aa6b9', '#677285'];
  var hist = { t: [], series: {}, errorsByClass: {}, pinsByReason: {}, capacity: 900, intervalMs: 1000 };
  FIELDS.forEach(function (f) { hist.series[f] = []; });
  var lastSample = 0;
  var poolPrevious = {};
  // The pool opened for drill-down (a click on its row), and the detail row shown under it.
  var open = null;
  var detailRow = null;
  var previousTime = 0;

  function $(id) { return document.getElementById(id); }
  function text(id, value) { $(id).textContent = value; }
  function fmt(n) { return Math.round(n).toLocaleString('en-US'); }
  function fmtRate(n) { return n >= 100 ? fmt(n) : n.toFixed(1); }
  function fmtMs(seconds) {
    if (seconds === null || seconds === undefined) return '\\u2013';
    var ms = seconds * 1000;
    if (ms >= 10000) return fmt(seconds) + ' s';
    if (ms >= 1000) return seconds.toFixed(1) + ' s';
    if (ms >= 100) return fmt(ms) + ' ms';
    return (ms >= 1 ? ms.toFixed(1) : ms.toFixed(2)) + ' ms';
  }
  function fmtDuration(s) {
    s = Math.floor(s);
    var d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    if (d > 0) return d + 'd ' + h + 'h';
    if (h > 0) return h + 'h ' + m + 'm';
    return m + 'm ' + (s % 60) + 's';
  }
  function el(tag, cls, content) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (content !== undefined) e.textContent = content;
    return e;
  }
  function last(values) { return values.length > 0 ? values[values.length - 1] : null; }
  function ms(values) { return values.map(function (v) { return v === null ? null : v * 1000; }); }

  // Appends a history report (columns, oldest first) and keeps the last capacity samples.
  function merge(h) {
    if (!h) return;
    hist.capacity = h.capacity; hist.intervalMs = h.intervalMs;
    var before = hist.t.length, n = h.t.length;
    hist.t = hist.t.concat(h.t);
    FIELDS.forEach(function (f) { hist.series[f] = hist.series[f].concat(h.series[f] || []); });
    [['errorsByClass', h.errorsByClass], ['pinsByReason', h.pinsByReason]].forEach(function (pair) {
      var into = hist[pair[0]], from = pair[1] || {};
      Object.keys(into).forEach(function (k) { into[k] = into[k].concat(from[k] || zeros(n)); });
      Object.keys(from).forEach(function (k) { if (!into[k]) into[k] = zeros(before).concat(from[k]); });
    });
    var extra = hist.t.length - hist.capacity;
    if (extra > 0) {
      hist.t = hist.t.slice(extra);
      FIELDS.forEach(function (f) { hist.series[f] = hist.series[f].slice(extra); });
      ['errorsByClass', 'pinsByReason'].forEach(function (g) {
        Object.keys(hist[g]).forEach(function (k) { hist[g][k] = hist[g][k].slice(extra); });
      });
    }
    if (hist.t.length > 0) lastSample = hist.t[hist.t.length - 1];
  }
  function zeros(n) { var a = []; for (var i = 0; i < n; i++) a.push(0); return a; }

  // lines: [{ values: [...], cls, color, area, dash }], all on one scale, x from the sample times.
  function drawChart(svg, lines, unit) {
    var w = svg.clientWidth || 400, h = svg.clientHeight || 140, left = 44, bottom = 16, top = 8;
    // The window grows with the history, from a minute up to its capacity (15 minutes).
    var times = hist.t, end = last(times) || 0;
    var span = Math.min(hist.capacity * hist.intervalMs, Math.max(60000, times.length > 0 ? end - times[0] + hist.intervalMs : 0));
    var max = 0, seriesMax = 0;
    lines.forEach(function (l, n) {
      for (var i = 0; i < l.values.length; i++) {
        if (l.values[i] === null) continue;
        max = Math.max(max, l.values[i]);
        if (n === 0) seriesMax = Math.max(seriesMax, l.values[i]);
      }
    });
    max = niceCeil(max);
    var ns = 'http://www.w3.org/2000/svg';
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h);
    svg.setAttribute('data-points', String(times.length));
    svg.setAttribute('data-max', String(seriesMax));
    var g = document.createElementNS(ns, 'g');
    svg.appendChild(g);
    function add(tag, attrs, content) {
      var e = document.createElementNS(ns, tag);
      Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
      if (content !== undefined) e.textContent = content;
      g.appendChild(e);
      return e;
    }
    for (var k = 0; k <= 2; k++) {
      var y = top + (h - top - bottom) * k / 2;
      add('line', { 'class': 'grid', x1: left, x2: w, y1: y, y2: y });
      add('text', { 'class': 'axis', x: left - 6, y: y + 3, 'text-anchor': 'end' }, fmtAxis(max * (2 - k) / 2, unit));
    }
    add('text', { 'class': 'axis', x: left, y: h - 3 }, span >= 120000 ? Math.round(span / 60000) + ' min ago' : Math.round(span / 1000) + ' s ago');
    add('text', { 'class': 'axis', x: w, y: h - 3, 'text-anchor': 'end' }, 'now');
    if (times.length < 2) return;
    function px(t) { return w - (end - t) / span * (w - left); }
    function py(v) { return top + (h - top - bottom) * (1 - (max > 0 ? v / max : 0)); }
    lines.forEach(function (l) {
      // A null (no observation in that second) breaks the line.
      var runs = [], run = [];
      for (var j = 0; j < l.values.length; j++) {
        if (l.values[j] === null || times[j] <= end - span) { if (run.length) runs.push(run); run = []; continue; }
        run.push([px(times[j]), py(l.values[j])]);
      }
      if (run.length) runs.push(run);
      runs.forEach(function (r) {
        var pts = r.map(function (p) { return p[0].toFixed(1) + ',' + p[1].toFixed(1); });
        // A lone second with data: a short dash, so it shows.
        if (r.length === 1) pts = [(r[0][0] - 2).toFixed(1) + ',' + r[0][1].toFixed(1), (r[0][0] + 2).toFixed(1) + ',' + r[0][1].toFixed(1)];
        if (l.area) {
          add('polygon', { 'class': 'area', points: r[0][0].toFixed(1) + ',' + (h - bottom) + ' ' + pts.join(' ') + ' ' + r[r.length - 1][0].toFixed(1) + ',' + (h - bottom) });
        }
        var attrs = { 'class': l.cls || 'line', points: pts.join(' ') };
        if (l.color) attrs.stroke = l.color;
        if (l.dash) attrs['stroke-dasharray'] = '4 3';
        add('polyline', attrs);
      });
    });
  }
  function niceCeil(v) {
    if (v <= 0) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v))), m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }
  function fmtAxis(v, unit) {
    if (unit === ' ms' && v >= 1000) return fmtAxis(v / 1000, '') + ' s';
    return (v >= 1000 ? (v / 1000) + 'k' : (v < 10 ? String(Math.round(v * 100) / 100) : String(Math.round(v)))) + unit;
  }
  // A legend built from data (SQLSTATE classes, pin reasons): text nodes only.
  function legend(id, entries) {
    var box = $(id);
    while (box.firstChild) box.removeChild(box.firstChild);
    if (entries.length === 0) { box.appendChild(el('span', 'muted', 'none in the last ' + Math.round(hist.capacity * hist.intervalMs / 60000) + ' min')); return; }
    entries.forEach(function (e) {
      var key = el('span', 'key');
      key.setAttribute('data-key', e.key);
      var sw = el('i', 'swatch');
      sw.style.backgroundColor = e.color;
      key.appendChild(sw);
      key.appendChild(document.createTextNode(e.label + ' (' + fmt(e.total) + ')'));
      box.appendChild(key);
    });
  }
  function sum(values) { var t = 0; for (var i = 0; i < values.length; i++) t += values[i] || 0; return t; }
  function keyedLines(group, labelOf) {
    var keys = Object.keys(hist[group]).filter(function (k) { return sum(hist[group][k]) > 0; }).sort();
    var lines = [], entries = [];
    keys.forEach(function (k, i) {
      var color = PALETTE[i % PALETTE.length];
      lines.push({ values: hist[group][k], cls: 'line', color: color });
      entries.push({ key: k, label: labelOf(k), color: color, total: sum(hist[group][k]) });
    });
    return { lines: lines, entries: entries };
  }

  function render(s) {
    merge(s.history);
    var t = s.totals, S = hist.series;
    var dt = previousTime ? (s.time - previousTime) / 1000 : 0;
    previousTime = s.time;
    var rate = last(S.tps) || 0, avgWait = last(S.waitAvg);

    text('version', 'v' + s.version);
    text('uptime', 'up ' + fmtDuration(s.uptimeSeconds));
    var state = $('state');
    // The badge says what /readyz says: a load balancer's view of this pgmux, with the reason when not ready.
    var ready = s.readiness ? s.readiness.ready : true;
    state.textContent = s.draining ? 'draining' : ready ? 'ready' : 'not ready';
    state.className = 'pill ' + (s.draining ? 'warn' : ready ? 'ok' : 'bad');
    var reasons = s.readiness && s.readiness.reasons.length > 0 ? s.readiness.reasons.join('; ') : '';
    state.title = reasons;
    text('not-ready', reasons);
    text('updated', 'updated ' + new Date(s.time).toLocaleTimeString('en-GB'));

    text('clients', fmt(t.clients));
    text('clients-sub', 'of ' + fmt(t.maxClientConn) + ' max \\u00b7 ' + fmt(t.clientsActive) + ' active, ' + fmt(t.clientsIdle) + ' idle');
    text('waiting', fmt(t.clientsWaiting));
    text('waiting-sub', t.oldestWaitSeconds > 0 ? 'oldest ' + fmtMs(t.oldestWaitSeconds) : 'nobody waiting');
    text('servers', fmt(t.serversActive + t.serversIdle + t.serversConnecting + t.serversResetting));
    text('servers-sub', fmt(t.serversActive) + ' active, ' + fmt(t.serversIdle) + ' idle, ' + fmt(t.serversConnecting) + ' connecting');
    text('tps', fmtRate(rate));
    text('tps-sub', fmt(t.transactions) + ' since start');
    text('avgwait', fmtMs(avgWait === null ? 0 : avgWait));
    text('avgwait-sub', 'p99 ' + fmtMs(s.percentiles.wait.p99) + ' \\u00b7 ' + fmt(t.waitCount) + ' since start');
    text('query-p99', fmtMs(s.percentiles.query.p99));
    text('query-p99-sub', 'p50 ' + fmtMs(s.percentiles.query.p50) + ' \\u00b7 transactions p99 ' + fmtMs(s.percentiles.transaction.p99));
    text('tps-now', fmtRate(rate) + ' /s');
    text('wait-now', 'p99 ' + fmtMs(s.percentiles.wait.p99));
    text('query-now', 'p50 ' + fmtMs(s.percentiles.query.p50) + ' \\u00b7 p99 ' + fmtMs(s.percentiles.query.p99));
    text('xact-now', 'p50 ' + fmtMs(s.percentiles.transaction.p50) + ' \\u00b7 p99 ' + fmtMs(s.percentiles.transaction.p99));

    drawChart($('chart-tps'), [{ values: S.tps, cls: 'line', area: true }], '');
    drawChart($('chart-wait'), [
      { values: ms(S.waitP99), cls: 'line', area: true },
      { values: ms(S.waitP50), cls: 'line p50' },
      { values: ms(S.waitOldest), cls: 'line2' }
    ], ' ms');
    drawChart($('chart-query'), [{ values: ms(S.queryP99), cls: 'line', area: true }, { values: ms(S.queryP50), cls: 'line p50' }], ' ms');
    drawChart($('chart-xact'), [{ values: ms(S.xactP99), cls: 'line', area: true }, { values: ms(S.xactP50), cls: 'line p50' }], ' ms');
    var errs = keyedLines('errorsByClass', function (k) { return 'class ' + k; });
    var logins = sum(S.serverLoginFailures), clientLogins = sum(S.clientLoginFailures);
    var errLines = [{ values: S.serverLoginFailures, cls: 'line', color: '#677285', dash: true }].concat(errs.lines);
    if (clientLogins > 0) errLines.push({ values: S.clientLoginFailures, cls: 'line', color: '#8a4fd0', dash: true });
    drawChart($('chart-errors'), errLines, '');
    var errEntries = errs.entries.slice();
    if (logins > 0) errEntries.push({ key: 'server-login', label: 'server login failures', color: '#677285', total: logins });
    if (clientLogins > 0) errEntries.push({ key: 'client-login', label: 'client login failures', color: '#8a4fd0', total: clientLogins });
    legend('errors-legend', errEntries);
    var pins = keyedLines('pinsByReason', function (k) { return k; });
    drawChart($('chart-pins'), pins.lines.length ? pins.lines : [{ values: zeros(hist.t.length), cls: 'line' }], '');
    legend('pins-legend', pins.entries);
    renderPools(s.pools, dt);
    renderEvents(s.events || []);
  }

  function renderEvents(events) {
    var list = $('events');
    var top = events.length > 0 ? String(events[0].id) : '0';
    if (list.getAttribute('data-top') === top) return;
    list.setAttribute('data-top', top);
    while (list.firstChild) list.removeChild(list.firstChild);
    if (events.length === 0) { list.appendChild(el('li', 'muted', 'Nothing yet: reloads, pauses, kills and upstream trouble appear here.')); return; }
    events.forEach(function (e) {
      var li = el('li', 'event ' + e.kind);
      li.setAttribute('data-kind', e.kind);
      li.appendChild(el('time', null, new Date(e.time).toLocaleTimeString('en-GB')));
      li.appendChild(el('span', 'kind', e.kind));
      if (e.scope) li.appendChild(el('span', 'scope', e.scope));
      li.appendChild(el('span', 'message', e.message));
      list.appendChild(li);
    });
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
      var tr = el('tr', 'pool-row');
      tr.setAttribute('data-pool', key);
      tr.tabIndex = 0;
      tr.pgmuxPool = { key: key, database: p.database, user: p.user };
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
      if (open !== null && open.key === key) {
        tr.className = 'pool-row open';
        if (detailRow !== null) body.appendChild(detailRow);
      }
    });
    poolPrevious = next;
  }

  // ---- drill-down: one pool's clients and servers (status/pool.json) ----

  function toggle(target) {
    var tr = target;
    while (tr && !(tr.pgmuxPool)) tr = tr.parentNode;
    if (!tr) return;
    var p = tr.pgmuxPool;
    if (open !== null && open.key === p.key) {
      open = null;
      if (detailRow !== null && detailRow.parentNode) detailRow.parentNode.removeChild(detailRow);
      detailRow = null;
      tr.className = 'pool-row';
      return;
    }
    if (detailRow !== null && detailRow.parentNode) detailRow.parentNode.removeChild(detailRow);
    var prev = document.querySelector('tr.pool-row.open');
    if (prev) prev.className = 'pool-row';
    open = p;
    tr.className = 'pool-row open';
    detailRow = el('tr', 'detail');
    var td = el('td', 'detail-cell', 'Loading\u2026');
    td.colSpan = 13;
    detailRow.appendChild(td);
    tr.parentNode.insertBefore(detailRow, tr.nextSibling);
    loadDetail();
  }
  function loadDetail() {
    if (open === null) return Promise.resolve();
    var want = open;
    return fetch('status/pool.json?database=' + encodeURIComponent(want.database) + '&user=' + encodeURIComponent(want.user), { cache: 'no-store' })
      .then(function (r) { return r.status === 404 ? null : r.ok ? r.json() : Promise.reject(new Error('HTTP ' + r.status)); })
      .then(function (d) { if (open === want && detailRow !== null) renderDetail(d); })
      .catch(function () { /* the next poll tries again */ });
  }
  function table(caption, columns, rows, total) {
    var box = el('div', 'detail-part');
    box.setAttribute('data-part', caption.toLowerCase());
    box.appendChild(el('h3', null, caption + (total > rows.length ? ' (first ' + rows.length + ' of ' + fmt(total) + ')' : ' (' + rows.length + ')')));
    var t = el('table', 'detail-table');
    var head = el('tr');
    columns.forEach(function (c) { head.appendChild(el('th', c[2] || null, c[0])); });
    var thead = el('thead'); thead.appendChild(head); t.appendChild(thead);
    var body = el('tbody');
    rows.forEach(function (r) {
      var tr = el('tr');
      columns.forEach(function (c) {
        var td = el('td', c[2] || null, c[1](r));
        td.setAttribute('data-field', c[0]);
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    if (rows.length === 0) { var e = el('tr'); var c0 = el('td', 'empty', 'none'); c0.colSpan = columns.length; e.appendChild(c0); body.appendChild(e); }
    t.appendChild(body);
    box.appendChild(t);
    return box;
  }
  function secs(v) { return v === null ? '' : fmtMs(v); }
  function renderDetail(d) {
    var td = detailRow.firstChild;
    while (td.firstChild) td.removeChild(td.firstChild);
    if (d === null) { td.textContent = 'This pool is gone.'; return; }
    td.appendChild(table('Clients', [
      ['id', function (c) { return 'c' + c.id; }, 'name'],
      ['application', function (c) { return c.applicationName; }, 'name'],
      ['state', function (c) { return c.state; }, 'name'],
      ['wait', function (c) { return secs(c.waitSeconds); }],
      ['transaction', function (c) { return secs(c.transactionSeconds); }],
      ['connected', function (c) { return fmtDuration(c.connectedSeconds); }],
      ['idle', function (c) { return c.state === 'idle' ? fmtDuration(c.idleSeconds) : ''; }],
      ['server', function (c) { return c.server === null ? '' : 's' + c.server; }],
      ['pinned', function (c) { return c.pinReasons.join(', '); }, 'name']
    ], d.clients, d.clientsTotal));
    td.appendChild(table('Servers', [
      ['id', function (s) { return 's' + s.id; }, 'name'],
      ['state', function (s) { return s.state; }, 'name'],
      ['age', function (s) { return fmtDuration(s.ageSeconds); }],
      ['idle', function (s) { return s.idleSeconds === null ? '' : fmtDuration(s.idleSeconds); }],
      ['client', function (s) { return s.client === null ? '' : 'c' + s.client; }],
      ['application', function (s) { return s.applicationName; }, 'name']
    ], d.servers, d.serversTotal));
  }
  $('pools').addEventListener('click', function (e) { toggle(e.target); });
  $('pools').addEventListener('keydown', function (e) { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); toggle(e.target); } });

  function poll() {
    fetch(lastSample > 0 ? 'status.json?since=' + lastSample : 'status.json?history=1', { cache: 'no-store' })
      .then(function (r) { if (!r.ok) throw new Error('HTTP ' + r.status); return r.json(); })
      .then(function (s) { render(s); document.body.setAttribute('data-state', 'live'); return loadDetail(); })
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
  <span class="meta" id="not-ready"></span>
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
    <div class="tile"><div class="label">Query time p99</div><div class="value" id="query-p99">–</div><div class="sub" id="query-p99-sub"></div></div>
  </section>
  <section class="panel charts">
    <div>
      <div class="chart-head"><b>Transactions per second</b><span id="tps-now"></span></div>
      <svg class="chart tps" id="chart-tps" data-points="0" role="img" aria-label="Transactions per second over the last 15 minutes"></svg>
    </div>
    <div>
      <div class="chart-head"><span><b>Wait for a server</b><i class="legend"></i>p99<i class="legend p50"></i>p50<i class="legend oldest"></i>oldest</span><span id="wait-now"></span></div>
      <svg class="chart wait" id="chart-wait" data-points="0" role="img" aria-label="Wait for a server (p50, p99, oldest waiting) over the last 15 minutes"></svg>
    </div>
    <div>
      <div class="chart-head"><span><b>Query time</b><i class="legend q"></i>p99<i class="legend q p50"></i>p50</span><span id="query-now"></span></div>
      <svg class="chart query" id="chart-query" data-points="0" role="img" aria-label="Query time (p50, p99) over the last 15 minutes"></svg>
    </div>
    <div>
      <div class="chart-head"><span><b>Transaction time</b><i class="legend x"></i>p99<i class="legend x p50"></i>p50</span><span id="xact-now"></span></div>
      <svg class="chart xact" id="chart-xact" data-points="0" role="img" aria-label="Transaction time (p50, p99) over the last 15 minutes"></svg>
    </div>
    <div>
      <div class="chart-head"><b>Errors per second, by SQLSTATE class</b></div>
      <svg class="chart keyed" id="chart-errors" data-points="0" role="img" aria-label="Errors sent to clients by SQLSTATE class, and login failures, over the last 15 minutes"></svg>
      <div class="keys" id="errors-legend"></div>
    </div>
    <div>
      <div class="chart-head"><b>Pins per second, by reason</b></div>
      <svg class="chart keyed" id="chart-pins" data-points="0" role="img" aria-label="Clients pinned to a server by reason over the last 15 minutes"></svg>
      <div class="keys" id="pins-legend"></div>
    </div>
  </section>
  <section class="panel">
    <h2>Events</h2>
    <ul class="events" id="events"><li class="muted">Loading…</li></ul>
  </section>
  <section class="panel">
    <h2>Pools <span class="meta hint">click a pool for its clients and servers</span></h2>
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
