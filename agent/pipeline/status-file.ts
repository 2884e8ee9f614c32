import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomically } from '../../common/atomic-write.js';
import type { AgentStatus } from './frame-pipeline.js';

/** The running agent's latest status, next to its log database, for `edge-exit status`. */
export function statusFilePath(logPath: string): string {
  return path.join(path.dirname(logPath), 'status.json');
}

export interface StatusFile extends AgentStatus {
  /** building: making its model package; starting: opening its parts; running; stopped. */
  phase?: 'building' | 'starting' | 'running' | 'stopped';
  /** What the phase is about, e.g. the package being built. */
  detail?: string;
  pid: number;
  deviceId: string;
  writtenAt: number;
  logHealth?: string;
}

export function writeStatusFile(file: string, status: StatusFile): void {
  writeFileAtomically(file, JSON.stringify(status));
}

export function readStatusFile(file: string): StatusFile | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as StatusFile;
  } catch {
    return undefined;
  }
}

/** One line for a terminal: rate, exits, accuracy, battery, temperature, operating point. */
export function formatStatusLine(status: AgentStatus): string {
  const total = status.exitHistogram.reduce((a, b) => a + b, 0) || 1;
  const exits = status.exitHistogram.map((n) => `${Math.round((n / total) * 100)}`).join('/');
  const pct = (v: number | undefined, digits = 0) => (v === undefined ? '--' : `${(v * 100).toFixed(digits)}%`);
  const temp = status.temperatureC === undefined ? '--' : `${status.temperatureC.toFixed(1)}°C`;
  return (
    `${status.frames} frames  ${status.framesPerSecond.toFixed(1)} fps  exits% ${exits}  acc ${pct(status.accuracy, 1)}  ` +
    `battery ${pct(status.stateOfCharge)}  ${temp}  point ${status.operatingPoint} @ ${status.frameRate.toFixed(1)} fps` +
    // Older status files have no backend.
    (status.backend === undefined ? '' : `  on ${status.backend}${status.backendNote === undefined ? '' : ' (no Edge TPU: edge-exit status says why)'}`) +
    (status.controller === 'on' || status.controller === undefined ? '' : `  controller ${status.controller}`) +
    (status.skipped > 0 ? `  skipped ${status.skipped}` : '') +
    (status.settling > 0 ? `  settling ${status.settling}` : '') +
    (status.gated > 0 ? `  still ${status.gated}` : '') +
    (status.reused > 0 ? `  reused ${status.reused}` : '') +
    (status.dropped > 0 ? `  dropped ${status.dropped}` : '') +
    (status.latencyMs === undefined ? '' : `  latency ${status.latencyMs.p50.toFixed(0)}/${status.latencyMs.p95.toFixed(0)} ms`) +
    (status.state === undefined ? '' : `  sees ${status.state}`) +
    (status.event === undefined ? '' : `  EVENT ${status.event}`) +
    (status.offloaded > 0 ? `  offloaded ${status.offloaded}` : '') +
    (status.offloadServers === undefined ? '' : `  servers ${status.offloadServers}`) +
    (status.missingReadings.length > 0 ? `  missing: ${status.missingReadings.join(', ')}` : '') +
    // The whole reason is logged once and kept in the status file; repeating it every second would drown the log.
    (status.mqtt === undefined ? '' : '  MQTT FAILING (edge-exit status says why)')
  );
}
