/**
 * The agent's health, part by part: what /health answers, what the MQTT health request
 * answers, and what decides whether the systemd watchdog is fed.
 */

export type HealthStatus = 'ok' | 'degraded' | 'stalled';

/** Each part: "ok", or what is wrong with it in words an operator can act on. */
export interface HealthChecks {
  source: string;
  engine: string;
  bridge: string;
  store: string;
  mqtt: string;
  offload: string;
}

export interface HealthReport {
  /** ok: frames flow and nothing fails; degraded: running with a part failing; stalled: no frame for too long. */
  status: HealthStatus;
  checks: HealthChecks;
  /** What an operator should know that is not a failure (a step of the wall clock); absent when there is none. */
  notes?: string[];
}

/** What the parts say of themselves, read when a report is asked for. */
export interface HealthSources {
  /** Milliseconds since the last frame (classified or let stand by the gate), or since the start before the first, on the monotonic clock. */
  sinceLastFrameMs(): number;
  anyFrameYet(): boolean;
  /** The backend the engine runs on. */
  engineBackend(): string;
  /** Readings the firmware bridge could not get. */
  missingReadings(): string[];
  /** "ok", or why the log fails. */
  logHealth(): string;
  /** undefined while the MQTT link works, else what is wrong. */
  mqttProblem(): string | undefined;
  mqttConnected(): boolean;
  /** undefined when offload is off, else the servers that say they are up. */
  offloadServers(): number | undefined;
  /** Notes for the report (a wall-clock step), none when there are none. */
  notes?(): string[];
}

export function healthReport(sources: HealthSources, stalledAfterMs: number): HealthReport {
  const since = sources.sinceLastFrameMs();
  const stalled = since > stalledAfterMs;
  const sourceCheck = stalled
    ? `stalled: no frame for ${(since / 1000).toFixed(0)} s (the camera or stream stopped, or the loop is stuck)`
    : sources.anyFrameYet()
      ? 'ok'
      : 'starting: no frame yet';
  const missing = sources.missingReadings();
  const log = sources.logHealth();
  const mqttProblem = sources.mqttProblem();
  const servers = sources.offloadServers();
  const checks: HealthChecks = {
    source: sourceCheck,
    engine: `ok (${sources.engineBackend()})`,
    // Missing sensors are reported, not failed: the controller goes on without them.
    bridge: missing.length === 0 ? 'ok' : `ok, without ${missing.join(', ')}`,
    store: log,
    mqtt: mqttProblem ?? (sources.mqttConnected() ? 'ok' : 'not connected (the agent goes on and retries)'),
    offload: servers === undefined ? 'off' : servers > 0 ? `ok (${servers} server${servers === 1 ? '' : 's'} up)` : 'no server up: frames are decided on the device',
  };
  const degraded = log !== 'ok' || mqttProblem !== undefined;
  const notes = sources.notes?.() ?? [];
  return { status: stalled ? 'stalled' : degraded ? 'degraded' : 'ok', checks, ...(notes.length > 0 ? { notes } : {}) };
}
