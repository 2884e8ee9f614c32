import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { Command } from 'commander';
import {
  buildView,
  csvField,
  formatCsv,
  formatTable,
  logsCommand,
  parseLogsOptions,
  parseTime,
  registerLogsCommand,
} from '../cli/commands/logs.js';
import { LogReader, LogStore } from '../agent/store/log-store.js';

const T0 = Date.UTC(2026, 2, 10, 8, 0, 0);
const MIN = 60_000;
const NOW = T0 + 3 * 60 * MIN;

let dir: string;
let file: string;

test.before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-exit-logs-command-'));
  file = path.join(dir, 'logs.db');
  const store = LogStore.open(file);
  const base = { source: 'replay', policy: 'max-probability', operatingPoint: 'balanced', segmentMs: [1.5, 2.5], totalMs: 4 };
  store.logInference({ ...base, ts: T0, frameId: 'a', exit: 0, label: 'cat', trueLabel: 'cat', confidence: 0.91234, energyJ: 0.02 });
  // Labels with the characters CSV must quote.
  store.logInference({ ...base, ts: T0 + 30 * MIN, frameId: 'b', exit: 1, label: 'say "hi", ok', trueLabel: 'dog', confidence: 0.5, energyJ: 0.04, offloaded: true, requestId: 'r-b' });
  store.recordServerAnswer('r-b', { label: 'dog', confidence: 0.99, serverMs: 35.25, answeredAt: T0 + 30 * MIN + 40 });
  store.logInference({ ...base, ts: T0 + 90 * MIN, frameId: 'c', exit: 1, label: ' padded', trueLabel: null, confidence: 0.7, energyJ: null });
  store.logControllerDecision({ ts: T0 + 10 * MIN, level: 'saving', operatingPoint: 'fast', maxExit: 0, frameRate: 7.5, offloadAllowed: false, reason: 'battery low,\nand "hot"', inputs: { soc: 0.3, temperatureC: 71 } });
  store.logTelemetry({ ts: T0 + 5 * MIN, batterySoc: 0.31, voltageV: 3.7, charging: false, extra: { note: 'a,b' } });
  store.logConfigChange({ ts: T0 + 20 * MIN, source: 'mqtt', version: 7, diff: { maxFrameRate: [20, 10] }, accepted: false, reason: 'rejected: "maxFrameRate" out of range' });
  store.close();
});

test.after.always(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** A reader of RFC 4180 CSV, to check that what formatCsv writes reads back the same. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i += 1;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      i += 1;
    } else field += c;
  }
  if (field !== '' || row.length > 0) rows.push([...row, field]);
  return rows;
}

const run = (view: string, options: Record<string, string> = {}) => logsCommand(view, { format: 'table', ...options }, () => file, NOW);

test('parseTime reads relative times, ISO dates and date-times, and refuses anything else', (t) => {
  t.is(parseTime('-2h', NOW), NOW - 2 * 3_600_000);
  t.is(parseTime('-30m', NOW), NOW - 30 * 60_000);
  t.is(parseTime('-1.5d', NOW), NOW - 1.5 * 86_400_000);
  t.is(parseTime('-45s', NOW), NOW - 45_000);
  t.is(parseTime('now', NOW), NOW);
  t.is(parseTime('2026-03-10T08:30Z'), T0 + 30 * MIN);
  t.is(parseTime('2026-03-10T10:30:00+02:00'), T0 + 30 * MIN);
  t.is(parseTime('2026-03-10'), Date.UTC(2026, 2, 10));
  for (const bad of ['yesterday', '2', '-2', '-2y', '2h', '2026-13-45', '']) {
    t.throws(() => parseTime(bad, NOW), { message: /cannot read the time/ }, bad);
  }
});

test('options are checked against the view and converted', (t) => {
  t.deepEqual(parseLogsOptions('inferences', { from: '-2h', exit: '1', label: 'cat', offloaded: 'no' }, NOW), {
    from: NOW - 2 * 3_600_000,
    exit: 1,
    label: 'cat',
    offloaded: false,
    limit: 100,
  });
  t.deepEqual(parseLogsOptions('inferences', { limit: '0' }, NOW), {}, '--limit 0 lists everything');
  t.deepEqual(parseLogsOptions('exits', { offloaded: 'yes' }, NOW), { offloaded: true });
  t.deepEqual(parseLogsOptions('controller', { limit: '5', to: '-1h' }, NOW), { to: NOW - 3_600_000, limit: 5 });
  t.throws(() => parseLogsOptions('controller', { exit: '1' }, NOW), { message: /--exit filters inferences: use it with inferences, exits, energy, accuracy, not controller/ });
  t.throws(() => parseLogsOptions('accuracy', { limit: '5' }, NOW), { message: /--limit applies to the lists/ });
  t.throws(() => parseLogsOptions('inferences', { exit: 'two' }, NOW), { message: /--exit must be a whole number/ });
  t.throws(() => parseLogsOptions('inferences', { offloaded: 'maybe' }, NOW), { message: /--offloaded is yes or no/ });
  t.throws(() => parseLogsOptions('inferences', { from: '-1h', to: '-2h' }, NOW), { message: /--from .* must be before --to/ });
});

test('a missing database says where it looked and what to do', (t) => {
  const missing = path.join(dir, 'nope', 'edge-exit.db');
  t.throws(() => logsCommand('inferences', {}, () => missing), {
    message: `no log database at ${missing}: the agent has not run yet, or give --db`,
  });
  t.throws(() => logsCommand('inferences', { db: missing }, () => file), { message: /no log database at .*nope/ });
  t.false(fs.existsSync(missing));
});

test('table: aligned columns, rounded numbers, yes/no, "-" for absent values, one line per row', (t) => {
  const out = run('inferences');
  const lines = out.trimEnd().split('\n');
  t.is(lines.length, 2 + 3);
  t.regex(lines[0]!, /^time\s+source\s+frame\s+exit\s+label\s+confidence\s+true_label/);
  t.false(lines[0]!.includes('segment_ms'), 'the wide columns are left to CSV and JSON');
  t.regex(lines[1]!, /^-+ {2}-+/);
  t.true(lines[2]!.startsWith('2026-03-10T08:00:00.000Z  replay'));
  t.true(lines[2]!.includes('0.912'));
  t.regex(lines[3]!, /say "hi", ok .* yes .* dog .* 35\.25/);
  t.regex(lines[4]!, /^2026-03-10T09:30:00\.000Z .* -/);
  // Every line has the header's column starts: numbers are right-aligned in their column.
  const exitColumnEnd = lines[0]!.indexOf('exit') + 'exit'.length;
  for (const line of lines.slice(2)) t.regex(line.slice(exitColumnEnd - 1, exitColumnEnd), /\d/);

  const controller = run('controller');
  t.true(controller.includes('battery low,\\nand "hot"'), 'a newline in a cell is shown escaped');
  t.is(controller.trimEnd().split('\n').length, 3);

  const empty = run('inferences', { from: '2026-03-11' }).split('\n');
  t.deepEqual(empty.slice(2), ['(no rows)', ''], 'header, rule, then a note instead of rows');
});

test('json: the records as the store returns them, with an ISO time added', (t) => {
  const rows = JSON.parse(run('inferences', { format: 'json', exit: '1' })) as Array<Record<string, unknown>>;
  t.is(rows.length, 2);
  t.like(rows[0], { time: '2026-03-10T08:30:00.000Z', ts: T0 + 30 * MIN, label: 'say "hi", ok', serverLabel: 'dog', offloaded: true, segmentMs: [1.5, 2.5] });
  const accuracy = JSON.parse(run('accuracy', { format: 'json' })) as { overall: unknown; offloaded: { server: unknown } };
  t.deepEqual(accuracy.overall, { n: 2, correct: 1, accuracy: 0.5 });
  t.deepEqual(accuracy.offloaded.server, { n: 1, correct: 1, accuracy: 1 });
  const energy = JSON.parse(run('energy', { format: 'json' })) as Array<{ time: string; frames: number; energyJ: number }>;
  t.deepEqual(
    energy.map((h) => [h.time, h.frames, h.energyJ]),
    [
      ['2026-03-10T08:00:00.000Z', 2, 0.06],
      ['2026-03-10T09:00:00.000Z', 1, 0],
    ],
  );
  t.deepEqual(JSON.parse(run('telemetry', { format: 'json', from: '2026-03-11' })), []);
});

test('csv: RFC 4180 quoting of commas, quotes, newlines and edge spaces; reads back to the same values', (t) => {
  t.is(csvField('plain'), 'plain');
  t.is(csvField('a,b'), '"a,b"');
  t.is(csvField('say "hi"'), '"say ""hi"""');
  t.is(csvField('two\nlines'), '"two\nlines"');
  t.is(csvField('cr\rhere'), '"cr\rhere"');
  t.is(csvField(' padded'), '" padded"');
  t.is(csvField(null), '');
  t.is(csvField(0.5), '0.5');
  t.is(csvField(false), 'false');

  const inferences = run('inferences', { format: 'csv' });
  t.true(inferences.endsWith('\r\n'));
  const rows = parseCsv(inferences);
  t.is(rows.length, 1 + 3);
  const header = rows[0]!;
  t.true(header.includes('segment_ms') && header.includes('request_id'), 'CSV keeps every column');
  const col = (name: string) => header.indexOf(name);
  t.is(rows[2]![col('label')], 'say "hi", ok');
  t.is(rows[2]![col('segment_ms')], '[1.5,2.5]');
  t.is(rows[2]![col('answered_at')], '2026-03-10T08:30:00.040Z');
  t.is(rows[3]![col('label')], ' padded');
  t.is(rows[3]![col('true_label')], '', 'null is an empty field');
  t.is(rows[1]![col('confidence')], '0.91234', 'full precision');
  for (const row of rows) t.is(row.length, header.length);

  const controller = parseCsv(run('controller', { format: 'csv' }));
  t.deepEqual(controller[0], ['time', 'level', 'operating_point', 'max_exit', 'frame_rate', 'offload_allowed', 'reason', 'inputs']);
  t.deepEqual(controller[1], ['2026-03-10T08:10:00.000Z', 'saving', 'fast', '0', '7.5', 'false', 'battery low,\nand "hot"', '{"soc":0.3,"temperatureC":71}']);

  const config = parseCsv(run('config', { format: 'csv' }));
  t.deepEqual(config[1], ['2026-03-10T08:20:00.000Z', 'mqtt', '7', 'false', 'rejected: "maxFrameRate" out of range', '{"maxFrameRate":[20,10]}']);
  const telemetry = parseCsv(run('telemetry', { format: 'csv' }));
  t.is(telemetry[1]![telemetry[0]!.indexOf('extra')], '{"note":"a,b"}');

  const exits = parseCsv(run('exits', { format: 'csv' }));
  t.deepEqual(exits, [
    ['exit', 'frames', 'share', 'mean_total_ms', 'mean_confidence'],
    ['0', '1', String(1 / 3), '4', '0.91234'],
    ['1', '2', String(2 / 3), '4', '0.6'],
  ]);
  t.is(parseCsv(run('inferences', { format: 'csv', from: '2026-03-11' })).length, 1, 'header only when empty');
});

test('every view renders in every format; filters reach the store', (t) => {
  const views = ['inferences', 'exits', 'energy', 'accuracy', 'controller', 'telemetry', 'config', 'events'];
  for (const view of views) {
    for (const format of ['table', 'json', 'csv']) t.notThrows(() => run(view, { format }), `${view} ${format}`);
  }
  const reader = LogReader.open(file);
  const offloaded = buildView(reader, 'inferences', { offloaded: true });
  t.is(offloaded.rows.length, 1);
  const accuracy = formatTable(buildView(reader, 'accuracy', {}));
  t.regex(accuracy, /all frames \(local answer\)\s+2\s+1\s+50\.0%/);
  t.regex(accuracy, /offloaded and answered: server\s+1\s+1\s+100\.0%/);
  t.regex(formatCsv(buildView(reader, 'exits', { label: 'cat' })), /^exit,frames,share,mean_total_ms,mean_confidence\r\n0,1,1,4,0\.91234\r\n$/);
  reader.close();
  t.regex(run('energy', { to: '2026-03-10T09:00Z' }), /2026-03-10T08:00:00\.000Z\s+2\s+0\.06000\s+0\.03000/);
});

test.serial('registerLogsCommand: commander parses the view, the options and their choices', async (t) => {
  const program = new Command().exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  registerLogsCommand(program, () => file);
  const written: string[] = [];
  const original = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string) => {
    written.push(chunk);
    return true;
  }) as typeof process.stdout.write;
  try {
    await program.parseAsync(['logs', 'exits', '--format', 'csv', '--from', '-100000d'], { from: 'user' });
    await program.parseAsync(['logs', '--limit', '1', '--format', 'json'], { from: 'user' });
  } finally {
    process.stdout.write = original;
  }
  t.true(written[0]!.startsWith('exit,frames,share'));
  const last = JSON.parse(written[1]!) as Array<{ frameId: string }>;
  t.deepEqual(
    last.map((r) => r.frameId),
    ['c'],
  );
  await t.throwsAsync(program.parseAsync(['logs', 'everything'], { from: 'user' }), { message: /invalid for argument 'view'/ });
  await t.throwsAsync(program.parseAsync(['logs', '--format', 'xml'], { from: 'user' }), { message: /Allowed choices are table, json, csv/ });
});
