// The web app's shell: login, navigation, the view lifecycle and live
// updates from the event stream (GET /v1/events).
import {session, h, get, showError, headers} from './lib.js';
import {consoleViews} from './console.js';
import {portalViews} from './portal.js';

const views = {...consoleViews, ...portalViews};

// Routes: hash path patterns to view names; :x are parameters.
const routes = [
  ['fleet', 'fleet'], ['instances', 'instances'], ['instances/:tenant/:name', 'instance'],
  ['nodes', 'nodes'], ['nodes/:id', 'node'], ['catalog', 'catalog'],
  ['rollouts', 'rollouts'], ['rollouts/new', 'rollout-new'], ['rollouts/:id', 'rollout'],
  ['audit', 'audit'], ['tokens', 'tokens'], ['portal', 'portal'], ['portal/new', 'create'],
];

function match(hash) {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  for (const [pattern, name] of routes) {
    const ps = pattern.split('/');
    if (ps.length !== parts.length) continue;
    const params = {};
    if (ps.every((p, i) => (p.startsWith(':') ? ((params[p.slice(1)] = parts[i]), true) : p === parts[i]))) {
      return {name, params};
    }
  }
  return null;
}

function navItems() {
  if (session.operator) {
    const items = [['fleet', 'Fleet'], ['instances', 'Instances'], ['nodes', 'Nodes'], ['catalog', 'Catalogue'],
      ['rollouts', 'Rollouts'], ['audit', 'Audit']];
    if (session.role === 'management') items.push(['tokens', 'Tokens']);
    return items;
  }
  return [['portal', 'Instances'], ['audit', 'Audit']];
}

const home = () => (session.operator ? '#/fleet' : '#/portal');

// The view being shown: its sections re-render on live updates, and its
// signal aborts its streams when the user moves on.
let current = null;

async function show() {
  if (!session.self) return;
  const m = match(location.hash);
  if (!m || !views[m.name]) {
    location.replace(home());
    return;
  }
  if (current) current.ctl.abort();
  const main = document.getElementById('view');
  const ctx = {ctl: new AbortController(), sections: [], params: m.params};
  ctx.signal = ctx.ctl.signal;
  // live adds a part of the view that reads the API and is read again on
  // every change the event stream reports.
  // What the user has chosen or typed in it and not yet submitted is kept
  // across a re-render (keepInput).
  ctx.live = (render) => {
    const box = h('div', {class: 'live'});
    const touched = (ev) => ev.target.setAttribute('data-dirty', '');
    box.addEventListener('input', touched);
    box.addEventListener('change', touched);
    const run = async () => {
      try {
        const el = await render();
        if (ctx.signal.aborted) return;
        keepInput(box, el);
        box.replaceChildren(el);
      } catch (err) {
        if (!ctx.signal.aborted) showError(err);
      }
    };
    ctx.sections.push(run);
    box.refresh = run;
    return box;
  };
  current = ctx;
  main.removeAttribute('data-ready');
  main.dataset.view = m.name;
  showError(null);
  for (const a of document.querySelectorAll('#nav a')) {
    a.toggleAttribute('aria-current', location.hash.startsWith(a.getAttribute('href')));
    if (a.hasAttribute('aria-current')) a.setAttribute('aria-current', 'page');
  }
  try {
    const el = await views[m.name](m.params, ctx);
    await Promise.all(ctx.sections.map((run) => run()));
    if (current !== ctx) return;
    main.replaceChildren(el);
    main.dataset.ready = 'true';
  } catch (err) {
    if (current !== ctx) return;
    main.replaceChildren(h('p', {class: 'muted'}, 'This page could not be shown.'));
    main.dataset.ready = 'true';
    showError(err);
  }
}

// keepInput carries the unsaved choices (controls marked data-dirty) and
// the focus of a live section into its new rendering, el: a control is
// the same when its id, name or aria-label is, and that key names one
// control in both renderings. A choice the new rendering shows already
// (it was set, or chosen back) is no longer unsaved; one it cannot show (an
// option gone) is dropped.
function keepInput(box, el) {
  const key = (c) => c.id || c.getAttribute('name') || c.getAttribute('aria-label') || '';
  const byKey = (root) => {
    const m = new Map();
    for (const c of root.querySelectorAll('input, select, textarea, button')) {
      const k = key(c);
      if (k) m.set(k, m.has(k) ? null : c); // null: not unique
    }
    return m;
  };
  const active = box.contains(document.activeElement) ? document.activeElement : null;
  const old = [...box.querySelectorAll('[data-dirty]')];
  if (active && !old.includes(active)) old.push(active);
  if (!old.length) return;
  const before = byKey(box);
  const fresh = byKey(el);
  for (const c of old) {
    const n = before.get(key(c)) && fresh.get(key(c));
    if (!n) continue;
    if (c.hasAttribute('data-dirty')) carry(c, n);
    if (c === active) queueMicrotask(() => n.focus());
  }
}

// carry puts control c's unsaved value into its new rendering n.
function carry(c, n) {
  if (c.type === 'checkbox') {
    if (n.checked === c.checked) return;
    n.checked = c.checked;
  } else {
    if (n.value === c.value) return;
    if (n.tagName === 'SELECT' && ![...n.options].some((o) => o.value === c.value)) return;
    n.value = c.value;
  }
  n.setAttribute('data-dirty', '');
}

// refresh re-renders the current view's live sections, at most every
// 300 ms however many events arrive.
let pending = null;
function refresh() {
  if (pending || !current) return;
  pending = setTimeout(async () => {
    pending = null;
    const ctx = current;
    if (!ctx) return;
    await Promise.all(ctx.sections.map((run) => run()));
  }, 300);
}

// follow reads the event stream for as long as the user is logged in,
// resuming after the last event it saw when the connection drops.
let streamCtl = null;
async function follow() {
  if (streamCtl) streamCtl.abort();
  const ctl = new AbortController();
  streamCtl = ctl;
  let last = '';
  while (!ctl.signal.aborted) {
    try {
      const hs = headers({Accept: 'text/event-stream'});
      let path = '/v1/events';
      if (last) hs['Last-Event-ID'] = last;
      else path += '?index=' + (await startIndex());
      const resp = await fetch(path, {headers: hs, signal: ctl.signal});
      if (!resp.ok) throw new Error('event stream: HTTP ' + resp.status);
      const reader = resp.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buf += dec.decode(value, {stream: true});
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const id = block.match(/^id: (.*)$/m);
          if (id) last = id[1];
          if (/^event: lost$/m.test(block)) last = '';
          if (/^data: /m.test(block)) refresh();
        }
      }
    } catch (err) {
      if (ctl.signal.aborted) return;
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

// startIndex is where a new stream starts: the state's index now, so that
// old events are not read again.
async function startIndex() {
  const resp = await fetch('/v1/acl/tokens/self', {headers: headers()});
  return resp.headers.get('X-Drover-Index') || '0';
}

async function login(token) {
  session.save(token);
  try {
    session.self = await get('/v1/acl/tokens/self');
  } catch (err) {
    session.clear();
    throw err;
  }
}

function showShell() {
  const nav = document.getElementById('nav');
  nav.replaceChildren(...navItems().map(([name, text]) => h('a', {href: '#/' + name, 'data-nav': name}, text)));
  nav.hidden = false;
  document.getElementById('login').hidden = true;
  document.getElementById('logout').hidden = false;
  const who = session.tenant ? `${session.role} of ${session.tenant}` : session.role;
  document.getElementById('whoami').textContent = who;
  if (!match(location.hash)) location.replace(home());
  follow();
  show();
}

function showLogin(message) {
  if (streamCtl) streamCtl.abort();
  if (current) current.ctl.abort();
  current = null;
  document.getElementById('nav').hidden = true;
  document.getElementById('logout').hidden = true;
  document.getElementById('whoami').textContent = '';
  document.getElementById('view').replaceChildren();
  document.getElementById('view').removeAttribute('data-ready');
  document.getElementById('login').hidden = false;
  document.getElementById('login-error').textContent = message || '';
  document.getElementById('login-token').focus();
}

document.addEventListener('DOMContentLoaded', async () => {
  document.getElementById('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const input = document.getElementById('login-token');
    try {
      await login(input.value.trim());
      input.value = '';
      showShell();
    } catch (err) {
      showLogin(err.status === 401 ? 'This token is not valid.' : String(err.message || err));
    }
  });
  document.getElementById('logout').addEventListener('click', () => {
    session.clear();
    showLogin('');
  });
  window.addEventListener('hashchange', show);
  if (session.token) {
    try {
      await login(session.token);
      showShell();
      return;
    } catch { /* fall through to the login form */ }
  }
  // A server with ACLs off answers without a token: no login needed.
  try {
    await login('');
    showShell();
  } catch {
    showLogin('');
  }
});
