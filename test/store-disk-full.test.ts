import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fillUp, mountTmpfs } from './helpers/tmpfs.js';
import test from 'ava';
import Database from 'better-sqlite3';
import { logger } from '../common/log/logger.js';
import { LogReader, LogStore, type InferenceRow } from '../agent/store/log-store.js';

// These tests replace logger.warn to count warnings: one at a time.

const frame = (i: number, padding = 200): InferenceRow => ({
  ts: 1_700_000_000_000 + i,
  source: `camera${'-'.repeat(padding)}`,
  frameId: String(i),
  exit: i % 3,
  label: i % 10,
  confidence: 0.7,
  policy: 'max-probability',
  operatingPoint: 'balanced',
  segmentMs: [1, 2, 3],
  totalMs: 6,
});

/** Counts logger.warn calls whose message matches, for the length of one test. */
function countWarnings(t: { teardown: (fn: () => void) => void }): string[] {
  const messages: string[] = [];
  const original = logger.warn;
  logger.warn = ((...args: unknown[]) => {
    const message = args.find((arg): arg is string => typeof arg === 'string');
    messages.push(message ?? '');
  }) as typeof logger.warn;
  t.teardown(() => {
    logger.warn = original;
  });
  return messages;
}

async function until(condition: () => boolean, ms = 5000): Promise<boolean> {
  for (let waited = 0; waited < ms; waited += 10) {
    if (condition()) return true;
    await sleep(10);
  }
  return condition();
}

test.serial('a full disk (SQLITE_FULL from max_page_count): log calls never throw, health says so, the oldest rows are dropped and counted, writes resume once space returns', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-exit-store-full-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'logs.db');
  const warnings = countWarnings(t);
  const store = LogStore.open(file, { flushRows: 1_000_000, flushMs: 15, retryMs: 40, maxQueuedRows: 300 });
  t.teardown(() => store.close());

  for (let i = 0; i < 50; i += 1) store.logInference(frame(i));
  t.true(store.flush().ok);

  // max_page_count is SQLite's own ceiling: growing past it fails with the
  // same SQLITE_FULL a full file system gives.
  const db = store.database;
  db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`);

  for (let i = 50; i < 1050; i += 1) t.notThrows(() => store.logInference(frame(i)));
  const failed = store.flush();
  t.false(failed.ok);
  t.regex(failed.error ?? '', /^disk full: /);
  const health = store.health();
  t.false(health.ok);
  t.is(health.reason, 'disk full: database or disk is full');
  t.is(health.droppedRows, 1000 - 300);
  t.is(health.queuedRows, 300);
  t.is(typeof health.failingSince, 'number');

  // More rows and retries in the same streak: no more warnings.
  for (let i = 1050; i < 1100; i += 1) store.logInference(frame(i));
  t.false(store.flush().ok);
  await sleep(150); // a few timer retries
  t.false(store.health().ok);
  t.is(warnings.filter((m) => m.includes('writes failing')).length, 1, warnings.join(' | '));
  t.is(warnings.filter((m) => m.includes('dropping the oldest')).length, 1);
  t.is(store.health().droppedRows, 1050 - 300);

  // Space comes back: the timer's retry writes the queue without being asked.
  db.pragma('max_page_count = 1073741823');
  t.true(await until(() => store.health().ok), 'recovered on its own');
  t.like(store.health(), { ok: true, queuedRows: 0, droppedRows: 750 });
  t.is(store.health().reason, undefined);
  const frames = store.queryInferences().map((r) => Number(r.frameId));
  // The first 50, then the newest 300 kept while full.
  t.deepEqual(frames, [...Array.from({ length: 50 }, (_, i) => i), ...Array.from({ length: 300 }, (_, i) => 800 + i)]);
  t.is(store.integrityCheck(), 'ok');

  // A second outage is a new streak, with its own warning.
  db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`);
  for (let i = 2000; i < 2400; i += 1) store.logInference(frame(i));
  t.false(store.flush().ok);
  t.is(warnings.filter((m) => m.includes('writes failing')).length, 2);
  db.pragma('max_page_count = 1073741823');
  t.true(store.flush().ok);
});

test.serial('a read-only file: rows are kept in memory, health says read-only, nothing throws', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-exit-store-ro-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'logs.db');
  countWarnings(t);
  const store = LogStore.open(file, { flushRows: 1_000_000, flushMs: 60_000, maxQueuedRows: 10 });
  t.teardown(() => store.close());
  // query_only makes every write fail with SQLITE_READONLY, as a file turned read-only would.
  store.database.pragma('query_only = ON');
  for (let i = 0; i < 15; i += 1) t.notThrows(() => store.logInference(frame(i)));
  t.false(store.flush().ok);
  t.like(store.health(), { ok: false, droppedRows: 5, queuedRows: 10 });
  t.regex(store.health().reason ?? '', /^read-only: /);
  store.database.pragma('query_only = OFF');
  t.true(store.flush().ok);
  t.is(store.queryInferences().length, 10);
});

test.serial('another process holding the write lock: the flush gives up after busyTimeoutMs, keeps the rows, and writes them later', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-exit-store-busy-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'logs.db');
  countWarnings(t);
  const store = LogStore.open(file, { flushRows: 1_000_000, flushMs: 60_000, busyTimeoutMs: 50 });
  t.teardown(() => store.close());
  const other = new Database(file);
  t.teardown(() => other.close());
  other.exec('BEGIN IMMEDIATE');
  for (let i = 0; i < 5; i += 1) store.logInference(frame(i));
  const started = performance.now();
  t.false(store.flush().ok);
  t.true(performance.now() - started < 1000, 'waited about busyTimeoutMs, not longer');
  t.regex(store.health().reason ?? '', /^database busy: /);
  other.exec('COMMIT');
  t.true(store.flush().ok);
  t.like(store.health(), { ok: true, committedRows: 5 });
});

const tmpfs = mountTmpfs('2m', 'edge-exit-store-tmpfs-');
const tmpfsDir = tmpfs?.dir ?? '';
const mounted = tmpfs !== undefined;
test.after.always(() => tmpfs?.unmount());

(mounted ? test.serial : test.skip)('a really full file system (2 MiB tmpfs): SQLITE_FULL, then recovery once a file is deleted', (t) => {
  const file = path.join(tmpfsDir, 'logs.db');
  const warnings = countWarnings(t);
  const store = LogStore.open(file, { flushRows: 1_000_000, flushMs: 60_000, maxQueuedRows: 5000 });
  t.teardown(() => store.close());
  store.logInference(frame(0));
  t.true(store.flush().ok);

  // Fill what is left of the file system with ballast.
  const ballast = fillUp(tmpfsDir);

  // Log until the WAL needs room it cannot get.
  let next = 1;
  let result = { ok: true, written: 0 } as ReturnType<LogStore['flush']>;
  for (let round = 0; round < 200 && result.ok; round += 1) {
    for (let i = 0; i < 20; i += 1) t.notThrows(() => store.logInference(frame(next++, 400)));
    result = store.flush();
  }
  t.false(result.ok, 'the disk filled up');
  t.regex(store.health().reason ?? '', /^disk full: /);
  t.is(warnings.filter((m) => m.includes('writes failing')).length, 1);
  const queued = store.health().queuedRows;
  t.true(queued > 0);

  fs.unlinkSync(ballast);
  t.true(store.flush().ok);
  t.like(store.health(), { ok: true, queuedRows: 0, droppedRows: 0 });
  t.is(store.queryInferences().length, next, 'every row, none lost');
  t.is(store.integrityCheck(), 'ok');
  store.close();
  const reader = LogReader.open(file);
  t.is(reader.integrityCheck(), 'ok');
  reader.close();
});

test.serial('recovering from a full disk, a backlog is written in bounded chunks: a little freed space commits what fits', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-exit-store-chunks-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const store = LogStore.open(path.join(dir, 'logs.db'), { flushRows: 1_000_000, flushMs: 1_000_000, retryMs: 1_000_000, maxQueuedRows: 10_000 });
  t.teardown(() => store.close());
  for (let i = 0; i < 20; i += 1) store.logInference(frame(i));
  t.true(store.flush().ok);
  const db = store.database;
  const full = db.pragma('page_count', { simple: true }) as number;
  db.pragma(`max_page_count = ${full}`);
  for (let i = 20; i < 3020; i += 1) store.logInference(frame(i));
  t.false(store.flush().ok);
  t.is(store.health().queuedRows, 3000);

  // Room for a few hundred rows, not for the 3,000 queued.
  db.pragma(`max_page_count = ${full + 16}`);
  const partial = store.flush();
  t.false(partial.ok, 'the whole backlog still does not fit');
  t.true(partial.written >= 100, `${partial.written} rows committed from the backlog`);
  t.is(store.health().queuedRows, 3000 - partial.written);

  db.pragma('max_page_count = 1073741823');
  t.true(store.flush().ok);
  t.is(store.queryInferences({ limit: 10_000 }).length, 3020);
  t.is(store.integrityCheck(), 'ok');
});
