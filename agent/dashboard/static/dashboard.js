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
  const span = Number($('range').value);
  const to = Date.now();
  const response = await fetch(`api/timeline?from=${to - span}&to=${to}&buckets=300`);
  const { points, events } = await response.json();
  windowS = [(to - span) / 1000, to / 1000];
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

let current = {};
let requestNumber = 0;

function fieldFor(name, schema, value) {
  const label = document.createElement('label');
  label.textContent = name;
  let input;
  if (schema.enum) {
    input = document.createElement('select');
    for (const option of schema.enum) input.add(new Option(option, option));
  } else if (schema.type === 'boolean') {
    input = document.createElement('input');
    input.type = 'checkbox';
  } else {
    input = document.createElement('input');
    // Arrays and objects (thresholds, zones) are edited as JSON.
    input.type = schema.type === 'number' || schema.type === 'integer' ? 'number' : 'text';
    if (input.type === 'number') input.step = 'any';
    const bounds = [schema.minimum ?? schema.exclusiveMinimum, schema.maximum ?? schema.exclusiveMaximum];
    if (bounds[0] !== undefined || bounds[1] !== undefined) input.title = `${bounds[0] ?? ''} … ${bounds[1] ?? ''}`;
  }
  input.dataset.kind = schema.enum ? 'enum' : schema.type ?? 'json';
  setInput(input, value);
  label.appendChild(input);
  return label;
}

function setInput(input, value) {
  if (input.type === 'checkbox') input.checked = value === true;
  else if (input.dataset.kind === 'array' || input.dataset.kind === 'object' || input.dataset.kind === 'json') input.value = value === undefined ? '' : JSON.stringify(value);
  else input.value = value === undefined || value === null ? '' : String(value);
}

function readInput(input) {
  const kind = input.dataset.kind;
  if (input.type === 'checkbox') return input.checked;
  if (input.value === '') return undefined;
  if (kind === 'number' || kind === 'integer') return Number(input.value);
  if (kind === 'array' || kind === 'object' || kind === 'json') {
    try {
      return JSON.parse(input.value);
    } catch {
      return input.value;
    }
  }
  return input.value;
}

async function loadConfig() {
  const { config, schema } = await (await fetch('api/config')).json();
  current = config;
  const form = $('config');
  form.innerHTML = '';
  const top = document.createElement('fieldset');
  top.innerHTML = '<legend>agent</legend>';
  for (const [section, sectionSchema] of Object.entries(schema.properties)) {
    if (sectionSchema.type === 'object' && sectionSchema.properties) {
      const fieldset = document.createElement('fieldset');
      fieldset.innerHTML = `<legend>${section}</legend>`;
      for (const [name, fieldSchema] of Object.entries(sectionSchema.properties)) {
        const field = fieldFor(name, fieldSchema, config[section]?.[name]);
        field.querySelector('input,select').name = `${section}.${name}`;
        fieldset.appendChild(field);
      }
      form.appendChild(fieldset);
    } else {
      const field = fieldFor(section, sectionSchema, config[section]);
      field.querySelector('input,select').name = section;
      top.appendChild(field);
    }
  }
  form.prepend(top);
  const button = document.createElement('button');
  button.type = 'submit';
  button.textContent = 'Apply';
  form.appendChild(button);
}

/** Only the fields the operator changed: a patch, as config/set takes it. */
function changedFields() {
  const set = {};
  for (const input of $('config').querySelectorAll('input,select')) {
    const path = input.name.split('.');
    const before = path.reduce((value, key) => value?.[key], current);
    const after = readInput(input);
    if (after === undefined || JSON.stringify(after) === JSON.stringify(before)) continue;
    if (path.length === 1) set[path[0]] = after;
    else (set[path[0]] ??= {})[path[1]] = after;
  }
  return set;
}

async function submitConfig(event) {
  event.preventDefault();
  const answer = $('config-answer');
  const set = changedFields();
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
