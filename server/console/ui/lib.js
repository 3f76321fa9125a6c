// Shared helpers of the web app: building DOM safely, calling the API,
// formatting, and the plan dialog. Text always goes in as text nodes or
// attributes, never as HTML.

const TOKEN_KEY = 'drover.token';

export const session = {
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  self: null, // the token's own record: GET /v1/acl/tokens/self
  save(token) { this.token = token; sessionStorage.setItem(TOKEN_KEY, token); },
  clear() { this.token = ''; this.self = null; sessionStorage.removeItem(TOKEN_KEY); },
  get role() { return this.self ? this.self.role : ''; },
  get tenant() { return this.self ? this.self.tenant || '' : ''; },
  get operator() { return this.role === 'management' || this.role === 'operator'; },
  get canChange() { return this.role !== 'tenant-viewer'; },
};

// h builds an element: h('a', {href: '#/x', class: 'c', onclick: fn}, 'text', child, [more]).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// table builds a table of rows: columns are [header, cell(row) -> node|text, class?].
export function table(id, columns, rows, rowAttrs) {
  return h('table', {id},
    h('thead', {}, h('tr', {}, columns.map(([head, , cls]) => h('th', {scope: 'col', class: cls}, head)))),
    h('tbody', {}, rows.length === 0
      ? h('tr', {}, h('td', {colspan: columns.length, class: 'muted'}, 'none'))
      : rows.map((r) => h('tr', rowAttrs ? rowAttrs(r) : {}, columns.map(([, cell, cls]) => h('td', {class: cls}, cell(r)))))));
}

export class APIError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || '';
    this.field = e.field || '';
  }
}

export function headers(extra) {
  const hs = {Accept: 'application/json', ...extra};
  if (session.token) hs.Authorization = 'Bearer ' + session.token;
  return hs;
}

// api calls the API and answers the decoded body (and the index in .index
// of the returned object when it is one).
export async function api(method, path, body, opts = {}) {
  const init = {method, headers: headers(body !== undefined ? {'Content-Type': 'application/json'} : {}), signal: opts.signal};
  if (body !== undefined) init.body = JSON.stringify(body);
  const resp = await fetch(path, init);
  const text = await resp.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!resp.ok) throw new APIError(resp.status, data);
  return data;
}

export const get = (path, opts) => api('GET', path, undefined, opts);

export function seg(s) { return encodeURIComponent(s); }
export function instancePath(tenant, name) { return `/v1/tenants/${seg(tenant)}/instances/${seg(name)}`; }
export function instanceHref(tenant, name) { return `#/instances/${seg(tenant)}/${seg(name)}`; }

export function shortID(id) { return id ? String(id).slice(0, 8) : ''; }

export function ago(t) {
  if (!t || t.startsWith('0001')) return '';
  const s = Math.round((Date.now() - new Date(t).getTime()) / 1000);
  if (s < 0) return 'in ' + dur(-s);
  return dur(s) + ' ago';
}

export function when(t) {
  if (!t || t.startsWith('0001')) return '';
  return new Date(t).toISOString().replace('T', ' ').slice(0, 19) + 'Z';
}

function dur(s) {
  if (s < 60) return s + 's';
  if (s < 3600) return Math.round(s / 60) + 'm';
  if (s < 86400) return Math.round(s / 3600) + 'h';
  return Math.round(s / 86400) + 'd';
}

export function plural(n, one, many) { return `${n} ${n === 1 ? one : (many || one + 's')}`; }

// stateClass is the colour class of a state word.
export function stateClass(s) {
  if (['healthy', 'running', 'successful', 'succeeded', 'ready', 'ok', 'available'].includes(s)) return 'ok';
  if (['failed', 'lost', 'unhealthy', 'down', 'rolled_back', 'recalled', 'cancelled'].includes(s)) return 'bad';
  if (['pending', 'deploying', 'degraded', 'waiting', 'upgrading', 'paused', 'draining', 'stopping', 'deprecated', 'scheduled'].includes(s)) return 'warn';
  return 'muted';
}

export function badge(s) { return h('span', {class: 'badge ' + stateClass(s)}, s || '-'); }

export function healthText(in_) {
  const r = (in_.status && in_.status.replicas) || {};
  return `${r.healthy || 0}/${r.desired || 0}`;
}

export function isHealthy(in_) {
  const r = (in_.status && in_.status.replicas) || {};
  return (r.desired || 0) > 0 && r.healthy === r.desired;
}

// showError puts an error in #error (and clears it with null).
export function showError(err) {
  const box = document.getElementById('error');
  if (!err) { box.hidden = true; box.textContent = ''; return; }
  box.textContent = err.field ? `${err.message} (field: ${err.field})` : String(err.message || err);
  box.hidden = false;
}

// confirmPlan shows the plan dialog with lines of what a change will do,
// and resolves true when the user confirms it.
export function confirmPlan(title, lines) {
  const dlg = document.getElementById('plan');
  document.getElementById('plan-title').textContent = title;
  document.getElementById('plan-body').replaceChildren(h('ul', {}, lines.filter(Boolean).map((l) => h('li', {}, l))));
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'confirm'), {once: true});
    dlg.returnValue = '';
    dlg.showModal();
    document.getElementById('plan-cancel').focus();
  });
}

// fieldErrors shows an API error next to the input of its field, in a
// form whose inputs carry data-field; it answers whether one was shown.
export function fieldError(form, err) {
  form.querySelectorAll('.field-error').forEach((e) => e.remove());
  if (!err || !err.field) return false;
  const input = form.querySelector(`[data-field="${CSS.escape(err.field)}"]`);
  if (!input) return false;
  input.setAttribute('aria-invalid', 'true');
  const id = 'err-' + err.field.replace(/[^a-zA-Z0-9_-]/g, '_');
  input.setAttribute('aria-describedby', id);
  input.after(h('p', {class: 'field-error', id, 'data-field': err.field, role: 'alert'}, err.message));
  input.focus();
  return true;
}

// inWindow reports whether t falls in a maintenance window
// ({days: ['tue'], start: '01:00', duration: '4h'}, UTC), and describes it.
export function windowText(w) {
  if (!w) return 'none (any time)';
  const end = addTime(w.start, w.duration);
  return `${(w.days || []).join(', ')} ${w.start}-${end} UTC`;
}

export function inWindow(w, t = new Date()) {
  if (!w) return true;
  const days = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
  const [hh, mm] = w.start.split(':').map(Number);
  const len = parseDur(w.duration);
  for (let back = 0; back <= 7; back++) {
    const d = new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), t.getUTCDate() - back, hh, mm));
    if (!(w.days || []).includes(days[d.getUTCDay()])) continue;
    if (t >= d && t - d < len) return true;
  }
  return false;
}

function parseDur(s) {
  let ms = 0;
  for (const [, n, u] of String(s).matchAll(/([\d.]+)(h|m|s|ms)/g)) {
    ms += Number(n) * ({h: 3600e3, m: 60e3, s: 1e3, ms: 1})[u];
  }
  return ms;
}

function addTime(start, duration) {
  const [hh, mm] = start.split(':').map(Number);
  const m = (hh * 60 + mm + Math.round(parseDur(duration) / 60e3)) % 1440;
  return `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
}

// streamLines reads a streaming answer (logs) and calls onText with each
// chunk of text until it ends or signal aborts.
export async function streamText(path, signal, onText) {
  const resp = await fetch(path, {headers: headers({Accept: 'text/plain'}), signal});
  if (!resp.ok) {
    let body = null;
    try { body = await resp.json(); } catch { /* not JSON */ }
    throw new APIError(resp.status, body);
  }
  const reader = resp.body.getReader();
  const dec = new TextDecoder();
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    onText(dec.decode(value, {stream: true}));
  }
}

// labelled wraps a control with its label.
export function field(label, control, hint) {
  const id = control.id || ('f-' + Math.random().toString(36).slice(2));
  control.id = id;
  return h('div', {class: 'field'}, h('label', {for: id}, label), control, hint ? h('p', {class: 'hint'}, hint) : null);
}

export function select(id, options, value, attrs = {}) {
  return h('select', {id, ...attrs}, options.map((o) => {
    const [v, text] = Array.isArray(o) ? o : [o, o];
    return h('option', {value: v, selected: v === value}, text);
  }));
}
