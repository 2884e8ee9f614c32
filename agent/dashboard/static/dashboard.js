// The dashboard page: plain browser JavaScript, served as is (no build step), with uPlot
// for the timelines. Live values come over the agent's event stream (/api/live).
'use strict';

const $ = (id) => document.getElementById(id);
const percent = (share) => (share === undefined || share === null ? '–' : `${Math.round(share * 100)}%`);
const fixed = (value, digits, unit) => (value === undefined || value === null ? '–' : `${value.toFixed(digits)}${unit}`);
const time = (ms) => new Date(ms).toLocaleTimeString();

function setText(id, text) {
  const element = $(id);
  if (element.textContent !== text) element.textContent = text;
}

// ---- live view -------------------------------------------------------------

let snapshotAt;

function showExits(histogram) {
  const total = histogram.reduce((sum, count) => sum + count, 0) || 1;
  const bars = $('exits');
  while (bars.children.length < histogram.length) bars.appendChild(document.createElement('div'));
  histogram.forEach((count, exit) => {
    const bar = bars.children[exit];
    bar.style.height = `${Math.max(1, (count / total) * 100)}%`;
    bar.title = `exit ${exit}: ${count} frames`;
    bar.innerHTML = `<span>${exit}</span>`;
  });
}

/** A line shown only while it has something to say (the planner's plan and warning). */
function showOptional(id, text) {
  const element = $(id);
  element.hidden = !text;
  element.textContent = text ?? '';
}

function showLive(view) {
  const { status, health } = view;
  setText('device', view.deviceId);
  const badge = $('health');
  badge.textContent = health.status;
  badge.className = `badge ${health.status}`;
  setText('state', status.state ?? '–');
  setText('event', status.event ? `event: ${status.event}` : 'no event');
  setText('fps', status.framesPerSecond.toFixed(1));
  setText('frames', String(status.frames));
  setText('latency', status.latencyMs ? `${status.latencyMs.p50.toFixed(0)} / ${status.latencyMs.p95.toFixed(0)} ms` : '–');
  setText('gated', `${view.gate.skippedPercent.toFixed(1)}%`);
  setText('dropped', String(status.dropped));
  showExits(status.exitHistogram);
  setText('point', status.operatingPoint);
  setText('controller', `controller: ${status.controller}`);
  showOptional('plan', status.plan && `${status.plan}${status.sleep ? ` (sleep ${status.sleep})` : ''}`);
  showOptional('plan-warning', status.planWarning && `⚠ ${status.planWarning}`);
  $('decisions').innerHTML = view.decisions
    .slice()
    .reverse()
    .map((d) => `<li><b>${time(d.ts)}</b> ${escapeHtml(d.operatingPoint)} at ${d.frameRate} frames/s: ${escapeHtml(d.reason)}</li>`)
    .join('');
  setText('battery', percent(status.stateOfCharge));
  setText('temperature', fixed(status.temperatureC, 1, ' °C'));
  setText('power', fixed(view.power.watts, 2, ' W'));
  setText('charging', view.power.charging === undefined ? '–' : view.power.charging ? 'yes' : 'no');
  setText('woke', status.wokeBy ?? '–');
  setText('servers', view.offload.enabled ? String(view.offload.serversUp ?? 0) : 'offload off');
  setText('offload-share', `${view.offload.sharePercent.toFixed(1)}%`);
  setText('round-trip', fixed(view.offload.roundTripMs, 0, ' ms'));
  $('checks').innerHTML = Object.entries(health.checks)
    .map(([part, check]) => `<dt>${part}</dt><dd>${escapeHtml(check)}</dd>`)
    .join('');
  if (view.snapshotAt !== undefined && view.snapshotAt !== snapshotAt) {
    snapshotAt = view.snapshotAt;
    const image = $('snapshot');
    image.src = `api/snapshot.jpg?at=${snapshotAt}`;
    image.hidden = false;
    loadEvents();
  }
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

function connectLive() {
  const stream = new EventSource('api/live');
  stream.onopen = () => setText('link', 'live');
  stream.onmessage = (message) => {
    setText('link', `live, ${new Date().toLocaleTimeString()}`);
    showLive(JSON.parse(message.data));
  };
  // EventSource reconnects by itself; say so meanwhile.
  stream.onerror = () => setText('link', 'the agent is not answering; retrying');
}

// ---- timelines -------------------------------------------------------------

const charts = [];

/** The selected window, in seconds: every chart spans all of it, however few points there are. */
let windowS = [0, 1];

function chart(title, series, values, axisValues) {
  const holder = document.createElement('div');
  $('charts').appendChild(holder);
  const width = Math.max(300, holder.clientWidth - 10);
  const yAxis = axisValues ? { values: axisValues, size: 80 } : {};
  return new uPlot(
    { title, width, height: 180, series: [{}, ...series], axes: [{}, yAxis], scales: { x: { time: true, range: () => windowS } } },
    values,
    holder,
  );
}

async function loadTimelines() {
  // "fit": the last hour, cut to where the log's data starts (the answer's from), so a fresh run fills the chart.
  const choice = $('range').value;
  const span = choice === 'fit' ? 3600000 : Number(choice);
  const to = Date.now();
  const response = await fetch(`api/timeline?from=${to - span}&to=${to}&buckets=300${choice === 'fit' ? '&fit=1' : ''}`);
  const { from, points, events } = await response.json();
  windowS = [from / 1000, to / 1000];
  const xs = points.map((p) => p.ts / 1000);
  const pointNames = [...new Set(points.map((p) => p.operatingPoint).filter((name) => name))];
  const labels = [...new Set(events.map((e) => e.label))];
  for (const existing of charts.splice(0)) existing.destroy();
  $('charts').innerHTML = '';
  const line = (label, stroke) => ({ label, stroke, width: 1.5, spanGaps: true });
  charts.push(
    chart('Battery (%)', [line('battery', '#2e8540')], [xs, points.map((p) => (p.batterySoc === null ? null : p.batterySoc * 100))]),
    chart('Temperature (°C)', [line('temperature', '#c0392b')], [xs, points.map((p) => p.temperatureC)]),
    chart('Frames/s', [line('frames/s', '#3b78c4')], [xs, points.map((p) => p.framesPerS)]),
    chart(
      'Operating point',
      [{ ...line('operating point', '#7d3c98'), paths: uPlot.paths.stepped({ align: 1 }) }],
      [xs, points.map((p) => (p.operatingPoint ? pointNames.indexOf(p.operatingPoint) : null))],
      (_, ticks) => ticks.map((tick) => pointNames[tick] ?? ''),
    ),
    chart(
      'Events',
      [{ label: 'event', stroke: '#d35400', width: 0, points: { show: true, size: 8, fill: '#d35400' } }],
      [events.map((e) => e.start / 1000), events.map((e) => labels.indexOf(e.label))],
      (_, ticks) => ticks.map((tick) => labels[tick] ?? ''),
    ),
  );
}

// ---- events ----------------------------------------------------------------

async function loadEvents() {
  const events = await (await fetch('api/events?limit=20')).json();
  $('events').tBodies[0].innerHTML = events
    .map((e) => {
      const duration = e.end ? `${((e.end - e.start) / 1000).toFixed(0)} s` : 'going on';
      const snapshot = e.hasSnapshot ? `<img loading="lazy" alt="${escapeHtml(e.label)}" src="api/events/${encodeURIComponent(e.eventId)}/snapshot.jpg">` : '';
      return `<tr><td>${new Date(e.start).toLocaleString()}</td><td>${escapeHtml(e.label)}</td><td>${percent(e.confidence)}</td><td>${duration}</td><td>${e.frames}</td><td>${snapshot}</td></tr>`;
    })
    .join('');
}

// ---- settings form, generated from the JSON Schema of config/set -------------
// Each setting is a control: { element, read }, read() giving its value (undefined when left
// empty) or throwing an Error that names the field. Objects are fieldsets of their own
// controls, unions a select of the variant plus its controls, lists of numbers or strings a
// comma-separated input checked item by item, lists of objects fieldsets to add and remove.

let current = {};
let requestNumber = 0;
/** The settings a patch is made of: [section, field] or [field], each read whole. */
let settings = [];

const element = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
};

/** JSON with sorted keys, to compare values whatever order their fields came in. */
const canonical = (value) =>
  JSON.stringify(value, (_, v) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1))) : v));

function invalid(input, message) {
  input.setCustomValidity(message);
  input.addEventListener('input', () => input.setCustomValidity(''), { once: true });
  return Object.assign(new Error(message), { input });
}

function labelled(path, input) {
  input.name = path.join('.');
  return element('label', {}, String(path.at(-1)), input);
}

const isNumber = (schema) => schema.type === 'number' || schema.type === 'integer';

/** What is wrong with one value against its schema's bounds, or undefined. */
function outOfBounds(schema, n) {
  if (schema.type === 'integer' && !Number.isInteger(n)) return 'is not a whole number';
  if (n < schema.minimum) return `is below ${schema.minimum}`;
  if (n <= schema.exclusiveMinimum) return `must be above ${schema.exclusiveMinimum}`;
  if (n > schema.maximum) return `is above ${schema.maximum}`;
  if (n >= schema.exclusiveMaximum) return `must be below ${schema.exclusiveMaximum}`;
  return undefined;
}

function boundsText(schema) {
  const low = schema.minimum ?? schema.exclusiveMinimum;
  const high = schema.maximum ?? schema.exclusiveMaximum;
  if (low === undefined && high === undefined) return '';
  return `${low ?? ''} ${schema.exclusiveMinimum === undefined ? '≤' : '<'} value ${schema.exclusiveMaximum === undefined ? '≤' : '<'} ${high ?? ''}`.trim();
}

function leaf(path, schema, value) {
  const name = path.join('.');
  if (schema.const !== undefined) return { element: undefined, read: () => schema.const };
  if (schema.enum) {
    const select = element('select');
    if (value === undefined) select.add(new Option('–', ''));
    for (const option of schema.enum) select.add(new Option(String(option), String(option)));
    select.value = value === undefined ? '' : String(value);
    return { element: labelled(path, select), read: () => schema.enum.find((option) => String(option) === select.value) };
  }
  if (schema.type === 'boolean') {
    const box = element('input', { type: 'checkbox', checked: value === true });
    // An unset flag stays unset until it is ticked.
    return { element: labelled(path, box), read: () => (value === undefined && !box.checked ? undefined : box.checked) };
  }
  const input = element('input', { type: 'text' });
  if (isNumber(schema)) {
    // The bounds are shown, and the browser marks a value outside them; the agent's answer says why it refuses one.
    Object.assign(input, { type: 'number', step: schema.type === 'integer' ? '1' : 'any', title: boundsText(schema) });
    const low = schema.minimum ?? schema.exclusiveMinimum;
    const high = schema.maximum ?? schema.exclusiveMaximum;
    if (low !== undefined) input.min = String(low);
    if (high !== undefined) input.max = String(high);
    input.value = value === undefined || value === null ? '' : String(value);
    const read = () => {
      if (input.validity.badInput) throw invalid(input, `${name}: not a number`);
      return input.value === '' ? undefined : Number(input.value);
    };
    return { element: labelled(path, input), read };
  }
  if (schema.type === 'string') {
    if (schema.pattern) input.title = `matching ${schema.pattern}`;
    if (schema.maxLength !== undefined) input.maxLength = schema.maxLength;
    input.value = value ?? '';
    return { element: labelled(path, input), read: () => (input.value === '' ? undefined : input.value) };
  }
  // What JSON Schema could not describe: edited as JSON.
  input.value = value === undefined ? '' : JSON.stringify(value);
  const read = () => {
    if (input.value === '') return undefined;
    try {
      return JSON.parse(input.value);
    } catch {
      throw invalid(input, `${name}: not JSON`);
    }
  };
  return { element: labelled(path, input), read };
}

/** Numbers or strings, comma-separated, each checked against the items' schema. */
function listInput(path, schema, value) {
  const name = path.join('.');
  const item = schema.items;
  const input = element('input', { type: 'text', placeholder: 'a, b, …', title: `comma-separated${boundsText(item) ? `, each ${boundsText(item)}` : ''}` });
  input.value = Array.isArray(value) ? value.join(', ') : '';
  const read = () => {
    if (input.value.trim() === '') return undefined;
    const values = input.value.split(',').map((text, index) => {
      const trimmed = text.trim();
      const n = Number(trimmed);
      const problem = !isNumber(item)
        ? item.pattern && !new RegExp(item.pattern).test(trimmed) ? `does not match ${item.pattern}` : undefined
        : trimmed === '' || !Number.isFinite(n) ? 'is not a number' : outOfBounds(item, n);
      if (problem) throw invalid(input, `${name}: item ${index + 1} ("${trimmed}") ${problem}`);
      return isNumber(item) ? n : trimmed;
    });
    if (values.length < (schema.minItems ?? 0) || values.length > (schema.maxItems ?? Infinity)) {
      throw invalid(input, `${name}: ${schema.minItems ?? 0} to ${schema.maxItems ?? 'any number of'} items, not ${values.length}`);
    }
    return values;
  };
  return { element: labelled(path, input), read };
}

/** An object's controls, in a fieldset of its own or in `holder`; read gives only the fields set. */
function group(path, schema, value, holder = element('fieldset', {}, element('legend', { textContent: String(path.at(-1)) }))) {
  holder.dataset.path = path.join('.');
  const parts = Object.entries(schema.properties).map(([key, fieldSchema]) => {
    const part = control([...path, key], fieldSchema, value?.[key]);
    if (part.element) holder.appendChild(part.element);
    return [key, part];
  });
  const read = () => {
    const entries = parts.map(([key, part]) => [key, part.read()]).filter(([, v]) => v !== undefined);
    return entries.length === 0 ? undefined : Object.fromEntries(entries);
  };
  return { element: holder, parts, read };
}

/** Variants of a union, without the null of an optional value. */
const variantsOf = (schema) => (schema.oneOf ?? schema.anyOf ?? []).filter((variant) => variant.type !== 'null');

function union(path, variants, value) {
  // The property every variant fixes (a target's kind) names them; else their types do.
  const tag = Object.keys(variants[0].properties ?? {}).find((key) => variants.every((v) => v.properties?.[key]?.const !== undefined));
  const nameOf = (v, index) => (tag ? String(v.properties[tag].const) : v.title ?? v.type ?? `variant ${index + 1}`);
  const fits = (v) =>
    tag ? value?.[tag] === v.properties[tag].const : v.const !== undefined ? v.const === value : v.type === typeof value || (isNumber(v) && typeof value === 'number');
  const names = variants.map(nameOf);
  const chosen = Math.max(0, variants.findIndex(fits));
  const select = element('select');
  for (const name of names) select.add(new Option(name, name));
  select.value = names[chosen];
  const fieldset = element('fieldset', { className: 'union' }, element('legend', { textContent: String(path.at(-1)) }), labelled([...path, tag ?? 'variant'], select));
  const holder = element('div');
  fieldset.appendChild(holder);
  let inner;
  const show = () => {
    const index = names.indexOf(select.value);
    // Switching back to the variant in force brings its values back.
    const own = index === chosen ? value : undefined;
    const variant = variants[index];
    holder.replaceChildren();
    inner = variant.type === 'object' && variant.properties ? group(path, variant, own, holder) : control(path, variant, own);
    if (inner.element && inner.element !== holder) holder.appendChild(inner.element);
  };
  select.addEventListener('change', show);
  show();
  return { element: fieldset, read: () => inner.read() };
}

/** A list of objects (zones): a fieldset each, added and removed with buttons. */
function objectList(path, schema, value) {
  const fieldset = element('fieldset', { className: 'list' }, element('legend', { textContent: String(path.at(-1)) }));
  fieldset.dataset.path = path.join('.');
  const items = [];
  let added = 0;
  const add = element('button', { type: 'button', className: 'add', textContent: `add ${String(path.at(-1)).replace(/s$/, '')}` });
  const refresh = () => {
    add.disabled = items.length >= (schema.maxItems ?? Infinity);
  };
  const addItem = (itemValue) => {
    const item = group([...path, added++], schema.items, itemValue);
    const remove = element('button', { type: 'button', className: 'remove', textContent: 'remove' });
    remove.addEventListener('click', () => {
      items.splice(items.indexOf(item), 1);
      item.element.remove();
      refresh();
    });
    item.element.appendChild(remove);
    fieldset.insertBefore(item.element, add);
    items.push(item);
    refresh();
  };
  fieldset.appendChild(add);
  add.addEventListener('click', () => addItem(undefined));
  for (const itemValue of Array.isArray(value) ? value : []) addItem(itemValue);
  const read = () => (items.length === 0 && value === undefined ? undefined : items.map((item) => item.read() ?? {}));
  return { element: fieldset, read };
}

function control(path, schema, value) {
  const variants = variantsOf(schema);
  if (variants.length === 1) return control(path, variants[0], value);
  if (variants.length > 1) return union(path, variants, value);
  if (schema.type === 'object' && schema.properties) return group(path, schema, value);
  if (schema.type === 'array' && schema.items?.type === 'object' && schema.items.properties) return objectList(path, schema, value);
  if (schema.type === 'array' && (isNumber(schema.items ?? {}) || schema.items?.type === 'string')) return listInput(path, schema, value);
  return leaf(path, schema, value);
}

async function loadConfig() {
  const { config, schema } = await (await fetch('api/config')).json();
  current = config;
  settings = [];
  const top = element('fieldset', {}, element('legend', { textContent: 'agent' }));
  const sections = [];
  for (const [key, keySchema] of Object.entries(schema.properties)) {
    const part = control([key], keySchema, config[key]);
    if (part.parts) {
      // A section: config/set merges it field by field, so each field is a setting of its own.
      for (const [name, field] of part.parts) settings.push({ path: [key, name], read: field.read });
      sections.push(part.element);
    } else {
      settings.push({ path: [key], read: part.read });
      top.appendChild(part.element);
    }
  }
  $('config').replaceChildren(top, ...sections, element('button', { type: 'submit', textContent: 'Apply' }));
}

/** Only the fields the operator changed: a patch, as config/set takes it. */
function changedFields() {
  const set = {};
  for (const { path, read } of settings) {
    const after = read();
    const before = path.reduce((value, key) => value?.[key], current);
    if (after === undefined || canonical(after) === canonical(before)) continue;
    if (path.length === 1) set[path[0]] = after;
    else (set[path[0]] ??= {})[path[1]] = after;
  }
  return set;
}

async function submitConfig(event) {
  event.preventDefault();
  const answer = $('config-answer');
  let set;
  try {
    set = changedFields();
  } catch (error) {
    answer.textContent = error.message;
    answer.className = 'error';
    error.input?.focus();
    return;
  }
  if (Object.keys(set).length === 0) {
    answer.textContent = 'nothing changed';
    answer.className = '';
    return;
  }
  const id = `dashboard-${Date.now()}-${++requestNumber}`;
  const response = await fetch('api/config', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id, set }) });
  const result = await response.json();
  if (result.status === 'ok') {
    answer.textContent = `applied (config version ${result.version})${result.reason ? `: ${result.reason}` : ''}`;
    answer.className = 'ok';
    await loadConfig();
  } else {
    answer.textContent = result.reason;
    answer.className = 'error';
  }
}

$('config').addEventListener('submit', (event) => void submitConfig(event));
$('range').addEventListener('change', () => void loadTimelines());
connectLive();
void loadTimelines();
void loadEvents();
void loadConfig();
setInterval(() => void loadTimelines(), 30000);
