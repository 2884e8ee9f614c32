/**
 * What the agent's operator surfaces cost its loop: the real `edge-exit run` with the web
 * port (dashboard, /metrics, /health) and Home Assistant discovery off, on with nobody
 * connected, and on with a dashboard open and Prometheus scraping, run side by side on
 * one shared core in each round, on the same package and replay; the figures are frames/s
 * and CPU time per frame.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { statusFilePath } from '../../agent/pipeline/status-file.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'edge-exit.js');
const TICKS_PER_SECOND = 100;

export type WebVariant = 'off' | 'on, nobody connected' | 'on, dashboard open + Prometheus';
export const WEB_VARIANTS: readonly WebVariant[] = ['off', 'on, nobody connected', 'on, dashboard open + Prometheus'];

export interface WebBenchOptions {
  /** The package directory the agents run. */
  packageDir: string;
  rounds: number;
  warmupS: number;
  measureS: number;
  maxFrameRate: number;
  onProgress?: (done: number, total: number) => void;
}

export interface WebRun {
  variant: WebVariant;
  round: number;
  frames: number;
  seconds: number;
  cpuSeconds: number;
}

export interface WebBenchResult {
  runs: WebRun[];
  /** Medians over the rounds; the overhead is the median over rounds of the frames/s lost against "off" in the same round. */
  byVariant: Array<{ variant: WebVariant; framesPerSecond: number; cpuMsPerFrame: number; overheadPercent: number; overheadRange: [number, number] }>;
}

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

function framesSoFar(statusFile: string): number | undefined {
  try {
    return (JSON.parse(fs.readFileSync(statusFile, 'utf8')) as { frames?: number }).frames;
  } catch {
    return undefined;
  }
}

/** What an open dashboard does (the live stream, the page's loads, a timeline refresh every 30 s) and a Prometheus scrape every 15 s. */
function watch(port: number): () => void {
  const base = `http://127.0.0.1:${port}`;
  const abort = new AbortController();
  const get = (route: string) => fetch(base + route, { signal: abort.signal }).then((r) => r.arrayBuffer()).catch(() => undefined);
  void (async () => {
    const stream = await fetch(`${base}/api/live`, { signal: abort.signal }).catch(() => undefined);
    const reader = stream?.body?.getReader();
    while (reader) if ((await reader.read().catch(() => ({ done: true }))).done) break;
  })();
  for (const route of ['/', '/dashboard.js', '/vendor/uPlot.iife.min.js', '/api/timeline', '/api/events', '/api/config', '/metrics']) void get(route);
  const timers = [setInterval(() => void get('/api/timeline'), 30_000), setInterval(() => void get('/metrics'), 15_000)];
  return () => {
    timers.forEach(clearInterval);
    abort.abort();
  };
}

interface RunningAgent {
  variant: WebVariant;
  child: ChildProcess;
  dir: string;
  statusFile: string;
  output: () => string;
  stopWatching: () => void;
}

/** Starts one agent of a variant, pinned to `cpu`. */
function startAgent(variant: WebVariant, round: number, options: WebBenchOptions, cpu: number): RunningAgent {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-exit-web-bench-'));
  const on = variant !== 'off';
  const config = {
    deviceId: `web-bench-${round}-${WEB_VARIANTS.indexOf(variant)}`,
    model: { package: options.packageDir, backend: 'xnnpack', threads: 1 },
    // The same images in every run: which images come decides the exits, and so most of a frame's cost.
    source: { kind: 'replay', loop: true, seed: 1 },
    maxFrameRate: options.maxFrameRate,
    bridge: { kind: 'simulated', clock: 'real', capacityWh: 1000 },
    logs: { path: path.join(dir, 'edge-exit.db') },
    statusIntervalMs: 100,
    // The offload server would run inside the agent's process (embedded): kept out of the figures.
    offload: { enabled: false },
    mqtt: { embeddedPort: 20_000 + Math.floor(Math.random() * 20_000) },
    web: { enabled: on, port: 0 },
    homeassistant: { enabled: on },
  };
  const configFile = path.join(dir, 'agent.json');
  fs.writeFileSync(configFile, JSON.stringify(config));
  const child = spawn('taskset', ['-c', String(cpu), process.execPath, CLI, 'run', '-c', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout!.on('data', (chunk: Buffer) => (text += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return { variant, child, dir, statusFile: statusFilePath(config.logs.path), output: () => text, stopWatching: () => {} };
}

async function stopAgent(agent: RunningAgent): Promise<void> {
  agent.stopWatching();
  const { child } = agent;
  if (child.exitCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
  fs.rmSync(agent.dir, { recursive: true, force: true });
}

/**
 * One round: the three variants at once, all pinned to one core, so that each gets a
 * fair third of it and whatever else the machine does hits them alike. Sharing a core,
 * each is below the frame-rate cap: its frames/s is what its work per frame allows.
 */
async function runRound(round: number, options: WebBenchOptions): Promise<WebRun[]> {
  // The start order rotates, so that no variant always starts first.
  const order = WEB_VARIANTS.map((_, i) => WEB_VARIANTS[(i + round) % WEB_VARIANTS.length]!);
  const agents = order.map((variant) => startAgent(variant, round, options, 1));
  try {
    for (const agent of agents) {
      for (let waited = 0; (framesSoFar(agent.statusFile) ?? 0) === 0; waited += 200) {
        if (waited > 180_000 || agent.child.exitCode !== null) throw new Error(`the agent did not start classifying (${agent.variant}):\n${agent.output().slice(-2000)}`);
        await sleep(200);
      }
      if (agent.variant === 'on, dashboard open + Prometheus') {
        const port = Number(/metrics on http:\/\/[^:]+:(\d+)\/metrics/.exec(agent.output())?.[1]);
        agent.stopWatching = watch(port);
      }
    }
    await sleep(options.warmupS * 1000);
    const read = () => agents.map((agent) => ({ at: performance.now(), cpu: cpuSeconds(agent.child.pid!), frames: framesSoFar(agent.statusFile)! }));
    const start = read();
    await sleep(options.measureS * 1000);
    const end = read();
    return agents.map((agent, i) => ({
      variant: agent.variant,
      round,
      frames: end[i]!.frames - start[i]!.frames,
      seconds: (end[i]!.at - start[i]!.at) / 1000,
      cpuSeconds: end[i]!.cpu - start[i]!.cpu,
    }));
  } finally {
    await Promise.all(agents.map(stopAgent));
  }
}

export async function runWebBench(options: WebBenchOptions): Promise<WebBenchResult> {
  const runs: WebRun[] = [];
  for (let round = 0; round < options.rounds; round++) {
    runs.push(...(await runRound(round, options)));
    options.onProgress?.(round + 1, options.rounds);
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const cpuPerFrame = (run: WebRun) => (1000 * run.cpuSeconds) / run.frames;
  const byVariant = WEB_VARIANTS.map((variant) => {
    const mine = runs.filter((run) => run.variant === variant);
    // Sharing one core fairly, a variant that costs more per frame makes fewer frames: the loss of frames/s is its cost.
    const overheads = mine.map((run) => {
      const off = runs.find((other) => other.variant === 'off' && other.round === run.round)!;
      return 100 * (1 - run.frames / run.seconds / (off.frames / off.seconds));
    });
    return {
      variant,
      framesPerSecond: median(mine.map((r) => r.frames / r.seconds)),
      cpuMsPerFrame: median(mine.map(cpuPerFrame)),
      overheadPercent: median(overheads),
      overheadRange: [Math.min(...overheads), Math.max(...overheads)] as [number, number],
    };
  });
  return { runs, byVariant };
}
