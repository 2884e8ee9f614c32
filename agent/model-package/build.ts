import fs from 'node:fs';
import path from 'node:path';
import { readImageFolder } from '../datasets/image-folder.js';
import { splitTrainValidation } from '../datasets/split.js';
import { calibrateOperatingPoints } from '../exit-policy/calibrate.js';
import { trainExitHeads, type ExitTrainingResult } from '../exit-heads/train-exits.js';
import { TfliteInterpreter } from '../runtime/interpreter.js';
import { cutBackbone, cutModel } from '../segmenter/segment.js';
import { medianOf } from '../stats/summary.js';
import { modelMacs } from '../tflite/macs.js';
import type { TfliteModel } from '../tflite/model.js';
import { readTfliteModel } from '../tflite/reader.js';
import { resizeModelInput } from '../tflite/shape-inference.js';
import { writeTfliteModel } from '../tflite/writer.js';
import { BuildConfigError, type ResolvedBuildConfig } from './build-config.js';
import { downloadFile } from './download.js';
import { loadModelPackage, ModelPackageError } from './load.js';
import { MANIFEST_FILE, MANIFEST_FORMAT_VERSION, type HeadEntry, type Manifest, type OperatingPoint, type SegmentEntry } from './manifest.js';
import { sha256Hex } from './sha256.js';
import { tensorSpecOf } from './tensor-spec.js';

/** Changes whenever the builder's output for the same inputs would change. */
const BUILDER_VERSION = 4;
/** The latency figure calibration minimizes: one thread, the steadiest measurement. */
const CALIBRATION_LATENCY_KEY = 'xnnpack-1t';

export interface BuildProgress {
  stage: string;
  done: number;
  total: number;
}

export interface BuildOptions {
  outDir: string;
  force?: boolean;
  /** Where extracted features are cached between builds. */
  cacheDir?: string;
  onProgress?: (progress: BuildProgress) => void;
}

export interface BuildResult {
  dir: string;
  cached: boolean;
  manifest: Manifest;
}

async function baseModelBytes(config: ResolvedBuildConfig, onProgress: BuildOptions['onProgress']): Promise<Buffer> {
  if (!fs.existsSync(config.baseModelPath)) {
    if (!config.baseModel.url) {
      throw new BuildConfigError(
        `Base model not found at ${config.baseModelPath} (from baseModel.path in ${config.configFile}). ` +
          'Set EDGE_EXIT_SHARED_DIR to the folder that holds models/, fix baseModel.path, or give baseModel.url to download it.',
      );
    }
    await downloadFile(config.baseModel.url, config.baseModelPath, (done, total) => onProgress?.({ stage: 'download base model', done, total }));
  }
  const bytes = fs.readFileSync(config.baseModelPath);
  if (config.baseModel.sha256 && sha256Hex(bytes) !== config.baseModel.sha256) {
    throw new BuildConfigError(`Base model ${config.baseModelPath} has sha256 ${sha256Hex(bytes)}, but ${config.configFile} expects ${config.baseModel.sha256}.`);
  }
  return bytes;
}

function readLabels(file: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new BuildConfigError(`Cannot read labels ${file}: ${(error as Error).message}`);
  }
  return text.split(/\r?\n/).map((line) => line.trim()).filter((line, i, all) => line.length > 0 || i < all.length - 1);
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
function measureLatency(segments: Uint8Array[], heads: { bytes: Uint8Array; afterSegment: number }[], runs: number, threads: number) {
  const load = (bytes: Uint8Array, label: string) => TfliteInterpreter.fromBytes(bytes, label, { backend: 'xnnpack', threads });
  const segmentRunners = segments.map((bytes, i) => load(bytes, `segment ${i}`));
  const headRunners = heads.map((head, i) => load(head.bytes, `head ${i}`));
  const segmentTimes: number[][] = segments.map(() => []);
  const headTimes: number[][] = heads.map(() => []);
  const warmup = 3;
  for (let run = 0; run < runs + warmup; run++) {
    fillDeterministic(segmentRunners[0]!.input().data as Uint8Array, run + 1);
    segmentRunners.forEach((runner, i) => {
      if (i > 0) runner.input().data.set(segmentRunners[i - 1]!.output().data);
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

function writeAtomically(file: string, data: Uint8Array | string): void {
  const temporary = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(temporary, data);
  fs.renameSync(temporary, file);
}

interface PlannedHead {
  name: string;
  file: string;
  model: TfliteModel;
  bytes: Uint8Array;
  afterSegment: number;
  task: string;
  extra: Partial<HeadEntry>;
}

/** The classes of a task's dataset and its train/validation split. */
function taskSplit(config: ResolvedBuildConfig) {
  const task = config.task!;
  const folder = readImageFolder(path.join(config.datasetPath!, task.trainSplit));
  const split = splitTrainValidation(folder.samples, {
    validationFraction: task.validationFraction,
    trainPerClass: task.trainPerClass,
    validationPerClass: task.validationPerClass,
    seed: task.training.seed,
  });
  return { classes: folder.classes, ...split };
}

export async function buildModelPackage(config: ResolvedBuildConfig, options: BuildOptions): Promise<BuildResult> {
  const progress = options.onProgress;
  const dir = path.resolve(options.outDir);
  const base = await baseModelBytes(config, progress);
  const task = config.task;
  const split = task ? taskSplit(config) : undefined;
  const labels = task ? split!.classes : readLabels(config.labelsPath!);
  const taskName = task ? task.name : config.labels!.task;
  const { configFile: _configFile, baseModelPath: _base, labelsPath: _labels, datasetPath: _dataset, ...portableConfig } = config;
  const imagesKey = split ? sha256Hex(JSON.stringify([split.train.map((s) => s.file), split.validation.map((s) => s.file)])) : '';
  const buildKey = sha256Hex(JSON.stringify({ BUILDER_VERSION, base: sha256Hex(base), labels, imagesKey, config: portableConfig }));

  if (!options.force && fs.existsSync(path.join(dir, MANIFEST_FILE))) {
    try {
      const existing = loadModelPackage(dir);
      if (existing.manifest.buildKey === buildKey) return { dir, cached: true, manifest: existing.manifest };
    } catch (error) {
      if (!(error instanceof ModelPackageError)) throw error;
      // A damaged package is rebuilt below.
    }
  }

  progress?.({ stage: 'cut segments', done: 0, total: 1 });
  let model = readTfliteModel(base);
  if (config.inputSize) model = resizeModelInput(model, config.inputSize, config.inputSize);
  const inputShape = tensorSpecOf(model, 'input').shape;
  const target = { width: inputShape[2]!, height: inputShape[1]!, resize: config.resize };

  let segments: TfliteModel[];
  const heads: PlannedHead[] = [];
  let operatingPoints: OperatingPoint[] = [];
  let training: Manifest['training'];
  let trained: ExitTrainingResult | undefined;
  if (!task) {
    const cut = cutModel(model, config.cuts);
    segments = cut.segments;
    const headBytes = writeTfliteModel(cut.head);
    heads.push({ name: taskName, file: `head-${taskName}.tflite`, model: cut.head, bytes: headBytes, afterSegment: segments.length - 1, task: taskName, extra: {} });
    const classes = tensorSpecOf(cut.head, 'output').shape.at(-1);
    if (classes !== labels.length) {
      throw new BuildConfigError(`Labels ${config.labelsPath} has ${labels.length} lines, but the model's classifier outputs ${classes} classes.`);
    }
  } else {
    segments = cutBackbone(model, config.cuts, config.end);
    const segmentBytes = segments.map((s) => writeTfliteModel(s));
    const cacheDir = options.cacheDir ?? path.join(path.dirname(dir), '.cache', 'features');
    const featureKey = sha256Hex(JSON.stringify({ segments: segmentBytes.map((b) => sha256Hex(b)), imagesKey, target, grids: task.heads.map((h) => h.grid) }));
    trained = await trainExitHeads({
      segments: segmentBytes.map((bytes, i) => TfliteInterpreter.fromBytes(bytes, `segment ${i}`, { backend: 'xnnpack', threads: 2 })),
      train: split!.train,
      validation: split!.validation,
      classes: labels.length,
      heads: task.heads,
      training: task.training,
      target,
      cacheFiles: { train: path.join(cacheDir, `${featureKey}-train.bin`), validation: path.join(cacheDir, `${featureKey}-validation.bin`) },
      onProgress: (stage, done, total) => progress?.({ stage, done, total }),
    });
    trained.exits.forEach((exit, i) => {
      const headModel = readTfliteModel(exit.bytes);
      heads.push({
        name: `${taskName}-exit-${i}`,
        file: `head-${taskName}-exit-${i}.tflite`,
        model: headModel,
        bytes: exit.bytes,
        afterSegment: i,
        task: taskName,
        extra: {
          grid: task.heads[i]!.grid,
          hidden: task.heads[i]!.hidden,
          floatValidationAccuracy: exit.floatValidationAccuracy,
          int8ValidationAccuracy: exit.int8ValidationAccuracy,
        },
      });
    });
    training = { dataset: task.dataset, trainImages: split!.train.length, validationImages: split!.validation.length, seed: task.training.seed, latencyKey: CALIBRATION_LATENCY_KEY };
  }
  const segmentBytes = segments.map((segment) => writeTfliteModel(segment));

  progress?.({ stage: 'measure latency', done: 0, total: 2 });
  const latency1 = measureLatency(segmentBytes, heads, config.latencyRuns, 1);
  progress?.({ stage: 'measure latency', done: 1, total: 2 });
  const latency2 = measureLatency(segmentBytes, heads, config.latencyRuns, 2);
  progress?.({ stage: 'measure latency', done: 2, total: 2 });

  if (trained) {
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
    progress?.({ stage: 'calibrate', done: 0, total: 1 });
    const calibration = calibrateOperatingPoints(
      { perExitProbabilities: trained.validationProbabilities, labels: trained.validationLabels, cumulativeMacs, cumulativeLatencyMs },
      { deltas: task!.calibrationDeltas, balancedMarginPoints: task!.balancedMarginPoints },
    );
    operatingPoints = [...calibration.points, ...calibration.staticExits];
    progress?.({ stage: 'calibrate', done: 1, total: 1 });
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
  const boundaries = ['input', ...config.cuts, task ? config.end : 'pooled'];
  const segmentEntries: SegmentEntry[] = segments.map((segment, i) => ({
    ...entry(segment, segmentBytes[i]!, `segment-${i}.tflite`, latency1.segments[i]!, latency2.segments[i]!),
    index: i,
    from: boundaries[i]!,
    to: boundaries[i + 1]!,
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
    name: config.name,
    createdAt: new Date().toISOString(),
    buildKey,
    source: { file: path.basename(config.baseModelPath), sha256: sha256Hex(base) },
    input: { width: target.width, height: target.height, channels: 3, dtype: 'uint8', colorOrder: 'RGB', resize: config.resize },
    labels: { [taskName]: labels },
    segments: segmentEntries,
    heads: headEntries,
    operatingPoints,
    ...(training ? { training } : {}),
  };
  writeAtomically(path.join(dir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  return { dir, cached: false, manifest };
}
