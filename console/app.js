// sluice's browser console: no framework, no build step. Everything it shows
// or changes goes through the server's own APIs: /admin/live (streams, as
// server-sent events), /stream/ (event streams), /console/run (playground), /streams
// (config; ?dry_run=true lints).
'use strict';

const $ = (id) => document.getElementById(id);
const el = (tag, attrs, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k.nodeType ? k : String(k));
  return e;
};
const esc = (s) => s.replace(/[&<>]/g, (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;'}[c]));
const fmtNum = (n) => n >= 1e6 ? (n / 1e6).toFixed(1) + 'M' : n >= 1e4 ? (n / 1e3).toFixed(1) + 'k' : (Math.round(n * 10) / 10).toString();
const fmtMs = (ns) => ns >= 1e9 ? (ns / 1e9).toFixed(2) + ' s' : ns >= 1e6 ? (ns / 1e6).toFixed(1) + ' ms' : (ns / 1e3).toFixed(0) + ' µs';

// ---------- auth and requests ----------
const params = new URLSearchParams(location.search);
if (params.get('api_key')) sessionStorage.setItem('sluice.key', params.get('api_key'));
const key = () => sessionStorage.getItem('sluice.key') || '';
function authHeaders() {
  const k = key();
  if (!k) return {};
  return /^[\w-]+\.[\w-]+\.[\w-]*$/.test(k) ? {Authorization: 'Bearer ' + k} : {'X-API-Key': k};
}
// The console is served at <base>/console/: every API is beside it.
const base = location.pathname.replace(/\/console\/.*$/, '');
async function api(method, path, body, opts) {
  const o = {method, headers: Object.assign({}, authHeaders(), (opts && opts.headers) || {})};
  if (body !== undefined) o.body = typeof body === 'string' ? body : JSON.stringify(body);
  if (opts && opts.signal) o.signal = opts.signal;
  const r = await fetch(base + path, o);
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
  if (r.status === 401 || r.status === 403) setConn(false, r.status === 401 ? 'sign in' : 'not an admin');
  else if (r.ok) setConn(true, 'connected');
  return {status: r.status, ok: r.ok, json, text};
}
function setConn(ok, text) {
  const c = $('conn');
  c.textContent = text;
  c.className = 'pill ' + (ok ? 'ok' : 'bad');
}
let toastTimer = null;
function toast(text, bad) {
  const t = $('toast');
  t.textContent = text;
  t.className = bad ? 'bad' : '';
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
}

// ---------- theme ----------
function setTheme(t) {
  document.body.className = t;
  localStorage.setItem('sluice.theme', t);
}
setTheme(params.get('theme') || localStorage.getItem('sluice.theme') ||
  (matchMedia('(prefers-color-scheme: light)').matches ? 'light' : 'dark'));
$('theme').addEventListener('click', () => setTheme(document.body.className === 'light' ? 'dark' : 'light'));
$('key').value = key();
$('key').addEventListener('change', () => { sessionStorage.setItem('sluice.key', $('key').value.trim()); refreshAll(); });

// ---------- editors: Debian's CodeMirror 5 (cm.js, built into the binary) ----------
let luaApi = {completions: []};
// CodeMirror measures its text when drawn: an editor made in a hidden view
// is measured again when its view shows (show() below).
const editors = [];
// The output panes are read-only text: coloured here, without an editor.
function highlightJson(src) {
  return esc(src).replace(/("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g,
    (m, s, colon, kw, num) => s ? '<span class="' + (colon ? 't-key' : 't-str') + '">' + s + '</span>' + (colon || '')
      : kw ? '<span class="t-bool">' + kw + '</span>' : '<span class="t-num">' + num + '</span>');
}

// sluice's globals and their functions are coloured as such in Lua
// (CodeMirror's lua mode takes "special" words, dotted names whole).
function luaMode() {
  return {name: 'lua', specials: luaApi.completions.map((c) => c.label)};
}
function makeEditor(host, {lang, value, onChange, complete, onRun}) {
  const keys = {'Ctrl-Space': (cm) => hint(cm, true), Tab: (cm) => cm.execCommand('insertSoftTab')};
  if (onRun) keys['Ctrl-Enter'] = keys['Cmd-Enter'] = () => onRun();
  const cm = CodeMirror(host, {value: value || '', mode: lang === 'lua' ? luaMode() : lang === 'yaml' ? 'yaml' : {name: 'javascript', json: true},
    lineNumbers: true, gutters: ['sl-marks', 'CodeMirror-linenumbers'], indentUnit: 2, tabSize: 2, matchBrackets: true,
    styleActiveLine: true, theme: 'sluice', extraKeys: keys, inputStyle: 'textarea', screenReaderLabel: host.id});
  let marked = [];
  function hint(ed, force) {
    if (!complete) return;
    ed.showHint({completeSingle: false, hint: () => {
      const cur = ed.getCursor();
      const before = ed.getLine(cur.line).slice(0, cur.ch);
      const w = (before.match(/[A-Za-z_][\w.]*$/) || [''])[0];
      if (!force && w.length < 2) return null;
      const list = complete(w).slice(0, 40).map((it) => ({text: it.label + (it.kind === 'function' ? '(' : ''), it,
        render: (elt) => elt.append(el('span', {class: 'lbl'}, it.label), el('span', {class: 'd'}, it.detail || it.kind))}));
      const res = {list, from: CodeMirror.Pos(cur.line, cur.ch - w.length), to: cur};
      // the chosen entry's doc line, under the list
      CodeMirror.on(res, 'select', (c, node) => {
        const ul = node.parentNode;
        let doc = ul.querySelector('.doc');
        if (!doc) { doc = el('li', {class: 'doc'}); ul.append(doc); }
        doc.textContent = c.it.doc || '';
        doc.hidden = !c.it.doc;
      });
      return list.length ? res : null;
    }});
  }
  cm.on('inputRead', (ed, change) => { if (complete && /[\w.]/.test(change.text.join(''))) hint(ed, false); });
  cm.on('change', () => { if (onChange) onChange(cm.getValue()); });
  editors.push(cm);
  return {
    get: () => cm.getValue(),
    set: (v) => cm.setValue(v),
    // marks: Map(line -> message): the line tinted, a dot in the gutter with the message
    mark: (m) => {
      cm.operation(() => {
        for (const l of marked) { cm.removeLineClass(l, 'background', 'line-err'); }
        cm.clearGutter('sl-marks');
        marked = [];
        for (const [line, msg] of m) {
          if (line < 1 || line > cm.lineCount()) continue;
          const h = cm.addLineClass(line - 1, 'background', 'line-err');
          marked.push(h);
          cm.setGutterMarker(line - 1, 'sl-marks', el('div', {class: 'sl-err', title: msg, 'data-line': line}, '●'));
        }
      });
    },
    focusLine: (line) => { cm.focus(); cm.setCursor({line: line - 1, ch: 0}); cm.scrollIntoView(null, 80); },
    setMode: () => { if (lang === 'lua') cm.setOption('mode', luaMode()); },
  };
}

// ---------- views ----------
const views = {};
let current = null;
function show(name) {
  if (!views[name]) name = 'streams';
  for (const a of document.querySelectorAll('.tabs a')) a.classList.toggle('active', a.dataset.view === name);
  for (const v of document.querySelectorAll('.view')) v.classList.toggle('active', v.id === 'view-' + name);
  if (current && views[current].leave) views[current].leave();
  current = name;
  for (const cm of editors) if (cm.getWrapperElement().offsetParent) cm.refresh();
  if (views[name].enter) views[name].enter();
}
window.addEventListener('hashchange', () => show(location.hash.slice(1)));

// ---------- Streams: /admin/live (server-sent events) ----------
const hist = {};           // stream -> {rate, errs, lat}: the charts' points
const POINTS = 60;
// EventSource cannot set headers: the key goes as the query parameter that http.auth reads.
function authQuery() {
  const k = key();
  if (!k) return '';
  return (/^[\w-]+\.[\w-]+\.[\w-]*$/.test(k) ? 'access_token=' : 'api_key=') + encodeURIComponent(k);
}
function spark(values, color) {
  const w = 200, h = 42, max = Math.max(1e-9, ...values);
  // stretched over the points there are: a new chart is drawn at once, and scrolls once full
  const pts = values.map((v, i) => [(i / Math.max(1, values.length - 1)) * w, h - 2 - (v / max) * (h - 6)]);
  const d = pts.map((p, i) => (i ? 'L' : 'M') + p[0].toFixed(1) + ' ' + p[1].toFixed(1)).join(' ');
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.innerHTML = pts.length ? `<path d="${d} L ${pts[pts.length - 1][0]} ${h} L 0 ${h} Z" fill="${color}" opacity=".14"/>` +
    `<path d="${d}" fill="none" stroke="${color}" stroke-width="1.6" vector-effect="non-scaling-stroke"/>` : '';
  return svg;
}
function chart(label, values, text, color) {
  return el('div', {class: 'chart'}, el('div', {class: 'lbl'}, el('span', {}, label)), el('div', {class: 'v'}, text), spark(values, color));
}
views.streams = {
  src: null,
  enter() {
    this.leave();
    const q = authQuery();
    // The server pushes every stream's state and counters each second, and
    // the browser reconnects by itself (the stream's `retry`).
    this.src = new EventSource(base + '/admin/live' + (q ? '?' + q : ''));
    this.src.addEventListener('status', (e) => { setConn(true, 'connected'); this.draw(JSON.parse(e.data)); });
    this.src.onerror = () => {
      if (this.src && this.src.readyState === EventSource.CLOSED) this.refused();
    };
  },
  leave() { if (this.src) this.src.close(); this.src = null; },
  // A refusal closes the EventSource for good: /admin/status says why.
  async refused() {
    const st = await api('GET', '/admin/status');
    $('streams-list').replaceChildren(el('div', {class: 'empty'}, st.status === 401 || st.status === 403
      ? 'Enter an admin API key (top right) to see the streams.' : 'The server did not answer /admin/live.'));
  },
  draw(st) {
    const list$ = $('streams-list');
    list$.dataset.events = (+list$.dataset.events || 0) + 1;   // what the specs count
    const cards = [];
    const names = Object.keys(st.streams || {});
    $('streams-note').textContent = `${names.length} stream${names.length === 1 ? '' : 's'} · config v${st.config.version} · live every ${st.interval_ms / 1000} s`;
    for (const name of names) {
      const s = st.streams[name];
      const order = {input: 0, processor: 1, output: 2};
      const list = Object.entries(s.components || {}).map(([path, c]) => Object.assign({path}, c))
        .sort((a, b) => order[a.kind] - order[b.kind] || a.path.localeCompare(b.path, undefined, {numeric: true}));
      const h = hist[name] || (hist[name] = {rate: [], errs: [], lat: []});
      if (s.rate !== undefined) {
        const push = (a, v) => { a.push(Math.max(0, v)); if (a.length > POINTS) a.shift(); };
        push(h.rate, s.rate);
        push(h.errs, s.error_rate);
        push(h.lat, s.latency_ns !== undefined ? s.latency_ns : (h.lat[h.lat.length - 1] || 0));
      }
      const flow = el('div', {class: 'flow'});
      list.forEach((c, i) => {
        if (i) flow.append(el('span', {class: 'arrow'}, '→'));
        const k = c.kind === 'input' ? 'in' : c.kind === 'output' ? 'out' : 'proc';
        flow.append(el('div', {class: 'node n-' + k + (c.errors ? ' bad' : ''), title: c.path},
          el('div', {class: 'k'}, c.kind),
          el('div', {class: 'n'}, c.label), el('div', {class: 'c'}, fmtNum(c.count) + (c.errors ? ` · ${fmtNum(c.errors)} err` : ''))));
      });
      if (!list.length) flow.append(el('span', {class: 'muted'}, s.kind === 'request_scoped' ? 'request-scoped: an instance per request (' + (s.instances || 0) + ' now)' : 'no components reported yet'));
      const state = s.state === 'running' ? (s.connected ? 'ok' : 'warn') : 'bad';
      const last = (a) => a.length ? a[a.length - 1] : 0;
      cards.push(el('div', {class: 'card', 'data-stream': name},
        el('div', {class: 'title'}, el('h2', {}, name), el('span', {class: 'pill ' + state}, s.state + (s.not_ready ? ': ' + s.not_ready : '')),
          el('span', {class: 'pill'}, s.kind === 'request_scoped' ? 'request-scoped' : 'stream'), el('span', {class: 'pill'}, s.source),
          el('span', {class: 'muted'}, 'up ' + Math.round(s.uptime) + ' s')),
        flow,
        el('div', {class: 'charts'}, chart('in / s', h.rate, fmtNum(last(h.rate)), 'var(--accent2)'),
          chart('errors / s', h.errs, fmtNum(last(h.errs)), 'var(--err)'),
          chart('latency (mean)', h.lat, s.latency_count ? fmtMs(last(h.lat)) : '—', 'var(--accent)'))));
    }
    list$.replaceChildren(...(cards.length ? cards : [el('div', {class: 'empty'}, 'No streams run yet.')]));
  },
};

// ---------- Event streams: /stream/ ----------
const ev = {name: null, abort: null, lagHist: {}};
views.events = {
  timer: null,
  enter() { this.list(); this.timer = setInterval(() => { if (ev.name) this.info(); }, 3000); },
  leave() { clearInterval(this.timer); },
  async list() {
    const r = await api('GET', '/stream/list');
    const ul = $('ev-list');
    if (!r.ok) { ul.replaceChildren(el('li', {}, r.json && r.json.error || 'cannot list streams (is `store:` configured?)')); return; }
    setConn(true, 'connected');
    const names = (r.json.streams || []).map((s) => typeof s === 'string' ? s : s.name).sort();
    ul.replaceChildren(...names.map((n) => el('li', {class: n === ev.name ? 'sel' : '', 'data-name': n, onclick: () => this.select(n)}, n)));
    if (!names.length) ul.append(el('li', {class: 'muted'}, 'no streams yet'));
  },
  async select(name) {
    this.stop();
    ev.name = name;
    $('ev-title').textContent = name;
    $('ev-delete').hidden = false;
    $('ev-tail').disabled = false;
    $('ev-rows').replaceChildren();
    for (const li of $('ev-list').children) li.classList.toggle('sel', li.dataset.name === name);
    await this.info();
  },
  async info() {
    const [i, g] = await Promise.all([api('GET', `/stream/${encodeURIComponent(ev.name)}/info`), api('GET', `/stream/${encodeURIComponent(ev.name)}/groups`)]);
    if (i.ok) {
      const j = i.json;
      $('ev-info').replaceChildren(...[['messages', j.message_count], ['partitions', j.partition_count], ['offsets', `${j.min_offset}…${j.max_offset}`],
        ['bytes', fmtNum(j.bytes || 0)], ['fsync', j.fsync], ['subscribers', j.subscribers]].map(([k, v]) => el('span', {}, k + ' ', el('b', {}, String(v)))));
    }
    const host = $('ev-groups');
    // {groups: [{group, members, committed: [per partition], lag: [per partition]}]}
    const groups = g.ok && g.json && Array.isArray(g.json.groups) ? g.json.groups : [];
    const cards = groups.map((gr) => {
      const lags = gr.lag || [];
      const total = lags.reduce((a, b) => a + b, 0);
      const key = ev.name + '/' + gr.group;
      const h = ev.lagHist[key] || (ev.lagHist[key] = []);
      h.push(total);
      if (h.length > POINTS) h.shift();
      const max = Math.max(1, ...lags);
      return el('div', {class: 'group', 'data-group': gr.group},
        el('div', {class: 'chart'}, el('div', {class: 'lbl'}, el('span', {}, gr.group), el('span', {}, `${(gr.members || []).length} member(s)`)),
          el('div', {class: 'v'}, 'lag ' + fmtNum(total)), spark(h, 'var(--warn)')),
        el('div', {class: 'bars'}, ...lags.map((lag, p) => el('div', {class: 'bar'}, el('span', {}, `partition ${p} · committed ${(gr.committed || [])[p]}`),
          el('div', {class: 'track'}, el('div', {class: 'fill' + (lag ? '' : ' zero'), style: lag ? `width:${(lag / max) * 100}%` : ''})),
          el('span', {}, fmtNum(lag))))));
    });
    host.replaceChildren(...(cards.length ? cards : [el('div', {class: 'muted'}, 'No consumer groups.')]));
  },
  stop() {
    if (ev.abort) ev.abort.abort();
    ev.abort = null;
    $('ev-stop').disabled = true;
    $('ev-tail').disabled = !ev.name;
    $('ev-status').textContent = '';
  },
  async tail() {
    this.stop();
    const q = new URLSearchParams();
    const from = $('ev-from').value.trim();
    if (from !== '') q.set('from_offset', from);
    else q.set('offset_reset', 'latest');
    if ($('ev-type').value.trim()) q.set('types', $('ev-type').value.trim());
    const keyFilter = $('ev-key').value.trim();
    const sub = 'console-' + Math.random().toString(36).slice(2, 10);
    ev.abort = new AbortController();
    $('ev-stop').disabled = false;
    $('ev-tail').disabled = true;
    $('ev-status').textContent = 'tailing…';
    $('ev-rows').replaceChildren();
    try {
      const r = await fetch(`${base}/stream/${encodeURIComponent(ev.name)}/sse/${sub}?${q}`, {headers: authHeaders(), signal: ev.abort.signal});
      if (!r.ok) { $('ev-status').textContent = 'error ' + r.status + ': ' + (await r.text()); return this.stop(); }
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      $('ev-status').textContent = 'live';
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buf += dec.decode(value, {stream: true});
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
          if (!data) continue;
          let e;
          try { e = JSON.parse(data); } catch (x) { continue; }
          if (keyFilter && e.key !== keyFilter) continue;
          this.row(e);
        }
      }
      this.stop();
    } catch (x) {
      if (x.name !== 'AbortError') $('ev-status').textContent = String(x);
    }
  },
  row(e) {
    const body = $('ev-rows');
    const data = typeof e.data === 'string' ? e.data : JSON.stringify(e.data);
    body.prepend(el('tr', {class: 'fresh'}, el('td', {}, `${e.partition}:${e.offset}`), el('td', {}, e.timestamp ? new Date(e.timestamp).toISOString().slice(11, 23) : ''),
      el('td', {}, e.event || ''), el('td', {}, e.key || ''), el('td', {class: 'data'}, data)));
    while (body.children.length > 500) body.lastChild.remove();
  },
};
$('ev-refresh').addEventListener('click', () => views.events.list());
$('ev-tail').addEventListener('click', () => views.events.tail());
$('ev-stop').addEventListener('click', () => views.events.stop());
$('ev-create').addEventListener('submit', async (e) => {
  e.preventDefault();
  const name = $('ev-new').value.trim();
  const r = await api('POST', '/stream/' + encodeURIComponent(name), {partitions: parseInt($('ev-parts').value, 10) || 1});
  toast(r.ok ? `stream ${name} ${r.status === 201 ? 'created' : 'exists'}` : (r.json && r.json.error) || 'error ' + r.status, !r.ok);
  if (r.ok) { $('ev-new').value = ''; await views.events.list(); views.events.select(name); }
});
$('ev-delete').addEventListener('click', async () => {
  if (!ev.name || !confirm(`Delete stream ${ev.name} and its data?`)) return;
  const r = await api('DELETE', '/stream/' + encodeURIComponent(ev.name));
  toast(r.ok ? `stream ${ev.name} deleted` : (r.json && r.json.error) || 'error ' + r.status, !r.ok);
  if (r.ok) { views.events.stop(); ev.name = null; $('ev-title').textContent = 'Select a stream'; $('ev-delete').hidden = true; $('ev-info').replaceChildren(); views.events.list(); }
});

// ---------- Lua playground: /console/run ----------
function completeLua(word) {
  const w = word.toLowerCase();
  const starts = luaApi.completions.filter((c) => c.label.toLowerCase().startsWith(w));
  return starts.sort((a, b) => a.label.length - b.label.length || a.label.localeCompare(b.label));
}
const SAMPLE = `-- this: the message's JSON, meta: its metadata, ctx: the request.
-- Ctrl+Space completes sluice's globals; Ctrl+Enter runs.
this.full_name = this.first .. " " .. this.last
this.id = uuid_v4()
this.signature = hash.sha256(this.full_name)
meta.seen_at = time.format(time.now())
`;
const pg = {
  code: makeEditor($('pg-code'), {lang: 'lua', value: localStorage.getItem('sluice.pg.code') || SAMPLE, complete: completeLua,
    onRun: () => pg.run(), onChange: (v) => localStorage.setItem('sluice.pg.code', v)}),
  input: makeEditor($('pg-input'), {lang: 'json', value: '{\n  "first": "Ada",\n  "last": "Lovelace"\n}', onRun: () => pg.run()}),
  meta: makeEditor($('pg-meta'), {lang: 'json', value: '{"source": "console"}', onRun: () => pg.run()}),
  ctx: makeEditor($('pg-ctx'), {lang: 'json', value: '{"user": "alice"}', onRun: () => pg.run()}),
  streams: {},
  async run() {
    let meta = {}, ctx = {};
    try { meta = JSON.parse(pg.meta.get() || '{}'); ctx = JSON.parse(pg.ctx.get() || '{}'); } catch (e) { return this.fail('metadata and ctx must be JSON objects: ' + e.message); }
    $('pg-run').disabled = true;
    const r = await api('POST', '/console/run', {code: pg.code.get(), input: pg.input.get(), metadata: meta, ctx, bloblang: $('pg-bloblang').checked});
    $('pg-run').disabled = false;
    if (!r.ok) return this.fail((r.json && r.json.error) || 'error ' + r.status);
    const res = r.json;
    $('pg-time').textContent = res.time_ms !== undefined ? `${res.time_ms.toFixed(2)} ms` : `${Math.round(res.wall_ms)} ms`;
    $('pg-time').className = 'pill ' + (res.error ? 'bad' : 'ok');
    const msgs = res.messages || [];
    const out = msgs.map((m) => { try { return JSON.stringify(JSON.parse(m.content), null, 2); } catch (e) { return m.content; } });
    $('pg-out').innerHTML = msgs.length ? highlightJson(out.join('\n---\n')) : '<span class="muted">(no message: deleted)</span>';
    $('pg-outmeta').innerHTML = highlightJson(msgs.length ? JSON.stringify(msgs.length === 1 ? msgs[0].metadata : msgs.map((m) => m.metadata), null, 2) : '');
    if (res.error) {
      $('pg-error').hidden = false;
      // "-e" is the chunk's name in `sluice lua`: the line says it better
      const text = res.error.trim().replace(/^-e:\d+:\d+: code: Lua: /, '').replace(/-e:\d+: /g, '');
      $('pg-error').textContent = (res.line ? `line ${res.line}: ` : '') + text;
      pg.code.mark(res.line ? new Map([[res.line, res.error]]) : new Map());
    } else {
      $('pg-error').hidden = true;
      pg.code.mark(new Map());
    }
  },
  fail(text) {
    $('pg-error').hidden = false;
    $('pg-error').textContent = text;
    $('pg-time').textContent = '';
  },
  // Every `lua` processor (inline code) of every stream, to apply a script to.
  async streamsList() {
    const r = await api('GET', '/streams');
    if (!r.ok) return;
    const sel = $('pg-stream');
    const names = Object.keys(r.json || {});
    const keep = sel.value;
    sel.replaceChildren(...names.map((n) => el('option', {value: n}, n)));
    if (names.includes(keep)) sel.value = keep;
    await this.procs();
  },
  async procs() {
    const name = $('pg-stream').value;
    const sel = $('pg-proc');
    sel.replaceChildren();
    if (!name) return;
    const r = await api('GET', '/streams/' + encodeURIComponent(name));
    if (!r.ok) return;
    this.streams[name] = r.json.config;
    const procs = ((r.json.config.pipeline || {}).processors) || [];
    procs.forEach((p, i) => {
      const code = p.lua && (typeof p.lua === 'string' ? p.lua : p.lua.code);
      if (typeof code === 'string') sel.append(el('option', {value: i}, `processor ${i} (lua)`));
    });
    if (!sel.children.length) sel.append(el('option', {value: ''}, 'no inline lua processor'));
  },
  async apply() {
    const name = $('pg-stream').value, i = $('pg-proc').value;
    if (!name || i === '') return toast('choose a stream and one of its lua processors', true);
    const conf = JSON.parse(JSON.stringify(this.streams[name]));
    const p = conf.pipeline.processors[i];
    if (typeof p.lua === 'string') p.lua = pg.code.get(); else p.lua.code = pg.code.get();
    const r = await api('PUT', '/streams/' + encodeURIComponent(name), conf);
    if (r.ok) { $('pg-applied').textContent = `applied to ${name} at ${new Date().toLocaleTimeString()}`; toast(`${name}: processor ${i} replaced`); this.procs(); }
    else toast(r.json && r.json.lint_errors ? r.json.lint_errors.map((d) => `${d.line}:${d.col}: ${d.key}: ${d.message}`).join('\n') : (r.json && r.json.error) || 'error ' + r.status, true);
  },
};
$('pg-run').addEventListener('click', () => pg.run());
$('pg-apply').addEventListener('click', () => pg.apply());
$('pg-stream').addEventListener('change', () => pg.procs());
views.playground = {enter() { pg.streamsList(); }};

// ---------- Config: /streams/{id} with ?dry_run=true on each change ----------
function toYaml(v, indent) {
  const pad = '  '.repeat(indent || 0);
  const scalar = (x) => {
    if (x === null) return 'null';
    if (typeof x !== 'string') return String(x);
    if (x.includes('\n')) return '|\n' + x.replace(/\n$/, '').split('\n').map((l) => pad + '  ' + l).join('\n');
    return /^[\w./-][\w ./@-]*$/.test(x) && !/^(true|false|null|yes|no|on|off|~|[\d.+-].*)$/i.test(x) && !/\s$/.test(x) ? x : JSON.stringify(x);
  };
  if (Array.isArray(v)) {
    if (!v.length) return '[]';
    return v.map((x) => pad + '- ' + (x && typeof x === 'object' ? toYaml(x, (indent || 0) + 1).trimStart() : scalar(x))).join('\n');
  }
  if (v && typeof v === 'object') {
    const keys = Object.keys(v);
    if (!keys.length) return '{}';
    return keys.map((k) => {
      const x = v[k];
      if (x && typeof x === 'object' && Object.keys(x).length) return pad + k + ':\n' + toYaml(x, (indent || 0) + 1);
      const s = x && typeof x === 'object' ? (Array.isArray(x) ? '[]' : '{}') : scalar(x);
      return pad + k + ': ' + (s.startsWith('|\n') ? '|\n' + s.slice(2).split('\n').map((l) => '  ' + l).join('\n') : s);
    }).join('\n');
  }
  return pad + scalar(v);
}
const cf = {
  editor: null, timer: null, seq: 0,
  id() { return $('cf-new').value.trim() || $('cf-stream').value; },
  async list() {
    const r = await api('GET', '/streams');
    if (!r.ok) { $('cf-result').textContent = (r.json && r.json.error) || 'the streams API did not answer'; return; }
    const sel = $('cf-stream');
    const keep = sel.value;
    const names = Object.keys(r.json || {});
    sel.replaceChildren(...names.map((n) => el('option', {value: n}, n)));
    if (names.includes(keep)) sel.value = keep;
    if (!this.loaded || keep !== sel.value) await this.load();
  },
  async load() {
    const name = $('cf-stream').value;
    if (!name) return;
    const r = await api('GET', '/streams/' + encodeURIComponent(name));
    if (!r.ok) return;
    this.loaded = name;
    this.editor.set(toYaml(r.json.config) + '\n');
    this.lint();
  },
  changed() { clearTimeout(this.timer); this.timer = setTimeout(() => this.lint(), 250); },
  async lint() {
    const id = this.id();
    if (!id) return;
    const seq = ++this.seq;
    const r = await api('PUT', `/streams/${encodeURIComponent(id)}?dry_run=true`, this.editor.get(), {headers: {'Content-Type': 'application/yaml'}});
    if (seq !== this.seq) return;   // a later keystroke's answer decides
    const diags = (r.json && r.json.lint_errors) || [];
    const marks = new Map();
    for (const d of diags) if (d.line) marks.set(d.line, (marks.has(d.line) ? marks.get(d.line) + '\n' : '') + `${d.key}: ${d.message}`);
    this.editor.mark(marks);
    $('cf-diags').replaceChildren(...diags.map((d) => el('li', {onclick: () => this.editor.focusLine(d.line || 1)},
      el('span', {class: 'pos'}, `${id}.yaml:${d.line}:${d.col}`), `${d.key ? d.key + ': ' : ''}${d.message}`)));
    if (!r.ok && !diags.length) $('cf-diags').replaceChildren(el('li', {}, (r.json && r.json.error) || 'error ' + r.status));
    const ok = r.ok && r.json && r.json.valid;
    $('cf-lint').textContent = ok ? 'no problems' : `${diags.length || 1} problem${diags.length === 1 ? '' : 's'}`;
    $('cf-lint').className = 'pill ' + (ok ? 'ok' : 'bad');
  },
  async apply() {
    const id = this.id();
    $('cf-result').textContent = 'applying…';
    const r = await api('PUT', '/streams/' + encodeURIComponent(id), this.editor.get(), {headers: {'Content-Type': 'application/yaml'}});
    if (r.ok) {
      const ch = r.json || {};
      $('cf-result').textContent = `applied at ${new Date().toLocaleTimeString()}: ` + ['added', 'changed', 'removed'].map((k) => (ch[k] || []).length ? `${k} ${ch[k].join(', ')}` : '').filter(Boolean).join('; ');
      toast(`stream ${id} applied`);
      if ($('cf-new').value.trim()) { $('cf-new').value = ''; await this.list(); $('cf-stream').value = id; }
    } else {
      $('cf-result').textContent = (r.json && r.json.error) || (r.json && r.json.lint_errors ? 'refused: see the problems above' : 'error ' + r.status);
      this.lint();
    }
  },
};
cf.editor = makeEditor($('cf-code'), {lang: 'yaml', value: '', onChange: () => cf.changed()});
$('cf-stream').addEventListener('change', () => cf.load());
$('cf-new').addEventListener('input', () => cf.changed());
$('cf-apply').addEventListener('click', () => cf.apply());
views.config = {enter() { cf.list(); }};

// ---------- start ----------
async function loadApi() {
  try {
    const r = await fetch(base + '/console/lua-api.json');
    const j = await r.json();
    luaApi = {completions: j.completions};
    pg.code.setMode();   // colour the globals
  } catch (e) {
    toast('the Lua API could not be loaded: completion is off', true);
  }
}
function refreshAll() { if (current) show(current); }
loadApi();
show(location.hash.slice(1) || 'streams');
