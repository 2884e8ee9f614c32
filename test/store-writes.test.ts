import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { LogReader, LogStore, type InferenceRow, type LogStoreOptions } from '../agent/store/log-store.js';

function tempFile(t: { teardown: (fn: () => void) => void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-exit-store-writes-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'logs.db');
}

function open(t: { teardown: (fn: () => void) => void }, options: LogStoreOptions): { store: LogStore; file: string } {
  const file = tempFile(t);
  const store = LogStore.open(file, options);
  t.teardown(() => store.close());
  return { store, file };
}

const frame = (i: number, extra: Partial<InferenceRow> = {}): InferenceRow => ({
  ts: 1_700_000_000_000 + i,
  source: 'replay',
  frameId: `f${i}`,
  exit: 0,
  label: 1,
  confidence: 0.9,
  policy: 'max-probability',
  operatingPoint: 'balanced',
  segmentMs: [1, 2],
  totalMs: 3,
  ...extra,
});

/** Rows as another process sees them: only what is committed. */
function committedRows(file: string): number {
  const reader = LogReader.open(file);
  try {
    return (reader.database.prepare('SELECT count(*) AS n FROM inferences').get() as { n: number }).n;
  } finally {
    reader.close();
  }
}

test('logged rows stay queued until a flush, which commits them all at once', (t) => {
  const { store, file } = open(t, { flushRows: 1000, flushMs: 60_000 });
  for (let i = 0; i < 10; i += 1) store.logInference(frame(i));
  t.is(store.health().queuedRows, 10);
  t.is(committedRows(file), 0);
  t.deepEqual(store.flush(), { ok: true, written: 10 });
  t.is(committedRows(file), 10);
  t.like(store.health(), { ok: true, queuedRows: 0, committedRows: 10, droppedRows: 0 });
  t.like(store.stats(), { flushes: 1, committedRows: 10 });
  t.deepEqual(store.flush(), { ok: true, written: 0 }, 'nothing queued');
});

test('reaching flushRows flushes on the next turn of the event loop, not inside the log call', async (t) => {
  const { store, file } = open(t, { flushRows: 5, flushMs: 60_000 });
  for (let i = 0; i < 5; i += 1) store.logInference(frame(i));
  t.is(committedRows(file), 0, 'logInference only queues');
  await nextTurn();
  t.is(committedRows(file), 5);
  t.is(store.stats().flushes, 1);
});

test('the timer flushes what is queued every flushMs', async (t) => {
  const { store, file } = open(t, { flushRows: 1000, flushMs: 30 });
  store.logInference(frame(0));
  store.logTelemetry({ ts: 1 });
  for (let waited = 0; waited < 2000 && committedRows(file) === 0; waited += 20) await sleep(20);
  t.is(committedRows(file), 1);
  t.is(store.telemetry().length, 1);
});

test('close() writes what is still queued; logging after close is ignored', (t) => {
  const file = tempFile(t);
  const store = LogStore.open(file, { flushRows: 1000, flushMs: 60_000 });
  for (let i = 0; i < 3; i += 1) store.logInference(frame(i));
  store.logControllerDecision({ ts: 5, operatingPoint: 'fast', maxExit: 1, frameRate: 10, offloadAllowed: false, reason: 'battery', inputs: { soc: 0.2 } });
  store.logConfigChange({ ts: 6, source: 'cli', version: 2, diff: { maxFrameRate: [20, 10] }, accepted: true });
  store.close();
  t.notThrows(() => store.logInference(frame(99)));
  t.notThrows(() => store.close(), 'close twice');
  const reader = LogReader.open(file);
  t.is(reader.queryInferences().length, 3);
  t.is(reader.controllerTimeline().length, 1);
  t.is(reader.configChanges().length, 1);
  reader.close();
});

test('a server answer finds its row even while both are still queued; a late answer keeps decided_locally', (t) => {
  const { store } = open(t, { flushRows: 1000, flushMs: 60_000 });
  store.logInference(frame(0, { offloaded: true, requestId: 'req-0' }));
  store.logInference(frame(1, { offloaded: true, requestId: 'req-1', decidedLocally: true }));
  store.recordServerAnswer('req-0', { label: 7, confidence: 0.97, serverMs: 41.5, answeredAt: 1_700_000_000_100 });
  store.recordServerAnswer('req-1', { label: 'cat', serverMs: 250 });
  store.recordServerAnswer('no-such-request', { label: 1 });
  t.true(store.flush().ok);
  const [first, second] = store.queryInferences();
  t.like(first, { requestId: 'req-0', serverLabel: '7', serverConfidence: 0.97, serverMs: 41.5, answeredAt: 1_700_000_000_100, decidedLocally: false });
  t.like(second, { requestId: 'req-1', serverLabel: 'cat', serverConfidence: null, decidedLocally: true });
  t.true(typeof second!.answeredAt === 'number');

  // An answer after the deadline can also say so itself.
  store.logInference(frame(2, { offloaded: true, requestId: 'req-2' }));
  store.flush();
  store.recordServerAnswer('req-2', { label: 3, decidedLocally: true });
  store.flush();
  t.like(store.queryInferences({ limit: 1 })[0], { requestId: 'req-2', serverLabel: '3', decidedLocally: true });
});

test('rows round-trip: labels as text, booleans, JSON columns, segment times to the microsecond', (t) => {
  const { store } = open(t, { flushRows: 1000, flushMs: 60_000 });
  store.logInference(
    frame(0, {
      ts: 1_700_000_000_000.7,
      trueLabel: 3,
      label: 3,
      segmentMs: Float64Array.from([1.23456789, 2.0000004]),
      energyJ: 0.0123,
      batterySoc: 0.81,
      temperatureC: 52.5,
    }),
  );
  store.logTelemetry({ ts: 10, voltageV: 5.1, currentA: 0.9, powerW: 4.59, charging: false, framesPerS: 12.5, extra: { throttled: true } });
  store.logTelemetry({ ts: 11 });
  store.flush();
  const [row] = store.queryInferences();
  t.like(row, { ts: 1_700_000_000_000, trueLabel: '3', label: '3', energyJ: 0.0123, batterySoc: 0.81, temperatureC: 52.5, offloaded: false, requestId: null });
  t.deepEqual(row!.segmentMs, [1.235, 2]);
  const [full, sparse] = store.telemetry();
  t.like(full, { voltageV: 5.1, currentA: 0.9, powerW: 4.59, charging: false, framesPerS: 12.5, extra: { throttled: true } });
  t.like(sparse, { batterySoc: null, charging: null, extra: null });
});

test('a row the database refuses is skipped and counted; the rest of the batch is written and nothing throws', (t) => {
  const { store } = open(t, { flushRows: 1000, flushMs: 60_000 });
  store.logInference(frame(0));
  t.notThrows(() => store.logConfigChange({ ts: 1, source: 'usb' as 'cli', version: 1, diff: {}, accepted: true }));
  t.notThrows(() => store.logInference(frame(1, { segmentMs: [BigInt(1) as unknown as number] })));
  t.notThrows(() => store.logInference(frame(2, { confidence: null as unknown as number })));
  store.logInference(frame(3));
  t.true(store.flush().ok);
  t.deepEqual(
    store.queryInferences().map((row) => row.frameId),
    ['f0', 'f3'],
  );
  t.like(store.health(), { ok: true, rejectedRows: 3, committedRows: 2 });
});

test('when the event loop never turns, the queue bound makes the log call write rather than drop', (t) => {
  const { store, file } = open(t, { flushRows: 10, flushMs: 60_000, maxQueuedRows: 50 });
  for (let i = 0; i < 51; i += 1) store.logInference(frame(i));
  t.is(committedRows(file), 51);
  t.like(store.health(), { ok: true, droppedRows: 0, queuedRows: 0 });
});
