/**
 * What the agent's loop costs beyond the model: the real `edge-exit run`, flat out (simulated
 * clock, so no frame-rate wait), on the replay of the CIFAR-10 test split and on a video
 * decoded by ffmpeg beside it; frames/s against the model's own time per frame, measured by
 * the engine in the same run. A second checkout (`baseline`, e.g. a worktree of the commit
 * before a change) runs the same way in the same rounds, so that before and after share the load.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { freePort } from '../mqtt/mosquitto.js';

const TICKS_PER_SECOND = 100;

export interface LoopScenario {
  name: string;
  /** The agent config's source section. */
  source: Record<string, unknown>;
}

export interface LoopBenchOptions {
  /** Checkouts to compare, by name (each runs its own bin/edge-exit.js). */
  checkouts: Array<{ name: string; root: string }>;
  scenarios: LoopScenario[];
  packageDir: string;
  operatingPoint: string;
  rounds: number;
  warmupS: number;
  measureS: number;
  onProgress?: (done: number, total: number) => void;
}

export interface LoopRun {
  checkout: string;
  scenario: string;
  round: number;
  frames: number;
  framesPerSecond: number;
  /** Segments and heads, as the engine timed them (the log's total_ms), mean per frame. */
  modelMsPerFrame: number;
  cpuMsPerFrame: number;
}

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

async function runOnce(checkout: { name: string; root: string }, scenario: LoopScenario, round: number, options: LoopBenchOptions): Promise<LoopRun> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-exit-loop-bench-'));
  const db = path.join(dir, 'edge-exit.db');
  const config = {
    deviceId: `loop-bench-${round}`,
    // One thread: a second gives no speed-up on this runtime today (docs/benchmarks.md), and the other core is the decoder's.
    model: { package: options.packageDir, backend: 'xnnpack', threads: 1 },
    source: scenario.source,
    policy: { operatingPoint: options.operatingPoint },
    controller: { enabled: false },
    // The manual clock never waits for a frame slot: the loop runs as fast as its work allows.
    bridge: { kind: 'simulated', clock: 'manual', capacityWh: 1000 },
    logs: { path: db },
    // The offload server would run inside the agent's process (embedded): kept out of the figures.
    offload: { enabled: false },
    mqtt: { embeddedPort: await freePort() },
    web: { port: 0 },
  };
  const configFile = path.join(dir, 'agent.json');
  fs.writeFileSync(configFile, JSON.stringify(config));
  const child = spawn(process.execPath, [path.join(checkout.root, 'bin', 'edge-exit.js'), 'run', '-c', configFile], { cwd: checkout.root, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)));
  child.stderr!.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    // Warm-up starts at the first logged frame (the package opens and the loader compiles first).
    for (let waited = 0; !fs.existsSync(db) || rowsSince(db, 0) === 0; waited += 250) {
      if (waited > 120_000 || child.exitCode !== null) throw new Error(`the agent (${checkout.name}, ${scenario.name}) did not start classifying:\n${output}`);
      await sleep(250);
    }
    await sleep(options.warmupS * 1000);
    const from = { at: Date.now(), cpu: cpuSeconds(child.pid!) };
    await sleep(options.measureS * 1000);
    const to = { at: Date.now(), cpu: cpuSeconds(child.pid!) };
    child.kill('SIGTERM');
    await exited;
    const reader = new Database(db, { readonly: true });
    const row = reader.prepare('SELECT count(*) AS n, avg(total_ms) AS model FROM inferences WHERE ts >= ? AND ts < ?').get(from.at, to.at) as { n: number; model: number };
    reader.close();
    if (row.n === 0) throw new Error(`no frames logged while measuring (${checkout.name}, ${scenario.name}):\n${output}`);
    const seconds = (to.at - from.at) / 1000;
    return { checkout: checkout.name, scenario: scenario.name, round, frames: row.n, framesPerSecond: row.n / seconds, modelMsPerFrame: row.model, cpuMsPerFrame: ((to.cpu - from.cpu) * 1000) / row.n };
  } finally {
    if (child.exitCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function rowsSince(db: string, ts: number): number {
  try {
    const reader = new Database(db, { readonly: true, fileMustExist: true });
    try {
      return (reader.prepare('SELECT count(*) AS n FROM inferences WHERE ts >= ?').get(ts) as { n: number }).n;
    } finally {
      reader.close();
    }
  } catch {
    // Not created or migrated yet.
    return 0;
  }
}

/** Every scenario and checkout once a round; the order of the checkouts alternates from round to round. */
export async function runLoopBench(options: LoopBenchOptions): Promise<LoopRun[]> {
  const runs: LoopRun[] = [];
  const total = options.rounds * options.scenarios.length * options.checkouts.length;
  for (let round = 0; round < options.rounds; round++) {
    for (const scenario of options.scenarios) {
      const order = round % 2 === 0 ? options.checkouts : [...options.checkouts].reverse();
      for (const checkout of order) {
        runs.push(await runOnce(checkout, scenario, round, options));
        options.onProgress?.(runs.length, total);
      }
    }
  }
  return runs;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** The loop's time beyond the model's, as a share of the model's: wall time per frame over the engine's time per frame, minus one. */
export const loopOverhead = (run: Pick<LoopRun, 'framesPerSecond' | 'modelMsPerFrame'>) => 1000 / run.framesPerSecond / run.modelMsPerFrame - 1;

export interface LoopSummary {
  checkout: string;
  scenario: string;
  framesPerSecond: number;
  modelMsPerFrame: number;
  cpuMsPerFrame: number;
  overhead: number;
  overheadRange: [number, number];
}

/** Medians over the rounds, per scenario and checkout. */
export function summarizeLoopRuns(runs: LoopRun[]): LoopSummary[] {
  const keys = [...new Set(runs.map((r) => `${r.scenario}\u0000${r.checkout}`))];
  return keys.map((key) => {
    const [scenario, checkout] = key.split('\u0000') as [string, string];
    const mine = runs.filter((r) => r.scenario === scenario && r.checkout === checkout);
    const overheads = mine.map(loopOverhead);
    return {
      checkout,
      scenario,
      framesPerSecond: median(mine.map((r) => r.framesPerSecond)),
      modelMsPerFrame: median(mine.map((r) => r.modelMsPerFrame)),
      cpuMsPerFrame: median(mine.map((r) => r.cpuMsPerFrame)),
      overhead: median(overheads),
      overheadRange: [Math.min(...overheads), Math.max(...overheads)],
    };
  });
}
