import type Database from 'better-sqlite3';

/**
 * Schema changes, in order. `PRAGMA user_version` holds the last one applied;
 * each runs in its own transaction together with the version bump, so a
 * failed migration leaves the file as it was. Never edit a released
 * migration: add the next one.
 */
export interface Migration {
  version: number;
  description: string;
  up: (db: Database.Database) => void;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'inferences, controller decisions, telemetry and config changes',
    up: (db) =>
      db.exec(`
        CREATE TABLE inferences (
          id INTEGER PRIMARY KEY,
          ts INTEGER NOT NULL,
          source TEXT NOT NULL,
          frame_id TEXT NOT NULL,
          true_label TEXT,
          exit INTEGER NOT NULL,
          label TEXT NOT NULL,
          confidence REAL NOT NULL,
          policy TEXT NOT NULL,
          operating_point TEXT NOT NULL,
          segment_ms TEXT NOT NULL,
          total_ms REAL NOT NULL,
          energy_j REAL,
          battery_soc REAL,
          temperature_c REAL,
          offloaded INTEGER NOT NULL DEFAULT 0 CHECK (offloaded IN (0, 1)),
          request_id TEXT,
          server_label TEXT,
          server_confidence REAL,
          server_ms REAL,
          answered_at INTEGER,
          decided_locally INTEGER NOT NULL DEFAULT 0 CHECK (decided_locally IN (0, 1))
        );
        CREATE INDEX inferences_ts ON inferences (ts);
        CREATE INDEX inferences_exit_ts ON inferences (exit, ts);
        CREATE INDEX inferences_label_ts ON inferences (label, ts);
        -- Partial: most frames are never offloaded, and answers look rows up by request.
        CREATE INDEX inferences_request ON inferences (request_id) WHERE request_id IS NOT NULL;

        CREATE TABLE controller_decisions (
          id INTEGER PRIMARY KEY,
          ts INTEGER NOT NULL,
          level TEXT,
          operating_point TEXT NOT NULL,
          max_exit INTEGER NOT NULL,
          frame_rate REAL NOT NULL,
          offload_allowed INTEGER NOT NULL CHECK (offload_allowed IN (0, 1)),
          reason TEXT NOT NULL,
          inputs TEXT NOT NULL
        );
        CREATE INDEX controller_decisions_ts ON controller_decisions (ts);

        CREATE TABLE telemetry (
          id INTEGER PRIMARY KEY,
          ts INTEGER NOT NULL,
          battery_soc REAL,
          voltage_v REAL,
          current_a REAL,
          power_w REAL,
          charging INTEGER CHECK (charging IN (0, 1)),
          temperature_c REAL,
          frames_per_s REAL,
          json TEXT
        );
        CREATE INDEX telemetry_ts ON telemetry (ts);

        CREATE TABLE config_changes (
          id INTEGER PRIMARY KEY,
          ts INTEGER NOT NULL,
          source TEXT NOT NULL CHECK (source IN ('file', 'mqtt', 'cli')),
          version TEXT NOT NULL,
          diff TEXT NOT NULL,
          accepted INTEGER NOT NULL CHECK (accepted IN (0, 1)),
          reason TEXT
        );
        CREATE INDEX config_changes_ts ON config_changes (ts);
      `),
  },
  {
    version: 2,
    description: 'simulated time beside real time',
    // ts is always wall-clock time, so rows of every table interleave as they happened;
    // a simulated run's own clock (a day passing in minutes) is kept beside it.
    up: (db) =>
      db.exec(`
        ALTER TABLE inferences ADD COLUMN sim_ts INTEGER;
        ALTER TABLE controller_decisions ADD COLUMN sim_ts INTEGER;
        ALTER TABLE telemetry ADD COLUMN sim_ts INTEGER;
      `),
  },
  {
    version: 3,
    description: 'events, with the best frame of each',
    // One row per event, written when it is announced and again when it ends; ts is its start.
    up: (db) =>
      db.exec(`
        CREATE TABLE events (
          id INTEGER PRIMARY KEY,
          event_id TEXT NOT NULL UNIQUE,
          ts INTEGER NOT NULL,
          end_ts INTEGER,
          label TEXT NOT NULL,
          confidence REAL NOT NULL,
          frames INTEGER NOT NULL,
          exits TEXT NOT NULL,
          snapshot BLOB
        );
        CREATE INDEX events_ts ON events (ts);
      `),
  },
];

/** Tables that hold timed rows; retention walks these. */
export const TIMED_TABLES = ['inferences', 'controller_decisions', 'telemetry', 'config_changes', 'events'] as const;
export type TimedTable = (typeof TIMED_TABLES)[number];

export const SCHEMA_VERSION = MIGRATIONS.at(-1)!.version;

export class SchemaVersionError extends Error {
  constructor(
    message: string,
    readonly found: number,
    readonly known: number,
  ) {
    super(message);
    this.name = 'SchemaVersionError';
  }
}

export function userVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

function tableCount(db: Database.Database): number {
  return (db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE type = 'table'").get() as { n: number }).n;
}

/**
 * Refuses a file written by a newer agent (its tables may mean something this
 * code does not know), and a version-0 file that already has tables: that is
 * some other program's database, not an empty one to take over.
 */
export function checkSchemaVersion(db: Database.Database, file: string, migrations: readonly Migration[] = MIGRATIONS): number {
  const known = migrations.at(-1)?.version ?? 0;
  const found = userVersion(db);
  if (found > known) {
    throw new SchemaVersionError(
      `log database ${file} has schema version ${found}, newer than this edge-exit knows (${known}): upgrade edge-exit, or point it at another file`,
      found,
      known,
    );
  }
  if (found === 0 && tableCount(db) > 0) {
    throw new SchemaVersionError(`${file} is not an edge-exit log database: it has tables but no schema version`, found, known);
  }
  return found;
}

/** Applies the migrations the file lacks. Returns the versions applied. */
export function migrate(db: Database.Database, file: string, migrations: readonly Migration[] = MIGRATIONS): number[] {
  checkSchemaVersion(db, file, migrations);
  const applied: number[] = [];
  for (const migration of migrations) {
    // IMMEDIATE takes the write lock before reading the version, so two
    // processes opening a fresh file at once cannot both apply a migration.
    const step = db.transaction(() => {
      if (userVersion(db) >= migration.version) return false;
      migration.up(db);
      db.pragma(`user_version = ${migration.version}`);
      return true;
    });
    if (step.immediate()) applied.push(migration.version);
  }
  return applied;
}
