// mgo dashboard: a client of mgo's JSON API (/api/v1). The API token is
// kept in sessionStorage for this tab only and sent as a bearer token; any
// 401 clears it and shows the login page. No external requests.
'use strict';

const TOKEN_KEY = 'mgo.token';
const STAGES = [['queued', 'Queued'], ['committed', 'Committed'], ['pushed', 'Pushed'], ['synced', 'Synced'], ['rolledOut', 'Rolled out']];
let repo = {}; // the gitops repo, for links to commits
let generation = 0; // bumped on every route change: stale polls stop
let loginMessage = ''; // why the login page is shown
let loginKind = 'bad';

// ---- DOM helpers -------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'width') el.style.width = v; // CSSOM: allowed by the CSP, unlike a style attribute
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}
const main = () => document.getElementById('main');

function setPage(title, ...content) {
  document.title = title + ' · mgo';
  const m = main();
  m.replaceChildren(...content.flat().filter(c => c != null && c !== false));
  m.focus({ preventScroll: true });
  for (const a of document.querySelectorAll('[data-nav]')) {
    const cur = location.hash.startsWith('#/deployments') ? 'deployments' : 'overview';
    if (a.dataset.nav === cur) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
}

function badge(text, kind) { return h('span', { class: 'badge b-' + kind }, text); }

function statusBadge(s) {
  const kind = { succeeded: 'ok', healthy: 'ok', Current: 'ok', failed: 'bad', Failed: 'bad', NotFound: 'bad',
    queued: 'info', pushed: 'info', reverting: 'warn', progressing: 'warn', InProgress: 'warn', Unknown: 'none' }[s] || 'none';
  return badge(s || 'unknown', kind);
}

function plural(n, word) { return n + ' ' + word + (n === 1 ? '' : 's'); }

function short(sha) { return sha ? sha.slice(0, 8) : ''; }

function commitLink(sha) {
  if (!sha) return h('span', { class: 'muted' }, '—');
  const code = h('code', { title: sha }, short(sha));
  if (!repo.commitURL) return code;
  return h('a', { href: repo.commitURL.replace('{commit}', sha), rel: 'noopener', target: '_blank',
    'aria-label': 'commit ' + short(sha) + ' on ' + repo.forge }, code);
}

function ago(t) {
  if (!t) return h('span', { class: 'muted' }, 'never');
  const d = new Date(t);
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  let text;
  if (s < 5) text = 'just now';
  else if (s < 90) text = s + ' s ago';
  else if (s < 5400) text = Math.round(s / 60) + ' min ago';
  else if (s < 129600) text = Math.round(s / 3600) + ' h ago';
  else text = Math.round(s / 86400) + ' d ago';
  return h('time', { datetime: d.toISOString(), title: d.toLocaleString() }, text);
}

function secs(x) { return x < 10 ? x.toFixed(2) + ' s' : x < 120 ? x.toFixed(1) + ' s' : Math.round(x / 60) + ' min'; }

function image(req) {
  if (!req) return '';
  return (req.imageRepo || '') + (req.tag ? ':' + req.tag : '') + (req.digest ? '@' + req.digest.slice(0, 19) + '…' : '');
}

function requester(req) { return (req && (req.author || req.client)) || ''; }

// The API's older answers name some fields in Go style (Subject); read
// every key with a lower-case first letter.
function camel(v) {
  if (Array.isArray(v)) return v.map(camel);
  if (v && typeof v === 'object') {
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k.charAt(0).toLowerCase() + k.slice(1)] = camel(x);
    return o;
  }
  return v;
}

// ---- API ---------------------------------------------------------------

class AuthError extends Error {}

async function api(path, opts = {}) {
  const headers = { Authorization: 'Bearer ' + (sessionStorage.getItem(TOKEN_KEY) || '') };
  if (opts.body) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method: opts.method || 'GET', headers, cache: 'no-store',
    body: opts.body ? JSON.stringify(opts.body) : undefined });
  let body = null;
  try { body = await res.json(); } catch (e) { /* not JSON */ }
  if (res.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    loginKind = 'bad';
    loginMessage = 'The token was not accepted (401): ' + ((body && body.error) || 'unauthenticated') + '.';
    if (location.hash !== '#/login') sessionStorage.setItem('mgo.after-login', location.hash || '#/');
    if (location.hash === '#/login' || !location.hash) route(); else location.hash = '#/login';
    throw new AuthError(loginMessage);
  }
  if (!res.ok) {
    const e = new Error((body && body.error) || res.status + ' ' + res.statusText);
    e.status = res.status;
    e.body = camel(body);
    throw e;
  }
  return camel(body);
}

function errorBox(e, what) {
  if (e instanceof AuthError) return null;
  const codes = { 403: 'Forbidden (403)', 404: 'Not found (404)', 409: 'Conflict (409)', 424: 'Rollout failed (424)', 503: 'Unavailable (503)' };
  return h('div', { class: 'alert bad', role: 'alert' }, h('strong', {}, (codes[e.status] || (e.status ? 'Error ' + e.status : 'Error')) + (what ? ': ' + what : '')),
    h('pre', {}, e.message));
}

// poll runs fn now and every ms until the route changes.
function poll(ms, fn) {
  const gen = generation;
  const tick = async () => {
    if (gen !== generation) return;
    try { await fn(); } catch (e) { if (e instanceof AuthError || e.status === 403 || e.status === 404) return; } // asking again will not help
    if (gen === generation) setTimeout(tick, document.hidden ? ms * 4 : ms);
  };
  return tick();
}

// ---- pages -------------------------------------------------------------

function loginPage() {
  document.getElementById('top').hidden = true;
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true,
    'aria-describedby': 'token-help' });
  const form = h('form', { class: 'login', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Log in to mgo'),
    loginMessage ? h('div', { class: 'alert ' + loginKind, role: 'alert', id: 'login-error' }, loginMessage) : null,
    h('label', { for: 'token' }, 'API token'), input,
    h('p', { id: 'token-help', class: 'muted' }, 'A token of the tokens file of mgo serve (mgo token new). It is kept in this tab only and sent as a bearer token.'),
    h('button', { type: 'submit' }, 'Log in'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    loginMessage = '';
    try {
      await api('/api/v1/overview');
    } catch (e) {
      if (!(e instanceof AuthError)) { sessionStorage.removeItem(TOKEN_KEY); form.prepend(errorBox(e, 'logging in')); }
      return;
    }
    const back = sessionStorage.getItem('mgo.after-login') || '#/';
    sessionStorage.removeItem('mgo.after-login');
    location.hash = back === '#/login' ? '#/' : back;
  });
  setPage('Log in', form);
  input.focus();
}

async function overviewPage() {
  const status = h('p', { class: 'muted', id: 'updated' }, 'Loading…');
  const cards = h('div', { class: 'cards', id: 'clusters' });
  setPage('Overview', h('h1', {}, 'Clusters'), status, cards);
  await poll(5000, async () => {
    let ov;
    try { ov = await api('/api/v1/overview'); } catch (e) { status.replaceChildren(errorBox(e, 'reading the overview') || ''); throw e; }
    repo = ov.repo || {};
    // Deploy freezes come with the clusters' answer; without it the cards
    // show none.
    const freezes = {};
    try { for (const c of (await api('/api/v1/clusters')).clusters) if (c.freeze) freezes[c.name] = c.freeze; } catch (e) { if (e instanceof AuthError) throw e; }
    cards.replaceChildren(...ov.clusters.map(c => clusterCard(c, freezes[c.name])));
    if (!ov.clusters.length) cards.append(h('p', {}, 'This token may see no cluster.'));
    status.textContent = plural(ov.clusters.length, 'cluster') + ' · updated ' + new Date().toLocaleTimeString();
  });
}

function when(t) { return t ? new Date(t).toLocaleString() : 'no end within a year'; }

// freezeRow is a cluster's deploy freeze: the one on now, else the next.
function freezeRow(fz) {
  if (!fz) return null;
  const held = fz.held ? [' ', badge('pushed changes held', 'warn')] : null;
  if (fz.active) {
    return [h('dt', {}, 'Freeze'), h('dd', { class: 'freeze' }, badge('frozen', 'bad'), ' ', fz.active.reason,
      fz.active.until ? ' until ' + when(fz.active.until) : ', no end within a year', held)];
  }
  if (fz.invalid) return [h('dt', {}, 'Freeze'), h('dd', { class: 'freeze' }, badge('windows with errors: deploys refused', 'bad'))];
  if (!fz.next) return null;
  return [h('dt', {}, 'Next freeze'), h('dd', { class: 'freeze' }, fz.next.reason, ' from ', when(fz.next.from), ' until ', when(fz.next.until))];
}

function clusterCard(c, fz) {
  const ls = c.lastSync || {};
  const r = c.releases || {};
  const sync = ls.time ? [ls.failed ? badge('failed', 'bad') : badge('succeeded', 'ok'), ' ', ago(ls.time), ' at ', commitLink(ls.commit)]
    : [badge('not synced yet', 'none')];
  return h('section', { class: 'card', 'aria-labelledby': 'c-' + c.name, 'data-cluster': c.name },
    h('h2', { id: 'c-' + c.name }, h('a', { href: '#/clusters/' + encodeURIComponent(c.name) }, c.name),
      c.manual ? [' ', badge('manual sync', 'info')] : null, fz && fz.active ? [' ', badge('frozen', 'bad')] : null),
    h('dl', {},
      freezeRow(fz),
      h('dt', {}, 'Last sync'), h('dd', {}, sync),
      ls.error ? [h('dt', {}, 'Sync error'), h('dd', { class: 'muted' }, ls.error)] : null,
      c.pending ? [h('dt', {}, 'Pending'), h('dd', {}, commitLink(c.pending), ' not synced (manual)')] : null,
      h('dt', {}, 'Drift'), h('dd', {}, c.driftChecked ? [c.drift ? badge(plural(c.drift, 'object') + (c.drift === 1 ? ' differs' : ' differ'), 'warn') : badge('none', 'ok'), ' ', ago(c.driftChecked)] : h('span', { class: 'muted' }, 'not checked yet')),
      h('dt', {}, 'Releases'), h('dd', { class: 'counts' }, badge(r.healthy + ' healthy', r.healthy ? 'ok' : 'none'),
        badge(r.progressing + ' progressing', r.progressing ? 'warn' : 'none'), badge(r.failed + ' failed', r.failed ? 'bad' : 'none')),
      c.liveError ? [h('dt', {}, 'Live state'), h('dd', { class: 'muted' }, c.liveError)] : null,
      h('dt', {}, 'Deploys, 24 h'), h('dd', {}, String(c.deploys24h), c.failedDeploys24h ? [' (', badge(c.failedDeploys24h + ' failed', 'bad'), ')'] : null)),
    h('div', { class: 'links' },
      h('a', { href: '#/clusters/' + encodeURIComponent(c.name) }, 'Releases', h('span', { class: 'sr-only' }, ' of ' + c.name)),
      h('a', { href: '#/clusters/' + encodeURIComponent(c.name) + '/diff' }, 'Diff', h('span', { class: 'sr-only' }, ' of ' + c.name)),
      h('a', { href: '#/deployments?cluster=' + encodeURIComponent(c.name) }, 'Deployments', h('span', { class: 'sr-only' }, ' to ' + c.name))));
}

async function clusterPage(name) {
  const search = h('input', { id: 'filter', type: 'search', placeholder: 'name, namespace, chart, image' });
  const health = h('select', { id: 'health' }, h('option', { value: '' }, 'Any'),
    ['healthy', 'progressing', 'failed'].map(x => h('option', { value: x }, x)));
  const status = h('p', { class: 'muted', id: 'updated', 'aria-live': 'polite' }, 'Reading the releases…');
  const tbody = h('tbody', { id: 'releases' });
  const table = h('div', { class: 'table-wrap' }, h('table', { class: 'stack' },
    h('caption', { class: 'sr-only' }, 'Releases of ' + name),
    h('thead', {}, h('tr', {}, ['Release', 'Chart', 'Images', 'Revision', 'Health', 'Objects (kstatus)', 'Last change'].map(x => h('th', { scope: 'col' }, x)))),
    tbody));
  setPage(name, h('div', { class: 'crumbs' }, h('a', { href: '#/' }, 'Clusters'), ' / ', name),
    h('h1', {}, 'Cluster ', name),
    h('div', { class: 'links' }, h('a', { href: '#/clusters/' + encodeURIComponent(name) + '/diff' }, 'Live diff'),
      h('a', { href: '#/deployments?cluster=' + encodeURIComponent(name) }, 'Deployments')),
    h('form', { class: 'row', role: 'search', onsubmit: (e) => e.preventDefault() },
      h('div', {}, h('label', { for: 'filter' }, 'Filter releases'), search),
      h('div', {}, h('label', { for: 'health' }, 'Health'), health)),
    status, table);
  let data = null;
  const draw = () => {
    if (!data) return;
    const q = search.value.trim().toLowerCase();
    const rows = data.releases.filter(r => (!health.value || r.health === health.value) &&
      (!q || [r.name, r.namespace, r.chart, r.file, ...Object.values(r.images || {})].join(' ').toLowerCase().includes(q)));
    tbody.replaceChildren(...rows.map(releaseRow));
    const c = data.counts;
    status.textContent = `${rows.length} of ${c.total} releases shown · ${c.healthy} healthy, ${c.progressing} progressing, ${c.failed} failed · head ${short(data.head)} · read ${new Date(data.read).toLocaleTimeString()}`;
  };
  search.addEventListener('input', draw);
  health.addEventListener('change', draw);
  await poll(5000, async () => {
    try { data = await api('/api/v1/clusters/' + encodeURIComponent(name) + '/live'); } catch (e) { status.replaceChildren(errorBox(e, 'reading cluster ' + name) || ''); throw e; }
    repo = data.repo || repo;
    draw();
  });
}

function releaseRow(r) {
  const objs = r.objects || [];
  const list = h('ul', { class: 'objects' }, objs.map(o => h('li', {}, statusBadge(o.status), h('code', { title: o.subject }, shortSubject(o.subject, r.namespace)),
    o.message && o.status !== 'Current' ? h('span', { class: 'sub' }, o.message) : null)));
  const lc = r.lastChange;
  return h('tr', { 'data-release': r.name },
    h('td', { 'data-label': 'Release' }, h('strong', {}, r.name), h('span', { class: 'sub' }, r.namespace), h('span', { class: 'sub' }, r.file)),
    h('td', { 'data-label': 'Chart' }, r.chart, r.version ? ' ' + r.version : '',
      r.chartVersion && r.chartVersion !== r.version ? h('span', { class: 'sub' }, 'installed ' + r.chartVersion) : null),
    h('td', { 'data-label': 'Images' }, Object.values(r.images || {}).map(i => h('code', { class: 'sub' }, i))),
    h('td', { 'data-label': 'Revision' }, r.installed ? String(r.revision) : h('span', { class: 'muted' }, 'not installed'),
      r.helmStatus ? h('span', { class: 'sub' }, r.helmStatus) : null),
    h('td', { 'data-label': 'Health' }, statusBadge(r.health), r.reason ? h('span', { class: 'sub' }, r.reason) : null,
      r.error ? h('span', { class: 'sub' }, 'last sync: ' + r.error) : null,
      r.dependsOn && r.dependsOn.length ? h('span', { class: 'sub', 'data-depends-on': '' }, 'synced after ' + r.dependsOn.join(', ')) : null),
    h('td', { 'data-label': 'Objects' }, objs.length > 4 ? h('details', {}, h('summary', {}, objs.length + ' objects, ' +
      objs.filter(o => o.status === 'Current').length + ' current'), list) : list),
    h('td', { 'data-label': 'Last change' }, lc ? [commitLink(lc.commit), ' ', ago(lc.time), h('span', { class: 'sub' }, lc.author),
      lc.summary ? h('span', { class: 'sub' }, lc.summary) : null] : h('span', { class: 'muted' }, 'unknown')));
}

// shortSubject drops the release's own namespace from Kind/namespace/name.
function shortSubject(s, ns) {
  const p = (s || '').split('/');
  return p.length === 3 && p[1] === ns ? p[0] + '/' + p[2] : s;
}

function timeline(d, big) {
  const t = d.times || {};
  const q = Date.parse(t.queued);
  const done = d.status === 'succeeded' || d.status === 'failed';
  const end = t.finished ? Date.parse(t.finished) : Date.now();
  const total = Math.max(end - q, 1);
  const segs = [];
  const words = [];
  let prev = q;
  STAGES.forEach(([key, label], i) => {
    if (i === 0 || !t[key]) return;
    const at = Date.parse(t[key]);
    segs.push(h('span', { class: 's' + i, width: `${Math.max(0, (at - prev) / total * 100)}%`, title: `${label} at +${secs((at - q) / 1000)}` }));
    words.push(`${label.toLowerCase()} +${secs((at - q) / 1000)}`);
    prev = at;
  });
  if (!done) { segs.push(h('span', { class: 'run', width: `${(end - prev) / total * 100}%`, title: 'in progress' })); words.push('in progress'); }
  if (d.status === 'failed') { segs.push(h('span', { class: 'fail', width: `${Math.max(2, (end - prev) / total * 100)}%`, title: 'failed at ' + d.stage })); words.push('failed at ' + d.stage); }
  const label = 'Stages: queued, ' + words.join(', ') + (done ? ', total ' + secs(total / 1000) : '');
  const bar = h('div', { class: 'bar' + (big ? ' big' : ''), role: 'img', 'aria-label': label }, segs);
  if (!big) return [bar, h('span', { class: 'sub', 'aria-hidden': 'true' }, done ? secs(total / 1000) : 'running ' + secs(total / 1000))];
  const list = h('ol', { class: 'stages' }, STAGES.map(([key, label], i) => h('li', { class: 's' + i + (t[key] ? ' reached' : '') },
    label, t[key] && i > 0 ? ' +' + secs((Date.parse(t[key]) - q) / 1000) : (t[key] ? '' : ' —'))));
  return h('div', {}, bar, list);
}

function legend() {
  return h('ol', { class: 'stages', 'aria-label': 'Colours of the stage bar' }, STAGES.map(([, label], i) => h('li', { class: 's' + i + ' reached' },
    i === 0 ? 'queued →' : label.toLowerCase() + (i < STAGES.length - 1 ? ' →' : ''))));
}

async function deploymentsPage(params) {
  const cluster = params.get('cluster') || '';
  const status = h('p', { class: 'muted', id: 'updated', role: 'status' }, 'Loading…');
  const tbody = h('tbody', { id: 'deployments' });
  setPage('Deployments', h('h1', {}, 'Deployments', cluster ? ' to ' + cluster : ''),
    cluster ? h('p', {}, h('a', { href: '#/deployments' }, 'All clusters')) : null,
    status, legend(),
    h('div', { class: 'table-wrap' }, h('table', { class: 'stack' },
      h('caption', { class: 'sr-only' }, 'Recent deployments, newest first, updated live'),
      h('thead', {}, h('tr', {}, ['Deployment', 'Requester', 'Image', 'Cluster', 'Status', 'Stages'].map(x => h('th', { scope: 'col' }, x)))),
      tbody)));
  await poll(2000, async () => {
    let list;
    try { list = await api('/api/v1/deployments?limit=50'); } catch (e) { status.replaceChildren(errorBox(e, 'reading deployments') || ''); throw e; }
    const ds = list.deployments.filter(d => !cluster || d.request.cluster === cluster);
    tbody.replaceChildren(...ds.map(d => h('tr', { 'data-deployment': d.id, 'data-status': d.status },
      h('td', { 'data-label': 'Deployment' }, h('a', { href: '#/deployments/' + encodeURIComponent(d.id) }, h('code', {}, d.id)),
        h('span', { class: 'sub' }, d.kind === 'rollback' || d.kind === 'revert' ? d.kind + ' of ' + (d.rollbackOf || '') : 'deploy'), h('span', { class: 'sub' }, ago(d.times && d.times.queued))),
      h('td', { 'data-label': 'Requester' }, requester(d.request)),
      h('td', { 'data-label': 'Image' }, h('code', {}, image(d.request))),
      h('td', { 'data-label': 'Cluster' }, d.request.cluster),
      h('td', { 'data-label': 'Status' }, statusBadge(d.status), d.stage ? h('span', { class: 'sub' }, 'at ' + d.stage) : null),
      h('td', { 'data-label': 'Stages' }, timeline(d, false)))));
    if (!ds.length) tbody.append(h('tr', {}, h('td', { colspan: 6 }, 'No deployments yet.')));
    const live = ds.filter(d => d.status === 'queued' || d.status === 'pushed' || d.status === 'reverting').length;
    status.textContent = `${ds.length} deployment${ds.length === 1 ? '' : 's'} · ${live} in progress · updated ${new Date().toLocaleTimeString()}`;
  });
}

async function deploymentPage(id) {
  const body = h('div', { id: 'deployment' }, h('p', { class: 'muted' }, 'Loading…'));
  const notice = h('div', { id: 'notice', 'aria-live': 'assertive' });
  setPage('Deployment ' + id, h('div', { class: 'crumbs' }, h('a', { href: '#/deployments' }, 'Deployments'), ' / ', id),
    h('h1', {}, 'Deployment ', h('code', {}, id)), notice, body);
  await poll(1500, async () => {
    let d;
    try { d = await api('/api/v1/deployments/' + encodeURIComponent(id)); } catch (e) { body.replaceChildren(errorBox(e, 'reading deployment ' + id) || ''); throw e; }
    body.replaceChildren(...deploymentView(d, notice));
    if (d.status === 'succeeded' || d.status === 'failed') generation++; // finished: stop polling
  });
}

function deploymentView(d, notice) {
  const req = d.request || {};
  const terminal = d.status === 'succeeded' || d.status === 'failed';
  const conflict = d.status === 'failed' && d.kind === 'rollback' && (d.stage === 'commit' || d.stage === 'validate');
  const out = [
    h('dl', { class: 'facts' },
      h('dt', {}, 'Status'), h('dd', { id: 'status', 'data-status': d.status }, statusBadge(d.status), d.stage ? ' at stage ' + d.stage : ''),
      h('dt', {}, 'Kind'), h('dd', {}, d.kind, d.rollbackOf ? [' of ', h('a', { href: '#/deployments/' + encodeURIComponent(d.rollbackOf) }, h('code', {}, d.rollbackOf))] : null),
      h('dt', {}, 'Cluster'), h('dd', {}, h('a', { href: '#/clusters/' + encodeURIComponent(req.cluster) }, req.cluster)),
      h('dt', {}, d.kind === 'rollback' ? 'Image reverted' : 'Image'), h('dd', {}, h('code', {}, image(req))),
      h('dt', {}, 'Trigger repo'), h('dd', {}, req.triggerRepo),
      h('dt', {}, 'Requester'), h('dd', {}, requester(req), req.client && req.client !== req.author ? h('span', { class: 'muted' }, ' via ' + req.client) : null),
      h('dt', {}, 'Commit'), h('dd', { id: 'commit' }, commitLink(d.commit), d.commit && !d.changed ? ' (nothing changed: the image was already set)' : ''),
      d.files && d.files.length ? [h('dt', {}, 'Files'), h('dd', {}, d.files.map(f => h('code', { class: 'sub' }, f)))] : null,
      d.message ? [h('dt', {}, 'Note'), h('dd', {}, d.message)] : null,
      d.revertedBy ? [h('dt', {}, 'Reverted'), h('dd', { id: 'reverted' }, d.reverted ? 'yes, by ' : (d.revertError ? 'no: ' + d.revertError + ' ' : 'in progress: '),
        h('a', { href: '#/deployments/' + encodeURIComponent(d.revertedBy) }, h('code', {}, d.revertedBy)), d.revertCommit ? [' commit ', commitLink(d.revertCommit)] : null,
        d.revertReason ? h('span', { class: 'sub' }, d.revertReason) : null)] : (d.revertError ? [h('dt', {}, 'Reverted'), h('dd', { id: 'reverted' }, 'no: ' + d.revertError)] : null)),
    d.error ? h('div', { class: 'alert bad', role: 'alert', id: 'error' }, h('strong', {}, conflict ? 'Conflict (409): the revert conflicts with later changes' : 'Failed at stage ' + d.stage),
      h('pre', {}, d.error)) : null,
    h('h2', {}, 'Stages'), timeline(d, true),
  ];
  if (terminal && d.changed && d.commit && !d.reverted) {
    const btn = h('button', { type: 'button', class: 'danger', id: 'rollback' }, 'Roll back');
    btn.addEventListener('click', () => rollback(d, btn, notice));
    out.push(h('h2', {}, 'Rollback'), h('p', {}, 'Reverts commit ', commitLink(d.commit), ' in the gitops repo and syncs ', req.cluster, '.'), btn);
  }
  out.push(h('h2', {}, 'Releases'));
  const rels = d.releases || [];
  if (!rels.length) out.push(h('p', { class: 'muted' }, terminal ? 'No release results.' : 'Waiting for the sync…'));
  for (const r of rels) {
    out.push(h('h3', {}, r.namespace + '/' + r.name, ' ', statusBadge(r.action === 'failed' ? 'failed' : r.action), r.revision ? ' revision ' + r.revision : ''),
      r.error ? h('div', { class: 'alert bad' }, h('strong', {}, 'Failed at ' + r.stage), h('pre', {}, r.error)) : null,
      h('div', { class: 'table-wrap' }, h('table', { class: 'stack' },
        h('caption', { class: 'sr-only' }, 'Objects of release ' + r.namespace + '/' + r.name),
        h('thead', {}, h('tr', {}, ['Object', 'Action', 'Status', 'Message'].map(x => h('th', { scope: 'col' }, x)))),
        h('tbody', {}, (r.objects || []).map(o => h('tr', {},
          h('td', { 'data-label': 'Object' }, h('code', {}, o.subject)), h('td', { 'data-label': 'Action' }, o.action || ''),
          h('td', { 'data-label': 'Status' }, o.status ? statusBadge(o.status) : ''), h('td', { 'data-label': 'Message' }, o.message || '')))))));
  }
  return out.filter(Boolean);
}

// The confirmation dialog answers each opening once. Its close event is
// queued as a task when it closes, so it can arrive after the dialog was
// opened again (Escape, then Enter at once on a busy machine): a listener
// per opening would then take that late event as the answer to the new
// question and leave the dialog open with no one listening. So an opening
// answers the previous one, whose close event has not come yet, from the
// dialog's return value, and that late event is skipped.
let confirmPending = null; // answers the opening whose close event has not come yet
let confirmLate = 0; // close events still to come of openings already answered

function confirmDialog(text, ok) {
  const dlg = document.getElementById('confirm');
  if (dlg.open) return Promise.resolve(false);
  if (!dlg.dataset.wired) {
    dlg.dataset.wired = 'yes';
    dlg.addEventListener('close', () => {
      if (confirmLate > 0) { confirmLate--; return; }
      const answer = confirmPending;
      confirmPending = null;
      if (answer) answer(dlg.returnValue === 'ok');
    });
  }
  if (confirmPending) {
    const answer = confirmPending;
    confirmPending = null;
    confirmLate++;
    answer(dlg.returnValue === 'ok');
  }
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = ok;
  return new Promise(resolve => {
    confirmPending = resolve;
    dlg.returnValue = '';
    dlg.showModal();
  });
}

async function rollback(d, btn, notice) {
  const ok = await confirmDialog(`Roll back deployment ${d.id}? This reverts commit ${short(d.commit)} (${image(d.request)}) in the gitops repo and syncs cluster ${d.request.cluster}.`, 'Roll back');
  if (!ok) {
    if (!document.getElementById('confirm').open) btn.focus(); // else it was opened again: its answer comes later
    return;
  }
  btn.disabled = true;
  notice.replaceChildren(h('p', { role: 'status' }, 'Asking for the rollback…'));
  try {
    const r = await api('/api/v1/deployments/' + encodeURIComponent(d.id) + '/rollback', { method: 'POST', body: { wait: false } });
    location.hash = '#/deployments/' + encodeURIComponent(r.id);
  } catch (e) {
    btn.disabled = false;
    notice.replaceChildren(errorBox(e, e.status === 409 ? 'this deployment cannot be rolled back' : 'rollback refused') || '');
  }
}

async function diffPage(name) {
  const status = h('p', { role: 'status', id: 'updated' }, 'Comparing ' + name + ' with the repo (a server-side dry run of every object)…');
  const body = h('div', { id: 'diff' });
  const again = h('button', { type: 'button', class: 'secondary', id: 'again' }, 'Compare again');
  setPage('Diff of ' + name, h('div', { class: 'crumbs' }, h('a', { href: '#/' }, 'Clusters'), ' / ', h('a', { href: '#/clusters/' + encodeURIComponent(name) }, name), ' / diff'),
    h('h1', {}, 'Live diff of ', name), h('p', { class: 'muted' }, 'Left: the live cluster. Right: what the repo renders. Secret values are masked.'),
    h('div', { class: 'row' }, again), status, body);
  const gen = generation;
  const load = async () => {
    again.disabled = true;
    let res;
    try { res = await api('/api/v1/clusters/' + encodeURIComponent(name) + '/diff'); } catch (e) { status.replaceChildren(errorBox(e, 'diffing ' + name) || ''); again.disabled = false; return; }
    if (gen !== generation) return;
    again.disabled = false;
    const diff = res.diff || {};
    const groups = (diff.releases || []).map(r => ({ title: r.namespace + '/' + r.name, sub: r.file, objects: r.objects || [], error: r.error, stage: r.stage }));
    if ((diff.raw || []).length || diff.rawError) groups.push({ title: 'Raw manifests', objects: diff.raw || [], error: diff.rawError });
    let changed = 0;
    body.replaceChildren(...groups.map(g => {
      const differ = g.objects.filter(o => o.action !== 'unchanged');
      changed += differ.length;
      return h('section', { 'aria-label': g.title },
        h('h2', {}, g.title, ' ', differ.length ? badge(differ.length + (differ.length === 1 ? ' differs' : ' differ'), 'warn') : badge('in sync', 'ok')),
        g.sub ? h('p', { class: 'muted' }, h('code', {}, g.sub)) : null,
        g.error ? h('div', { class: 'alert bad' }, h('strong', {}, 'Could not diff' + (g.stage ? ' at ' + g.stage : '')), h('pre', {}, g.error)) : null,
        differ.map(o => objectDiff(o)),
        g.objects.length - differ.length ? h('p', { class: 'muted' }, plural(g.objects.length - differ.length, 'object') + ' unchanged') : null);
    }));
    status.textContent = (changed ? plural(changed, 'object') + (changed === 1 ? ' differs' : ' differ') + ' from the repo' : 'The cluster equals the repo') + ' · compared ' + new Date().toLocaleTimeString();
  };
  again.addEventListener('click', load);
  await load();
}

function objectDiff(o) {
  const rows = [];
  let dels = [], adds = [];
  const flush = () => {
    for (let i = 0; i < Math.max(dels.length, adds.length); i++) {
      rows.push(h('tr', {}, h('td', { class: i < dels.length ? 'del' : '' }, i < dels.length ? dels[i] : ''),
        h('td', { class: i < adds.length ? 'add' : '' }, i < adds.length ? adds[i] : '')));
    }
    dels = []; adds = [];
  };
  for (const line of (o.diff || '').split('\n')) {
    if (line.startsWith('---') || line.startsWith('+++')) continue;
    if (line.startsWith('@@')) { flush(); rows.push(h('tr', { class: 'hunk' }, h('td', { colspan: 2 }, line))); continue; }
    if (line.startsWith('-')) { dels.push(line.slice(1)); continue; }
    if (line.startsWith('+')) { adds.push(line.slice(1)); continue; }
    flush();
    if (line !== '') rows.push(h('tr', {}, h('td', {}, line.slice(1)), h('td', {}, line.slice(1))));
  }
  flush();
  return h('details', { class: 'obj', open: true, 'data-object': o.subject },
    h('summary', {}, h('code', {}, o.subject), ' ', badge(o.action, o.action === 'created' ? 'info' : 'warn')),
    h('div', {}, rows.length ? h('table', { class: 'diff' }, h('caption', { class: 'sr-only' }, 'Diff of ' + o.subject + ': live on the left, repo on the right'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Live'), h('th', { scope: 'col' }, 'Repo'))), h('tbody', {}, rows))
      : h('p', { class: 'muted' }, 'No textual difference.')));
}

// ---- router ------------------------------------------------------------

function route() {
  generation++;
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, query] = hash.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'login' || !sessionStorage.getItem(TOKEN_KEY)) {
    if (parts[0] !== 'login') sessionStorage.setItem('mgo.after-login', location.hash || '#/');
    return loginPage();
  }
  document.getElementById('top').hidden = false;
  if (parts[0] === 'clusters' && parts[1] && parts[2] === 'diff') return diffPage(parts[1]);
  if (parts[0] === 'clusters' && parts[1]) return clusterPage(parts[1]);
  if (parts[0] === 'deployments' && parts[1]) return deploymentPage(parts[1]);
  if (parts[0] === 'deployments') return deploymentsPage(new URLSearchParams(query || ''));
  return overviewPage();
}

document.getElementById('logout').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  loginMessage = 'Logged out: the token is no longer kept in this tab.';
  loginKind = 'info';
  location.hash = '#/login';
});
window.addEventListener('hashchange', route);
route();
