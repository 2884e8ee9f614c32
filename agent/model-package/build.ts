import fs from 'node:fs';
import path from 'node:path';
import { findCutPoints } from '../segmenter/cut-points.js';
import { cutModel } from '../segmenter/segment.js';
import { readTfliteModel } from '../tflite/reader.js';
import { writeTfliteModel } from '../tflite/writer.js';
import { modelMacs } from '../tflite/macs.js';
import type { TfliteModel } from '../tflite/model.js';
import { TfliteInterpreter } from '../runtime/interpreter.js';
import { medianOf } from '../stats/summary.js';
import { BuildConfigError, type ResolvedBuildConfig } from './build-config.js';
import { loadModelPackage, ModelPackageError } from './load.js';
import { MANIFEST_FILE, MANIFEST_FORMAT_VERSION, type Manifest, type HeadEntry, type SegmentEntry } from './manifest.js';
import { sha256Hex } from './sha256.js';
import { tensorSpecOf } from './tensor-spec.js';
import { downloadFile } from './download.js';

/** Changes whenever the builder's output for the same inputs would change. */
const BUILDER_VERSION = 1;

export interface BuildProgress {
  stage: string;
  done: number;
  total: number;
}

export interface BuildOptions {
  outDir: string;
  force?: boolean;
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

/** Median ms of each model run in sequence, at the thread counts a gateway uses. */
function measureChainLatency(models: Buffer[], runs: number, threads: number): number[] {
  const interpreters = models.map((bytes, i) => TfliteInterpreter.fromBytes(bytes, `part ${i}`, { backend: 'xnnpack', threads }));
  const times: number[][] = interpreters.map(() => []);
  for (let run = 0; run < runs + 3; run++) {
    fillDeterministic(interpreters[0]!.input().data as Uint8Array, run + 1);
    interpreters.forEach((interpreter, i) => {
      if (i > 0) interpreter.input().data.set(interpreters[i - 1]!.output().data);
      const ms = interpreter.invoke();
      if (run >= 3) times[i]!.push(ms);
    });
  }
  return times.map(medianOf);
}

function writeAtomically(file: string, data: Uint8Array | string): void {
  const temporary = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(temporary, data);
  fs.renameSync(temporary, file);
}

export async function buildModelPackage(config: ResolvedBuildConfig, options: BuildOptions): Promise<BuildResult> {
  const progress = options.onProgress;
  const dir = path.resolve(options.outDir);
  const base = await baseModelBytes(config, progress);
  const labels = readLabels(config.labelsPath);
  const { configFile: _configFile, ...portableConfig } = config;
  const buildKey = sha256Hex(JSON.stringify({ BUILDER_VERSION, base: sha256Hex(base), labels, config: { ...portableConfig, baseModelPath: undefined, labelsPath: undefined } }));

  if (!options.force && fs.existsSync(path.join(dir, MANIFEST_FILE))) {
    try {
      const existing = loadModelPackage(dir);
      if (existing.manifest.buildKey === buildKey) return { dir, cached: true, manifest: existing.manifest };
    } catch (error) {
      if (!(error instanceof ModelPackageError)) throw error;
      // A damaged package is rebuilt below.
    }
  }

  const total = 4;
  progress?.({ stage: 'read base model', done: 0, total });
  const model = readTfliteModel(base);
  const cutPoints = findCutPoints(model);
  progress?.({ stage: 'cut segments', done: 1, total });
  const { segments, head } = cutModel(model, config.cuts);
  const segmentBytes = segments.map((segment) => Buffer.from(writeTfliteModel(segment)));
  const headBytes = Buffer.from(writeTfliteModel(head));

  const classes = tensorSpecOf(head, 'output').shape.at(-1);
  if (classes !== labels.length) {
    throw new BuildConfigError(`Labels ${config.labelsPath} has ${labels.length} lines, but the model's classifier outputs ${classes} classes.`);
  }

  progress?.({ stage: 'measure latency (1 thread)', done: 2, total });
  const chain = [...segmentBytes, headBytes];
  const latency1 = measureChainLatency(chain, config.latencyRuns, 1);
  progress?.({ stage: 'measure latency (2 threads)', done: 3, total });
  const latency2 = measureChainLatency(chain, config.latencyRuns, 2);
  const latencyOf = (i: number) => ({ 'xnnpack-1t': latency1[i]!, 'xnnpack-2t': latency2[i]! });

  fs.mkdirSync(dir, { recursive: true });
  const boundaries = ['input', ...config.cuts, 'pooled'];
  const entry = (part: TfliteModel, bytes: Buffer, file: string, i: number) => {
    writeAtomically(path.join(dir, file), bytes);
    return {
      file,
      sha256: sha256Hex(bytes),
      input: tensorSpecOf(part, 'input'),
      output: tensorSpecOf(part, 'output'),
      macs: modelMacs(part),
      latencyMs: latencyOf(i),
    };
  };
  const segmentEntries: SegmentEntry[] = segments.map((segment, i) => ({
    ...entry(segment, segmentBytes[i]!, `segment-${i}.tflite`, i),
    index: i,
    from: boundaries[i]!,
    to: boundaries[i + 1]!,
  }));
  const headEntry: HeadEntry = {
    ...entry(head, headBytes, `head-${config.labels.task}.tflite`, segments.length),
    name: config.labels.task,
    afterSegment: segments.length - 1,
    task: config.labels.task,
  };
  const inputShape = tensorSpecOf(model, 'input').shape;
  const manifest: Manifest = {
    formatVersion: MANIFEST_FORMAT_VERSION,
    name: config.name,
    createdAt: new Date().toISOString(),
    buildKey,
    source: { file: path.basename(config.baseModelPath), sha256: sha256Hex(base) },
    input: { width: inputShape[2]!, height: inputShape[1]!, channels: 3, dtype: 'uint8', colorOrder: 'RGB', resize: config.resize },
    labels: { [config.labels.task]: labels },
    segments: segmentEntries,
    heads: [headEntry],
    operatingPoints: [],
  };
  void cutPoints;
  writeAtomically(path.join(dir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  progress?.({ stage: 'done', done: total, total });
  return { dir, cached: false, manifest };
}
