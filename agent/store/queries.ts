import type Database from 'better-sqlite3';
import type {
  AccuracyCell,
  AccuracyReport,
  ConfigChangeRecord,
  ConfigSource,
  ControllerDecisionRecord,
  EnergyHour,
  ExitHistogramBin,
  InferenceFilter,
  InferenceQuery,
  InferenceRecord,
  EventRecord,
  TelemetryRecord,
  TimeRange,
} from './types.js';

const HOUR_MS = 3_600_000;

interface Where {
  sql: string;
  params: Record<string, number | string>;
}

function rangeWhere(range: TimeRange, clauses: string[] = [], params: Record<string, number | string> = {}): Where {
  if (range.from !== undefined) {
    clauses.push('ts >= @from');
    params.from = Math.trunc(range.from);
  }
  if (range.to !== undefined) {
    clauses.push('ts < @to');
    params.to = Math.trunc(range.to);
  }
  return { sql: clauses.length > 0 ? `WHERE ${clauses.join(' AND ')}` : '', params };
}

function inferenceWhere(filter: InferenceFilter, extra: string[] = []): Where {
  const clauses = [...extra];
  const params: Record<string, number | string> = {};
  if (filter.exit !== undefined) {
    clauses.push('exit = @exit');
    params.exit = filter.exit;
  }
  if (filter.label !== undefined) {
    clauses.push('label = @label');
    params.label = String(filter.label);
  }
  if (filter.offloaded !== undefined) {
    clauses.push('offloaded = @offloaded');
    params.offloaded = filter.offloaded ? 1 : 0;
  }
  return rangeWhere(filter, clauses, params);
}

/** Newest `limit` rows of a query, returned oldest first (like a log tail). */
function tail(select: string, where: Where, limit: number | undefined): { sql: string; params: Record<string, number | string> } {
  if (limit === undefined) return { sql: `${select} ${where.sql} ORDER BY ts, id`, params: where.params };
  return {
    sql: `SELECT * FROM (${select} ${where.sql} ORDER BY ts DESC, id DESC LIMIT @limit) ORDER BY ts, id`,
    params: { ...where.params, limit: Math.max(0, Math.trunc(limit)) },
  };
}

function parseJson(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    // A hand-edited or truncated value should not break a whole listing.
    return text;
  }
}

const bool = (value: number | null): boolean => value === 1;

interface InferenceColumns {
  id: number;
  ts: number;
  sim_ts: number | null;
  source: string;
  frame_id: string;
  true_label: string | null;
  exit: number;
  label: string;
  confidence: number;
  policy: string;
  operating_point: string;
  segment_ms: string;
  total_ms: number;
  energy_j: number | null;
  battery_soc: number | null;
  temperature_c: number | null;
  offloaded: number;
  request_id: string | null;
  server_label: string | null;
  server_confidence: number | null;
  server_ms: number | null;
  answered_at: number | null;
  decided_locally: number;
}

function toInference(row: InferenceColumns): InferenceRecord {
  const segments = parseJson(row.segment_ms);
  return {
    id: row.id,
    ts: row.ts,
    simTs: row.sim_ts,
    source: row.source,
    frameId: row.frame_id,
    trueLabel: row.true_label,
    exit: row.exit,
    label: row.label,
    confidence: row.confidence,
    policy: row.policy,
    operatingPoint: row.operating_point,
    segmentMs: Array.isArray(segments) ? (segments as number[]) : [],
    totalMs: row.total_ms,
    energyJ: row.energy_j,
    batterySoc: row.battery_soc,
    temperatureC: row.temperature_c,
    offloaded: bool(row.offloaded),
    requestId: row.request_id,
    serverLabel: row.server_label,
    serverConfidence: row.server_confidence,
    serverMs: row.server_ms,
    answeredAt: row.answered_at,
    decidedLocally: bool(row.decided_locally),
  };
}

export function queryInferences(db: Database.Database, query: InferenceQuery = {}): InferenceRecord[] {
  const { sql, params } = tail('SELECT * FROM inferences', inferenceWhere(query), query.limit);
  return (db.prepare(sql).all(params) as InferenceColumns[]).map(toInference);
}

export function exitHistogram(db: Database.Database, filter: InferenceFilter = {}): ExitHistogramBin[] {
  const where = inferenceWhere(filter);
  const rows = db
    .prepare(
      `SELECT exit, count(*) AS count, avg(total_ms) AS meanTotalMs, avg(confidence) AS meanConfidence
       FROM inferences ${where.sql} GROUP BY exit ORDER BY exit`,
    )
    .all(where.params) as Array<Omit<ExitHistogramBin, 'fraction'>>;
  const total = rows.reduce((sum, row) => sum + row.count, 0);
  return rows.map((row) => ({ ...row, fraction: row.count / total }));
}

export function energyPerHour(db: Database.Database, filter: InferenceFilter = {}): EnergyHour[] {
  const where = inferenceWhere(filter);
  // ts is stored as an integer, so the division truncates to the hour (UTC).
  const rows = db
    .prepare(
      `SELECT (ts / ${HOUR_MS}) * ${HOUR_MS} AS hour, count(*) AS frames, total(energy_j) AS energyJ,
              count(energy_j) AS measured
       FROM inferences ${where.sql} GROUP BY hour ORDER BY hour`,
    )
    .all(where.params) as Array<{ hour: number; frames: number; energyJ: number; measured: number }>;
  return rows.map(({ hour, frames, energyJ, measured }) => ({
    hour,
    frames,
    energyJ,
    energyPerFrameJ: measured > 0 ? energyJ / measured : null,
  }));
}

function cell(n: number, correct: number | null): AccuracyCell {
  const right = correct ?? 0;
  return { n, correct: right, accuracy: n > 0 ? right / n : null };
}

export function accuracy(db: Database.Database, filter: InferenceFilter = {}): AccuracyReport {
  const known = inferenceWhere(filter, ['true_label IS NOT NULL']);
  const perExit = db
    .prepare(
      `SELECT exit, count(*) AS n, sum(label = true_label) AS correct
       FROM inferences ${known.sql} GROUP BY exit ORDER BY exit`,
    )
    .all(known.params) as Array<{ exit: number; n: number; correct: number | null }>;
  const overallN = perExit.reduce((sum, row) => sum + row.n, 0);
  const overallCorrect = perExit.reduce((sum, row) => sum + (row.correct ?? 0), 0);

  const offloaded = db
    .prepare(
      `SELECT count(*) AS rows,
              count(server_label) AS answered,
              sum(CASE WHEN server_label IS NOT NULL THEN label = true_label END) AS localCorrect,
              sum(server_label = true_label) AS serverCorrect
       FROM inferences ${known.sql} AND offloaded = 1`,
    )
    .get(known.params) as { rows: number; answered: number; localCorrect: number | null; serverCorrect: number | null };

  // The server's answer counts only when it came in time (decided_locally = 0).
  const final = db
    .prepare(
      `SELECT count(*) AS n,
              sum(CASE WHEN server_label IS NOT NULL AND decided_locally = 0 THEN server_label ELSE label END = true_label) AS correct
       FROM inferences ${known.sql}`,
    )
    .get(known.params) as { n: number; correct: number | null };

  return {
    overall: cell(overallN, overallCorrect),
    perExit: perExit.map((row) => ({ exit: row.exit, ...cell(row.n, row.correct) })),
    offloaded: {
      rows: offloaded.rows,
      answered: offloaded.answered,
      local: cell(offloaded.answered, offloaded.localCorrect),
      server: cell(offloaded.answered, offloaded.serverCorrect),
    },
    final: cell(final.n, final.correct),
  };
}

export function controllerTimeline(db: Database.Database, range: TimeRange = {}, limit?: number): ControllerDecisionRecord[] {
  const { sql, params } = tail('SELECT * FROM controller_decisions', rangeWhere(range), limit);
  const rows = db.prepare(sql).all(params) as Array<{
    id: number;
    ts: number;
    sim_ts: number | null;
    level: string | null;
    operating_point: string;
    max_exit: number;
    frame_rate: number;
    offload_allowed: number;
    reason: string;
    inputs: string;
  }>;
  return rows.map((row) => ({
    id: row.id,
    ts: row.ts,
    simTs: row.sim_ts,
    level: row.level,
    operatingPoint: row.operating_point,
    maxExit: row.max_exit,
    frameRate: row.frame_rate,
    offloadAllowed: bool(row.offload_allowed),
    reason: row.reason,
    inputs: (parseJson(row.inputs) ?? {}) as Record<string, unknown>,
  }));
}

export function telemetry(db: Database.Database, range: TimeRange = {}, limit?: number): TelemetryRecord[] {
  const { sql, params } = tail('SELECT * FROM telemetry', rangeWhere(range), limit);
  const rows = db.prepare(sql).all(params) as Array<{
    id: number;
    ts: number;
    sim_ts: number | null;
    battery_soc: number | null;
    voltage_v: number | null;
    current_a: number | null;
    power_w: number | null;
    charging: number | null;
    temperature_c: number | null;
    frames_per_s: number | null;
    json: string | null;
  }>;
  return rows.map((row) => ({
    id: row.id,
    ts: row.ts,
    simTs: row.sim_ts,
    batterySoc: row.battery_soc,
    voltageV: row.voltage_v,
    currentA: row.current_a,
    powerW: row.power_w,
    charging: row.charging === null ? null : bool(row.charging),
    temperatureC: row.temperature_c,
    framesPerS: row.frames_per_s,
    extra: parseJson(row.json) as Record<string, unknown> | null,
  }));
}

export function configChanges(db: Database.Database, range: TimeRange = {}, limit?: number): ConfigChangeRecord[] {
  const { sql, params } = tail('SELECT * FROM config_changes', rangeWhere(range), limit);
  const rows = db.prepare(sql).all(params) as Array<{
    id: number;
    ts: number;
    source: ConfigSource;
    version: string;
    diff: string;
    accepted: number;
    reason: string | null;
  }>;
  return rows.map((row) => ({
    id: row.id,
    ts: row.ts,
    source: row.source,
    version: row.version,
    diff: parseJson(row.diff),
    accepted: bool(row.accepted),
    reason: row.reason,
  }));
}

export function events(db: Database.Database, range: TimeRange = {}, limit?: number): EventRecord[] {
  const { sql, params } = tail('SELECT * FROM events', rangeWhere(range), limit);
  const rows = db.prepare(sql).all(params) as Array<{
    id: number;
    event_id: string;
    ts: number;
    end_ts: number | null;
    label: string;
    confidence: number;
    frames: number;
    exits: string;
    snapshot: Buffer | null;
  }>;
  return rows.map((row) => ({
    id: row.id,
    eventId: row.event_id,
    start: row.ts,
    end: row.end_ts,
    label: row.label,
    confidence: row.confidence,
    frames: row.frames,
    exits: parseJson(row.exits) as number[],
    snapshot: row.snapshot,
  }));
}

/** One bucket of the telemetry timeline: means over the bucket, and the operating point last in force in it. */
export interface TimelinePoint {
  ts: number;
  batterySoc: number | null;
  temperatureC: number | null;
  powerW: number | null;
  framesPerS: number | null;
  operatingPoint: string | null;
}

/**
 * Telemetry between `from` and `to` in at most `buckets` points, averaged in SQL: a month
 * of rows becomes a few hundred points before it leaves the database.
 */
export function telemetryTimeline(db: Database.Database, range: Required<TimeRange>, buckets: number): TimelinePoint[] {
  const bucketMs = Math.max(1, Math.ceil((range.to - range.from) / Math.max(1, buckets)));
  const rows = db
    .prepare(
      `SELECT (ts - @from) / @bucketMs AS bucket, MAX(ts) AS ts,
              AVG(battery_soc) AS batterySoc, AVG(temperature_c) AS temperatureC, AVG(power_w) AS powerW, AVG(frames_per_s) AS framesPerS,
              -- A bare column beside MAX() comes from the row that has the maximum (SQLite's documented rule).
              json_extract(json, '$.operatingPoint') AS operatingPoint
       FROM telemetry WHERE ts >= @from AND ts < @to GROUP BY bucket ORDER BY bucket`,
    )
    .all({ from: Math.trunc(range.from), to: Math.trunc(range.to), bucketMs }) as Array<TimelinePoint & { bucket: number }>;
  return rows.map(({ bucket: _bucket, ...point }) => point);
}

/** The snapshot of one event, if it has one. */
export function eventSnapshot(db: Database.Database, eventId: string): Buffer | undefined {
  const row = db.prepare('SELECT snapshot FROM events WHERE event_id = ?').get(eventId) as { snapshot: Buffer | null } | undefined;
  return row?.snapshot ?? undefined;
}

/** Mean time from a frame to its server answer (ms), over answers since `since`; undefined with none. */
export function offloadRoundTripMs(db: Database.Database, since: number): number | undefined {
  const row = db
    .prepare('SELECT AVG(answered_at - ts) AS ms FROM inferences WHERE ts >= ? AND request_id IS NOT NULL AND answered_at IS NOT NULL AND decided_locally = 0')
    .get(Math.trunc(since)) as { ms: number | null };
  return row.ms ?? undefined;
}
