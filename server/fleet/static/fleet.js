// The fleet page: polls /api/fleet every 2 s (a fleet changes slowly; no stream needed).
'use strict';

const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const or = (value, format) => (value === undefined || value === null ? '–' : format(value));
const ago = (ms) => {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 90 ? `${s} s ago` : s < 5400 ? `${Math.round(s / 60)} min ago` : new Date(ms).toLocaleString();
};
const presence = (online) => (online === undefined ? '' : online ? 'online' : 'offline');

function gatewayRow(g) {
  const state = g.state ? `${g.state.label} ${Math.round(g.state.confidence * 100)}%${g.state.decidedBy === 'server' ? ' (server)' : ''}` : '–';
  const event = g.lastEvent ? `${g.lastEvent.label} ${Math.round(g.lastEvent.confidence * 100)}%, ${g.lastEvent.end ? ago(g.lastEvent.end) : 'going on'}` : '–';
  return `<tr class="${presence(g.online)}" data-device="${escapeHtml(g.deviceId)}">
    <td><span class="dot"></span>${escapeHtml(g.deviceId)}</td>
    <td>${or(g.battery, (b) => `${Math.round(b * 100)}%`)}</td>
    <td>${or(g.temperatureC, (c) => `${c.toFixed(1)} °C`)}</td>
    <td>${or(g.framesPerSecond, (f) => f.toFixed(1))}</td>
    <td>${escapeHtml(g.operatingPoint ?? '–')}</td>
    <td>${escapeHtml(state)}</td>
    <td>${escapeHtml(event)}</td>
    <td>${or(g.offloadedPerMinute, (n) => n.toFixed(0))}</td>
    <td>${ago(g.lastSeen)}</td></tr>`;
}

function workerRow(w) {
  return `<tr class="${presence(w.online)}" data-worker="${escapeHtml(w.serverId)}">
    <td><span class="dot"></span>${escapeHtml(w.serverId)}</td>
    <td>${w.answered}</td>
    <td>${or(w.answeredPerMinute, (n) => n.toFixed(0))}</td>
    <td>${w.rejected}</td>
    <td>${ago(w.lastSeen)}</td></tr>`;
}

async function refresh() {
  try {
    const fleet = await (await fetch('api/fleet')).json();
    const online = fleet.gateways.filter((g) => g.online).length;
    document.getElementById('summary').textContent = `${online} of ${fleet.gateways.length} gateways online, ${fleet.workers.length} workers${fleet.connected ? '' : '; the server is not connected to the broker'}`;
    document.querySelector('#gateways tbody').innerHTML = fleet.gateways.map(gatewayRow).join('');
    document.querySelector('#workers tbody').innerHTML = fleet.workers.map(workerRow).join('');
  } catch (error) {
    document.getElementById('summary').textContent = `the server is not answering (${error.message}); retrying`;
  }
}

refresh();
setInterval(refresh, 2000);
