import fs from 'node:fs';
import path from 'node:path';
import { readImageFolder } from '../../agent/datasets/image-folder.js';
import { splitTrainValidation } from '../../agent/datasets/split.js';
import { trainExitHeads, type ExitTrainingResult } from '../exit-heads/train-exits.js';
import { TfliteInterpreter } from '../../agent/runtime/interpreter.js';
import { cutBackbone, cutModel } from '../segmenter/segment.js';
import type { TfliteModel } from '../../agent/tflite/model.js';
import { readTfliteModel } from '../../agent/tflite/reader.js';
import { isUint8Quantized } from '../../agent/runtime/xnnpack-delegate.js';
import { convertUint8ToInt8 } from '../tflite/uint8-to-int8.js';
import { resizeModelInput } from '../tflite/shape-inference.js';
import { writeTfliteModel } from '../tflite/writer.js';
import { BuildConfigError, type ResolvedBuildConfig } from './build-config.js';
import { downloadFile } from './download.js';
import { loadModelPackage, ModelPackageError } from '../../agent/model-package/load.js';
import { MANIFEST_FILE, type Manifest } from '../../agent/model-package/manifest.js';
import { sha256Hex } from '../../agent/model-package/sha256.js';
import { CALIBRATION_LATENCY_KEY, chainSeams, writePackage, type PackageProgress, type PlannedHead } from './write-package.js';
import { tensorSpecOf } from '../../agent/model-package/tensor-spec.js';

/** Changes whenever the builder's output for the same inputs would change. */
const BUILDER_VERSION = 4;

export type BuildProgress = PackageProgress;

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
  const parsed = readTfliteModel(base);
  // The bundled XNNPACK refuses uint8 (QU8) convolutions: a uint8 model is cut as its int8 equivalent, which it runs fast.
  const fromUint8 = isUint8Quantized(parsed);
  const imagesKey = split ? sha256Hex(JSON.stringify([split.train.map((s) => s.file), split.validation.map((s) => s.file)])) : '';
  const buildKey = sha256Hex(JSON.stringify({ BUILDER_VERSION, base: sha256Hex(base), labels, imagesKey, config: portableConfig, ...(fromUint8 ? { uint8: 'as int8' } : {}) }));

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
  let model = fromUint8 ? convertUint8ToInt8(parsed).model : parsed;
  if (config.inputSize) model = resizeModelInput(model, config.inputSize, config.inputSize);
  const inputShape = tensorSpecOf(model, 'input').shape;
  const target = { width: inputShape[2]!, height: inputShape[1]!, resize: config.resize };

  let segments: TfliteModel[];
  const heads: PlannedHead[] = [];
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
  return writePackage({
    dir,
    name: config.name,
    buildKey,
    source: { file: path.basename(config.baseModelPath), sha256: sha256Hex(base) },
    labels,
    taskName,
    target,
    segments,
    seams: chainSeams(['input', ...config.cuts, task ? config.end : 'pooled']),
    heads,
    latencyRuns: config.latencyRuns,
    calibration: trained && {
      perExitProbabilities: trained.validationProbabilities,
      labels: trained.validationLabels,
      deltas: task!.calibrationDeltas,
      balancedConfidenceZ: task!.balancedConfidenceZ,
    },
    training,
    onProgress: progress,
  });
}
