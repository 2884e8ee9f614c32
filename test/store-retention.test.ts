import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { LogStore, type InferenceRow } from '../agent/store/log-store.js';
import { usedBytes } from '../agent/store/retention.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 5, 1, 12, 0, 0);

function tempFile(t: { teardown: (fn: () => void) => void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-exit-store-retention-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'logs.db');
}

const inference = (ts: number, frameId: string, padding = ''): InferenceRow => ({
  ts,
  source: `replay${padding}`,
  frameId,
  exit: 1,
  label: 'cat',
  confidence: 0.8,
  policy: 'max-probability',
  operatingPoint: 'balanced',
  segmentMs: [1.25, 2.5],
  totalMs: 3.75,
  energyJ: 0.01,
});

function logEverywhere(store: LogStore, ts: number, tag: string): void {
  store.logInference(inference(ts, tag));
  store.logControllerDecision({ ts, operatingPoint: 'fast', maxExit: 0, frameRate: 5, offloadAllowed: false, reason: tag, inputs: {} });
  store.logTelemetry({ ts, batterySoc: 0.5, extra: { tag } });
  store.logConfigChange({ ts, source: 'file', version: tag, diff: {}, accepted: true });
}

const tagsLeft = (store: LogStore) => ({
  inferences: store.queryInferences().map((r) => r.frameId),
  controller: store.controllerTimeline().map((r) => r.reason),
  telemetry: store.telemetry().map((r) => r.extra!.tag),
  config: store.configChanges().map((r) => r.version),
});

test('retention by age deletes older rows from every table, in chunks, and keeps the rest', (t) => {
  const store = LogStore.open(tempFile(t), { maxAgeDays: 3, chunkRows: 2, flushMs: 60_000 });
  t.teardown(() => store.close());
  for (const [tag, age] of [
    ['10d', 10 * DAY],
    ['5d', 5 * DAY],
    ['4d', 4 * DAY],
    ['3d+1ms', 3 * DAY + 1],
    ['1d', DAY],
    ['1h', DAY / 24],
  ] as const) {
    logEverywhere(store, NOW - age, tag);
  }
  store.flush();
  const result = store.runRetention(NOW);
  // Four rows older than 3 days in each of four tables, two per chunk.
  t.is(result?.deletedByAge, 16);
  t.is(result?.deletedBySize, 0);
  const kept = ['1d', '1h'];
  t.deepEqual(tagsLeft(store), { inferences: kept, controller: kept, telemetry: kept, config: kept });
  t.is(store.runRetention(NOW)?.deletedByAge, 0, 'nothing more to do');
});

test('retention runs by itself on its timer', async (t) => {
  const store = LogStore.open(tempFile(t), { maxAgeDays: 1, retentionIntervalMs: 40, flushMs: 60_000 });
  t.teardown(() => store.close());
  store.logInference(inference(Date.now() - 2 * DAY, 'old'));
  store.logInference(inference(Date.now(), 'new'));
  store.flush();
  for (let waited = 0; waited < 3000 && store.queryInferences().length > 1; waited += 20) await sleep(20);
  t.deepEqual(
    store.queryInferences().map((r) => r.frameId),
    ['new'],
  );
});

test('retention by size deletes the oldest rows of any table until the live data fits, then shrinks the file', (t) => {
  const file = tempFile(t);
  const maxBytes = 256 * 1024;
  const store = LogStore.open(file, { maxBytes, chunkRows: 250, flushRows: 1_000_000, maxQueuedRows: 1_000_000, flushMs: 60_000 });
  const frames = 12_000;
  const start = NOW - DAY;
  // Telemetry older than every inference goes first.
  store.logTelemetry({ ts: start - 1000, extra: { tag: 'oldest' } });
  for (let i = 0; i < frames; i += 1) store.logInference(inference(start + i * 1000, String(i), '-'.repeat(120)));
  store.logTelemetry({ ts: NOW, extra: { tag: 'newest' } });
  t.true(store.flush().ok);
  const before = usedBytes(store.database);
  t.true(before > 4 * maxBytes, `${before} bytes before`);

  const result = store.runRetention(NOW);
  t.truthy(result);
  t.true(result!.usedBytes <= maxBytes, `${result!.usedBytes} bytes left`);
  t.true(result!.deletedBySize > 0);
  t.is(store.database.pragma('freelist_count', { simple: true }), 0, 'freed pages were vacuumed away');

  // What is left is the newest frames, without gaps, and the newer telemetry.
  const left = store.queryInferences().map((r) => Number(r.frameId));
  t.true(left.length > 0 && left.length < frames);
  t.is(left.at(-1), frames - 1);
  t.deepEqual(left, Array.from({ length: left.length }, (_, k) => frames - left.length + k));
  t.deepEqual(
    store.telemetry().map((r) => r.extra!.tag),
    ['newest'],
  );
  t.is(result!.deletedBySize, frames - left.length + 1);
  store.close();

  // Closing checkpoints the WAL into the file: it is now within the bound.
  const size = fs.statSync(file).size;
  t.true(size <= maxBytes, `file is ${size} bytes`);
  t.false(fs.existsSync(`${file}-wal`) && fs.statSync(`${file}-wal`).size > 0);
});

test('a size bound below an empty schema empties the tables and stops', (t) => {
  const store = LogStore.open(tempFile(t), { maxBytes: 1024, flushMs: 60_000 });
  t.teardown(() => store.close());
  logEverywhere(store, NOW, 'only');
  store.flush();
  const result = store.runRetention(NOW);
  t.is(result?.deletedBySize, 4);
  t.deepEqual(tagsLeft(store), { inferences: [], controller: [], telemetry: [], config: [] });
});
