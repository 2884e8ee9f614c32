/**
 * Every-frame inference against the gated pipeline, side by side on the same decoded
 * video and the same engine, frame by frame in turn: how many frames ran the model,
 * how often the gated label agrees with the every-frame one, event recall and precision
 * against the scene's ground truth, CPU time per frame, and what decode, gate, log and
 * publish add to the model's own cost.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseAgentConfig, type AgentConfig } from '../../agent/config/agent-config.js';
import { ResultPublisher } from '../../agent/events/result-publisher.js';
import type { ExitPolicy } from '../../agent/exit-policy/policy.js';
import { MotionGate } from '../../agent/gate/motion-gate.js';
import { reusedEarlierExit, withTemporalReuse, type PreviousAnswer } from '../../agent/exit-policy/temporal-reuse.js';
import { cropToRegion } from '../../agent/preprocess/crop.js';
import type { MultiExitEngine } from '../../agent/inference/multi-exit-engine.js';
import { AgentLink } from '../../agent/mqtt/agent-link.js';
import type { RgbTarget } from '../../agent/preprocess/image-to-rgb.js';
import { ffmpegArguments } from '../../agent/sources/stream-source.js';
import { LogStore } from '../../agent/store/log-store.js';
import type { Scene } from './stream-scenes.js';

export interface StreamBenchResult {
  scene: Scene['kind'];
  frames: number;
  /** Objects in the ground truth. */
  objects: number;
  decodeMsPerFrame: number;
  everyFrame: { cpuMsPerFrame: number; msPerFrame: number };
  gated: {
    /** Inferences an earlier exit settled by temporal exit reuse. */
    reused: number;
    /** Mean exit of the inferences (0-based). */
    meanExit: number;
    inferred: number;
    agreement: number;
    cpuMsPerFrame: number;
    msPerFrame: number;
    latencyP50Ms: number;
    latencyP95Ms: number;
    events: number;
    eventRecall: number;
    eventPrecision: number;
    /** Of the events that match an object, the share labelled with its class. */
    eventLabelAccuracy: number;
  };
  /** Frames/s from decode to the published result: the model alone, and the whole gated pipeline. */
  framesPerSecond: { modelOnly: number; pipeline: number };
  /** Timeline rows for the plot: motion, inference on or off, label changes. */
  timeline: Array<{ frame: number; motion: boolean; inferred: boolean; label: string }>;
}

/** Decodes the whole file to the model input with ffmpeg (as the stream source runs it), timing ffmpeg's own CPU. */
async function decodeAll(file: string, target: RgbTarget): Promise<{ frames: Buffer[]; cpuMs: number }> {
  const child = spawn('ffmpeg', ['-benchmark', ...ffmpegArguments({ url: file, target, loop: false, realtime: false }).map((arg) => (arg === 'error' ? 'info' : arg))], { stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks: Buffer[] = [];
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => chunks.push(chunk));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`ffmpeg could not decode ${file}: ${stderr.slice(-500)}`);
  const all = Buffer.concat(chunks);
  const size = target.width * target.height * 3;
  const frames = Array.from({ length: Math.floor(all.length / size) }, (_, i) => all.subarray(i * size, (i + 1) * size));
  const bench = stderr.match(/bench: utime=([\d.]+)s stime=([\d.]+)s/);
  return { frames, cpuMs: bench ? (Number(bench[1]) + Number(bench[2])) * 1000 : NaN };
}

const cpuMs = (from: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(from);
  return (used.user + used.system) / 1000;
};

const percentile = (values: number[], q: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(q * values.length))]!;

export async function runStreamBench(options: {
  scene: Scene;
  engine: MultiExitEngine;
  policy: ExitPolicy;
  maxExit: number;
  target: RgbTarget;
  brokerUrl: string;
  config?: AgentConfig;
  onProgress?: (done: number, total: number) => void;
}): Promise<StreamBenchResult> {
  const { scene, engine, policy, maxExit, target } = options;
  const config = options.config ?? parseAgentConfig({ source: { kind: 'stream', url: scene.file } });
  const { frames, cpuMs: decodeCpuMs } = await decodeAll(scene.file, target);
  const decodeMsPerFrame = decodeCpuMs / frames.length;

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-exit-stream-bench-'));
  const store = LogStore.open(path.join(dir, 'bench.db'));
  const link = new AgentLink({ url: options.brokerUrl, deviceId: `bench-${scene.kind}`, config, protocolVersion: 4, handlers: { onAnswer: () => {} } });
  const results = new ResultPublisher({ link, log: store, events: config.events, exitCount: engine.exitCount, frameSize: target });
  const gate = new MotionGate(config.gate, target.width, target.height);
  const maxReuseFrames = config.gate.maxReuseS * scene.fps;
  const labelOf = (index: number) => engine.labels[index] ?? String(index);

  let everyCpu = 0;
  let everyWall = 0;
  let gatedCpu = 0;
  let gatedWall = 0;
  let inferred = 0;
  let agreeing = 0;
  let lastInferred = -Infinity;
  let gatedLabel = '';
  let previous: PreviousAnswer | undefined;
  let reused = 0;
  let exitSum = 0;
  const gatedMs: number[] = [];
  const timeline: StreamBenchResult['timeline'] = [];
  for (const [i, frame] of frames.entries()) {
    // Every frame through the model: the reference.
    let cpu = process.cpuUsage();
    let wall = performance.now();
    engine.input.data.set(frame);
    const reference = labelOf(engine.classify(policy, maxExit).label);
    everyWall += performance.now() - wall;
    everyCpu += cpuMs(cpu);

    // The gated pipeline: gate, the model only when something moved (or the reuse age ran out), log and publish.
    cpu = process.cpuUsage();
    wall = performance.now();
    const at = Math.round((i * 1000) / scene.fps);
    const reading = gate.observe(frame);
    const motion = reading.motion;
    const run = motion || i - lastInferred >= maxReuseFrames;
    if (run) {
      engine.input.data.set(reading.region && config.gate.cropToMotion ? cropToRegion(frame, target.width, target.height, reading.region) : frame);
      const framePolicy = withTemporalReuse(policy, config.gate, reading.changedShare, previous);
      const result = engine.classify(framePolicy, maxExit);
      if (reusedEarlierExit(framePolicy)) reused++;
      previous = { label: result.label, confidence: result.confidence };
      exitSum += result.exit;
      gatedLabel = labelOf(result.label);
      lastInferred = i;
      inferred++;
      store.logInference({ ts: at, source: scene.kind, frameId: String(i), exit: result.exit, label: gatedLabel, confidence: result.confidence, policy: policy.name, operatingPoint: 'bench', segmentMs: result.segmentMs, totalMs: 0 });
      results.classified({ at, label: gatedLabel, confidence: result.confidence, exit: result.exit, motion, rgb: frame });
    } else {
      results.still(at);
    }
    const elapsed = performance.now() - wall;
    gatedWall += elapsed;
    gatedCpu += cpuMs(cpu);
    gatedMs.push(decodeMsPerFrame + elapsed);
    if (gatedLabel === reference) agreeing++;
    timeline.push({ frame: i, motion, inferred: run, label: gatedLabel });
    if (i % 50 === 0) {
      options.onProgress?.(i, frames.length);
      // The store flushes and the link sends between frames, as in the agent's loop.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  await results.finish(Math.round((frames.length * 1000) / scene.fps));
  store.flush();
  const events = store.events();
  store.close();
  await link.close();
  fs.rmSync(dir, { recursive: true, force: true });

  // An event matches a ground-truth object when their frames overlap (the event may outlast it by endAfterS).
  const frameOf = (ms: number) => Math.round((ms * scene.fps) / 1000);
  const overlaps = (event: (typeof events)[number], truth: Scene['truth'][number]) => frameOf(event.start) <= truth.end && frameOf(event.end ?? event.start) >= truth.start;
  const recalled = scene.truth.filter((truth) => events.some((event) => overlaps(event, truth))).length;
  const matchedEvents = events.filter((event) => scene.truth.some((truth) => overlaps(event, truth)));
  const matched = matchedEvents.length;
  const labelled = matchedEvents.filter((event) => scene.truth.some((truth) => overlaps(event, truth) && truth.label === event.label)).length;
  const n = frames.length;
  return {
    scene: scene.kind,
    frames: n,
    objects: scene.truth.length,
    decodeMsPerFrame,
    everyFrame: { cpuMsPerFrame: everyCpu / n, msPerFrame: everyWall / n },
    gated: {
      inferred,
      reused,
      meanExit: inferred === 0 ? 0 : exitSum / inferred,
      agreement: agreeing / n,
      cpuMsPerFrame: gatedCpu / n,
      msPerFrame: gatedWall / n,
      latencyP50Ms: percentile(gatedMs, 0.5),
      latencyP95Ms: percentile(gatedMs, 0.95),
      events: events.length,
      eventRecall: scene.truth.length === 0 ? 1 : recalled / scene.truth.length,
      eventPrecision: events.length === 0 ? 1 : matched / events.length,
      eventLabelAccuracy: matched === 0 ? 0 : labelled / matched,
    },
    framesPerSecond: { modelOnly: 1000 / (everyWall / n), pipeline: 1000 / (decodeMsPerFrame + gatedWall / n) },
    timeline,
  };
}
