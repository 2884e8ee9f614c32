/**
 * Rows as the agent logs them and records as the queries return them. Times
 * are milliseconds since the epoch. Labels are stored as text so that a class
 * index (3) and a filter typed on the command line ("3") compare equal; they
 * come back as strings.
 */
export type Label = string | number;

export interface InferenceRow {
  ts: number;
  /** The simulated clock's time (ms) when the row was made in a simulation; ts stays wall-clock time. */
  simTs?: number | null;
  /** The frame source (replay, folder, camera). */
  source: string;
  frameId: string;
  /** Known when replaying a labelled dataset. */
  trueLabel?: Label | null;
  exit: number;
  label: Label;
  confidence: number;
  policy: string;
  operatingPoint: string;
  /** Milliseconds of each segment that ran. */
  segmentMs: ArrayLike<number>;
  totalMs: number;
  energyJ?: number | null;
  batterySoc?: number | null;
  temperatureC?: number | null;
  offloaded?: boolean;
  /** The offload request, so that `recordServerAnswer` can find the row. */
  requestId?: string | null;
  /** The deadline passed before the server answered: the local answer was used. */
  decidedLocally?: boolean;
}

export interface ServerAnswer {
  label: Label;
  confidence?: number | null;
  serverMs?: number | null;
  /** When the answer arrived (default: when it is recorded). */
  answeredAt?: number;
  /** Set when the answer came after the deadline; left as logged when omitted. */
  decidedLocally?: boolean;
}

export interface InferenceRecord {
  id: number;
  ts: number;
  simTs: number | null;
  source: string;
  frameId: string;
  trueLabel: string | null;
  exit: number;
  label: string;
  confidence: number;
  policy: string;
  operatingPoint: string;
  segmentMs: number[];
  totalMs: number;
  energyJ: number | null;
  batterySoc: number | null;
  temperatureC: number | null;
  offloaded: boolean;
  requestId: string | null;
  serverLabel: string | null;
  serverConfidence: number | null;
  serverMs: number | null;
  answeredAt: number | null;
  decidedLocally: boolean;
}

export interface ControllerDecisionRow {
  ts: number;
  /** The simulated clock's time (ms) when the row was made in a simulation; ts stays wall-clock time. */
  simTs?: number | null;
  operatingPoint: string;
  maxExit: number;
  frameRate: number;
  offloadAllowed: boolean;
  reason: string;
  /** The controller's pressure level (relaxed, normal, saving, critical), when it has one. */
  level?: string | null;
  /** What the decision was made from: state of charge, temperature, charging, headroom... */
  inputs: Record<string, unknown>;
}

export interface ControllerDecisionRecord extends Required<Omit<ControllerDecisionRow, 'level' | 'simTs'>> {
  id: number;
  level: string | null;
  simTs: number | null;
}

export interface TelemetryRow {
  ts: number;
  /** The simulated clock's time (ms) when the row was made in a simulation; ts stays wall-clock time. */
  simTs?: number | null;
  batterySoc?: number | null;
  voltageV?: number | null;
  currentA?: number | null;
  powerW?: number | null;
  charging?: boolean | null;
  temperatureC?: number | null;
  framesPerS?: number | null;
  /** Anything else the bridge reported (stored as JSON). */
  extra?: Record<string, unknown> | null;
}

export interface TelemetryRecord {
  id: number;
  ts: number;
  simTs: number | null;
  batterySoc: number | null;
  voltageV: number | null;
  currentA: number | null;
  powerW: number | null;
  charging: boolean | null;
  temperatureC: number | null;
  framesPerS: number | null;
  extra: Record<string, unknown> | null;
}

export const CONFIG_SOURCES = ['file', 'mqtt', 'cli'] as const;
export type ConfigSource = (typeof CONFIG_SOURCES)[number];

export interface ConfigChangeRow {
  ts: number;
  source: ConfigSource;
  /** Stored as text; comes back as a string. */
  version: string | number;
  diff: unknown;
  accepted: boolean;
  reason?: string | null;
}

export interface ConfigChangeRecord {
  id: number;
  ts: number;
  source: ConfigSource;
  version: string;
  diff: unknown;
  accepted: boolean;
  reason: string | null;
}

/** A time range: `from` inclusive, `to` exclusive, either open. */
export interface TimeRange {
  from?: number;
  to?: number;
}

export interface InferenceFilter extends TimeRange {
  exit?: number;
  /** The predicted (local) label. */
  label?: Label;
  offloaded?: boolean;
}

export interface InferenceQuery extends InferenceFilter {
  /** Keep the newest `limit` rows (still returned oldest first). */
  limit?: number;
}

export interface ExitHistogramBin {
  exit: number;
  count: number;
  /** Share of all frames in the range. */
  fraction: number;
  meanTotalMs: number;
  meanConfidence: number;
}

export interface EnergyHour {
  /** Start of the hour (UTC), ms since the epoch. */
  hour: number;
  frames: number;
  energyJ: number;
  /** Over the frames that have an energy figure; null when none has. */
  energyPerFrameJ: number | null;
}

export interface AccuracyCell {
  n: number;
  correct: number;
  /** correct / n, or null when n = 0. */
  accuracy: number | null;
}

export interface AccuracyReport {
  /** Frames whose true label is known, judged by the local answer. */
  overall: AccuracyCell;
  perExit: Array<AccuracyCell & { exit: number }>;
  offloaded: {
    /** Offloaded frames with a known true label. */
    rows: number;
    /** Of those, the ones the server answered: local and server accuracy on the same frames. */
    answered: number;
    local: AccuracyCell;
    server: AccuracyCell;
  };
  /** The answer the agent acted on: the server's when it came before the deadline, else the local one. */
  final: AccuracyCell;
}

export interface StoreHealth {
  ok: boolean;
  /** Why writes fail, e.g. "disk full: database or disk is full". */
  reason?: string;
  /** Rows dropped (oldest first) because the queue was full while writes failed, since open. */
  droppedRows: number;
  /** Rows the database refused (bad values), since open. */
  rejectedRows: number;
  queuedRows: number;
  committedRows: number;
  /** When the current failure streak began (ms epoch). */
  failingSince?: number;
}

export interface FlushResult {
  ok: boolean;
  /** Rows committed by this flush. */
  written: number;
  error?: string;
}

export interface StoreStats {
  committedRows: number;
  flushes: number;
  /** Wall time spent inside flushes, all told. */
  flushMsTotal: number;
  lastFlushMs: number;
}

export interface RetentionResult {
  deletedByAge: number;
  deletedBySize: number;
  /** Live bytes (pages in use times page size) after the run. */
  usedBytes: number;
}

/** An event as logged: announced (end null) or ended, with its best frame as a JPEG. */
export interface EventRow {
  eventId: string;
  start: number;
  end: number | null;
  label: string;
  confidence: number;
  frames: number;
  exits: number[];
  snapshot?: Buffer;
}

export interface EventRecord extends Omit<EventRow, 'snapshot'> {
  id: number;
  snapshot: Buffer | null;
}
