import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { logger } from '../../common/log/logger.js';
import * as queries from './queries.js';
import type { TimelinePoint } from './queries.js';
import { applyRetention, type RetentionLimits } from './retention.js';
import { SCHEMA_VERSION, SchemaVersionError, checkSchemaVersion, migrate } from './schema.js';
import type {
  AccuracyReport,
  ConfigChangeRecord,
  ConfigChangeRow,
  ControllerDecisionRecord,
  ControllerDecisionRow,
  EnergyHour,
  ExitHistogramBin,
  FlushResult,
  InferenceFilter,
  InferenceQuery,
  InferenceRecord,
  InferenceRow,
  RetentionResult,
  ServerAnswer,
  StoreHealth,
  StoreStats,
  EventRecord,
  EventRow,
  TelemetryRecord,
  TelemetryRow,
  TimeRange,
} from './types.js';

export * from './types.js';
export type { TimelinePoint } from './queries.js';
export { SCHEMA_VERSION, SchemaVersionError } from './schema.js';

/**
 * Read access to a log database: what `edge-exit logs` uses. It opens the file
 * read-only, so it never migrates, never creates it and cannot disturb the
 * agent writing to it (WAL lets readers and the writer run side by side).
 */
export class LogReader {
  protected constructor(
    protected readonly db: Database.Database,
    readonly file: string,
  ) {}

  static open(file: string): LogReader {
    if (!fs.existsSync(file)) throw new Error(`no log database at ${file}`);
    const db = openDatabase(file, { readonly: true, fileMustExist: true });
    try {
      const version = checkSchemaVersion(db, file);
      if (version < SCHEMA_VERSION) {
        throw new SchemaVersionError(
          version === 0
            ? `${file} is not an edge-exit log database (it has no tables)`
            : `log database ${file} has schema version ${version}, older than this edge-exit (${SCHEMA_VERSION}): start the agent once to migrate it`,
          version,
          SCHEMA_VERSION,
        );
      }
    } catch (error) {
      db.close();
      throw error;
    }
    return new LogReader(db, file);
  }

  /** Matching inferences, oldest first; with `limit`, the newest `limit` of them. */
  queryInferences(query: InferenceQuery = {}): InferenceRecord[] {
    return queries.queryInferences(this.db, query);
  }

  exitHistogram(filter: InferenceFilter = {}): ExitHistogramBin[] {
    return queries.exitHistogram(this.db, filter);
  }

  /** Energy of the frames, summed per hour (UTC). */
  energyPerHour(filter: InferenceFilter = {}): EnergyHour[] {
    return queries.energyPerHour(this.db, filter);
  }

  /** Accuracy where the true label is known: overall, per exit, offloaded (local vs server) and final. */
  accuracy(filter: InferenceFilter = {}): AccuracyReport {
    return queries.accuracy(this.db, filter);
  }

  controllerTimeline(range: TimeRange = {}, limit?: number): ControllerDecisionRecord[] {
    return queries.controllerTimeline(this.db, range, limit);
  }

  telemetry(range: TimeRange = {}, limit?: number): TelemetryRecord[] {
    return queries.telemetry(this.db, range, limit);
  }

  configChanges(range: TimeRange = {}, limit?: number): ConfigChangeRecord[] {
    return queries.configChanges(this.db, range, limit);
  }

  /** Events, oldest first, each with its best frame as a JPEG. */
  events(range: TimeRange = {}, limit?: number): EventRecord[] {
    return queries.events(this.db, range, limit);
  }

  /** `PRAGMA integrity_check`: "ok", or SQLite's list of problems. */
  /** Telemetry averaged into at most `buckets` points, for the dashboard's timelines. */
  telemetryTimeline(range: Required<TimeRange>, buckets: number): TimelinePoint[] {
    return queries.telemetryTimeline(this.db, range, buckets);
  }

  offloadRoundTripMs(since: number): number | undefined {
    return queries.offloadRoundTripMs(this.db, since);
  }

  eventSnapshot(eventId: string): Buffer | undefined {
    return queries.eventSnapshot(this.db, eventId);
  }

  integrityCheck(): string {
    const rows = this.db.pragma('integrity_check') as Array<{ integrity_check: string }>;
    return rows.map((row) => row.integrity_check).join('\n');
  }

  /** The connection, for tests and maintenance; the store's queue does not see what is done through it. */
  get database(): Database.Database {
    return this.db;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

export interface LogStoreOptions extends RetentionLimits {
  /** Flush once this many rows are queued (on the next turn of the event loop). */
  flushRows?: number;
  /** And at least this often. */
  flushMs?: number;
  /** Rows kept in memory while writes fail; beyond it the oldest are dropped. */
  maxQueuedRows?: number;
  /** While writes fail, try again this often. */
  retryMs?: number;
  /** How often retention runs (it also runs once at open when a bound is set). */
  retentionIntervalMs?: number;
  /**
   * Milliseconds SQLite waits for a write lock another process holds. Short:
   * a flush runs on the agent's thread, and a busy flush is simply retried.
   * WAL readers (`edge-exit logs`) never take that lock.
   */
  busyTimeoutMs?: number;
}

type Statement = 'inference' | 'answer' | 'decision' | 'telemetry' | 'config' | 'event';

/**
 * One queued write: the caller's row, converted to parameters only at flush
 * time, in a tight loop over the batch rather than on the frame's path.
 */
type QueuedWrite =
  | { statement: 'inference'; row: InferenceRow }
  | { statement: 'answer'; row: { requestId: string; answer: ServerAnswer; receivedAt: number } }
  | { statement: 'decision'; row: ControllerDecisionRow }
  | { statement: 'telemetry'; row: TelemetryRow }
  | { statement: 'config'; row: ConfigChangeRow }
  | { statement: 'event'; row: EventRow };

const DEFAULTS = {
  flushRows: 256,
  flushMs: 1000,
  maxQueuedRows: 20_000,
  retryMs: 5000,
  retentionIntervalMs: 10 * 60_000,
  busyTimeoutMs: 250,
};

const SQL: Record<Statement, string> = {
  inference: `INSERT INTO inferences (ts, source, frame_id, true_label, exit, label, confidence, policy, operating_point,
      segment_ms, total_ms, energy_j, battery_soc, temperature_c, offloaded, request_id, decided_locally, sim_ts)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  // The newest row of the request: ids are reused only if a client reuses them.
  answer: `UPDATE inferences SET server_label = ?, server_confidence = ?, server_ms = ?, answered_at = ?,
      decided_locally = coalesce(?, decided_locally)
    WHERE id = (SELECT max(id) FROM inferences WHERE request_id = ?)`,
  decision: `INSERT INTO controller_decisions (ts, level, operating_point, max_exit, frame_rate, offload_allowed, reason, inputs, sim_ts)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  telemetry: `INSERT INTO telemetry (ts, battery_soc, voltage_v, current_a, power_w, charging, temperature_c, frames_per_s, json, sim_ts)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  config: `INSERT INTO config_changes (ts, source, version, diff, accepted, reason) VALUES (?, ?, ?, ?, ?, ?)`,
  // Announced, then ended: the second write completes the first row (a snapshot already there is kept if none comes).
  event: `INSERT INTO events (event_id, ts, end_ts, label, confidence, frames, exits, snapshot) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (event_id) DO UPDATE SET end_ts = excluded.end_ts, label = excluded.label, confidence = excluded.confidence,
      frames = excluded.frames, exits = excluded.exits, snapshot = coalesce(excluded.snapshot, snapshot)`,
};

const simTime = (value: number | null | undefined): number | null => (value === undefined || value === null ? null : Math.trunc(value));
/** Rows per transaction while writes are recovering from a failure (a full disk). */
const RECOVERY_CHUNK_ROWS = 100;

const flag = (value: boolean | null | undefined): number | null => (value === undefined || value === null ? null : value ? 1 : 0);
const label = (value: string | number | null | undefined): string | null => (value === undefined || value === null ? null : String(value));
const microseconds = (ms: number): number => Math.round(ms * 1000) / 1000;

/** Statement parameters of a queued row. Throws on a value that cannot be stored (the row is then skipped). */
function parameters(item: QueuedWrite): unknown[] {
  switch (item.statement) {
    case 'inference': {
      const row = item.row;
      return [
        Math.trunc(row.ts),
        row.source,
        String(row.frameId),
        label(row.trueLabel),
        row.exit,
        String(row.label),
        row.confidence,
        row.policy,
        row.operatingPoint,
        JSON.stringify(Array.from(row.segmentMs, microseconds)),
        row.totalMs,
        row.energyJ ?? null,
        row.batterySoc ?? null,
        row.temperatureC ?? null,
        row.offloaded ? 1 : 0,
        row.requestId ?? null,
        row.decidedLocally ? 1 : 0,
        simTime(row.simTs),
      ];
    }
    case 'answer': {
      const { requestId, answer, receivedAt } = item.row;
      return [
        String(answer.label),
        answer.confidence ?? null,
        answer.serverMs ?? null,
        Math.trunc(answer.answeredAt ?? receivedAt),
        flag(answer.decidedLocally),
        requestId,
      ];
    }
    case 'decision': {
      const row = item.row;
      return [
        Math.trunc(row.ts),
        row.level ?? null,
        row.operatingPoint,
        row.maxExit,
        row.frameRate,
        row.offloadAllowed ? 1 : 0,
        row.reason,
        JSON.stringify(row.inputs ?? {}),
        simTime(row.simTs),
      ];
    }
    case 'telemetry': {
      const row = item.row;
      return [
        Math.trunc(row.ts),
        row.batterySoc ?? null,
        row.voltageV ?? null,
        row.currentA ?? null,
        row.powerW ?? null,
        flag(row.charging),
        row.temperatureC ?? null,
        row.framesPerS ?? null,
        row.extra === undefined || row.extra === null ? null : JSON.stringify(row.extra),
        simTime(row.simTs),
      ];
    }
    case 'config': {
      const row = item.row;
      return [Math.trunc(row.ts), row.source, String(row.version), JSON.stringify(row.diff ?? null), row.accepted ? 1 : 0, row.reason ?? null];
    }
    case 'event': {
      const row = item.row;
      return [row.eventId, Math.trunc(row.start), row.end === null ? null : Math.trunc(row.end), row.label, row.confidence, row.frames, JSON.stringify(row.exits), row.snapshot ?? null];
    }
  }
}

function openDatabase(file: string, options: Database.Options): Database.Database {
  let db: Database.Database;
  try {
    db = new Database(file, options);
  } catch (error) {
    throw new Error(`cannot open log database ${file}: ${(error as Error).message}`, { cause: error });
  }
  try {
    // The first read is where SQLite notices a file that is not a database.
    db.pragma('schema_version');
  } catch (error) {
    db.close();
    throw new Error(`cannot open log database ${file}: ${(error as Error).message}`, { cause: error });
  }
  return db;
}

/** Words an operator can act on, from SQLite's result codes. */
export function describeWriteError(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  const message = (error as Error).message ?? String(error);
  if (typeof code === 'string') {
    if (code === 'SQLITE_FULL') return `disk full: ${message}`;
    if (code.startsWith('SQLITE_READONLY')) return `read-only: ${message}`;
    if (code.startsWith('SQLITE_IOERR')) return `I/O error: ${message}`;
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return `database busy: ${message}`;
    if (code.startsWith('SQLITE_CANTOPEN')) return `cannot open: ${message}`;
    if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB') return `corrupt: ${message}`;
  }
  return `write failed: ${message}`;
}

/** A value the database refuses whatever the disk's state: retrying cannot help, so the row is skipped. */
function isRowError(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code.startsWith('SQLITE_CONSTRAINT') || code === 'SQLITE_MISMATCH' || code === 'SQLITE_TOOBIG';
  return error instanceof TypeError || error instanceof RangeError;
}

/**
 * The agent's local log: one SQLite file in WAL mode.
 *
 * The log* methods only push the row on a queue, and never throw:
 * classification must not wait for, or fail because of, the disk. A
 * flush writes everything queued in one transaction, every `flushRows` rows
 * (on the next turn of the event loop) or `flushMs` milliseconds, and on
 * close. When writes fail (disk full, read-only file), rows stay queued up to
 * `maxQueuedRows`, the oldest beyond that are dropped and counted, `health()`
 * says why, one warning is logged per failure streak, and writes are retried
 * every `retryMs`.
 *
 * Durability: WAL with synchronous = NORMAL (better-sqlite3's bundled SQLite
 * default in WAL, set here explicitly). A committed flush survives the process
 * being killed; only a power cut can lose the last flushes, never corrupt the
 * file. FULL would add an fsync per flush, which a gateway on an SD card pays
 * for in latency and wear, for logs that are not worth it.
 */
export class LogStore extends LogReader {
  private readonly options: Required<Omit<LogStoreOptions, keyof RetentionLimits>> & RetentionLimits;
  private readonly statements: Record<Statement, Database.Statement>;
  // A queue with a moving head, so dropping the oldest is O(1).
  private queue: QueuedWrite[] = [];
  private head = 0;
  private flushScheduled = false;
  private failingSince: number | undefined;
  private failureReason: string | undefined;
  private nextRetryAt = 0;
  private droppingWarned = false;
  private droppedInStreak = 0;
  private droppedRows = 0;
  private rejectedRows = 0;
  private lastRejectWarnAt = -Infinity;
  private readonly counters: StoreStats = { committedRows: 0, flushes: 0, flushMsTotal: 0, lastFlushMs: 0 };
  private readonly timers: NodeJS.Timeout[] = [];
  private closed = false;

  private constructor(db: Database.Database, file: string, options: LogStoreOptions) {
    super(db, file);
    this.options = {
      flushRows: Math.max(1, options.flushRows ?? DEFAULTS.flushRows),
      flushMs: options.flushMs ?? DEFAULTS.flushMs,
      maxQueuedRows: Math.max(1, options.maxQueuedRows ?? DEFAULTS.maxQueuedRows),
      retryMs: options.retryMs ?? DEFAULTS.retryMs,
      retentionIntervalMs: options.retentionIntervalMs ?? DEFAULTS.retentionIntervalMs,
      busyTimeoutMs: options.busyTimeoutMs ?? DEFAULTS.busyTimeoutMs,
      maxAgeDays: options.maxAgeDays,
      maxBytes: options.maxBytes,
      chunkRows: options.chunkRows,
    };
    this.statements = {
      inference: db.prepare(SQL.inference),
      answer: db.prepare(SQL.answer),
      decision: db.prepare(SQL.decision),
      telemetry: db.prepare(SQL.telemetry),
      config: db.prepare(SQL.config),
      event: db.prepare(SQL.event),
    };
  }

  /** Opens (creating it and its directory if need be) and migrates the log database. */
  static override open(file: string, options: LogStoreOptions = {}): LogStore {
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    const db = openDatabase(file, {});
    let store: LogStore;
    try {
      const fresh = (db.pragma('page_count', { simple: true }) as number) === 0;
      // Only possible before the first table exists, and before WAL is on.
      if (fresh) db.pragma('auto_vacuum = INCREMENTAL');
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma(`busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? DEFAULTS.busyTimeoutMs)}`);
      // After a checkpoint, trim the WAL file back to this instead of leaving it at its largest.
      db.pragma(`journal_size_limit = ${8 << 20}`);
      const applied = migrate(db, file);
      if (applied.length > 0) logger.info({ file, applied }, 'log store: schema migrated');
      store = new LogStore(db, file, options);
    } catch (error) {
      db.close();
      throw error;
    }
    store.start();
    return store;
  }

  private start(): void {
    const flushTimer = setInterval(() => this.tick(), this.options.flushMs);
    flushTimer.unref();
    this.timers.push(flushTimer);
    if (this.options.maxAgeDays !== undefined || this.options.maxBytes !== undefined) {
      this.runRetention();
      const retentionTimer = setInterval(() => this.runRetention(), this.options.retentionIntervalMs);
      retentionTimer.unref();
      this.timers.push(retentionTimer);
    }
  }

  /**
   * Queues a row. The row object is read when the batch is flushed (within
   * `flushMs`), not copied now: pass a fresh object per call and do not change
   * it afterwards.
   */
  logInference(row: InferenceRow): void {
    this.enqueue({ statement: 'inference', row });
  }

  /** Fills in the server's answer on the inference logged with this request id (even one still queued). */
  recordServerAnswer(requestId: string, answer: ServerAnswer): void {
    this.enqueue({ statement: 'answer', row: { requestId, answer, receivedAt: Date.now() } });
  }

  logControllerDecision(row: ControllerDecisionRow): void {
    this.enqueue({ statement: 'decision', row });
  }

  logTelemetry(row: TelemetryRow): void {
    this.enqueue({ statement: 'telemetry', row });
  }

  logConfigChange(row: ConfigChangeRow): void {
    this.enqueue({ statement: 'config', row });
  }

  logEvent(row: EventRow): void {
    this.enqueue({ statement: 'event', row });
  }

  private enqueue(item: QueuedWrite): void {
    if (this.closed) return;
    this.queue.push(item);
    const queued = this.queue.length - this.head;
    if (queued > this.options.maxQueuedRows) {
      // Healthy but over the bound means the event loop never turned: write
      // now rather than lose rows. Failing: drop the oldest and count it.
      if (this.failingSince === undefined && this.flush().ok) return;
      this.dropOldest(queued - this.options.maxQueuedRows);
    } else if (queued >= this.options.flushRows && !this.flushScheduled && this.failingSince === undefined) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        if (this.queue.length - this.head >= this.options.flushRows) this.flush();
      }).unref();
    }
  }

  private dropOldest(count: number): void {
    this.head += count;
    this.droppedRows += count;
    this.droppedInStreak += count;
    if (!this.droppingWarned) {
      this.droppingWarned = true;
      logger.warn(
        { file: this.file, maxQueuedRows: this.options.maxQueuedRows },
        'log store: queue full while writes fail; dropping the oldest rows (counted in health().droppedRows)',
      );
    }
    // Compact now and then so the array does not grow without bound.
    if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  private reject(statement: Statement, error: unknown): void {
    this.rejectedRows += 1;
    // A caller bug would refuse every row: say so once a minute, not per row.
    const now = Date.now();
    if (now - this.lastRejectWarnAt < 60_000) return;
    this.lastRejectWarnAt = now;
    logger.warn({ err: error, statement, rejectedRows: this.rejectedRows }, 'log store: row refused, skipped');
  }

  private tick(): void {
    if (this.queue.length === this.head) return;
    if (this.failingSince !== undefined && Date.now() < this.nextRetryAt) return;
    this.flush();
  }

  /**
   * Writes everything queued in one transaction. Never throws: on failure the
   * rows stay queued and `health()` reports why. Returns once the rows are
   * committed (or not).
   */
  flush(): FlushResult {
    if (!this.db.open) return { ok: false, written: 0, error: 'closed' };
    if (this.queue.length === this.head) return { ok: true, written: 0 };
    const started = performance.now();
    // Recovering, the backlog goes in bounded chunks: a little freed space then commits what fits,
    // where one transaction for the whole queue would need room for all of it at once.
    const chunkRows = this.failingSince === undefined ? Infinity : RECOVERY_CHUNK_ROWS;
    let written = 0;
    while (this.head < this.queue.length) {
      const batch = this.queue.slice(this.head, this.head + chunkRows);
      const refused: Array<{ statement: Statement; error: unknown }> = [];
      const write = this.db.transaction(() => {
        for (const item of batch) {
          try {
            this.statements[item.statement].run(parameters(item));
          } catch (error) {
            // A bad value (a constraint, a BigInt in JSON) costs only its own
            // row; anything else (disk full, I/O) fails the whole chunk, which
            // stays queued.
            if (!isRowError(error)) throw error;
            refused.push({ statement: item.statement, error });
          }
        }
      });
      try {
        write();
      } catch (error) {
        this.counters.committedRows += written;
        this.failed(error);
        return { ok: false, written, error: describeWriteError(error) };
      }
      this.head += batch.length;
      for (const { statement, error } of refused) this.reject(statement, error);
      written += batch.length - refused.length;
    }
    this.queue = [];
    this.head = 0;
    const elapsed = performance.now() - started;
    this.counters.committedRows += written;
    this.counters.flushes += 1;
    this.counters.flushMsTotal += elapsed;
    this.counters.lastFlushMs = elapsed;
    if (this.failingSince !== undefined) this.recovered();
    return { ok: true, written };
  }

  private failed(error: unknown): void {
    const reason = describeWriteError(error);
    this.failureReason = reason;
    this.nextRetryAt = Date.now() + this.options.retryMs;
    if (this.failingSince === undefined) {
      this.failingSince = Date.now();
      logger.warn(
        { err: error, file: this.file, queuedRows: this.queue.length - this.head, retryMs: this.options.retryMs },
        `log store: writes failing (${reason}); keeping rows in memory and retrying`,
      );
    }
  }

  private recovered(): void {
    logger.info(
      { file: this.file, failedForMs: Date.now() - this.failingSince!, droppedRows: this.droppedInStreak },
      'log store: writes recovered',
    );
    this.failingSince = undefined;
    this.failureReason = undefined;
    this.droppingWarned = false;
    this.droppedInStreak = 0;
  }

  health(): StoreHealth {
    const health: StoreHealth = {
      ok: this.failingSince === undefined,
      droppedRows: this.droppedRows,
      rejectedRows: this.rejectedRows,
      queuedRows: this.queue.length - this.head,
      committedRows: this.counters.committedRows,
    };
    if (this.failureReason !== undefined) health.reason = this.failureReason;
    if (this.failingSince !== undefined) health.failingSince = this.failingSince;
    return health;
  }

  stats(): StoreStats {
    return { ...this.counters };
  }

  /**
   * Applies the age and size bounds now (it also runs on a timer). Failures
   * are logged, not thrown: a full disk must not stop the agent here either.
   */
  runRetention(now = Date.now()): RetentionResult | undefined {
    if (!this.db.open) return undefined;
    try {
      const result = applyRetention(this.db, this.options, now);
      if (result.deletedByAge + result.deletedBySize > 0) logger.info({ file: this.file, ...result }, 'log store: retention');
      return result;
    } catch (error) {
      logger.warn({ err: error, file: this.file }, `log store: retention failed (${describeWriteError(error)})`);
      return undefined;
    }
  }

  /** Flushes what is queued and closes the file. Rows that cannot be written then are lost, with a warning. */
  override close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.timers) clearInterval(timer);
    const result = this.flush();
    if (!result.ok && this.queue.length > this.head) {
      logger.warn({ file: this.file, lostRows: this.queue.length - this.head }, `log store: closing with unwritten rows (${result.error})`);
    }
    try {
      // Keeps query plans good for the `logs` command; cheap when nothing changed.
      this.db.pragma('optimize');
    } catch {
      // Not worth failing a close over.
    }
    super.close();
  }
}
