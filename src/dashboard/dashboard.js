// The gateway's dashboard: a page of the gateway itself, on its admin API alone. The admin key lives in
// this tab's session storage and goes in the Authorization header, never in a URL. Everything from the
// server is written as text (textContent), never as HTML.

const KEY_STORAGE = 'llm-gateway.admin-key';
const LIVE_EVERY_MS = 2_000;
const SLOW_EVERY_MS = 15_000;

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

const state = {
  key: sessionStorage.getItem(KEY_STORAGE),
  paused: false,
  timers: /** @type {number[]} */ ([]),
  keyNames: new Map(),
  keys: /** @type {any[]} */ ([]),
};

// ---- the admin API ----

class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { authorization: `Bearer ${state.key}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res;
  try {
    res = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch {
    throw new ApiError(0, 'The gateway cannot be reached.');
  }
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const err = data && data.error ? data.error : {};
    const error = new ApiError(res.status, err.message || `HTTP ${res.status}`, err.code);
    if (res.status === 401) signOut('The admin key was refused: sign in again.');
    throw error;
  }
  return data;
}

// ---- formatting ----

const nf = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const num = (n) => (n === null || n === undefined ? '–' : nf.format(n));
const ms = (n) =>
  n === null || n === undefined ? '–' : n >= 1000 ? `${nf.format(n / 1000)} s` : `${nf.format(n)} ms`;
/** A quantile read off histogram buckets: approximate, and said so. */
const approx = (n) => (n === null || n === undefined ? '–' : `≈${ms(n)}`);
const pct = (r) => (r === null || r === undefined ? '–' : `${nf.format(r * 100)}%`);
const money = (c) =>
  c === null || c === undefined ? '–' : c === 0 ? '$0' : `$${c < 1 ? c.toFixed(4) : nf.format(c)}`;
/** A limits object in words: `rpm 600 · tpm 200000 · maxParallel 3`. */
const limitsText = (limits) =>
  limits && Object.keys(limits).length > 0
    ? Object.entries(limits)
        .map(([k, v]) => `${k} ${typeof v === 'object' ? JSON.stringify(v) : v}`)
        .join(' · ')
    : 'none';
const bytes = (b) => {
  if (b === null || b === undefined) return '–';
  const units = ['B', 'KB', 'MB', 'GB'];
  let i = 0;
  while (b >= 1024 && i < units.length - 1) {
    b /= 1024;
    i++;
  }
  return `${nf.format(b)} ${units[i]}`;
};
const when = (iso) => (iso ? new Date(iso).toLocaleString() : '–');
const clock = (iso) =>
  new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });

/** An element with text, attributes and children. */
function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') node.textContent = String(v);
    else if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
  return node;
}

/** A table cell labelled with its column (the phone layout shows the label). */
function cell(label, content, cls) {
  const td = h('td', { 'data-label': label, class: cls });
  if (content instanceof Node) td.append(content);
  else td.textContent = content === undefined || content === null ? '–' : String(content);
  return td;
}

function tiles(target, items) {
  target.replaceChildren(
    ...items.map(([label, value, id]) =>
      h('div', {}, h('dt', { text: label }), h('dd', { text: value, 'data-tile': id })),
    ),
  );
}

function toast(text) {
  const t = $('toast');
  t.textContent = text;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.textContent = ''), 4_000);
}

// ---- charts: inline SVG, one polyline per series, gaps where there is no value ----

const CHART_W = 300;
const CHART_H = 80;

/** A chart of the window's points, placed by time: the right edge is now, the left `windowSeconds` ago. */
function chart(title, points, series, format, windowSeconds) {
  let max = 0;
  for (const s of series) for (const p of points) if (p[s.key] !== null && p[s.key] > max) max = p[s.key];
  const top = max > 0 ? max * 1.1 : 1;
  const endOf = (p) => Date.parse(p.t) + p.seconds * 1000;
  const end = points.length > 0 ? endOf(points.at(-1)) : Date.now();
  const start = end - windowSeconds * 1000;
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', `0 0 ${CHART_W} ${CHART_H}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('aria-hidden', 'true');
  for (const y of [0.5, 1]) {
    const line = document.createElementNS(svg.namespaceURI, 'line');
    line.setAttribute('class', 'grid');
    line.setAttribute('x1', '0');
    line.setAttribute('x2', String(CHART_W));
    line.setAttribute('y1', String(CHART_H * y));
    line.setAttribute('y2', String(CHART_H * y));
    svg.append(line);
  }
  series.forEach((s, si) => {
    let run = [];
    const flush = () => {
      if (run.length > 0) {
        const poly = document.createElementNS(svg.namespaceURI, 'polyline');
        poly.setAttribute('class', `s${si + 1}`);
        // A lone point is drawn as a short dash.
        if (run.length === 1) run.push(`${Number(run[0].split(',')[0]) + 2},${run[0].split(',')[1]}`);
        poly.setAttribute('points', run.join(' '));
        svg.append(poly);
      }
      run = [];
    };
    points.forEach((p) => {
      const v = p[s.key];
      if (v === null || v === undefined) return flush();
      const x = Math.max(0, ((endOf(p) - start) / (end - start)) * CHART_W);
      const y = CHART_H - (v / top) * CHART_H;
      run.push(`${x.toFixed(1)},${y.toFixed(1)}`);
    });
    flush();
  });
  const last = points.at(-1) || {};
  const summary = series.map((s) => `${s.label} ${format(last[s.key] ?? null)}`).join(', ');
  return h(
    'figure',
    { role: 'img', 'aria-label': `${title}: now ${summary}; highest ${format(max)}` },
    h(
      'figcaption',
      {},
      h('strong', { text: title }),
      ...series.map((s, si) =>
        h('span', { class: `key-${si + 1}`, text: `${s.label} ${format(last[s.key] ?? null)}` }),
      ),
      h('span', { class: 'muted', text: `highest ${format(max)}` }),
    ),
    svg,
    h(
      'div',
      { class: 'axis muted', 'aria-hidden': 'true' },
      h('span', { text: `${Math.round(windowSeconds / 60)} min ago` }),
      h('span', { text: 'now' }),
    ),
  );
}

// ---- live: status and traffic ----

function renderTraffic(traffic) {
  const recent = traffic.recent;
  $('traffic-window').textContent =
    `last ${Math.round(traffic.windowSeconds / 60)} min, ${traffic.intervalSeconds} s steps` +
    (traffic.processes > 1 ? `, ${traffic.processes} workers summed` : '');
  tiles($('traffic-tiles'), [
    ['Requests/s (1 min)', num(recent.rps), 'rps'],
    ['Requests (1 min)', num(recent.requests), 'requests'],
    ['Errors 5xx (1 min)', num(recent.errors), 'errors'],
    ['Refused 4xx (1 min)', num(recent.clientErrors), 'client-errors'],
    ['Limited 429 (1 min)', num(recent.limited), 'limited'],
    [
      'Latency p50 / p95 (1 min)',
      `${approx(recent.latencyP50Ms)} / ${approx(recent.latencyP95Ms)}`,
      'latency',
    ],
    [
      'Time to first token p50 / p95 (streams, 1 min)',
      `${approx(recent.ttftP50Ms)} / ${approx(recent.ttftP95Ms)}`,
      'ttft',
    ],
    [
      'Retries · continuations · hedges',
      `${recent.retries} · ${recent.continuations} · ${recent.hedges}`,
      'recovery',
    ],
    ['Tokens/min', num(recent.tokensPerMinute), 'tokens'],
  ]);
  // The running interval is drawn once it is long enough for its rate to mean something.
  const pts = traffic.points.filter((p, i) => i < traffic.points.length - 1 || p.seconds >= 2);
  const charts = [
    ['Requests/s', [{ key: 'rps', label: 'req/s' }], num],
    [
      'Errors per 5 s',
      [
        { key: 'clientErrors', label: '4xx' },
        { key: 'limited', label: '429' },
        { key: 'errors', label: '5xx' },
      ],
      num,
    ],
    [
      'Latency (≈, from histogram buckets)',
      [
        { key: 'latencyP50Ms', label: 'p50' },
        { key: 'latencyP95Ms', label: 'p95' },
      ],
      ms,
    ],
    [
      'Time to first token (streams, ≈)',
      [
        { key: 'ttftP50Ms', label: 'p50' },
        { key: 'ttftP95Ms', label: 'p95' },
      ],
      ms,
    ],
    [
      'Recovery per 5 s',
      [
        { key: 'retries', label: 'retries' },
        { key: 'continuations', label: 'continuations' },
        { key: 'hedges', label: 'hedges' },
      ],
      num,
    ],
  ];
  $('charts').replaceChildren(
    ...charts.map(([title, series, format]) => chart(title, pts, series, format, traffic.windowSeconds)),
  );
}

/**
 * An endpoint's state as readiness sees it (its condition: known to work, or why not), with the time
 * an ejection or a cool-down ends. An endpoint that has not answered lately is not shown as healthy.
 */
function stateText(ep) {
  const c = ep.condition;
  if (c === 'ejected' && ep.ejectedUntil) return `ejected until ${clock(ep.ejectedUntil)}`;
  if (c === 'cooling-down' && ep.coolingDownUntil) return `cooling down until ${clock(ep.coolingDownUntil)}`;
  if (c === 'up') return 'healthy';
  return c.replace('-', ' ');
}

/** Keeps focus and half-typed input: rows are not rebuilt while the keyboard or a field is in them. */
function busy(tbody) {
  return tbody.contains(document.activeElement) && document.activeElement !== tbody;
}

function renderEndpoints(status, traffic) {
  $('readiness').textContent = status.status === 'ready' ? 'ready' : status.status.replace('_', ' ');
  $('readiness').className = `pill state-${status.status}`;
  $('endpoints-note').textContent =
    `TTFT and errors over the last ${Math.round(traffic.endpointWindowSeconds / 60)} minutes of attempts; ` +
    `state and in flight as seen by the worker that answered (pid ${status.pid}).`;
  if (busy($('endpoint-rows'))) return;
  const rows = status.endpoints.map((ep) => {
    const t = traffic.endpoints[ep.name] || {};
    const runtime = ep.source === 'runtime';
    const weight = h('input', {
      class: 'weight',
      type: 'number',
      min: '0',
      step: 'any',
      value: ep.weight,
      'aria-label': `Weight of ${ep.name}`,
    });
    const setWeight = () => {
      const value = weight.value.trim();
      if (value === '' || !(Number(value) >= 0))
        return act(() => {
          throw new Error(`Type a weight for ${ep.name}: 0 or more (0 drains it).`);
        }, 'endpoints-error');
      return changeEndpoint(
        ep.name,
        { weight: Number(value) },
        `Weight of ${ep.name} set to ${Number(value)}`,
      );
    };
    weight.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') void setWeight();
    });
    const actions = runtime
      ? h(
          'div',
          { class: 'actions' },
          weight,
          h('button', {
            type: 'button',
            text: 'Set weight',
            onclick: () => setWeight(),
          }),
          h('button', {
            type: 'button',
            text: 'Drain',
            disabled: ep.weight === 0,
            onclick: () => changeEndpoint(ep.name, { weight: 0 }, `${ep.name} drains`),
          }),
          h('button', {
            type: 'button',
            class: 'danger',
            text: 'Remove',
            onclick: () => removeEndpoint(ep.name),
          }),
        )
      : h('span', { class: 'small', text: 'config file' });
    const errors =
      t.errorRatio !== undefined && t.errorRatio !== null
        ? `${pct(t.errorRatio)} of ${t.attempts}`
        : `${pct(ep.errorRatio)} (health)`;
    return h(
      'tr',
      { 'data-endpoint': ep.name },
      cell(
        'Endpoint',
        h(
          'div',
          {},
          h('strong', { text: ep.name }),
          h('div', { class: 'small', text: `${ep.url} · ${ep.source}` }),
        ),
      ),
      cell(
        'State',
        h(
          'div',
          {},
          h('span', { class: `pill state-${ep.condition}`, text: stateText(ep) }),
          ep.reason ? h('div', { class: 'small', text: ep.reason }) : null,
        ),
      ),
      cell('Priority', ep.priority, 'num'),
      cell('Weight', ep.weight, 'num'),
      cell('In flight', ep.inFlight, 'num'),
      cell('TTFT p50 / p95', `${approx(t.ttftP50Ms)} / ${approx(t.ttftP95Ms)}`),
      cell('Errors', errors),
      cell('Models', ep.models.length > 0 ? ep.models.join(', ') : '–'),
      cell(
        'Last error',
        ep.lastError
          ? h(
              'div',
              {},
              h('span', { text: `${ep.lastError.kind} at ${clock(ep.lastError.at)}` }),
              h('div', { class: 'small', text: ep.lastError.message }),
            )
          : '–',
      ),
      cell('Actions', actions),
    );
  });
  $('endpoint-rows').replaceChildren(...rows);
}

function renderCache(cache, traffic) {
  const off = !cache || cache.mode === 'off';
  $('cache-clear').hidden = off;
  if (off) {
    tiles($('cache-tiles'), [['Mode', 'off (set CACHE=memory or redis)', 'mode']]);
    return;
  }
  const looked = cache.hits + cache.misses;
  tiles($('cache-tiles'), [
    ['Mode', `${cache.mode}${cache.reachable ? '' : ' (unreachable)'}`, 'mode'],
    ['Entries', num(cache.entries), 'entries'],
    [
      'Size',
      cache.maxBytes ? `${bytes(cache.bytes)} of ${bytes(cache.maxBytes)}` : bytes(cache.bytes),
      'bytes',
    ],
    ['Hit ratio (since start)', looked > 0 ? pct(cache.hits / looked) : '–', 'ratio'],
    ['Hits (1 min)', num(traffic.recent.cacheHits), 'recent-hits'],
    ['Scope · TTL', `${cache.scope} · ${cache.ttlSeconds} s`, 'scope'],
  ]);
}

async function refreshLive() {
  const [status, traffic] = await Promise.all([api('GET', '/providers/status'), api('GET', '/traffic')]);
  renderTraffic(traffic);
  renderEndpoints(status, traffic);
  renderCache(status.cache, traffic);
  $('updated').textContent = `updated ${clock(status.time)}`;
  $('app-error').textContent = '';
}

// ---- slower: usage, keys, teams ----

async function refreshUsage() {
  const form = /** @type {HTMLFormElement} */ ($('usage-form'));
  const period = Number(form.period.value);
  const group = form.group.value;
  const from = new Date(Date.now() - period * 1000).toISOString();
  const usage = await api(
    'GET',
    `/usage?group_by=${encodeURIComponent(group)}&from=${encodeURIComponent(from)}`,
  );
  tiles($('usage-totals'), [
    ['Requests', num(usage.total_requests), 'requests'],
    ['Tokens', num(usage.total_tokens), 'tokens'],
    ['Cost', money(usage.total_cost), 'cost'],
    ['Cache hits', num(usage.cache_hits), 'hits'],
  ]);
  const label = form.group.selectedOptions[0].textContent;
  $('usage-group-head').textContent = label;
  const name = (row) => {
    const id = row[group];
    if (id === null || id === undefined) return '(none)';
    if (group === 'key' && state.keyNames.has(id)) return `${state.keyNames.get(id)} (${id})`;
    return id;
  };
  $('usage-rows').replaceChildren(
    ...(usage.data.length === 0
      ? [h('tr', {}, h('td', { colspan: 6, text: 'No requests in this period.' }))]
      : usage.data.map((row) =>
          h(
            'tr',
            {},
            cell(label, name(row)),
            cell('Requests', num(row.requests), 'num'),
            cell('Prompt tokens', num(row.prompt_tokens), 'num'),
            cell('Completion tokens', num(row.completion_tokens), 'num'),
            cell('Cost', money(row.cost), 'num'),
            cell('Cache hits', num(row.cache_hits), 'num'),
          ),
        )),
  );
}

function keyState(key) {
  if (key.revoked) return 'revoked';
  if (key.expiresAt && Date.parse(key.expiresAt) <= Date.now()) return 'expired';
  return null;
}

async function refreshKeys() {
  const [keys, teams] = await Promise.all([api('GET', '/keys?limit=1000'), api('GET', '/teams')]);
  state.keys = keys.data;
  $('keys-note').textContent = keys.has_more
    ? `The first ${keys.data.length} keys; GET /api/v1/keys?after=… pages through the rest.`
    : '';
  state.keyNames = new Map(keys.data.map((k) => [k.id, k.name]));
  $('key-rows').replaceChildren(
    ...(keys.data.length === 0
      ? [h('tr', {}, h('td', { colspan: 7, text: 'No keys yet.' }))]
      : keys.data.map((k) => {
          const ended = keyState(k);
          return h(
            'tr',
            { 'data-key': k.id },
            cell(
              'Name',
              h(
                'div',
                {},
                h('strong', { text: k.name }),
                ended ? h('span', { class: `pill gap state-${ended}`, text: ended }) : null,
              ),
            ),
            cell(
              'Key',
              h('div', {}, h('code', { text: k.keyPreview }), h('div', { class: 'small', text: k.id })),
            ),
            cell('Team', k.team),
            cell('Models', k.models ? k.models.join(', ') : 'all'),
            cell('Last used', when(k.lastUsedAt)),
            cell('Expires', k.expiresAt ? when(k.expiresAt) : 'never'),
            cell(
              'Actions',
              ended === 'revoked'
                ? '–'
                : h(
                    'div',
                    { class: 'actions' },
                    h('button', {
                      type: 'button',
                      text: 'Rotate',
                      'aria-label': `Rotate ${k.name}`,
                      onclick: () => rotateKey(k),
                    }),
                    h('button', {
                      type: 'button',
                      class: 'danger',
                      text: 'Revoke',
                      'aria-label': `Revoke ${k.name}`,
                      onclick: () => revokeKey(k),
                    }),
                  ),
            ),
          );
        })),
  );
  $('team-ids').replaceChildren(...teams.data.map((t) => h('option', { value: t.id })));
  $('team-rows').replaceChildren(
    ...(teams.data.length === 0
      ? [h('tr', {}, h('td', { colspan: 5, text: 'No teams yet.' }))]
      : teams.data.map((t) =>
          h(
            'tr',
            { 'data-team': t.id },
            cell('Team', t.id),
            cell('Keys', keys.data.filter((k) => k.team === t.id && !k.revoked).length, 'num'),
            cell('Models', t.models ? t.models.join(', ') : 'all'),
            cell('Limits', limitsText(t.limits)),
            cell(
              'Actions',
              h('button', {
                type: 'button',
                class: 'danger',
                text: 'Delete',
                'aria-label': `Delete team ${t.id}`,
                onclick: () => deleteTeam(t.id),
              }),
            ),
          ),
        )),
  );
}

async function refreshSlow() {
  await refreshKeys();
  await refreshUsage();
}

// ---- actions (each one an admin route) ----

function list(text) {
  const items = String(text || '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return items.length > 0 ? items : undefined;
}

/**
 * Runs an action or a refresh. Its error is shown in `where`: the banner for refreshes (cleared by the
 * next good one), or the section's own line for an action (kept until that section's next action).
 */
async function act(work, where = 'app-error') {
  const target = $(where);
  try {
    await work();
    if (where !== 'app-error') target.textContent = '';
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
    if (err instanceof ApiError && err.status === 0) {
      $('readiness').textContent = 'unreachable';
      $('readiness').className = 'pill state-not_ready';
    }
    const message = err instanceof Error ? err.message : String(err);
    target.textContent = message;
    if (where !== 'app-error') toast(message);
  }
}

function hideSecret() {
  /** @type {HTMLInputElement} */ ($('secret-value')).value = '';
  $('secret').hidden = true;
}

function showSecret(title, secret) {
  $('secret-title').textContent = title;
  const input = /** @type {HTMLInputElement} */ ($('secret-value'));
  input.value = secret;
  $('secret').hidden = false;
  input.focus();
  input.select();
}

const rotateKey = (k) =>
  act(async () => {
    if (!confirm(`Rotate the key "${k.name}"? Its current secret stops working at once.`)) return;
    const rotated = await api('POST', `/keys/${encodeURIComponent(k.id)}/rotate`);
    showSecret(`New secret of "${k.name}"`, rotated.key);
    await refreshKeys();
  }, 'keys-error');

const revokeKey = (k) =>
  act(async () => {
    if (!confirm(`Revoke the key "${k.name}"? It stops working at once.`)) return;
    await api('DELETE', `/keys/${encodeURIComponent(k.id)}`);
    toast(`Key "${k.name}" revoked`);
    await refreshKeys();
    $('keys-title').focus();
  }, 'keys-error');

const deleteTeam = (id) =>
  act(async () => {
    if (!confirm(`Delete the team "${id}"?`)) return;
    await api('DELETE', `/teams/${encodeURIComponent(id)}`);
    toast(`Team "${id}" deleted`);
    await refreshKeys();
    $('teams-title').focus();
  }, 'keys-error');

const changeEndpoint = (name, patch, done) =>
  act(async () => {
    if (patch.weight !== undefined && !(patch.weight >= 0))
      throw new Error('The weight must be a number, 0 or more.');
    await api('PATCH', `/endpoints/${encodeURIComponent(name)}`, patch);
    toast(done);
    $('endpoints-title').focus();
    await refreshLive();
  }, 'endpoints-error');

const removeEndpoint = (name) =>
  act(async () => {
    if (!confirm(`Remove the endpoint "${name}"? It drains first: requests in flight finish.`)) return;
    await api('DELETE', `/endpoints/${encodeURIComponent(name)}`);
    toast(`Endpoint "${name}" removed`);
    $('endpoints-title').focus();
    await refreshLive();
  }, 'endpoints-error');

function onForm(id, handler, where) {
  const form = /** @type {HTMLFormElement} */ ($(id));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void act(async () => {
      await handler(form);
    }, where);
  });
}

// ---- session ----

function stopTimers() {
  for (const t of state.timers) clearInterval(t);
  state.timers = [];
}

function signOut(message) {
  stopTimers();
  hideSecret();
  sessionStorage.removeItem(KEY_STORAGE);
  state.key = null;
  $('app').hidden = true;
  $('session').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  /** @type {HTMLInputElement} */ ($('admin-key')).value = '';
  $('admin-key').focus();
}

async function signIn(key) {
  state.key = key;
  try {
    await api('GET', '/providers/status');
  } catch (err) {
    if (err instanceof ApiError && err.status === 0 && sessionStorage.getItem(KEY_STORAGE) === key) {
      // The gateway is away for a moment (a restart): keep the session and keep trying.
      openApp();
      $('app-error').textContent = 'The gateway cannot be reached right now; retrying every 2 seconds.';
      return;
    }
    state.key = null;
    const message =
      err instanceof ApiError && err.code === 'admin_disabled'
        ? 'Admin routes are off on this gateway: set ADMIN_API_KEY and restart it.'
        : err instanceof ApiError && err.status === 401
          ? 'That admin key was refused.'
          : err.message;
    signOut(message);
    return;
  }
  sessionStorage.setItem(KEY_STORAGE, key);
  openApp();
  await act(refreshLive);
  await act(refreshSlow);
}

/** Shows the dashboard and starts its updates. */
function openApp() {
  $('login').hidden = true;
  $('app').hidden = false;
  $('session').hidden = false;
  $('login-error').textContent = '';
  // The key is in session storage; the sign-in field does not keep it.
  /** @type {HTMLInputElement} */ ($('admin-key')).value = '';
  stopTimers();
  state.timers.push(
    setInterval(() => {
      if (!state.paused && !document.hidden) void act(refreshLive);
    }, LIVE_EVERY_MS),
    setInterval(() => {
      if (!state.paused && !document.hidden) void act(refreshSlow);
    }, SLOW_EVERY_MS),
  );
}

function init() {
  onForm('login-form', async (form) => {
    await signIn(form.key.value.trim());
    if (!$('app').hidden) $('traffic-title').focus?.();
  });
  $('sign-out').addEventListener('click', () => signOut('Signed out.'));
  $('pause').addEventListener('click', () => {
    state.paused = !state.paused;
    $('pause').setAttribute('aria-pressed', String(state.paused));
    $('pause').textContent = state.paused ? 'Resume updates' : 'Pause updates';
  });
  onForm('usage-form', () => refreshUsage(), 'usage-error');
  $('usage-form').addEventListener('change', () => void act(refreshUsage, 'usage-error'));
  onForm(
    'key-form',
    async (form) => {
      const body = { name: form.name.value.trim() };
      if (form.team.value.trim()) body.team = form.team.value.trim();
      const models = list(form.models.value);
      if (models) body.models = models;
      if (form.expiresIn.value.trim()) body.expiresIn = form.expiresIn.value.trim();
      const created = await api('POST', '/keys', body);
      form.reset();
      showSecret(`Key "${created.name}" created`, created.key);
      await refreshKeys();
    },
    'keys-error',
  );
  onForm(
    'team-form',
    async (form) => {
      const id = form.id.value.trim();
      await api('POST', '/teams', { id });
      form.reset();
      toast(`Team "${id}" created`);
      await refreshKeys();
    },
    'keys-error',
  );
  onForm(
    'endpoint-form',
    async (form) => {
      const body = { name: form.name.value.trim(), url: form.url.value.trim() };
      if (form.priority.value !== '') body.priority = Number(form.priority.value);
      if (form.weight.value !== '') body.weight = Number(form.weight.value);
      const models = list(form.models.value);
      if (models) body.models = models;
      if (form.apiKey.value) body.apiKey = form.apiKey.value;
      await api('POST', '/endpoints', body);
      form.reset();
      toast(`Endpoint "${body.name}" added`);
      await refreshLive();
    },
    'endpoints-error',
  );
  $('secret-copy').addEventListener('click', async () => {
    const input = /** @type {HTMLInputElement} */ ($('secret-value'));
    try {
      await navigator.clipboard.writeText(input.value);
      toast('Copied');
    } catch {
      input.select();
      toast('Select the text and copy it (the browser refused the clipboard).');
    }
  });
  $('secret-done').addEventListener('click', () => {
    hideSecret();
    $('keys-title').focus();
  });
  $('cache-clear').addEventListener('click', () =>
    act(async () => {
      if (!confirm('Clear every cached answer?')) return;
      const result = await api('POST', '/cache/clear');
      toast(`Cleared ${result.cleared} entries`);
      await refreshLive();
    }, 'cache-error'),
  );
  if (state.key) void signIn(state.key);
  else signOut();
}

init();
