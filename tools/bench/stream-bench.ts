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
import { deviceProfile } from '../../agent/energy/device-profiles.js';
import { createExitPolicy } from '../../agent/exit-policy/policy.js';
import { MotionGate } from '../../agent/gate/motion-gate.js';
import type { OperatingPoint } from '../../agent/model-package/manifest.js';
import type { FrameContext } from '../../agent/pipeline/frame-context.js';
import { FramePipeline } from '../../agent/pipeline/frame-pipeline.js';
import { pipelineGate } from '../../agent/pipeline/stages/gate-stage.js';
import type { FrameSource } from '../../agent/sources/frame-source.js';
import { simulatedPlatform } from '../../firmware-bridge/index.js';
import { SimulatedBridge } from '../../firmware-bridge/simulated.js';
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

/** The decoded frames as a camera stream would give them: pixels at the model's size, one after another. */
function decodedSource(frames: Buffer[], name: string): FrameSource {
  let next = 0;
  return {
    name,
    continuousScene: true,
    next: async () => (next < frames.length ? { id: String(next), origin: name, bytes: Buffer.alloc(0), pixels: frames[next++]!, capturedAt: Date.now() } : undefined),
    close: async () => {},
  };
}

export async function runStreamBench(options: {
  scene: Scene;
  engine: MultiExitEngine;
  /** The operating point the gated pipeline runs at (the every-frame reference runs its policy too). */
  point: OperatingPoint;
  target: RgbTarget;
  brokerUrl: string;
  config?: AgentConfig;
  onProgress?: (done: number, total: number) => void;
}): Promise<StreamBenchResult> {
  const { scene, engine, point, target } = options;
  const config = options.config ?? parseAgentConfig({ source: { kind: 'stream', url: scene.file } });
  const { frames, cpuMs: decodeCpuMs } = await decodeAll(scene.file, target);
  const decodeMsPerFrame = decodeCpuMs / frames.length;
  const policy = createExitPolicy({ policy: point.policy, thresholds: point.thresholds, patience: point.patience }, engine.exitCount);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-exit-stream-bench-'));
  const store = LogStore.open(path.join(dir, 'bench.db'));
  const link = await new AgentLink({ url: options.brokerUrl, deviceId: `bench-${scene.kind}`, config, protocolVersion: 4, handlers: { onAnswer: () => {} } }).start();
  // Scene time: the manual clock advances one frame slot per frame, and results are stamped with it, so events keep the video's timing.
  const bridge = new SimulatedBridge({ clock: 'manual', capacityWh: 1000 });
  const startMs = bridge.clock.nowMs();
  const sceneNow = () => bridge.clock.nowMs() - startMs;
  const results = new ResultPublisher({ link, log: store, events: config.events, exitCount: engine.exitCount, frameSize: target, now: sceneNow, stamp: (at) => at });
  const seen: { context?: FrameContext } = {};
  // The product's pipeline, stage for stage, as the app composes it (no controller: the point is fixed).
  const pipeline = new FramePipeline({
    engine,
    source: decodedSource(frames, scene.kind),
    ...simulatedPlatform(bridge, 1),
    controller: undefined,
    controllerOffReason: 'off (benchmark)',
    staticPoint: point,
    points: [point],
    profile: deviceProfile('pi4'),
    log: store,
    target,
    maxFrameRate: scene.fps,
    gate: pipelineGate(new MotionGate(config.gate, target.width, target.height), config.gate),
    results,
    resultsClock: sceneNow,
    onFrame: (context) => (seen.context = context),
  });
  const labelOf = (index: number) => engine.labels[index] ?? String(index);

  let everyCpu = 0;
  let everyWall = 0;
  let gatedCpu = 0;
  let gatedWall = 0;
  let agreeing = 0;
  let gatedLabel = '';
  let exitSum = 0;
  const gatedMs: number[] = [];
  const timeline: StreamBenchResult['timeline'] = [];
  for (const [i, frame] of frames.entries()) {
    // Every frame through the model: the reference.
    let cpu = process.cpuUsage();
    let wall = performance.now();
    const reference = labelOf(engine.classifyPixels(frame, policy, point.maxExit).label);
    everyWall += performance.now() - wall;
    everyCpu += cpuMs(cpu);

    // The gated pipeline on the same frame: control, gate, the model only when something moved (or the reuse age ran out), log and publish.
    cpu = process.cpuUsage();
    wall = performance.now();
    seen.context = undefined;
    await pipeline.step();
    const current = seen.context as FrameContext | undefined;
    const elapsed = performance.now() - wall;
    gatedWall += elapsed;
    gatedCpu += cpuMs(cpu);
    gatedMs.push(decodeMsPerFrame + elapsed);
    const inferred = current?.result !== undefined;
    if (inferred) {
      gatedLabel = current.label;
      exitSum += current.result.exit;
    }
    if (gatedLabel === reference) agreeing++;
    timeline.push({ frame: i, motion: current?.moved ?? false, inferred, label: gatedLabel });
    if (i % 50 === 0) {
      options.onProgress?.(i, frames.length);
      // The store flushes and the link sends between frames, as in the agent's loop.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  const inferred = pipeline.stats.frames;
  await pipeline.stop();
  await results.stop(sceneNow());
  store.flush();
  const events = store.events();
  store.close();
  await link.stop();
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
      reused: pipeline.stats.reused,
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
