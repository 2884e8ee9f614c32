import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { LogReader, LogStore } from '../agent/store/log-store.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const WRITER = path.join(ROOT, 'test', 'fixtures', 'store-writer.ts');
const ROWS_PER_FLUSH = 25;

interface Killed {
  /** The last count the child printed: rows it knew were committed. */
  reported: number;
  reports: number;
  signal: NodeJS.Signals | null;
}

/** Runs the writer until it has reported `reportsBeforeKill` flushes, then SIGKILLs it. */
function runAndKill(file: string, source: string, reportsBeforeKill: number): Promise<Killed> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WRITER, file, source, String(ROWS_PER_FLUSH)], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, EDGE_EXIT_LOG_LEVEL: 'warn' },
    });
    let buffered = '';
    let stderr = '';
    let reported = 0;
    let reports = 0;
    let killed = false;
    const guard = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`writer made only ${reports} reports in 60 s; stderr: ${stderr}`));
    }, 60_000);
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      // Only whole lines count: a half-read number is not a report.
      for (const line of lines) {
        reported = Number(line);
        reports += 1;
      }
      if (!killed && reports >= reportsBeforeKill) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(guard);
      if (!killed) reject(new Error(`writer exited by itself (code ${code}); stderr: ${stderr}`));
      else resolve({ reported, reports, signal });
    });
  });
}

test('rows reported committed survive SIGKILL mid-stream, and the file stays intact', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-exit-store-crash-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'logs.db');

  // Three kills at different points into the same file, each after a restart.
  for (const [round, reportsBeforeKill] of [40, 95, 170].entries()) {
    const source = `run${round}`;
    const killed = await runAndKill(file, source, reportsBeforeKill);
    t.is(killed.signal, 'SIGKILL');
    t.true(killed.reported >= reportsBeforeKill * ROWS_PER_FLUSH, `round ${round}: reported ${killed.reported}`);

    // As `edge-exit logs` would see it while the agent is down: read-only, WAL not yet checkpointed.
    const reader = LogReader.open(file);
    const count = (sql: string, ...params: unknown[]) => (reader.database.prepare(sql).get(...params) as { n: number }).n;
    const reportedPresent = count(
      'SELECT count(*) AS n FROM inferences WHERE source = ? AND CAST(frame_id AS INTEGER) < ?',
      source,
      killed.reported,
    );
    const total = count('SELECT count(*) AS n FROM inferences WHERE source = ?', source);
    reader.close();
    t.is(reportedPresent, killed.reported, `round ${round}: every reported row is there`);
    // At most the one flush that committed before its report got out; never part of a batch.
    t.true(total === killed.reported || total === killed.reported + ROWS_PER_FLUSH, `round ${round}: ${total} rows after ${killed.reported} reported`);

    // As the restarted agent opens it.
    const store = LogStore.open(file);
    t.is(store.integrityCheck(), 'ok');
    store.close();
  }

  const reader = LogReader.open(file);
  t.is(reader.integrityCheck(), 'ok');
  const sources = reader.database.prepare('SELECT DISTINCT source FROM inferences ORDER BY source').pluck().all();
  t.deepEqual(sources, ['run0', 'run1', 'run2']);
  reader.close();
});
