import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import Database from 'better-sqlite3';
import { LogReader, LogStore, SCHEMA_VERSION, SchemaVersionError } from '../agent/store/log-store.js';
import { MIGRATIONS, migrate, userVersion, type Migration } from '../agent/store/schema.js';

function tempFile(t: { teardown: (fn: () => void) => void }, name = 'logs.db'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-exit-store-schema-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, name);
}

const tables = (db: Database.Database) =>
  db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").pluck().all() as string[];

test('a new file is created with every table, the indexes, WAL and incremental auto-vacuum', (t) => {
  const file = tempFile(t, path.join('nested', 'dir', 'logs.db'));
  const store = LogStore.open(file);
  const db = store.database;
  t.is(userVersion(db), SCHEMA_VERSION);
  t.deepEqual(tables(db), ['config_changes', 'controller_decisions', 'events', 'inferences', 'telemetry']);
  const indexes = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'inferences' ORDER BY name").pluck().all();
  t.deepEqual(indexes, ['inferences_exit_ts', 'inferences_label_ts', 'inferences_request', 'inferences_ts']);
  t.is(db.pragma('journal_mode', { simple: true }), 'wal');
  t.is(db.pragma('auto_vacuum', { simple: true }), 2, 'INCREMENTAL');
  t.is(db.pragma('synchronous', { simple: true }), 1, 'NORMAL');
  // The exit/label filters go through their index rather than a scan.
  const plan = db
    .prepare('EXPLAIN QUERY PLAN SELECT * FROM inferences WHERE exit = 1 AND ts >= 0 AND ts < 10')
    .all()
    .map((row) => (row as { detail: string }).detail)
    .join(' ');
  t.regex(plan, /USING INDEX inferences_exit_ts/);
  store.close();
});

test('re-opening keeps the data and applies nothing', (t) => {
  const file = tempFile(t);
  const first = LogStore.open(file);
  first.logTelemetry({ ts: 1000, batterySoc: 0.5 });
  first.close();
  const second = LogStore.open(file);
  t.is(userVersion(second.database), SCHEMA_VERSION);
  t.is(second.telemetry().length, 1);
  second.close();
  // migrate() itself reports what it applied: nothing on an up-to-date file.
  const raw = new Database(file);
  t.deepEqual(migrate(raw, file), []);
  raw.close();
});

test('a file from a newer edge-exit is refused with a clear message, by the store and the reader', (t) => {
  const file = tempFile(t);
  LogStore.open(file).close();
  const raw = new Database(file);
  raw.pragma(`user_version = ${SCHEMA_VERSION + 5}`);
  raw.close();
  const expected = {
    instanceOf: SchemaVersionError,
    message: `log database ${file} has schema version ${SCHEMA_VERSION + 5}, newer than this edge-exit knows (${SCHEMA_VERSION}): upgrade edge-exit, or point it at another file`,
  };
  t.throws(() => LogStore.open(file), expected);
  t.throws(() => LogReader.open(file), expected);
  // Refusing must not have touched it.
  const check = new Database(file, { readonly: true });
  t.is(userVersion(check), SCHEMA_VERSION + 5);
  check.close();
});

test("another program's database and a file that is not SQLite are refused, not taken over", (t) => {
  const foreign = tempFile(t);
  const raw = new Database(foreign);
  raw.exec('CREATE TABLE accounts (id INTEGER PRIMARY KEY)');
  raw.close();
  t.throws(() => LogStore.open(foreign), { instanceOf: SchemaVersionError, message: /not an edge-exit log database/ });
  const after = new Database(foreign, { readonly: true });
  t.deepEqual(tables(after), ['accounts']);
  after.close();

  const text = tempFile(t, 'notes.db');
  fs.writeFileSync(text, 'this is not a database, just some text long enough to have a header\n'.repeat(20));
  t.throws(() => LogStore.open(text), { message: /cannot open log database .*notes\.db: file is not a database/ });
  t.throws(() => LogReader.open(text), { message: /file is not a database/ });
});

test('the reader never creates or migrates a file', (t) => {
  const file = tempFile(t);
  t.throws(() => LogReader.open(file), { message: /no log database at/ });
  t.false(fs.existsSync(file));
  const empty = new Database(file);
  empty.close();
  t.throws(() => LogReader.open(file), { message: /not an edge-exit log database \(it has no tables\)/ });
});

test('each migration runs in its own transaction: a failing one leaves the earlier ones applied and nothing of itself', (t) => {
  const file = tempFile(t);
  const broken: Migration = {
    version: SCHEMA_VERSION + 1,
    description: 'fails halfway',
    up: (db) => {
      db.exec('CREATE TABLE half_done (id INTEGER)');
      db.exec('ALTER TABLE no_such_table ADD COLUMN x');
    },
  };
  const db = new Database(file);
  t.throws(() => migrate(db, file, [...MIGRATIONS, broken]), { any: true, message: /no such table: no_such_table/ });
  t.is(userVersion(db), SCHEMA_VERSION);
  t.false(tables(db).includes('half_done'));
  t.true(tables(db).includes('inferences'));

  const fixed: Migration = { version: SCHEMA_VERSION + 1, description: 'adds a column', up: (d) => d.exec('ALTER TABLE telemetry ADD COLUMN humidity REAL') };
  t.deepEqual(migrate(db, file, [...MIGRATIONS, fixed]), [SCHEMA_VERSION + 1]);
  t.is(userVersion(db), SCHEMA_VERSION + 1);
  db.close();
  // And this edge-exit, which knows only the versions before, now refuses the file.
  t.throws(() => LogStore.open(file), { instanceOf: SchemaVersionError, message: /newer than this edge-exit knows/ });
});
