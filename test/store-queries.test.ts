import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { LogReader, LogStore, type InferenceRow } from '../agent/store/log-store.js';

/** 2026-01-01 10:00 UTC. */
const T0 = Date.UTC(2026, 0, 1, 10, 0, 0);
const MIN = 60_000;

interface Known {
  n: number;
  minute: number;
  exit: number;
  label: string;
  truth: string | null;
  confidence: number;
  totalMs: number;
  energyJ: number | null;
  /** Offloaded with this server answer; `late` = it came after the deadline. */
  server?: { label: string; late: boolean } | 'unanswered';
}

// Nine frames over three hours, chosen so that every aggregate below differs
// from its neighbours (local vs final accuracy, server vs local on offloaded).
const FRAMES: Known[] = [
  { n: 1, minute: 0, exit: 0, label: 'cat', truth: 'cat', confidence: 0.9, totalMs: 2, energyJ: 0.01 },
  { n: 2, minute: 10, exit: 0, label: 'dog', truth: 'cat', confidence: 0.6, totalMs: 2, energyJ: 0.01, server: { label: 'cat', late: false } },
  { n: 3, minute: 20, exit: 1, label: 'dog', truth: 'dog', confidence: 0.8, totalMs: 4, energyJ: 0.02 },
  { n: 4, minute: 50, exit: 2, label: 'cat', truth: 'dog', confidence: 0.5, totalMs: 6, energyJ: 0.03, server: { label: 'dog', late: true } },
  { n: 5, minute: 70, exit: 1, label: 'cat', truth: 'cat', confidence: 0.7, totalMs: 4, energyJ: 0.02 },
  { n: 6, minute: 80, exit: 2, label: 'bird', truth: null, confidence: 0.4, totalMs: 6, energyJ: null, server: 'unanswered' },
  { n: 7, minute: 130, exit: 0, label: 'dog', truth: 'dog', confidence: 0.95, totalMs: 2, energyJ: 0.01, server: { label: 'dog', late: false } },
  { n: 8, minute: 140, exit: 1, label: 'bird', truth: 'bird', confidence: 0.55, totalMs: 4, energyJ: 0.02, server: { label: 'cat', late: false } },
  { n: 9, minute: 150, exit: 0, label: 'cat', truth: 'dog', confidence: 0.65, totalMs: 2, energyJ: 0.01, server: { label: 'dog', late: false } },
];

function row(frame: Known): InferenceRow {
  return {
    ts: T0 + frame.minute * MIN,
    source: 'replay',
    frameId: `frame-${frame.n}`,
    trueLabel: frame.truth,
    exit: frame.exit,
    label: frame.label,
    confidence: frame.confidence,
    policy: 'max-probability',
    operatingPoint: 'balanced',
    segmentMs: Array.from({ length: frame.exit + 1 }, () => frame.totalMs / (frame.exit + 1)),
    totalMs: frame.totalMs,
    energyJ: frame.energyJ,
    offloaded: frame.server !== undefined,
    requestId: frame.server !== undefined ? `req-${frame.n}` : null,
  };
}

let reader: LogReader;
let dir: string;

test.before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-exit-store-queries-'));
  const file = path.join(dir, 'logs.db');
  const store = LogStore.open(file, { flushRows: 1000, flushMs: 60_000 });
  for (const frame of FRAMES) {
    store.logInference(row(frame));
    if (frame.server !== undefined && frame.server !== 'unanswered') {
      store.recordServerAnswer(`req-${frame.n}`, {
        label: frame.server.label,
        confidence: 0.99,
        serverMs: 30,
        answeredAt: T0 + frame.minute * MIN + 500,
        decidedLocally: frame.server.late,
      });
    }
  }
  store.logControllerDecision({ ts: T0, level: 'relaxed', operatingPoint: 'accurate', maxExit: 2, frameRate: 20, offloadAllowed: true, reason: 'start', inputs: { soc: 0.9 } });
  store.logControllerDecision({ ts: T0 + 30 * MIN, level: 'saving', operatingPoint: 'balanced', maxExit: 1, frameRate: 15, offloadAllowed: true, reason: 'battery below 50%', inputs: { soc: 0.45, charging: false } });
  store.logControllerDecision({ ts: T0 + 90 * MIN, level: 'critical', operatingPoint: 'fast', maxExit: 0, frameRate: 8, offloadAllowed: false, reason: 'hot', inputs: { temperatureC: 81, headroomC: 0.5 } });
  store.logTelemetry({ ts: T0 + 5 * MIN, batterySoc: 0.9, charging: true, temperatureC: 40 });
  store.logTelemetry({ ts: T0 + 65 * MIN, batterySoc: 0.5, charging: false, temperatureC: 60, extra: { fan: 'on' } });
  store.logConfigChange({ ts: T0 + 15 * MIN, source: 'file', version: 1, diff: { policy: { operatingPoint: ['fast', 'balanced'] } }, accepted: true });
  store.logConfigChange({ ts: T0 + 95 * MIN, source: 'mqtt', version: '2', diff: { maxFrameRate: [20, 500] }, accepted: false, reason: 'maxFrameRate: too big' });
  store.close();
  reader = LogReader.open(file);
});

test.after.always(() => {
  reader?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const ids = (rows: Array<{ frameId: string }>) => rows.map((r) => Number(r.frameId.slice('frame-'.length)));
const near = (actual: number | null, expected: number) => actual !== null && Math.abs(actual - expected) < 1e-9;

test('queryInferences: all, by time range, exit, label, offloaded, combined, and the newest with limit', (t) => {
  t.deepEqual(ids(reader.queryInferences()), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  // from inclusive, to exclusive: minutes 20, 50, 70 (not 80).
  t.deepEqual(ids(reader.queryInferences({ from: T0 + 20 * MIN, to: T0 + 80 * MIN })), [3, 4, 5]);
  t.deepEqual(ids(reader.queryInferences({ exit: 2 })), [4, 6]);
  t.deepEqual(ids(reader.queryInferences({ label: 'cat' })), [1, 4, 5, 9]);
  t.deepEqual(ids(reader.queryInferences({ offloaded: true })), [2, 4, 6, 7, 8, 9]);
  t.deepEqual(ids(reader.queryInferences({ offloaded: false })), [1, 3, 5]);
  t.deepEqual(ids(reader.queryInferences({ label: 'cat', offloaded: true })), [4, 9]);
  t.deepEqual(ids(reader.queryInferences({ limit: 2 })), [8, 9], 'the newest two, oldest first');
  t.deepEqual(ids(reader.queryInferences({ exit: 0, limit: 3 })), [2, 7, 9]);
  t.deepEqual(reader.queryInferences({ exit: 5 }), []);
  t.like(reader.queryInferences({ exit: 2, limit: 1 })[0], { serverLabel: null, offloaded: true, trueLabel: null, energyJ: null });
});

test('exitHistogram: counts, shares, mean time and confidence per exit', (t) => {
  const bins = reader.exitHistogram();
  t.deepEqual(
    bins.map((b) => [b.exit, b.count]),
    [
      [0, 4],
      [1, 3],
      [2, 2],
    ],
  );
  t.true(near(bins[0]!.fraction, 4 / 9) && near(bins[1]!.fraction, 3 / 9) && near(bins[2]!.fraction, 2 / 9));
  t.deepEqual(
    bins.map((b) => b.meanTotalMs),
    [2, 4, 6],
  );
  t.true(near(bins[0]!.meanConfidence, (0.9 + 0.6 + 0.95 + 0.65) / 4));
  t.true(near(bins[1]!.meanConfidence, (0.8 + 0.7 + 0.55) / 3));
  // From 11:00: frames 5 to 9.
  t.deepEqual(
    reader.exitHistogram({ from: T0 + 60 * MIN }).map((b) => [b.exit, b.count]),
    [
      [0, 2],
      [1, 2],
      [2, 1],
    ],
  );
  t.deepEqual(reader.exitHistogram({ from: T0 + 1000 * MIN }), []);
});

test('energyPerHour: sums per UTC hour; per-frame energy over the frames that have a figure', (t) => {
  const hours = reader.energyPerHour();
  t.deepEqual(
    hours.map((h) => [h.hour, h.frames]),
    [
      [T0, 4],
      [T0 + 60 * MIN, 2],
      [T0 + 120 * MIN, 3],
    ],
  );
  t.true(near(hours[0]!.energyJ, 0.07) && near(hours[0]!.energyPerFrameJ, 0.0175));
  t.true(near(hours[1]!.energyJ, 0.02) && near(hours[1]!.energyPerFrameJ, 0.02), 'frame 6 has no energy figure');
  t.true(near(hours[2]!.energyJ, 0.04) && near(hours[2]!.energyPerFrameJ, 0.04 / 3));
  const exitOne = reader.energyPerHour({ exit: 1 });
  t.deepEqual(
    exitOne.map((h) => [h.hour, h.frames, Math.round(h.energyJ * 1000)]),
    [
      [T0, 1, 20],
      [T0 + 60 * MIN, 1, 20],
      [T0 + 120 * MIN, 1, 20],
    ],
  );
});

test('accuracy: overall and per exit where the truth is known; server vs local on offloaded frames; the final answer', (t) => {
  const report = reader.accuracy();
  // Truth known for 8 frames (not 6). Local right: 1, 3, 5, 7, 8.
  t.deepEqual(report.overall, { n: 8, correct: 5, accuracy: 5 / 8 });
  t.deepEqual(report.perExit, [
    { exit: 0, n: 4, correct: 2, accuracy: 0.5 },
    { exit: 1, n: 3, correct: 3, accuracy: 1 },
    { exit: 2, n: 1, correct: 0, accuracy: 0 },
  ]);
  // Offloaded with known truth and answered: 2, 4, 7, 8, 9. Local right on 7, 8; server right on 2, 4, 7, 9.
  t.is(report.offloaded.rows, 5);
  t.is(report.offloaded.answered, 5);
  t.deepEqual(report.offloaded.local, { n: 5, correct: 2, accuracy: 0.4 });
  t.deepEqual(report.offloaded.server, { n: 5, correct: 4, accuracy: 0.8 });
  // Acted on: server for 2, 7, 8, 9 (in time), local for 4 (late) and the rest: right on 1, 2, 3, 5, 7, 9.
  t.deepEqual(report.final, { n: 8, correct: 6, accuracy: 0.75 });

  const exitZeroLastHour = reader.accuracy({ exit: 0, from: T0 + 120 * MIN });
  t.deepEqual(exitZeroLastHour.overall, { n: 2, correct: 1, accuracy: 0.5 });
  t.deepEqual(exitZeroLastHour.offloaded.server, { n: 2, correct: 2, accuracy: 1 });
  const none = reader.accuracy({ from: T0 + 1000 * MIN });
  t.deepEqual(none.overall, { n: 0, correct: 0, accuracy: null });
  t.deepEqual(none.perExit, []);
});

test('controllerTimeline, telemetry and configChanges: in time order, by range, newest with limit', (t) => {
  const timeline = reader.controllerTimeline();
  t.deepEqual(
    timeline.map((d) => [d.operatingPoint, d.maxExit, d.frameRate, d.offloadAllowed, d.level]),
    [
      ['accurate', 2, 20, true, 'relaxed'],
      ['balanced', 1, 15, true, 'saving'],
      ['fast', 0, 8, false, 'critical'],
    ],
  );
  t.deepEqual(timeline[2]!.inputs, { temperatureC: 81, headroomC: 0.5 });
  t.deepEqual(
    reader.controllerTimeline({ from: T0 + 10 * MIN }).map((d) => d.reason),
    ['battery below 50%', 'hot'],
  );
  t.deepEqual(
    reader.controllerTimeline({}, 1).map((d) => d.reason),
    ['hot'],
  );

  const samples = reader.telemetry();
  t.deepEqual(
    samples.map((s) => [s.batterySoc, s.charging, s.temperatureC, s.extra]),
    [
      [0.9, true, 40, null],
      [0.5, false, 60, { fan: 'on' }],
    ],
  );
  t.is(reader.telemetry({ to: T0 + 5 * MIN }).length, 0);

  const changes = reader.configChanges();
  t.deepEqual(
    changes.map((c) => [c.source, c.version, c.accepted, c.reason]),
    [
      ['file', '1', true, null],
      ['mqtt', '2', false, 'maxFrameRate: too big'],
    ],
  );
  t.deepEqual(changes[1]!.diff, { maxFrameRate: [20, 500] });
  t.deepEqual(
    reader.configChanges({ from: T0 + 20 * MIN }).map((c) => c.version),
    ['2'],
  );
});

test('a numeric label filter matches labels logged as numbers', (t) => {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-exit-store-labels-'));
  t.teardown(() => fs.rmSync(scratch, { recursive: true, force: true }));
  const store = LogStore.open(path.join(scratch, 'logs.db'));
  store.logInference({ ...row(FRAMES[0]!), label: 3, trueLabel: 3 });
  store.logInference({ ...row(FRAMES[1]!), label: 4, trueLabel: 3 });
  store.flush();
  t.is(store.queryInferences({ label: 3 }).length, 1);
  t.is(store.queryInferences({ label: '3' }).length, 1);
  t.deepEqual(store.accuracy().overall, { n: 2, correct: 1, accuracy: 0.5 });
  store.close();
});
