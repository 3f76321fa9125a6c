// The customer portal: a tenant's own instances and the form that creates
// one from the vendor's catalogue. Everything it reads, the API scopes to
// the token's tenant.
import {session, h, api, get, seg, showError, confirmPlan, field, select, fieldError, windowText, plural} from './lib.js';
import {instanceTable, quotaLine, maintenanceLine} from './console.js';

async function portal(_, ctx) {
  const tenant = session.tenant;
  return h('div', {},
    ctx.live(async () => {
      const tn = await get(`/v1/tenants/${seg(tenant)}`, {signal: ctx.signal});
      const q = tn.quotas || {};
      const u = tn.usage || {};
      return h('div', {},
        h('h1', {}, `${tn.name}: instances`),
        h('div', {class: 'grid'},
          h('div', {class: 'card'}, h('div', {class: 'muted'}, 'instances'), h('div', {class: 'stat'}, `${u.instances || 0}${q.instances ? ' / ' + q.instances : ''}`)),
          h('div', {class: 'card'}, h('div', {class: 'muted'}, 'replicas'), h('div', {class: 'stat'}, `${u.replicas || 0}${q.replicas ? ' / ' + q.replicas : ''}`)),
          h('div', {class: 'card'}, h('div', {class: 'muted'}, 'maintenance window'), h('div', {id: 'maintenance-window'}, windowText(tn.maintenance_window)))));
    }),
    session.canChange ? h('p', {}, h('a', {href: '#/portal/new', id: 'new-instance', class: 'action'}, 'New instance')) : null,
    h('section', {class: 'card'}, ctx.live(async () => instanceTable(await get(`/v1/tenants/${seg(tenant)}/instances`, {signal: ctx.signal})))));
}

// paramInput is the control of one declared parameter, checked in the page
// as the API checks it.
function paramInput(p) {
  const attrs = {name: 'param:' + p.name, 'data-field': 'parameters.' + p.name, required: !!p.required};
  let el;
  if (p.enum && p.enum.length) {
    el = select('', [...(p.required ? [] : [['', '(default)']]), ...p.enum.map(String)], p.default === undefined ? '' : String(p.default), attrs);
  } else if (p.type === 'bool') {
    el = h('input', {...attrs, type: 'checkbox', required: false});
    el.checked = p.default === true;
  } else {
    el = h('input', {...attrs, type: p.secret ? 'password' : (p.type === 'int' || p.type === 'number') ? 'number' : 'text',
      autocomplete: p.secret ? 'new-password' : 'off', min: p.min, max: p.max, step: p.type === 'int' ? 1 : undefined,
      placeholder: p.default === undefined ? '' : String(p.default)});
  }
  const hint = [p.description, p.type, p.secret ? 'secret' : '', p.min !== undefined || p.max !== undefined ? `${p.min ?? ''}..${p.max ?? ''}` : '',
    p.required ? 'required' : ''].filter(Boolean).join(' · ');
  return field(p.name, el, hint);
}

// paramValue reads a parameter's control as the JSON value of its type;
// undefined leaves it to its default.
function paramValue(p, el) {
  if (p.type === 'bool') return el.checked;
  const v = el.value.trim();
  if (v === '') return undefined;
  if (p.type === 'int' || p.type === 'number') return Number(v);
  return v;
}

// checkParam is the page's own check of a value, before the API's.
function checkParam(p, v) {
  if (v === undefined) return p.required && p.default === undefined ? 'is required' : '';
  if (p.type === 'int' && !Number.isInteger(v)) return 'must be a whole number';
  if ((p.type === 'int' || p.type === 'number') && Number.isNaN(v)) return 'must be a number';
  if (p.min !== undefined && v < p.min) return `must be at least ${p.min}`;
  if (p.max !== undefined && v > p.max) return `must be at most ${p.max}`;
  if (p.enum && p.enum.length && !p.enum.map(String).includes(String(v))) return `must be one of ${p.enum.join(', ')}`;
  return '';
}

async function create(_, ctx) {
  const tenant = session.tenant;
  const [products, envs, tn] = await Promise.all([get('/v1/products', {signal: ctx.signal}), get('/v1/environments', {signal: ctx.signal}),
    get(`/v1/tenants/${seg(tenant)}`, {signal: ctx.signal})]);
  const name = h('input', {id: 'create-name', 'data-field': 'name', required: true, pattern: '[a-z0-9]([a-z0-9-]*[a-z0-9])?', maxlength: 63});
  const env = select('create-environment', envs.map((e) => e.name), envs.some((e) => e.name === 'staging') ? 'staging' : '', {'data-field': 'environment'});
  const product = select('create-product', products.map((p) => [p.name, p.description ? `${p.name}: ${p.description}` : p.name]), products.length ? products[0].name : '', {'data-field': 'product'});
  const plan = h('select', {id: 'create-plan', 'data-field': 'plan'});
  const release = h('select', {id: 'create-release', 'data-field': 'release'});
  const replicas = h('input', {id: 'create-replicas', type: 'number', min: 1, max: 100, value: 1, 'data-field': 'replicas'});
  const params = h('fieldset', {id: 'create-parameters'});
  let prod = null;
  const load = async () => {
    prod = products.find((p) => p.name === product.value);
    if (!prod) return;
    const rels = await get(`/v1/products/${seg(prod.name)}/releases`);
    const chans = Object.keys(prod.channels || {});
    release.replaceChildren(
      ...chans.map((c) => h('option', {value: 'channel:' + c, selected: c === prod.default_channel}, `channel ${c} (${prod.channels[c]})`)),
      ...rels.filter((r) => r.state === 'available').reverse().map((r) => h('option', {value: r.version}, `release ${r.version}`)));
    plan.replaceChildren(...(prod.plans && prod.plans.length ? prod.plans : ['']).map((p) => h('option', {value: p}, p || '(none)')));
    plan.disabled = !(prod.plans && prod.plans.length);
    params.replaceChildren(h('legend', {}, 'Parameters'), ...(prod.parameters || []).map(paramInput));
  };
  product.addEventListener('change', load);
  await load();

  const form = h('form', {id: 'create-form', novalidate: true, onsubmit: async (ev) => {
    ev.preventDefault();
    showError(null);
    fieldError(form, null);
    const req = {name: name.value.trim(), environment: env.value, product: product.value, replicas: Number(replicas.value)};
    if (plan.value) req.plan = plan.value;
    if (release.value.startsWith('channel:')) req.channel = release.value.slice(8);
    else req.release = release.value;
    req.parameters = {};
    for (const p of (prod && prod.parameters) || []) {
      const el = form.querySelector(`[name="param:${CSS.escape(p.name)}"]`);
      const v = paramValue(p, el);
      const bad = checkParam(p, v);
      if (bad) {
        fieldError(form, {field: 'parameters.' + p.name, message: `${p.name} ${bad}`});
        return;
      }
      if (v !== undefined) req.parameters[p.name] = v;
    }
    if (!req.name) {
      fieldError(form, {field: 'name', message: 'name is required'});
      return;
    }
    const ok = await confirmPlan(`Create ${tenant}/${req.name}`, [
      `${req.product}${req.plan ? ' plan ' + req.plan : ''}, ${req.channel ? 'channel ' + req.channel : 'release ' + req.release}, in ${req.environment}`,
      `starts ${plural(req.replicas, 'replica')}`,
      `${quotaLine(tn, req.replicas)}; instances: ${(tn.usage || {}).instances || 0} -> ${((tn.usage || {}).instances || 0) + 1}${(tn.quotas || {}).instances ? ' of ' + tn.quotas.instances : ''}`,
      maintenanceLine(tn),
    ]);
    if (!ok) return;
    try {
      await api('POST', `/v1/tenants/${seg(tenant)}/instances`, req);
      location.hash = `#/instances/${seg(tenant)}/${seg(req.name)}`;
    } catch (err) {
      if (!fieldError(form, err)) showError(err);
    }
  }},
  field('Name', name, 'lower-case letters, digits and dashes'), field('Environment', env), field('Product', product),
  field('Plan', plan), field('Release or channel', release), field('Replicas', replicas), params,
  h('p', {}, h('button', {id: 'create-submit', type: 'submit', class: 'primary'}, 'Review and create')));
  return h('div', {}, h('h1', {}, 'New instance'), h('section', {class: 'card'}, form));
}

export const portalViews = {portal, create};
