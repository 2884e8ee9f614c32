// Writes a model package: measures each part's latency, calibrates the
// operating points from validation probabilities, and writes the .tflite files
// and the manifest. Shared by build-model (frozen backbone) and train (fine-tuned).
import fs from 'node:fs';
import path from 'node:path';
import { calibrateOperatingPoints } from '../calibration/calibrate.js';
import type { RgbTarget } from '../../agent/preprocess/image-to-rgb.js';
import { TfliteInterpreter } from '../../agent/runtime/interpreter.js';
import { medianOf } from '../stats/summary.js';
import { modelMacs } from '../tflite/macs.js';
import type { TfliteModel } from '../../agent/tflite/model.js';
import { writeTfliteModel } from '../tflite/writer.js';
import { MANIFEST_FILE, MANIFEST_FORMAT_VERSION, type HeadEntry, type Manifest, type OperatingPoint, type SegmentEntry } from '../../agent/model-package/manifest.js';
import { IMAGE_BOUNDARY, isBranchSegment } from '../../agent/model-package/image-segments.js';
import { sha256Hex } from '../../agent/model-package/sha256.js';
import { tensorSpecOf } from '../../agent/model-package/tensor-spec.js';

/** The latency figure calibration minimizes: one thread, the steadiest measurement. */
export const CALIBRATION_LATENCY_KEY = 'xnnpack-1t';

export interface PackageProgress {
  stage: string;
  done: number;
  total: number;
}

export interface PlannedHead {
  name: string;
  file: string;
  model: TfliteModel;
  bytes: Uint8Array;
  afterSegment: number;
  task: string;
  extra: Partial<HeadEntry>;
}

export interface PackageContents {
  dir: string;
  name: string;
  buildKey: string;
  source: Manifest['source'];
  labels: string[];
  taskName: string;
  target: RgbTarget;
  segments: TfliteModel[];
  /** Where each segment starts and ends (see chainSeams); a glance segment starts at 'input' too. */
  seams: { from: string; to: string }[];
  heads: PlannedHead[];
  latencyRuns: number;
  /** With validation probabilities of every exit, operating points are calibrated. */
  calibration?: {
    perExitProbabilities: Float32Array[][];
    labels: ArrayLike<number>;
    deltas: readonly number[];
    balancedConfidenceZ: number;
  };
  training?: Manifest['training'];
  onProgress?: (progress: PackageProgress) => void;
}

/** The seams of a plain chain from its boundary names: 'input', the cuts, then where the last segment ends. */
export function chainSeams(boundaries: readonly string[]): { from: string; to: string }[] {
  return boundaries.slice(1).map((to, i) => ({ from: boundaries[i]!, to }));
}

/** A deterministic input so that latency is measured through real seams, the same on every build. */
function fillDeterministic(data: Uint8Array | Int8Array, seed: number): void {
  let state = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    data[i] = state >>> 24;
  }
}

/** Median ms of each segment, and of each head on its segment's output, at one thread count. */
function measureLatency(segments: Uint8Array[], readsImage: boolean[], heads: { bytes: Uint8Array; afterSegment: number }[], runs: number, threads: number) {
  const load = (bytes: Uint8Array, label: string) => TfliteInterpreter.fromBytes(bytes, label, { backend: 'xnnpack', threads });
  const segmentRunners = segments.map((bytes, i) => load(bytes, `segment ${i}`));
  const headRunners = heads.map((head, i) => load(head.bytes, `head ${i}`));
  const segmentTimes: number[][] = segments.map(() => []);
  const headTimes: number[][] = heads.map(() => []);
  const warmup = 3;
  for (let run = 0; run < runs + warmup; run++) {
    segmentRunners.forEach((runner, i) => {
      if (readsImage[i]) fillDeterministic(runner.input().data as Uint8Array, run + 1);
      else runner.input().data.set(segmentRunners[i - 1]!.output().data);
      const ms = runner.invoke();
      if (run >= warmup) segmentTimes[i]!.push(ms);
    });
    headRunners.forEach((runner, i) => {
      runner.input().data.set(segmentRunners[heads[i]!.afterSegment]!.output().data);
      const ms = runner.invoke();
      if (run >= warmup) headTimes[i]!.push(ms);
    });
  }
  return { segments: segmentTimes.map(medianOf), heads: headTimes.map(medianOf) };
}

export function writeAtomically(file: string, data: Uint8Array | string): void {
  const temporary = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(temporary, data);
  fs.renameSync(temporary, file);
}

export function writePackage(args: PackageContents): { dir: string; cached: false; manifest: Manifest } {
  const { dir, segments, heads, target, labels, taskName, training } = args;
  const segmentBytes = segments.map((segment) => writeTfliteModel(segment));
  const imageInputs = args.seams.map((seam) => seam.from === IMAGE_BOUNDARY);

  args.onProgress?.({ stage: 'measure latency', done: 0, total: 2 });
  const latency1 = measureLatency(segmentBytes, imageInputs, heads, args.latencyRuns, 1);
  args.onProgress?.({ stage: 'measure latency', done: 1, total: 2 });
  const latency2 = measureLatency(segmentBytes, imageInputs, heads, args.latencyRuns, 2);
  args.onProgress?.({ stage: 'measure latency', done: 2, total: 2 });

  let operatingPoints: OperatingPoint[] = [];
  if (args.calibration) {
    // Reaching exit i runs segments 0..i and heads 0..i.
    let macs = 0;
    let ms = 0;
    const cumulativeMacs: number[] = [];
    const cumulativeLatencyMs: number[] = [];
    heads.forEach((head, i) => {
      macs += modelMacs(segments[i]!) + modelMacs(head.model);
      ms += latency1.segments[i]! + latency1.heads[i]!;
      cumulativeMacs.push(macs);
      cumulativeLatencyMs.push(ms);
    });
    args.onProgress?.({ stage: 'calibrate', done: 0, total: 1 });
    const branchExits = heads.map((head) => head.afterSegment).filter((segment) => isBranchSegment({ segments: args.seams }, segment));
    const calibration = calibrateOperatingPoints(
      { perExitProbabilities: args.calibration.perExitProbabilities, labels: args.calibration.labels, cumulativeMacs, cumulativeLatencyMs, branchExits },
      { deltas: args.calibration.deltas, balancedConfidenceZ: args.calibration.balancedConfidenceZ },
    );
    operatingPoints = [...calibration.points, ...calibration.staticExits];
    args.onProgress?.({ stage: 'calibrate', done: 1, total: 1 });
  }

  fs.mkdirSync(dir, { recursive: true });
  const entry = (part: TfliteModel, bytes: Uint8Array, file: string, ms1: number, ms2: number) => {
    writeAtomically(path.join(dir, file), bytes);
    return {
      file,
      sha256: sha256Hex(bytes),
      input: tensorSpecOf(part, 'input'),
      output: tensorSpecOf(part, 'output'),
      macs: modelMacs(part),
      latencyMs: { 'xnnpack-1t': ms1, 'xnnpack-2t': ms2 },
    };
  };
  const segmentEntries: SegmentEntry[] = segments.map((segment, i) => ({
    ...entry(segment, segmentBytes[i]!, `segment-${i}.tflite`, latency1.segments[i]!, latency2.segments[i]!),
    index: i,
    ...args.seams[i]!,
  }));
  const headEntries: HeadEntry[] = heads.map((head, i) => ({
    ...entry(head.model, head.bytes, head.file, latency1.heads[i]!, latency2.heads[i]!),
    name: head.name,
    afterSegment: head.afterSegment,
    task: head.task,
    ...head.extra,
  }));
  const manifest: Manifest = {
    formatVersion: MANIFEST_FORMAT_VERSION,
    name: args.name,
    createdAt: new Date().toISOString(),
    buildKey: args.buildKey,
    source: args.source,
    input: { width: target.width, height: target.height, channels: 3, dtype: 'uint8', colorOrder: 'RGB', resize: target.resize },
    labels: { [taskName]: labels },
    segments: segmentEntries,
    heads: headEntries,
    operatingPoints,
    ...(training ? { training } : {}),
  };
  writeAtomically(path.join(dir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  return { dir, cached: false, manifest };
}
