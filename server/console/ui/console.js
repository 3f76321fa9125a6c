// The operations console: fleet, instances, nodes, catalogue, rollouts,
// audit and tokens. The instance page is shared with the portal.
import {
  session, h, table, api, get, seg, instancePath, instanceHref, shortID, ago, when, plural,
  badge, stateClass, healthText, isHealthy, showError, confirmPlan, field, select, streamText, windowText, inWindow,
} from './lib.js';

const instanceStates = ['running', 'deploying', 'degraded', 'stopped', 'failed'];

// counts are the fleet counts of a list of instances.
function counts(list) {
  const c = {total: list.length, running: 0, pending: 0, failed: 0, healthy: 0};
  for (const i of list) {
    const st = i.status || {};
    const r = st.replicas || {};
    if (st.state === 'running') c.running++;
    if ((r.pending || 0) > 0) c.pending++;
    if (st.state === 'failed' || (r.failed || 0) > 0) c.failed++;
    if (isHealthy(i)) c.healthy++;
  }
  return c;
}

const countCols = ['total', 'running', 'pending', 'failed', 'healthy'];

function countsTable(id, head, groups, attr) {
  return h('table', {id},
    h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, head), countCols.map((c) => h('th', {scope: 'col', class: 'num'}, c)))),
    h('tbody', {}, [...groups.entries()].map(([key, list]) => {
      const c = counts(list);
      return h('tr', {[attr]: key}, h('th', {scope: 'row'}, key),
        countCols.map((k) => h('td', {'data-count': k, class: 'num ' + (k === 'failed' && c[k] ? 'bad' : '')}, c[k])));
    })));
}

function groupBy(list, key) {
  const m = new Map();
  for (const i of list) {
    const k = key(i);
    if (!m.has(k)) m.set(k, []);
    m.get(k).push(i);
  }
  return new Map([...m.entries()].sort(([a], [b]) => a.localeCompare(b)));
}

function versionOf(i) { return i.release || (i.spec && i.spec.version) || 'v' + i.version; }

async function fleet(_, ctx) {
  const since = h('input', {id: 'changes-since', placeholder: 'Raft index or 1h, 30m', 'aria-label': 'changes since'});
  const changes = h('div', {id: 'changes'});
  const showChanges = async (ev) => {
    ev.preventDefault();
    const v = since.value.trim();
    let path = '/v1/events?follow=false';
    let after = 0;
    if (/^\d+$/.test(v)) path += '&index=' + v;
    else {
      const m = v.match(/^(\d+)([smhd])$/);
      if (!m) { showError({message: 'give a Raft index (1234) or a duration (30m, 2h, 1d)', field: 'since'}); return; }
      after = Date.now() - Number(m[1]) * {s: 1e3, m: 60e3, h: 3600e3, d: 86400e3}[m[2]];
    }
    const evs = await readEvents(path, ctx.signal);
    const shown = evs.filter((e) => new Date(e.time).getTime() >= after && e.topic !== 'audit');
    changes.replaceChildren(h('p', {class: 'hint'}, `${plural(shown.length, 'change')} since ${v}`), eventList(shown.slice(-200).reverse()));
  };
  return h('div', {},
    h('h1', {}, 'Fleet'),
    ctx.live(async () => {
      const [list, tenants] = await Promise.all([get('/v1/instances', {signal: ctx.signal}), get('/v1/tenants', {signal: ctx.signal})]);
      const c = counts(list);
      const envs = [...groupBy(list, (i) => i.environment).keys()];
      const byCell = groupBy(list, (i) => i.tenant + '/' + i.environment);
      return h('div', {},
        h('div', {class: 'grid'}, countCols.map((k) => h('div', {class: 'card'}, h('div', {class: 'muted'}, k + ' instances'), h('div', {class: 'stat', id: 'fleet-' + k}, c[k])))),
        h('div', {class: 'grid'},
          h('section', {class: 'card'}, h('h2', {}, 'By environment'), countsTable('fleet-env', 'environment', groupBy(list, (i) => i.environment), 'data-env')),
          h('section', {class: 'card'}, h('h2', {}, 'By tenant'), countsTable('fleet-tenant', 'tenant', groupBy(list, (i) => i.tenant), 'data-tenant'))),
        h('section', {class: 'card'}, h('h2', {}, 'Tenants × environments'),
          h('table', {id: 'fleet-grid'},
            h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'tenant'), envs.map((e) => h('th', {scope: 'col'}, e)))),
            h('tbody', {}, tenants.map((t) => h('tr', {}, h('th', {scope: 'row'}, t.name),
              envs.map((e) => h('td', {'data-cell': t.name + '/' + e}, (byCell.get(t.name + '/' + e) || []).map((i) =>
                h('a', {href: instanceHref(i.tenant, i.name), class: 'cell-instance ' + (isHealthy(i) ? 'ok' : stateClass(i.status && i.status.state))},
                  `${i.name} ${versionOf(i)} ${healthText(i)}`))))))))));
    }),
    h('section', {class: 'card'}, h('h2', {}, 'What changed since'),
      h('form', {class: 'inline', onsubmit: showChanges}, field('Since', since), h('button', {type: 'submit'}, 'Show')), changes));
}

// readEvents reads a stream that ends (follow=false) and answers its events.
async function readEvents(path, signal) {
  const out = [];
  await streamText(path, signal, (() => {
    let buf = '';
    return (text) => {
      buf += text;
      let end;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        const data = block.match(/^data: (.*)$/m);
        if (data && !/^event: lost$/m.test(block)) out.push(JSON.parse(data[1]));
      }
    };
  })());
  return out;
}

export function eventList(evs) {
  return h('ul', {class: 'events', id: 'events'}, evs.length === 0 ? h('li', {class: 'muted'}, 'none') : evs.map((e) =>
    h('li', {}, h('span', {class: 'muted'}, when(e.time) + ' '), h('span', {class: stateClass((e.type || '').replace('replica-', ''))}, e.type + ' '),
      e.instance ? h('a', {href: instanceHref(e.tenant, e.instance)}, `${e.tenant}/${e.instance} `) : null,
      e.message || (e.audit ? `${e.audit.action} ${e.audit.target}: ${e.audit.result}` : ''))));
}

async function instances(_, ctx) {
  const [tenants, envs] = await Promise.all([
    session.operator ? get('/v1/tenants', {signal: ctx.signal}) : [],
    get('/v1/environments', {signal: ctx.signal}),
  ]);
  const q = new URLSearchParams(location.hash.split('?')[1] || '');
  const f = {
    tenant: select('filter-tenant', [['', 'all'], ...tenants.map((t) => t.name)], q.get('tenant') || ''),
    environment: select('filter-environment', [['', 'all'], ...envs.map((e) => e.name)], q.get('environment') || ''),
    state: select('filter-state', [['', 'all'], ...instanceStates], q.get('state') || ''),
    product: h('input', {id: 'filter-product', size: 10}),
    version: h('input', {id: 'filter-version', size: 8}),
    search: h('input', {id: 'filter-search', type: 'search', placeholder: 'name, tenant, endpoint'}),
  };
  let list = [];
  const body = h('div', {});
  const render = () => {
    const s = f.search.value.trim().toLowerCase();
    const shown = list.filter((i) => (!f.tenant.value || i.tenant === f.tenant.value) &&
      (!f.environment.value || i.environment === f.environment.value) &&
      (!f.state.value || (i.status && i.status.state) === f.state.value) &&
      (!f.product.value || (i.product || '').includes(f.product.value)) &&
      (!f.version.value || versionOf(i).includes(f.version.value)) &&
      (!s || [i.id, ...(i.endpoints || []), ...(i.domains || [])].some((x) => x.toLowerCase().includes(s))));
    body.replaceChildren(instanceTable(shown));
  };
  for (const el of Object.values(f)) el.addEventListener('input', render);
  return h('div', {},
    h('h1', {}, 'Instances'),
    h('div', {class: 'toolbar', role: 'search'}, field('Tenant', f.tenant), field('Environment', f.environment), field('State', f.state),
      field('Product', f.product), field('Version', f.version), field('Search', f.search)),
    h('section', {class: 'card'}, ctx.live(async () => {
      list = await get('/v1/instances', {signal: ctx.signal});
      render();
      return body;
    })));
}

export function instanceTable(list) {
  return table('instances', [
    ['instance', (i) => h('a', {href: instanceHref(i.tenant, i.name)}, i.id)],
    ['environment', (i) => i.environment],
    ['state', (i) => badge(i.status && i.status.state)],
    ['healthy', (i) => h('span', {class: isHealthy(i) ? 'ok' : 'warn'}, healthText(i))],
    ['version', (i) => versionOf(i), 'hide-narrow'],
    ['product', (i) => i.product ? `${i.product}${i.plan ? ' / ' + i.plan : ''}` : 'custom', 'hide-narrow'],
    ['endpoint', (i) => (i.endpoints || []).slice(0, 1).map((u) => h('a', {href: u, rel: 'noreferrer', target: '_blank'}, u)), 'hide-narrow'],
  ], list, (i) => ({'data-instance': i.id}));
}

// --- the instance page (console and portal) ---

async function instance({tenant, name}, ctx) {
  const path = instancePath(tenant, name);
  let current = null;
  const [tn, nodes] = await Promise.all([
    get(`/v1/tenants/${seg(tenant)}`, {signal: ctx.signal}),
    session.operator ? get('/v1/nodes', {signal: ctx.signal}) : [],
  ]);
  const nodeOf = new Map(nodes.map((n) => [n.id, n]));
  const act = (fn) => async (ev) => {
    ev.preventDefault();
    showError(null);
    try { await fn(); } catch (err) { showError(err); }
  };

  const scaleInput = h('input', {id: 'scale-replicas', type: 'number', min: 0, max: 1000});
  const releaseSelect = h('select', {id: 'release-select'});
  const actions = h('div', {class: 'toolbar', id: 'actions'});
  if (session.canChange) {
    actions.append(
      h('form', {class: 'inline', onsubmit: act(async () => {
        const n = Number(scaleInput.value);
        const from = current.replicas;
        if (!Number.isInteger(n) || n < 0) throw {message: 'replicas must be a whole number of 0 or more', field: 'replicas'};
        const ok = await confirmPlan(`Scale ${current.id}`, [
          `replicas ${from} -> ${n}: ${n > from ? plural(n - from, 'replica') + ' started' : n < from ? plural(from - n, 'replica') + ' stopped (drained first)' : 'no change'}`,
          'running replicas keep running: nothing restarts',
          quotaLine(tn, n - from),
        ]);
        if (ok) await api('POST', path + '/scale', {replicas: n});
      })}, field('Replicas', scaleInput), h('button', {id: 'action-scale', type: 'submit', class: 'action'}, 'Scale')),
      h('button', {id: 'action-restart', type: 'button', class: 'action', onclick: act(async () => {
        const u = (current.spec && current.spec.update) || {};
        const ok = await confirmPlan(`Restart ${current.id}`, [
          `restarts ${plural(current.replicas, 'replica')}, ${u.max_parallel || 1} at a time, each replaced once it is healthy`,
          `each replica is taken out of the gateway and drained for ${(current.spec.stop || {}).drain || '5s'} before it stops`,
          maintenanceLine(tn),
        ]);
        if (ok) await api('POST', path + '/restart');
      })}, 'Restart'),
      h('button', {id: 'action-stop', type: 'button', class: 'action', onclick: act(async () => {
        const ok = await confirmPlan(`Stop ${current.id}`, [`stops all ${plural(current.replicas, 'replica')}; the instance keeps its spec and can be started again`, maintenanceLine(tn)]);
        if (ok) await api('POST', path + '/stop' + (await confirmParam(current)));
      })}, 'Stop'),
      h('button', {id: 'action-start', type: 'button', class: 'action', onclick: act(async () => {
        const ok = await confirmPlan(`Start ${current.id}`, [`starts ${plural(current.replicas, 'replica')}`, quotaLine(tn, current.replicas)]);
        if (ok) await api('POST', path + '/start');
      })}, 'Start'),
      h('form', {class: 'inline', onsubmit: act(async () => {
        const to = releaseSelect.value;
        if (!to) return;
        const u = (current.spec && current.spec.update) || {};
        const ok = await confirmPlan(`Change the release of ${current.id}`, [
          `release ${current.release || '-'} -> ${to}: a rolling deployment, ${u.max_parallel || 1} replica at a time`,
          u.auto_rollback ? 'rolls back by itself if the new replicas are not healthy in time' : 'no automatic rollback',
          maintenanceLine(tn),
        ]);
        if (ok) await api('PUT', path, {...requestOf(current), release: to, channel: ''});
      })}, field('Release', releaseSelect), h('button', {id: 'action-release', type: 'submit', class: 'action'}, 'Change release')),
      h('button', {id: 'action-rollback', type: 'button', class: 'action', onclick: act(async () => {
        const to = current.stable_version !== current.version ? current.stable_version : current.version - 1;
        if (to < 1) throw {message: `${current.id} has no earlier version to roll back to`};
        const u = (current.spec && current.spec.update) || {};
        const ok = await confirmPlan(`Roll back ${current.id}`, [
          `a new version with the spec of version ${to}: a rolling deployment, ${u.max_parallel || 1} replica at a time`,
          maintenanceLine(tn),
        ]);
        if (ok) await api('POST', path + '/rollback', {version: to});
      })}, 'Roll back'),
      h('button', {id: 'action-delete', type: 'button', class: 'action danger', onclick: act(async () => {
        const ok = await confirmPlan(`Delete ${current.id}`, [`stops all replicas and removes ${current.id} for good`,
          'type the instance name in the next prompt if its environment is protected']);
        if (ok) {
          await api('DELETE', path + (await confirmParam(current)));
          location.hash = session.operator ? '#/instances' : '#/portal';
        }
      })}, 'Delete'));
  }

  const logs = h('pre', {id: 'logs', tabindex: 0, 'aria-label': 'log output'});
  let logCtl = null;
  const followBtn = h('button', {id: 'logs-follow', type: 'button', 'aria-pressed': 'false'}, 'Follow');
  const appendLog = (text) => {
    logs.append(text);
    if (logs.textContent.length > 200000) logs.textContent = logs.textContent.slice(-100000);
    logs.scrollTop = logs.scrollHeight;
  };
  const readLogs = async (follow) => {
    if (logCtl) logCtl.abort();
    logCtl = new AbortController();
    ctx.signal.addEventListener('abort', () => logCtl.abort());
    logs.textContent = '';
    try {
      await streamText(`${path}/logs?tail=200${follow ? '&follow=true' : ''}`, logCtl.signal, appendLog);
    } catch (err) {
      if (!logCtl.signal.aborted) appendLog(`\n[${err.message}]\n`);
    }
  };
  followBtn.addEventListener('click', () => {
    const on = followBtn.getAttribute('aria-pressed') !== 'true';
    followBtn.setAttribute('aria-pressed', String(on));
    followBtn.textContent = on ? 'Stop following' : 'Follow';
    if (on) readLogs(true); else if (logCtl) logCtl.abort();
  });
  const canLogs = session.canChange;

  const view = h('div', {},
    h('h1', {}, `${tenant}/${name}`),
    ctx.live(async () => {
      const in_ = await get(path, {signal: ctx.signal});
      const first = current === null;
      current = in_;
      if (first) {
        scaleInput.value = in_.replicas;
        if (in_.product) {
          const rels = await get(`/v1/products/${seg(in_.product)}/releases`, {signal: ctx.signal});
          releaseSelect.replaceChildren(...rels.filter((r) => r.state === 'available' && r.version !== in_.release)
            .map((r) => h('option', {value: r.version}, r.version)));
        } else {
          releaseSelect.closest('form').hidden = true;
        }
      }
      const st = in_.status || {};
      const d = st.deployment;
      return h('div', {class: 'grid'},
        h('section', {class: 'card'}, h('h2', {}, 'Instance'), h('dl', {class: 'facts'},
          h('dt', {}, 'state'), h('dd', {}, badge(st.state)),
          h('dt', {}, 'healthy'), h('dd', {id: 'healthy-count', class: isHealthy(in_) ? 'ok' : 'warn'}, healthText(in_)),
          h('dt', {}, 'environment'), h('dd', {}, in_.environment),
          h('dt', {}, 'product'), h('dd', {}, in_.product ? `${in_.product}${in_.plan ? ' / plan ' + in_.plan : ''}` : 'custom spec'),
          h('dt', {}, 'release'), h('dd', {}, in_.release ? `${in_.release}${in_.channel ? ' (channel ' + in_.channel + ')' : ''}${in_.pinned ? ' pinned' : ''}` : versionOf(in_)),
          h('dt', {}, 'version'), h('dd', {}, `${in_.version} (stable ${in_.stable_version})`),
          h('dt', {}, 'endpoints'), h('dd', {}, (in_.endpoints || []).map((u) => h('div', {}, h('a', {href: u, rel: 'noreferrer', target: '_blank'}, u)))),
          h('dt', {}, 'maintenance'), h('dd', {}, windowText(tn.maintenance_window)))),
        h('section', {class: 'card', id: 'deployment'}, h('h2', {}, 'Deployment'), d ? h('dl', {class: 'facts'},
          h('dt', {}, 'state'), h('dd', {}, badge(d.state)),
          h('dt', {}, 'versions'), h('dd', {}, `${d.from_version} -> ${d.to_version}`),
          h('dt', {}, 'progress'), h('dd', {}, d.message || ''),
          h('dt', {}, 'started'), h('dd', {}, ago(d.started_at))) : h('p', {class: 'muted'}, 'none')));
    }),
    actions,
    h('section', {class: 'card'}, h('h2', {}, 'Replicas'), ctx.live(async () => {
      const rs = await get(path + '/replicas', {signal: ctx.signal});
      const live = rs.filter((r) => !(r.desired === 'stop' && ['stopped', 'failed', 'lost', 'exited'].includes(r.state)));
      return table('replicas', [
        ['replica', (r) => h('code', {}, shortID(r.id))],
        ['node', (r) => (nodeOf.get(r.node) || {}).name || shortID(r.node), 'hide-narrow'],
        ['endpoint', (r) => {
          const n = nodeOf.get(r.node);
          const port = Object.values(r.ports || {})[0];
          return n && port ? `${n.address || ''}:${port}` : '';
        }, 'hide-narrow'],
        ['state', (r) => badge(r.state)],
        ['health', (r) => r.health || ''],
        ['version', (r) => r.version, 'hide-narrow'],
        ['restarts', (r) => r.restarts, 'num'],
        ['started', (r) => ago(r.started_at)],
        ['message', (r) => r.message || '', 'hide-narrow'],
      ], live, (r) => ({'data-replica': r.id}));
    })),
    flagsSection(path, ctx, () => current),
    h('section', {class: 'card'}, h('h2', {}, 'Events'), ctx.live(async () => {
      const evs = await get(path + '/events', {signal: ctx.signal});
      return eventList(evs.slice(-50).reverse());
    })),
    canLogs ? h('section', {class: 'card'}, h('h2', {}, 'Logs'), h('div', {class: 'toolbar'}, followBtn,
      h('button', {type: 'button', onclick: () => readLogs(false)}, 'Reload')), logs) : null);
  if (canLogs) readLogs(false);
  return view;
}

// flagsSection shows an instance's resolved flags, and lets whoever may
// change them (operators; tenant admins the tenant_editable ones) set the
// instance's own override.
function flagsSection(path, ctx, instance) {
  return h('section', {class: 'card'}, h('h2', {}, 'Feature flags'), ctx.live(async () => {
    const in_ = instance() || await get(path, {signal: ctx.signal});
    let flags = [];
    let defs = [];
    try {
      [flags, defs] = await Promise.all([
        get(path + '/flags', {signal: ctx.signal}),
        in_ && in_.product ? get(`/v1/products/${seg(in_.product)}/flags`, {signal: ctx.signal}) : [],
      ]);
    } catch (err) {
      if (err.status === 404) return h('p', {class: 'muted'}, 'none');
      throw err;
    }
    const variants = new Map(defs.map((d) => [d.key, Object.keys(d.variants || {}).sort()]));
    const editable = (f) => session.canChange && (session.operator || f.tenant_editable);
    return table('flags', [
      ['flag', (f) => h('code', {}, f.key)],
      ['variant', (f) => f.variant || ''],
      ['value', (f) => JSON.stringify(f.value)],
      ['source', (f) => f.source || ''],
      ['', (f) => editable(f) && variants.has(f.key) ? flagForm(path, f, variants.get(f.key)) : ''],
    ], flags || [], (f) => ({'data-flag': f.key}));
  }));
}

function flagForm(path, f, variants) {
  const sel = select('', variants, f.variant, {'aria-label': `variant of flag ${f.key}`});
  const run = (fn) => async (ev) => {
    ev.preventDefault();
    showError(null);
    try { await fn(); } catch (err) { showError(err); }
  };
  return h('form', {class: 'inline', onsubmit: run(async () => {
    const ok = await confirmPlan(`Set flag ${f.key} of this instance to ${sel.value}`, [
      `the instance's override: ${f.variant} -> ${sel.value}`,
      'replicas read it within seconds, without a restart']);
    if (ok) await api('PUT', `${path}/flags/${seg(f.key)}`, {variant: sel.value});
  })}, sel, h('button', {type: 'submit', class: 'action'}, 'Set'),
  f.source === 'instance' ? h('button', {type: 'button', class: 'action', onclick: run(async () => {
    if (await confirmPlan(`Remove the override of flag ${f.key}`, ['the tenant\'s, environment\'s or default value applies again'])) {
      await api('DELETE', `${path}/flags/${seg(f.key)}`);
    }
  })}, 'Clear') : null);
}

// requestOf is the instance request that keeps an instance as it is.
function requestOf(in_) {
  const r = {name: in_.name, environment: in_.environment, replicas: in_.replicas};
  if (in_.product) Object.assign(r, {product: in_.product, plan: in_.plan, release: in_.release, channel: in_.channel, pinned: in_.pinned, parameters: in_.parameters});
  else r.spec = in_.spec;
  if (in_.domains) r.domains = in_.domains;
  return r;
}

// confirmParam asks for the instance's name when its environment is
// protected, and answers the ?confirm= that the API wants then.
async function confirmParam(in_) {
  const envs = await get('/v1/environments');
  const env = envs.find((e) => e.name === in_.environment);
  if (!env || !env.protected) return '';
  const typed = window.prompt(`${in_.environment} is protected. Type the instance name (${in_.name}) to confirm.`);
  if (typed !== in_.name) throw {message: `not confirmed: type ${in_.name} exactly`, field: 'confirm'};
  return '?confirm=' + seg(typed);
}

export function quotaLine(tn, addReplicas) {
  const q = tn.quotas || {};
  const u = tn.usage || {};
  if (!q.replicas) return `tenant replicas: ${u.replicas || 0} in use -> ${(u.replicas || 0) + Math.max(0, addReplicas)} (no quota)`;
  const after = (u.replicas || 0) + Math.max(0, addReplicas);
  return `tenant replicas: ${after} of the quota of ${q.replicas}${after > q.replicas ? ' (over quota: refused)' : ''}`;
}

export function maintenanceLine(tn) {
  const w = tn.maintenance_window;
  if (!w) return 'no maintenance window: changes apply at once';
  return `${inWindow(w) ? 'inside' : 'outside'} the maintenance window (${windowText(w)})`;
}

// --- nodes ---

async function nodes(_, ctx) {
  return h('div', {}, h('h1', {}, 'Nodes'), h('section', {class: 'card'}, ctx.live(async () => {
    const list = await get('/v1/nodes', {signal: ctx.signal});
    return table('nodes', [
      ['node', (n) => h('a', {href: '#/nodes/' + seg(n.id)}, n.name || shortID(n.id))],
      ['status', (n) => badge(n.status)],
      ['eligible', (n) => n.eligible ? 'yes' : 'no'],
      ['region', (n) => n.region || '', 'hide-narrow'],
      ['address', (n) => n.address || '', 'hide-narrow'],
      ['CPU reserved', (n) => `${(n.reserved || {}).cpu_millis || 0} / ${n.resources.cpu_millis} m`],
      ['memory reserved', (n) => `${(n.reserved || {}).memory_mb || 0} / ${n.resources.memory_mb} MB`, 'hide-narrow'],
      ['load', (n) => n.load ? `${Math.round(n.load.cpu_percent)}% CPU, ${n.load.memory_used_mb} MB` : '', 'hide-narrow'],
      ['seen', (n) => ago(n.last_seen), 'hide-narrow'],
      ['', (n) => nodeActions(n)],
    ], list, (n) => ({'data-node': n.id}));
  })));
}

function nodeActions(n) {
  if (!session.operator) return '';
  const run = (fn) => async () => { showError(null); try { await fn(); } catch (err) { showError(err); } };
  const draining = !!n.drain;
  return h('span', {class: 'toolbar'},
    h('button', {type: 'button', class: 'action', onclick: run(async () => {
      const ok = await confirmPlan(`${draining ? 'End the drain of' : 'Drain'} ${n.name}`, draining
        ? ['the node takes new replicas again']
        : ['its replicas move to other nodes, each drained from the gateways first', 'the node takes no new replicas']);
      if (ok) await api('POST', `/v1/nodes/${seg(n.id)}/drain`, {enable: !draining});
    })}, draining ? 'End drain' : 'Drain'),
    h('button', {type: 'button', class: 'action', onclick: run(async () => {
      await api('POST', `/v1/nodes/${seg(n.id)}/eligibility`, {eligible: !n.eligible});
    })}, n.eligible ? 'Make ineligible' : 'Make eligible'));
}

async function node({id}, ctx) {
  return h('div', {}, ctx.live(async () => {
    const n = await get('/v1/nodes/' + seg(id), {signal: ctx.signal});
    const f = n.facts || {};
    return h('div', {},
      h('h1', {}, `Node ${n.name}`),
      h('div', {class: 'toolbar'}, nodeActions(n)),
      h('div', {class: 'grid'},
        h('section', {class: 'card'}, h('h2', {}, 'Status'), h('dl', {class: 'facts'},
          h('dt', {}, 'status'), h('dd', {}, badge(n.status)), h('dt', {}, 'eligible'), h('dd', {}, n.eligible ? 'yes' : 'no'),
          h('dt', {}, 'id'), h('dd', {}, h('code', {}, n.id)), h('dt', {}, 'address'), h('dd', {}, n.address || ''),
          h('dt', {}, 'region'), h('dd', {}, n.region || ''), h('dt', {}, 'seen'), h('dd', {}, ago(n.last_seen)),
          h('dt', {}, 'labels'), h('dd', {}, Object.entries(n.labels || {}).map(([k, v]) => `${k}=${v}`).join(', ')))),
        h('section', {class: 'card'}, h('h2', {}, 'Facts and load'), h('dl', {class: 'facts'},
          Object.entries(f).flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, String(v))]),
          h('dt', {}, 'CPU'), h('dd', {}, `${(n.reserved || {}).cpu_millis || 0} of ${n.resources.cpu_millis} mCPU reserved`),
          h('dt', {}, 'memory'), h('dd', {}, `${(n.reserved || {}).memory_mb || 0} of ${n.resources.memory_mb} MB reserved`),
          n.load ? [h('dt', {}, 'load'), h('dd', {}, `${Math.round(n.load.cpu_percent)}% CPU, ${n.load.memory_used_mb} MB used, load1 ${n.load.load1}`)] : null))),
      h('section', {class: 'card'}, h('h2', {}, 'Replicas'), table('node-replicas', [
        ['replica', (r) => h('code', {}, shortID(r.id))],
        ['instance', (r) => h('a', {href: instanceHref(r.tenant, r.instance)}, `${r.tenant}/${r.instance}`)],
        ['state', (r) => badge(r.state)],
        ['ports', (r) => Object.entries(r.ports || {}).map(([k, v]) => `${k}:${v}`).join(' ')],
        ['started', (r) => ago(r.started_at)],
      ], (n.replicas || []).filter((r) => r.desired === 'run'))));
  }));
}

// --- catalogue ---

async function catalog(_, ctx) {
  return h('div', {}, h('h1', {}, 'Catalogue'), ctx.live(async () => {
    const products = await get('/v1/products', {signal: ctx.signal});
    const parts = await Promise.all(products.map(async (p) => {
      const [rels, chans] = await Promise.all([get(`/v1/products/${seg(p.name)}/releases`, {signal: ctx.signal}),
        get(`/v1/products/${seg(p.name)}/channels`, {signal: ctx.signal})]);
      return h('section', {class: 'card', 'data-product': p.name},
        h('h2', {}, `${p.name}`), h('p', {class: 'muted'}, p.description || ''),
        h('p', {}, `plans: ${(p.plans || []).join(', ') || 'any'}; default channel: ${p.default_channel || '-'}`),
        table('', [['parameter', (x) => h('code', {}, x.name)], ['type', (x) => x.type + (x.secret ? ', secret' : '') + (x.required ? ', required' : '')],
          ['default', (x) => x.default === undefined ? '' : JSON.stringify(x.default)],
          ['allowed', (x) => x.enum ? x.enum.join(', ') : (x.min !== undefined || x.max !== undefined) ? `${x.min ?? ''}..${x.max ?? ''}` : '']], p.parameters || []),
        h('h2', {}, 'Releases'),
        table('', [['version', (r) => r.version], ['state', (r) => badge(r.state)], ['upgrade from', (r) => r.upgrade_from || ''],
          ['notes', (r) => r.notes || '', 'hide-narrow'], ['published', (r) => ago(r.created_at)]], rels),
        h('h2', {}, 'Channels'),
        table('', [['channel', (c) => c.name + (c.default ? ' (default)' : '')], ['release', (c) => c.release],
          ['', (c) => session.operator ? channelForm(p, c, rels) : '']], chans));
    }));
    return h('div', {}, parts.length ? parts : h('p', {class: 'muted'}, 'No products yet: PUT /v1/products/{name} or drover product create.'));
  }));
}

function channelForm(p, c, rels) {
  const sel = select('', rels.filter((r) => r.state === 'available').map((r) => r.version), c.release, {'aria-label': `release of channel ${p.name}/${c.name}`});
  return h('form', {class: 'inline', onsubmit: async (ev) => {
    ev.preventDefault();
    showError(null);
    try {
      const ok = await confirmPlan(`Point ${p.name}/${c.name} at ${sel.value}`, ['new instances on the channel start at this release',
        'running instances do not move: a rollout upgrades them']);
      if (ok) await api('PUT', `/v1/products/${seg(p.name)}/channels/${seg(c.name)}`, {release: sel.value});
    } catch (err) { showError(err); }
  }}, sel, h('button', {type: 'submit', class: 'action'}, 'Set'));
}

// --- rollouts ---

async function rollouts(_, ctx) {
  return h('div', {}, h('h1', {}, 'Rollouts'),
    h('p', {}, h('a', {href: '#/rollouts/new', id: 'rollout-new-link'}, 'New rollout')),
    h('section', {class: 'card'}, ctx.live(async () => {
      const list = await get('/v1/rollouts', {signal: ctx.signal});
      list.sort((a, b) => (b.create_index || 0) - (a.create_index || 0));
      return table('rollouts', [
        ['rollout', (r) => h('a', {href: '#/rollouts/' + seg(r.id)}, shortID(r.id))],
        ['product', (r) => `${r.product} -> ${r.release}`],
        ['state', (r) => badge(r.state)],
        ['progress', (r) => progress(r)],
        ['created', (r) => ago(r.created_at), 'hide-narrow'],
      ], list, (r) => ({'data-rollout': r.id}));
    })));
}

function progress(r) {
  const c = r.counts || {};
  const done = (c.succeeded || 0) + (c.skipped || 0) + (c.failed || 0) + (c.rolled_back || 0);
  const pct = c.total ? Math.round((100 * done) / c.total) : 100;
  const bar = h('progress', {max: 100, value: pct, 'aria-label': 'rollout progress'});
  return h('div', {}, bar, h('span', {class: 'hint'}, `${done}/${c.total || 0} done, ${c.upgrading || 0} upgrading, ${c.failed || 0} failed`));
}

async function rolloutNew(_, ctx) {
  const products = await get('/v1/products', {signal: ctx.signal});
  const product = select('rollout-product', products.map((p) => p.name), products.length ? products[0].name : '');
  const release = h('select', {id: 'rollout-release'});
  const tenants = h('input', {id: 'rollout-selector-tenants', placeholder: 'all'});
  const envs = h('input', {id: 'rollout-selector-environments', placeholder: 'all'});
  const maxc = h('input', {id: 'rollout-max-concurrent', type: 'number', min: 1, value: 5});
  const approval = select('rollout-approval', ['auto', 'manual'], 'auto');
  const staging = h('input', {id: 'rollout-staging-first', type: 'checkbox'});
  const windows = h('input', {id: 'rollout-windows', type: 'checkbox'});
  const calendar = h('div', {id: 'calendar-box'});
  const start = h('button', {id: 'rollout-start', type: 'button', class: 'action primary', disabled: true}, 'Start rollout');
  const loadReleases = async () => {
    if (!product.value) return;
    const rels = await get(`/v1/products/${seg(product.value)}/releases`);
    release.replaceChildren(...rels.filter((r) => r.state === 'available').reverse().map((r) => h('option', {value: r.version}, r.version)));
  };
  const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);
  const request = () => {
    const sel = {};
    if (list(tenants.value).length) sel.tenants = list(tenants.value);
    if (list(envs.value).length) sel.environments = list(envs.value);
    return {product: product.value, release: release.value, selector: sel, max_concurrent: Number(maxc.value) || 1,
      approval: approval.value, staging_first: staging.checked, maintenance_windows: windows.checked};
  };
  let previewed = null;
  const invalidate = () => { previewed = null; start.disabled = true; };
  for (const el of [product, release, tenants, envs, maxc, approval, staging, windows]) el.addEventListener('change', invalidate);
  product.addEventListener('change', loadReleases);
  await loadReleases();
  const form = h('form', {id: 'rollout-new', onsubmit: async (ev) => {
    ev.preventDefault();
    showError(null);
    try {
      const req = request();
      const plan = await api('POST', '/v1/rollouts?dry_run=true', req);
      previewed = JSON.stringify(req);
      calendar.replaceChildren(h('h2', {}, `Calendar: ${plural((plan.instances || []).length, 'instance')}`), calendarTable(plan));
      start.disabled = false;
    } catch (err) { invalidate(); showError(err); }
  }},
  h('div', {class: 'toolbar'}, field('Product', product), field('Release', release), field('Tenants', tenants, 'comma-separated'),
    field('Environments', envs, 'comma-separated'), field('Max concurrent', maxc), field('Approval', approval)),
  h('div', {class: 'toolbar'}, h('label', {}, staging, ' staging first'), h('label', {}, windows, ' only in maintenance windows')),
  h('div', {class: 'toolbar'}, h('button', {id: 'rollout-preview', type: 'submit'}, 'Preview calendar'), start));
  start.addEventListener('click', async () => {
    showError(null);
    try {
      const req = request();
      if (JSON.stringify(req) !== previewed) throw {message: 'the form changed since the preview: preview again'};
      const r = await api('POST', '/v1/rollouts', req);
      location.hash = '#/rollouts/' + seg(r.id);
    } catch (err) { showError(err); }
  });
  return h('div', {}, h('h1', {}, 'New rollout'), h('section', {class: 'card'}, form), calendar);
}

function calendarTable(r) {
  return table('calendar', [
    ['instance', (i) => h('a', {href: instanceHref(...i.id.split('/'))}, i.id)],
    ['environment', (i) => i.environment, 'hide-narrow'],
    ['wave', (i) => (r.waves && r.waves[i.wave] && r.waves[i.wave].name) || i.wave],
    ['from', (i) => i.from || '', 'hide-narrow'],
    ['state', (i) => badge(i.state)],
    ['reason', (i) => i.reason || ''],
    ['eta', (i) => i.eta ? `${when(i.eta)} (${ago(i.eta)})` : ''],
  ], r.instances || [], (i) => ({'data-instance': i.id}));
}

async function rollout({id}, ctx) {
  const run = (action) => async () => {
    showError(null);
    try { await api('POST', `/v1/rollouts/${seg(id)}/${action}`); } catch (err) { showError(err); }
  };
  return h('div', {}, ctx.live(async () => {
    const r = await get('/v1/rollouts/' + seg(id), {signal: ctx.signal});
    const waves = r.waves && r.waves.length ? r.waves : [{name: 'all'}];
    return h('div', {},
      h('h1', {}, `Rollout ${shortID(r.id)}: ${r.product} -> ${r.release}`),
      h('p', {}, 'State: ', h('strong', {id: 'rollout-state', class: stateClass(r.state)}, r.state), r.message ? ` (${r.message})` : ''),
      h('div', {class: 'toolbar'},
        h('button', {id: 'rollout-pause', type: 'button', class: 'action', disabled: !['running', 'waiting', 'scheduled'].includes(r.state), onclick: run('pause')}, 'Pause'),
        h('button', {id: 'rollout-resume', type: 'button', class: 'action', disabled: r.state !== 'paused', onclick: run('resume')}, 'Resume'),
        h('button', {id: 'rollout-approve', type: 'button', class: 'action', disabled: r.approval !== 'manual' || ['succeeded', 'failed', 'cancelled'].includes(r.state), onclick: run('approve')}, 'Approve next wave'),
        h('button', {id: 'rollout-cancel', type: 'button', class: 'action danger', disabled: ['succeeded', 'failed', 'cancelled'].includes(r.state), onclick: run('cancel')}, 'Cancel')),
      h('section', {class: 'card'}, h('h2', {}, 'Progress'), progress(r),
        table('waves', [['wave', (w) => w.name], ['instances', (w) => (r.instances || []).filter((i) => (r.waves[i.wave] || {}).name === w.name || waves.length === 1).length],
          ['succeeded', (w) => (r.instances || []).filter((i) => ((r.waves[i.wave] || {}).name === w.name || waves.length === 1) && i.state === 'succeeded').length]], waves)),
      h('section', {class: 'card'}, h('h2', {}, 'Instances'), calendarTable(r)));
  }));
}

// --- audit and tokens ---

async function audit(_, ctx) {
  const tenant = h('input', {id: 'audit-tenant', value: session.tenant, disabled: !!session.tenant});
  const since = h('input', {id: 'audit-since', value: '24h'});
  const action = h('input', {id: 'audit-action', placeholder: 'instance.scale'});
  const run = ctx.live(async () => {
    const q = new URLSearchParams();
    if (tenant.value) q.set('tenant', tenant.value);
    if (since.value) q.set('since', since.value);
    if (action.value) q.set('action', action.value);
    const recs = await get('/v1/audit?' + q, {signal: ctx.signal});
    return table('audit', [
      ['time', (r) => when(r.time)], ['action', (r) => r.action], ['target', (r) => r.target],
      ['detail', (r) => r.detail || '', 'hide-narrow'], ['result', (r) => h('span', {class: r.result === 'ok' ? 'ok' : 'bad'}, r.result)],
      ['role', (r) => r.role || '', 'hide-narrow'], ['token', (r) => shortID(r.token_id), 'hide-narrow'], ['source', (r) => r.source || '', 'hide-narrow'],
    ], recs.slice().reverse().slice(0, 500));
  });
  return h('div', {}, h('h1', {}, 'Audit log'),
    h('form', {class: 'inline', onsubmit: (ev) => { ev.preventDefault(); run.refresh(); }},
      field('Tenant', tenant), field('Since', since, '1h, 24h or an RFC 3339 time'), field('Action', action), h('button', {type: 'submit'}, 'Filter')),
    h('section', {class: 'card'}, run));
}

async function tokens(_, ctx) {
  const role = select('token-role', ['operator', 'tenant-admin', 'tenant-viewer', 'gateway', 'management'], 'operator');
  const tenant = h('input', {id: 'token-tenant'});
  const desc = h('input', {id: 'token-description'});
  const secret = h('div', {id: 'token-secret', 'aria-live': 'polite'});
  const form = h('form', {class: 'inline', onsubmit: async (ev) => {
    ev.preventDefault();
    showError(null);
    try {
      const t = await api('POST', '/v1/acl/tokens', {role: role.value, tenant: tenant.value || undefined, description: desc.value});
      secret.replaceChildren(h('p', {}, 'Secret of the new token, shown once: ', h('code', {}, t.secret)));
    } catch (err) { showError(err); }
  }}, field('Role', role), field('Tenant', tenant), field('Description', desc), h('button', {type: 'submit', class: 'action'}, 'Create token'));
  return h('div', {}, h('h1', {}, 'Tokens'), h('section', {class: 'card'}, form, secret),
    h('section', {class: 'card'}, ctx.live(async () => {
      const list = await get('/v1/acl/tokens', {signal: ctx.signal});
      return table('tokens', [
        ['token', (t) => h('code', {}, shortID(t.id))], ['role', (t) => t.role], ['tenant', (t) => t.tenant || ''],
        ['description', (t) => t.description || ''], ['created', (t) => ago(t.created_at)],
        ['', (t) => h('button', {type: 'button', class: 'action danger', onclick: async () => {
          showError(null);
          try {
            if (await confirmPlan(`Revoke token ${shortID(t.id)}`, ['its next request is refused', t.role === 'management' ? 'the last management token cannot be revoked' : null])) {
              await api('DELETE', '/v1/acl/tokens/' + seg(t.id));
            }
          } catch (err) { showError(err); }
        }}, 'Revoke')],
      ], list);
    })));
}

export const consoleViews = {
  fleet, instances, instance, nodes, node, catalog, rollouts, 'rollout-new': rolloutNew, rollout, audit, tokens,
};
